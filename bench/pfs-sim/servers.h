/*
 * The parallel filesystem's shared servers, as every pfs-sim instance of one machine sees them:
 * one metadata server (MDS) and one data server (the OSTs' aggregate bandwidth), each serving
 * requests one at a time, first come first served. Their state is a file that every instance
 * maps (`pfs-sim --mds=FILE`), guarded by a process-shared mutex.
 *
 * Besides the requests of the real instances ("probe" nodes), the servers can serve a background
 * load: V virtual nodes, each replaying a request trace recorded from a real node that ran the same
 * workload (`pfs-sim --trace=FILE`, then `pfs-load init --trace=FILE --vnodes=V`). A virtual node
 * issues each request once the answer it followed in the trace has come and its recorded think
 * time has passed (a closed loop, as a real client's code waits for its answers), in the trace's
 * order. Virtual nodes cost no
 * thread: their next requests sit in a heap ordered by time, and the servers serve them when a
 * real request arrives after them (or when `pfs-load stats --drain` asks), in arrival order with
 * the real ones. Times are nanoseconds on the machine's monotonic clock, or, for an instance that
 * skips its waits (`pfs-sim --skip-waits`), on that instance's own simulated clock.
 */
#ifndef PFS_SERVERS_H
#define PFS_SERVERS_H

#include <pthread.h>
#include <stdint.h>

#define SERVERS_MAGIC 0x70667373696d3033ull /* "pfssim03" */

enum request_kind { REQ_META = 0, REQ_DATA = 1 };
enum requester { BY_REAL = 0, BY_VIRTUAL = 1 };

/* How far back a request's answer may be waited for (requests in flight at once, a node). */
#define TRACE_WINDOW 32

/* One request of the trace: the answer it followed (`after` requests back, 1..TRACE_WINDOW; 0: it
 * came while every request before it was still in flight, and follows the one before it as it
 * came), the think time after that, its kind and its size. Requests a node had in flight at once
 * are replayed in flight at once. */
struct trace_rec {
    uint64_t gap_ns;
    uint32_t bytes;
    uint16_t kind;
    uint16_t after;
};

/* A virtual node's next request: when it is issued, which node, which request of the trace. */
struct vnode {
    uint64_t at_ns;
    uint32_t node;
    uint32_t index;
};

struct servers {
    uint64_t magic;
    uint64_t size; /* of the file, in bytes */
    pthread_mutex_t lock;
    /* settings */
    uint64_t meta_service_ns;   /* the MDS's time per metadata request */
    uint64_t data_service_ns;   /* the data server's fixed time per data request */
    double data_ns_per_byte;    /* and per byte (1 / aggregate bandwidth); 0: none */
    uint64_t meta_latency_ns;   /* a virtual client's own part of a metadata request (network, client) */
    uint64_t data_latency_ns;   /* and of a data request */
    uint64_t jitter_ns;         /* virtual nodes start spread evenly over this long */
    uint32_t vnodes, trace_len;
    /* state */
    uint32_t armed;             /* the virtual nodes start at the next request */
    uint32_t heap_len;
    uint64_t t0_ns;             /* when they started (0: not yet) */
    uint64_t meta_free_ns, data_free_ns;
    /* counters, [BY_REAL] and [BY_VIRTUAL] */
    uint64_t served[2][2];      /* [requester][kind] */
    uint64_t queued_ns[2][2];   /* time waited for the server, in all */
    uint64_t bytes[2];
    uint64_t vnodes_done;
    uint64_t last_vnode_end_ns; /* when the last virtual node got its last answer */
    /* followed by struct vnode heap[vnodes], uint64_t answers[vnodes][TRACE_WINDOW] (each node's
     * latest answers), then struct trace_rec trace[trace_len] */
};

static inline struct vnode *servers_heap(struct servers *s) { return (struct vnode *)(s + 1); }
static inline uint64_t *servers_answers(struct servers *s) { return (uint64_t *)(servers_heap(s) + s->vnodes); }
static inline struct trace_rec *servers_trace(struct servers *s) {
    return (struct trace_rec *)(servers_answers(s) + (uint64_t)s->vnodes * TRACE_WINDOW);
}
static inline uint64_t servers_size(uint32_t vnodes, uint32_t trace_len) {
    return sizeof(struct servers) + (uint64_t)vnodes * (sizeof(struct vnode) + TRACE_WINDOW * sizeof(uint64_t)) +
           (uint64_t)trace_len * sizeof(struct trace_rec);
}

/* servers_lock and servers_unlock: the mutex, made consistent again if its holder died. */
void servers_lock(struct servers *s);
void servers_unlock(struct servers *s);

/* servers_init: fresh settings and state in a mapping of servers_size(vnodes, trace_len) bytes
 * (heap and trace left to the caller). */
void servers_init(struct servers *s, uint32_t vnodes, uint32_t trace_len);

/* servers_advance: serves every virtual request issued up to `now` (UINT64_MAX: all of them),
 * starting the virtual nodes first if they are armed. Called with the lock held. */
void servers_advance(struct servers *s, uint64_t now);

/* servers_request: one real request of `kind` and `bytes` arriving at `now`; returns when the
 * server has answered it (its turn and its service time). Takes the lock. */
uint64_t servers_request(struct servers *s, enum request_kind kind, uint64_t bytes, uint64_t now);

#endif
