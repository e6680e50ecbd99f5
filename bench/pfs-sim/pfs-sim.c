/*
 * pfs-sim: a simulated parallel filesystem for the benchmarks.
 *
 * A FUSE passthrough (libfuse3, low-level API) over a backing directory that adds a fixed latency
 * to every metadata request and every data request that reaches it, and counts the requests by
 * kind. Mount one instance per node: each is one "client" of the parallel filesystem, with its
 * own kernel caches, and its counters are what that node asked of the metadata and object
 * servers.
 *
 *   pfs-sim [OPTIONS] BACKING-DIR MOUNTPOINT
 *
 *   --meta-us=N      latency added to each metadata request, microseconds (default 500)
 *   --data-us=N      latency added to each data request (read, write, fsync, fallocate) (default 1000)
 *   --data-mbps=N    also charge SIZE/N per data request (MB/s; default 0: no bandwidth term)
 *   --cache-s=S      how long the kernel may cache names, attributes and negative lookups, in
 *                    seconds (default 60, as a Lustre client holding its locks; 0: ask every time)
 *   --writeback      let the kernel cache writes and send them in large requests (default: off,
 *                    every write(2) is one data request)
 *   --threads=N      requests served at once (default 16)
 *   --mds=FILE       a metadata server shared by every instance given the same FILE: each
 *                    metadata request also waits its turn there, first come first served, and
 *                    takes --mds-us of its time, so instances (nodes) contend for it
 *   --mds-us=N       the shared metadata server's service time per request, microseconds
 *                    (default 20, i.e. 50,000 requests/s). The same FILE also holds a shared data
 *                    server and any virtual nodes that `pfs-load init` put there (servers.h)
 *   --trace=FILE     record every request (arrival, answer, kind, size) into FILE, on SIGUSR1
 *                    and at exit (SIGUSR2 starts it afresh): what `pfs-load init` replays
 *   --skip-waits     do not sleep: keep a clock of this instance's own that runs ahead of the
 *                    machine's by the waits skipped ("skipped_ms" in the counters). One probe
 *                    node among virtual ones then takes seconds where the queue would take minutes
 *   --stats=FILE     write the counters to FILE (JSON) on SIGUSR1 and at exit; SIGUSR2 zeroes them
 *   --pidfile=FILE   write the daemon's pid there
 *   -f               stay in the foreground;  -d  FUSE debug output
 *   -o OPTS          further FUSE mount options (allow_other and default_permissions are always set)
 *
 * Requests the kernel answers from its caches never reach the daemon, so they are neither delayed
 * nor counted: like a real client, a node pays for what it does not have cached.
 *
 * Metadata requests (delayed by --meta-us): lookup getattr setattr readlink mknod mkdir unlink
 * rmdir symlink rename link open create opendir readdir statfs release releasedir fsyncdir.
 * Data requests (delayed by --data-us): read write fsync fallocate. Counted without delay: forget,
 * flush (a FUSE artefact of close(2)), lseek. Extended attributes and locks are not implemented
 * (the kernel then handles locks locally and stops asking for xattrs).
 *
 * O_DIRECT (used by loop devices and mkfs.xfs) is dropped when the backing file is opened: the
 * kernel already sends such I/O straight to the daemon, and the daemon's buffers are not aligned
 * for O_DIRECT on the backing filesystem.
 */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 34

#include <fuse_lowlevel.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "servers.h"

_Static_assert(sizeof(fuse_ino_t) >= sizeof(uintptr_t), "fuse_ino_t must hold a pointer");

/* ---- counters ---------------------------------------------------------------------------- */

enum op_kind { K_META, K_DATA, K_FREE };

#define OPS(X) \
    X(lookup, K_META) X(getattr, K_META) X(setattr, K_META) X(readlink, K_META) \
    X(mknod, K_META) X(mkdir, K_META) X(unlink, K_META) X(rmdir, K_META) X(symlink, K_META) \
    X(rename, K_META) X(link, K_META) X(open, K_META) X(create, K_META) X(opendir, K_META) \
    X(readdir, K_META) X(statfs, K_META) X(release, K_META) X(releasedir, K_META) \
    X(fsyncdir, K_META) \
    X(read, K_DATA) X(write, K_DATA) X(fsync, K_DATA) X(fallocate, K_DATA) \
    X(forget, K_FREE) X(flush, K_FREE) X(lseek, K_FREE)

enum op {
#define X(name, kind) OP_##name,
    OPS(X)
#undef X
    OP_COUNT
};
static const char *op_names[] = {
#define X(name, kind) #name,
    OPS(X)
#undef X
};
static const enum op_kind op_kinds[] = {
#define X(name, kind) kind,
    OPS(X)
#undef X
};

static _Atomic uint64_t counts[OP_COUNT];
static _Atomic uint64_t bytes_read, bytes_written, delay_ns_total;
static _Atomic uint64_t stats_seq;

static struct {
    long meta_us, data_us, data_mbps, threads, mds_us;
    double cache_s;
    bool writeback, skip_waits;
    const char *stats_file, *pidfile, *backing, *mds_file, *trace_file;
    uid_t euid;
} cfg = { .meta_us = 500, .data_us = 1000, .threads = 16, .cache_s = 60.0, .mds_us = 20 };

/* ---- the shared servers (--mds) and the request trace (--trace) ------------------------------ */

static struct servers *servers;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* With --skip-waits the instance does not sleep: its clock runs ahead of the machine's by the
 * waits it skipped, and every time it reports (to the servers, in the trace) is on that clock. */
static _Atomic uint64_t skew_ns;
static uint64_t sim_now(void) { return now_ns() + atomic_load(&skew_ns); }

/* servers_open: maps FILE; a file without servers in it (new, or empty) gets a metadata server
 * of --mds-us and no virtual load. One that `pfs-load init` set up keeps its settings, which must
 * agree with --mds-us. */
static int servers_open(const char *path) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) != 0) goto fail;
    struct stat st;
    if (fstat(fd, &st) != 0) goto fail;
    uint64_t magic = 0, size = 0;
    if ((uint64_t)st.st_size >= sizeof(struct servers) &&
        (pread(fd, &magic, sizeof magic, 0) != (ssize_t)sizeof magic ||
         pread(fd, &size, sizeof size, sizeof magic) != (ssize_t)sizeof size)) goto fail;
    bool fresh = magic != SERVERS_MAGIC || size != (uint64_t)st.st_size;
    if (fresh) {
        size = servers_size(0, 0);
        if (ftruncate(fd, 0) != 0 || ftruncate(fd, (off_t)size) != 0) goto fail;
    }
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) goto fail;
    servers = map;
    if (fresh) {
        servers_init(servers, 0, 0);
        servers->meta_service_ns = (uint64_t)cfg.mds_us * 1000;
    } else if (servers->meta_service_ns != (uint64_t)cfg.mds_us * 1000) {
        fprintf(stderr, "pfs-sim: --mds=%s: its metadata server takes %.1f µs a request, not --mds-us=%ld "
                        "(set it up again with pfs-load init, or pass the same --mds-us)\n",
                path, servers->meta_service_ns / 1e3, cfg.mds_us);
        flock(fd, LOCK_UN);
        close(fd);
        return -1;
    }
    /* The mapping keeps the open file, and with it the lock, until the instance exits: unlock. */
    flock(fd, LOCK_UN);
    close(fd);
    return 0;
fail:
    fprintf(stderr, "pfs-sim: --mds=%s: %s\n", path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
}

/* The trace: each request's arrival and answer on the instance's clock, its kind and size. */
struct traced { uint64_t arrival, answered; uint32_t bytes, kind; };
static struct { pthread_mutex_t lock; struct traced *recs; size_t len, cap; } trace = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void trace_add(uint64_t arrival, uint64_t answered, enum request_kind kind, uint64_t bytes) {
    if (!cfg.trace_file) return;
    pthread_mutex_lock(&trace.lock);
    if (trace.len == trace.cap) {
        size_t cap = trace.cap ? trace.cap * 2 : 65536;
        struct traced *recs = realloc(trace.recs, cap * sizeof *recs);
        if (!recs) { pthread_mutex_unlock(&trace.lock); return; }
        trace.recs = recs;
        trace.cap = cap;
    }
    trace.recs[trace.len++] = (struct traced){ arrival, answered, bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)bytes, kind };
    pthread_mutex_unlock(&trace.lock);
}

/* Counters and the trace are written to PATH.tmp.PID, then renamed over PATH, so that a reader
 * never sees half a file. open_replacement gives the file (NULL: none), close_replacement puts it
 * in place. */
static FILE *open_replacement(const char *path, char tmp[PATH_MAX]) {
    snprintf(tmp, PATH_MAX, "%s.tmp.%d", path, (int)getpid());
    return fopen(tmp, "w");
}

static void close_replacement(FILE *f, const char *tmp, const char *path) {
    if (fclose(f) == 0) rename(tmp, path); else unlink(tmp);
}

static void write_trace(void) {
    if (!cfg.trace_file) return;
    char tmp[PATH_MAX];
    FILE *f = open_replacement(cfg.trace_file, tmp);
    if (!f) return;
    pthread_mutex_lock(&trace.lock);
    fprintf(f, "# arrival_ns answered_ns kind bytes\n");
    for (size_t i = 0; i < trace.len; i++)
        fprintf(f, "%" PRIu64 " %" PRIu64 " %s %" PRIu32 "\n", trace.recs[i].arrival, trace.recs[i].answered,
                trace.recs[i].kind == REQ_META ? "meta" : "data", trace.recs[i].bytes);
    pthread_mutex_unlock(&trace.lock);
    close_replacement(f, tmp, cfg.trace_file);
}

/* charge: counts one request of kind `op`; a metadata or data request then waits for its turn at
 * the shared server (with --mds) and takes its own latency (`bytes` for the bandwidth term). */
static void charge(enum op op, uint64_t bytes) {
    atomic_fetch_add(&counts[op], 1);
    if (op_kinds[op] == K_FREE) return;
    enum request_kind kind = op_kinds[op] == K_META ? REQ_META : REQ_DATA;
    uint64_t arrival = sim_now(), at = arrival;
    if (servers) at = servers_request(servers, kind, bytes, arrival);
    uint64_t own = kind == REQ_META ? (uint64_t)cfg.meta_us * 1000 : (uint64_t)cfg.data_us * 1000;
    if (kind == REQ_DATA && cfg.data_mbps > 0) own += bytes * 1000ull / (uint64_t)cfg.data_mbps; /* bytes/(MB/s) in ns */
    uint64_t answered = at + own;
    atomic_fetch_add(&delay_ns_total, answered - arrival);
    trace_add(arrival, answered, kind, bytes);
    /* The kernel sends release and releasedir without waiting for their answers (close(2) has
     * returned): they take the server's time, but nobody waits for them. */
    if (cfg.skip_waits && (op == OP_release || op == OP_releasedir)) return;
    if (cfg.skip_waits) {
        /* The clock moves on to the answer, unless another request already moved it further. */
        uint64_t old = atomic_load(&skew_ns), real = now_ns();
        while (answered > real + old && !atomic_compare_exchange_weak(&skew_ns, &old, answered - real)) {}
        return;
    }
    struct timespec ts = { .tv_sec = answered / 1000000000ull, .tv_nsec = answered % 1000000000ull };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

static void write_stats(void) {
    if (!cfg.stats_file) return;
    char tmp[PATH_MAX];
    FILE *f = open_replacement(cfg.stats_file, tmp);
    if (!f) return;
    uint64_t meta = 0, data = 0;
    fprintf(f, "{\n  \"seq\": %" PRIu64 ",\n  \"ops\": {", atomic_fetch_add(&stats_seq, 1) + 1);
    for (int i = 0; i < OP_COUNT; i++) {
        uint64_t n = atomic_load(&counts[i]);
        if (op_kinds[i] == K_META) meta += n;
        if (op_kinds[i] == K_DATA) data += n;
        fprintf(f, "%s\"%s\": %" PRIu64, i ? ", " : "", op_names[i], n);
    }
    fprintf(f, "},\n  \"meta_ops\": %" PRIu64 ",\n  \"data_ops\": %" PRIu64 ",\n", meta, data);
    fprintf(f, "  \"bytes_read\": %" PRIu64 ",\n  \"bytes_written\": %" PRIu64 ",\n",
            atomic_load(&bytes_read), atomic_load(&bytes_written));
    fprintf(f, "  \"injected_ms\": %.3f,\n", atomic_load(&delay_ns_total) / 1e6);
    fprintf(f, "  \"clock_ns\": %" PRIu64 ",\n  \"skipped_ms\": %.3f,\n", sim_now(), atomic_load(&skew_ns) / 1e6);
    if (servers) {
        servers_lock(servers);
        struct servers c = *servers;
        servers_unlock(servers);
        /* The first line: every instance's requests together, as before virtual nodes. */
        fprintf(f, "  \"mds\": {\"served\": %" PRIu64 ", \"queued_ms\": %.3f, \"service_us\": %ld, "
                   "\"virtual_served\": %" PRIu64 ", \"virtual_queued_ms\": %.3f},\n",
                c.served[BY_REAL][REQ_META], c.queued_ns[BY_REAL][REQ_META] / 1e6, cfg.mds_us,
                c.served[BY_VIRTUAL][REQ_META], c.queued_ns[BY_VIRTUAL][REQ_META] / 1e6);
        fprintf(f, "  \"data_server\": {\"served\": %" PRIu64 ", \"queued_ms\": %.3f, \"bytes\": %" PRIu64 ", "
                   "\"virtual_served\": %" PRIu64 ", \"virtual_queued_ms\": %.3f, \"virtual_bytes\": %" PRIu64 "},\n",
                c.served[BY_REAL][REQ_DATA], c.queued_ns[BY_REAL][REQ_DATA] / 1e6, c.bytes[BY_REAL],
                c.served[BY_VIRTUAL][REQ_DATA], c.queued_ns[BY_VIRTUAL][REQ_DATA] / 1e6, c.bytes[BY_VIRTUAL]);
    }
    fprintf(f, "  \"settings\": {\"meta_us\": %ld, \"data_us\": %ld, \"data_mbps\": %ld, \"cache_s\": %g, "
               "\"writeback\": %s, \"threads\": %ld}\n}\n",
            cfg.meta_us, cfg.data_us, cfg.data_mbps, cfg.cache_s, cfg.writeback ? "true" : "false", cfg.threads);
    close_replacement(f, tmp, cfg.stats_file);
}

static void reset_stats(void) {
    for (int i = 0; i < OP_COUNT; i++) atomic_store(&counts[i], 0);
    atomic_store(&bytes_read, 0);
    atomic_store(&bytes_written, 0);
    atomic_store(&delay_ns_total, 0);
    pthread_mutex_lock(&trace.lock);
    trace.len = 0;
    pthread_mutex_unlock(&trace.lock);
}

static void *signal_thread(void *arg) {
    sigset_t *set = arg;
    for (;;) {
        int sig;
        if (sigwait(set, &sig) != 0) continue;
        if (sig == SIGUSR2) reset_stats();
        write_trace();
        write_stats();
    }
    return NULL;
}

/* ---- inodes ------------------------------------------------------------------------------ */

struct inode {
    struct inode *next;
    int fd; /* O_PATH */
    dev_t dev;
    ino_t ino;
    uint64_t nlookup; /* protected by table_lock */
};

#define BUCKETS 65536
static struct inode *table[BUCKETS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct inode root_inode;

static size_t bucket(dev_t dev, ino_t ino) { return (size_t)((ino * 0x9E3779B97F4A7C15ull) ^ dev) % BUCKETS; }

static struct inode *get_inode(fuse_ino_t ino) {
    return ino == FUSE_ROOT_ID ? &root_inode : (struct inode *)(uintptr_t)ino;
}
static int ifd(fuse_ino_t ino) { return get_inode(ino)->fd; }

static void proc_path(char out[64], int fd) { snprintf(out, 64, "/proc/self/fd/%d", fd); }

static double timeout(void) { return cfg.cache_s; }

/* make_entry: looks NAME up in PARENT and fills E (with the inode counted once more). */
static int make_entry(fuse_ino_t parent, const char *name, struct fuse_entry_param *e) {
    memset(e, 0, sizeof *e);
    e->attr_timeout = timeout();
    e->entry_timeout = timeout();
    int fd = openat(ifd(parent), name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno;
    if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
        int err = errno;
        close(fd);
        return err;
    }
    pthread_mutex_lock(&table_lock);
    size_t b = bucket(e->attr.st_dev, e->attr.st_ino);
    struct inode *in;
    for (in = table[b]; in; in = in->next)
        if (in->ino == e->attr.st_ino && in->dev == e->attr.st_dev) break;
    if (in) {
        in->nlookup++;
        close(fd);
    } else if (root_inode.ino == e->attr.st_ino && root_inode.dev == e->attr.st_dev) {
        in = &root_inode; /* ".." of a top-level directory */
        close(fd);
    } else {
        in = calloc(1, sizeof *in);
        if (!in) {
            pthread_mutex_unlock(&table_lock);
            close(fd);
            return ENOMEM;
        }
        in->fd = fd;
        in->dev = e->attr.st_dev;
        in->ino = e->attr.st_ino;
        in->nlookup = 1;
        in->next = table[b];
        table[b] = in;
    }
    pthread_mutex_unlock(&table_lock);
    e->ino = in == &root_inode ? FUSE_ROOT_ID : (uintptr_t)in;
    return 0;
}

static void forget_one(fuse_ino_t ino, uint64_t n) {
    if (ino == FUSE_ROOT_ID) return;
    struct inode *in = get_inode(ino);
    pthread_mutex_lock(&table_lock);
    if (n > in->nlookup) n = in->nlookup;
    in->nlookup -= n;
    if (in->nlookup == 0) {
        struct inode **p = &table[bucket(in->dev, in->ino)];
        while (*p && *p != in) p = &(*p)->next;
        if (*p) *p = in->next;
        close(in->fd);
        free(in);
    }
    pthread_mutex_unlock(&table_lock);
}

/* chown_new: a node created by the (root) daemon belongs to the caller. */
static void chown_new(fuse_req_t req, int dirfd, const char *name) {
    if (cfg.euid != 0) return;
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    (void)fchownat(dirfd, name, ctx->uid, ctx->gid, AT_SYMLINK_NOFOLLOW);
}

/* ---- operations -------------------------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn) {
    (void)userdata;
    if (cfg.writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) conn->want |= FUSE_CAP_WRITEBACK_CACHE;
    else conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    conn->want &= ~FUSE_CAP_READDIRPLUS;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
    charge(OP_lookup, 0);
    struct fuse_entry_param e;
    int err = make_entry(parent, name, &e);
    if (err == ENOENT && timeout() > 0) {
        memset(&e, 0, sizeof e); /* a negative entry the kernel may cache */
        e.entry_timeout = timeout();
        fuse_reply_entry(req, &e);
    } else if (err) {
        fuse_reply_err(req, err);
    } else {
        fuse_reply_entry(req, &e);
    }
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
    charge(OP_forget, 0);
    forget_one(ino, nlookup);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
    for (size_t i = 0; i < count; i++) {
        charge(OP_forget, 0);
        forget_one(forgets[i].ino, forgets[i].nlookup);
    }
    fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    (void)fi;
    charge(OP_getattr, 0);
    struct stat st;
    if (fstatat(ifd(ino), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) fuse_reply_err(req, errno);
    else fuse_reply_attr(req, &st, timeout());
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid, struct fuse_file_info *fi) {
    /* Everything goes through the inode's own descriptor (/proc/self/fd/N follows it even to an
       unlinked file), never through fi->fh, which is a directory handle for directories. */
    (void)fi;
    charge(OP_setattr, 0);
    int fd = ifd(ino), r = 0;
    char path[64];
    proc_path(path, fd);
    if (valid & FUSE_SET_ATTR_MODE) r = chmod(path, attr->st_mode);
    if (r == 0 && (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
        uid_t u = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
        gid_t g = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
        r = fchownat(fd, "", u, g, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
    }
    if (r == 0 && (valid & FUSE_SET_ATTR_SIZE)) r = truncate(path, attr->st_size);
    if (r == 0 && (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
        struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
        if (valid & FUSE_SET_ATTR_ATIME_NOW) tv[0].tv_nsec = UTIME_NOW;
        else if (valid & FUSE_SET_ATTR_ATIME) tv[0] = attr->st_atim;
        if (valid & FUSE_SET_ATTR_MTIME_NOW) tv[1].tv_nsec = UTIME_NOW;
        else if (valid & FUSE_SET_ATTR_MTIME) tv[1] = attr->st_mtim;
        r = utimensat(AT_FDCWD, path, tv, 0);
    }
    if (r < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    struct stat st;
    if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) fuse_reply_err(req, errno);
    else fuse_reply_attr(req, &st, timeout());
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino) {
    charge(OP_readlink, 0);
    char buf[PATH_MAX + 1];
    ssize_t n = readlinkat(ifd(ino), "", buf, PATH_MAX);
    if (n < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    buf[n] = 0;
    fuse_reply_readlink(req, buf);
}

static void reply_new_entry(fuse_req_t req, fuse_ino_t parent, const char *name) {
    struct fuse_entry_param e;
    int err = make_entry(parent, name, &e);
    if (err) fuse_reply_err(req, err);
    else fuse_reply_entry(req, &e);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
    charge(OP_mknod, 0);
    if (mknodat(ifd(parent), name, mode, rdev) < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    chown_new(req, ifd(parent), name);
    reply_new_entry(req, parent, name);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
    charge(OP_mkdir, 0);
    if (mkdirat(ifd(parent), name, mode) < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    chown_new(req, ifd(parent), name);
    reply_new_entry(req, parent, name);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
    charge(OP_symlink, 0);
    if (symlinkat(link, ifd(parent), name) < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    chown_new(req, ifd(parent), name);
    reply_new_entry(req, parent, name);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char *name) {
    charge(OP_link, 0);
    char path[64];
    proc_path(path, ifd(ino));
    if (linkat(AT_FDCWD, path, ifd(parent), name, AT_SYMLINK_FOLLOW) < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    reply_new_entry(req, parent, name);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) {
    charge(OP_unlink, 0);
    fuse_reply_err(req, unlinkat(ifd(parent), name, 0) < 0 ? errno : 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) {
    charge(OP_rmdir, 0);
    fuse_reply_err(req, unlinkat(ifd(parent), name, AT_REMOVEDIR) < 0 ? errno : 0);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags) {
    charge(OP_rename, 0);
    fuse_reply_err(req, renameat2(ifd(parent), name, ifd(newparent), newname, flags) < 0 ? errno : 0);
}

/* open_flags: what the backing file is opened with. */
static int open_flags(int flags) {
    flags &= ~(O_DIRECT | O_NOFOLLOW | O_CREAT | O_EXCL | O_NOCTTY);
    if (cfg.writeback) {
        /* The kernel may read pages of a file opened write-only, and it keeps the file offset
           itself, so the backing file is opened read-write and without O_APPEND. */
        if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
        flags &= ~O_APPEND;
    }
    return flags | O_CLOEXEC;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    charge(OP_open, 0);
    char path[64];
    proc_path(path, ifd(ino));
    int fd = open(path, open_flags(fi->flags));
    if (fd < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    fi->fh = (uint64_t)fd;
    fi->keep_cache = 1;
    fuse_reply_open(req, fi);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) {
    charge(OP_create, 0);
    int fd = openat(ifd(parent), name, open_flags(fi->flags) | O_CREAT, mode);
    if (fd < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    if (cfg.euid == 0) {
        const struct fuse_ctx *ctx = fuse_req_ctx(req);
        (void)fchown(fd, ctx->uid, ctx->gid);
    }
    struct fuse_entry_param e;
    int err = make_entry(parent, name, &e);
    if (err) {
        close(fd);
        fuse_reply_err(req, err);
        return;
    }
    fi->fh = (uint64_t)fd;
    fi->keep_cache = 1;
    fuse_reply_create(req, &e, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
    (void)ino;
    charge(OP_read, size);
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    ssize_t n = pread((int)fi->fh, buf, size, off);
    if (n < 0) fuse_reply_err(req, errno);
    else {
        atomic_fetch_add(&bytes_read, (uint64_t)n);
        fuse_reply_buf(req, buf, (size_t)n);
    }
    free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi) {
    (void)ino;
    charge(OP_write, size);
    ssize_t n = pwrite((int)fi->fh, buf, size, off);
    if (n < 0) fuse_reply_err(req, errno);
    else {
        atomic_fetch_add(&bytes_written, (uint64_t)n);
        fuse_reply_write(req, (size_t)n);
    }
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    (void)ino;
    charge(OP_flush, 0);
    int fd = dup((int)fi->fh); /* close(2) semantics on the backing file, without losing it */
    fuse_reply_err(req, fd < 0 ? errno : (close(fd) < 0 ? errno : 0));
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    (void)ino;
    charge(OP_release, 0);
    close((int)fi->fh);
    fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
    (void)ino;
    charge(OP_fsync, 0);
    int r = datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh);
    fuse_reply_err(req, r < 0 ? errno : 0);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, struct fuse_file_info *fi) {
    (void)ino;
    charge(OP_fallocate, 0);
    fuse_reply_err(req, fallocate((int)fi->fh, mode, off, len) < 0 ? errno : 0);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi) {
    (void)ino;
    charge(OP_lseek, 0);
    off_t r = lseek((int)fi->fh, off, whence);
    if (r < 0) fuse_reply_err(req, errno);
    else fuse_reply_lseek(req, r);
}

struct dir_handle {
    DIR *dir;
    struct dirent *entry;
    off_t offset;
};

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    charge(OP_opendir, 0);
    struct dir_handle *d = calloc(1, sizeof *d);
    if (!d) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    int fd = openat(ifd(ino), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || !(d->dir = fdopendir(fd))) {
        int err = errno;
        if (fd >= 0) close(fd);
        free(d);
        fuse_reply_err(req, err);
        return;
    }
    fi->fh = (uintptr_t)d;
    fi->keep_cache = 1;
    fi->cache_readdir = 1;
    fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, struct fuse_file_info *fi) {
    (void)ino;
    charge(OP_readdir, 0);
    struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
    char *buf = calloc(1, size);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    if (offset != d->offset) {
        seekdir(d->dir, offset);
        d->entry = NULL;
        d->offset = offset;
    }
    size_t used = 0;
    for (;;) {
        if (!d->entry) {
            errno = 0;
            d->entry = readdir(d->dir);
            if (!d->entry) {
                if (errno && used == 0) {
                    int err = errno;
                    free(buf);
                    fuse_reply_err(req, err);
                    return;
                }
                break;
            }
        }
        struct stat st = { .st_ino = d->entry->d_ino, .st_mode = (mode_t)d->entry->d_type << 12 };
        size_t len = fuse_add_direntry(req, buf + used, size - used, d->entry->d_name, &st, d->entry->d_off);
        if (len > size - used) break;
        used += len;
        d->offset = d->entry->d_off;
        d->entry = NULL;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    (void)ino;
    charge(OP_releasedir, 0);
    struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
    closedir(d->dir);
    free(d);
    fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
    (void)ino;
    charge(OP_fsyncdir, 0);
    int fd = dirfd(((struct dir_handle *)(uintptr_t)fi->fh)->dir);
    fuse_reply_err(req, (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? errno : 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino) {
    charge(OP_statfs, 0);
    struct statvfs sv;
    if (fstatvfs(ifd(ino), &sv) < 0) fuse_reply_err(req, errno);
    else fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .symlink = op_symlink,
    .link = op_link,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .rename = op_rename,
    .open = op_open,
    .create = op_create,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .release = op_release,
    .fsync = op_fsync,
    .fallocate = op_fallocate,
    .lseek = op_lseek,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .fsyncdir = op_fsyncdir,
    .statfs = op_statfs,
};

/* ---- main -------------------------------------------------------------------------------- */

static void usage(FILE *f) {
    fprintf(f, "usage: pfs-sim [--meta-us=N] [--data-us=N] [--data-mbps=N] [--cache-s=S] [--writeback]\n"
               "               [--threads=N] [--mds=FILE [--mds-us=N]] [--trace=FILE] [--skip-waits]\n"
               "               [--stats=FILE] [--pidfile=FILE]\n"
               "               [-f] [-d] [-o OPTS]\n"
               "               BACKING-DIR MOUNTPOINT\n");
}

static long number(const char *what, const char *s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0) {
        fprintf(stderr, "pfs-sim: %s: \"%s\" is not a non-negative integer\n", what, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        { "meta-us", required_argument, 0, 'm' }, { "data-us", required_argument, 0, 'D' },
        { "data-mbps", required_argument, 0, 'b' }, { "cache-s", required_argument, 0, 'c' },
        { "writeback", no_argument, 0, 'w' }, { "threads", required_argument, 0, 't' },
        { "stats", required_argument, 0, 's' }, { "pidfile", required_argument, 0, 'p' },
        { "mds", required_argument, 0, 'M' }, { "mds-us", required_argument, 0, 'S' },
        { "trace", required_argument, 0, 'T' }, { "skip-waits", no_argument, 0, 'K' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 },
    };
    bool foreground = false, debug = false;
    char mount_opts[4096] = "allow_other,default_permissions,fsname=pfs-sim,subtype=pfs-sim";
    int c;
    while ((c = getopt_long(argc, argv, "fdo:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': cfg.meta_us = number("--meta-us", optarg); break;
        case 'D': cfg.data_us = number("--data-us", optarg); break;
        case 'b': cfg.data_mbps = number("--data-mbps", optarg); break;
        case 'c': {
            char *end;
            cfg.cache_s = strtod(optarg, &end);
            if (*end || cfg.cache_s < 0) {
                fprintf(stderr, "pfs-sim: --cache-s: \"%s\" is not a number of seconds\n", optarg);
                return 2;
            }
            break;
        }
        case 'w': cfg.writeback = true; break;
        case 't': cfg.threads = number("--threads", optarg); break;
        case 'M': cfg.mds_file = optarg; break;
        case 'S': cfg.mds_us = number("--mds-us", optarg); break;
        case 'T': cfg.trace_file = optarg; break;
        case 'K': cfg.skip_waits = true; break;
        case 's': cfg.stats_file = optarg; break;
        case 'p': cfg.pidfile = optarg; break;
        case 'f': foreground = true; break;
        case 'd': debug = true; foreground = true; break;
        case 'o':
            if (strlen(mount_opts) + strlen(optarg) + 2 > sizeof mount_opts) {
                fprintf(stderr, "pfs-sim: -o: too long\n");
                return 2;
            }
            strcat(mount_opts, ",");
            strcat(mount_opts, optarg);
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (argc - optind != 2) {
        usage(stderr);
        return 2;
    }
    if (cfg.threads < 1) cfg.threads = 1;
    if (cfg.mds_file && servers_open(cfg.mds_file) != 0) return 1;
    cfg.euid = geteuid();
    cfg.backing = argv[optind];
    const char *mountpoint = argv[optind + 1];

    char *backing = realpath(cfg.backing, NULL);
    if (!backing) {
        fprintf(stderr, "pfs-sim: %s: %s\n", cfg.backing, strerror(errno));
        return 1;
    }
    root_inode.fd = open(backing, O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    if (root_inode.fd < 0 || fstat(root_inode.fd, &st) < 0) {
        fprintf(stderr, "pfs-sim: %s: %s\n", backing, strerror(errno));
        return 1;
    }
    root_inode.dev = st.st_dev;
    root_inode.ino = st.st_ino;
    root_inode.nlookup = 2;
    if ((cfg.stats_file && cfg.stats_file[0] != '/') || (cfg.trace_file && cfg.trace_file[0] != '/')) {
        fprintf(stderr, "pfs-sim: --stats and --trace need absolute paths (the daemon changes directory)\n");
        return 2;
    }
    umask(0);
    prctl(PR_SET_TIMERSLACK, 1UL); /* 0.5 ms sleeps, not 0.55 */

    char *fargv[] = { argv[0], "-o", mount_opts, debug ? "-d" : NULL, NULL };
    struct fuse_args args = FUSE_ARGS_INIT(debug ? 4 : 3, fargv);
    struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
    if (!se) return 1;
    if (fuse_set_signal_handlers(se) != 0) return 1;
    if (fuse_session_mount(se, mountpoint) != 0) return 1;
    if (fuse_daemonize(foreground) != 0) return 1;
    if (cfg.pidfile) {
        FILE *f = fopen(cfg.pidfile, "w");
        if (f) {
            fprintf(f, "%d\n", (int)getpid());
            fclose(f);
        }
    }
    /* SIGUSR1/SIGUSR2 go to one thread that writes or resets the counters. */
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t tid;
    pthread_create(&tid, NULL, signal_thread, &set);
    write_stats();

    struct fuse_loop_config *lc = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(lc, (unsigned)cfg.threads);
    fuse_loop_cfg_set_idle_threads(lc, (unsigned)cfg.threads);
    int ret = foreground && debug ? fuse_session_loop(se) : fuse_session_loop_mt(se, lc);
    fuse_loop_cfg_destroy(lc);
    write_trace();
    write_stats();
    fuse_session_unmount(se);
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    if (cfg.pidfile) unlink(cfg.pidfile);
    return ret ? 1 : 0;
}
