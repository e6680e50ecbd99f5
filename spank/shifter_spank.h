/*
 * The SPANK plugin's private interface. The plugin is a dispatcher: each file serves one Slurm
 * context, hands Slurm's items to libshifter and carries out what it returns. Every message starts
 * with "shifter: " and names the phase.
 */
#ifndef SHIFTER_SPANK_H
#define SHIFTER_SPANK_H

#include <slurm/spank.h>

#include "shifter.h"

struct plugin_options {
    char *image, *volume, *module;
    /* The Pyxis-style options (pyxis_compat=1). */
    char *container_image, *container_mounts, *container_workdir, *container_env;
    char *container_name, *container_save, *container_unshare, *device; /* device: --device */
    int container_mount_home; /* -1 not given, 0 --no-container-mount-home, 1 --container-mount-home */
    int container_remap_root, container_entrypoint_log;
    int container_writable;   /* 0 not given, 1 --container-writable, -1 --container-readonly */
    int container_entrypoint; /* 0 not given, 1 --container-entrypoint, -1 --no-container-entrypoint */
    int ccm; /* --ccm (enable_ccm=1): an sshd in the job's container on each node */
};

extern struct shifter_plugin_arguments config;
extern struct plugin_options options;
extern char **environ;

/* args.c: plugstack arguments and options. */
int parse_plugin_args(int ac, char **av);
int register_options(spank_t sp);
void free_options(void);

/* dispatch.c: what every context needs. */
const char *status_kind(int status);
int report(const char *phase, int status, const char *msg);
shifter_config *load_config(const char *phase);
int job_item(spank_t sp, spank_item_t item, const char *variable, uint32_t *out);
enum env_target { ENV_JOB_CONTROL, ENV_TASKS, ENV_PROCESS };
int set_variables(spank_t sp, enum env_target target, char **entries, const char *phase);

/* submit.c: sbatch, salloc and srun. */
int submit(spank_t sp);

/* task.c: slurmstepd. */
int step(spank_t sp), task_init(spank_t sp);
void step_end(spank_t sp);

/* job.c: the prolog and epilog in slurmd. */
int job_prolog(spank_t sp);
int job_epilog(spank_t sp);

#endif
