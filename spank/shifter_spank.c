/*
 * shifter_spank: the Slurm side of Shifter. A thin shim: it parses the plugstack arguments and the
 * --image/--volume/--module options, talks to Slurm, and hands everything else to libshifter.
 * Every message starts with "shifter: " and names the phase.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <slurm/spank.h>

#include "shifter.h"

SPANK_PLUGIN(shifter, 1)

#define SHIFTER_DEFAULT_CONFIG "/etc/shifter/udiRoot.conf"

struct plugin_config {
    char config_path[4096];
    int long_options;
    int enable_ccm;
};

struct plugin_options {
    char *image;
    char *volume;
    char *module;
};

static struct plugin_config config;
static struct plugin_options options;

static int set_option(char **slot, const char *value, const char *name) {
    char *copy = strdup(value ? value : "");
    if (copy == NULL) {
        slurm_error("shifter: option --%s: out of memory", name);
        return -1;
    }
    free(*slot);
    *slot = copy;
    return 0;
}

static int option_image(int val, const char *optarg, int remote) {
    (void)val; (void)remote;
    return set_option(&options.image, optarg, "image");
}

static int option_volume(int val, const char *optarg, int remote) {
    (void)val; (void)remote;
    return set_option(&options.volume, optarg, "volume");
}

static int option_module(int val, const char *optarg, int remote) {
    (void)val; (void)remote;
    return set_option(&options.module, optarg, "module");
}

static struct spank_option option_table[] = {
    {"image", "image", "Container image to run the job in (e.g. docker:ubuntu:22.04)", 1, 0,
     (spank_opt_cb_f)option_image},
    {"volume", "volumes", "Volumes to mount in the container (FROM:TO[:FLAGS], ';'-separated)", 1, 0,
     (spank_opt_cb_f)option_volume},
    {"module", "modules", "Site modules to load in the container (comma-separated, or none)", 1, 0,
     (spank_opt_cb_f)option_module},
    SPANK_OPTIONS_TABLE_END,
};

static struct spank_option long_option_table[] = {
    {"shifter-image", "image", "Container image to run the job in (e.g. docker:ubuntu:22.04)", 1, 0,
     (spank_opt_cb_f)option_image},
    {"shifter-volume", "volumes", "Volumes to mount in the container (FROM:TO[:FLAGS], ';'-separated)", 1,
     0, (spank_opt_cb_f)option_volume},
    {"shifter-module", "modules", "Site modules to load in the container (comma-separated, or none)", 1, 0,
     (spank_opt_cb_f)option_module},
    SPANK_OPTIONS_TABLE_END,
};

/* Parses "0" or "1" for a boolean plugstack argument. */
static int parse_flag(const char *text, int *out) {
    if (strcmp(text, "0") == 0) { *out = 0; return 0; }
    if (strcmp(text, "1") == 0) { *out = 1; return 0; }
    return -1;
}

/* Reads plugstack.conf arguments: defaults first, then each key=value; unknown keys are errors. */
static int parse_plugin_args(int ac, char **av) {
    int rv = -1;
    snprintf(config.config_path, sizeof(config.config_path), "%s", SHIFTER_DEFAULT_CONFIG);
    config.long_options = 0;
    config.enable_ccm = 0;
    for (int i = 0; i < ac; i++) {
        const char *arg = av[i];
        if (strncmp(arg, "shifter_config=", 15) == 0) {
            const char *path = arg + 15;
            if (path[0] != '/' || strlen(path) >= sizeof(config.config_path)) {
                slurm_error("shifter: plugstack argument \"%s\": the path must be absolute and shorter than %zu",
                            arg, sizeof(config.config_path));
                goto fail;
            }
            snprintf(config.config_path, sizeof(config.config_path), "%s", path);
        } else if (strcmp(arg, "long_options") == 0) {
            config.long_options = 1;
        } else if (strncmp(arg, "enable_ccm=", 11) == 0) {
            if (parse_flag(arg + 11, &config.enable_ccm) != 0) {
                slurm_error("shifter: plugstack argument \"%s\": expected 0 or 1", arg);
                goto fail;
            }
        } else {
            slurm_error("shifter: plugstack argument \"%s\" is unknown (known: shifter_config=PATH, "
                        "long_options, enable_ccm=0|1)", arg);
            goto fail;
        }
    }
    rv = 0;
fail:
    return rv;
}

int slurm_spank_init(spank_t sp, int ac, char **av) {
    int rv = -1;
    if (parse_plugin_args(ac, av) != 0) goto fail;
    /* sbatch shows only options registered here, not a static spank_options table. */
    struct spank_option *table = config.long_options ? long_option_table : option_table;
    for (struct spank_option *opt = table; opt->name != NULL; opt++) {
        spank_err_t err = spank_option_register(sp, opt);
        if (err != ESPANK_SUCCESS) {
            slurm_error("shifter: init: couldn't register option --%s: %s", opt->name, spank_strerror(err));
            goto fail;
        }
    }
    if (spank_context() == S_CTX_REMOTE || spank_context() == S_CTX_JOB_SCRIPT) {
        slurm_debug("shifter: init: libshifter %s, config %s", shifter_version(), config.config_path);
    }
    rv = 0;
fail:
    return rv;
}

int slurm_spank_exit(spank_t sp, int ac, char **av) {
    (void)sp; (void)ac; (void)av;
    free(options.image);
    free(options.volume);
    free(options.module);
    memset(&options, 0, sizeof(options));
    return 0;
}
