/*
 * shifter_spank: the Slurm side of Shifter. This file holds the SPANK entry points, each of which
 * hands its context to the file that serves it, and the helpers all of them use.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shifter_spank.h"

SPANK_PLUGIN(shifter, 1)

/* Sends libshifter's messages to Slurm's log. */
static void log_bridge(int level, const char *message) {
    if (level == SHIFTER_LOG_ERROR) slurm_error("%s", message);
    else if (level == SHIFTER_LOG_INFO) slurm_info("%s", message);
    else slurm_debug("%s", message);
}

/* What kind of failure a libshifter status is, for the end of a message. */
const char *status_kind(int status) {
    switch (status) {
    case SHIFTER_ECONFIG: return "site configuration";
    case SHIFTER_EINVAL: return "invalid request";
    case SHIFTER_EPERM: return "permission denied";
    case SHIFTER_ENOTFOUND: return "not found";
    case SHIFTER_EPROLOG: return "prolog failed";
    default: return "system error";
    }
}

/* Logs a libshifter failure, prefixed with the phase and ending with its kind; 0 for SHIFTER_OK. */
int report(const char *phase, int status, const char *msg) {
    if (status != SHIFTER_OK) slurm_error("shifter: %s: %s [%s]", phase, msg, status_kind(status));
    return status == SHIFTER_OK ? 0 : -1;
}

/* Loads the site configuration; on failure logs it, prefixed with the phase. */
shifter_config *load_config(const char *phase) {
    shifter_config *site = NULL;
    char msg[1024];
    if (shifter_config_load(config.config_path, &site, msg, sizeof(msg)) != SHIFTER_OK)
        slurm_error("shifter: %s: %s", phase, msg);
    return site;
}

/* Sets each "NAME=VALUE" of entries (NULL: none) in the job control environment, the tasks'
 * environment or this process's; logs the first that fails, prefixed with the phase. */
int set_variables(spank_t sp, enum env_target target, char **entries, const char *phase) {
    for (char **entry = entries; entry != NULL && *entry != NULL; entry++) {
        char *value = strchr(*entry, '=');
        if (value == NULL) continue;
        *value = '\0';
        int failed = target == ENV_JOB_CONTROL ? spank_job_control_setenv(sp, *entry, value + 1, 1) != ESPANK_SUCCESS
                     : target == ENV_TASKS     ? spank_setenv(sp, *entry, value + 1, 1) != ESPANK_SUCCESS
                                               : setenv(*entry, value + 1, 1) != 0;
        if (failed) slurm_error("shifter: %s: couldn't set %s for the %s", phase, *entry, target ? "tasks" : "job");
        *value = '=';
        if (failed) return -1;
    }
    return 0;
}

/* Reads a job item (S_JOB_ID, S_JOB_UID, S_JOB_GID), falling back to the environment variable
 * Slurm sets for prolog and epilog programs. */
int job_item(spank_t sp, spank_item_t item, const char *variable, uint32_t *out) {
    union { uint32_t id; uid_t uid; gid_t gid; } value;
    if (spank_get_item(sp, item, &value) == ESPANK_SUCCESS) {
        *out = item == S_JOB_ID ? value.id : item == S_JOB_UID ? (uint32_t)value.uid : (uint32_t)value.gid;
        return 0;
    }
    const char *text = getenv(variable);
    char *end = NULL;
    errno = 0;
    unsigned long parsed = text != NULL ? strtoul(text, &end, 10) : 0;
    if (text == NULL || *text == '\0' || errno != 0 || *end != '\0' || parsed > UINT32_MAX) return -1;
    *out = (uint32_t)parsed;
    return 0;
}

/* Reads the plugstack arguments and sends libshifter's messages to Slurm's log. */
static int setup(int ac, char **av) {
    if (parse_plugin_args(ac, av) != 0) return -1;
    shifter_set_log_handler(log_bridge);
    return 0;
}

int slurm_spank_init(spank_t sp, int ac, char **av) {
    return setup(ac, av) != 0 ? -1 : register_options(sp);
}

int slurm_spank_init_post_opt(spank_t sp, int ac, char **av) {
    if (parse_plugin_args(ac, av) != 0) return -1;
    switch (spank_context()) {
    case S_CTX_ALLOCATOR:
    case S_CTX_LOCAL: return submit(sp);
    case S_CTX_REMOTE: return step(sp);
    default: return 0;
    }
}

int slurm_spank_task_init(spank_t sp, int ac, char **av) {
    (void)ac; (void)av;
    return task_init(sp);
}

/* slurmd runs the prolog and epilog in processes of their own that do not call slurm_spank_init. */
int slurm_spank_job_prolog(spank_t sp, int ac, char **av) {
    return setup(ac, av) != 0 ? -1 : job_prolog(sp);
}

int slurm_spank_job_epilog(spank_t sp, int ac, char **av) {
    return setup(ac, av) != 0 ? -1 : job_epilog(sp);
}

int slurm_spank_exit(spank_t sp, int ac, char **av) {
    (void)ac; (void)av;
    if (spank_context() == S_CTX_REMOTE) step_end(sp);
    free_options();
    return 0;
}
