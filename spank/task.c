/*
 * The task side (slurmstepd): a step finds the job's prepared root and gives its tasks the image
 * to enter; a task of a Pyxis-style step execs the command libshifter gives it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shifter_spank.h"

/* Why this node's prolog failed for the job, when it did; each task of the step reports it. */
static char prolog_failure[4096];

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
int step(spank_t sp) {
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
        slurm_error("shifter: step: job %u: %s [%s]", job_id, msg, status_kind(status));
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

/* A task of a Pyxis-style step (--container-image) runs inside the container, as under Pyxis: it
 * becomes the command libshifter plans for it. Returns only on failure, having said why. */
static void enter_container(spank_t sp) {
    int argc = 0;
    char **argv = NULL, **env = NULL, **command = NULL, **command_env = NULL;
    char msg[2048];
    Dl_info plugin;
    struct shifter_task_request request = {.size = sizeof(request), .workdir = options.container_workdir,
                                           .env_names = options.container_env, .shifter_path = config.shifter_path};
    spank_err_t err = spank_get_item(sp, S_JOB_ARGV, &argc, &argv);
    if (err == ESPANK_SUCCESS) err = spank_get_item(sp, S_JOB_ENV, &env);
    if (err != ESPANK_SUCCESS) {
        fprintf(stderr, "shifter: task: couldn't read the task's command and environment from Slurm: %s\n",
                spank_strerror(err));
        goto fail;
    }
    request.argc = argc;
    request.argv = argv;
    request.envp = env;
    if (dladdr((void *)enter_container, &plugin) != 0) request.plugin_path = plugin.dli_fname;
    if (job_item(sp, S_JOB_ID, "SLURM_JOB_ID", &request.job_id) != 0) request.job_id = 0;
    if (spank_get_item(sp, S_JOB_STEPID, &request.step_id) != ESPANK_SUCCESS) request.step_id = 0;
    int status = shifter_task_command(&request, &command, &command_env, msg, sizeof(msg));
    if (status != SHIFTER_OK) {
        fprintf(stderr, "shifter: task: %s [%s]\n", msg, status_kind(status));
        goto fail;
    }
    execve(command[0], command, command_env);
    fprintf(stderr, "shifter: task: couldn't run %s: %s\n", command[0], strerror(errno));
fail:
    shifter_strings_free(command);
    shifter_strings_free(command_env);
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
    if (options.container_image != NULL) {
        enter_container(sp);
        fflush(stderr);
        _exit(127);
    }
    return 0;
}
