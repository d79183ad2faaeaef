/*
 * Shared by the H.264 stream tests (test_h264_stream.c, test_fmp4_stream.c):
 * sluice-stream publishing the openh264 test pattern, raw HTTP viewers
 * that read fast, slowly or stall, ffmpeg decoding what a viewer got to
 * gray frames whose block code (the hub sequence number) says which frames
 * it received, and a WebSocket client that records the payloads.
 *
 * Every function runs on the test's thread.
 */
#ifndef SL_H264_VIEWER_H
#define SL_H264_VIEWER_H

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pattern.h"
#include "rel_harness.h"
#include "sluice.h"

enum { HV_W = 320, HV_H = 240 };
#define HV_BASE_ARGS "--codec", "h264", "--size", "320x240", "--fps", "30", "--gop", "30"

static inline void hv_need(const char *tool) {
  if (test_sh("command -v %s >/dev/null 2>&1", tool) == 0) return;
  CHECK_MSG(!test_in_ci(), "%s is missing (CI may not skip)", tool);
  TEST_SKIP(tool);
}

/* The test pattern at `bitrate` kbit/s (NULL: the default), with `more`
 * arguments (NULL-terminated, may be NULL). */
static inline void hv_start_ex(struct rel_srv *s, const char *bitrate, const char *const *more) {
  hv_need("ffmpeg");
  const char *args[32] = {HV_BASE_ARGS, "--log-level", "info"};
  int n = 0;
  while (args[n]) n++;
  if (bitrate) args[n++] = "--bitrate", args[n++] = bitrate;
  for (int i = 0; more && more[i] && n < 31; i++) args[n++] = more[i];
  args[n] = NULL;
  rel_srv_start(s, args);
}

static inline void hv_start(struct rel_srv *s, const char *bitrate) { hv_start_ex(s, bitrate, NULL); }

static inline void hv_stop(struct rel_srv *s) { rel_srv_check_clean(s, rel_srv_stop(s, 10000)); }

/* A number of the stream's entry in /api/stats (-1 when absent). */
struct h264_stats {
  long long seq, held, frames_held, largest, viewers, gop_frames, gop_bytes, bitrate, resyncs;
  long long frames_in, mp4_fragments, mp4_bytes;
  long long loops; /* the server's event loops (--threads): each builds its own fragments */
};

static inline void hv_stats(int port, struct h264_stats *o) {
  int st = 0;
  char *r = test_http_get(port, "/api/stats", &st, NULL);
  CHECK_MSG(r != NULL && st == 200, "/api/stats: %d", st);
  const char *from = "\"streams\":[";
  o->seq = rel_json_num(r, from, "seq");
  o->held = rel_json_num(r, from, "held");
  o->frames_held = rel_json_num(r, from, "frames_held");
  o->largest = rel_json_num(r, from, "largest_frame");
  o->viewers = rel_json_num(r, from, "viewers");
  o->gop_frames = rel_json_num(r, from, "gop_frames");
  o->gop_bytes = rel_json_num(r, from, "gop_bytes");
  o->bitrate = rel_json_num(r, from, "bitrate");
  o->resyncs = rel_json_num(r, from, "resyncs");
  o->frames_in = rel_json_num(r, from, "frames_in");
  o->mp4_fragments = rel_json_num(r, from, "mp4_fragments");
  o->mp4_bytes = rel_json_num(r, from, "mp4_bytes");
  o->loops = rel_json_num(r, NULL, "threads");
  if (o->loops < 1) o->loops = 1;
  free(r);
}

/* The viewer's resyncs from /api/stats (the first entry of viewers_list). */
static inline long long hv_viewer_resyncs(int port) {
  int st = 0;
  char *r = test_http_get(port, "/api/stats", &st, NULL);
  CHECK(r != NULL);
  long long v = rel_json_num(r, "\"viewers_list\":[", "resyncs");
  free(r);
  return v;
}

/* ---- bytes received ----------------------------------------------------- */

struct rec {
  unsigned char *p;
  size_t len, cap;
};

static inline void rec_add(struct rec *r, const void *p, size_t n) {
  if (r->len + n > r->cap) {
    r->cap = (r->len + n) * 2 + 65536;
    r->p = realloc(r->p, r->cap);
    CHECK(r->p != NULL);
  }
  memcpy(r->p + r->len, p, n);
  r->len += n;
}

/* GET `path` on a socket with receive buffer `rcvbuf` (0: the default);
 * reads the response head (200, Content-Type `ctype`) and keeps any body
 * bytes after it in `r` (NULL: dropped). Returns the socket. */
static inline int hv_open(int port, int rcvbuf, const char *path, const char *ctype,
                          struct rec *r) {
  int fd = test_connect(port, rcvbuf);
  CHECK(fd >= 0);
  char req[256], want[128];
  int rl = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
  snprintf(want, sizeof(want), "Content-Type: %s\r\n", ctype);
  CHECK_EQ(test_send_all(fd, req, (size_t)rl), 0);
  char head[2048];
  size_t n = 0;
  uint64_t end = test_now_ms() + 10000;
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    CHECK_MSG(test_now_ms() < end && n < sizeof(head) - 1, "no response head");
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t k = recv(fd, head + n, sizeof(head) - 1 - n, 0);
    CHECK_MSG(k > 0, "closed before the response head");
    n += (size_t)k;
    head[n] = '\0';
    char *e = strstr(head, "\r\n\r\n");
    if (e == NULL) continue;
    CHECK_MSG(strncmp(head, "HTTP/1.1 200", 12) == 0, "%.40s", head);
    CHECK_MSG(strstr(head, want) != NULL, "%s: not %s: %.300s", path, ctype, head);
    size_t hl = (size_t)(e + 4 - head);
    if (n > hl && r) rec_add(r, head + hl, n - hl);
    return fd;
  }
}

/* Read what is there, at most `max` bytes (0: all), without blocking past
 * `wait_ms`. Returns bytes read; -1 at EOF. */
static inline long hv_read_some(int fd, struct rec *r, size_t max, int wait_ms) {
  unsigned char b[65536];
  size_t got = 0;
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, wait_ms) <= 0) return 0;
  while (max == 0 || got < max) {
    size_t want = max && max - got < sizeof(b) ? max - got : sizeof(b);
    ssize_t k = recv(fd, b, want, MSG_DONTWAIT);
    if (k == 0) return got ? (long)got : -1;
    if (k < 0) break;
    rec_add(r, b, (size_t)k);
    got += (size_t)k;
  }
  return (long)got;
}

/* A slow viewer: 20 s at 30 KB/s (1536 bytes every 50 ms), a quarter of a
 * 1000 kbit/s stream. */
static inline void hv_read_slowly(int fd, struct rec *r) {
  uint64_t t0 = test_now_ms();
  for (int k = 1; k <= 400; k++) {
    uint64_t due = t0 + (uint64_t)k * 50;
    while (test_now_ms() < due) usleep(5000);
    CHECK(hv_read_some(fd, r, 1536, 0) >= 0);
  }
}

/* A stalled viewer: reads `first` bytes, stops reading for 10 s, then
 * reads fast for 4 s. */
static inline void hv_read_stalled(int fd, struct rec *r, size_t first) {
  while (r->len < first) CHECK(hv_read_some(fd, r, 0, 100) >= 0);
  sleep(10);
  uint64_t end = test_now_ms() + 4000;
  while (test_now_ms() < end) CHECK(hv_read_some(fd, r, 0, 50) >= 0);
}

/* A raw-socket viewer of `path` (answered as `ctype`) with a 16 KiB
 * receive buffer against the server `s` started at 1000 kbit/s: it reads
 * slowly (hv_read_slowly) or, with `stalled`, stalls after 60000 bytes
 * (hv_read_stalled). What it received is in *r (the caller frees r->p);
 * returns the server's viewer resync count, read before the viewer
 * closes. */
static inline long long hv_paced_viewer(struct rel_srv *s, const char *path, const char *ctype,
                                        int stalled, struct rec *r) {
  hv_start(s, "1000"); /* ~125 KB/s */
  int fd = hv_open(s->port, 16384, path, ctype, r);
  if (stalled) hv_read_stalled(fd, r, 60000);
  else hv_read_slowly(fd, r);
  long long resyncs = hv_viewer_resyncs(s->port);
  close(fd);
  return resyncs;
}

static inline void hv_save(const struct rec *r, const char *path) {
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  CHECK_EQ(fwrite(r->p, 1, r->len, f), r->len);
  CHECK_EQ(fclose(f), 0);
}

/* ---- decoding ------------------------------------------------------- */

struct decoded {
  size_t n;
  long long code[8192];
};

/* ffmpeg decodes `input` (a file or an http URL, read with input options
 * `in_opts`, e.g. "-f h264") to gray frames, one per access unit (no
 * frame-rate conversion; `out_opts` more output options), at most `frames`
 * (0: all); stderr must stay empty. The block code of every frame goes to
 * `d`. */
static inline void hv_decode(const char *input, const char *in_opts, const char *out_opts,
                             int frames, struct decoded *d, const char *tag) {
  char out[256], err[256];
  snprintf(out, sizeof(out), "/tmp/sl-h264-%d-%s.gray", (int)getpid(), tag);
  snprintf(err, sizeof(err), "/tmp/sl-h264-%d-%s.err", (int)getpid(), tag);
  char lim[32] = "";
  if (frames > 0) snprintf(lim, sizeof(lim), "-frames:v %d", frames);
  int rc = test_sh("ffmpeg -nostdin -y -v error %s -i %s %s -fps_mode passthrough %s "
                   "-f rawvideo -pix_fmt gray %s 2>%s",
                   in_opts ? in_opts : "", input, lim, out_opts ? out_opts : "", out, err);
  CHECK_MSG(rc == 0, "ffmpeg failed (%d) on %s: see %s", rc, input, err);
  struct stat st;
  CHECK(stat(err, &st) == 0);
  if (st.st_size) test_sh("head -c 600 %s >&2", err);
  CHECK_MSG(st.st_size == 0, "%s: ffmpeg reported decoder errors (%s)", tag, err);
  FILE *f = fopen(out, "rb");
  CHECK(f != NULL);
  static unsigned char px[HV_W * HV_H];
  d->n = 0;
  while (fread(px, 1, sizeof(px), f) == sizeof(px) && d->n < 8192)
    d->code[d->n++] = ss_pattern_read_code(px, HV_W, HV_H, 1, HV_W);
  fclose(f);
  unlink(out);
  unlink(err);
}

/* A fast viewer: `frames` decoded from the live URL, codes consecutive. */
static inline void hv_check_fast(const char *url, const char *in_opts, const char *out_opts,
                                 int frames, const char *tag) {
  static struct decoded d;
  hv_decode(url, in_opts, out_opts, frames, &d, tag);
  CHECK_EQ(d.n, (size_t)frames);
  for (size_t i = 0; i < d.n; i++) {
    CHECK_MSG(d.code[i] >= 1, "%s: frame %zu: no block code", tag, i);
    if (i)
      CHECK_MSG(d.code[i] == d.code[i - 1] + 1, "%s: frame %zu: code %lld after %lld", tag, i,
                d.code[i], d.code[i - 1]);
  }
  printf("  %s: %d frames, codes %lld..%lld\n", tag, frames, d.code[0], d.code[d.n - 1]);
}

/* ---- WebSocket ---------------------------------------------------------- */

/* A WebSocket viewer: the first text message is the configuration, then
 * binary messages of `frame_type` (1: access unit, 3: fMP4 fragment), each
 * a 16-byte header and a payload; with fMP4 a type 2 init segment comes
 * after the configuration, before the first fragment. The payloads (init
 * included) are appended to `data`. */
struct wsc {
  int frame_type;
  int open, closed, msgs, texts, inits, bad;
  char config[256];
  uint32_t last_seq;
  int first_key;
  struct rec data;
  char why[160];
};

static inline uint32_t hv_be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void hv_on_ws(sl_conn *c, int ev, void *ev_data) {
  struct wsc *w = sl_conn_data(c);
  if (ev == SL_EV_WS_OPEN) w->open = 1;
  if (ev == SL_EV_CLOSE) w->closed = 1;
  if (ev != SL_EV_WS_MSG) return;
  const sl_ws_msg *m = ev_data;
  const unsigned char *p = (const unsigned char *)m->data.ptr;
  if (m->opcode == SL_WS_TEXT) {
    if (w->texts++ == 0 && w->msgs == 0) {
      size_t n = m->data.len < sizeof(w->config) - 1 ? m->data.len : sizeof(w->config) - 1;
      memcpy(w->config, p, n);
      w->config[n] = '\0';
    } else if (!w->bad) {
      w->bad = 1;
      snprintf(w->why, sizeof(w->why), "text message after %d frames", w->msgs);
    }
    return;
  }
  if (w->bad) return;
  int init = w->frame_type == 3 && m->data.len > 16 && p[0] == 2;
  if (init && (w->inits++ > 0 || w->msgs > 0)) {
    w->bad = 1;
    snprintf(w->why, sizeof(w->why), "init segment %d after %d fragments", w->inits, w->msgs);
    return;
  }
  if (w->texts == 0 || m->data.len <= 16 || (!init && p[0] != w->frame_type) ||
      (w->frame_type == 3 && !init && w->inits == 0)) {
    w->bad = 1;
    snprintf(w->why, sizeof(w->why), "message %d: %zu bytes, type %d, config seen %d, inits %d",
             w->msgs, m->data.len, m->data.len ? p[0] : -1, w->texts, w->inits);
    return;
  }
  if (init) {
    rec_add(&w->data, p + 16, m->data.len - 16);
    return;
  }
  uint32_t seq = hv_be32(p + 4);
  int key = p[1] & 1, gap = (p[1] & 2) != 0;
  if (w->msgs == 0) w->first_key = key;
  else if (seq != w->last_seq + 1 && !(key && gap)) {
    w->bad = 1;
    snprintf(w->why, sizeof(w->why), "seq %u after %u, key %d gap flag %d", seq, w->last_seq,
             key, gap);
  }
  if (w->msgs && seq <= w->last_seq) {
    w->bad = 1;
    snprintf(w->why, sizeof(w->why), "seq %u after %u", seq, w->last_seq);
  }
  w->last_seq = seq;
  w->msgs++;
  rec_add(&w->data, p + 16, m->data.len - 16);
}

/* How a WebSocket viewer reads. */
enum { HV_FAST, HV_SLOW, HV_STALL };

/* Connect to ws://127.0.0.1:port`path` and read: fast until `nmsgs`
 * frames; slow (a 4 KiB receive buffer read every 200 ms for 20 s, about
 * 30 KB/s); or stalled (fast to `nmsgs`, no reading for 10 s, fast for
 * 4 s). Returns the viewer's resyncs from /api/stats (read while it is
 * still connected). */
static inline long long hv_ws_run(int port, const char *path, int mode, int nmsgs,
                                  struct wsc *w) {
  int err = 0;
  sl_mgr *m = sl_mgr_new(NULL, &err);
  CHECK(m != NULL);
  char url[160];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%d%s", port, path);
  sl_ws_opts wo = {.max_message = 4u << 20};
  sl_conn *c = sl_ws_connect(m, url, &wo, hv_on_ws, w, &err);
  CHECK_MSG(c != NULL, "sl_ws_connect: %s", sl_strerror(err));
  if (mode == HV_SLOW) CHECK_EQ(sl_conn_sockopt(c, SL_OPT_RCVBUF, 4096), 0);
  uint64_t end = test_now_ms() + 20000;
  if (mode == HV_SLOW) {
    while (!w->open && !w->closed && test_now_ms() < end) sl_mgr_poll(m, 20);
    for (; test_now_ms() < end && !w->closed && !w->bad;) {
      sl_conn_pause_read(c, 0);
      sl_mgr_poll(m, 0);
      sl_conn_pause_read(c, 1);
      usleep(200000);
    }
  } else {
    while (w->msgs < nmsgs && !w->closed && !w->bad && test_now_ms() < end) sl_mgr_poll(m, 50);
    if (mode == HV_STALL) {
      sleep(10);
      end = test_now_ms() + 4000;
      while (!w->closed && !w->bad && test_now_ms() < end) sl_mgr_poll(m, 50);
    }
  }
  long long resyncs = hv_viewer_resyncs(port);
  CHECK_MSG(!w->bad, "%s", w->why);
  CHECK_MSG(w->msgs >= nmsgs && !w->closed, "%d frames (closed %d)", w->msgs, w->closed);
  sl_conn_close(c, SL_CLOSE_NOW);
  sl_mgr_poll(m, 0);
  sl_mgr_free(m);
  CHECK_MSG(strstr(w->config, "\"type\":\"config\"") && strstr(w->config, "\"codec\":\"avc1.42") &&
                strstr(w->config, "\"width\":320") && strstr(w->config, "\"height\":240"),
            "config: %s", w->config);
  CHECK(w->first_key);
  return resyncs;
}

#endif
