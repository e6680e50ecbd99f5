/*
 * libshifter: the C ABI of the Shifter node runtime.
 *
 * Every function that can fail returns SHIFTER_OK (0) or a negative SHIFTER_E* status, and writes a
 * one-line message saying what failed, on what and why into (msg, msglen), NUL-terminated and
 * truncated to fit. msg may be NULL when msglen is 0. No function throws, traps or exits, so the
 * library is safe inside slurmd and slurmstepd. The library never unloads (it is linked -z nodelete).
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
    SHIFTER_EINVAL = -2,    /* a request (image, volumes, modules) is invalid or not allowed */
    SHIFTER_ESYSTEM = -3,   /* building or removing a container root failed */
    SHIFTER_ENOTFOUND = -4, /* no such prepared root */
    SHIFTER_EPROLOG = -5,   /* the job's prolog failed on this node; msg holds its reason */
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

/**
 * Checks a job's request at submission for the user uid (with its groups), and resolves the image
 * to its id. `volumes` and `modules` may be NULL. On success `image_id` receives "id:sha256:HEX"
 * (or "local:/path") and `volumes_out` the volumes in canonical form (";"-separated, may be empty).
 */
int shifter_request_validate(const shifter_config *config, const char *image, const char *volumes,
                             const char *modules, uint32_t uid, char *image_id, size_t image_id_len,
                             char *volumes_out, size_t volumes_out_len, char *msg, size_t msglen);

/**
 * Translates Pyxis-style options (--container-image, --container-mounts, --container-workdir,
 * --container-env, --container-mount-home: 1, --no-container-mount-home: 0, neither: -1,
 * --container-remap-root: 1) of user uid, submitting from the current directory, into Shifter's
 * image reference and volumes, which shifter_request_validate then checks. The home directory is
 * in a container only where a siteFs entry of config brings it. Any string may be
 * NULL. Returns SHIFTER_EINVAL with the option and the reason in msg when one cannot be taken.
 */
int shifter_pyxis_request(const shifter_config *config, const char *image, const char *mounts, const char *workdir, const char *env_names,
                          int mount_home, int remap_root, uint32_t uid, char *image_out, size_t image_out_len,
                          char *volumes_out, size_t volumes_out_len, char *msg, size_t msglen);

/**
 * Job prolog: builds the container root of job `job_id` on this node for uid:gid, with the image
 * (normally "id:sha256:HEX"), volumes and modules (either may be NULL). On failure nothing is left
 * mounted, and the reason is kept for shifter_job_status.
 */
int shifter_job_prolog(const shifter_config *config, uint32_t job_id, uint32_t uid, uint32_t gid,
                       const char *image, const char *volumes, const char *modules, char *msg, size_t msglen);

/**
 * Job prolog as shifter_job_prolog, and, where ssh_keys is not NULL or empty (the job's keys from
 * shifter_ssh_keys, asked for with --ccm), the job's sshd in the root, started as the user and
 * listening on the port udiRoot.conf gives node `node` (sshPort, sshNodePorts; node may be NULL).
 */
int shifter_job_prolog_ssh(const shifter_config *config, uint32_t job_id, uint32_t uid, uint32_t gid,
                           const char *image, const char *volumes, const char *modules, const char *ssh_keys,
                           const char *node, char *msg, size_t msglen);

/**
 * At submission of a job with --ccm: makes the job's key pairs (the user's and its sshd's) with the
 * site's ssh-keygen (sshPath) as the calling user, and writes them into `keys` as one line for the
 * job's environment (under 2 KiB). SHIFTER_EINVAL when the site has no sshPath.
 */
int shifter_ssh_keys(const shifter_config *config, char *keys, size_t keys_len, char *msg, size_t msglen);

/**
 * Job epilog: kills what still runs in the job's root on this node, unmounts everything, releases
 * the loop devices and removes the directories. Idempotent; correct after a failed or partial
 * prolog. Returns SHIFTER_ESYSTEM when something could not be removed.
 */
int shifter_job_epilog(const shifter_config *config, uint32_t job_id, char *msg, size_t msglen);

/**
 * The prepared root of job `job_id` on this node, for the user uid: SHIFTER_OK with the image id
 * and the volumes it was built with, SHIFTER_ENOTFOUND when there is none (or not for this user),
 * SHIFTER_EPROLOG when the prolog failed (msg holds why).
 */
int shifter_job_status(const shifter_config *config, uint32_t job_id, uint32_t uid, char *image_id,
                       size_t image_id_len, char *volumes, size_t volumes_len, char *msg, size_t msglen);

/**
 * The `shifter` command: enters the job's prepared root or builds a private one, and execs the
 * command. Returns only when it could not (with the exit status to use).
 */
int shifter_main(int argc, char *const argv[], char *const envp[]);

#ifdef __cplusplus
}
#endif

#endif /* SHIFTER_H */
