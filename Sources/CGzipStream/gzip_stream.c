#include "gzip_stream.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <isa-l/igzip_lib.h>

enum { input_size = 1 << 20 };

struct buffer {
    uint8_t *data;
    size_t length;
};

struct shifter_gzip_stream {
    int fd;
    size_t buffer_size;
    int buffer_count;
    struct buffer *buffers;
    /* Filled buffers are [head, head + filled) modulo buffer_count; the reader holds head while
     * it reads it (reader_holds), so the writer never refills it under the reader. */
    int head, filled, reader_holds;
    int finished, stopping;
    char error[160];
    pthread_mutex_t lock;
    pthread_cond_t changed;
    pthread_t thread;
    struct inflate_state state;
    uint8_t input[input_size];
};

static void fail(shifter_gzip_stream *stream, const char *message) {
    pthread_mutex_lock(&stream->lock);
    if (stream->error[0] == 0) snprintf(stream->error, sizeof stream->error, "%s", message);
    pthread_mutex_unlock(&stream->lock);
}

static const char *inflate_error(int status) {
    switch (status) {
    case ISAL_INVALID_BLOCK:
    case ISAL_INVALID_SYMBOL:
    case ISAL_INVALID_LOOKBACK: return "gzip: invalid compressed data";
    case ISAL_INVALID_WRAPPER: return "gzip: invalid header";
    case ISAL_UNSUPPORTED_METHOD: return "gzip: unsupported compression method";
    case ISAL_INCORRECT_CHECKSUM: return "gzip: CRC-32 or length check failed (the data is corrupt)";
    default: return "gzip: decompression failed";
    }
}

/* Waits for a free buffer; NULL when the reader is gone. */
static struct buffer *free_buffer(shifter_gzip_stream *stream) {
    pthread_mutex_lock(&stream->lock);
    while (!stream->stopping && stream->filled + stream->reader_holds >= stream->buffer_count)
        pthread_cond_wait(&stream->changed, &stream->lock);
    struct buffer *buffer = stream->stopping ? NULL
        : &stream->buffers[(stream->head + stream->filled + stream->reader_holds) % stream->buffer_count];
    pthread_mutex_unlock(&stream->lock);
    return buffer;
}

static void publish(shifter_gzip_stream *stream, int finished) {
    pthread_mutex_lock(&stream->lock);
    if (!finished) stream->filled++;
    else stream->finished = 1;
    pthread_cond_broadcast(&stream->changed);
    pthread_mutex_unlock(&stream->lock);
}

/* Reads more input after what is left unread; 0 at the end of the file. */
static ssize_t refill(shifter_gzip_stream *stream) {
    struct inflate_state *state = &stream->state;
    if (state->avail_in > 0 && state->next_in != stream->input) memmove(stream->input, state->next_in, state->avail_in);
    state->next_in = stream->input;
    ssize_t count;
    do {
        count = read(stream->fd, stream->input + state->avail_in, input_size - state->avail_in);
    } while (count < 0 && errno == EINTR);
    if (count > 0) state->avail_in += (uint32_t)count;
    return count;
}

static void *inflate_thread(void *argument) {
    shifter_gzip_stream *stream = argument;
    struct inflate_state *state = &stream->state;
    int at_end_of_file = 0, in_member = 1;
    struct buffer *out = free_buffer(stream);
    while (out != NULL) {
        if (state->avail_in == 0 && !at_end_of_file) {
            ssize_t count = refill(stream);
            if (count < 0) { fail(stream, "gzip: cannot read the layer file"); break; }
            if (count == 0) at_end_of_file = 1;
        }
        if (!in_member) {
            /* Between members: another starts with the gzip magic; anything else ends the data. */
            if (state->avail_in < 2 && !at_end_of_file) {
                ssize_t count = refill(stream);
                if (count < 0) { fail(stream, "gzip: cannot read the layer file"); break; }
                if (count == 0) at_end_of_file = 1;
                continue;
            }
            if (state->avail_in < 2 || state->next_in[0] != 0x1f || state->next_in[1] != 0x8b) break;
            uint8_t *next = state->next_in;
            uint32_t left = state->avail_in;
            isal_inflate_reset(state);
            state->crc_flag = ISAL_GZIP;
            state->next_in = next;
            state->avail_in = left;
            in_member = 1;
        }
        state->next_out = out->data + out->length;
        state->avail_out = (uint32_t)(stream->buffer_size - out->length);
        int status = isal_inflate(state);
        if (status < 0) { fail(stream, inflate_error(status)); break; }
        out->length = stream->buffer_size - state->avail_out;
        if (state->block_state == ISAL_BLOCK_FINISH) in_member = 0;
        else if (at_end_of_file && state->avail_in == 0 && state->avail_out > 0) {
            fail(stream, "gzip: the data ends before the end of the compressed stream (truncated layer)");
            break;
        }
        if (out->length == stream->buffer_size) {
            publish(stream, 0);
            out = free_buffer(stream);
            if (out != NULL) out->length = 0;
        }
    }
    if (out != NULL && out->length > 0 && stream->error[0] == 0) {
        publish(stream, 0);
    }
    publish(stream, 1);
    return NULL;
}

shifter_gzip_stream *shifter_gzip_open(int fd, size_t buffer_size, int buffer_count) {
    if (buffer_count < 2 || buffer_size < 4096 || buffer_size > UINT32_MAX) { errno = EINVAL; return NULL; }
    shifter_gzip_stream *stream = calloc(1, sizeof *stream);
    if (stream == NULL) return NULL;
    stream->fd = fd;
    stream->buffer_size = buffer_size;
    stream->buffer_count = buffer_count;
    stream->buffers = calloc((size_t)buffer_count, sizeof *stream->buffers);
    int ok = stream->buffers != NULL;
    for (int i = 0; ok && i < buffer_count; i++) ok = (stream->buffers[i].data = malloc(buffer_size)) != NULL;
    pthread_mutex_init(&stream->lock, NULL);
    pthread_cond_init(&stream->changed, NULL);
    isal_inflate_init(&stream->state);
    stream->state.crc_flag = ISAL_GZIP;
    stream->state.next_in = stream->input;
    /* The thread takes no signals: they stay with the threads that handle them. */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    int started = ok ? pthread_create(&stream->thread, NULL, inflate_thread, stream) : ENOMEM;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (started != 0) {
        stream->fd = -1;
        shifter_gzip_close(stream);
        errno = started;
        return NULL;
    }
    return stream;
}

ssize_t shifter_gzip_read(shifter_gzip_stream *stream, const void **data) {
    pthread_mutex_lock(&stream->lock);
    if (stream->reader_holds) {
        stream->buffers[stream->head].length = 0;
        stream->head = (stream->head + 1) % stream->buffer_count;
        stream->reader_holds = 0;
        pthread_cond_broadcast(&stream->changed);
    }
    while (stream->filled == 0 && !stream->finished) pthread_cond_wait(&stream->changed, &stream->lock);
    ssize_t count;
    if (stream->filled > 0) {
        stream->filled--;
        stream->reader_holds = 1;
        *data = stream->buffers[stream->head].data;
        count = (ssize_t)stream->buffers[stream->head].length;
    } else {
        count = stream->error[0] ? -1 : 0;
    }
    pthread_mutex_unlock(&stream->lock);
    return count;
}

const char *shifter_gzip_error(shifter_gzip_stream *stream) {
    pthread_mutex_lock(&stream->lock);
    const char *error = stream->error[0] ? stream->error : NULL;
    pthread_mutex_unlock(&stream->lock);
    return error;
}

void shifter_gzip_close(shifter_gzip_stream *stream) {
    if (stream == NULL) return;
    if (stream->fd >= 0) {
        pthread_mutex_lock(&stream->lock);
        stream->stopping = 1;
        pthread_cond_broadcast(&stream->changed);
        pthread_mutex_unlock(&stream->lock);
        pthread_join(stream->thread, NULL);
        close(stream->fd);
    }
    if (stream->buffers != NULL)
        for (int i = 0; i < stream->buffer_count; i++) free(stream->buffers[i].data);
    free(stream->buffers);
    pthread_mutex_destroy(&stream->lock);
    pthread_cond_destroy(&stream->changed);
    free(stream);
}
