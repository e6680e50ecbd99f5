/* The shared servers and their virtual load (see servers.h). */
#define _GNU_SOURCE
#include "servers.h"

#include <errno.h>
#include <string.h>

void servers_lock(struct servers *s) {
    if (pthread_mutex_lock(&s->lock) == EOWNERDEAD) pthread_mutex_consistent(&s->lock);
}

void servers_unlock(struct servers *s) { pthread_mutex_unlock(&s->lock); }

void servers_init(struct servers *s, uint32_t vnodes, uint32_t trace_len) {
    memset(s, 0, sizeof *s);
    s->magic = SERVERS_MAGIC;
    s->size = servers_size(vnodes, trace_len);
    s->vnodes = vnodes;
    s->trace_len = trace_len;
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&s->lock, &attr);
    pthread_mutexattr_destroy(&attr);
}

/* serve: one request of `kind` issued at `at` takes its turn; returns when the server is done. */
static uint64_t serve(struct servers *s, int by, enum request_kind kind, uint64_t bytes, uint64_t at) {
    uint64_t *free_at = kind == REQ_META ? &s->meta_free_ns : &s->data_free_ns;
    uint64_t service = kind == REQ_META ? s->meta_service_ns
                                        : s->data_service_ns + (uint64_t)((double)bytes * s->data_ns_per_byte);
    uint64_t start = *free_at > at ? *free_at : at;
    *free_at = start + service;
    s->served[by][kind]++;
    s->queued_ns[by][kind] += start - at;
    if (kind == REQ_DATA) s->bytes[by] += bytes;
    return start + service;
}

/* The heap of the virtual nodes' next requests, earliest first. */
static void sift_down(struct vnode *heap, uint32_t len, uint32_t i) {
    for (;;) {
        uint32_t left = 2 * i + 1, right = left + 1, least = i;
        if (left < len && heap[left].at_ns < heap[least].at_ns) least = left;
        if (right < len && heap[right].at_ns < heap[least].at_ns) least = right;
        if (least == i) return;
        struct vnode t = heap[i];
        heap[i] = heap[least];
        heap[least] = t;
        i = least;
    }
}

static void start_virtual_nodes(struct servers *s, uint64_t now) {
    struct vnode *heap = servers_heap(s);
    struct trace_rec *trace = servers_trace(s);
    s->t0_ns = now;
    s->armed = 0;
    s->heap_len = 0;
    if (s->trace_len == 0) return;
    /* Node i starts i/V of the jitter after t0: already in time order, so already a heap. */
    for (uint32_t i = 0; i < s->vnodes; i++) {
        uint64_t offset = s->vnodes > 1 ? (uint64_t)((double)s->jitter_ns * i / s->vnodes) : 0;
        heap[s->heap_len++] = (struct vnode){ .at_ns = now + offset + trace[0].gap_ns, .node = i, .index = 0 };
    }
}

void servers_advance(struct servers *s, uint64_t now) {
    if (s->armed && now != UINT64_MAX) start_virtual_nodes(s, now);
    struct vnode *heap = servers_heap(s);
    struct trace_rec *trace = servers_trace(s);
    uint64_t *answers = servers_answers(s);
    while (s->heap_len > 0 && heap[0].at_ns <= now) {
        struct vnode *v = &heap[0];
        const struct trace_rec *r = &trace[v->index];
        uint64_t answered = serve(s, BY_VIRTUAL, r->kind, r->bytes, v->at_ns) +
                            (r->kind == REQ_META ? s->meta_latency_ns : s->data_latency_ns);
        uint64_t *mine = &answers[(uint64_t)v->node * TRACE_WINDOW];
        mine[v->index % TRACE_WINDOW] = answered;
        if (++v->index < s->trace_len) {
            /* After the answer it followed, or after the request before it; never before that one. */
            const struct trace_rec *next = &trace[v->index];
            uint64_t base = next->after ? mine[(v->index - next->after) % TRACE_WINDOW] : v->at_ns;
            uint64_t at = base + next->gap_ns;
            if (at > v->at_ns) v->at_ns = at;
        } else {
            s->vnodes_done++;
            if (answered > s->last_vnode_end_ns) s->last_vnode_end_ns = answered;
            heap[0] = heap[--s->heap_len];
        }
        sift_down(heap, s->heap_len, 0);
    }
}

uint64_t servers_request(struct servers *s, enum request_kind kind, uint64_t bytes, uint64_t now) {
    servers_lock(s);
    servers_advance(s, now);
    uint64_t done = serve(s, BY_REAL, kind, bytes, now);
    servers_unlock(s);
    return done;
}
