/*
 * Incremental reader of an MJPEG-over-HTTP response body: either
 * multipart/x-mixed-replace (one JPEG per part, what IP cameras, mjpg-
 * streamer, µStreamer, motion and sluice itself serve) or a plain stream of
 * concatenated JPEGs (Content-Type image/jpeg, application/octet-stream,
 * anything that is not multipart).
 *
 * Pure, like mjpeg_split.h: no allocation, no I/O, no globals; the CALLER
 * owns the byte buffer, the reader says where a frame is and how many
 * leading bytes to drop, with the same calling pattern:
 *
 *   ss_mp p; ss_mp_init(&p, ctype, ctype_len, max_frame);
 *   size_t cap = ss_mp_cap(&p);           // max_frame + SS_MP_HEAD_MAX
 *   ... append new body bytes to buf[have..cap), then:
 *   for (;;) {
 *     ss_mp_out o;
 *     int got = ss_mp_next(&p, buf, have, &o);
 *     if (got) publish(buf + o.off, o.len);       // copy it
 *     memmove(buf, buf + o.consumed, have - o.consumed);
 *     have -= o.consumed;
 *     if (!got) break;                            // append more input
 *   }
 * After a call that returns 0 and the drop, fewer than cap bytes remain, so
 * there is always room for more input.
 *
 * Multipart parts: the boundary comes from the Content-Type's boundary=
 * parameter (quoted or not). A delimiter line is the boundary preceded by
 * two or more dashes (RFC 2046 says exactly "--"; cameras whose boundary
 * already starts with "--" write four), or by none at the start of a line
 * (some cameras forget them), followed by optional white space and CRLF or
 * LF; with a trailing "--" it closes the body (later bytes are garbage).
 * Part headers run to an empty line (at most SS_MP_HEAD_MAX bytes).
 * Content-Length, when present, delimits the body, which must then start
 * with SOI (FF D8) and end with EOI (FF D9) optionally followed by up to 8
 * bytes of white space or NUL; when it does not (a server that miscounts),
 * or when there is no Content-Length, the JPEG is found with ss_split
 * instead, which is also what reads a plain stream. Parts whose
 * Content-Type is not image/... (metadata some cameras interleave) are
 * skipped and counted as `other`.
 *
 * What is not a frame is dropped and counted: bytes outside parts other
 * than line breaks (garbage), parts without a JPEG or with over-long
 * headers (bad), parts over max_frame (oversized), and the splitter's own
 * counters (in `sp`).
 */
#ifndef SS_MULTIPART_H
#define SS_MULTIPART_H

#include <stddef.h>

#include "mjpeg_split.h"

/* Bytes of delimiter line plus part headers a part may use. */
#define SS_MP_HEAD_MAX 8192
/* Longest boundary kept (RFC 2046 allows 70 characters). */
#define SS_MP_BOUNDARY_MAX 70

/* Caller storage; fields before the counters are private. */
typedef struct ss_mp {
  char boundary[SS_MP_BOUNDARY_MAX + 1];
  size_t blen;           /* 0: not multipart, a plain JPEG stream */
  int state;
  size_t max_frame;
  unsigned long long left; /* bytes of the part body to skip or take */
  int bol;               /* the byte before the buffer ended a line */
  ss_split sp;           /* finds JPEGs without Content-Length */
  /* Counters, read-only for the caller; they only ever grow. */
  unsigned long long parts;     /* multipart parts seen */
  unsigned long long frames;    /* frames returned */
  unsigned long long garbage;   /* bytes outside parts, line breaks aside
                                   (the splitter's garbage is in sp) */
  unsigned long long bad;       /* parts with no JPEG, or headers too long */
  unsigned long long oversized; /* parts whose Content-Length > max_frame */
  unsigned long long other;     /* non-image parts, skipped */
  int closed;                   /* the closing delimiter was seen */
  /* The last part's X-Frame and X-Unix-Ms headers (a sluice server's frame
   * sequence and publish time, Unix ms), 0 when absent: how a relay
   * measures its lag behind another sluice-stream. */
  unsigned long long part_seq, part_unix_ms;
} ss_mp;

typedef struct ss_mp_out {
  size_t off, len;  /* the frame (when ss_mp_next returned 1) */
  size_t consumed;  /* ALWAYS drop this many leading bytes afterwards */
} ss_mp_out;

/* Start a reader for a body of Content-Type `ctype` (`len` bytes, not
 * NUL-terminated, borrowed for the call; NULL for none): multipart when it
 * is multipart/... with a usable boundary, else a plain JPEG stream.
 * Counters are zeroed. Returns 1 for multipart, 0 for a plain stream. */
int ss_mp_init(ss_mp *p, const char *ctype, size_t len, size_t max_frame);

/* The buffer size the caller needs: max_frame + SS_MP_HEAD_MAX. */
size_t ss_mp_cap(const ss_mp *p);

/* Scan buf[0, len) (what the last call left plus new input). Returns 1 with
 * a frame at buf[out->off, out->off + out->len) (call again after the
 * drop), or 0 when more input is needed. Never reads outside buf[0, len). */
int ss_mp_next(ss_mp *p, const unsigned char *buf, size_t len, ss_mp_out *out);

/* Bytes dropped as garbage, the splitter's included. */
unsigned long long ss_mp_garbage(const ss_mp *p);
/* Frames lost: bad + oversized parts and the splitter's truncated,
 * corrupt and oversized frames. */
unsigned long long ss_mp_lost(const ss_mp *p);

#endif
