/*
 * libshifter: the C ABI of the Shifter node runtime.
 *
 * Every function that can fail returns SHIFTER_OK (0) or a negative SHIFTER_E* status, and writes a
 * one-line message saying what failed, on what and why into (msg, msglen), NUL-terminated and
 * truncated to fit. msg may be NULL when msglen is 0. No function throws, traps or exits, so the
 * library is safe inside slurmd and slurmstepd. The library never unloads (it is linked -z nodelete).
 *
 * The ABI grows by fields, never by functions. An operation that takes a request struct reads its
 * first field, `size`, which the caller sets to sizeof the struct it was compiled with (as clone3's
 * struct clone_args and openat2's struct open_how do). New fields go at the end, and a new
 * SHIFTER_*_SIZE_VER<n> names each size. The library reads a smaller, older struct as if the fields
 * it lacks were zero (NULL), and refuses with SHIFTER_EINVAL a larger, newer one whose fields
 * beyond those it knows are not all zero, and any smaller than the first version.
 */
#ifndef SHIFTER_H
#define SHIFTER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    SHIFTER_OK = 0,
    SHIFTER_ECONFIG = -1,   /* the site configuration is missing, unsafe or invalid */
    SHIFTER_EINVAL = -2,    /* the request is invalid: a malformed image, volume, module or option,
                               or a request struct this library cannot read */
    SHIFTER_ESYSTEM = -3,   /* the node failed: a mount, loop device, lookup or helper program */
    SHIFTER_ENOTFOUND = -4, /* what the request names does not exist: an image, a prepared root */
    SHIFTER_EPROLOG = -5,   /* the job's prolog failed on this node; msg holds its reason */
    SHIFTER_EPERM = -6,     /* the user may not have what was asked: a private image, a local
                               image where the site allows none, a container for root */
};

/* Message levels passed to the log handler. */
enum {
    SHIFTER_LOG_ERROR = 0,
    SHIFTER_LOG_INFO = 1,
    SHIFTER_LOG_DEBUG = 2,
};

/** A loaded site configuration (udiRoot.conf). */
typedef struct shifter_config shifter_config;

/** Receives the library's messages; `message` is one line without a newline. */
typedef void (*shifter_log_handler)(int level, const char *message);

/** The library version, a static NUL-terminated string. */
const char *shifter_version(void);

/** Sends the library's messages to `handler` (NULL: discard them). */
void shifter_set_log_handler(shifter_log_handler handler);

/**
 * Loads and checks the site configuration at `path` (NULL: the compiled-in path). The file must be
 * owned by root and not writable by group or others. On success *config must be freed with
 * shifter_config_free.
 */
int shifter_config_load(const char *path, shifter_config **config, char *msg, size_t msglen);

/** Frees a configuration from shifter_config_load. NULL is ignored. */
void shifter_config_free(shifter_config *config);

/** A job's request at submission (see shifter_request_validate). */
struct shifter_validate_request {
    size_t size;                  /* sizeof(struct shifter_validate_request) */
    uint32_t uid;                 /* the submitting user, checked with its groups */
    const char *image;
    const char *volumes;          /* may be NULL */
    const char *modules;          /* may be NULL */
};
#define SHIFTER_VALIDATE_REQUEST_SIZE_VER0 40

/**
 * Checks a job's request at submission, and resolves the image to its id. On success `image_id`
 * receives "id:sha256:HEX" (or "local:/path") and `volumes_out` the volumes in canonical form
 * (";"-separated, may be empty).
 */
int shifter_request_validate(const shifter_config *config, const struct shifter_validate_request *request,
                             char *image_id, size_t image_id_len, char *volumes_out, size_t volumes_out_len,
                             char *msg, size_t msglen);

/** What sbatch, salloc or srun was given (see shifter_submit). */
struct shifter_submit_request {
    size_t size;                  /* sizeof(struct shifter_submit_request) */
    const char *config_path;      /* udiRoot.conf; NULL: the compiled-in path. Read only when needed */
    uint32_t uid;                 /* the submitting user */
    int32_t srun;                 /* 1: srun (Slurm's local context); 0: sbatch or salloc */
    int32_t long_options;         /* the options are --shifter-image and --shifter-volume */
    int32_t ccm;                  /* --ccm */
    int32_t mount_home;           /* --container-mount-home: 1, --no-container-mount-home: 0, neither: -1 */
    int32_t remap_root;           /* --container-remap-root: 1 */
    const char *image;            /* --image; any string may be NULL */
    const char *volume;           /* --volume */
    const char *module;           /* --module */
    const char *container_image;  /* the Pyxis-style options (pyxis_compat=1) */
    const char *container_mounts;
    const char *container_workdir;
    const char *container_env;
    char *const *envp;            /* the command's environment */
    /* Version 1: Pyxis' other options, and its variables. */
    int32_t pyxis_compat;         /* plugstack pyxis_compat=1: envp's PYXIS_CONTAINER_* stand for options not given */
    int32_t container_writable;   /* --container-writable: 1, --container-readonly: -1, neither: 0 */
    int32_t container_entrypoint; /* --container-entrypoint: 1, --no-container-entrypoint: -1, neither: 0 */
    int32_t container_entrypoint_log; /* --container-entrypoint-log: 1 */
    const char *container_name;
    const char *container_save;
    const char *container_unshare;
    /* Version 2: CDI devices. */
    const char *device;           /* --device: CDI names, comma-separated (vendor.com/class=name) */
};
#define SHIFTER_SUBMIT_REQUEST_SIZE_VER0 104
#define SHIFTER_SUBMIT_REQUEST_SIZE_VER1 144
#define SHIFTER_SUBMIT_REQUEST_SIZE_VER2 152

/**
 * Submission: checks the request, resolves the image and decides what the job and, for an srun
 * inside a job, the step are told. *job_env receives "NAME=VALUE" entries for
 * spank_job_control_setenv, *srun_env those for srun's own environment (which srun hands to the
 * tasks), both NULL-terminated, for shifter_strings_free; either may be empty. On SHIFTER_OK, msg
 * holds a notice for the user, or "".
 */
int shifter_submit(const struct shifter_submit_request *request, char ***job_env, char ***srun_env,
                   char *msg, size_t msglen);

/** Pyxis-style options, as given at submission (see shifter_pyxis_request). */
struct shifter_pyxis_options {
    size_t size;                  /* sizeof(struct shifter_pyxis_options) */
    uint32_t uid;                 /* the submitting user */
    int32_t mount_home;           /* --container-mount-home: 1, --no-container-mount-home: 0, neither: -1 */
    int32_t remap_root;           /* --container-remap-root: 1 */
    const char *image;            /* --container-image */
    const char *mounts;           /* --container-mounts */
    const char *workdir;          /* --container-workdir */
    const char *env_names;        /* --container-env */
};
#define SHIFTER_PYXIS_OPTIONS_SIZE_VER0 56

/**
 * Translates Pyxis-style options of the user, submitting from the current directory, into
 * Shifter's image reference and volumes, which shifter_request_validate then checks. The home
 * directory is in a container only where a siteFs entry of config brings it. Any string may be
 * NULL. Returns SHIFTER_EINVAL with the option and the reason in msg when one cannot be taken.
 */
int shifter_pyxis_request(const shifter_config *config, const struct shifter_pyxis_options *options,
                          char *image_out, size_t image_out_len, char *volumes_out, size_t volumes_out_len,
                          char *msg, size_t msglen);

/** A job's prolog on one node (see shifter_job_prolog). */
struct shifter_prolog_request {
    size_t size;                  /* sizeof(struct shifter_prolog_request) */
    uint32_t job_id;
    uint32_t uid;
    uint32_t gid;
    const char *image;            /* normally "id:sha256:HEX" */
    const char *volumes;          /* may be NULL */
    const char *modules;          /* may be NULL */
    /* SHIFTER_PROLOG_REQUEST_SIZE_VER1: */
    const char *ssh_keys;         /* the job's keys from shifter_ssh_keys (--ccm); NULL or "": no sshd */
    const char *node;             /* this node's name, for sshNodePorts and the job's cgroup; may be NULL */
    /* SHIFTER_PROLOG_REQUEST_SIZE_VER2: */
    const char *devices;          /* the job's CDI devices (SHIFTER_DEVICE from submission); may be NULL */
    char *const *envp;            /* the prolog's environment (SLURM_JOB_GPUS for cdiSlurmGpuKind); may be NULL */
};
#define SHIFTER_PROLOG_REQUEST_SIZE_VER0 48
#define SHIFTER_PROLOG_REQUEST_SIZE_VER1 64
#define SHIFTER_PROLOG_REQUEST_SIZE_VER2 80

/**
 * Job prolog: builds the container root of the job on this node for uid:gid, with the image,
 * volumes and modules and, where ssh_keys is given, the job's sshd, started as the user and
 * listening on the port udiRoot.conf gives the node (sshPort, sshNodePorts). On failure nothing is
 * left mounted, and the reason is kept for shifter_job_status. Logs how long the build took
 * (wall and CPU time) at SHIFTER_LOG_INFO. Fails with SHIFTER_EINVAL, SHIFTER_EPERM,
 * SHIFTER_ENOTFOUND or SHIFTER_ESYSTEM by what went wrong.
 */
int shifter_job_prolog(const shifter_config *config, const struct shifter_prolog_request *request,
                       char *msg, size_t msglen);

/**
 * At submission of a job with --ccm: makes the job's key pairs (the user's and its sshd's) with the
 * site's ssh-keygen (sshPath) as the calling user, and writes them into `keys` as one line for the
 * job's environment (under 2 KiB). SHIFTER_EINVAL when the site has no sshPath.
 */
int shifter_ssh_keys(const shifter_config *config, char *keys, size_t keys_len, char *msg, size_t msglen);

/**
 * Job epilog: ends the job's sshd and its sessions on this node (its cgroup, named by
 * SLURMD_NODENAME as the prolog named it), kills what still runs in the job's root, unmounts
 * everything, releases the loop devices and removes the directories. Idempotent; correct after a
 * failed or partial prolog. Returns SHIFTER_ESYSTEM when something could not be removed, a loop
 * device of the job still bound included.
 */
int shifter_job_epilog(const shifter_config *config, uint32_t job_id, char *msg, size_t msglen);

/**
 * The prepared root of job `job_id` on this node, for the user uid: SHIFTER_OK with the image id
 * and the volumes it was built with, SHIFTER_ENOTFOUND when there is none (or not for this user),
 * SHIFTER_EPROLOG when the prolog failed (msg holds why).
 */
int shifter_job_status(const shifter_config *config, uint32_t job_id, uint32_t uid, char *image_id,
                       size_t image_id_len, char *volumes, size_t volumes_len, char *msg, size_t msglen);

/** A job step in slurmstepd (see shifter_step_environment). */
struct shifter_step_request {
    size_t size;                  /* sizeof(struct shifter_step_request) */
    const char *config_path;      /* udiRoot.conf; NULL: the compiled-in path */
    uint32_t job_id;
    uint32_t uid;
    const char *module;           /* --module; may be NULL */
    char *const *envp;            /* the step's environment, from Slurm's S_JOB_ENV */
    /* Version 1: a step's own root (entryMode=userns). */
    uint32_t step_id;             /* Slurm's S_JOB_STEPID */
    uint32_t gid;                 /* the job's group, Slurm's S_JOB_GID */
};
#define SHIFTER_STEP_REQUEST_SIZE_VER0 40
#define SHIFTER_STEP_REQUEST_SIZE_VER1 48

/**
 * A job step: *env_out receives the "NAME=VALUE" entries to set in the tasks' environment
 * (NULL-terminated, for shifter_strings_free; empty when the step has no container). Returns
 * SHIFTER_EPROLOG when the job's prolog failed on this node, with the line each task reports in
 * msg. A site configuration that cannot be read is logged and gives no entries: a job that asked
 * for a container fails in its prolog, which needs the same configuration.
 * Where the site enters containers through namespaces (entryMode=userns) and the step asked for
 * another image or other volumes than the job's (a version 1 request, made as root), the step's own
 * root is built here on this node, as the prolog builds the job's, for the tasks to join; its
 * failure is SHIFTER_EPROLOG as well, with the reason.
 */
int shifter_step_environment(const struct shifter_step_request *request, char ***env_out, char *msg, size_t msglen);

/**
 * The end of a job step in slurmstepd, as root, once its tasks have ended: removes the step's own
 * root on this node, where shifter_step_environment built one. SHIFTER_OK where the step had none;
 * SHIFTER_ESYSTEM, with what was left in msg, where something could not be removed (the job's
 * epilog tries again).
 */
int shifter_step_end(const struct shifter_step_request *request, char *msg, size_t msglen);

/** A task of a Pyxis-style step, which runs inside the job's container (see shifter_task_command). */
struct shifter_task_request {
    size_t size;                  /* sizeof(struct shifter_task_request) */
    uint32_t job_id;
    uint32_t step_id;             /* SLURM_BATCH_SCRIPT (0xfffffffb) for the batch step */
    int32_t argc;                 /* the task's command, from Slurm's S_JOB_ARGV */
    char *const *argv;
    char *const *envp;            /* the task's environment, from Slurm's S_JOB_ENV */
    const char *workdir;          /* --container-workdir; NULL: the image's, else the current directory */
    const char *env_names;        /* --container-env; may be NULL */
    const char *shifter_path;     /* plugstack shifter_path=; NULL or "": PREFIX/bin/shifter for */
    const char *plugin_path;      /* the calling plugin's file, PREFIX/lib/shifter/shifter_spank.so */
    /* Version 1 */
    const char *container_image;  /* --container-image as given; NULL: envp's PYXIS_CONTAINER_IMAGE decides */
};
#define SHIFTER_TASK_REQUEST_SIZE_VER0 72
#define SHIFTER_TASK_REQUEST_SIZE_VER1 80

/**
 * What a task execs instead of its command where it belongs to a Pyxis-style step (pyxis_compat=1:
 * --container-image, or PYXIS_CONTAINER_IMAGE in its environment, the option winning): *argv_out
 * (argv_out[0] is the shifter command's path) and *envp_out, NULL-terminated arrays the caller
 * passes to execve and frees with shifter_strings_free when it does not exec. Both are NULL, with
 * SHIFTER_OK, for a task that runs as it is. workdir and env_names, where NULL, are taken from
 * PYXIS_CONTAINER_WORKDIR and PYXIS_CONTAINER_ENV likewise. For the batch step the script, which
 * lies outside the container, is opened here and runs as /proc/self/fd/N (the descriptor is left
 * open across exec).
 */
int shifter_task_command(const struct shifter_task_request *request, char ***argv_out, char ***envp_out,
                         char *msg, size_t msglen);

/** The SPANK plugin's plugstack.conf arguments (see shifter_read_plugin_arguments). */
struct shifter_plugin_arguments {
    size_t size;                  /* sizeof(struct shifter_plugin_arguments) */
    char config_path[4096];       /* shifter_config=; the compiled-in path where not given */
    char shifter_path[4096];      /* shifter_path=; "" for PREFIX/bin/shifter beside the plugin */
    int32_t long_options;         /* long_options: --shifter-image, --shifter-volume, --shifter-module */
    int32_t enable_ccm;           /* enable_ccm=1: --ccm */
    int32_t pyxis_compat;         /* pyxis_compat=1: Pyxis' options and variables */
};
#define SHIFTER_PLUGIN_ARGUMENTS_SIZE_VER0 8216

/**
 * Reads the plugin's plugstack.conf arguments (argv[0..argc-1], as Slurm gives them) into *out,
 * whose size the caller sets. Returns SHIFTER_EINVAL, with the argument and the reason in msg,
 * for an unknown argument, a flag that is not 0 or 1, or a path that is not absolute or too long.
 */
int shifter_read_plugin_arguments(int argc, char *const argv[], struct shifter_plugin_arguments *out, char *msg,
                                  size_t msglen);

/** Frees a NULL-terminated array of strings from the library, and its strings, which it zeroes
 * first (they may hold keys). NULL is ignored. */
void shifter_strings_free(char **strings);

/**
 * The `shifter` command: enters the job's prepared root or builds a private one, and execs the
 * command. Returns only when it could not (with the exit status to use).
 */
int shifter_main(int argc, char *const argv[], char *const envp[]);

#ifdef __cplusplus
}
#endif

#endif /* SHIFTER_H */
