/* The seed's hello-vm: an MPI hello world built with mpicc against MPICH.
 *
 * Each rank prints one line:
 *   rank R of N on HOST node NODE mpi PATH inode INODE
 * where NODE is the Slurm node (SLURMD_NODENAME) and PATH/INODE the MPI library this process has
 * mapped, read from /proc/self/maps, so a test can tell the site's library from the image's.
 * Rank 0 then checks that a reduction over all ranks went through MPI and prints
 *   sum S of N ranks ok
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void mapped_mpi_library(char *path, size_t size, unsigned long *inode) {
    char line[4352], file[4096];
    unsigned long number;
    FILE *maps = fopen("/proc/self/maps", "r");
    snprintf(path, size, "none");
    *inode = 0;
    if (maps == NULL) return;
    while (fgets(line, sizeof line, maps) != NULL) {
        if (sscanf(line, "%*s %*s %*s %*s %lu %4095s", &number, file) != 2) continue;
        const char *base = strrchr(file, '/');
        base = base ? base + 1 : file;
        if (strncmp(base, "libmpi.so.", 10) == 0 || strncmp(base, "libmpich.so.", 12) == 0) {
            snprintf(path, size, "%s", file);
            *inode = number;
            break;
        }
    }
    fclose(maps);
}

int main(int argc, char **argv) {
    int rank, size, sum = 0;
    char host[256] = "unknown", library[4096];
    const char *node = getenv("SLURMD_NODENAME");
    unsigned long inode;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    gethostname(host, sizeof host - 1);
    mapped_mpi_library(library, sizeof library, &inode);
    printf("rank %d of %d on %s node %s mpi %s inode %lu\n", rank, size, host, node ? node : "none",
           library, inode);
    fflush(stdout);
    MPI_Reduce(&rank, &sum, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("sum %d of %d ranks %s\n", sum, size, sum == size * (size - 1) / 2 ? "ok" : "WRONG");
    MPI_Finalize();
    return 0;
}
