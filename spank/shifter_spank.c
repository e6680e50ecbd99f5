/*
 * shifter_spank: the Slurm side of Shifter. A thin shim: it parses the plugstack arguments and the
 * --image/--volume/--module options, talks to Slurm, and hands everything else to libshifter.
 * Every message starts with "shifter: " and names the phase.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <slurm/spank.h>

#include "shifter.h"

SPANK_PLUGIN(shifter, 1)

#define SHIFTER_DEFAULT_CONFIG "/etc/shifter/udiRoot.conf"

#ifndef SLURM_BATCH_SCRIPT
#define SLURM_BATCH_SCRIPT 0xfffffffb
#endif

struct plugin_config {
    char config_path[4096];
    int long_options;
    int enable_ccm;
    int pyxis_compat;
    char shifter_path[4096]; /* the shifter command Pyxis-style tasks run in; "" for the default */
};

struct plugin_options {
    char *image;
    char *volume;
    char *module;
    /* The Pyxis-style options (pyxis_compat=1). */
    char *container_image;
    char *container_mounts;
    char *container_workdir;
    char *container_env;
    int container_mount_home; /* -1 not given, 0 --no-container-mount-home, 1 --container-mount-home */
    int container_remap_root;
    int ccm; /* --ccm (enable_ccm=1): an sshd in the job's container on each node */
};

static struct plugin_config config;
static struct plugin_options options = {.container_mount_home = -1};

/* Why this node's prolog failed for the job, when it did; each task of the step reports it. */
static char prolog_failure[4096];

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

/* The options that take a string, by the `val` their table entries pass to option_string. */
enum string_option { OPT_IMAGE, OPT_VOLUME, OPT_MODULE, OPT_CONTAINER_IMAGE, OPT_CONTAINER_MOUNTS, OPT_CONTAINER_WORKDIR,
                     OPT_CONTAINER_ENV };

static int option_string(int val, const char *optarg, int remote) {
    (void)remote;
    static const char *const names[] = {"image", "volume", "module", "container-image", "container-mounts",
                                        "container-workdir", "container-env"};
    char **slots[] = {&options.image, &options.volume, &options.module, &options.container_image,
                      &options.container_mounts, &options.container_workdir, &options.container_env};
    if (val < 0 || (size_t)val >= sizeof(slots) / sizeof(slots[0])) {
        slurm_error("shifter: option value %d is unknown to the plugin", val);
        return -1;
    }
    return set_option(slots[val], optarg, names[val]);
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

/* enable_ccm=1: the job's container gets an sshd on each node, as Shifter's CCM mode did. */
static struct spank_option ccm_option_table[] = {
    {"ccm", NULL, "Start an sshd in the job's container on each node, so that ssh from one node of the job reaches "
                  "the container on the others (needs --image)", 0, 1, (spank_opt_cb_f)option_ccm},
    SPANK_OPTIONS_TABLE_END,
};

/* Pyxis' names and meanings, for job scripts written for Pyxis. */
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

/* Whether any Pyxis-style option was given. */
static int pyxis_requested(void) {
    return options.container_image != NULL || options.container_mounts != NULL || options.container_workdir != NULL ||
           options.container_env != NULL || options.container_mount_home == 1 || options.container_remap_root;
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

static struct spank_option long_option_table[] = {
    {"shifter-image", "image", "Container image to run the job in (e.g. docker:ubuntu:22.04)", 1, OPT_IMAGE,
     (spank_opt_cb_f)option_string},
    {"shifter-volume", "volumes", "Volumes to mount in the container (FROM:TO[:FLAGS], ';'-separated)", 1,
     OPT_VOLUME, (spank_opt_cb_f)option_string},
    {"shifter-module", "modules", "Site modules to load in the container (comma-separated, or none)", 1, OPT_MODULE,
     (spank_opt_cb_f)option_string},
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
    config.pyxis_compat = 0;
    config.shifter_path[0] = '\0';
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
        } else if (strncmp(arg, "pyxis_compat=", 13) == 0) {
            if (parse_flag(arg + 13, &config.pyxis_compat) != 0) {
                slurm_error("shifter: plugstack argument \"%s\": expected 0 or 1", arg);
                goto fail;
            }
        } else if (strncmp(arg, "shifter_path=", 13) == 0) {
            const char *path = arg + 13;
            if (path[0] != '/' || strlen(path) >= sizeof(config.shifter_path)) {
                slurm_error("shifter: plugstack argument \"%s\": the path must be absolute and shorter than %zu",
                            arg, sizeof(config.shifter_path));
                goto fail;
            }
            snprintf(config.shifter_path, sizeof(config.shifter_path), "%s", path);
        } else {
            slurm_error("shifter: plugstack argument \"%s\" is unknown (known: shifter_config=PATH, "
                        "long_options, enable_ccm=0|1, pyxis_compat=0|1, shifter_path=PATH)", arg);
            goto fail;
        }
    }
    rv = 0;
fail:
    return rv;
}

/* Sends libshifter's messages to Slurm's log. */
static void log_bridge(int level, const char *message) {
    if (level == SHIFTER_LOG_ERROR) {
        slurm_error("%s", message);
    } else if (level == SHIFTER_LOG_INFO) {
        slurm_info("%s", message);
    } else {
        slurm_debug("%s", message);
    }
}

/* This node's name as Slurm knows it, for messages. */
static const char *node_name(void) {
    static char host[256];
    const char *name = getenv("SLURMD_NODENAME");
    if (name != NULL && *name != '\0') return name;
    if (gethostname(host, sizeof(host) - 1) != 0) return "unknown";
    return host;
}

/* Loads the site configuration; on failure logs it, prefixed with the phase. */
static shifter_config *load_config(const char *phase) {
    shifter_config *site = NULL;
    char msg[1024];
    if (shifter_config_load(config.config_path, &site, msg, sizeof(msg)) != SHIFTER_OK) {
        slurm_error("shifter: %s: %s", phase, msg);
        return NULL;
    }
    return site;
}

/* Reads a job item (S_JOB_ID, S_JOB_UID, S_JOB_GID), falling back to the environment variable
 * Slurm sets for prolog and epilog programs. */
static int job_item(spank_t sp, spank_item_t item, const char *variable, uint32_t *out) {
    if (item == S_JOB_ID) {
        uint32_t value;
        if (spank_get_item(sp, item, &value) == ESPANK_SUCCESS) { *out = value; return 0; }
    } else if (item == S_JOB_UID) {
        uid_t value;
        if (spank_get_item(sp, item, &value) == ESPANK_SUCCESS) { *out = (uint32_t)value; return 0; }
    } else if (item == S_JOB_GID) {
        gid_t value;
        if (spank_get_item(sp, item, &value) == ESPANK_SUCCESS) { *out = (uint32_t)value; return 0; }
    }
    const char *text = getenv(variable);
    if (text == NULL || *text == '\0') return -1;
    char *end = NULL;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || value > UINT32_MAX) return -1;
    *out = (uint32_t)value;
    return 0;
}

/* Whether this srun named --image itself, rather than carrying the job's: Slurm hands sbatch's
 * and salloc's options to the srun commands of the job through the environment, under names in
 * which every character of the plugin's and the option's names that is not a letter or a digit
 * becomes '_'. */
static int given_here(const char *option, const char *value) {
    char name[96];
    snprintf(name, sizeof(name), "SLURM_SPANK__SLURM_SPANK_OPTION_shifter_%s", option);
    const char *inherited = getenv(name);
    return value != NULL && (inherited == NULL || strcmp(inherited, value) != 0);
}

static int image_given_here(void) {
    return given_here(config.long_options ? "shifter_image" : "image", options.image) ||
           given_here("container_image", options.container_image);
}

/* Whether this srun named --volume or --container-mounts itself: its volumes then differ from the
 * job's even with the job's image, and the step builds its own container. */
static int volumes_given_here(void) {
    return given_here(config.long_options ? "shifter_volume" : "volume", options.volume) ||
           given_here("container_mounts", options.container_mounts);
}

/* srun inside an allocation whose --image (resolved to image_id) or --volume differs from the
 * job's: the nodes hold the job's prepared root, so the step's tasks are told, through
 * SHIFTER_STEP_IMAGE and SHIFTER_STEP_VOLUME, to run the step's own container instead. */
static int pass_step_container(const char *image_id, const char *volumes) {
    const char *job_image = getenv("SLURM_SPANK_SHIFTER_IMAGE");
    const char *job_volumes = getenv("SLURM_SPANK_SHIFTER_VOLUME");
    if (job_image != NULL && strcmp(job_image, image_id) == 0 && strcmp(job_volumes ? job_volumes : "", volumes) == 0)
        return 0;
    /* srun hands its own environment to the tasks (spank_setenv is for remote contexts). */
    if (setenv("SHIFTER_STEP_IMAGE", image_id, 1) != 0 || setenv("SHIFTER_STEP_VOLUME", volumes, 1) != 0) {
        slurm_error("shifter: srun: couldn't pass the step's --image to its tasks: %s", strerror(errno));
        return -1;
    }
    fprintf(stderr, "shifter: srun: this step's --image or --volume differs from the job's; each task that runs "
                    "shifter builds its own container, which starts slower than the job's prepared one\n");
    return 0;
}

/* Submission (sbatch, salloc, srun): checks the request, resolves the image to its id and hands
 * the result to the prolog through the job control environment. */
static int submit(spank_t sp) {
    int rv = -1;
    shifter_config *site = NULL;
    char image_id[4200], volumes[16384], msg[2048];
    char pyxis_image[4200], pyxis_volumes[16384];
    const char *requested_image = options.image, *requested_volumes = options.volume;
    if (pyxis_requested()) {
        if (options.image != NULL || options.volume != NULL) {
            slurm_error("shifter: submit: --image and --volume cannot be combined with the Pyxis-style --container-* options; use one kind");
            goto fail;
        }
        if ((site = load_config("submit")) == NULL) goto fail;
        if (shifter_pyxis_request(site, options.container_image, options.container_mounts, options.container_workdir,
                                  options.container_env, options.container_mount_home, options.container_remap_root,
                                  (uint32_t)getuid(), pyxis_image, sizeof(pyxis_image), pyxis_volumes,
                                  sizeof(pyxis_volumes), msg, sizeof(msg)) != SHIFTER_OK) {
            slurm_error("shifter: submit: %s", msg);
            goto fail;
        }
        requested_image = pyxis_image;
        requested_volumes = pyxis_volumes;
    }
    if (requested_image == NULL) {
        if (options.volume != NULL || options.module != NULL || options.ccm) {
            slurm_error("shifter: submit: --volume, --module and --ccm need --image");
            goto fail;
        }
        rv = 0;
        goto fail;
    }
    /* srun inside a job, carrying the job's --image (Slurm hands sbatch's options down): the image
     * was resolved at submission, once, and the nodes hold its roots. Resolving the tag again
     * would ask the gateway once per step, and fail every step while the gateway is down; the
     * job's image id stands. Only an srun --image that names another image resolves it. */
    const char *image = requested_image;
    const char *job_image = getenv("SLURM_SPANK_SHIFTER_IMAGE");
    if (spank_context() == S_CTX_LOCAL && getenv("SLURM_JOB_ID") != NULL && !image_given_here() &&
        job_image != NULL && *job_image != '\0')
        image = job_image;
    if (site == NULL && (site = load_config("submit")) == NULL) goto fail;
    if (shifter_request_validate(site, image, requested_volumes, options.module, (uint32_t)getuid(), image_id,
                                 sizeof(image_id), volumes, sizeof(volumes), msg, sizeof(msg)) != SHIFTER_OK) {
        slurm_error("shifter: submit: %s", msg);
        goto fail;
    }
    const char *names[] = {"SHIFTER_IMAGE", "SHIFTER_IMAGETYPE", "SHIFTER_VOLUME", "SHIFTER_MODULE"};
    const char *values[] = {image_id, strncmp(image_id, "local:", 6) == 0 ? "local" : "id", volumes,
                            options.module ? options.module : ""};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        spank_err_t err = spank_job_control_setenv(sp, names[i], values[i], 1);
        if (err != ESPANK_SUCCESS) {
            slurm_error("shifter: submit: couldn't pass %s=\"%s\" to the job: %s", names[i], values[i],
                        spank_strerror(err));
            goto fail;
        }
    }
    /* --ccm: the job's keys, made once for all its nodes. A step inside a job has the job's sshd,
     * if the job asked for one: the prolog has run. */
    if (options.ccm && !(spank_context() == S_CTX_LOCAL && getenv("SLURM_JOB_ID") != NULL)) {
        char keys[8192];
        if (shifter_ssh_keys(site, keys, sizeof(keys), msg, sizeof(msg)) != SHIFTER_OK) {
            slurm_error("shifter: submit: %s", msg);
            goto fail;
        }
        spank_err_t err = spank_job_control_setenv(sp, "SHIFTER_SSH", keys, 1);
        explicit_bzero(keys, sizeof(keys));
        if (err != ESPANK_SUCCESS) {
            slurm_error("shifter: submit: couldn't pass the job's sshd keys to the job: %s", spank_strerror(err));
            goto fail;
        }
    }
    if (spank_context() == S_CTX_LOCAL && getenv("SLURM_JOB_ID") != NULL && (image_given_here() || volumes_given_here()) &&
        pass_step_container(image_id, volumes) != 0)
        goto fail;
    rv = 0;
fail:
    shifter_config_free(site);
    return rv;
}

/* Gives the step's tasks SHIFTER_IMAGE, SHIFTER_IMAGETYPE and SHIFTER_VOLUME. */
static int give_tasks(spank_t sp, uint32_t job_id, const char *image_id, const char *volumes) {
    if (spank_setenv(sp, "SHIFTER_IMAGE", image_id, 1) != ESPANK_SUCCESS ||
        spank_setenv(sp, "SHIFTER_IMAGETYPE", strncmp(image_id, "local:", 6) == 0 ? "local" : "id", 1) !=
            ESPANK_SUCCESS ||
        spank_setenv(sp, "SHIFTER_VOLUME", volumes, 1) != ESPANK_SUCCESS) {
        slurm_error("shifter: step: job %u: couldn't set SHIFTER_IMAGE for the tasks", job_id);
        return -1;
    }
    return 0;
}

/* A step's own container (SHIFTER_STEP_IMAGE, set by its srun): 1 when the step has one, 0 when
 * not, -1 when it cannot be read. */
static int step_container(spank_t sp, uint32_t job_id, char *image, size_t image_len, char *volumes,
                          size_t volumes_len) {
    spank_err_t err = spank_getenv(sp, "SHIFTER_STEP_IMAGE", image, (int)image_len);
    if (err == ESPANK_ENV_NOEXIST || (err == ESPANK_SUCCESS && image[0] == '\0')) return 0;
    if (err == ESPANK_SUCCESS) {
        err = spank_getenv(sp, "SHIFTER_STEP_VOLUME", volumes, (int)volumes_len);
        if (err == ESPANK_ENV_NOEXIST) { volumes[0] = '\0'; return 1; }
        if (err == ESPANK_SUCCESS) return 1;
    }
    slurm_error("shifter: step: job %u: couldn't read the step's SHIFTER_STEP_IMAGE or SHIFTER_STEP_VOLUME: %s",
                job_id, spank_strerror(err));
    return -1;
}

/* A job step (slurmstepd): fails the step when the prolog failed on this node, and gives the
 * tasks SHIFTER_IMAGE, SHIFTER_VOLUME and SHIFTER_MODULE for the prepared root. */
static int step(spank_t sp) {
    int rv = -1;
    shifter_config *site = NULL;
    uint32_t job_id, uid;
    char image_id[4200], volumes[16384], msg[2048], step_image[4200], step_volumes[16384];
    if (job_item(sp, S_JOB_ID, "SLURM_JOB_ID", &job_id) != 0 || job_item(sp, S_JOB_UID, "SLURM_JOB_UID", &uid) != 0) {
        rv = 0; /* not a job step we can identify: nothing to do */
        goto fail;
    }
    int own = step_container(sp, job_id, step_image, sizeof(step_image), step_volumes, sizeof(step_volumes));
    if (own < 0) goto fail;
    if ((site = load_config("step")) == NULL) {
        /* Logged; a job that asked for no container must not fail for it. A job that did fails
         * in its prolog, which needs the same configuration. */
        rv = 0;
        goto fail;
    }
    int status = shifter_job_status(site, job_id, uid, image_id, sizeof(image_id), volumes, sizeof(volumes), msg,
                                    sizeof(msg));
    if (status == SHIFTER_ENOTFOUND) {
        /* No prepared root: a step with its own image builds it in each task. */
        rv = own ? give_tasks(sp, job_id, step_image, step_volumes) : 0;
        goto fail;
    }
    if (status == SHIFTER_EPROLOG) {
        /* Failing here would count as a launch failure and drain the node; each task reports the
         * reason on its stderr and exits instead, so the job fails with the reason in its output. */
        slurm_error("shifter: step: the prolog failed on node %s: %s", node_name(), msg);
        snprintf(prolog_failure, sizeof(prolog_failure), "shifter: the job's container could not be set up on node %.256s: %.2047s",
                 node_name(), msg);
        rv = 0;
        goto fail;
    }
    if (status != SHIFTER_OK) {
        slurm_error("shifter: step: job %u: %s", job_id, msg);
        goto fail;
    }
    if (own && (strcmp(step_image, image_id) != 0 || strcmp(step_volumes, volumes) != 0)) {
        slurm_info("shifter: step: job %u: the step runs its own image %s, not the prepared root's", job_id, step_image);
        if (give_tasks(sp, job_id, step_image, step_volumes) != 0) goto fail;
    } else if (give_tasks(sp, job_id, image_id, volumes) != 0) {
        goto fail;
    }
    if (options.module != NULL && spank_setenv(sp, "SHIFTER_MODULE", options.module, 1) != ESPANK_SUCCESS) {
        slurm_error("shifter: step: job %u: couldn't set SHIFTER_MODULE for the tasks", job_id);
        goto fail;
    }
    rv = 0;
fail:
    shifter_config_free(site);
    return rv;
}

int slurm_spank_init(spank_t sp, int ac, char **av) {
    int rv = -1;
    if (parse_plugin_args(ac, av) != 0) goto fail;
    shifter_set_log_handler(log_bridge);
    /* sbatch shows only options registered here, not a static spank_options table. */
    struct spank_option *tables[] = {config.long_options ? long_option_table : option_table,
                                     config.enable_ccm ? ccm_option_table : NULL,
                                     config.pyxis_compat ? pyxis_option_table : NULL};
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        if (tables[t] == NULL) continue;
        for (struct spank_option *opt = tables[t]; opt->name != NULL; opt++) {
            spank_err_t err = spank_option_register(sp, opt);
            if (err != ESPANK_SUCCESS) {
                slurm_error("shifter: init: couldn't register option --%s: %s", opt->name, spank_strerror(err));
                goto fail;
            }
        }
    }
    rv = 0;
fail:
    return rv;
}

int slurm_spank_init_post_opt(spank_t sp, int ac, char **av) {
    if (parse_plugin_args(ac, av) != 0) return -1;
    switch (spank_context()) {
    case S_CTX_ALLOCATOR:
    case S_CTX_LOCAL:
        return submit(sp);
    case S_CTX_REMOTE:
        return step(sp);
    default:
        return 0;
    }
}

/* The shifter command: shifter_path= from plugstack.conf, else PREFIX/bin/shifter for this plugin's
 * PREFIX/lib/shifter/shifter_spank.so. */
static int shifter_command(char *path, size_t length) {
    if (config.shifter_path[0] != '\0') {
        snprintf(path, length, "%s", config.shifter_path);
        return 0;
    }
    Dl_info info;
    if (dladdr((void *)shifter_command, &info) == 0 || info.dli_fname == NULL || info.dli_fname[0] != '/') return -1;
    char plugin[4096];
    snprintf(plugin, sizeof(plugin), "%s", info.dli_fname);
    for (int level = 0; level < 3; level++) { /* .../PREFIX/lib/shifter/shifter_spank.so -> PREFIX */
        char *slash = strrchr(plugin, '/');
        if (slash == NULL || slash == plugin) return -1;
        *slash = '\0';
    }
    if ((size_t)snprintf(path, length, "%s/bin/shifter", plugin) >= length) return -1;
    return 0;
}

/* A task of a Pyxis-style step (--container-image): it runs inside the container, as under Pyxis,
 * so the task becomes `shifter --workdir[=PATH] -- COMMAND...`, which
 * enters the job's prepared root (SHIFTER_IMAGE, set for the tasks by the step) as the user. The
 * batch script, which lies in slurmd's spool directory outside the container, is opened here and
 * run through /proc/self/fd. Returns only on failure, having said why. */
static void enter_container(spank_t sp) {
    int argc = 0;
    char **argv = NULL, **env = NULL;
    uint32_t step_id = 0;
    char shifter[4096], workdir[4200], script[64];
    spank_err_t err = spank_get_item(sp, S_JOB_ARGV, &argc, &argv);
    if (err == ESPANK_SUCCESS) err = spank_get_item(sp, S_JOB_ENV, &env);
    if (err != ESPANK_SUCCESS || argc < 1) {
        fprintf(stderr, "shifter: task: couldn't read the task's command and environment from Slurm: %s\n",
                err != ESPANK_SUCCESS ? spank_strerror(err) : "the command is empty");
        return;
    }
    if (shifter_command(shifter, sizeof(shifter)) != 0) {
        fprintf(stderr, "shifter: task: couldn't find the shifter command: this plugin's path is not "
                        "PREFIX/lib/shifter/shifter_spank.so (set shifter_path= in plugstack.conf)\n");
        return;
    }
    char **args = calloc((size_t)argc + 4, sizeof(char *));
    if (args == NULL) {
        fprintf(stderr, "shifter: task: out of memory\n");
        return;
    }
    size_t n = 0;
    args[n++] = shifter;
    if (options.container_workdir != NULL) {
        snprintf(workdir, sizeof(workdir), "--workdir=%s", options.container_workdir);
        args[n++] = workdir;
    } else {
        args[n++] = "--workdir"; /* the image's WORKDIR, else the current directory, else / */
    }
    /* --container-env: the names only, in SHIFTER_KEEP_ENV; shifter takes the values from its own
     * environment, since its command line can be read by every user of the node. */
    char **task_env = env;
    if (options.container_env != NULL) {
        size_t count = 0;
        while (env != NULL && env[count] != NULL) count++;
        task_env = calloc(count + 2, sizeof(char *));
        size_t length = strlen(options.container_env) + sizeof("SHIFTER_KEEP_ENV=");
        char *keep = malloc(length);
        if (task_env == NULL || keep == NULL) {
            fprintf(stderr, "shifter: task: out of memory\n");
            return;
        }
        snprintf(keep, length, "SHIFTER_KEEP_ENV=%s", options.container_env);
        size_t m = 0;
        for (size_t i = 0; i < count; i++) {
            if (strncmp(env[i], "SHIFTER_KEEP_ENV=", 17) != 0) task_env[m++] = env[i];
        }
        task_env[m++] = keep;
        task_env[m] = NULL;
    }
    args[n++] = "--";
    size_t command = n;
    for (int i = 0; i < argc; i++) args[n++] = argv[i];
    args[n] = NULL;
    if (spank_get_item(sp, S_JOB_STEPID, &step_id) == ESPANK_SUCCESS && step_id == SLURM_BATCH_SCRIPT) {
        int fd = open(argv[0], O_RDONLY);
        if (fd < 0) {
            fprintf(stderr, "shifter: task: couldn't open the batch script %s: %s\n", argv[0], strerror(errno));
            return;
        }
        snprintf(script, sizeof(script), "/proc/self/fd/%d", fd);
        args[command] = script;
    }
    execve(shifter, args, task_env);
    fprintf(stderr, "shifter: task: couldn't run %s: %s\n", shifter, strerror(errno));
}

int slurm_spank_task_init(spank_t sp, int ac, char **av) {
    (void)ac; (void)av;
    /* Slurm gives every task the job control environment as SLURM_SPANK_*: the job's sshd keys
     * (--ccm) are for the prolog alone, and must not reach the tasks' environment, where a job
     * script's `env` would print them into an output file others may read. */
    spank_err_t unset = spank_unsetenv(sp, "SLURM_SPANK_SHIFTER_SSH");
    if (unset != ESPANK_SUCCESS && unset != ESPANK_ENV_NOEXIST)
        slurm_error("shifter: task: couldn't remove SLURM_SPANK_SHIFTER_SSH from the task's environment: %s",
                    spank_strerror(unset));
    if (prolog_failure[0] != '\0') {
        fprintf(stderr, "%s\n", prolog_failure);
        fflush(stderr);
        _exit(1);
    }
    if (options.container_image != NULL) {
        enter_container(sp);
        fflush(stderr);
        _exit(127);
    }
    return 0;
}

/* User and system time of the process and of the children it has waited for, in microseconds. */
static long cpu_micros(const struct rusage *self, const struct rusage *children) {
    const struct timeval *times[] = {&self->ru_utime, &self->ru_stime, &children->ru_utime, &children->ru_stime};
    long total = 0;
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++)
        total += (long)times[i]->tv_sec * 1000000L + (long)times[i]->tv_usec;
    return total;
}

int slurm_spank_job_prolog(spank_t sp, int ac, char **av) {
    int rv = -1;
    shifter_config *site = NULL;
    uint32_t job_id = 0, uid, gid;
    char msg[2048];
    /* slurmd runs the prolog in a process of its own that does not call slurm_spank_init. */
    if (parse_plugin_args(ac, av) != 0) goto fail;
    shifter_set_log_handler(log_bridge);
    const char *image = getenv("SPANK_SHIFTER_IMAGE");
    if (image == NULL || *image == '\0') {
        rv = 0;
        goto fail;
    }
    if (job_item(sp, S_JOB_ID, "SLURM_JOB_ID", &job_id) != 0 || job_item(sp, S_JOB_UID, "SLURM_JOB_UID", &uid) != 0 ||
        job_item(sp, S_JOB_GID, "SLURM_JOB_GID", &gid) != 0) {
        slurm_error("shifter: prolog: couldn't identify the job, its user or group");
        goto fail;
    }
    if ((site = load_config("prolog")) == NULL) goto fail;
    struct timespec start, end;
    struct rusage self_before, self_after, children_before, children_after;
    getrusage(RUSAGE_SELF, &self_before);
    getrusage(RUSAGE_CHILDREN, &children_before);
    clock_gettime(CLOCK_MONOTONIC, &start);
    /* SHIFTER_SSH: the job's sshd keys (--ccm), made at submission; taken only where the site
     * offers --ccm (a job's control environment can also come from another client than ours). */
    const char *ssh_keys = config.enable_ccm ? getenv("SPANK_SHIFTER_SSH") : NULL;
    if (shifter_job_prolog_ssh(site, job_id, uid, gid, image, getenv("SPANK_SHIFTER_VOLUME"), getenv("SPANK_SHIFTER_MODULE"),
                               ssh_keys, getenv("SLURMD_NODENAME"), msg, sizeof(msg)) != SHIFTER_OK) {
        /* The reason is kept on the node, and every step of the job fails with it. Returning an
         * error here would drain the node for what is usually the user's mistake. */
        slurm_error("shifter: prolog: node %s: %s", node_name(), msg);
    } else {
        clock_gettime(CLOCK_MONOTONIC, &end);
        getrusage(RUSAGE_SELF, &self_after);
        getrusage(RUSAGE_CHILDREN, &children_after);
        long micros = (long)(end.tv_sec - start.tv_sec) * 1000000L + (end.tv_nsec - start.tv_nsec) / 1000L;
        /* CPU time (user and system, with the helpers it waited for, such as mkfs.xfs): on nodes
         * that share cores, wall time also counts waiting for them. */
        long cpu = cpu_micros(&self_after, &children_after) - cpu_micros(&self_before, &children_before);
        slurm_info("shifter: prolog: node %s: job %u: root ready in %ld.%03ld ms (cpu %ld.%03ld ms)", node_name(), job_id,
                   micros / 1000L, micros % 1000L, cpu / 1000L, cpu % 1000L);
    }
    rv = 0;
fail:
    shifter_config_free(site);
    return rv;
}

int slurm_spank_job_epilog(spank_t sp, int ac, char **av) {
    int rv = -1;
    shifter_config *site = NULL;
    uint32_t job_id;
    char msg[2048];
    if (parse_plugin_args(ac, av) != 0) goto fail;
    shifter_set_log_handler(log_bridge);
    if (job_item(sp, S_JOB_ID, "SLURM_JOB_ID", &job_id) != 0) {
        slurm_error("shifter: epilog: couldn't identify the job");
        goto fail;
    }
    if ((site = load_config("epilog")) == NULL) goto fail;
    if (shifter_job_epilog(site, job_id, msg, sizeof(msg)) != SHIFTER_OK) {
        slurm_error("shifter: epilog: %s", msg);
        goto fail;
    }
    rv = 0;
fail:
    shifter_config_free(site);
    return rv;
}

int slurm_spank_exit(spank_t sp, int ac, char **av) {
    (void)sp; (void)ac; (void)av;
    free(options.image);
    free(options.volume);
    free(options.module);
    free(options.container_image);
    free(options.container_mounts);
    free(options.container_workdir);
    free(options.container_env);
    memset(&options, 0, sizeof(options));
    options.container_mount_home = -1;
    return 0;
}
