// C shims for what Swift cannot reach: Linux calls its Glibc module does not expose (variadic
// prctl and ioctl, setresuid/setresgid, the new mount API, pidfds), in syscalls.c, and the
// programs a forked child runs between fork and exit or exec, in child_programs.c.
//
// One convention: a function that can fail returns -errno on failure and never leaves errno for
// the caller to read. On success it returns 0, or the non-negative value its comment names (a new
// descriptor, a loop device index); any other result goes through an out-parameter. Pointers are
// non-null unless marked _Nullable.
#pragma once
#include <spawn.h>
#include <stdint.h>
#include <sys/types.h>

#pragma clang assume_nonnull begin

// MARK: Credentials and capabilities (syscalls.c)

/// Sets real, effective and saved uid together. `setresuid(2)`. Returns 0 or -errno.
int cshifter_setresuid(uid_t ruid, uid_t euid, uid_t suid);

/// Sets real, effective and saved gid together. `setresgid(2)`. Returns 0 or -errno.
int cshifter_setresgid(gid_t rgid, gid_t egid, gid_t sgid);

/// Sets the supplementary groups; `groups` may be NULL when `count` is 0. `setgroups(2)`.
/// Returns 0 or -errno.
int cshifter_setgroups(size_t count, const gid_t *_Nullable groups);

/// Fills `groups` with the groups of `user` (plus `group`), as `getgrouplist(3)` does; on entry
/// `*count` is the capacity, on return the number found. Returns 0, -ERANGE when the capacity is
/// short (`*count` then says how many there are), or -EINVAL.
int cshifter_getgrouplist(const char *user, gid_t group, gid_t *groups, int *count);

/// Sets the filesystem uid and gid used for permission checks, so a setuid program can open a
/// user's file with the user's rights. `setfsuid(2)`, `setfsgid(2)`. Returns 0, or -EPERM when
/// the kernel kept other ids.
int cshifter_set_filesystem_ids(uid_t uid, gid_t gid);

/// Sets `PR_SET_NO_NEW_PRIVS`, so no later exec can gain privileges. `prctl(2)`. Returns 0 or -errno.
int cshifter_set_no_new_privs(void);

/// Makes the process not dumpable (`PR_SET_DUMPABLE` 0): no core file and no ptrace by the user,
/// whatever `fs.suid_dumpable` says. `prctl(2)`. Returns 0 or -errno.
int cshifter_set_not_dumpable(void);

/// The id of the mount through which `fd` was opened (`statx(2)` with `STATX_MNT_ID`) in `*id`.
/// Returns 0 or -errno (-ENOSYS where the kernel gives none).
int cshifter_mount_id(int fd, uint64_t *id);

/// 1 when the C library started this process in secure mode (`AT_SECURE`: a setuid or setgid
/// program, or one that gained capabilities at exec), else 0. `getauxval(3)`.
int cshifter_secure_mode(void);

/// How many entries the C library's start-up removed from the environment (secure mode), counted
/// before `main` from the kernel's layout of the new program's stack; -1 where it cannot be said.
int cshifter_environment_removed_at_start(void);

/// Drops every capability from the bounding set (`PR_CAPBSET_DROP` for 0..last_cap). `prctl(2)`.
/// Returns 0 or -errno.
int cshifter_drop_bounding_set(void);

/// Clears the effective, permitted and inheritable capability sets and the ambient set.
/// `capset(2)`. Returns 0 or -errno.
int cshifter_clear_capabilities(void);

// MARK: Namespaces and mounts (syscalls.c)

/// Moves the caller into a new mount namespace. `unshare(2)` with `CLONE_NEWNS`. Returns 0 or -errno.
int cshifter_unshare_mount_namespace(void);

/// Opens `path` as an `O_PATH` descriptor, resolving it as if `root_fd` were `/`: `..` and
/// absolute symlinks cannot leave the root (`openat2(2)` with `RESOLVE_IN_ROOT` and
/// `RESOLVE_NO_MAGICLINKS`). `follow_final` 0 adds `O_NOFOLLOW`; `no_symlinks` 1 refuses every
/// symlink on the way (`RESOLVE_NO_SYMLINKS`, ELOOP). Returns the descriptor (close-on-exec) or -errno.
int cshifter_open_in_root(int root_fd, const char *path, int follow_final, int no_symlinks);

/// Attributes for `cshifter_bind_into` and `cshifter_mount_new_filesystem`.
enum {
    CSHIFTER_BIND_RDONLY = 1,
    CSHIFTER_BIND_NOSUID = 2,
    CSHIFTER_BIND_NODEV = 4,
    CSHIFTER_BIND_NOEXEC = 8,
};

/// Propagation for `cshifter_bind_into`.
enum {
    CSHIFTER_PROPAGATION_UNCHANGED = 0,
    CSHIFTER_PROPAGATION_PRIVATE = 1,
    CSHIFTER_PROPAGATION_SLAVE = 2,
};

/// Bind-mounts a copy of the tree at `source_fd` (an `O_PATH` descriptor) onto `target_fd`, with
/// the attributes (CSHIFTER_BIND_*) set on the detached copy before it is attached, so the mount
/// is never visible without them. `open_tree(2)` with `OPEN_TREE_CLONE`, `mount_setattr(2)`,
/// `move_mount(2)`. Returns 0 or -errno.
int cshifter_bind_into(int source_fd, int target_fd, int recursive, int attributes, int propagation);

/// Mounts onto `target_fd` (an `O_PATH` descriptor) a device node of its own: made with
/// `mknodat(2)` (type and permission bits `mode`, device `major`:`minor`), owned by uid:gid, in a
/// new tmpfs of one inode that is never attached anywhere else, then bound alone onto the target
/// (`nosuid`, `noexec`), so no other file of any filesystem changes. Returns 0 or -errno.
int cshifter_bind_new_device_node(int target_fd, unsigned int mode, unsigned int major_number,
                                  unsigned int minor_number, uid_t uid, gid_t gid);

/// Mounts a new filesystem of `fstype` from `source` (a block device, or a name for a tmpfs) onto
/// `target_fd` (an `O_PATH` descriptor), with the filesystem's `options` (KEY, VALUE, ...,
/// NULL; may be NULL), with `attributes` (CSHIFTER_BIND_*), and makes its root directory owned
/// by uid:gid with mode 0755, all before the mount is attached. `fsopen(2)`, `fsconfig(2)`,
/// `fsmount(2)`, `move_mount(2)`. Returns 0 or -errno.
int cshifter_mount_new_filesystem(const char *fstype, const char *source, const char *_Nullable const *_Nullable options,
                                  int target_fd, int attributes,
                                  uid_t uid, gid_t gid);

/// Makes the mount that `target_fd` (an `O_PATH` descriptor of its root) is on read-only, and only
/// that mount: the mounts below it and its other flags stay as they are. `mount_setattr(2)` with
/// `MOUNT_ATTR_RDONLY`, without `AT_RECURSIVE`. Returns 0 or -errno.
int cshifter_make_mount_read_only(int target_fd);

// MARK: Loop devices (syscalls.c)

/// Asks `/dev/loop-control` for a free loop device (`LOOP_CTL_GET_FREE`, `ioctl(2)`). Returns its
/// index or -errno.
int cshifter_loop_get_free(int control_fd);

/// Binds `backing_fd` to the loop device `loop_fd` with autoclear, read-only when `read_only`,
/// using `LOOP_CONFIGURE` where the kernel has it and `LOOP_SET_FD` + `LOOP_SET_STATUS64`
/// otherwise. `direct_io` asks for `LO_FLAGS_DIRECT_IO`; a kernel that refuses it falls back to
/// buffered I/O. `ioctl(2)`. Returns 0 or -errno.
int cshifter_loop_attach(int loop_fd, int backing_fd, int read_only, int direct_io);

/// Unbinds a loop device (`LOOP_CLR_FD`, `ioctl(2)`). Returns 0 or -errno.
int cshifter_loop_detach(int loop_fd);

// MARK: Descriptors and processes (syscalls.c)

/// Creates a pipe whose ends close on exec into `fds[0]` (read) and `fds[1]` (write). `pipe2(2)`
/// with `O_CLOEXEC`. Returns 0 or -errno.
int cshifter_pipe_cloexec(int *fds);

/// Makes a spawned child start in `path`. `posix_spawn_file_actions_addchdir_np(3)`, a GNU
/// extension Swift's Glibc module does not expose. Returns 0 or -errno.
int cshifter_spawn_chdir(posix_spawn_file_actions_t *actions, const char *path);

/// Opens a descriptor that refers to process `pid` for as long as it is open, whatever process
/// later gets the same number. `pidfd_open(2)`, called by syscall number. Returns the descriptor
/// (close-on-exec) or -errno; -ENOSYS on kernels before 5.3.
int cshifter_pidfd_open(pid_t pid);

/// Sends `signal` to the process `pidfd` refers to; -ESRCH once it has exited, never another
/// process. `pidfd_send_signal(2)`, called by syscall number. Returns 0 or -errno.
int cshifter_pidfd_send_signal(int pidfd, int signal);

// MARK: Constants Swift cannot import (syscalls.c); these cannot fail

/// `O_PATH | O_CLOEXEC`.
int cshifter_path_flags(void);

/// `O_PATH | O_DIRECTORY | O_CLOEXEC`, for opening a root directory.
int cshifter_path_directory_flags(void);

/// The site configuration path compiled in (`SHIFTER_CONFIG_PATH`, by default
/// `/etc/shifter/udiRoot.conf`). A static string.
const char *cshifter_default_config_path(void);

// MARK: Child programs (child_programs.c)
//
// Each forks a child with every signal blocked and a reply channel, and is safe in a
// multi-threaded process: the child runs only async-signal-safe calls, keeps none of the caller's
// descriptors, and is not dumpable. A child that takes a user's ids keeps root's saved ids, so the
// user can neither signal nor trace it. A child with no answer within `timeout_ms` is killed and
// the call returns -ETIMEDOUT.

/// How `cshifter_open_in_root_as_user` opens its path.
enum {
    /// Read-only, any kind of file (`O_NONBLOCK|O_NOCTTY`: a FIFO or a terminal can neither hold
    /// nor adopt the opener); the caller looks at what it got.
    CSHIFTER_OPEN_ANY = 0,
    /// Read-only, a directory (`O_DIRECTORY`).
    CSHIFTER_OPEN_DIRECTORY = 1,
    /// A directory the user may reach, read or not (`O_PATH|O_DIRECTORY`: search permission on
    /// the way is all it takes).
    CSHIFTER_OPEN_REACH = 2,
};

/// Opens `path` as seen from `root` with a user's rights, as `how` says (CSHIFTER_OPEN_*): a
/// child process chroots into `root`, takes the user's groups and effective ids (gid, uid) and no
/// capability, opens `path`, so the kernel applies every rule (modes, ACLs, root squash) to every
/// component, symlinks resolved in that view, and passes the descriptor back over a socket
/// (`SCM_RIGHTS`). The descriptor names the very mount and file the user reached, so binding it
/// binds what the user may see, however the path changes afterwards. Returns 0 with the
/// descriptor (close-on-exec) in `*fd`, or -errno from the child (-ETIMEDOUT when it had no
/// answer) with `*fd` -1.
int cshifter_open_in_root_as_user(uid_t uid, gid_t gid, size_t group_count, const gid_t *_Nullable groups,
                                  const char *root, const char *path, int how, int timeout_ms, int *fd);

/// Why `cshifter_open_as_user` failed, in `*user_error`.
enum {
    /// Taking the user's rights failed (socket, fork, the ids), or the child had no answer.
    CSHIFTER_OPEN_FAILED_SWITCH = 0,
    /// The errno is the user's own from `open(2)` or `fstatfs(2)`: it tells the user nothing they
    /// could not learn with their own rights.
    CSHIFTER_OPEN_FAILED_USER = 1,
    /// The file is on a FUSE filesystem (-EXDEV), whose daemon, which a user may run, could hold
    /// every later read.
    CSHIFTER_OPEN_FAILED_FUSE = 2,
};

/// Opens `path` read-only with a user's rights, for a multi-threaded process that must keep its
/// own ids: a child process takes the user's `groups`, all of them, and effective ids (`gid`,
/// `uid`) and no capability, opens `path` (`O_RDONLY|O_NOCTTY|O_NONBLOCK`, symlinks followed), and
/// passes the descriptor back over a socket (`SCM_RIGHTS`), so the kernel applies every rule
/// (modes, ACLs, root squash) to every component. Returns 0 with the descriptor (close-on-exec) in
/// `*fd`, or -errno with `*fd` -1 and `*user_error` saying whose the error is (CSHIFTER_OPEN_FAILED_*).
int cshifter_open_as_user(uid_t uid, gid_t gid, size_t group_count, const gid_t *_Nullable groups, const char *path,
                          int timeout_ms, int *fd, int *user_error);

/// Starts `argv` (an absolute path, run with `envp`) as a daemon of the user's inside `root`: in a
/// session of its own, reparented to init, chrooted to `root`, with the user's groups and all three
/// ids, an empty capability bounding set and no_new_privs, every signal at its default, standard
/// input from /dev/null and standard output and error to `log_fd`, and no other descriptor of the
/// caller's. With `cgroup_procs_fd` (a group's `cgroup.procs` opened for writing; -1 for none) the
/// daemon moves itself into that cgroup before it drops root. Returns 0 with `*daemon_pid` once the
/// exec succeeded, or -errno of the step that failed (the exec's own error included; -ETIMEDOUT
/// when no answer came).
int cshifter_start_daemon(const char *root, int user_ns_fd, int mount_ns_fd, uid_t uid, gid_t gid, size_t group_count,
                          const gid_t *_Nullable groups, char *_Nullable const *_Nonnull argv, char *_Nullable const *_Nonnull envp, int log_fd, int cgroup_procs_fd,
                          int timeout_ms, pid_t *daemon_pid);

/// The steps of cshifter_make_job_namespaces, for its `failed_step`.
enum {
    CSHIFTER_NS_STEP_START = 1,   /* the creator's ids */
    CSHIFTER_NS_STEP_USER = 2,    /* unshare(CLONE_NEWUSER) */
    CSHIFTER_NS_STEP_UID_MAP = 3,
    CSHIFTER_NS_STEP_GID_MAP = 4,
    CSHIFTER_NS_STEP_MOUNT = 5,   /* unshare(CLONE_NEWNS) */
    CSHIFTER_NS_STEP_BIND = 6,    /* the root bound onto itself */
    CSHIFTER_NS_STEP_PIVOT = 7,   /* pivot_root into it */
    CSHIFTER_NS_STEP_DETACH = 8,  /* the node's mounts detached */
    CSHIFTER_NS_STEP_PIN = 9,     /* the bind mounts of /proc/PID/ns/{user,mnt} */
    CSHIFTER_NS_STEP_DONE = 10,
};

/// Makes a job's namespaces: a user namespace owned by `uid` (created with root's capabilities, so
/// the kernel's limits on unprivileged users' namespaces do not apply), with the uid map
/// "uid uid 1" and `gid_map` (lines "gid gid 1", written at once by root, so setgroups stays
/// allowed), and in it a mount namespace whose / is `root` (the node's other mounts detached,
/// those copied locked). Both are pinned by bind mounts onto the files `user_pin` and `mount_pin`;
/// the child that made them exits, and nothing else holds them. Each wait for the child lasts at
/// most `timeout_ms`. Returns 0, or -errno with `*failed_step` one of CSHIFTER_NS_STEP_*.
int cshifter_make_job_namespaces(const char *root, uid_t uid, gid_t gid, const char *gid_map, const char *user_pin,
                                 const char *mount_pin, int timeout_ms, int *failed_step);

/// The device (`st_dev`) of the file `path` names, from what the kernel holds of it: with
/// `AT_STATX_DONT_SYNC`, so a filesystem a user runs (FUSE) is not asked. `statx(2)`. 0 or -errno.
int cshifter_cached_device(const char *path, unsigned int *major_number, unsigned int *minor_number);

/// The kinds of namespace cshifter_setns joins: CLONE_NEWUSER and CLONE_NEWNS.
enum { CSHIFTER_USER_NAMESPACE = 0x10000000, CSHIFTER_MOUNT_NAMESPACE = 0x00020000 };

/// `setns(2)`: joins the namespace `fd` of kind `nstype` (CSHIFTER_*_NAMESPACE). 0 or -errno.
int cshifter_setns(int fd, int nstype);

/// Whether the namespace `fd` is the user namespace (`device`, `inode`) or lies within it: a user
/// namespace that descends from it, or another namespace owned by one that does (`NS_GET_PARENT`,
/// `NS_GET_USERNS`). Returns 1, 0, or -errno.
int cshifter_namespace_within(int fd, uint64_t device, uint64_t inode);

#pragma clang assume_nonnull end
