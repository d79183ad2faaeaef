/*
 * Frame sources of sluice-stream: each feeds one hub with sl_hub_publish,
 * from a thread of its own (generated, folder, stdin) or from the loop
 * (relays, which use the library's HTTP/WebSocket clients).
 *
 *   testpattern          generated pattern, the default: JPEG (libturbojpeg)
 *                        or, with codec H.264, H.264 (openh264)
 *   dir:PATH             JPEG files of a folder, in a loop
 *   -                    an MJPEG or H.264 Annex-B byte stream on stdin
 *                        (ffmpeg, gstreamer, rpicam-vid)
 *   http://..., ws://... relay of another MJPEG/WebSocket stream, or of a
 *                        raw H.264 stream (/stream.h264)
 *
 * Files: source.c (dispatch, shared code), src_pattern.c, src_dir.c,
 * src_stdin.c, src_relay.c (+ multipart.c, the body reader), sharing
 * source_impl.h.
 */
#ifndef SS_SOURCE_H
#define SS_SOURCE_H

#include <stddef.h>

#include "sluice.h"

typedef struct ss_source ss_source;

/* Codecs of a source. AUTO: what the source says (stdin: the first bytes;
 * a relay: its URL or response type; testpattern and dir: MJPEG). */
enum { SS_CODEC_AUTO = 0, SS_CODEC_MJPEG = 1, SS_CODEC_H264 = 2 };

typedef struct ss_source_opts {
  int codec;              /* SS_CODEC_*; resolved by ss_source_codec() */
  int bitrate_kbps;       /* testpattern H.264: 0 = by picture size */
  int gop_frames;         /* testpattern H.264: IDR interval (2 s) */
  /* stdin: bytes ss_source_codec() read while probing, fed first. Borrowed:
   * they must outlive ss_source_start (which copies them). */
  const unsigned char *prefix;
  size_t prefix_len;
  int width, height;      /* testpattern: frame size (640x480) */
  double fps;             /* testpattern and dir: frames per second (30) */
  int quality;            /* testpattern: JPEG quality (80) */
  size_t max_frame;       /* stdin, dir, relay: largest frame accepted (8 MiB) */
  const char *user, *pass;/* relay: credentials (Basic or Digest); copied.
                             NULL: take them from the URL (user:pass@host) */
  sl_hub_group *group;    /* --threads > 1: publish into this group (the
                             hub given to ss_source_start is one of its
                             members, on the source's manager) instead of
                             the hub alone. Borrowed: it must outlive the
                             source. NULL: the hub */
  int fd;                 /* stdin: the descriptor "-" reads (0, standard
                             input, when zero-initialised). Borrowed: never
                             closed, its flags are left alone. Tests feed
                             the source through a pipe with it. */
} ss_source_opts;

/* The codec the source described by `spec` produces, resolving AUTO in
 * `o->codec` (and setting it): for stdin it waits up to `probe_ms` for the
 * first bytes (H.264 when they start with an Annex-B start code), kept in
 * `buf` (`cap` bytes, the caller's) and named by o->prefix. Loop thread,
 * before ss_source_start; the hub must be made with the matching kind. */
int ss_source_codec(const char *spec, ss_source_opts *o, int probe_ms,
                    unsigned char *buf, size_t cap);

/* Start the source described by `spec` (NULL or "" mean "testpattern";
 * borrowed for the call) feeding hub `h` of manager `m`. `o` may be NULL
 * for the defaults; it is copied, and zero or negative fields take the
 * defaults. Must be called on the loop thread. Returns NULL and writes a
 * message that says what to fix into err on failure.
 *
 * Threaded sources (testpattern, dir, stdin) publish from their own thread
 * and start publishing at the first loop iteration after this call. They
 * honour sl_hub_ready(): while a lossless subscriber is full they wait
 * (polling every 5 ms) instead of publishing. When the hub's queue of frames
 * from other threads is full (SL_EFULL: the loop is behind), testpattern
 * and dir skip that frame (stats.skipped, which also counts frames passed
 * over when the producer wakes up more than a frame late); stdin retries
 * it, since a pipe pushes back on its writer anyway.
 * Relays run on the loop thread and reconnect with exponential backoff
 * (250 ms doubling to 10 s, back to 250 ms after a frame arrives).
 *
 * Stop the source before freeing its hub or its manager.
 * Example:
 *   ss_source_opts o = {.fps = 15};
 *   ss_source *s = ss_source_start("dir:/srv/frames", m, h, &o, err, 256); */
ss_source *ss_source_start(const char *spec, sl_mgr *m, sl_hub *h,
                           const ss_source_opts *o, char *err, size_t errlen);

/* Stop and free the source: joins its thread (a sleeping producer notices
 * within 20 ms, a read blocked on stdin is woken at once) or closes a
 * relay's connection. Frames it already published stay in the hub. Loop
 * thread. NULL ok. */
void ss_source_stop(ss_source *s);

/* A one-line description for logs and /api/streams ("testpattern 640x480
 * @30fps"), and counters. */
const char *ss_source_describe(const ss_source *s);
/* SS_CODEC_MJPEG or SS_CODEC_H264. */
int ss_source_codec_of(const ss_source *s);
typedef struct ss_source_stats {
  unsigned long long frames, bytes; /* published into the hub */
  unsigned long long errors;   /* frames lost: encoder or file errors,
                                  truncated, corrupt, oversized or non-JPEG
                                  frames and parts, upstream failures */
  unsigned long long reconnects; /* relays: reconnection attempts */
  unsigned long long skipped;  /* testpattern, dir: frames not published
                                  because the hub's queue was full, or
                                  because the producer fell more than a
                                  frame behind and skipped ahead */
  unsigned long long garbage;  /* stdin, relay: bytes outside any frame */
  int connected;          /* relays: 1 while the upstream is connected;
                             threaded sources: 1 while running */
  int ended;              /* stdin: end of stream reached (the hub keeps
                             its last frame) */
  /* Relays of another sluice-stream (its MJPEG parts' X-Frame and
   * X-Unix-Ms headers, its WebSocket H.264 message headers): the upstream's
   * sequence number and publish time (Unix ms) of the last frame received,
   * our wall clock when it arrived, and the frames the upstream skipped for
   * us (holes in its sequence within one connection). All 0 when the
   * upstream does not say (a camera, raw Annex-B). lag = arrival -
   * publish, meaningful across hosts whose clocks agree (NTP). */
  unsigned long long up_seq, up_unix_ms, up_arrival_ms, up_gaps;
} ss_source_stats;
void ss_source_stats_get(const ss_source *s, ss_source_stats *out);

#endif
