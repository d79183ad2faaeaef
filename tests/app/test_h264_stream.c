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

#include "buf.h"
#include "h264_viewer.h"

enum { W = HV_W, H = HV_H };

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

/* Cut the recording at its last complete access unit (`cut`: a byte
 * stream read from a socket, else whole units), decode it, check it;
 * returns the gaps. */
static int check_recording(struct rec *r, int cut, const char *tag, struct decoded *d) {
  static struct au_list a;
  char path[256];
  if (cut) cut_complete(r, &a);
  else split_aus(r->p, r->len, &a);
  snprintf(path, sizeof(path), "/tmp/sl-h264-%d-%s.h264", (int)getpid(), tag);
  hv_save(r, path);
  hv_decode(path, "-f h264", NULL, 0, d, tag);
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
  hv_start(&s, NULL);
  char url[128];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/stream.h264", s.port);
  hv_check_fast(url, NULL, NULL, 90, "fast");
  hv_stop(&s);
}

/* ---- joining mid-GOP ------------------------------------------------- */

TEST_T(h264_stream_join_starts_from_cached_gop, 90) {
  struct rel_srv s;
  hv_start(&s, NULL);
  /* Mid-GOP, past the first: the next IDR is at least 12 frames (400 ms)
   * away. */
  struct h264_stats st;
  WAIT_FOR((hv_stats(s.port, &st), st.seq > 30 && st.gop_frames >= 8 && st.gop_frames <= 18),
           20000);
  struct rec r = {0};
  int fd = hv_open(s.port, 0, "/stream.h264", "video/h264", &r);
  static struct au_list a;
  /* Enough for the burst and the start of the next GOP. */
  uint64_t end = test_now_ms() + 20000;
  for (split_aus(r.p, r.len, &a); a.n < 46 && test_now_ms() < end; split_aus(r.p, r.len, &a))
    CHECK(hv_read_some(fd, &r, 0, 100) >= 0);
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
  hv_stop(&s);
}

/* ---- a slow and a stalled-then-resumed viewer ------------------------- */

TEST_T(h264_stream_slow_viewer_skips_to_idr_and_decodes, 120) {
  struct rel_srv s;
  struct rec r = {0};
  long long resyncs = hv_paced_viewer(&s, "/stream.h264", "video/h264", 0, &r);
  static struct decoded d;
  int gaps = check_recording(&r, 1, "slow", &d);
  CHECK_MSG(gaps >= 2, "a viewer reading a quarter of the stream for 20 s: %d gaps", gaps);
  CHECK_MSG(resyncs >= gaps, "viewer resyncs %lld, gaps %d", resyncs, gaps);
  printf("  slow: resyncs %lld\n", resyncs);
  free(r.p);
  hv_stop(&s);
}

TEST_T(h264_stream_stalled_viewer_resumes_at_idr, 120) {
  struct rel_srv s;
  struct rec r = {0};
  long long resyncs = hv_paced_viewer(&s, "/stream.h264", "video/h264", 1, &r);
  static struct decoded d;
  int gaps = check_recording(&r, 1, "stalled", &d);
  CHECK_MSG(gaps >= 1, "a viewer stalled for 10 s: no gap");
  /* A stall is one gap, and one resync, however long it lasted. */
  CHECK_MSG(resyncs == gaps, "viewer resyncs %lld, gaps %d", resyncs, gaps);
  /* It caught up: the last frame is within a GOP of the newest. */
  struct h264_stats st;
  hv_stats(s.port, &st);
  CHECK_MSG(d.code[d.n - 1] + 60 >= st.seq, "last frame %lld, newest %lld", d.code[d.n - 1],
            st.seq);
  printf("  stalled: resyncs %lld\n", resyncs);
  free(r.p);
  hv_stop(&s);
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
  hv_start(&s, "1000");
  test_raise_nofile(4 * NSTALL);
  int fds[NSTALL];
  for (int i = 0; i < NSTALL; i++) {
    struct rec ignore = {0};
    fds[i] = hv_open(s.port, 4096, "/stream.h264", "video/h264", &ignore);
    free(ignore.p);
  }
  /* A window, not a wait: the stalled viewers' queues fill and the hub's
   * policy acts on them for 2 s before the measured part starts. */
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
      hv_stats(s.port, &st);
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
  WAIT_FOR((hv_stats(s.port, &st), st.viewers == 0), 10000);
  CHECK_EQ(st.frames_held, st.gop_frames);
  /* With several loops (--threads) every hub is a group member, whose
   * frames are aliases: a header of their own beside the original's. */
  CHECK_EQ(st.held, st.gop_bytes + st.frames_held * HDR * (st.loops > 1 ? 2 : 1));
  printf("  after: viewers 0, held %lld = GOP %lld bytes + %lld headers\n", st.held,
         st.gop_bytes, st.frames_held);
  hv_stop(&s);
}

TEST_T(h264_stream_websocket_config_then_access_units, 90) {
  struct rel_srv s;
  hv_start(&s, NULL);
  static struct wsc w;
  memset(&w, 0, sizeof(w));
  w.frame_type = 1;
  hv_ws_run(s.port, "/ws", HV_FAST, 90, &w);
  static struct decoded d;
  int gaps = check_recording(&w.data, 0, "ws", &d);
  CHECK_EQ(gaps, 0);
  CHECK_EQ((long long)d.n, w.msgs);
  /* The block code is the hub's sequence number, as the header says. */
  CHECK_EQ(d.code[d.n - 1], (long long)w.last_seq);
  printf("  ws: %s; %d access units, seq ..%u\n", w.config, w.msgs, w.last_seq);
  free(w.data.p);
  hv_stop(&s);
}
