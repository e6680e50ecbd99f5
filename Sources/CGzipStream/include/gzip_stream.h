#ifndef SHIFTER_GZIP_STREAM_H
#define SHIFTER_GZIP_STREAM_H

#include <stddef.h>
#include <sys/types.h>

/*
 * A gzip file decompressed with ISA-L's igzip on a thread of its own, a few buffers ahead of its
 * reader: the layer's inflate runs on one core while tar parsing and squashfs block compression
 * run on the others. Concatenated gzip members are read as one stream, as gzip(1) and zlib read
 * them; each member's CRC-32 and length are checked.
 */
typedef struct shifter_gzip_stream shifter_gzip_stream;

/* Starts decompressing the file open at fd, which the stream then owns and closes. At most
 * buffer_count buffers of buffer_size bytes are filled ahead. NULL with errno set on failure. */
shifter_gzip_stream *shifter_gzip_open(int fd, size_t buffer_size, int buffer_count);

/* The next decompressed bytes, valid until the next call: their count, 0 at the end of the
 * stream, or -1 when the data is not valid gzip or cannot be read (see shifter_gzip_error). */
ssize_t shifter_gzip_read(shifter_gzip_stream *stream, const void **data);

/* Why the stream failed, or NULL. */
const char *shifter_gzip_error(shifter_gzip_stream *stream);

/* Stops the thread, closes the file and frees everything. */
void shifter_gzip_close(shifter_gzip_stream *stream);

#endif
