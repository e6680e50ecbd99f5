/* What a job's user namespace allows, probed from inside and outside (tests/integration/userns.bats).
 *
 *   userns-probe share FIFO-OUT FIFO-IN   rank 0: fills a buffer, writes "PID ADDRESS" to FIFO-OUT,
 *                                          waits for a line on FIFO-IN, exits
 *   userns-probe read FIFO-IN FIFO-OUT    rank 1: reads "PID ADDRESS", reads the buffer with
 *                                          process_vm_readv, prints "cma ok" or "cma failed: ...",
 *                                          and lets rank 0 go
 *   userns-probe escape USER-PIN MOUNT-PIN [OTHER-USER-PIN OTHER-MOUNT-PIN]
 *                                          joins the namespaces (keeping the capabilities they give),
 *                                          then tries to undo or change the prolog's mounts, and to
 *                                          join the other job's namespaces; one line per attempt
 *   userns-probe groups USER-PIN          joins the user namespace alone, from the node's mount
 *                                          namespace, and tries to drop the supplementary groups
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/mount.h>
#include <sys/uio.h>
#include <unistd.h>

static char buffer[4096];

static int share(const char *out, const char *in) {
    for (size_t i = 0; i < sizeof(buffer); i++) buffer[i] = (char)('a' + i % 26);
    FILE *fifo = fopen(out, "w");
    if (fifo == NULL) return perror(out), 1;
    fprintf(fifo, "%d %p\n", (int)getpid(), (void *)buffer);
    fclose(fifo);
    char line[64];
    FILE *done = fopen(in, "r");
    if (done == NULL || fgets(line, sizeof(line), done) == NULL) return perror(in), 1;
    return 0;
}

static int read_other(const char *in, const char *out) {
    int pid;
    void *address;
    FILE *fifo = fopen(in, "r");
    if (fifo == NULL || fscanf(fifo, "%d %p", &pid, &address) != 2) return perror(in), 1;
    char copy[sizeof(buffer)];
    struct iovec local = {copy, sizeof(copy)}, remote = {address, sizeof(copy)};
    ssize_t got = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    int ok = got == (ssize_t)sizeof(copy);
    for (size_t i = 0; ok && i < sizeof(copy); i++) ok = copy[i] == (char)('a' + i % 26);
    if (ok) printf("cma ok\n");
    else printf("cma failed: %s\n", got < 0 ? strerror(errno) : "the bytes differ");
    FILE *done = fopen(out, "w");
    if (done != NULL) {
        fputs("done\n", done);
        fclose(done);
    }
    return ok ? 0 : 1;
}

static void attempt(const char *what, int result) {
    printf("%s: %s\n", what, result == 0 ? "done" : strerror(errno));
}

/* From the node's mount namespace, the job's user namespace alone: what it gives on the node. */
static int groups_on_node(const char *user_pin) {
    int user = open(user_pin, O_RDONLY | O_CLOEXEC);
    if (user < 0 || setns(user, CLONE_NEWUSER) != 0) return perror("join the job's user namespace"), 1;
    attempt("drop the supplementary groups", setgroups(0, NULL));
    return 0;
}

static int escape(int argc, char **argv) {
    int user = open(argv[2], O_RDONLY | O_CLOEXEC), mount_ns = open(argv[3], O_RDONLY | O_CLOEXEC);
    int other_user = argc > 5 ? open(argv[4], O_RDONLY | O_CLOEXEC) : -1;
    int other_mount = argc > 5 ? open(argv[5], O_RDONLY | O_CLOEXEC) : -1;
    if (argc > 5 && (other_user < 0 || other_mount < 0)) return perror("open the other job's namespaces"), 1;
    if (user < 0 || mount_ns < 0 || setns(user, CLONE_NEWUSER) != 0 || setns(mount_ns, CLONE_NEWNS) != 0)
        return perror("join the job's namespaces"), 1;
    attempt("unmount /site", umount2("/site", MNT_DETACH));
    attempt("unmount /proc", umount2("/proc", MNT_DETACH));
    attempt("unmount /tmp", umount2("/tmp", MNT_DETACH));
    attempt("remount /site read-write", mount(NULL, "/site", NULL, MS_REMOUNT | MS_BIND, NULL));
    attempt("write /site", open("/site/userns-probe-was-here", O_CREAT | O_WRONLY | O_CLOEXEC, 0600) < 0 ? -1 : 0);
    attempt("write /etc/passwd", open("/etc/passwd", O_WRONLY | O_APPEND | O_CLOEXEC) < 0 ? -1 : 0);
    attempt("become uid 0", setresuid(0, 0, 0));
    attempt("drop the supplementary groups", setgroups(0, NULL));
    if (other_user >= 0) attempt("join the other job's user namespace", setns(other_user, CLONE_NEWUSER));
    if (other_mount >= 0) attempt("join the other job's mount namespace", setns(other_mount, CLONE_NEWNS));
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "share") == 0) return share(argv[2], argv[3]);
    if (argc >= 4 && strcmp(argv[1], "read") == 0) return read_other(argv[2], argv[3]);
    if (argc >= 4 && strcmp(argv[1], "escape") == 0) return escape(argc, argv);
    if (argc >= 3 && strcmp(argv[1], "groups") == 0) return groups_on_node(argv[2]);
    fprintf(stderr, "usage: userns-probe share|read FIFO FIFO | escape USER-PIN MOUNT-PIN [OTHER-USER-PIN OTHER-MOUNT-PIN] | groups USER-PIN\n");
    return 2;
}
