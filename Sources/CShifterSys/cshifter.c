#include "cshifter.h"

#include <errno.h>
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

int cshifter_loop_backing(int loop_fd, uint64_t *device, uint64_t *inode) {
    struct loop_info64 info;
    memset(&info, 0, sizeof(info));
    if (ioctl(loop_fd, LOOP_GET_STATUS64, &info) != 0) return -errno;
    *device = info.lo_device;
    *inode = info.lo_inode;
    return 0;
}
