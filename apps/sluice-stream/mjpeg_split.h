/*
 * Incremental splitter for a stream of concatenated JPEGs ("MJPEG" as
 * written by `ffmpeg -f mjpeg -` or gstreamer `jpegenc ! fdsink`).
 *
 * Pure: no allocation, no I/O, no globals. The CALLER owns the byte buffer;
 * the splitter only scans it and says which bytes form a frame and how many
 * leading bytes the caller may drop. Its state is a byte-at-a-time machine
 * that never looks back, so any chunking of the input gives the same frames
 * and counters, and every input byte is examined once.
 *
 * What counts as a frame: SOI (FF D8), then JPEG marker segments walked by
 * their length fields (so an FF D9 inside an APP1/EXIF thumbnail, a comment
 * or a table does not end the frame), then entropy-coded data after each SOS
 * in which FF 00 (stuffing), FF D0..D7 (RSTn) and FF FF (fill) are data,
 * then EOI (FF D9). Like libjpeg, stray non-FF bytes where a marker is due
 * are skipped, and FF fill bytes before a marker are allowed.
 *   garbage   bytes outside any frame are dropped and counted;
 *   truncated a new SOI where a marker or entropy data is due ends the
 *             current frame unfinished: it is dropped, the new frame starts;
 *   corrupt   a segment length below 2 cannot be walked: the frame is
 *             dropped and the splitter looks for the next SOI;
 *   oversized a frame that would exceed max_frame is dropped as soon as it
 *             does, and the rest of it is scanned without being kept.
 * A frame cut inside a segment is caught too, although the segment's length
 * reaches into the next frame: segment lengths, table payloads (DQT, DHT, SOF,
 * SOS header, ...) and small APPn/COM payloads (under 64 bytes, such as JFIF
 * and ffmpeg's comment) are watched for FF D8 FF, an SOI plus the FF of its
 * first marker (no encoder writes those bytes there; if one did, its frame
 * would be taken as cut). Only a cut more than 4 bytes into a large APPn or
 * COM payload (EXIF, ICC profile, XMP: camera files, not encoder streams) goes
 * unseen: the length then swallows the next frame's start and the two frames
 * come out spliced, or lost if the swallowed part runs past the next EOI.
 * Honouring lengths is what real streams (EXIF thumbnails holding FF D8 and
 * FF D9) need.
 *
 * Bound: after a call that returns 0 and the caller's drop, at most
 * max_frame - 1 bytes remain, so a buffer of max_frame bytes always has room
 * for more input.
 *
 * Use (one thread at a time per splitter; buf is borrowed for the call):
 *   ss_split s; ss_split_init(&s, 4 << 20);
 *   unsigned char *buf = malloc(4 << 20); size_t have = 0;  // max_frame
 *   for (;;) {
 *     ss_split_out o;
 *     int got = ss_split_next(&s, buf, have, &o);
 *     if (got) publish(buf + o.off, o.len);   // copy it: buf is reused
 *     memmove(buf, buf + o.consumed, have - o.consumed);
 *     have -= o.consumed;
 *     if (!got) {                              // read more, then loop
 *       ssize_t n = read(fd, buf + have, (4 << 20) - have);
 *       if (n <= 0) break;
 *       have += (size_t)n;
 *     }
 *   }
 *   ss_split_finish(&s);                       // count a cut-off last frame
 */
#ifndef SS_MJPEG_SPLIT_H
#define SS_MJPEG_SPLIT_H

#include <stddef.h>

/* Caller storage; fields before the counters are private. */
typedef struct ss_split {
  size_t max_frame;     /* largest frame kept, >= 4 */
  size_t scanned;       /* bytes at the front of the caller's buffer already
                           examined */
  size_t start;         /* offset of the current frame's SOI in the buffer */
  size_t frame_len;     /* bytes of the current frame seen so far */
  size_t left;          /* segment payload bytes still to skip */
  int state;            /* private enum in mjpeg_split.c */
  int dropping;         /* oversized: walking on without keeping bytes */
  size_t watch;         /* payload bytes still watched for an SOI */
  int match;            /* bytes of FF D8 FF matched so far */
  /* Counters, read-only for the caller; they only ever grow. */
  unsigned long long frames;        /* frames returned */
  unsigned long long garbage_bytes; /* bytes outside any frame */
  unsigned long long truncated;     /* frames cut by a new SOI or by finish */
  unsigned long long oversized;     /* frames longer than max_frame */
  unsigned long long corrupt;       /* frames with an unwalkable length */
} ss_split;

/* Result of one ss_split_next call. */
typedef struct ss_split_out {
  size_t off;      /* frame start in buf (only when the call returned 1) */
  size_t len;      /* frame length, SOI to EOI inclusive, <= max_frame */
  size_t consumed; /* ALWAYS drop exactly this many leading bytes of buf
                      before the next call (after using the frame) */
} ss_split_out;

/* Start (or restart) a splitter; counters are zeroed. Frames larger than
 * `max_frame` bytes are dropped; values below 4 are raised to 4. */
void ss_split_init(ss_split *s, size_t max_frame);

/* Scan buf[0, len): the bytes left from the previous call (after its drop)
 * followed by new input. Returns 1 when a complete frame is at
 * buf[out->off, out->off + out->len), with out->consumed = off + len; the
 * scan stops right after its EOI, so call again (after the drop) before
 * reading more input. Returns 0 when every byte has been scanned and more
 * input is needed; out->consumed then covers everything not part of an
 * unfinished frame. Never reads outside buf[0, len). If len is smaller than
 * the bytes already scanned (a caller bug), the splitter restarts its
 * search and returns 0 with consumed = len. */
int ss_split_next(ss_split *s, const unsigned char *buf, size_t len,
                  ss_split_out *out);

/* End of stream: an unfinished frame counts as truncated (unless already
 * counted as oversized), a pending FF byte as garbage; the splitter is ready
 * for a new stream, counters kept. The caller discards its buffer. */
void ss_split_finish(ss_split *s);

#endif
