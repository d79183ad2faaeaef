/*
 * sluice-stream's H.264 streams end to end: the real binary publishing the
 * openh264 test pattern (`--codec h264`), read by real ffmpeg, by raw
 * sockets that read slowly, stall, or never read again, and by a WebSocket
 * client; every stream a viewer received must decode with zero decoder
 * errors, and the pattern's block code (the hub sequence number of the
 * frame) read back from every decoded frame says which frames it got.
 *
 * Pass/fail rests on counts and byte bounds, never on absolute times: a
 * slow or stalled viewer must show gaps (it really fell behind) and the
 * frame after every gap must be an IDR.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "pattern.h"
#include "rel_harness.h"
#include "sluice.h"

enum { W = 320, H = 240 };
#define BASE_ARGS "--codec", "h264", "--size", "320x240", "--fps", "30", "--gop", "30"

static void need(const char *tool) {
  if (test_sh("command -v %s >/dev/null 2>&1", tool) == 0) return;
  CHECK_MSG(!test_in_ci(), "%s is missing (CI may not skip)", tool);
  TEST_SKIP(tool);
}

static void start(struct rel_srv *s, const char *bitrate) {
  need("ffmpeg");
  const char *args[] = {BASE_ARGS, "--log-level", "info", bitrate ? "--bitrate" : NULL, bitrate,
                        NULL};
  rel_srv_start(s, args);
}

static void stop(struct rel_srv *s) { rel_srv_check_clean(s, rel_srv_stop(s, 10000)); }

/* A number of the stream's entry in /api/stats (-1 when absent). */
struct h264_stats {
  long long seq, held, frames_held, largest, viewers, gop_frames, gop_bytes, bitrate, resyncs;
};

static void stats(int port, struct h264_stats *o) {
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
  free(r);
}

/* ---- bytes received ----------------------------------------------------- */

struct rec {
  unsigned char *p;
  size_t len, cap;
};

static void rec_add(struct rec *r, const void *p, size_t n) {
  if (r->len + n > r->cap) {
    r->cap = (r->len + n) * 2 + 65536;
    r->p = realloc(r->p, r->cap);
    CHECK(r->p != NULL);
  }
  memcpy(r->p + r->len, p, n);
  r->len += n;
}

/* GET /stream.h264 on a socket with receive buffer `rcvbuf` (0: the
 * default); reads the response head (200, video/h264) and keeps any body
 * bytes after it in `r`. Returns the socket. */
static int open_raw(int port, int rcvbuf, struct rec *r) {
  int fd = test_connect(port, rcvbuf);
  CHECK(fd >= 0);
  static const char req[] = "GET /stream.h264 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  CHECK_EQ(test_send_all(fd, req, sizeof(req) - 1), 0);
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
    CHECK(strstr(head, "Content-Type: video/h264\r\n") != NULL);
    size_t hl = (size_t)(e + 4 - head);
    if (n > hl) rec_add(r, head + hl, n - hl);
    return fd;
  }
}

/* Read what is there, at most `max` bytes (0: all), without blocking past
 * `wait_ms`. Returns bytes read; -1 at EOF. */
static long read_some(int fd, struct rec *r, size_t max, int wait_ms) {
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

/* ---- access units ---------------------------------------------------- */

struct au_list {
  size_t n;
  size_t start[8192];
  unsigned char key[8192];
  unsigned char ps[8192];   /* SPS and PPS inside it */
};

/* Split an Annex-B stream into access units: a new one begins at a
 * non-VCL NAL unit (AUD, SEI, SPS, PPS) after a slice, or at a slice after
 * a slice (the encoder codes one slice per picture). The last unit of a
 * live recording may be incomplete. */
static void split_aus(const unsigned char *p, size_t len, struct au_list *a) {
  a->n = 0;
  int prev_vcl = 1, sps = 0, pps = 0;
  for (size_t i = 0; i + 3 < len; i++) {
    if (!(p[i] == 0 && p[i + 1] == 0 && p[i + 2] == 1)) continue;
    size_t sc = i > 0 && p[i - 1] == 0 ? i - 1 : i;
    int type = p[i + 3] & 0x1f, vcl = type >= 1 && type <= 5;
    if (prev_vcl && a->n < 8192) {
      a->start[a->n] = sc;
      a->key[a->n] = 0;
      a->ps[a->n] = 0;
      a->n++;
      sps = pps = 0;
    }
    if (type == 7) sps = 1;
    if (type == 8) pps = 1;
    if (type == 5) a->key[a->n - 1] = 1;
    a->ps[a->n - 1] = (unsigned char)(sps && pps);
    prev_vcl = vcl;
    i += 3;
  }
}

/* Keep the access units before the last one (which may be cut short);
 * returns how many are kept. */
static size_t cut_complete(struct rec *r, struct au_list *a) {
  split_aus(r->p, r->len, a);
  if (a->n == 0) return 0;
  r->len = a->start[a->n - 1];
  a->n--;
  return a->n;
}

/* ---- decoding ------------------------------------------------------- */

struct decoded {
  size_t n;
  long long code[8192];
};

/* ffmpeg decodes `path` (raw Annex-B, or an http URL) to gray frames, one
 * per access unit (no frame-rate conversion); stderr must stay empty. */
static void decode(const char *input, int frames, struct decoded *d, const char *tag) {
  char out[256], err[256];
  snprintf(out, sizeof(out), "/tmp/sl-h264-%d-%s.gray", (int)getpid(), tag);
  snprintf(err, sizeof(err), "/tmp/sl-h264-%d-%s.err", (int)getpid(), tag);
  char lim[32] = "";
  if (frames > 0) snprintf(lim, sizeof(lim), "-frames:v %d", frames);
  int rc = test_sh("ffmpeg -nostdin -y -v error %s -i %s %s -fps_mode passthrough -f rawvideo "
                   "-pix_fmt gray %s 2>%s",
                   strncmp(input, "http", 4) ? "-f h264" : "", input, lim, out, err);
  CHECK_MSG(rc == 0, "ffmpeg failed (%d) on %s: see %s", rc, input, err);
  struct stat st;
  CHECK(stat(err, &st) == 0);
  if (st.st_size) test_sh("head -c 600 %s >&2", err);
  CHECK_MSG(st.st_size == 0, "%s: ffmpeg reported decoder errors (%s)", tag, err);
  FILE *f = fopen(out, "rb");
  CHECK(f != NULL);
  static unsigned char px[W * H];
  d->n = 0;
  while (fread(px, 1, sizeof(px), f) == sizeof(px) && d->n < 8192)
    d->code[d->n++] = ss_pattern_read_code(px, W, H, 1, W);
  fclose(f);
  unlink(out);
  unlink(err);
}

/* The frames a viewer decoded from its recording: one per access unit,
 * codes increasing, and every gap followed by an IDR. Returns the gaps. */
static int check_gaps(const struct decoded *d, const struct au_list *a, const char *who) {
  int gaps = 0;
  CHECK_MSG(d->n == a->n, "%s: %zu frames decoded from %zu access units", who, d->n, a->n);
  CHECK_MSG(a->n > 0 && a->key[0] && a->ps[0], "%s: does not start at an IDR with SPS/PPS", who);
  for (size_t i = 0; i < d->n; i++) {
    CHECK_MSG(d->code[i] >= 0, "%s: frame %zu: no block code", who, i);
    if (a->key[i]) CHECK_MSG(a->ps[i], "%s: IDR %zu without SPS/PPS", who, i);
    if (i == 0) continue;
    CHECK_MSG(d->code[i] > d->code[i - 1], "%s: frame %zu: code %lld after %lld", who, i,
              d->code[i], d->code[i - 1]);
    if (d->code[i] != d->code[i - 1] + 1) {
      CHECK_MSG(a->key[i], "%s: frame %zu (code %lld) after a gap (from %lld) is not an IDR",
                who, i, d->code[i], d->code[i - 1]);
      gaps++;
    }
  }
  return gaps;
}

static void save(const struct rec *r, const char *path) {
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  CHECK_EQ(fwrite(r->p, 1, r->len, f), r->len);
  CHECK_EQ(fclose(f), 0);
}

/* Cut the recording at its last complete access unit (`cut`: a byte
 * stream read from a socket, else whole units), decode it, check it;
 * returns the gaps. */
static int check_recording(struct rec *r, int cut, const char *tag, struct decoded *d) {
  static struct au_list a;
  char path[256];
  if (cut) cut_complete(r, &a);
  else split_aus(r->p, r->len, &a);
  snprintf(path, sizeof(path), "/tmp/sl-h264-%d-%s.h264", (int)getpid(), tag);
  save(r, path);
  decode(path, 0, d, tag);
  int gaps = check_gaps(d, &a, tag);
  size_t keys = 0;
  for (size_t i = 0; i < a.n; i++) keys += a.key[i];
  printf("  %s: %zu bytes, %zu frames (%zu IDR), codes %lld..%lld, %d gaps\n", tag, r->len,
         d->n, keys, d->n ? d->code[0] : -1, d->n ? d->code[d->n - 1] : -1, gaps);
  unlink(path);
  return gaps;
}

/* ---- a fast viewer --------------------------------------------------- */

TEST_T(h264_stream_fast_viewer_decodes_every_frame, 90) {
  struct rel_srv s;
  start(&s, NULL);
  char url[128];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/stream.h264", s.port);
  static struct decoded d;
  decode(url, 90, &d, "fast");
  CHECK_EQ(d.n, 90);
  for (size_t i = 0; i < d.n; i++) {
    CHECK_MSG(d.code[i] >= 1, "frame %zu: no block code", i);
    if (i) CHECK_MSG(d.code[i] == d.code[i - 1] + 1, "frame %zu: code %lld after %lld", i,
                     d.code[i], d.code[i - 1]);
  }
  printf("  fast: 90 frames, codes %lld..%lld\n", d.code[0], d.code[89]);
  stop(&s);
}

/* ---- joining mid-GOP ------------------------------------------------- */

TEST_T(h264_stream_join_starts_from_cached_gop, 90) {
  struct rel_srv s;
  start(&s, NULL);
  /* Mid-GOP, past the first: the next IDR is at least 12 frames (400 ms)
   * away. */
  struct h264_stats st;
  uint64_t end = test_now_ms() + 20000;
  do {
    stats(s.port, &st);
    CHECK_MSG(test_now_ms() < end, "never mid-GOP (gop_frames %lld)", st.gop_frames);
    if (st.seq <= 30 || st.gop_frames < 8 || st.gop_frames > 18) usleep(20000);
  } while (st.seq <= 30 || st.gop_frames < 8 || st.gop_frames > 18);
  struct rec r = {0};
  int fd = open_raw(s.port, 0, &r);
  static struct au_list a;
  /* Enough for the burst and the start of the next GOP. */
  end = test_now_ms() + 20000;
  for (split_aus(r.p, r.len, &a); a.n < 46 && test_now_ms() < end; split_aus(r.p, r.len, &a))
    CHECK(read_some(fd, &r, 0, 100) >= 0);
  close(fd);
  static struct decoded d;
  CHECK_EQ(check_recording(&r, 1, "join", &d), 0);
  /* Its first frame is the cached GOP's IDR, published before it joined:
   * it did not wait for the next one. */
  CHECK_MSG(d.code[0] <= st.seq, "first frame %lld, newest at join %lld: it waited for an IDR",
            d.code[0], st.seq);
  CHECK_MSG(d.code[0] == st.seq - st.gop_frames + 1,
            "first frame %lld, the GOP at join was %lld..%lld", d.code[0],
            st.seq - st.gop_frames + 1, st.seq);
  printf("  join: newest %lld, GOP of %lld frames, first frame %lld\n", st.seq, st.gop_frames,
         d.code[0]);
  free(r.p);
  stop(&s);
}

/* ---- a slow and a stalled-then-resumed viewer ------------------------- */

/* The viewer's resyncs from /api/stats (its entry in viewers_list). */
static long long viewer_resyncs(int port) {
  int st = 0;
  char *r = test_http_get(port, "/api/stats", &st, NULL);
  CHECK(r != NULL);
  long long v = rel_json_num(r, "\"viewers_list\":[", "resyncs");
  free(r);
  return v;
}

TEST_T(h264_stream_slow_viewer_skips_to_idr_and_decodes, 120) {
  struct rel_srv s;
  start(&s, "1000"); /* ~125 KB/s */
  struct rec r = {0};
  int fd = open_raw(s.port, 16384, &r);
  /* 20 s at 30 KB/s: a quarter of the stream. */
  uint64_t t0 = test_now_ms();
  for (int k = 1; k <= 400; k++) {
    uint64_t due = t0 + (uint64_t)k * 50;
    while (test_now_ms() < due) usleep(5000);
    CHECK(read_some(fd, &r, 1536, 0) >= 0);
  }
  long long resyncs = viewer_resyncs(s.port);
  close(fd);
  static struct decoded d;
  int gaps = check_recording(&r, 1, "slow", &d);
  CHECK_MSG(gaps >= 2, "a viewer reading a quarter of the stream for 20 s: %d gaps", gaps);
  CHECK_MSG(resyncs >= gaps, "viewer resyncs %lld, gaps %d", resyncs, gaps);
  printf("  slow: resyncs %lld\n", resyncs);
  free(r.p);
  stop(&s);
}

TEST_T(h264_stream_stalled_viewer_resumes_at_idr, 120) {
  struct rel_srv s;
  start(&s, "1000");
  struct rec r = {0};
  int fd = open_raw(s.port, 16384, &r);
  while (r.len < 60000) CHECK(read_some(fd, &r, 0, 100) >= 0);
  sleep(10);
  /* Then fast again for 4 s. */
  uint64_t end = test_now_ms() + 4000;
  while (test_now_ms() < end) CHECK(read_some(fd, &r, 0, 50) >= 0);
  long long resyncs = viewer_resyncs(s.port);
  close(fd);
  static struct decoded d;
  int gaps = check_recording(&r, 1, "stalled", &d);
  CHECK_MSG(gaps >= 1, "a viewer stalled for 10 s: no gap");
  /* A stall is one gap, and one resync, however long it lasted. */
  CHECK_MSG(resyncs == gaps, "viewer resyncs %lld, gaps %d", resyncs, gaps);
  /* It caught up: the last frame is within a GOP of the newest. */
  struct h264_stats st;
  stats(s.port, &st);
  CHECK_MSG(d.code[d.n - 1] + 60 >= st.seq, "last frame %lld, newest %lld", d.code[d.n - 1],
            st.seq);
  printf("  stalled: resyncs %lld\n", resyncs);
  free(r.p);
  stop(&s);
}

/* ---- 100 stalled viewers ------------------------------------------------ */

/* The bound on the hub's held bytes (docs/memory.md), every frame counted
 * once with its sl_buf header (HDR):
 *   held <= gop_bytes + G * HDR                 the cached GOP (the latest
 *                                               frame is its last)
 *         + N * (largest_frame + HDR)           one frame in flight per
 *                                               stalled viewer (the pull rule
 *                                               hands a frame only to an
 *                                               empty output queue)
 *         + bytes of the last resync_ms + one   pending references: a viewer
 *           frame interval (bitrate / 8 * 1.1 s) whose oldest frame is
 *                                               older than resync_ms drops
 *                                               them and waits for the next
 *                                               IDR (shared by all viewers)
 * The test doubles the last term: bitrate is an average over 2 s, and an
 * IDR is many P-frames. */
#define NSTALL 100
#define HDR ((long long)sizeof(struct sl_buf))

static long long held_bound(const struct h264_stats *st, int n) {
  return st->gop_bytes + 64 * HDR + n * (st->largest + HDR) + 2 * (st->bitrate / 8) * 11 / 10;
}

/* Viewers whose output queue holds bytes: stalled at the hub, past what
 * their kernel buffers absorbed. */
static int hub_stalled(int port) {
  int st = 0, n = 0;
  char *r = test_http_get(port, "/api/stats", &st, NULL);
  CHECK(r != NULL);
  const char *p = strstr(r, "\"viewers_list\":[");
  while (p && (p = strstr(p, "\"queued\":")) != NULL) {
    p += 9;
    n += atoll(p) > 0;
  }
  free(r);
  return n;
}

TEST_T(h264_stream_100_stalled_viewers_bounded, 120) {
  struct rel_srv s;
  /* ~125 KB/s: a stalled viewer's kernel buffers (128 KiB unsent at most,
   * TCP_NOTSENT_LOWAT, and a small window) fill in about a second. */
  start(&s, "1000");
  test_raise_nofile(4 * NSTALL);
  int fds[NSTALL];
  for (int i = 0; i < NSTALL; i++) {
    struct rec ignore = {0};
    fds[i] = open_raw(s.port, 4096, &ignore);
    free(ignore.p);
  }
  sleep(2);
  /* One fast viewer, decoding while the others stall. */
  char cmd[512], err[128];
  snprintf(err, sizeof(err), "/tmp/sl-h264-%d-fast100.err", (int)getpid());
  snprintf(cmd, sizeof(cmd),
           "ffmpeg -nostdin -v error -i http://127.0.0.1:%d/stream.h264 -frames:v 150 "
           "-fps_mode passthrough -f rawvideo -pix_fmt gray - 2>%s",
           s.port, err);
  FILE *f = popen(cmd, "r");
  CHECK(f != NULL);
  static unsigned char px[W * H];
  long long last = -1, worst_held = 0, worst_bound = 0, max_gop = 0;
  int frames = 0, samples = 0;
  struct h264_stats st;
  while (fread(px, 1, sizeof(px), f) == sizeof(px)) {
    long long code = ss_pattern_read_code(px, W, H, 1, W);
    CHECK_MSG(last < 0 || code == last + 1, "fast viewer: code %lld after %lld", code, last);
    last = code;
    if (++frames % 10 == 0) {
      stats(s.port, &st);
      long long bound = held_bound(&st, NSTALL);
      CHECK_MSG(st.held <= bound, "held %lld > bound %lld (gop %lld, largest %lld, bitrate %lld)",
                st.held, bound, st.gop_bytes, st.largest, st.bitrate);
      CHECK_EQ(st.viewers, NSTALL + 1);
      if (st.held > worst_held) worst_held = st.held, worst_bound = bound;
      if (st.gop_bytes > max_gop) max_gop = st.gop_bytes;
      samples++;
    }
  }
  int stalled = hub_stalled(s.port);
  CHECK_MSG(stalled >= NSTALL * 9 / 10, "only %d of %d viewers stalled at the hub", stalled,
            NSTALL);
  CHECK_EQ(pclose(f), 0);
  CHECK_EQ(frames, 150);
  struct stat es;
  CHECK(stat(err, &es) == 0);
  CHECK_MSG(es.st_size == 0, "fast viewer: ffmpeg reported errors (%s)", err);
  unlink(err);
  printf("  %d stalled + 1 fast: 150 frames decoded, held <= %lld (bound then %lld; GOP <= %lld, "
         "largest %lld), %d samples, %d stalled at the hub\n",
         NSTALL, worst_held, worst_bound, max_gop, st.largest, samples, stalled);
  for (int i = 0; i < NSTALL; i++) close(fds[i]);
  /* All gone: the hub holds exactly the cached GOP (the latest is its last
   * frame), each frame once. */
  uint64_t end = test_now_ms() + 10000;
  do {
    usleep(100000);
    stats(s.port, &st);
  } while (st.viewers != 0 && test_now_ms() < end);
  CHECK_EQ(st.viewers, 0);
  CHECK_EQ(st.frames_held, st.gop_frames);
  CHECK_EQ(st.held, st.gop_bytes + st.frames_held * HDR);
  printf("  after: viewers 0, held %lld = GOP %lld bytes + %lld headers\n", st.held,
         st.gop_bytes, st.frames_held);
  stop(&s);
}

/* ---- WebSocket ---------------------------------------------------------- */

struct wsc {
  int open, closed, msgs, texts, bad;
  char config[256];
  uint32_t last_seq;
  int first_key;
  struct rec aus;
  char why[160];
};

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void on_ws(sl_conn *c, int ev, void *ev_data) {
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
  if (w->texts == 0 || m->data.len <= 16 || p[0] != 1) {
    w->bad = 1;
    snprintf(w->why, sizeof(w->why), "message %d: %zu bytes, type %d, config seen %d", w->msgs,
             m->data.len, m->data.len ? p[0] : -1, w->texts);
    return;
  }
  uint32_t seq = be32(p + 4);
  int key = p[1] & 1;
  if (w->msgs == 0) w->first_key = key;
  else if (seq != w->last_seq + 1 && !key) {
    w->bad = 1;
    snprintf(w->why, sizeof(w->why), "seq %u after %u, not a keyframe", seq, w->last_seq);
  }
  if (w->msgs && seq <= w->last_seq) {
    w->bad = 1;
    snprintf(w->why, sizeof(w->why), "seq %u after %u", seq, w->last_seq);
  }
  w->last_seq = seq;
  w->msgs++;
  rec_add(&w->aus, p + 16, m->data.len - 16);
}

TEST_T(h264_stream_websocket_config_then_access_units, 90) {
  struct rel_srv s;
  start(&s, NULL);
  int err = 0;
  sl_mgr *m = sl_mgr_new(NULL, &err);
  CHECK(m != NULL);
  char url[128];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws", s.port);
  static struct wsc w;
  memset(&w, 0, sizeof(w));
  sl_ws_opts wo = {.max_message = 4u << 20};
  sl_conn *c = sl_ws_connect(m, url, &wo, on_ws, &w, &err);
  CHECK_MSG(c != NULL, "sl_ws_connect: %s", sl_strerror(err));
  uint64_t end = test_now_ms() + 20000;
  while (w.msgs < 90 && !w.closed && !w.bad && test_now_ms() < end) sl_mgr_poll(m, 50);
  CHECK_MSG(!w.bad, "%s", w.why);
  CHECK_MSG(w.msgs >= 90, "%d access units (closed %d)", w.msgs, w.closed);
  sl_conn_close(c, SL_CLOSE_NOW);
  sl_mgr_poll(m, 0);
  sl_mgr_free(m);
  CHECK_MSG(strstr(w.config, "\"type\":\"config\"") && strstr(w.config, "\"codec\":\"avc1.42") &&
                strstr(w.config, "\"width\":320") && strstr(w.config, "\"height\":240"),
            "config: %s", w.config);
  CHECK(w.first_key);
  static struct decoded d;
  int gaps = check_recording(&w.aus, 0, "ws", &d);
  CHECK_EQ(gaps, 0);
  CHECK_EQ((long long)d.n, w.msgs);
  /* The block code is the hub's sequence number, as the header says. */
  CHECK_EQ(d.code[d.n - 1], (long long)w.last_seq);
  printf("  ws: %s; %d access units, seq ..%u\n", w.config, w.msgs, w.last_seq);
  free(w.aus.p);
  stop(&s);
}
