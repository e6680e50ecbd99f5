/*
 * pfs-load: sets up the shared servers that pfs-sim instances given --mds=FILE use, with a
 * background load of virtual nodes, and reads what the servers did.
 *
 *   pfs-load init FILE [--mds-us=N] [--data-gbps=G] [--data-req-us=N] [--meta-us=N] [--data-us=N]
 *                      [--trace=TRACE --vnodes=V [--jitter-ms=N]]
 *       fresh servers in FILE (start or restart the instances after it): a metadata server of
 *       --mds-us (20) a request; a data server of G GB/s in all (0: no bandwidth term) and
 *       --data-req-us (0) a request; V virtual nodes, each replaying TRACE (a pfs-sim --trace
 *       file) with --meta-us (500) and --data-us (1000) of client latency per request, starting
 *       together at the next request any instance makes, spread over --jitter-ms (0)
 *   pfs-load stats FILE [--drain]
 *       what the servers did, as JSON; --drain first serves every virtual request still to come
 *       (no real request will come after it), so that the virtual nodes' end is known; virtual
 *       nodes that no request has started yet start then
 */
#define _GNU_SOURCE
#include "servers.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void die(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "pfs-load: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    exit(2);
}

static double number(const char *what, const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || v < 0) die("%s: \"%s\" is not a non-negative number", what, s);
    return v;
}

struct traced { uint64_t arrival, answered; uint32_t bytes, kind; };

static int by_arrival(const void *a, const void *b) {
    const struct traced *x = a, *y = b;
    return x->arrival < y->arrival ? -1 : x->arrival > y->arrival;
}

/* read_trace: pfs-sim's trace, in arrival order. */
static struct traced *read_trace(const char *path, size_t *len) {
    FILE *f = fopen(path, "r");
    if (!f) die("--trace=%s: %s", path, strerror(errno));
    size_t cap = 65536, n = 0;
    struct traced *recs = malloc(cap * sizeof *recs);
    char line[256], kind[16];
    unsigned long line_no = 0;
    while (recs && fgets(line, sizeof line, f)) {
        line_no++;
        if (line[0] == '#') continue;
        struct traced r;
        if (sscanf(line, "%" SCNu64 " %" SCNu64 " %15s %" SCNu32, &r.arrival, &r.answered, kind, &r.bytes) != 4 ||
            (strcmp(kind, "meta") != 0 && strcmp(kind, "data") != 0) || r.answered < r.arrival) {
            char where[32];
            snprintf(where, sizeof where, "%lu", line_no);
            die("--trace=%s: line %s is not \"ARRIVAL ANSWERED meta|data BYTES\"", path, where);
        }
        r.kind = strcmp(kind, "meta") == 0 ? REQ_META : REQ_DATA;
        if (n == cap) recs = realloc(recs, (cap *= 2) * sizeof *recs);
        if (recs) recs[n++] = r;
    }
    fclose(f);
    if (!recs) die("--trace=%s: %s", path, strerror(ENOMEM));
    qsort(recs, n, sizeof *recs, by_arrival);
    *len = n;
    return recs;
}

static struct servers *map_file(const char *path, int *fd_out) {
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) die("%s: %s", path, strerror(errno));
    struct stat st;
    uint64_t magic = 0;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < sizeof(struct servers) ||
        pread(fd, &magic, sizeof magic, 0) != (ssize_t)sizeof magic || magic != SERVERS_MAGIC)
        die("%s: %s", path, "holds no servers (pfs-load init, or a pfs-sim --mds, makes them)");
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) die("%s: %s", path, strerror(errno));
    *fd_out = fd;
    return map;
}

static int init(int argc, char **argv) {
    static const struct option longopts[] = {
        { "mds-us", required_argument, 0, 'm' }, { "data-gbps", required_argument, 0, 'g' },
        { "data-req-us", required_argument, 0, 'r' }, { "meta-us", required_argument, 0, 'M' },
        { "data-us", required_argument, 0, 'D' }, { "trace", required_argument, 0, 't' },
        { "vnodes", required_argument, 0, 'v' }, { "jitter-ms", required_argument, 0, 'j' }, { 0, 0, 0, 0 },
    };
    double mds_us = 20, gbps = 0, req_us = 0, meta_us = 500, data_us = 1000, vnodes = 0, jitter_ms = 0;
    const char *trace_path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': mds_us = number("--mds-us", optarg); break;
        case 'g': gbps = number("--data-gbps", optarg); break;
        case 'r': req_us = number("--data-req-us", optarg); break;
        case 'M': meta_us = number("--meta-us", optarg); break;
        case 'D': data_us = number("--data-us", optarg); break;
        case 't': trace_path = optarg; break;
        case 'v': vnodes = number("--vnodes", optarg); break;
        case 'j': jitter_ms = number("--jitter-ms", optarg); break;
        default: return 2;
        }
    }
    if (argc - optind != 1) die("%s%s", "usage: pfs-load init FILE [OPTIONS]", "");
    if (vnodes > 1e6 || vnodes != (double)(uint32_t)vnodes) die("--vnodes: %s%s", "a whole number of at most 1,000,000", "");
    if (vnodes > 0 && !trace_path) die("%s%s", "--vnodes needs --trace", "");
    size_t len = 0;
    struct traced *recs = trace_path ? read_trace(trace_path, &len) : NULL;
    if (len > UINT32_MAX) die("--trace=%s: %s", trace_path, "too many requests");
    uint32_t nodes = (uint32_t)vnodes, trace_len = nodes ? (uint32_t)len : 0;

    /* Made under another name and renamed into place: instances still running keep the servers
     * they mapped, whole, and the next ones find the new servers complete. */
    const char *path = argv[optind];
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.new.%d", path, (int)getpid()) >= (int)sizeof tmp) die("%s: %s", path, strerror(ENAMETOOLONG));
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) die("%s: %s", tmp, strerror(errno));
    uint64_t size = servers_size(nodes, trace_len);
    if (ftruncate(fd, (off_t)size) != 0) die("%s: %s", tmp, strerror(errno));
    struct servers *s = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (s == MAP_FAILED) die("%s: %s", tmp, strerror(errno));
    servers_init(s, nodes, trace_len);
    s->meta_service_ns = (uint64_t)llround(mds_us * 1e3);
    s->data_ns_per_byte = gbps > 0 ? 1.0 / gbps : 0; /* 1 GB/s is 1 byte a nanosecond */
    s->data_service_ns = (uint64_t)llround(req_us * 1e3);
    s->meta_latency_ns = (uint64_t)llround(meta_us * 1e3);
    s->data_latency_ns = (uint64_t)llround(data_us * 1e3);
    s->jitter_ns = (uint64_t)llround(jitter_ms * 1e6);
    /* Each request follows the latest answer the node had when it came (within the last
     * TRACE_WINDOW requests), after the think time between the two; one that came while all those
     * were in flight follows the request before it. */
    struct trace_rec *trace = servers_trace(s);
    for (uint32_t i = 0; i < trace_len; i++) {
        uint32_t after = 0;
        uint64_t latest = 0;
        for (uint32_t back = 1; back <= TRACE_WINDOW && back <= i; back++) {
            const struct traced *r = &recs[i - back];
            if (r->answered <= recs[i].arrival && (after == 0 || r->answered > latest)) {
                after = back;
                latest = r->answered;
            }
        }
        uint64_t gap = after ? recs[i].arrival - latest : i ? recs[i].arrival - recs[i - 1].arrival : 0;
        trace[i] = (struct trace_rec){ .gap_ns = gap, .bytes = recs[i].bytes, .kind = (uint16_t)recs[i].kind,
                                       .after = (uint16_t)after };
    }
    s->armed = nodes > 0;
    munmap(s, size);
    free(recs);
    close(fd);
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        die("%s: %s", path, strerror(errno));
    }
    return 0;
}

static double ms(uint64_t ns) { return ns / 1e6; }

static int stats(int argc, char **argv) {
    int drain = argc == 4 && strcmp(argv[3], "--drain") == 0;
    if (argc != 3 && !drain) die("%s%s", "usage: pfs-load stats FILE [--drain]", "");
    int fd;
    struct servers *s = map_file(argv[2], &fd);
    servers_lock(s);
    if (drain) {
        /* Virtual nodes still armed (no instance has asked anything) start now. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        servers_advance(s, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
        servers_advance(s, UINT64_MAX);
    }
    struct servers c = *s;
    servers_unlock(s);
    printf("{\"vnodes\": %" PRIu32 ", \"trace_len\": %" PRIu32 ", \"started\": %s, \"vnodes_done\": %" PRIu64 ", "
           "\"vnodes_end_ms\": %.3f,\n",
           c.vnodes, c.trace_len, c.t0_ns ? "true" : "false", c.vnodes_done,
           c.t0_ns && c.last_vnode_end_ns ? ms(c.last_vnode_end_ns - c.t0_ns) : 0.0);
    printf(" \"settings\": {\"mds_us\": %.3f, \"data_ns_per_byte\": %.6f, \"data_req_us\": %.3f, "
           "\"meta_us\": %.3f, \"data_us\": %.3f, \"jitter_ms\": %.3f},\n",
           c.meta_service_ns / 1e3, c.data_ns_per_byte, c.data_service_ns / 1e3, c.meta_latency_ns / 1e3,
           c.data_latency_ns / 1e3, ms(c.jitter_ns));
    const char *who[] = { "real", "virtual" };
    for (int by = 0; by < 2; by++) {
        printf(" \"%s\": {\"meta\": %" PRIu64 ", \"meta_queued_ms\": %.3f, \"data\": %" PRIu64
               ", \"data_queued_ms\": %.3f, \"bytes\": %" PRIu64 "}%s\n",
               who[by], c.served[by][REQ_META], ms(c.queued_ns[by][REQ_META]), c.served[by][REQ_DATA],
               ms(c.queued_ns[by][REQ_DATA]), c.bytes[by], by ? "" : ",");
    }
    printf("}\n");
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "init") == 0) return init(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "stats") == 0) return stats(argc, argv);
    fprintf(stderr, "usage: pfs-load init FILE [OPTIONS] | pfs-load stats FILE [--drain]\n");
    return 2;
}
