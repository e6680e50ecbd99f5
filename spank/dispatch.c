/*
 * shifter_spank: the Slurm side of Shifter. This file holds the SPANK entry points, each of which
 * hands its context to the file that serves it, and the helpers all of them use.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "shifter_spank.h"

SPANK_PLUGIN(shifter, 1)

/* Sends libshifter's messages to Slurm's log. */
void log_bridge(int level, const char *message) {
    if (level == SHIFTER_LOG_ERROR) {
        slurm_error("%s", message);
    } else if (level == SHIFTER_LOG_INFO) {
        slurm_info("%s", message);
    } else {
        slurm_debug("%s", message);
    }
}

/* This node's name as Slurm knows it, for messages. */
const char *node_name(void) {
    static char host[256];
    const char *name = getenv("SLURMD_NODENAME");
    if (name != NULL && *name != '\0') return name;
    if (gethostname(host, sizeof(host) - 1) != 0) return "unknown";
    return host;
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

/* Loads the site configuration; on failure logs it, prefixed with the phase. */
shifter_config *load_config(const char *phase) {
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
int job_item(spank_t sp, spank_item_t item, const char *variable, uint32_t *out) {
    union { uint32_t id; uid_t uid; gid_t gid; } value;
    if (spank_get_item(sp, item, &value) == ESPANK_SUCCESS) {
        *out = item == S_JOB_ID ? value.id : item == S_JOB_UID ? (uint32_t)value.uid : (uint32_t)value.gid;
        return 0;
    }
    const char *text = getenv(variable);
    if (text == NULL || *text == '\0') return -1;
    char *end = NULL;
    errno = 0;
    unsigned long parsed = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || parsed > UINT32_MAX) return -1;
    *out = (uint32_t)parsed;
    return 0;
}

int slurm_spank_init(spank_t sp, int ac, char **av) {
    if (parse_plugin_args(ac, av) != 0) return -1;
    shifter_set_log_handler(log_bridge);
    return register_options(sp);
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

int slurm_spank_task_init(spank_t sp, int ac, char **av) {
    (void)ac; (void)av;
    return task_init(sp);
}

/* slurmd runs the prolog and epilog in processes of their own that do not call slurm_spank_init. */
int slurm_spank_job_prolog(spank_t sp, int ac, char **av) {
    if (parse_plugin_args(ac, av) != 0) return -1;
    shifter_set_log_handler(log_bridge);
    return job_prolog(sp);
}

int slurm_spank_job_epilog(spank_t sp, int ac, char **av) {
    if (parse_plugin_args(ac, av) != 0) return -1;
    shifter_set_log_handler(log_bridge);
    return job_epilog(sp);
}

int slurm_spank_exit(spank_t sp, int ac, char **av) {
    (void)sp; (void)ac; (void)av;
    free_options();
    return 0;
}
