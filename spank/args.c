/*
 * The plugin's configuration (plugstack.conf arguments) and the options it adds to sbatch, salloc
 * and srun. The option callbacks only store what was given; libshifter judges it.
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "shifter_spank.h"

#define SHIFTER_DEFAULT_CONFIG "/etc/shifter/udiRoot.conf"

struct plugin_config config;
struct plugin_options options = {.container_mount_home = -1};

/* The options that take a string, by the `val` their table entries pass to option_string. */
enum string_option { OPT_IMAGE, OPT_VOLUME, OPT_MODULE, OPT_CONTAINER_IMAGE, OPT_CONTAINER_MOUNTS, OPT_CONTAINER_WORKDIR,
                     OPT_CONTAINER_ENV };

static int option_string(int val, const char *optarg, int remote) {
    (void)remote;
    char **slots[] = {&options.image, &options.volume, &options.module, &options.container_image,
                      &options.container_mounts, &options.container_workdir, &options.container_env};
    if (val < 0 || (size_t)val >= sizeof(slots) / sizeof(slots[0])) {
        slurm_error("shifter: option value %d is unknown to the plugin", val);
        return -1;
    }
    char *copy = strdup(optarg ? optarg : "");
    if (copy == NULL) {
        slurm_error("shifter: option: out of memory");
        return -1;
    }
    free(*slots[val]);
    *slots[val] = copy;
    return 0;
}

/* val is 1 for the option, 0 for its --no- form; the last one given wins. */
static int option_container_mount_home(int val, const char *optarg, int remote) {
    (void)optarg; (void)remote;
    options.container_mount_home = val;
    return 0;
}

static int option_container_remap_root(int val, const char *optarg, int remote) {
    (void)optarg; (void)remote;
    options.container_remap_root = val;
    return 0;
}

static int option_ccm(int val, const char *optarg, int remote) {
    (void)val; (void)optarg; (void)remote;
    options.ccm = 1;
    return 0;
}

static struct spank_option option_table[] = {
    {"image", "image", "Container image to run the job in (e.g. docker:ubuntu:22.04)", 1, OPT_IMAGE,
     (spank_opt_cb_f)option_string},
    {"volume", "volumes", "Volumes to mount in the container (FROM:TO[:FLAGS], ';'-separated)", 1, OPT_VOLUME,
     (spank_opt_cb_f)option_string},
    {"module", "modules", "Site modules to load in the container (comma-separated, or none)", 1, OPT_MODULE,
     (spank_opt_cb_f)option_string},
    SPANK_OPTIONS_TABLE_END,
};

/* long_options: the same under names that cannot clash with another plugin's. */
static struct spank_option long_option_table[] = {
    {"shifter-image", "image", "Container image to run the job in (e.g. docker:ubuntu:22.04)", 1, OPT_IMAGE,
     (spank_opt_cb_f)option_string},
    {"shifter-volume", "volumes", "Volumes to mount in the container (FROM:TO[:FLAGS], ';'-separated)", 1,
     OPT_VOLUME, (spank_opt_cb_f)option_string},
    {"shifter-module", "modules", "Site modules to load in the container (comma-separated, or none)", 1, OPT_MODULE,
     (spank_opt_cb_f)option_string},
    SPANK_OPTIONS_TABLE_END,
};

/* enable_ccm=1: the job's container gets an sshd on each node, as Shifter's CCM mode did. */
static struct spank_option ccm_option_table[] = {
    {"ccm", NULL, "Start an sshd in the job's container on each node, so that ssh from one node of the job reaches "
                  "the container on the others (needs --image)", 0, 1, (spank_opt_cb_f)option_ccm},
    SPANK_OPTIONS_TABLE_END,
};

/* pyxis_compat=1: Pyxis' names and meanings, for job scripts written for Pyxis. */
static struct spank_option pyxis_option_table[] = {
    {"container-image", "[USER@][REGISTRY#]IMAGE[:TAG]|PATH",
     "[pyxis] the image to run the tasks in (a Docker image, or the path of an unpacked image directory)", 1,
     OPT_CONTAINER_IMAGE, (spank_opt_cb_f)option_string},
    {"container-mounts", "SRC:DST[:FLAGS][,SRC:DST...]",
     "[pyxis] bind mount[s] inside the container; flags separated with \"+\", e.g. \"ro\"", 1,
     OPT_CONTAINER_MOUNTS, (spank_opt_cb_f)option_string},
    {"container-workdir", "PATH", "[pyxis] working directory inside the container", 1, OPT_CONTAINER_WORKDIR,
     (spank_opt_cb_f)option_string},
    {"container-env", "NAME[,NAME...]",
     "[pyxis] names of environment variables whose host value is set in the container over the image's", 1,
     OPT_CONTAINER_ENV, (spank_opt_cb_f)option_string},
    {"container-mount-home", NULL, "[pyxis] bind mount the user's home directory", 0, 1,
     (spank_opt_cb_f)option_container_mount_home},
    {"no-container-mount-home", NULL, "[pyxis] do not bind mount the user's home directory (the default)", 0, 0,
     (spank_opt_cb_f)option_container_mount_home},
    {"container-remap-root", NULL, "[pyxis] refused: containers run as the submitting user, never as root", 0, 1,
     (spank_opt_cb_f)option_container_remap_root},
    {"no-container-remap-root", NULL, "[pyxis] do not remap to root inside the container (always so)", 0, 0,
     (spank_opt_cb_f)option_container_remap_root},
    SPANK_OPTIONS_TABLE_END,
};

/* Registers the options; sbatch shows only options registered here, not a static spank_options table. */
int register_options(spank_t sp) {
    struct spank_option *tables[] = {config.long_options ? long_option_table : option_table,
                                     config.enable_ccm ? ccm_option_table : NULL,
                                     config.pyxis_compat ? pyxis_option_table : NULL};
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        for (struct spank_option *opt = tables[t]; opt != NULL && opt->name != NULL; opt++) {
            spank_err_t err = spank_option_register(sp, opt);
            if (err != ESPANK_SUCCESS) {
                slurm_error("shifter: init: couldn't register option --%s: %s", opt->name, spank_strerror(err));
                return -1;
            }
        }
    }
    return 0;
}

/* Whether any Pyxis-style option was given. */
int pyxis_requested(void) {
    return options.container_image != NULL || options.container_mounts != NULL || options.container_workdir != NULL ||
           options.container_env != NULL || options.container_mount_home == 1 || options.container_remap_root;
}

void free_options(void) {
    char *strings[] = {options.image, options.volume, options.module, options.container_image,
                       options.container_mounts, options.container_workdir, options.container_env};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) free(strings[i]);
    memset(&options, 0, sizeof(options));
    options.container_mount_home = -1;
}

/* Takes "KEY=PATH" into path: the path must be absolute and fit. */
static int parse_path(const char *arg, size_t key_length, char *path, size_t length) {
    const char *value = arg + key_length;
    if (value[0] != '/' || strlen(value) >= length) {
        slurm_error("shifter: plugstack argument \"%s\": the path must be absolute and shorter than %zu", arg, length);
        return -1;
    }
    snprintf(path, length, "%s", value);
    return 0;
}

/* Takes "KEY=0" or "KEY=1" into flag. */
static int parse_flag(const char *arg, size_t key_length, int *flag) {
    const char *value = arg + key_length;
    if (strcmp(value, "0") != 0 && strcmp(value, "1") != 0) {
        slurm_error("shifter: plugstack argument \"%s\": expected 0 or 1", arg);
        return -1;
    }
    *flag = value[0] == '1';
    return 0;
}

/* Reads plugstack.conf arguments: defaults first, then each key=value; unknown keys are errors. */
int parse_plugin_args(int ac, char **av) {
    snprintf(config.config_path, sizeof(config.config_path), "%s", SHIFTER_DEFAULT_CONFIG);
    config.long_options = config.enable_ccm = config.pyxis_compat = 0;
    config.shifter_path[0] = '\0';
    for (int i = 0; i < ac; i++) {
        const char *arg = av[i];
        int rc;
        if (strncmp(arg, "shifter_config=", 15) == 0) {
            rc = parse_path(arg, 15, config.config_path, sizeof(config.config_path));
        } else if (strcmp(arg, "long_options") == 0) {
            config.long_options = 1;
            rc = 0;
        } else if (strncmp(arg, "enable_ccm=", 11) == 0) {
            rc = parse_flag(arg, 11, &config.enable_ccm);
        } else if (strncmp(arg, "pyxis_compat=", 13) == 0) {
            rc = parse_flag(arg, 13, &config.pyxis_compat);
        } else if (strncmp(arg, "shifter_path=", 13) == 0) {
            rc = parse_path(arg, 13, config.shifter_path, sizeof(config.shifter_path));
        } else {
            slurm_error("shifter: plugstack argument \"%s\" is unknown (known: shifter_config=PATH, "
                        "long_options, enable_ccm=0|1, pyxis_compat=0|1, shifter_path=PATH)", arg);
            rc = -1;
        }
        if (rc != 0) return -1;
    }
    return 0;
}
