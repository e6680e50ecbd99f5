/*
 * The task side (slurmstepd): libshifter gives a step's tasks the image to enter; a task of a
 * Pyxis-style step execs the command libshifter gives it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shifter_spank.h"

/* Why this node's prolog failed for the job, when it did; each task of the step reports it. */
static char prolog_failure[4096];

/* The step as Slurm gives it to slurmstepd; -1 where it cannot be identified. */
static int step_request(spank_t sp, struct shifter_step_request *r) {
    *r = (struct shifter_step_request){.size = sizeof(*r), .config_path = config.config_path, .module = options.module};
    int failed = job_item(sp, S_JOB_ID, "SLURM_JOB_ID", &r->job_id) || job_item(sp, S_JOB_UID, "SLURM_JOB_UID", &r->uid) ||
                 job_item(sp, S_JOB_GID, "SLURM_JOB_GID", &r->gid) || spank_get_item(sp, S_JOB_STEPID, &r->step_id) ||
                 spank_get_item(sp, S_JOB_ENV, &r->envp);
    return failed ? -1 : 0;
}

/* A job step: libshifter gives the tasks' environment for the job's root or the step's own (built
 * here where tasks enter through namespaces), or why the prolog or that build failed on this node,
 * which each task reports: failing the step would count as a launch failure and drain the node. */
int step(spank_t sp) {
    char **tasks = NULL, msg[sizeof(prolog_failure)];
    struct shifter_step_request request;
    if (step_request(sp, &request) != 0) return 0; /* nothing to do */
    int rv = 0, status = shifter_step_environment(&request, &tasks, msg, sizeof(msg));
    if (status == SHIFTER_EPROLOG)
        snprintf(prolog_failure, sizeof(prolog_failure), "%s", msg);
    else
        rv = status == SHIFTER_OK ? set_variables(sp, ENV_TASKS, tasks, "step") : report("step", status, msg);
    shifter_strings_free(tasks);
    return rv;
}

/* A step's end: libshifter removes the step's own root here, if any (the job's epilog retries). */
void step_end(spank_t sp) {
    char msg[2048];
    struct shifter_step_request request;
    if (step_request(sp, &request) == 0) report("step end", shifter_step_end(&request, msg, sizeof(msg)), msg);
}

/* A task of a Pyxis-style step (pyxis_compat=1: --container-image, or PYXIS_CONTAINER_IMAGE in its
 * environment) runs inside the container, as under Pyxis: it becomes the command libshifter plans
 * for it. Returns 0 for a task that runs as it is; otherwise returns only on failure, having said
 * why. */
static int enter_container(spank_t sp) {
    char **command = NULL, **command_env = NULL, msg[2048];
    Dl_info plugin;
    struct shifter_task_request request = {.size = sizeof(request), .workdir = options.container_workdir,
                                           .env_names = options.container_env, .shifter_path = config.shifter_path,
                                           .container_image = options.container_image};
    spank_err_t err = spank_get_item(sp, S_JOB_ARGV, &request.argc, &request.argv);
    if (err == ESPANK_SUCCESS) err = spank_get_item(sp, S_JOB_ENV, &request.envp);
    if (err != ESPANK_SUCCESS) {
        fprintf(stderr, "shifter: task: couldn't read the task's command and environment from Slurm: %s\n",
                spank_strerror(err));
        goto fail;
    }
    if (dladdr((void *)enter_container, &plugin) != 0) request.plugin_path = plugin.dli_fname;
    if (job_item(sp, S_JOB_ID, "SLURM_JOB_ID", &request.job_id) != 0) request.job_id = 0;
    if (spank_get_item(sp, S_JOB_STEPID, &request.step_id) != ESPANK_SUCCESS) request.step_id = 0;
    int status = shifter_task_command(&request, &command, &command_env, msg, sizeof(msg));
    if (status != SHIFTER_OK) {
        fprintf(stderr, "shifter: task: %s [%s]\n", msg, status_kind(status));
        goto fail;
    }
    if (command == NULL) return 0;
    execve(command[0], command, command_env);
    fprintf(stderr, "shifter: task: couldn't run %s: %s\n", command[0], strerror(errno));
fail:
    shifter_strings_free(command);
    shifter_strings_free(command_env);
    return -1;
}

int task_init(spank_t sp) {
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
    if (config.pyxis_compat && enter_container(sp) != 0) {
        fflush(stderr);
        _exit(127);
    }
    return 0;
}
