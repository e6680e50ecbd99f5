// C shims for the few Linux calls Swift's Glibc module does not expose (variadic prctl and ioctl,
// setresuid/setresgid, capability bounding set). Every function returns 0 on success and -errno on
// failure, and never sets errno for the caller to read.
#pragma once
#include <stdint.h>
#include <sys/types.h>

#pragma clang assume_nonnull begin

/// Sets real, effective and saved uid together. The corresponding C function is `setresuid(2)`.
int cshifter_setresuid(uid_t ruid, uid_t euid, uid_t suid);

/// Sets real, effective and saved gid together. The corresponding C function is `setresgid(2)`.
int cshifter_setresgid(gid_t rgid, gid_t egid, gid_t sgid);

/// Sets `PR_SET_NO_NEW_PRIVS`, so no later exec can gain privileges. `prctl(2)`.
int cshifter_set_no_new_privs(void);

/// Drops every capability from the bounding set (`PR_CAPBSET_DROP` for 0..last_cap). `prctl(2)`.
int cshifter_drop_bounding_set(void);

/// Clears the effective, permitted and inheritable capability sets and the ambient set. `capset(2)`.
int cshifter_clear_capabilities(void);

/// Asks `/dev/loop-control` for a free loop device (`LOOP_CTL_GET_FREE`); returns its index or -errno.
int cshifter_loop_get_free(int control_fd);

/// Binds `backing_fd` to the loop device `loop_fd` read-only with autoclear, using `LOOP_CONFIGURE`
/// where the kernel has it and `LOOP_SET_FD` + `LOOP_SET_STATUS64` otherwise. `direct_io` asks for
/// `LO_FLAGS_DIRECT_IO`; a kernel that refuses it falls back to buffered I/O.
int cshifter_loop_attach(int loop_fd, int backing_fd, int read_only, int direct_io);

/// Unbinds a loop device (`LOOP_CLR_FD`).
int cshifter_loop_detach(int loop_fd);

/// Returns the backing file's device and inode numbers of a bound loop device (`LOOP_GET_STATUS64`).
int cshifter_loop_backing(int loop_fd, uint64_t *_Nonnull device, uint64_t *_Nonnull inode);

#pragma clang assume_nonnull end
