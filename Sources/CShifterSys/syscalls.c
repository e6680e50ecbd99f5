/* Thin wrappers over Linux calls that Swift's Glibc module does not expose, or exposes only as
 * variadic functions or macros (prctl, ioctl, setresuid, the new mount API, pidfds). Each returns
 * -errno on failure, as cshifter.h states; none runs a child process (child_programs.c does). */
#include "cshifter.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/loop.h>
#include <linux/mount.h>
#include <linux/nsfs.h>
#include <linux/openat2.h>
#include <sys/auxv.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef FSCONFIG_SET_STRING
#define FSCONFIG_SET_STRING 1
#endif
#ifndef FSCONFIG_CMD_CREATE
#define FSCONFIG_CMD_CREATE 6
#endif
/* glibc 2.36 wraps pidfd_open but older C libraries do not; the numbers are the same on every
 * architecture (the unified syscall table). */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SHIFTER_CONFIG_PATH
#define SHIFTER_CONFIG_PATH "/etc/shifter/udiRoot.conf"
#endif

/* Credentials and capabilities */

int cshifter_setresuid(uid_t ruid, uid_t euid, uid_t suid) {
    return setresuid(ruid, euid, suid) == 0 ? 0 : -errno;
}

int cshifter_setresgid(gid_t rgid, gid_t egid, gid_t sgid) {
    return setresgid(rgid, egid, sgid) == 0 ? 0 : -errno;
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

int cshifter_set_filesystem_ids(uid_t uid, gid_t gid) {
    setfsgid(gid);
    setfsuid(uid);
    /* setfsuid reports the previous value; calling it again with an invalid id reads the current. */
    if ((uid_t)setfsuid((uid_t)-1) != uid || (gid_t)setfsgid((gid_t)-1) != gid) return -EPERM;
    return 0;
}

int cshifter_set_no_new_privs(void) {
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? 0 : -errno;
}

int cshifter_set_not_dumpable(void) {
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 ? 0 : -errno;
}

int cshifter_mount_id(int fd, uint64_t *id) {
    struct statx info;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID, &info) != 0) return -errno;
    if ((info.stx_mask & STATX_MNT_ID) == 0) return -ENOSYS;
    *id = info.stx_mnt_id;
    return 0;
}

int cshifter_secure_mode(void) {
    return getauxval(AT_SECURE) != 0;
}

/* How many entries the C library removed from the environment before main (secure mode: a setuid
 * program), counted from the kernel's layout of a new program's stack: argv, NULL, envp, NULL,
 * then the auxiliary vector, whose first type is never 0. unsetenv(3) moves the later pointers
 * down in place, so each removed entry leaves one more NULL before the auxiliary vector. -1 where
 * the array the C library passes is not the kernel's (then nothing can be said). The C library
 * calls .init_array functions with (argc, argv, envp), after its start-up removed the variables. */
static int removed_at_start = -1;

static void count_removed_at_start(int argc, char **argv, char **envp) {
    if (argv == NULL || envp != argv + argc + 1) return;
    char **entry = envp;
    while (*entry != NULL) entry++;
    int removed = 0;
    for (entry++; *entry == NULL; entry++) removed++;
    removed_at_start = removed;
}

__attribute__((section(".init_array"), used))
static void (*const count_removed_at_start_entry)(int, char **, char **) = count_removed_at_start;

int cshifter_environment_removed_at_start(void) {
    return removed_at_start;
}

int cshifter_drop_bounding_set(void) {
    /* One call a capability: dropping one already out of the set succeeds, and EINVAL means past
     * the kernel's last (a read before each drop would double the calls of every entry). */
    for (int cap = 0; cap <= 63; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0) continue;
        if (errno == EINVAL && cap > 0) break;
        return -errno;
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

/* Namespaces and mounts */

_Static_assert(CSHIFTER_USER_NAMESPACE == CLONE_NEWUSER && CSHIFTER_MOUNT_NAMESPACE == CLONE_NEWNS, "namespace kinds");

int cshifter_cached_device(const char *path, unsigned int *major_number, unsigned int *minor_number) {
    struct statx info;
    if (statx(AT_FDCWD, path, AT_STATX_DONT_SYNC, STATX_TYPE, &info) != 0) return -errno;
    *major_number = info.stx_dev_major;
    *minor_number = info.stx_dev_minor;
    return 0;
}

int cshifter_setns(int fd, int nstype) {
    return setns(fd, nstype) == 0 ? 0 : -errno;
}

int cshifter_namespace_within(int fd, uint64_t device, uint64_t inode) {
    int current = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (current < 0) return -errno;
    /* Namespaces nest at most 32 deep; each step goes to the owner or the parent. */
    for (int depth = 0; depth < 40; depth++) {
        struct stat info;
        if (fstat(current, &info) != 0) break;
        if ((uint64_t)info.st_dev == device && (uint64_t)info.st_ino == inode) {
            close(current);
            return 1;
        }
        int type = ioctl(current, NS_GET_NSTYPE);
        int next = ioctl(current, type == CLONE_NEWUSER ? NS_GET_PARENT : NS_GET_USERNS);
        close(current);
        /* EPERM: the top, or a namespace outside the caller's. */
        if (next < 0) return errno == EPERM ? 0 : -errno;
        current = next;
    }
    close(current);
    return 0;
}

int cshifter_unshare_mount_namespace(void) {
    return unshare(CLONE_NEWNS) == 0 ? 0 : -errno;
}

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

/* The MOUNT_ATTR_* bits for CSHIFTER_BIND_* attributes. */
static unsigned int mount_attributes(int attributes) {
    unsigned int attr = 0;
    if (attributes & CSHIFTER_BIND_RDONLY) attr |= MOUNT_ATTR_RDONLY;
    if (attributes & CSHIFTER_BIND_NOSUID) attr |= MOUNT_ATTR_NOSUID;
    if (attributes & CSHIFTER_BIND_NODEV) attr |= MOUNT_ATTR_NODEV;
    if (attributes & CSHIFTER_BIND_NOEXEC) attr |= MOUNT_ATTR_NOEXEC;
    return attr;
}

int cshifter_bind_into(int source_fd, int target_fd, int recursive, int attributes, int propagation) {
    unsigned int tree_flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0);
    int tree = (int)syscall(SYS_open_tree, source_fd, "", tree_flags);
    if (tree < 0) return -errno;
    struct mount_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.attr_set = mount_attributes(attributes);
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

int cshifter_bind_new_device_node(int target_fd, unsigned int mode, unsigned int major_number,
                                  unsigned int minor_number, uid_t uid, gid_t gid) {
    int rv = 0;
    int mnt = -1;
    int tree = -1;
    int fs = (int)syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0) return -errno;
    if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "source", "shifter-device", 0) != 0 ||
        syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "size", "4096", 0) != 0 ||
        syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "nr_inodes", "2", 0) != 0 ||
        syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) != 0) {
        rv = -errno;
        goto out;
    }
    mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
    if (mnt < 0) {
        rv = -errno;
        goto out;
    }
    /* mknod honours the umask; the mode is set exactly after. */
    if (mknodat(mnt, "node", (mode_t)mode, makedev(major_number, minor_number)) != 0 ||
        fchownat(mnt, "node", uid, gid, AT_SYMLINK_NOFOLLOW) != 0 ||
        fchmodat(mnt, "node", (mode_t)(mode & 07777), 0) != 0) {
        rv = -errno;
        goto out;
    }
    tree = (int)syscall(SYS_open_tree, mnt, "node", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0) {
        rv = -errno;
        goto out;
    }
    if (syscall(SYS_move_mount, tree, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) rv = -errno;
out:
    if (tree >= 0) close(tree);
    if (mnt >= 0) close(mnt);
    close(fs);
    return rv;
}

int cshifter_mount_new_filesystem(const char *fstype, const char *source, const char *const *options, int target_fd,
                                  int attributes, uid_t uid, gid_t gid) {
    int rv = 0;
    int mnt = -1;
    int fs = (int)syscall(SYS_fsopen, fstype, FSOPEN_CLOEXEC);
    if (fs < 0) return -errno;
    if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "source", source, 0) != 0) {
        rv = -errno;
        goto out;
    }
    for (size_t i = 0; options != NULL && options[i] != NULL && options[i + 1] != NULL; i += 2) {
        if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, options[i], options[i + 1], 0) != 0) {
            rv = -errno;
            goto out;
        }
    }
    if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) != 0) {
        rv = -errno;
        goto out;
    }
    mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, mount_attributes(attributes));
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

int cshifter_make_mount_read_only(int target_fd) {
    struct mount_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.attr_set = MOUNT_ATTR_RDONLY;
    return syscall(SYS_mount_setattr, target_fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) == 0 ? 0 : -errno;
}

/* Loop devices */

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

/* Descriptors and processes */

int cshifter_pipe_cloexec(int *fds) {
    return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno;
}

int cshifter_spawn_chdir(posix_spawn_file_actions_t *actions, const char *path) {
    /* posix_spawn_file_actions_* return an error number instead of setting errno. */
    int error = posix_spawn_file_actions_addchdir_np(actions, path);
    return error == 0 ? 0 : -error;
}

int cshifter_pidfd_open(pid_t pid) {
    /* A pidfd is always close-on-exec. */
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd >= 0 ? (int)fd : -errno;
}

int cshifter_pidfd_send_signal(int pidfd, int signal) {
    return syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0) == 0 ? 0 : -errno;
}

/* Constants */

int cshifter_path_flags(void) {
    return O_PATH | O_CLOEXEC;
}

int cshifter_path_directory_flags(void) {
    return O_PATH | O_DIRECTORY | O_CLOEXEC;
}

const char *cshifter_default_config_path(void) {
    return SHIFTER_CONFIG_PATH;
}
