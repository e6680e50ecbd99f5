/*
 * Submission (sbatch, salloc, srun): libshifter checks the request and resolves the image to its
 * id, which reaches the prolog through the job control environment (see docs/architecture.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shifter_spank.h"

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
int submit(spank_t sp) {
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
        struct shifter_pyxis_options pyxis = {
            .size = sizeof(pyxis), .uid = (uint32_t)getuid(), .mount_home = options.container_mount_home,
            .remap_root = options.container_remap_root, .image = options.container_image,
            .mounts = options.container_mounts, .workdir = options.container_workdir, .env_names = options.container_env};
        int status = shifter_pyxis_request(site, &pyxis, pyxis_image, sizeof(pyxis_image), pyxis_volumes,
                                           sizeof(pyxis_volumes), msg, sizeof(msg));
        if (status != SHIFTER_OK) {
            slurm_error("shifter: submit: %s [%s]", msg, status_kind(status));
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
    int status = shifter_request_validate(site, image, requested_volumes, options.module, (uint32_t)getuid(),
                                          image_id, sizeof(image_id), volumes, sizeof(volumes), msg, sizeof(msg));
    if (status != SHIFTER_OK) {
        slurm_error("shifter: submit: %s [%s]", msg, status_kind(status));
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
        if ((status = shifter_ssh_keys(site, keys, sizeof(keys), msg, sizeof(msg))) != SHIFTER_OK) {
            slurm_error("shifter: submit: %s [%s]", msg, status_kind(status));
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

