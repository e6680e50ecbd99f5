/* The programs a forked child runs between fork and exit or exec, which Swift cannot be trusted to
 * run there (only async-signal-safe calls are allowed in the child of a multi-threaded process):
 * check a directory as a user, open a file as a user, start a user's daemon. Each forks with a
 * reply channel (fork_with_reply), takes the user's ids in the child, and answers the parent over
 * that channel; each returns 0 or -errno, as cshifter.h states. */
#include "cshifter.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mount.h>
#include <linux/mount.h>
#include <sys/prctl.h>
#include <linux/securebits.h>
#include <sched.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#ifndef FUSE_SUPER_MAGIC
#define FUSE_SUPER_MAGIC 0x65735546
#endif

/* What the parent may use of a child */

static int milliseconds_since(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long elapsed = (long long)(now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
    return elapsed > 0x7fffffff ? 0x7fffffff : (int)elapsed;
}

/* Waits until `fd` is readable, for timeout_ms in all whatever signals interrupt the wait. Returns
 * poll's result: 1 readable, 0 timed out, -1 with errno. */
static int wait_readable(int fd, int timeout_ms) {
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    struct pollfd ready = {.fd = fd, .events = POLLIN, .revents = 0};
    for (;;) {
        int left = timeout_ms - milliseconds_since(&start);
        int polled = poll(&ready, 1, left > 0 ? left : 0);
        if (polled >= 0 || errno != EINTR) return polled;
    }
}

/* Reads one reply of `size` bytes, retrying while a signal interrupts the read. read(2)'s result. */
static ssize_t read_reply(int fd, void *reply, size_t size) {
    ssize_t got;
    do {
        got = read(fd, reply, size);
    } while (got < 0 && errno == EINTR);
    return got;
}

/* Waits for `child` to end, whatever signals interrupt the wait. After SIGKILL this waits only
 * for the kernel to end a killable wait in the child. */
static void reap(pid_t child) {
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
}

/* Makes the child's reply channel (a close-on-exec pipe, or with `as_socket` a SOCK_SEQPACKET
 * socket pair, which can carry a descriptor) and forks with every signal blocked: a child that
 * becomes the user may then be signalled by the user, and no handler of the parent's (slurmd's,
 * slurmstepd's, Swift code's) may run in it (SIGKILL still ends it). The child returns 0, keeps
 * every signal blocked and writes to channel[1]. The parent gets the child's pid with its own
 * signal mask back and only channel[0] open, or -errno with nothing left open. */
static pid_t fork_with_reply(int channel[2], int as_socket) {
    int made = as_socket ? socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, channel) : pipe2(channel, O_CLOEXEC);
    if (made != 0) return -errno;
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid_t child = fork();
    if (child == 0) return 0;
    int fork_error = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    close(channel[1]);
    if (child < 0) {
        close(channel[0]);
        return -fork_error;
    }
    return child;
}

/* Passing a descriptor (SCM_RIGHTS) */

union descriptor_control {
    char buffer[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
};

/* Sets up `message` for one buffer, `data`, and room for one descriptor in `control`, zeroed,
 * unless `control` is NULL. */
static void descriptor_message(struct msghdr *message, struct iovec *data, union descriptor_control *control) {
    memset(message, 0, sizeof(*message));
    message->msg_iov = data;
    message->msg_iovlen = 1;
    if (control != NULL) {
        memset(control, 0, sizeof(*control));
        message->msg_control = control->buffer;
        message->msg_controllen = sizeof(control->buffer);
    }
}

/* Sends `size` bytes of `reply` in one message on `socket`, with the descriptor `fd` alongside
 * unless it is -1. Async-signal-safe. sendmsg(2)'s result. */
static ssize_t send_with_descriptor(int socket, const void *reply, size_t size, int fd) {
    struct iovec data = {.iov_base = (void *)reply, .iov_len = size};
    union descriptor_control control;
    struct msghdr message;
    descriptor_message(&message, &data, fd >= 0 ? &control : NULL);
    if (fd >= 0) {
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(header), &fd, sizeof(int));
    }
    ssize_t sent;
    do {
        sent = sendmsg(socket, &message, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    return sent;
}

/* Receives one message of at most `size` bytes into `reply` from `socket`, and the first
 * descriptor that came with it (close-on-exec) into *fd, or -1; any other is closed. *truncated
 * is 1 when the kernel cut the control data short (MSG_CTRUNC). recvmsg(2)'s result, with errno. */
static ssize_t receive_with_descriptor(int socket, void *reply, size_t size, int *fd, int *truncated) {
    *fd = -1;
    *truncated = 0;
    struct iovec data = {.iov_base = reply, .iov_len = size};
    union descriptor_control control;
    struct msghdr message;
    descriptor_message(&message, &data, &control);
    ssize_t got;
    do {
        got = recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
    } while (got < 0 && errno == EINTR);
    if (got < 0) return got;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header != NULL; header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int one;
            memcpy(&one, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
            if (*fd < 0) {
                *fd = one;
            } else {
                close(one);
            }
        }
    }
    *truncated = (message.msg_flags & MSG_CTRUNC) != 0;
    return got;
}

/* What a child may do before it answers */

/* Closes every descriptor from `from` up, but `keep`; in a child between fork and exec (only
 * async-signal-safe calls). close_range where the kernel and a seccomp profile allow it, else one
 * by one up to the descriptor limit. Returns 0, or -1 when a descriptor may have stayed open. */
static int close_all_but(int from, int keep) {
    int failed = 0;
    if (keep > from && syscall(SYS_close_range, (unsigned)from, (unsigned)keep - 1, 0U) != 0) failed = 1;
    if (syscall(SYS_close_range, (unsigned)(keep >= from ? keep + 1 : from), ~0U, 0U) != 0) failed = 1;
    if (!failed) return 0;
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur > (1U << 20)) {
        errno = EMFILE;
        return -1;
    }
    for (int fd = from; fd < (int)limit.rlim_cur; fd++) {
        if (fd != keep) close(fd);
    }
    return 0;
}

/* Gives the calling process (a single-threaded child) the user's groups, gid and uid as its
 * effective (and so filesystem) ids and drops every capability, for the open() checks that follow:
 * they are then the user's, including those the kernel makes by the effective id. The saved ids
 * stay root's: the user cannot trace a process whose saved uid is not theirs, at any moment,
 * whatever fs.suid_dumpable says; with all three ids the user's there would be a moment between
 * the change and PR_SET_DUMPABLE in which they could. (The real id stays the caller's; where it
 * is the user's, in setuid shifter, the user may stop or kill the child, as they may shifter
 * itself: the check then fails.) The system calls by number rather than through glibc, whose
 * wrappers coordinate an id change across a process's threads: the child is a single thread, so
 * the call changes all of it. Returns 0, or -1 with errno. */
static int take_user_file_rights(uid_t uid, gid_t gid, size_t group_count, const gid_t *groups) {
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (syscall(SYS_setgroups, group_count, groups) != 0 || syscall(SYS_setresgid, (gid_t)-1, gid, (gid_t)0) != 0 ||
        syscall(SYS_setresuid, (uid_t)-1, uid, (uid_t)0) != 0)
        return -1;
    /* setfsuid answers with the previous id; asking again with an invalid one reads the current. */
    if (geteuid() != uid || getegid() != gid || (uid_t)syscall(SYS_setfsuid, (uid_t)-1) != uid ||
        (gid_t)syscall(SYS_setfsgid, (gid_t)-1) != gid) {
        errno = EPERM;
        return -1;
    }
    /* Leaving euid 0 cleared the effective capabilities; the permitted ones go too. */
    int cleared = cshifter_clear_capabilities();
    if (cleared != 0) {
        errno = -cleared;
        return -1;
    }
    /* A change of effective ids sets dumpable from fs.suid_dumpable again. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    return 0;
}

/* A child's reply with a descriptor */

/* Waits up to timeout_ms for the child's one message of `size` bytes into `reply`, with the
 * descriptor that came with it in *received (-1 when none came); kills the child when no message
 * came in time; closes `socket` and reaps the child. 0, or -errno (-ETIMEDOUT; -EIO for a short or
 * cut message, whose descriptor is closed). */
static int await_reply_with_descriptor(int socket, pid_t child, int timeout_ms, void *reply, size_t size,
                                       int *received) {
    *received = -1;
    int rv;
    int polled = wait_readable(socket, timeout_ms);
    if (polled > 0) {
        int truncated = 0;
        ssize_t got = receive_with_descriptor(socket, reply, size, received, &truncated);
        rv = got < 0 ? -errno : (got != (ssize_t)size || truncated) ? -EIO : 0;
        if (rv != 0 && *received >= 0) {
            close(*received);
            *received = -1;
        }
    } else {
        rv = polled == 0 ? -ETIMEDOUT : -errno;
        kill(child, SIGKILL);
    }
    close(socket);
    reap(child);
    return rv;
}

/* The end of a call whose child passes back a descriptor: with `rv` 0 and a descriptor, it goes to
 * *fd; otherwise a descriptor that came is closed. `rv`, or -EIO when no descriptor came. */
static int hand_over_descriptor(int rv, int received, int *fd) {
    if (rv == 0 && received < 0) rv = -EIO;
    if (rv == 0) {
        *fd = received;
    } else if (received >= 0) {
        close(received);
    }
    return rv;
}

/* Open a path in a root as a user */

int cshifter_open_in_root_as_user(uid_t uid, gid_t gid, size_t group_count, const gid_t *groups, const char *root,
                                  const char *path, int how, int timeout_ms, int *fd) {
    *fd = -1;
    int sockets[2];
    /* SOCK_SEQPACKET: the reply is one message or none, and a child that dies unheard reads as EOF. */
    pid_t child = fork_with_reply(sockets, 1);
    if (child < 0) return child;
    if (child == 0) {
        int error = 0, opened = -1;
        /* The parent may be slurmd or slurmstepd: the user's process must hold none of its files,
         * standard streams included (it writes nothing but its answer). Closing them before the
         * ids change leaves nothing to reach, even through ptrace. */
        int keep = sockets[1];
        if (close_all_but(0, keep) != 0) {
            error = EMFILE;
        } else if (geteuid() == 0 &&
                   (chroot(root) != 0 || chdir("/") != 0 || take_user_file_rights(uid, gid, group_count, groups) != 0)) {
            /* A caller that is the user already (srun, sbatch) opens with its own rights, in its
             * own root, through this child all the same: only the time limit is wanted. */
            error = errno;
        } else {
            int flags = how == CSHIFTER_OPEN_REACH       ? O_PATH | O_DIRECTORY
                        : how == CSHIFTER_OPEN_DIRECTORY ? O_RDONLY | O_DIRECTORY
                                                         : O_RDONLY | O_NONBLOCK | O_NOCTTY;
            opened = open(path, flags | O_CLOEXEC);
            if (opened < 0) error = errno;
        }
        ssize_t sent = send_with_descriptor(keep, &error, sizeof(error), opened);
        _exit(sent == (ssize_t)sizeof(error) ? 0 : 1);
    }
    /* A path on a filesystem that never answers (a user's FUSE mount) would hold the caller, a
     * prolog or a job step, forever: the child gets timeout_ms in all, signals or not, then is
     * killed. */
    int error = EIO, received = -1;
    int rv = await_reply_with_descriptor(sockets[0], child, timeout_ms, &error, sizeof(error), &received);
    if (rv == 0 && error != 0) rv = -error;
    return hand_over_descriptor(rv, received, fd);
}

/* Open a file as a user */

/* What the child of cshifter_open_as_user reports, with the descriptor alongside on success. */
struct open_as_user_reply {
    int error;      /* 0, or the errno of the step that failed */
    int user_error; /* a CSHIFTER_OPEN_FAILED_* value */
};

int cshifter_open_as_user(uid_t uid, gid_t gid, size_t group_count, const gid_t *groups, const char *path,
                          int timeout_ms, int *fd, int *user_error) {
    *fd = -1;
    *user_error = CSHIFTER_OPEN_FAILED_SWITCH;
    int sockets[2];
    /* SOCK_SEQPACKET: the reply is one message or none, and a child that dies unheard reads as EOF. */
    pid_t child = fork_with_reply(sockets, 1);
    if (child < 0) return child;
    if (child == 0) {
        struct open_as_user_reply reply = {0, CSHIFTER_OPEN_FAILED_SWITCH};
        int opened = -1;
        /* The gateway's descriptors (its database, its listening socket, images being written)
         * must not be reachable from a process that becomes the user, standard streams included. */
        int keep = sockets[1];
        int closed = close_all_but(0, keep);
        if (closed != 0 || take_user_file_rights(uid, gid, group_count, groups) != 0) {
            reply.error = errno;
        } else {
            /* O_NONBLOCK: a FIFO would otherwise hold the open until a writer came; the caller
             * accepts only a regular file, on which the flag changes nothing. */
            opened = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
            struct statfs filesystem;
            if (opened < 0) {
                reply.error = errno;
                reply.user_error = CSHIFTER_OPEN_FAILED_USER;
            } else if (fstatfs(opened, &filesystem) != 0) {
                reply.error = errno;
                reply.user_error = CSHIFTER_OPEN_FAILED_USER;
                close(opened);
                opened = -1;
            } else if (filesystem.f_type == FUSE_SUPER_MAGIC) {
                /* Asked here, within the time limit: a FUSE daemon, which the user may run, could
                 * answer the open and then hold every read of the copy for ever. */
                reply.error = EXDEV;
                reply.user_error = CSHIFTER_OPEN_FAILED_FUSE;
                close(opened);
                opened = -1;
            }
        }
        ssize_t sent = send_with_descriptor(keep, &reply, sizeof(reply), opened);
        _exit(sent == (ssize_t)sizeof(reply) ? 0 : 1);
    }
    /* A path on a filesystem that never answers (a user's FUSE mount, a hung NFS server) would
     * hold the request forever: the child gets timeout_ms in all, then is killed. */
    struct open_as_user_reply reply = {EIO, CSHIFTER_OPEN_FAILED_SWITCH};
    int received = -1;
    int rv = await_reply_with_descriptor(sockets[0], child, timeout_ms, &reply, sizeof(reply), &received);
    if (rv == 0 && reply.error != 0) {
        rv = -reply.error;
        *user_error = reply.user_error;
    }
    return hand_over_descriptor(rv, received, fd);
}

/* Start a user's daemon */

/* What the daemon's two forks report to the caller: the first child the daemon's pid, the daemon
 * the step that failed before exec (none when exec succeeded: the pipe then closes). */
struct daemon_report {
    int error;
    pid_t pid;
};

static void report_and_exit(int fd, int error, pid_t pid) {
    struct daemon_report report = {error, pid};
    ssize_t ignored = write(fd, &report, sizeof(report));
    (void)ignored;
    _exit(error == 0 ? 0 : 127);
}

int cshifter_start_daemon(const char *root, int user_ns_fd, int mount_ns_fd, uid_t uid, gid_t gid, size_t group_count,
                          const gid_t *groups, char *const argv[], char *const envp[], int log_fd, int cgroup_procs_fd,
                          int timeout_ms, pid_t *daemon_pid) {
    int pipefd[2];
    pid_t child = fork_with_reply(pipefd, 0);
    if (child < 0) return child;
    if (child == 0) {
        /* A session of its own, out of the caller's process group (which slurmd may kill), then
         * the daemon, whose parent exits at once so that init reaps it. */
        if (setsid() < 0) report_and_exit(pipefd[1], errno, 0);
        pid_t daemon = fork();
        if (daemon < 0) report_and_exit(pipefd[1], errno, 0);
        if (daemon > 0) report_and_exit(pipefd[1], 0, daemon);
        /* Into the job's cgroup while still root, before anything of the user's runs: every
         * session the daemon starts is born in it, and the epilog ends them all at once. */
        if (cgroup_procs_fd >= 0 && write(cgroup_procs_fd, "0", 1) != 1) report_and_exit(pipefd[1], errno ? errno : EIO, 0);
        /* slurmd may shield itself from the OOM killer (SLURMD_OOM_ADJ): the user's daemon and
         * sessions must not inherit that, or other users' jobs would be killed in their place. */
        int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (oom >= 0) {
            ssize_t ignored = write(oom, "0", 1);
            (void)ignored;
            close(oom);
        }
        /* The job's namespaces (entryMode=userns), while their descriptors are open: the user's ids
         * first, here (the namespace denies setgroups), then the user's namespace, which its owner
         * may join, and its mount namespace, whose / is the job's root, as for every task. */
        if (user_ns_fd >= 0 &&
            (syscall(SYS_setgroups, group_count, groups) != 0 || syscall(SYS_setresgid, gid, gid, gid) != 0 ||
             syscall(SYS_setresuid, uid, uid, uid) != 0 || setns(user_ns_fd, CLONE_NEWUSER) != 0 ||
             setns(mount_ns_fd, CLONE_NEWNS) != 0))
            report_and_exit(pipefd[1], errno, 0);
        /* The caller (slurmd's prolog) may run with its standard streams closed, so the report
         * pipe, the log and /dev/null may be numbered 0 to 2: each is moved above them before the
         * standard streams are set. */
        int report = fcntl(pipefd[1], F_DUPFD_CLOEXEC, 3);
        if (report < 0) report_and_exit(pipefd[1], errno, 0);
        int log_copy = fcntl(log_fd, F_DUPFD_CLOEXEC, 3);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        int null_copy = null < 0 ? -1 : fcntl(null, F_DUPFD_CLOEXEC, 3);
        if (log_copy < 0 || null_copy < 0) report_and_exit(report, errno, 0);
        if (dup2(null_copy, 0) < 0 || dup2(log_copy, 1) < 0 || dup2(log_copy, 2) < 0) report_and_exit(report, errno, 0);
        if (close_all_but(3, report) != 0) report_and_exit(report, EMFILE, 0);
        if ((user_ns_fd < 0 && chroot(root) != 0) || chdir("/") != 0) report_and_exit(report, errno, 0);
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        /* As for the user's command in shifter: no capability can come back, through a setuid or
         * file-capability program the container reaches, or otherwise. */
        int dropped = cshifter_drop_bounding_set();
        if (dropped != 0) report_and_exit(report, -dropped, 0);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) report_and_exit(report, errno, 0);
        if (user_ns_fd < 0 && (syscall(SYS_setgroups, group_count, groups) != 0 ||
                               syscall(SYS_setresgid, gid, gid, gid) != 0 || syscall(SYS_setresuid, uid, uid, uid) != 0))
            report_and_exit(report, errno, 0);
        if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid) report_and_exit(report, EPERM, 0);
        /* The caller's handlers are gone with exec, but what it ignores would stay ignored. */
        struct sigaction standard;
        memset(&standard, 0, sizeof(standard));
        standard.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &standard, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        umask(077);
        execve(argv[0], argv, envp);
        report_and_exit(report, errno, 0);
    }
    reap(child);
    struct daemon_report first = {EIO, 0}, second = {0, 0};
    ssize_t got = -1;
    int polled = wait_readable(pipefd[0], timeout_ms);
    if (polled > 0) got = read_reply(pipefd[0], &first, sizeof(first));
    if (got != (ssize_t)sizeof(first) || first.error != 0 || first.pid <= 0) {
        close(pipefd[0]);
        return got == (ssize_t)sizeof(first) && first.error != 0 ? -first.error : -EIO;
    }
    /* The daemon's own report, or the end of the pipe when its exec succeeded. */
    polled = wait_readable(pipefd[0], timeout_ms);
    got = -1;
    if (polled > 0) got = read_reply(pipefd[0], &second, sizeof(second));
    close(pipefd[0]);
    if (got == 0) {
        *daemon_pid = first.pid;
        return 0;
    }
    /* A daemon that reported has exited (its number may be another process's by now); one that
     * never answered is still in the root, whose teardown stops it. */
    if (got == (ssize_t)sizeof(second) && second.error != 0) return -second.error;
    return polled == 0 ? -ETIMEDOUT : -EIO;
}

/* A job's user and mount namespaces */

/* What the namespaces' child reports: the errno and step that failed, or 0 and the step reached. */
struct namespace_report {
    int error;
    int step;
};

static void report_step(int fd, int error, int step) {
    struct namespace_report report = {error, step};
    ssize_t ignored = write(fd, &report, sizeof(report));
    (void)ignored;
    if (error != 0) _exit(127);
}

/* Writes `text` to /proc/PID/NAME in one write(2), as the kernel takes a map. */
static int write_map(pid_t pid, const char *name, const char *text) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    size_t length = strlen(text);
    ssize_t written = write(fd, text, length);
    int error = written == (ssize_t)length ? 0 : (written < 0 ? errno : EIO);
    close(fd);
    return -error;
}

static int pin_namespace(pid_t pid, const char *name, const char *pin) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid, name);
    return mount(path, pin, NULL, MS_BIND, NULL) == 0 ? 0 : -errno;
}

/* One attempt; with `cpu` >= 0 the mount namespace is made on that CPU. */
static int make_job_namespaces_once(const char *root, uid_t uid, gid_t gid, const char *gid_map, const char *user_pin,
                                    const char *mount_pin, int timeout_ms, int cpu, int *failed_step) {
    *failed_step = CSHIFTER_NS_STEP_START;
    int go[2];
    if (pipe2(go, O_CLOEXEC) != 0) return -errno;
    int reply[2];
    pid_t child = fork_with_reply(reply, 0);
    if (child < 0) {
        close(go[0]);
        close(go[1]);
        return child;
    }
    if (child == 0) {
        int out = reply[1], in = go[0];
        char byte;
        /* Nothing of the caller's may outlive it here, or be reached through this child: it keeps
         * its two pipe ends alone, and dies with the caller. */
        int low = out < in ? out : in, high = out < in ? in : out;
        if ((low > 3 && syscall(SYS_close_range, 3U, (unsigned)low - 1, 0U) != 0) ||
            (high > low + 1 && syscall(SYS_close_range, (unsigned)low + 1, (unsigned)high - 1, 0U) != 0) ||
            syscall(SYS_close_range, (unsigned)high + 1, ~0U, 0U) != 0)
            report_step(out, errno, CSHIFTER_NS_STEP_START);
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        /* Into the root while root: the user cannot search the directories above it. The working
         * directory follows into the mount namespace made below, as its copy of the root. */
        if (chdir(root) != 0) report_step(out, errno, CSHIFTER_NS_STEP_START);
        /* The namespace's owner is the creator's effective uid: the user's, taken with root's
         * capabilities kept (no set-uid fixup), so that the kernel's rules for unprivileged users'
         * namespaces do not apply to a namespace root makes. */
        if (prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0) != 0 ||
            syscall(SYS_setresgid, (gid_t)-1, gid, (gid_t)-1) != 0 || syscall(SYS_setresuid, (uid_t)-1, uid, (uid_t)-1) != 0)
            report_step(out, errno, CSHIFTER_NS_STEP_START);
        /* The change of ids set dumpability to fs.suid_dumpable: in a namespace the user owns, a
         * dumpable child would be the user's to trace. */
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        if (unshare(CLONE_NEWUSER) != 0) report_step(out, errno, CSHIFTER_NS_STEP_USER);
        report_step(out, 0, CSHIFTER_NS_STEP_USER);
        if (read_reply(in, &byte, 1) != 1) _exit(127);
        /* In the user's namespace, with its capabilities there: the node's mounts are copied and
         * locked (none can be unmounted to show what it covers, nor made writable). A copy of the
         * root's tree of mounts, made here and so not locked itself, goes over the root, becomes
         * the namespace's /, and the rest is detached. */
        if (cpu >= 0) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            if (sched_setaffinity(0, sizeof(one), &one) != 0) report_step(out, errno, CSHIFTER_NS_STEP_MOUNT);
        }
        if (unshare(CLONE_NEWNS) != 0) report_step(out, errno, CSHIFTER_NS_STEP_MOUNT);
        int tree = (int)syscall(SYS_open_tree, AT_FDCWD, ".", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        if (tree < 0 || syscall(SYS_move_mount, tree, "", AT_FDCWD, ".", MOVE_MOUNT_F_EMPTY_PATH) != 0 || fchdir(tree) != 0)
            report_step(out, errno, CSHIFTER_NS_STEP_BIND);
        close(tree);
        if (syscall(SYS_pivot_root, ".", ".") != 0) report_step(out, errno, CSHIFTER_NS_STEP_PIVOT);
        if (umount2(".", MNT_DETACH) != 0 || chdir("/") != 0) report_step(out, errno, CSHIFTER_NS_STEP_DETACH);
        report_step(out, 0, CSHIFTER_NS_STEP_DETACH);
        /* Held until pinned; the end of the pipe lets it go. */
        while (read_reply(in, &byte, 1) > 0) {}
        _exit(0);
    }
    close(go[0]);
    struct namespace_report report = {EIO, CSHIFTER_NS_STEP_USER};
    int error = 0;
    if (wait_readable(reply[0], timeout_ms) <= 0 || read_reply(reply[0], &report, sizeof(report)) != (ssize_t)sizeof(report)) {
        error = -ETIMEDOUT;
        *failed_step = CSHIFTER_NS_STEP_USER;
    } else if (report.error != 0) {
        error = -report.error;
        *failed_step = report.step;
    }
    char uid_map[64];
    snprintf(uid_map, sizeof(uid_map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
    if (error == 0 && (error = write_map(child, "uid_map", uid_map)) != 0) *failed_step = CSHIFTER_NS_STEP_UID_MAP;
    /* setgroups stays denied: a user who could drop a supplementary group in a namespace of theirs
     * would pass files whose group permissions shut that group out, on the whole node. */
    if (error == 0 && (error = write_map(child, "setgroups", "deny")) != 0) *failed_step = CSHIFTER_NS_STEP_GID_MAP;
    if (error == 0 && (error = write_map(child, "gid_map", gid_map)) != 0) *failed_step = CSHIFTER_NS_STEP_GID_MAP;
    if (error == 0 && write(go[1], "m", 1) != 1) {
        error = -errno;
        *failed_step = CSHIFTER_NS_STEP_MOUNT;
    }
    if (error == 0) {
        report.error = EIO;
        report.step = CSHIFTER_NS_STEP_MOUNT;
        if (wait_readable(reply[0], timeout_ms) <= 0 ||
            read_reply(reply[0], &report, sizeof(report)) != (ssize_t)sizeof(report)) {
            error = -ETIMEDOUT;
            *failed_step = CSHIFTER_NS_STEP_MOUNT;
        } else if (report.error != 0) {
            error = -report.error;
            *failed_step = report.step;
        }
    }
    /* The child is not reaped yet, so its number is its own: its namespaces are the ones pinned. */
    if (error == 0 && (error = pin_namespace(child, "user", user_pin)) != 0) *failed_step = CSHIFTER_NS_STEP_PIN;
    if (error == 0 && (error = pin_namespace(child, "mnt", mount_pin)) != 0) {
        *failed_step = CSHIFTER_NS_STEP_PIN;
        umount2(user_pin, 0);
    }
    if (error != 0) kill(child, SIGKILL);
    close(go[1]);
    close(reply[0]);
    reap(child);
    if (error == 0) *failed_step = CSHIFTER_NS_STEP_DONE;
    return error;
}

int cshifter_make_job_namespaces(const char *root, uid_t uid, gid_t gid, const char *gid_map, const char *user_pin,
                                 const char *mount_pin, int timeout_ms, int *failed_step) {
    int error = make_job_namespaces_once(root, uid, gid, gid_map, user_pin, mount_pin, timeout_ms, -1, failed_step);
    if (error != -EINVAL || *failed_step != CSHIFTER_NS_STEP_PIN) return error;
    /* The kernel refuses to pin a mount namespace numbered below the caller's own (its check
     * against loops of namespaces), and numbers them from batches per CPU: where the caller is not
     * the first namespace (a node in a namespace of its own), a namespace made on another CPU may
     * be numbered below it. One made on each CPU in turn finds the batch above it. */
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return error;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &allowed)) continue;
        error = make_job_namespaces_once(root, uid, gid, gid_map, user_pin, mount_pin, timeout_ms, cpu, failed_step);
        if (error != -EINVAL || *failed_step != CSHIFTER_NS_STEP_PIN) return error;
    }
    return error;
}
