/*
 * The plugin's configuration (plugstack.conf arguments) and the options it adds to sbatch, salloc
 * and srun. The option callbacks only store what was given; libshifter judges it.
 */
#include <stdlib.h>
#include <string.h>

#include "shifter_spank.h"

struct shifter_plugin_arguments config;
struct plugin_options options = {.container_mount_home = -1};

/* The options that take a string, by the `val` their table entries pass to option_string. */
enum string_option { OPT_IMAGE, OPT_VOLUME, OPT_MODULE, OPT_CONTAINER_IMAGE, OPT_CONTAINER_MOUNTS, OPT_CONTAINER_WORKDIR,
                     OPT_CONTAINER_ENV, OPT_CONTAINER_NAME, OPT_CONTAINER_SAVE, OPT_CONTAINER_UNSHARE, OPT_DEVICE };

static int option_string(int val, const char *optarg, int remote) {
    (void)remote;
    char **slots[] = {&options.image, &options.volume, &options.module, &options.container_image,
                      &options.container_mounts, &options.container_workdir, &options.container_env,
                      &options.container_name, &options.container_save, &options.container_unshare, &options.device};
    char *copy = strdup(optarg ? optarg : "");
    if (copy == NULL) {
        slurm_error("shifter: option: out of memory");
        return -1;
    }
    free(*slots[val]);
    *slots[val] = copy;
    return 0;
}

/* The options that take no value, by the `val` their table entries pass to option_flag: the slot
 * times two, plus 1 for the option and 0 for its opposite (a --no- form, or --container-readonly),
 * which sets what the slot's `off` says. The last one given wins. */
enum flag_option { FLAG_MOUNT_HOME = 0, FLAG_REMAP_ROOT = 2, FLAG_CCM = 4, FLAG_WRITABLE = 6, FLAG_ENTRYPOINT = 8,
                   FLAG_ENTRYPOINT_LOG = 10 };

static int option_flag(int val, const char *optarg, int remote) {
    (void)optarg; (void)remote;
    struct { int *slot, off; } slots[] = {
        {&options.container_mount_home, 0}, {&options.container_remap_root, 0}, {&options.ccm, 0},
        {&options.container_writable, -1}, {&options.container_entrypoint, -1}, {&options.container_entrypoint_log, 0}};
    *slots[val / 2].slot = val % 2 ? 1 : slots[val / 2].off;
    return 0;
}

#define STRING_OPTION(name, arginfo, usage, val) {name, arginfo, usage, 1, val, (spank_opt_cb_f)option_string}
#define FLAG_OPTION(name, usage, val) {name, NULL, usage, 0, val, (spank_opt_cb_f)option_flag}

static struct spank_option option_table[] = {
    STRING_OPTION("image", "image", "Container image to run the job in (e.g. docker:ubuntu:22.04)", OPT_IMAGE),
    STRING_OPTION("volume", "volumes", "Volumes to mount in the container (FROM:TO[:FLAGS], ';'-separated)", OPT_VOLUME),
    STRING_OPTION("module", "modules", "Site modules to load in the container (comma-separated, or none)", OPT_MODULE),
    STRING_OPTION("device", "devices", "CDI devices for the job's container (e.g. nvidia.com/gpu=0, comma-separated)", OPT_DEVICE),
    SPANK_OPTIONS_TABLE_END,
};

/* enable_ccm=1: the job's container gets an sshd on each node, as Shifter's CCM mode did. */
static struct spank_option ccm_option_table[] = {
    FLAG_OPTION("ccm", "Start an sshd in the job's container on each node, so that ssh from one node of the job "
                       "reaches the container on the others (needs --image)", FLAG_CCM + 1),
    SPANK_OPTIONS_TABLE_END,
};

/* pyxis_compat=1: Pyxis' names and meanings, for job scripts written for Pyxis. */
static struct spank_option pyxis_option_table[] = {
    STRING_OPTION("container-image", "[USER@][REGISTRY#]IMAGE[:TAG]|PATH",
                  "[pyxis] the image to run the tasks in (a Docker image, or the path of an unpacked image directory)",
                  OPT_CONTAINER_IMAGE),
    STRING_OPTION("container-mounts", "SRC:DST[:FLAGS][,SRC:DST...]",
                  "[pyxis] bind mount[s] inside the container; flags separated with \"+\", e.g. \"ro\"", OPT_CONTAINER_MOUNTS),
    STRING_OPTION("container-workdir", "PATH", "[pyxis] working directory inside the container", OPT_CONTAINER_WORKDIR),
    STRING_OPTION("container-env", "NAME[,NAME...]",
                  "[pyxis] names of environment variables whose host value is set in the container over the image's",
                  OPT_CONTAINER_ENV),
    FLAG_OPTION("container-mount-home", "[pyxis] bind mount the user's home directory", FLAG_MOUNT_HOME + 1),
    FLAG_OPTION("no-container-mount-home", "[pyxis] do not bind mount the user's home directory (the default)",
                FLAG_MOUNT_HOME),
    FLAG_OPTION("container-remap-root", "[pyxis] refused: containers run as the submitting user, never as root",
                FLAG_REMAP_ROOT + 1),
    FLAG_OPTION("no-container-remap-root", "[pyxis] do not remap to root inside the container (always so)",
                FLAG_REMAP_ROOT),
    STRING_OPTION("container-name", "NAME", "[pyxis] refused: named containers are not supported", OPT_CONTAINER_NAME),
    STRING_OPTION("container-save", "PATH", "[pyxis] refused: import images with shifterimg instead", OPT_CONTAINER_SAVE),
    FLAG_OPTION("container-writable", "[pyxis] refused: containers are not writable", FLAG_WRITABLE + 1),
    FLAG_OPTION("container-readonly", "[pyxis] make the container read-only (always so)", FLAG_WRITABLE),
    FLAG_OPTION("container-entrypoint", "[pyxis] refused: the image's entrypoint is not run; name it as the command",
                FLAG_ENTRYPOINT + 1),
    FLAG_OPTION("no-container-entrypoint", "[pyxis] do not run the image's entrypoint (always so)", FLAG_ENTRYPOINT),
    FLAG_OPTION("container-entrypoint-log", "[pyxis] show the entrypoint's output (no entrypoint runs)",
                FLAG_ENTRYPOINT_LOG + 1),
    STRING_OPTION("container-unshare", "NS[,NS...]", "[pyxis] refused: the container shares the node's namespaces",
                  OPT_CONTAINER_UNSHARE),
    SPANK_OPTIONS_TABLE_END,
};

/* Registers the options; sbatch shows only options registered here, not a static spank_options table.
 * long_options: the same options under names that cannot clash with another plugin's. */
int register_options(spank_t sp) {
    if (config.long_options) {
        static char *long_names[] = {"shifter-image", "shifter-volume", "shifter-module", "shifter-device"};
        for (size_t i = 0; i < sizeof(long_names) / sizeof(long_names[0]); i++) option_table[i].name = long_names[i];
    }
    struct spank_option *tables[] = {option_table, config.enable_ccm ? ccm_option_table : NULL,
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

void free_options(void) {
    char *strings[] = {options.image, options.volume, options.module, options.container_image,
                       options.container_mounts, options.container_workdir, options.container_env,
                       options.container_name, options.container_save, options.container_unshare, options.device};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) free(strings[i]);
    options = (struct plugin_options){.container_mount_home = -1};
}

/* Reads the plugstack.conf arguments: libshifter judges them and fills config. */
int parse_plugin_args(int ac, char **av) {
    char msg[1024];
    config = (struct shifter_plugin_arguments){.size = sizeof(config)};
    if (shifter_read_plugin_arguments(ac, av, &config, msg, sizeof(msg)) == SHIFTER_OK) return 0;
    slurm_error("shifter: %s", msg);
    return -1;
}
