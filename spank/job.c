/*
 * The job's prolog and epilog, which slurmd runs as root on every node of the allocation, in the
 * node's mount namespace: libshifter builds the job's container root there, and removes it.
 */
#include <stdlib.h>

#include "shifter_spank.h"

int job_prolog(spank_t sp) {
    int rv = -1;
    shifter_config *site = NULL;
    char msg[2048];
    struct shifter_prolog_request request = {
        .size = sizeof(request), .image = getenv("SPANK_SHIFTER_IMAGE"), .volumes = getenv("SPANK_SHIFTER_VOLUME"),
        .modules = getenv("SPANK_SHIFTER_MODULE"), .node = getenv("SLURMD_NODENAME"),
        .devices = getenv("SPANK_SHIFTER_DEVICE"), .envp = environ};
    if (request.image == NULL || *request.image == '\0') {
        rv = 0;
        goto fail;
    }
    if (job_item(sp, S_JOB_ID, "SLURM_JOB_ID", &request.job_id) != 0 ||
        job_item(sp, S_JOB_UID, "SLURM_JOB_UID", &request.uid) != 0 ||
        job_item(sp, S_JOB_GID, "SLURM_JOB_GID", &request.gid) != 0) {
        slurm_error("shifter: prolog: couldn't identify the job, its user or group");
        goto fail;
    }
    if ((site = load_config("prolog")) == NULL) goto fail;
    /* SHIFTER_SSH: the job's sshd keys (--ccm), made at submission; taken only where the site
     * offers --ccm (a job's control environment can also come from another client than ours). */
    request.ssh_keys = config.enable_ccm ? getenv("SPANK_SHIFTER_SSH") : NULL;
    /* On failure the reason is kept on the node, and every step of the job fails with it.
     * Returning an error here would drain the node for what is usually the user's mistake. */
    report("prolog", shifter_job_prolog(site, &request, msg, sizeof(msg)), msg);
    rv = 0;
fail:
    shifter_config_free(site);
    return rv;
}

int job_epilog(spank_t sp) {
    int rv = -1;
    shifter_config *site = NULL;
    uint32_t job_id;
    char msg[2048];
    if (job_item(sp, S_JOB_ID, "SLURM_JOB_ID", &job_id) != 0) {
        slurm_error("shifter: epilog: couldn't identify the job");
        goto fail;
    }
    if ((site = load_config("epilog")) == NULL) goto fail;
    if (report("epilog", shifter_job_epilog(site, job_id, msg, sizeof(msg)), msg) != 0) goto fail;
    rv = 0;
fail:
    shifter_config_free(site);
    return rv;
}
