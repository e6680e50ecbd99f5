/*
 * Submission (sbatch, salloc, srun): libshifter checks the request, resolves the image and says
 * what the job and the step are told (see docs/architecture.md); the plugin sets it.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <unistd.h>

#include "shifter_spank.h"

int submit(spank_t sp) {
    int rv = -1;
    char **job_env = NULL, **srun_env = NULL, msg[2048];
    struct shifter_submit_request request = {
        .size = sizeof(request), .config_path = config.config_path, .uid = (uint32_t)getuid(),
        .srun = spank_context() == S_CTX_LOCAL, .long_options = config.long_options, .ccm = options.ccm,
        .mount_home = options.container_mount_home, .remap_root = options.container_remap_root,
        .image = options.image, .volume = options.volume, .module = options.module,
        .container_image = options.container_image, .container_mounts = options.container_mounts,
        .container_workdir = options.container_workdir, .container_env = options.container_env, .envp = environ,
        .pyxis_compat = config.pyxis_compat, .container_writable = options.container_writable,
        .container_entrypoint = options.container_entrypoint, .container_entrypoint_log = options.container_entrypoint_log,
        .container_name = options.container_name, .container_save = options.container_save,
        .container_unshare = options.container_unshare, .device = options.device};
    if (report("submit", shifter_submit(&request, &job_env, &srun_env, msg, sizeof(msg)), msg) != 0) goto fail;
    /* srun hands its own environment to the tasks (spank_setenv is for remote contexts). */
    if (set_variables(sp, ENV_JOB_CONTROL, job_env, "submit") != 0 || set_variables(sp, ENV_PROCESS, srun_env, "srun") != 0)
        goto fail;
    if (msg[0] != '\0') fprintf(stderr, "%s\n", msg);
    rv = 0;
fail:
    shifter_strings_free(job_env);
    shifter_strings_free(srun_env);
    return rv;
}
