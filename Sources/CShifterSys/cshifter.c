#include "cshifter.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

int cshifter_setresuid(uid_t ruid, uid_t euid, uid_t suid) {
    return setresuid(ruid, euid, suid) == 0 ? 0 : -errno;
}

int cshifter_setresgid(gid_t rgid, gid_t egid, gid_t sgid) {
    return setresgid(rgid, egid, sgid) == 0 ? 0 : -errno;
}

int cshifter_set_no_new_privs(void) {
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? 0 : -errno;
}

int cshifter_set_not_dumpable(void) {
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 ? 0 : -errno;
}

int cshifter_drop_bounding_set(void) {
    for (int cap = 0; cap <= 63; cap++) {
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0) {
            if (errno == EINVAL) break; /* past the kernel's last capability */
            return -errno;
        }
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) return -errno;
    }
    return 0;
}

int cshifter_clear_capabilities(void) {
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return -errno;
    return syscall(SYS_capset, &header, data) == 0 ? 0 : -errno;
}

int cshifter_loop_get_free(int control_fd) {
    int index = ioctl(control_fd, LOOP_CTL_GET_FREE);
    return index >= 0 ? index : -errno;
}

int cshifter_loop_attach(int loop_fd, int backing_fd, int read_only, int direct_io) {
    struct loop_config config;
    memset(&config, 0, sizeof(config));
    config.fd = (uint32_t)backing_fd;
    config.info.lo_flags = LO_FLAGS_AUTOCLEAR | (read_only ? LO_FLAGS_READ_ONLY : 0) |
                           (direct_io ? LO_FLAGS_DIRECT_IO : 0);
    if (ioctl(loop_fd, LOOP_CONFIGURE, &config) == 0) return 0;
    if (errno == EINVAL && direct_io) {
        /* The backing filesystem may not support O_DIRECT (tmpfs does not). */
        config.info.lo_flags &= ~(uint32_t)LO_FLAGS_DIRECT_IO;
        if (ioctl(loop_fd, LOOP_CONFIGURE, &config) == 0) return 0;
    }
    if (errno != ENOTTY && errno != EINVAL) return -errno;
    /* Kernels before 5.8 have no LOOP_CONFIGURE. */
    if (ioctl(loop_fd, LOOP_SET_FD, backing_fd) != 0) return -errno;
    struct loop_info64 info;
    memset(&info, 0, sizeof(info));
    info.lo_flags = LO_FLAGS_AUTOCLEAR | (read_only ? LO_FLAGS_READ_ONLY : 0);
    if (ioctl(loop_fd, LOOP_SET_STATUS64, &info) != 0) {
        int saved = errno;
        ioctl(loop_fd, LOOP_CLR_FD, 0);
        return -saved;
    }
    return 0;
}

int cshifter_loop_detach(int loop_fd) {
    return ioctl(loop_fd, LOOP_CLR_FD, 0) == 0 ? 0 : -errno;
}


#include <grp.h>
#include <sched.h>

int cshifter_unshare_mount_namespace(void) {
    return unshare(CLONE_NEWNS) == 0 ? 0 : -errno;
}

int cshifter_setgroups(size_t count, const gid_t *groups) {
    return setgroups(count, groups) == 0 ? 0 : -errno;
}

int cshifter_getgrouplist(const char *user, gid_t group, gid_t *groups, int *count) {
    int capacity = *count;
    if (getgrouplist(user, group, groups, count) < 0) {
        return *count > capacity ? -ERANGE : -EINVAL;
    }
    return 0;
}


#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

struct access_result {
    int error;
    uint64_t device;
    uint64_t inode;
};

#include <time.h>

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
 * wrappers coordinate an id change across a process's threads. Returns 0, or -1 with errno. */
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

/* Makes a close-on-exec pipe for the child's answer and forks with every signal blocked: a child
 * that becomes the user may then be signalled by the user, and no handler of the parent's
 * (slurmd's, slurmstepd's) may run in it (SIGKILL still ends it). Returns the child's pid in the
 * parent, which must restore *saved_mask, 0 in the child, or -errno with nothing left open. */
static pid_t fork_with_pipe(int pipefd[2], sigset_t *saved_mask) {
    if (pipe2(pipefd, O_CLOEXEC) != 0) return -errno;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, saved_mask);
    pid_t child = fork();
    if (child < 0) {
        int saved = errno;
        pthread_sigmask(SIG_SETMASK, saved_mask, NULL);
        close(pipefd[0]);
        close(pipefd[1]);
        return -saved;
    }
    return child;
}

int cshifter_check_directory_access(uid_t uid, gid_t gid, size_t group_count, const gid_t *groups,
                                    const char *root, const char *path, int timeout_ms, uint64_t *device,
                                    uint64_t *inode) {
    int pipefd[2];
    sigset_t saved_mask;
    pid_t child = fork_with_pipe(pipefd, &saved_mask);
    if (child < 0) return child;
    if (child == 0) {
        struct access_result result = {0, 0, 0};
        /* The parent may be slurmd or slurmstepd: the user's process must hold none of its files,
         * standard streams included (it writes nothing but its answer). Closing them before the
         * ids change leaves nothing to reach, even through ptrace. */
        int keep = pipefd[1];
        if (close_all_but(0, keep) != 0) {
            result.error = EMFILE;
        } else if (chroot(root) != 0 || chdir("/") != 0 || take_user_file_rights(uid, gid, group_count, groups) != 0) {
            result.error = errno;
        } else {
            int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            struct stat info;
            if (fd < 0) {
                result.error = errno;
            } else if (fstat(fd, &info) != 0) {
                result.error = errno;
            } else {
                result.device = (uint64_t)info.st_dev;
                result.inode = (uint64_t)info.st_ino;
            }
        }
        ssize_t ignored = write(pipefd[1], &result, sizeof(result));
        (void)ignored;
        _exit(0);
    }
    pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
    close(pipefd[1]);
    struct access_result result = {EIO, 0, 0};
    ssize_t got = -1;
    /* A path on a filesystem that never answers (a user's FUSE mount) would hold the caller, a
     * prolog or a job step, forever: the child gets timeout_ms in all, signals or not, then is
     * killed. */
    int polled = wait_readable(pipefd[0], timeout_ms);
    if (polled > 0) {
        do {
            got = read(pipefd[0], &result, sizeof(result));
        } while (got < 0 && errno == EINTR);
    } else {
        kill(child, SIGKILL);
    }
    close(pipefd[0]);
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    if (polled == 0) return -ETIMEDOUT;
    if (got != (ssize_t)sizeof(result)) return -EIO;
    if (result.error != 0) return -result.error;
    *device = result.device;
    *inode = result.inode;
    return 0;
}


#include <linux/openat2.h>

int cshifter_open_in_root(int root_fd, const char *path, int follow_final, int no_symlinks) {
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = O_PATH | O_CLOEXEC | (follow_final ? 0 : O_NOFOLLOW);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | (no_symlinks ? RESOLVE_NO_SYMLINKS : 0);
    long fd;
    /* EAGAIN: a rename raced the lookup. Retry a bounded number of times, so that a user renaming
     * directories in a loop cannot hold the setup up forever. */
    int attempts = 0;
    do {
        fd = syscall(SYS_openat2, root_fd, path, &how, sizeof(how));
    } while (fd < 0 && (errno == EINTR || (errno == EAGAIN && ++attempts < 64)));
    return fd >= 0 ? (int)fd : -errno;
}

int cshifter_path_directory_flags(void) {
    return O_PATH | O_DIRECTORY | O_CLOEXEC;
}

#include <linux/mount.h>

#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

int cshifter_bind_into(int source_fd, int target_fd, int recursive, int attributes, int propagation) {
    unsigned int tree_flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0);
    int tree = (int)syscall(SYS_open_tree, source_fd, "", tree_flags);
    if (tree < 0) return -errno;
    struct mount_attr attr;
    memset(&attr, 0, sizeof(attr));
    if (attributes & CSHIFTER_BIND_RDONLY) attr.attr_set |= MOUNT_ATTR_RDONLY;
    if (attributes & CSHIFTER_BIND_NOSUID) attr.attr_set |= MOUNT_ATTR_NOSUID;
    if (attributes & CSHIFTER_BIND_NODEV) attr.attr_set |= MOUNT_ATTR_NODEV;
    if (attributes & CSHIFTER_BIND_NOEXEC) attr.attr_set |= MOUNT_ATTR_NOEXEC;
    if (propagation == CSHIFTER_PROPAGATION_PRIVATE) attr.propagation = MS_PRIVATE;
    if (propagation == CSHIFTER_PROPAGATION_SLAVE) attr.propagation = MS_SLAVE;
    int rv = 0;
    if ((attr.attr_set != 0 || attr.propagation != 0) &&
        syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof(attr)) != 0) {
        rv = -errno;
    } else if (syscall(SYS_move_mount, tree, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
        rv = -errno;
    }
    close(tree);
    return rv;
}

int cshifter_path_flags(void) {
    return O_PATH | O_CLOEXEC;
}

#include <sys/fsuid.h>

#ifndef SHIFTER_CONFIG_PATH
#define SHIFTER_CONFIG_PATH "/etc/shifter/udiRoot.conf"
#endif

const char *cshifter_default_config_path(void) {
    return SHIFTER_CONFIG_PATH;
}

int cshifter_set_filesystem_ids(uid_t uid, gid_t gid) {
    setfsgid(gid);
    setfsuid(uid);
    /* setfsuid reports the previous value; calling it again with an invalid id reads the current. */
    if ((uid_t)setfsuid((uid_t)-1) != uid || (gid_t)setfsgid((gid_t)-1) != gid) return -EPERM;
    return 0;
}

#ifndef FSCONFIG_SET_STRING
#define FSCONFIG_SET_STRING 1
#endif
#ifndef FSCONFIG_CMD_CREATE
#define FSCONFIG_CMD_CREATE 6
#endif

int cshifter_mount_new_filesystem(const char *fstype, const char *source, int target_fd, int attributes,
                                  uid_t uid, gid_t gid) {
    int rv = 0;
    int mnt = -1;
    int fs = (int)syscall(SYS_fsopen, fstype, FSOPEN_CLOEXEC);
    if (fs < 0) return -errno;
    if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "source", source, 0) != 0 ||
        syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) != 0) {
        rv = -errno;
        goto out;
    }
    unsigned int attr = 0;
    if (attributes & CSHIFTER_BIND_RDONLY) attr |= MOUNT_ATTR_RDONLY;
    if (attributes & CSHIFTER_BIND_NOSUID) attr |= MOUNT_ATTR_NOSUID;
    if (attributes & CSHIFTER_BIND_NODEV) attr |= MOUNT_ATTR_NODEV;
    if (attributes & CSHIFTER_BIND_NOEXEC) attr |= MOUNT_ATTR_NOEXEC;
    mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, attr);
    if (mnt < 0) {
        rv = -errno;
        goto out;
    }
    if (fchownat(mnt, "", uid, gid, AT_EMPTY_PATH) != 0) {
        rv = -errno;
        goto out;
    }
    /* fchmodat cannot take AT_EMPTY_PATH on this glibc; reach the root through the magic link. */
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", mnt);
    if (chmod(path, 0755) != 0) {
        rv = -errno;
        goto out;
    }
    if (syscall(SYS_move_mount, mnt, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
        rv = -errno;
    }
out:
    if (mnt >= 0) close(mnt);
    close(fs);
    return rv;
}

int cshifter_pipe_cloexec(int *fds) {
    return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno;
}

int cshifter_spawn_chdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

/* glibc 2.36 wraps pidfd_open but older C libraries do not; the numbers are the same on every
 * architecture (the unified syscall table). */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

int cshifter_pidfd_open(pid_t pid) {
    /* A pidfd is always close-on-exec. */
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd >= 0 ? (int)fd : -errno;
}

int cshifter_pidfd_send_signal(int pidfd, int signal) {
    return syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0) == 0 ? 0 : -errno;
}

int cshifter_make_mount_read_only(int target_fd) {
    struct mount_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.attr_set = MOUNT_ATTR_RDONLY;
    return syscall(SYS_mount_setattr, target_fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) == 0 ? 0 : -errno;
}

#include <sys/socket.h>
#include <sys/vfs.h>

#ifndef FUSE_SUPER_MAGIC
#define FUSE_SUPER_MAGIC 0x65735546
#endif
#include <time.h>

/* What the child of cshifter_open_as_user reports, with the descriptor alongside on success. */
struct open_as_user_reply {
    int error;      /* 0, or the errno of the step that failed */
    int user_error; /* 1 when error is the user's own open() errno */
};


int cshifter_open_as_user(uid_t uid, gid_t gid, size_t group_count, const gid_t *groups, const char *path,
                          int timeout_ms, int *user_error) {
    *user_error = 0;
    int sockets[2];
    /* SOCK_SEQPACKET: the reply is one message or none, and a child that dies unheard reads as EOF. */
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sockets) != 0) return -errno;
    /* The child runs with every signal blocked, so no handler of the parent's (Swift code) can run
     * in it between fork and _exit; SIGKILL still ends it. */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid_t child = fork();
    if (child == 0) {
        struct open_as_user_reply reply = {0, 0};
        int fd = -1;
        /* The gateway's descriptors (its database, its listening socket, images being written)
         * must not be reachable from a process that becomes the user, standard streams included. */
        int keep = sockets[1];
        int closed = close_all_but(0, keep);
        /* By number rather than through glibc, whose wrappers coordinate an id change across the
         * threads of a process: the child is a single thread, so the call changes all of it. */
        if (closed != 0 || take_user_file_rights(uid, gid, group_count, groups) != 0) {
            reply.error = errno;
        } else {
            /* O_NONBLOCK: a FIFO would otherwise hold the open until a writer came; the caller
             * accepts only a regular file, on which the flag changes nothing. */
            fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
            struct statfs filesystem;
            if (fd < 0) {
                reply.error = errno;
                reply.user_error = 1;
            } else if (fstatfs(fd, &filesystem) != 0) {
                reply.error = errno;
                reply.user_error = 1;
                close(fd);
                fd = -1;
            } else if (filesystem.f_type == FUSE_SUPER_MAGIC) {
                /* Asked here, within the time limit: a FUSE daemon, which the user may run, could
                 * answer the open and then hold every read of the copy for ever. */
                reply.error = EXDEV;
                reply.user_error = CSHIFTER_OPEN_ON_FUSE;
                close(fd);
                fd = -1;
            }
        }
        struct iovec data = {.iov_base = &reply, .iov_len = sizeof(reply)};
        union {
            char buffer[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } control;
        memset(&control, 0, sizeof(control));
        struct msghdr message;
        memset(&message, 0, sizeof(message));
        message.msg_iov = &data;
        message.msg_iovlen = 1;
        if (fd >= 0) {
            message.msg_control = control.buffer;
            message.msg_controllen = sizeof(control.buffer);
            struct cmsghdr *header = CMSG_FIRSTHDR(&message);
            header->cmsg_level = SOL_SOCKET;
            header->cmsg_type = SCM_RIGHTS;
            header->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(header), &fd, sizeof(int));
        }
        ssize_t sent;
        do {
            sent = sendmsg(keep, &message, MSG_NOSIGNAL);
        } while (sent < 0 && errno == EINTR);
        _exit(sent == (ssize_t)sizeof(reply) ? 0 : 1);
    }
    int fork_error = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    close(sockets[1]);
    if (child < 0) {
        close(sockets[0]);
        return -fork_error;
    }
    int rv = -EIO;
    /* A path on a filesystem that never answers (a user's FUSE mount, a hung NFS server) would
     * hold the request forever: the child gets timeout_ms in all, then is killed. */
    int polled = wait_readable(sockets[0], timeout_ms);
    if (polled > 0) {
        struct open_as_user_reply reply = {EIO, 0};
        struct iovec data = {.iov_base = &reply, .iov_len = sizeof(reply)};
        union {
            char buffer[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } control;
        memset(&control, 0, sizeof(control));
        struct msghdr message;
        memset(&message, 0, sizeof(message));
        message.msg_iov = &data;
        message.msg_iovlen = 1;
        message.msg_control = control.buffer;
        message.msg_controllen = sizeof(control.buffer);
        ssize_t got;
        do {
            got = recvmsg(sockets[0], &message, MSG_CMSG_CLOEXEC);
        } while (got < 0 && errno == EINTR);
        int received = -1;
        if (got >= 0) {
            for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header != NULL; header = CMSG_NXTHDR(&message, header)) {
                if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
                size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < count; i++) {
                    int one;
                    memcpy(&one, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
                    if (received < 0) {
                        received = one;
                    } else {
                        close(one);
                    }
                }
            }
        }
        if (got < 0) {
            rv = -errno;
        } else if (got != (ssize_t)sizeof(reply) || (message.msg_flags & MSG_CTRUNC) != 0) {
            rv = -EIO;
        } else if (reply.error != 0) {
            rv = -reply.error;
            *user_error = reply.user_error;
        } else if (received >= 0) {
            rv = received;
            received = -1;
        }
        if (received >= 0) close(received);
    } else {
        rv = polled == 0 ? -ETIMEDOUT : -errno;
        kill(child, SIGKILL);
    }
    close(sockets[0]);
    /* After SIGKILL this waits only for the kernel to end a killable wait in the child. */
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    return rv;
}

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

int cshifter_start_daemon(const char *root, uid_t uid, gid_t gid, size_t group_count, const gid_t *groups,
                          char *const argv[], char *const envp[], int log_fd, int cgroup_procs_fd, int timeout_ms,
                          pid_t *daemon_pid) {
    int pipefd[2];
    sigset_t saved_mask;
    pid_t child = fork_with_pipe(pipefd, &saved_mask);
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
        /* slurmd may shield itself from the OOM killer (SLURMD_OOM_ADJ): the user's daemon and
         * sessions must not inherit that, or other users' jobs would be killed in their place. */
        int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (oom >= 0) {
            ssize_t ignored = write(oom, "0", 1);
            (void)ignored;
            close(oom);
        }
        if (chroot(root) != 0 || chdir("/") != 0) report_and_exit(report, errno, 0);
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        /* As for the user's command in shifter: no capability can come back, through a setuid or
         * file-capability program the container reaches, or otherwise. */
        int dropped = cshifter_drop_bounding_set();
        if (dropped != 0) report_and_exit(report, -dropped, 0);
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) report_and_exit(report, errno, 0);
        if (syscall(SYS_setgroups, group_count, groups) != 0 || syscall(SYS_setresgid, gid, gid, gid) != 0 ||
            syscall(SYS_setresuid, uid, uid, uid) != 0)
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
    pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
    close(pipefd[1]);
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    struct daemon_report first = {EIO, 0}, second = {0, 0};
    ssize_t got = -1;
    int polled = wait_readable(pipefd[0], timeout_ms);
    if (polled > 0) {
        do { got = read(pipefd[0], &first, sizeof(first)); } while (got < 0 && errno == EINTR);
    }
    if (got != (ssize_t)sizeof(first) || first.error != 0 || first.pid <= 0) {
        close(pipefd[0]);
        return got == (ssize_t)sizeof(first) && first.error != 0 ? -first.error : -EIO;
    }
    /* The daemon's own report, or the end of the pipe when its exec succeeded. */
    polled = wait_readable(pipefd[0], timeout_ms);
    got = -1;
    if (polled > 0) {
        do { got = read(pipefd[0], &second, sizeof(second)); } while (got < 0 && errno == EINTR);
    }
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
