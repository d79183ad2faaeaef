/*
 * Unit tests of the hub's slow-consumer policies, without sockets.
 *
 * The manager runs on a fake clock that the test moves by hand, and each
 * subscriber is a fake writable connection recording what it is sent
 * (tests/hub_fake.h). Parsing the recorded multipart stream tells exactly
 * which frames each subscriber got and where each part started, so every
 * policy is checked frame by frame.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "alloc.h"
#include "buf.h"
#include "hub.h"
#include "hub_fake.h"
#include "hub_test.h"
#include "internal.h"
#include "sluice.h"
#include "test.h"

#define FRAME 100000u

static void parse(const struct fake *f, struct mp *p) {
  mp_init(p, 0);
  mp_feed(p, f->rec, f->len);
  mp_check_consistent(p, 1);
}

/* The complete parts of `f` are exactly frames `want[0..n)`. */
static void expect_frames(const struct fake *f, const uint64_t *want, size_t n) {
  struct mp p;
  parse(f, &p);
  char got[512] = "";
  size_t k = 0;
  for (size_t i = 0; i < p.nparts && k + 24 < sizeof(got); i++)
    k += (size_t)snprintf(got + k, sizeof(got) - k, " %llu%s",
                          (unsigned long long)p.parts[i].seq,
                          p.parts[i].complete ? "" : "(part)");
  CHECK_MSG(p.ncomplete == n, "got %zu frames, want %zu:%s", p.ncomplete, n, got);
  for (size_t i = 0; i < n; i++)
    CHECK_MSG(p.parts[i].seq == want[i] && p.parts[i].complete,
              "frame %zu is %llu, want %llu; got:%s", i,
              (unsigned long long)p.parts[i].seq, (unsigned long long)want[i], got);
  mp_fini(&p);
}
#define EXPECT_FRAMES(f, ...)                                                \
  expect_frames((f), (const uint64_t[]){__VA_ARGS__},                        \
                sizeof((const uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t))

/* ---- frames ---------------------------------------------------------- */

/* Publish the hub's next frame (its first 8 bytes are its sequence
 * number) at T0 + (seq-1)/30 s: a 30 fps source. */
static void frame(sl_mgr *m, sl_hub *h, size_t len, unsigned flags) {
  uint64_t seq = h->seq + 1;
  at(m, (seq - 1) * 1000 / 30);
  sl_buf *b = sl_buf_new(len);
  CHECK(b != NULL);
  memset(sl_buf_data(b), (int)(seq & 0xff), len);
  if (len >= 8) mp_put_u64(sl_buf_data(b), seq);
  CHECK_EQ(sl_hub_publish(h, b, 0, flags), 0);
  sl_buf_unref(b);
  step(m);
}

static size_t frame_size(size_t len) { return sizeof(struct sl_buf) + len; }

/* ---- hub events ------------------------------------------------------ */

struct evlog {
  int n[4];          /* by type */
  int leave_evict[SL_EVICT_HUB + 1];
  int types[64];
  int ntypes;
};
static struct evlog evl;

static void on_hub_event(sl_hub *h, const sl_hub_event *e, void *arg) {
  (void)h, (void)arg;
  evl.n[e->type]++;
  if (e->type == SL_HUB_LEAVE) evl.leave_evict[e->evict]++;
  if (evl.ntypes < 64) evl.types[evl.ntypes++] = e->type;
}

static sl_hub *hub_new(sl_mgr *m, sl_hub_opts *o) {
  int err = 0;
  memset(&evl, 0, sizeof(evl));
  sl_hub_opts z = {0};
  if (o == NULL) o = &z;
  o->on_event = on_hub_event;
  sl_hub *h = sl_hub_new(m, "cam", o, &err);
  CHECK_MSG(h != NULL, "sl_hub_new: %s", sl_strerror(err));
  return h;
}

/* ---- latest ---------------------------------------------------------- */

TEST(hub_policy_latest_resumes_with_newest) {
  sl_mgr *m = mgr_fake();
  sl_hub *h = hub_new(m, NULL);
  struct fake a, b;
  /* a takes 5000 bytes of the first frame, then its window closes. */
  CHECK_EQ(attach(h, &a, 5000, SL_TRANSPORT_MJPEG, NULL), 0);
  CHECK_EQ(attach(h, &b, OPEN, SL_TRANSPORT_MJPEG, NULL), 0);
  CHECK_EQ(evl.n[SL_HUB_JOIN], 2);
  for (int k = 1; k <= 10; k++) frame(m, h, FRAME, 0);
  CHECK_EQ(a.len, 5000);
  sl_sub_stats s;
  sub_stats(h, &a, &s);
  CHECK_EQ(s.frames_sent, 1);
  CHECK_EQ(s.pending, 1);             /* one reference: the newest */
  CHECK_EQ(s.drops[SL_DROP_REPLACED], 8); /* 2..9 were replaced */
  CHECK_EQ(s.lag_ms, 9 * 1000 / 30);  /* behind by the in-flight frame */
  CHECK_EQ(s.policy, SL_POLICY_LATEST);
  /* Its send_max followed the frame size: 2 x largest + 64 KiB. */
  CHECK_EQ(s.send_max, 2 * FRAME + 65536);
  CHECK(s.queued > FRAME - 5000 && s.queued <= FRAME + 256);
  sl_hub_stats hs = hub_stats(h);
  CHECK_EQ(hs.frames_in, 10);
  CHECK_EQ(hs.seq, 10);
  CHECK_EQ(hs.drops[SL_DROP_REPLACED], 8);
  /* Alive: frame 1 (a's in-flight) and 10 (latest, a's pending). */
  CHECK_EQ(hs.frames_held, 2);
  CHECK_EQ(hs.held, 2 * frame_size(FRAME));

  /* Resume: the first part that starts after this point is the newest
   * frame, and what comes before it is the rest of the in-flight one. */
  uint64_t resume_off = a.len, newest = hs.seq;
  set_window(m, &a, OPEN);
  EXPECT_FRAMES(&a, 1, 10);
  struct mp p;
  parse(&a, &p);
  long i = mp_first_from(&p, resume_off);
  CHECK_EQ(i, 1);
  CHECK_EQ(p.parts[i].seq, newest);
  CHECK_LE(p.parts[i].start - resume_off, FRAME + 256);
  mp_fini(&p);
  /* The healthy one got every frame, in order. */
  EXPECT_FRAMES(&b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10);
  sub_stats(h, &b, &s);
  CHECK_EQ(s.drops[SL_DROP_REPLACED], 0);
  CHECK_EQ(s.frames_sent, 10);
  /* Live again: the next frame goes out at once. */
  frame(m, h, FRAME, 0);
  EXPECT_FRAMES(&a, 1, 10, 11);
  hs = hub_stats(h);
  CHECK_EQ(hs.frames_held, 1);
  CHECK_EQ(hs.held, frame_size(FRAME));
  finish(m, h, (struct fake *[]){&a, &b}, 2);
}

/* The same when the viewer stalls near the end of a frame (the rest is
 * below send_low): no second frame may be committed behind the rest of
 * the in-flight one, or that stale frame would start after the resume. */
TEST(hub_policy_latest_stall_near_frame_end_resumes_with_newest) {
  sl_mgr *m = mgr_fake();
  sl_hub *h = hub_new(m, NULL);
  struct fake a;
  CHECK_EQ(attach(h, &a, OPEN, SL_TRANSPORT_MJPEG, NULL), 0);
  frame(m, h, FRAME, 0);
  /* A part's size on the wire: frame 1 went out whole (header, frame),
   * and frame 2's part is as long (same digits in its headers) plus the
   * CRLF that ends frame 1 and opens its delimiter. */
  size_t part = a.len + 2;
  /* All of frame 2 but its last 1000 bytes, then blocked. */
  set_window(m, &a, 0);
  frame(m, h, FRAME, 0);
  set_window(m, &a, part - 1000);
  for (int k = 3; k <= 10; k++) frame(m, h, FRAME, 0);
  sl_sub_stats s;
  sub_stats(h, &a, &s);
  CHECK_LE(s.queued, 1000);          /* only the rest of frame 2 */
  CHECK_EQ(s.frames_sent, 2);
  CHECK_EQ(s.pending, 1);
  CHECK_EQ(hub_stats(h).frames_held, 2);
  uint64_t resume_off = a.len;
  set_window(m, &a, OPEN);
  EXPECT_FRAMES(&a, 1, 2, 10);
  struct mp p;
  parse(&a, &p);
  long i = mp_first_from(&p, resume_off);
  CHECK_EQ(p.parts[i].seq, 10);
  CHECK_LE(p.parts[i].start - resume_off, 1000);
  mp_fini(&p);
  finish(m, h, (struct fake *[]){&a}, 1);
}

/* A viewer joining mid-stream gets the latest frame at once. */
TEST(hub_policy_join_starts_with_latest) {
  sl_mgr *m = mgr_fake();
  sl_hub *h = hub_new(m, NULL);
  for (int k = 1; k <= 3; k++) frame(m, h, 1000, 0);
  struct fake a;
  CHECK_EQ(attach(h, &a, OPEN, SL_TRANSPORT_MJPEG, NULL), 0);
  step(m);
  EXPECT_FRAMES(&a, 3);
  frame(m, h, 1000, 0);
  EXPECT_FRAMES(&a, 3, 4);
  /* RAW: the bytes only, back to back. */
  struct fake r;
  CHECK_EQ(attach(h, &r, OPEN, SL_TRANSPORT_RAW, NULL), 0);
  step(m);
  frame(m, h, 1000, 0);
  CHECK_EQ(r.len, 2000);
  CHECK_EQ(mp_get_u64(r.rec), 4);
  CHECK_EQ(mp_get_u64(r.rec + 1000), 5);
  finish(m, h, (struct fake *[]){&a, &r}, 2);
}

/* ---- queue:N --------------------------------------------------------- */

TEST(hub_policy_queue_drops_oldest_keeps_order) {
  sl_mgr *m = mgr_fake();
  sl_hub *h = hub_new(m, NULL);
  sl_sub_opts q = {.policy = SL_POLICY_QUEUE, .queue_len = 3};
  struct fake a;
  CHECK_EQ(attach(h, &a, 0, SL_TRANSPORT_MJPEG, &q), 0);
  for (int k = 1; k <= 10; k++) frame(m, h, FRAME, 0);
  sl_sub_stats s;
  sub_stats(h, &a, &s);
  CHECK_EQ(s.policy, SL_POLICY_QUEUE);
  CHECK_EQ(s.pending, 3);
  CHECK_EQ(s.drops[SL_DROP_QUEUE], 6); /* 2..7 */
  CHECK_EQ(s.lag_frames, 10);
  /* 1 in flight, 8, 9, 10 pending. */
  CHECK_EQ(hub_stats(h).frames_held, 4);
  set_window(m, &a, OPEN);
  EXPECT_FRAMES(&a, 1, 8, 9, 10);
  sub_stats(h, &a, &s);
  CHECK_EQ(s.pending, 0);
  CHECK_EQ(s.queued, 0);
  CHECK_EQ(s.lag_frames, 0);
  CHECK_EQ(s.frames_sent, 4);
  /* A partial window: the queue drains in order, one frame at a time. */
  set_window(m, &a, 0);
  for (int k = 11; k <= 13; k++) frame(m, h, FRAME, 0);
  set_window(m, &a, FRAME / 2);
  set_window(m, &a, FRAME * 2);
  set_window(m, &a, OPEN);
  EXPECT_FRAMES(&a, 1, 8, 9, 10, 11, 12, 13);
  finish(m, h, (struct fake *[]){&a}, 1);
}

/* ---- keyframe -------------------------------------------------------- */

TEST(hub_policy_keyframe_skips_to_next_key_after_drop) {
  sl_mgr *m = mgr_fake();
  sl_hub *h = hub_new(m, NULL);
  sl_sub_opts ko = {.policy = SL_POLICY_KEYFRAME, .queue_len = 2};
  struct fake a;
  CHECK_EQ(attach(h, &a, 0, SL_TRANSPORT_MJPEG, &ko), 0);
  /* Keyframes: 1, 6, 11. */
  for (int k = 1; k <= 7; k++) frame(m, h, FRAME, k % 5 == 1 ? SL_FRAME_KEY : 0);
  /* 1 in flight; 2, 3 pending; 4 overflowed the queue: 2, 3 dropped and
   * the subscriber waits for a keyframe (4 and 5 skipped); 6, 7 queued. */
  sl_sub_stats s;
  sub_stats(h, &a, &s);
  CHECK_EQ(s.drops[SL_DROP_RESYNC], 4);
  CHECK_EQ(s.pending, 2);
  set_window(m, &a, OPEN);
  EXPECT_FRAMES(&a, 1, 6, 7);
  frame(m, h, FRAME, 0);
  frame(m, h, FRAME, 0);
  EXPECT_FRAMES(&a, 1, 6, 7, 8, 9);
  sub_stats(h, &a, &s);
  CHECK_EQ(s.drops[SL_DROP_RESYNC], 4);
  finish(m, h, (struct fake *[]){&a}, 1);
}

TEST(hub_policy_keyframe_resyncs_when_lag_exceeds_resync_ms) {
  sl_mgr *m = mgr_fake();
  sl_hub *h = hub_new(m, NULL);
  /* A queue that never overflows: only the lag (300 ms) triggers. */
  sl_sub_opts ko = {.policy = SL_POLICY_KEYFRAME, .queue_len = 100};
  struct fake a;
  CHECK_EQ(attach(h, &a, 0, SL_TRANSPORT_MJPEG, &ko), 0);
  /* Keyframes every 15 frames: 1, 16, 31, ... Frame k is at (k-1)/30 s. */
  for (int k = 1; k <= 10; k++) frame(m, h, FRAME, k % 15 == 1 ? SL_FRAME_KEY : 0);
  sl_sub_stats s;
  sub_stats(h, &a, &s);
  CHECK_EQ(s.lag_ms, 300);
  CHECK_EQ(s.pending, 9);
  CHECK_EQ(s.drops[SL_DROP_RESYNC], 0);
  /* Frame 11 comes 333 ms after the in-flight frame 1: behind. 2..10 are
   * dropped, 11..15 skipped, keyframe 16 taken. */
  for (int k = 11; k <= 16; k++) frame(m, h, FRAME, k % 15 == 1 ? SL_FRAME_KEY : 0);
  sub_stats(h, &a, &s);
  CHECK_EQ(s.drops[SL_DROP_RESYNC], 9 + 5);
  CHECK_EQ(s.pending, 1);
  set_window(m, &a, OPEN);
  EXPECT_FRAMES(&a, 1, 16);
  for (int k = 17; k <= 20; k++) frame(m, h, FRAME, 0);
  EXPECT_FRAMES(&a, 1, 16, 17, 18, 19, 20);

  /* The tick evaluates the lag too, with no publish to trigger it. */
  set_window(m, &a, 0);
  frame(m, h, FRAME, 0); /* 21: in flight */
  frame(m, h, FRAME, 0); /* 22, 23: pending */
  frame(m, h, FRAME, 0);
  sub_stats(h, &a, &s);
  CHECK_EQ(s.pending, 2);
  uint64_t d0 = s.drops[SL_DROP_RESYNC];
  at(m, 20 * 1000 / 30 + 300 + 250); /* past resync_ms and a tick */
  sub_stats(h, &a, &s);
  CHECK_EQ(s.pending, 0);
  CHECK_EQ(s.drops[SL_DROP_RESYNC], d0 + 2);
  /* Waiting for a keyframe: a non-key frame is skipped, a key one taken. */
  uint64_t seq = h->seq;
  sl_buf *b = sl_buf_from("\0\0\0\0\0\0\0\0nokey", 13);
  mp_put_u64(sl_buf_data(b), seq + 1);
  CHECK_EQ(sl_hub_publish(h, b, 0, 0), 0);
  sl_buf_unref(b);
  b = sl_buf_from("\0\0\0\0\0\0\0\0key", 11);
  mp_put_u64(sl_buf_data(b), seq + 2);
  CHECK_EQ(sl_hub_publish(h, b, 0, SL_FRAME_KEY), 0);
  sl_buf_unref(b);
  set_window(m, &a, OPEN);
  EXPECT_FRAMES(&a, 1, 16, 17, 18, 19, 20, 21, seq + 2);
  finish(m, h, (struct fake *[]){&a}, 1);
}

/* Any drop puts a keyframe subscriber behind, whatever its reason: after
 * a frame too big for it, the frames that depend on it are skipped up to
 * the next keyframe. */
TEST(hub_policy_keyframe_resyncs_after_too_big_drop) {
  sl_mgr *m = mgr_fake();
  sl_hub *h = hub_new(m, NULL);
  sl_sub_opts ko = {.policy = SL_POLICY_KEYFRAME, .send_max = 50000};
  struct fake a;
  CHECK_EQ(attach(h, &a, OPEN, SL_TRANSPORT_MJPEG, &ko), 0);
  frame(m, h, 10000, SL_FRAME_KEY); /* 1 */
  frame(m, h, 10000, 0);            /* 2 */
  frame(m, h, 60000, 0);            /* 3: too big */
  frame(m, h, 10000, 0);            /* 4: depends on 3, skipped */
  frame(m, h, 10000, SL_FRAME_KEY); /* 5 */
  frame(m, h, 10000, 0);            /* 6 */
  EXPECT_FRAMES(&a, 1, 2, 5, 6);
  sl_sub_stats s;
  sub_stats(h, &a, &s);
  CHECK_EQ(s.drops[SL_DROP_TOO_BIG], 1);
  CHECK_EQ(s.drops[SL_DROP_RESYNC], 1);
  /* Pending behind it: non-key frames go, a keyframe stays. */
  set_window(m, &a, 0);
  frame(m, h, 10000, 0);            /* 7: in flight */
  frame(m, h, 60000, SL_FRAME_KEY); /* 8: too big */
  frame(m, h, 10000, 0);            /* 9 */
  frame(m, h, 10000, SL_FRAME_KEY); /* 10 */
  frame(m, h, 10000, 0);            /* 11 */
  set_window(m, &a, OPEN);
  EXPECT_FRAMES(&a, 1, 2, 5, 6, 7, 10, 11);
  finish(m, h, (struct fake *[]){&a}, 1);
}

/* ---- lossless -------------------------------------------------------- */

TEST(hub_policy_lossless_backpressure_then_hard_limit) {
  sl_mgr *m = mgr_fake();
  sl_hub *h = hub_new(m, NULL);
  sl_sub_opts lo = {.policy = SL_POLICY_LOSSLESS, .queue_len = 4,
                    .hard_bytes = 1000000};
  struct fake a, b;
  CHECK_EQ(attach(h, &a, 0, SL_TRANSPORT_MJPEG, &lo), 0);
  CHECK_EQ(attach(h, &b, OPEN, SL_TRANSPORT_MJPEG, NULL), 0);
  for (int k = 1; k <= 4; k++) frame(m, h, FRAME, 0);
  CHECK_EQ(sl_hub_ready(h), 1);
  CHECK_EQ(evl.n[SL_HUB_NOT_READY], 0);
  frame(m, h, FRAME, 0); /* 4 pending: full */
  CHECK_EQ(sl_hub_ready(h), 0);
  CHECK_EQ(hub_stats(h).ready, 0);
  CHECK_EQ(evl.n[SL_HUB_NOT_READY], 1);
  /* A producer that ignores it: still nothing is dropped. */
  frame(m, h, FRAME, 0);
  frame(m, h, FRAME, 0);
  sl_sub_stats s;
  sub_stats(h, &a, &s);
  CHECK_EQ(s.pending, 6);
  for (int r = 0; r < SL_DROP_NREASONS; r++) CHECK_EQ(s.drops[r], 0);
  CHECK_EQ(evl.n[SL_HUB_NOT_READY], 1);
  CHECK_EQ(evl.n[SL_HUB_READY], 0);
  /* It drains: ready again, once, and every frame arrived in order. */
  set_window(m, &a, OPEN);
  CHECK_EQ(sl_hub_ready(h), 1);
  CHECK_EQ(evl.n[SL_HUB_READY], 1);
  EXPECT_FRAMES(&a, 1, 2, 3, 4, 5, 6, 7);
  sub_stats(h, &a, &s);
  for (int r = 0; r < SL_DROP_NREASONS; r++) CHECK_EQ(s.drops[r], 0);
  /* Blocked again past its hard limit (1 MB of queued + pending bytes):
   * closed at the frame that crosses it. */
  set_window(m, &a, 0);
  int k = 8;
  for (; k < 30 && a.c && !sl_conn_is_closing(a.c); k++) {
    frame(m, h, FRAME, 0);
    if (a.c && !sl_conn_is_closing(a.c)) {
      sub_stats(h, &a, &s);
      CHECK_LE(s.queued + s.pending * FRAME, 1000000);
    }
  }
  step(m);
  CHECK(a.closed);
  CHECK_EQ(a.close_reason, SL_CLOSE_EVICTED);
  /* Frame 8 in flight + 9 pending frames of 100 KB crossed 1 MB. */
  CHECK_EQ(k, 8 + 10);
  sl_hub_stats hs = hub_stats(h);
  CHECK_EQ(hs.evictions[SL_EVICT_HARD], 1);
  CHECK_EQ(evl.leave_evict[SL_EVICT_HARD], 1);
  CHECK_EQ(evl.n[SL_HUB_NOT_READY], 2);
  CHECK_EQ(evl.n[SL_HUB_READY], 2); /* its leaving made the hub ready */
  CHECK_EQ(sl_hub_ready(h), 1);
  CHECK_EQ(hs.subs, 1);
  /* b never noticed. */
  sub_stats(h, &b, &s);
  CHECK_EQ(s.frames_sent, (uint64_t)(k - 1));
  CHECK_EQ(s.drops[SL_DROP_REPLACED], 0);
  finish(m, h, (struct fake *[]){&a, &b}, 2);
}

/* ---- hard and soft limits -------------------------------------------- */

TEST(hub_policy_hard_limit_bytes_and_ms) {
  sl_mgr *m = mgr_fake();
  sl_hub *h = hub_new(m, NULL);
  sl_sub_opts hb = {.policy = SL_POLICY_QUEUE, .queue_len = 50,
                    .hard_bytes = 450000};
  sl_sub_opts hm = {.policy = SL_POLICY_QUEUE, .queue_len = 50, .hard_ms = 500};
  struct fake a, b;
  CHECK_EQ(attach(h, &a, 0, SL_TRANSPORT_MJPEG, &hb), 0);
  CHECK_EQ(attach(h, &b, 0, SL_TRANSPORT_MJPEG, &hm), 0);
  /* a: frame 1 in flight (100 KB + head) + 3 pending = 400 KB; the 4th
   * pending one crosses 450 KB: closed at once, not at the next tick. */
  for (int k = 1; k <= 4; k++) frame(m, h, FRAME, 0);
  CHECK(!sl_conn_is_closing(a.c));
  frame(m, h, FRAME, 0);
  CHECK(a.closed);
  CHECK_EQ(a.closed_at, 4 * 1000 / 30);
  CHECK_EQ(a.close_reason, SL_CLOSE_EVICTED);
  /* b: lag is measured from its in-flight frame (t=0); the tick closes it
   * once it passes 500 ms. */
  for (int k = 6; k <= 15; k++) frame(m, h, FRAME, 0);
  CHECK(!b.closed);
  at(m, 800);
  CHECK(b.closed);
  CHECK_EQ(b.close_reason, SL_CLOSE_EVICTED);
  CHECK(b.closed_at > 500 && b.closed_at <= 500 + 200 + 10);
  sl_hub_stats hs = hub_stats(h);
  CHECK_EQ(hs.evictions[SL_EVICT_HARD], 2);
  CHECK_EQ(evl.leave_evict[SL_EVICT_HARD], 2);
  CHECK_EQ(hs.subs, 0);
  CHECK_EQ(hs.frames_held, 1);
  finish(m, h, (struct fake *[]){&a, &b}, 2);
}

TEST(hub_policy_soft_limit_needs_continuous_excess) {
  sl_mgr *m = mgr_fake();
  sl_hub *h = hub_new(m, NULL);
  sl_sub_opts so = {.policy = SL_POLICY_QUEUE, .queue_len = 50,
                    .soft_bytes = 250000, .soft_secs = 1};
  struct fake a;
  CHECK_EQ(attach(h, &a, 0, SL_TRANSPORT_MJPEG, &so), 0);
  /* 1 in flight + 2 pending = 300 KB > 250 KB from t=33 ms. */
  for (int k = 1; k <= 3; k++) frame(m, h, FRAME, 0);
  at(m, 900);
  CHECK(!a.closed);
  /* It catches up: below the soft limit, the clock is reset. */
  set_window(m, &a, OPEN);
  at(m, 1000);
  set_window(m, &a, 0);
  /* Over again from t=1000 (the tick at 1000 may miss it: allow one). */
  fake_now = T0 + 1000;
  for (int k = 0; k < 3; k++) {
    sl_buf *b = sl_buf_new(FRAME);
    mp_put_u64(sl_buf_data(b), h->seq + 1);
    CHECK_EQ(sl_hub_publish(h, b, 0, 0), 0);
    sl_buf_unref(b);
  }
  step(m);
  sl_sub_stats s;
  sub_stats(h, &a, &s);
  CHECK(s.queued + s.pending * FRAME > 250000);
  /* Had the first excess (t<=900) counted, it would be closed by now. */
  at(m, 1900);
  CHECK(!a.closed);
  at(m, 2500);
  CHECK(a.closed);
  CHECK_EQ(a.close_reason, SL_CLOSE_EVICTED);
  CHECK(a.closed_at >= 2000 && a.closed_at <= 2000 + 200 + 10);
  sl_hub_stats hs = hub_stats(h);
  CHECK_EQ(hs.evictions[SL_EVICT_SOFT], 1);
  CHECK_EQ(evl.leave_evict[SL_EVICT_SOFT], 1);
  finish(m, h, (struct fake *[]){&a}, 1);
}

/* ---- fps cap --------------------------------------------------------- */

TEST(hub_policy_fps_cap_is_evenly_spaced) {
  sl_mgr *m = mgr_fake();
  sl_hub *h = hub_new(m, NULL);
  sl_sub_opts f5 = {.fps = 5}, f10 = {.fps = 10};
  struct fake a, b, c;
  CHECK_EQ(attach(h, &a, OPEN, SL_TRANSPORT_MJPEG, &f5), 0);
  CHECK_EQ(attach(h, &b, OPEN, SL_TRANSPORT_MJPEG, &f10), 0);
  CHECK_EQ(attach(h, &c, OPEN, SL_TRANSPORT_MJPEG, NULL), 0);
  for (int k = 1; k <= 60; k++) frame(m, h, 2000, 0);
  /* 30 fps source: every 6th frame at 5 fps, every 3rd at 10 fps. */
  EXPECT_FRAMES(&a, 1, 7, 13, 19, 25, 31, 37, 43, 49, 55);
  EXPECT_FRAMES(&b, 1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 34, 37, 40, 43,
                46, 49, 52, 55, 58);
  struct mp p;
  parse(&c, &p);
  CHECK_EQ(p.ncomplete, 60);
  mp_fini(&p);
  sl_sub_stats s;
  sub_stats(h, &a, &s);
  CHECK_EQ(s.drops[SL_DROP_FPS], 50);
  CHECK_EQ(s.fps_cap, 5);
  CHECK(s.fps > 4.5 && s.fps < 5.5);
  sub_stats(h, &b, &s);
  CHECK_EQ(s.drops[SL_DROP_FPS], 40);
  CHECK(s.fps > 9 && s.fps < 11);
  sub_stats(h, &c, &s);
  CHECK_EQ(s.drops[SL_DROP_FPS], 0);
  CHECK(s.fps > 28 && s.fps < 32);
  finish(m, h, (struct fake *[]){&a, &b, &c}, 3);
}

/* A capped viewer that was blocked takes the newest eligible frame, then
 * keeps the even spacing from there. */
TEST(hub_policy_fps_cap_after_a_stall_takes_newest) {
  sl_mgr *m = mgr_fake();
  sl_hub *h = hub_new(m, NULL);
  sl_sub_opts f5 = {.fps = 5};
  struct fake a;
  CHECK_EQ(attach(h, &a, 0, SL_TRANSPORT_MJPEG, &f5), 0);
  for (int k = 1; k <= 20; k++) frame(m, h, FRAME, 0);
  set_window(m, &a, OPEN);
  /* 1 (in flight), then 20: every frame from 200 ms after frame 1 on is
   * eligible, and the newest of them is taken. */
  EXPECT_FRAMES(&a, 1, 20);
  /* The grid restarts from frame 20 (633 ms): 833, 1033, 1233 ms. */
  for (int k = 21; k <= 40; k++) frame(m, h, FRAME, 0);
  EXPECT_FRAMES(&a, 1, 20, 26, 32, 38);
  finish(m, h, (struct fake *[]){&a}, 1);
}

/* ---- too_big --------------------------------------------------------- */

TEST(hub_policy_too_big_frame_is_dropped_next_fits) {
  sl_mgr *m = mgr_fake();
  sl_hub *h = hub_new(m, NULL);
  sl_sub_opts small = {.send_max = 50000};
  struct fake a, b;
  CHECK_EQ(attach(h, &a, OPEN, SL_TRANSPORT_MJPEG, &small), 0);
  CHECK_EQ(attach(h, &b, OPEN, SL_TRANSPORT_MJPEG, NULL), 0);
  frame(m, h, 10000, 0);
  frame(m, h, 60000, 0);
  frame(m, h, 10000, 0);
  EXPECT_FRAMES(&a, 1, 3);
  EXPECT_FRAMES(&b, 1, 2, 3); /* its send_max follows the largest frame */
  sl_sub_stats s;
  sub_stats(h, &a, &s);
  CHECK_EQ(s.drops[SL_DROP_TOO_BIG], 1);
  CHECK_EQ(s.send_max, 50000);
  sub_stats(h, &b, &s);
  CHECK_EQ(s.drops[SL_DROP_TOO_BIG], 0);
  CHECK_EQ(s.send_max, 2 * 60000 + 65536);
  CHECK_EQ(hub_stats(h).drops[SL_DROP_TOO_BIG], 1);
  /* Pending when its turn comes is the same: dropped, not queued. */
  set_window(m, &a, 0);
  frame(m, h, 10000, 0); /* 4: in flight */
  frame(m, h, 60000, 0); /* 5: pending */
  set_window(m, &a, OPEN);
  frame(m, h, 10000, 0);
  EXPECT_FRAMES(&a, 1, 3, 4, 6);
  sub_stats(h, &a, &s);
  CHECK_EQ(s.drops[SL_DROP_TOO_BIG], 2);
  finish(m, h, (struct fake *[]){&a, &b}, 2);
}

/* ---- admission ------------------------------------------------------- */

TEST(hub_policy_admission_evicts_stalled_else_refuses) {
  sl_mgr *m = mgr_fake();
  sl_hub_opts ho = {.max_subs = 2, .stall_evict_ms = 500};
  sl_hub *h = hub_new(m, &ho);
  struct fake a, b, c, d, e;
  CHECK_EQ(attach(h, &a, 0, SL_TRANSPORT_MJPEG, NULL), 0); /* stalls */
  CHECK_EQ(attach(h, &b, OPEN, SL_TRANSPORT_MJPEG, NULL), 0);
  frame(m, h, FRAME, 0); /* a: pending output from t=0, no progress */
  at(m, 300);
  /* Stalled for 300 ms only: nobody may be evicted. */
  CHECK_EQ(attach(h, &c, OPEN, SL_TRANSPORT_MJPEG, NULL), SL_ELIMIT);
  step(m);
  CHECK(c.closed);
  sl_hub_stats hs = hub_stats(h);
  CHECK_EQ(hs.refused, 1);
  CHECK_EQ(hs.subs, 2);
  sl_sub_stats s;
  sub_stats(h, &a, &s);
  CHECK_EQ(s.stalled, 0);
  at(m, 500);
  sub_stats(h, &a, &s);
  CHECK_EQ(s.stalled, 1);
  sub_stats(h, &b, &s);
  CHECK_EQ(s.stalled, 0);
  /* Stalled >= 500 ms: a gives its slot to d. */
  CHECK_EQ(attach(h, &d, OPEN, SL_TRANSPORT_MJPEG, NULL), 0);
  step(m);
  CHECK(a.closed);
  CHECK_EQ(a.close_reason, SL_CLOSE_EVICTED);
  hs = hub_stats(h);
  CHECK_EQ(hs.evictions[SL_EVICT_SLOT], 1);
  CHECK_EQ(evl.leave_evict[SL_EVICT_SLOT], 1);
  CHECK_EQ(hs.subs, 2);
  EXPECT_FRAMES(&d, 1); /* the latest frame at once */
  /* None stalled: refused. */
  CHECK_EQ(attach(h, &e, OPEN, SL_TRANSPORT_MJPEG, NULL), SL_ELIMIT);
  step(m);
  hs = hub_stats(h);
  CHECK_EQ(hs.refused, 2);
  CHECK_EQ(hs.evictions[SL_EVICT_SLOT], 1);
  CHECK_EQ(hs.joins, 3);
  finish(m, h, (struct fake *[]){&a, &b, &c, &d, &e}, 5);
}

/* ---- budget ---------------------------------------------------------- */

/* Over budget: the pending frames of the furthest-behind subscriber go
 * first, and only as many subscribers as needed lose theirs. */
TEST(hub_policy_budget_drops_pending_of_furthest_behind) {
  sl_mgr *m = mgr_fake();
  sl_hub_opts ho = {.budget = 6 * frame_size(FRAME) + 100};
  sl_hub *h = hub_new(m, &ho);
  sl_sub_opts q = {.policy = SL_POLICY_QUEUE, .queue_len = 10};
  struct fake a, b, c;
  CHECK_EQ(attach(h, &a, 0, SL_TRANSPORT_MJPEG, &q), 0);
  CHECK_EQ(attach(h, &b, OPEN, SL_TRANSPORT_MJPEG, &q), 0);
  CHECK_EQ(attach(h, &c, OPEN, SL_TRANSPORT_MJPEG, NULL), 0);
  frame(m, h, FRAME, 0);
  frame(m, h, FRAME, 0);
  set_window(m, &b, 0); /* b stalls at frame 3, a at frame 1 */
  for (int k = 3; k <= 6; k++) frame(m, h, FRAME, 0);
  sl_hub_stats hs = hub_stats(h);
  CHECK_EQ(hs.frames_held, 6);
  CHECK_EQ(hs.drops[SL_DROP_BUDGET], 0);
  /* Frame 7 makes 7 frames alive: a (furthest behind) loses 2..6. It
   * keeps 7, the latest: every viewer shares it, dropping it frees
   * nothing. */
  frame(m, h, FRAME, 0);
  hs = hub_stats(h);
  CHECK_LE(hs.held, ho.budget);
  CHECK_EQ(hs.frames_held, 6); /* 1 (a), 3 (b), 4..7 (b's queue) */
  sl_sub_stats s;
  sub_stats(h, &a, &s);
  CHECK_EQ(s.drops[SL_DROP_BUDGET], 5);
  CHECK_EQ(s.pending, 1);
  sub_stats(h, &b, &s);
  CHECK_EQ(s.drops[SL_DROP_BUDGET], 0);
  CHECK_EQ(s.pending, 4);
  CHECK_EQ(hs.drops[SL_DROP_BUDGET], 5);
  CHECK_EQ(hs.evictions[SL_EVICT_BUDGET], 0);
  set_window(m, &a, OPEN);
  set_window(m, &b, OPEN);
  EXPECT_FRAMES(&a, 1, 7);
  EXPECT_FRAMES(&b, 1, 2, 3, 4, 5, 6, 7);
  EXPECT_FRAMES(&c, 1, 2, 3, 4, 5, 6, 7);
  finish(m, h, (struct fake *[]){&a, &b, &c}, 3);
}

/* A keyframe subscriber that loses pending frames to the budget skips to
 * the next keyframe, like after any drop. */
TEST(hub_policy_budget_keyframe_subscriber_resyncs) {
  sl_mgr *m = mgr_fake();
  sl_hub_opts ho = {.budget = 3 * frame_size(FRAME) + 100};
  sl_hub *h = hub_new(m, &ho);
  sl_sub_opts ko = {.policy = SL_POLICY_KEYFRAME, .queue_len = 10};
  struct fake k, o;
  CHECK_EQ(attach(h, &k, 0, SL_TRANSPORT_MJPEG, &ko), 0);
  CHECK_EQ(attach(h, &o, OPEN, SL_TRANSPORT_MJPEG, NULL), 0);
  frame(m, h, FRAME, SL_FRAME_KEY); /* 1: in flight */
  frame(m, h, FRAME, 0);
  frame(m, h, FRAME, 0);
  CHECK_EQ(hub_stats(h).drops[SL_DROP_BUDGET], 0);
  /* 4 frames alive: 2 and 3 are dropped; 4 depends on them. */
  frame(m, h, FRAME, 0);
  sl_hub_stats hs = hub_stats(h);
  CHECK_LE(hs.held, ho.budget);
  sl_sub_stats s;
  sub_stats(h, &k, &s);
  CHECK_EQ(s.drops[SL_DROP_BUDGET], 2);
  CHECK_EQ(s.pending, 0);
  frame(m, h, FRAME, 0);            /* 5: skipped */
  frame(m, h, FRAME, SL_FRAME_KEY); /* 6 */
  frame(m, h, FRAME, 0);            /* 7 */
  set_window(m, &k, OPEN);
  EXPECT_FRAMES(&k, 1, 6, 7);
  sub_stats(h, &k, &s);
  CHECK_EQ(s.drops[SL_DROP_RESYNC], 2);
  EXPECT_FRAMES(&o, 1, 2, 3, 4, 5, 6, 7);
  finish(m, h, (struct fake *[]){&k, &o}, 2);
}

/* Dropping pending frames is not enough when stalled viewers each pin a
 * different in-flight frame: the longest-stalled is evicted, and only as
 * many as needed, even when a publish and the tick run in one iteration. */
static sl_hub *g_hub;
static void publish_timer(sl_mgr *m, void *arg) {
  (void)m, (void)arg;
  sl_buf *b = sl_buf_new(FRAME);
  mp_put_u64(sl_buf_data(b), g_hub->seq + 1);
  CHECK_EQ(sl_hub_publish(g_hub, b, 0, 0), 0);
  sl_buf_unref(b);
}

TEST(hub_policy_budget_evicts_longest_stalled) {
  sl_mgr *m = mgr_fake();
  sl_hub_opts ho = {.budget = 3 * frame_size(FRAME) + 100};
  sl_hub *h = hub_new(m, &ho);
  struct fake a, b, c, d;
  CHECK_EQ(attach(h, &a, 0, SL_TRANSPORT_MJPEG, NULL), 0);
  CHECK_EQ(attach(h, &b, OPEN, SL_TRANSPORT_MJPEG, NULL), 0);
  CHECK_EQ(attach(h, &c, OPEN, SL_TRANSPORT_MJPEG, NULL), 0);
  CHECK_EQ(attach(h, &d, OPEN, SL_TRANSPORT_MJPEG, NULL), 0);
  frame(m, h, FRAME, 0); /* a stalls at 1 */
  set_window(m, &b, 0);
  frame(m, h, FRAME, 0); /* b at 2 */
  set_window(m, &c, 0);
  frame(m, h, FRAME, 0); /* c at 3 */
  sl_hub_stats hs = hub_stats(h);
  CHECK_EQ(hs.frames_held, 3);
  /* Frame 4 is published by a timer due just before the hub's tick, so
   * both run in one iteration, before the evicted connection is reaped. */
  g_hub = h;
  uint64_t tick_due = h->tick->due;
  CHECK(tick_due > fake_now);
  sl_timer_add(m, tick_due - 1 - fake_now, 0, publish_timer, NULL, NULL);
  fake_now = tick_due;
  step(m);
  step(m);
  CHECK(a.closed);
  CHECK_EQ(a.close_reason, SL_CLOSE_EVICTED);
  CHECK(!b.closed);
  CHECK(!c.closed);
  hs = hub_stats(h);
  CHECK_EQ(hs.evictions[SL_EVICT_BUDGET], 1);
  CHECK_EQ(evl.leave_evict[SL_EVICT_BUDGET], 1);
  CHECK_LE(hs.held, ho.budget);
  CHECK_EQ(hs.frames_held, 3); /* 2 (b), 3 (c), 4 (latest) */
  set_window(m, &b, OPEN);
  set_window(m, &c, OPEN);
  frame(m, h, FRAME, 0);
  /* Their pending frame 4 is the latest, shared: dropping it would have
   * freed nothing, so they kept it. */
  EXPECT_FRAMES(&b, 1, 2, 4, 5);
  EXPECT_FRAMES(&c, 1, 2, 3, 4, 5);
  EXPECT_FRAMES(&d, 1, 2, 3, 4, 5);
  finish(m, h, (struct fake *[]){&a, &b, &c, &d}, 4);
}

/* ---- refcounts and held accounting ------------------------------------ */

TEST(hub_policy_refcounts_reach_zero) {
  sl_mgr *m = mgr_fake();
  sl_hub *h = hub_new(m, NULL);
  sl_sub_opts q = {.policy = SL_POLICY_QUEUE, .queue_len = 4};
  sl_sub_opts k = {.policy = SL_POLICY_KEYFRAME, .queue_len = 4};
  sl_sub_opts l = {.policy = SL_POLICY_LOSSLESS, .queue_len = 4};
  struct fake f[6];
  CHECK_EQ(attach(h, &f[0], 3000, SL_TRANSPORT_MJPEG, NULL), 0);
  CHECK_EQ(attach(h, &f[1], 0, SL_TRANSPORT_MJPEG, &q), 0);
  CHECK_EQ(attach(h, &f[2], 0, SL_TRANSPORT_MJPEG, &k), 0);
  CHECK_EQ(attach(h, &f[3], 70000, SL_TRANSPORT_RAW, &l), 0);
  CHECK_EQ(attach(h, &f[4], OPEN, SL_TRANSPORT_CHUNKED, NULL), 0);
  CHECK_EQ(attach(h, &f[5], OPEN, SL_TRANSPORT_MJPEG, &q), 0);
  for (int i = 1; i <= 12; i++) frame(m, h, FRAME, i % 4 == 1 ? SL_FRAME_KEY : 0);
  /* Every live sl_buf is one of the hub's live frames: nothing else
   * holds a frame, and no frame is copied per subscriber. */
  sl_mem_stats ms;
  sl_mem_stats_get(&ms);
  sl_hub_stats hs = hub_stats(h);
  CHECK_EQ(ms.nbufs, hs.frames_held);
  CHECK_EQ(ms.bufs, hs.held);
  /* Close some, in the middle of frames. */
  sl_conn_close(f[1].c, SL_CLOSE_NOW);
  sl_conn_close(f[3].c, SL_CLOSE_RESET);
  step(m);
  sl_mem_stats_get(&ms);
  hs = hub_stats(h);
  CHECK_EQ(ms.nbufs, hs.frames_held);
  CHECK_EQ(hs.subs, 4);
  /* Free the hub while connections still hold frames in their queues. */
  sl_hub_free(h);
  step(m);
  for (int i = 0; i < 6; i++) CHECK(f[i].closed);
  sl_mem_stats_get(&ms);
  CHECK_EQ(ms.nbufs, 0);
  CHECK_EQ(ms.bufs, 0);
  sl_mgr_stats st;
  sl_mgr_stats_get(m, &st);
  CHECK_EQ(st.held, 0);
  CHECK_EQ(st.queued, 0);
  CHECK_EQ(st.closed_by[SL_CLOSE_EVICTED], 4);
  sl_mgr_free(m);
  sl_mem_stats_get(&ms);
  CHECK_EQ(ms.total, 0);
  for (int i = 0; i < 6; i++) free(f[i].rec);
}

/* 100 subscribers of one stream, half of them stalled: the hub holds each
 * live frame once, not once per subscriber. */
TEST(hub_policy_held_counts_each_frame_once) {
  sl_mgr *m = mgr_fake();
  sl_hub *h = hub_new(m, NULL);
  enum { N = 100 };
  static struct fake f[N];
  for (int i = 0; i < N; i++)
    CHECK_EQ(attach(h, &f[i], i % 2 ? OPEN : 0, SL_TRANSPORT_MJPEG, NULL), 0);
  size_t max_held = 0, max_frames = 0, max_mgr = 0;
  for (int k = 1; k <= 30; k++) {
    frame(m, h, FRAME, 0);
    sl_hub_stats hs = hub_stats(h);
    sl_mgr_stats st;
    sl_mgr_stats_get(m, &st);
    sl_mem_stats ms;
    sl_mem_stats_get(&ms);
    CHECK_EQ(hs.held, hs.frames_held * frame_size(FRAME));
    CHECK_EQ(ms.nbufs, hs.frames_held);
    if (hs.held > max_held) max_held = hs.held;
    if (hs.frames_held > max_frames) max_frames = hs.frames_held;
    if (st.held > max_mgr) max_mgr = st.held;
  }
  /* Frames alive: 1 (the stalled half's in-flight frame) and the latest
   * (their pending frame). */
  CHECK_EQ(max_frames, 2);
  CHECK_EQ(max_held, 2 * frame_size(FRAME));
  /* The manager counts queued frames once; per connection it adds only
   * the part heads (owned chunks). */
  CHECK_LE(max_mgr, 2 * frame_size(FRAME) + N * 2048);
  sl_sub_stats all[N];
  CHECK_EQ(sl_hub_subs(h, all, N), N);
  for (int i = 0; i < N; i++)
    CHECK_EQ(all[i].frames_sent, all[i].queued ? 1 : 30);
  for (int i = 0; i < N; i += 2) set_window(m, &f[i], OPEN);
  for (int i = 0; i < N; i++) {
    if (i % 2) {
      struct mp p;
      parse(&f[i], &p);
      CHECK_EQ(p.ncomplete, 30);
      mp_fini(&p);
    } else {
      EXPECT_FRAMES(&f[i], 1, 30);
    }
  }
  sl_hub_stats hs = hub_stats(h);
  CHECK_EQ(hs.frames_held, 1);
  struct fake *fs[N];
  for (int i = 0; i < N; i++) fs[i] = &f[i];
  finish(m, h, fs, N);
}

/* ---- choosing a policy ------------------------------------------------ */

/* A viewer may choose `latest` on a hub whose default is another policy,
 * and a zeroed sl_sub_opts inherits the hub's default. */
TEST(hub_policy_viewer_choice_beats_hub_default) {
  sl_mgr *m = mgr_fake();
  sl_hub_opts ho = {.sub = {.policy = SL_POLICY_QUEUE, .queue_len = 8}};
  sl_hub *h = hub_new(m, &ho);
  sl_sub_opts latest = {.policy = SL_POLICY_LATEST};
  sl_sub_opts inherit = {0};
  struct fake a, b;
  CHECK_EQ(attach(h, &a, OPEN, SL_TRANSPORT_MJPEG, &latest), 0);
  CHECK_EQ(attach(h, &b, OPEN, SL_TRANSPORT_MJPEG, &inherit), 0);
  sl_sub_stats s;
  sub_stats(h, &a, &s);
  CHECK_EQ(s.policy, SL_POLICY_LATEST);
  sub_stats(h, &b, &s);
  CHECK_EQ(s.policy, SL_POLICY_QUEUE);
  CHECK_STR(sl_policy_name(SL_POLICY_LATEST), "latest");
  CHECK_STR(sl_policy_name(SL_POLICY_INHERIT), "inherit");
  CHECK_STR(sl_policy_name(42), "?");
  finish(m, h, (struct fake *[]){&a, &b}, 2);
}
