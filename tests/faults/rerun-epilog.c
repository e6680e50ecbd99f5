/*
 * rerun-epilog CONFIG JOBID: runs the job epilog of libshifter once more, as an administrator would
 * after an epilog was killed and Slurm drained the node. Run it inside the node's mount namespace.
 * Exits 0 when everything was removed, else prints the reason and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>

#include "shifter.h"

int main(int argc, char **argv) {
    int rv = 1;
    shifter_config *config = NULL;
    char msg[2048] = "";
    if (argc != 3) {
        fprintf(stderr, "usage: rerun-epilog CONFIG JOBID\n");
        goto fail;
    }
    if (shifter_config_load(argv[1], &config, msg, sizeof(msg)) != SHIFTER_OK) goto fail;
    if (shifter_job_epilog(config, (uint32_t)strtoul(argv[2], NULL, 10), msg, sizeof(msg)) != SHIFTER_OK) goto fail;
    rv = 0;
fail:
    if (rv != 0 && msg[0] != '\0') fprintf(stderr, "rerun-epilog: %s\n", msg);
    shifter_config_free(config);
    return rv;
}
