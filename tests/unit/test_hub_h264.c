/*
 * Unit tests of H.264 hubs, without sockets: what the hub reads from an
 * access unit (keyframe flag, codec configuration), the GOP cache (bounded
 * by gop_max, released exactly once), a joining viewer's start, the skip to
 * the next IDR under every lossy policy, lossless, parameter sets sent in
 * front of a keyframe that lacks them, and the WebSocket framing.
 *
 * The access units are made by hand (tests/h264_fake.h: real SPS and
 * PPS, fake slices that carry their sequence number), and a viewer's bytes
 * are read back and checked for decodability there too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "http_parse.h"
#include "hub_fake.h"

#include "h264_fake.h"

/* Publish the hub's next access unit at T0 + (seq-1)/30 s (a 30 fps
 * source). Returns what sl_hub_publish returned; *len: its bytes. */
static int pub(sl_mgr *m, sl_hub *h, int key, int ps, size_t slice, size_t *len) {
  uint64_t seq = h->seq + 1;
  at(m, (seq - 1) * 1000 / 30);
  sl_buf *b = mk_au(seq, key, ps, slice);
  if (len) *len = sl_buf_len(b);
  int rc = sl_hub_publish(h, b, 0, 0);
  sl_buf_unref(b);
  step(m);
  return rc;
}

/* A GOP: an IDR (parameter sets `ps` in-band) and n-1 P-frames. */
static void gop(sl_mgr *m, sl_hub *h, int n, int ps) {
  for (int i = 0; i < n; i++) CHECK_EQ(pub(m, h, i == 0, i == 0 ? ps : PS_NONE, SLICE, NULL), 0);
}

static sl_hub *hub_h264(sl_mgr *m, size_t gop_max, int policy) {
  int err = 0;
  sl_hub_opts o = {.kind = SL_KIND_H264, .gop_max = gop_max};
  o.sub.policy = policy;
  sl_hub *h = sl_hub_new(m, "cam", &o, &err);
  CHECK_MSG(h != NULL, "sl_hub_new: %s", sl_strerror(err));
  return h;
}

static void got(const struct fake *f, struct aus *a) { parse_annexb(f->rec, f->len, a); }

/* The sequence numbers of `a`'s complete frames are exactly `want`. */
static void expect_seqs(const struct aus *a, const uint64_t *want, size_t n) {
  char s[512] = "";
  size_t k = 0, nc = 0;
  for (size_t i = 0; i < a->n; i++) {
    nc += a->v[i].complete;
    if (k + 24 < sizeof(s))
      k += (size_t)snprintf(s + k, sizeof(s) - k, " %llu%s%s", (unsigned long long)a->v[i].seq,
                            a->v[i].key ? "K" : "", a->v[i].complete ? "" : "(part)");
  }
  CHECK_MSG(nc == n, "got %zu frames, want %zu:%s", nc, n, s);
  for (size_t i = 0; i < n; i++)
    CHECK_MSG(a->v[i].seq == want[i] && a->v[i].complete, "frame %zu is %llu, want %llu:%s",
              i, (unsigned long long)a->v[i].seq, (unsigned long long)want[i], s);
}
#define EXPECT_SEQS(a, ...)                                                  \
  expect_seqs((a), (const uint64_t[]){__VA_ARGS__},                          \
              sizeof((const uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t))

/* ---- what the hub reads from an access unit ------------------------- */

TEST(hub_h264_flags_config_and_refusals) {
  sl_mgr *m = mgr_fake();
  sl_hub *h = hub_h264(m, 0, 0);
  /* Frames before any configuration: no viewer could decode them. */
  CHECK_EQ(pub(m, h, 0, PS_NONE, SLICE, NULL), SL_EPROTO);
  CHECK_EQ(pub(m, h, 1, PS_NONE, SLICE, NULL), SL_EPROTO);
  sl_hub_stats st = hub_stats(h);
  CHECK_EQ(st.no_config, 2);
  CHECK_EQ(st.frames_in, 0);
  CHECK_EQ(st.seq, 0);
  CHECK_EQ(st.frames_held, 0);
  CHECK_STR(st.codec, "");
  /* Parameter sets alone: the configuration, not a frame. */
  CHECK_EQ(pub(m, h, 0, PS_A, 0, NULL), 0);
  st = hub_stats(h);
  CHECK_EQ(st.frames_in, 0);
  CHECK_EQ(st.seq, 0);
  CHECK_EQ(st.frames_held, 0);
  CHECK_EQ(st.codec_changes, 1);
  CHECK_STR(st.codec, "avc1.42c00b");
  CHECK_EQ(st.width, 160);
  CHECK_EQ(st.height, 120);
  CHECK(st.codec_fps > 29.9 && st.codec_fps < 30.1);
  /* The flag comes from the access unit, whatever the publisher says. */
  sl_buf *b = mk_au(1, 1, PS_NONE, SLICE);
  CHECK_EQ(sl_hub_publish(h, b, 0, 0), 0);
  sl_buf_unref(b);
  CHECK(h->latest->flags & SL_FRAME_KEY);
  CHECK(!h->latest->has_ps);
  b = mk_au(2, 0, PS_NONE, SLICE);
  CHECK_EQ(sl_hub_publish(h, b, 0, SL_FRAME_KEY), 0);
  sl_buf_unref(b);
  CHECK(!(h->latest->flags & SL_FRAME_KEY));
  /* The same parameter sets in-band (encoders repeat them): unchanged. */
  CHECK_EQ(pub(m, h, 1, PS_A, SLICE, NULL), 0);
  CHECK(h->latest->has_ps);
  CHECK_EQ(hub_stats(h).codec_changes, 1);
  uint64_t gen = h->latest->codec->gen;
  /* A new SPS: a new configuration with the next generation. */
  CHECK_EQ(pub(m, h, 1, PS_B, SLICE, NULL), 0);
  st = hub_stats(h);
  CHECK_EQ(st.codec_changes, 2);
  CHECK_STR(st.codec, "avc1.42c00d");
  CHECK_EQ(st.width, 320);
  CHECK_EQ(st.height, 240);
  CHECK_EQ(h->latest->codec->gen, gen + 1);
  /* An unreadable SPS is counted, and the configuration in force stays. */
  static const unsigned char bad[] = {0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xcb};
  b = sl_buf_from(bad, sizeof(bad));
  CHECK_EQ(sl_hub_publish(h, b, 0, 0), SL_EPROTO);
  sl_buf_unref(b);
  st = hub_stats(h);
  CHECK_EQ(st.no_config, 3);
  CHECK_EQ(st.width, 320);
  CHECK_EQ(st.frames_in, 4);
  CHECK_EQ(st.seq, 4);
  finish(m, h, NULL, 0);
}

/* ---- the GOP cache -------------------------------------------------- */

/* Held bytes are those of the cached GOP (the latest is its last frame):
 * each IDR releases the previous GOP at once, every frame exactly once, and
 * the only sl_bufs alive are those frames and the configuration's two (its
 * Annex-B bytes and its WebSocket message). */
TEST(hub_h264_gop_cache_bounded_and_released_once) {
  sl_mgr *m = mgr_fake();
  size_t one = 0;
  sl_buf *probe = mk_au(1, 0, PS_NONE, SLICE);
  one = sl_buf_len(probe);
  size_t one_size = sl__buf_size(probe);
  sl_buf_unref(probe);
  /* Room for an IDR and 6 P-frames, not 7. */
  size_t gop_max = 7 * one + 2 * sizeof(SPS_A);
  sl_hub *h = hub_h264(m, gop_max, 0);
  CHECK_EQ(pub(m, h, 0, PS_A, 0, NULL), 0);
  uint64_t cuts = 0;
  for (int g = 0; g < 6; g++) {
    /* Even GOPs fit (5 frames), odd ones do not (10 frames). */
    int len = g % 2 ? 10 : 5;
    size_t bytes = 0, alive = 0;
    for (int i = 0; i < len; i++) {
      size_t n;
      CHECK_EQ(pub(m, h, i == 0, i == 0 ? PS_A : PS_NONE, SLICE, &n), 0);
      sl_hub_stats st = hub_stats(h);
      if (i == 0) {
        /* The IDR released the whole previous GOP. */
        CHECK_EQ(st.frames_held, 1);
        CHECK_EQ(st.held, sl__buf_size(h->latest->buf));
      }
      bytes += n;
      alive += sl__buf_size(h->latest->buf);
      if (bytes <= gop_max) {
        CHECK_EQ(st.gop_frames, (size_t)i + 1);
        CHECK_EQ(st.gop_bytes, bytes);
        CHECK_EQ(st.frames_held, (size_t)i + 1);
        CHECK_EQ(st.held, alive);
      } else {
        /* Cut: only the latest is left, until the next IDR. */
        if (bytes - n <= gop_max) cuts++;
        CHECK_EQ(st.gop_frames, 0);
        CHECK_EQ(st.gop_bytes, 0);
        CHECK_EQ(st.frames_held, 1);
        CHECK_EQ(st.held, one_size);
      }
      CHECK_EQ(st.gop_cuts, cuts);
      sl_mem_stats ms;
      sl_mem_stats_get(&ms);
      CHECK_EQ(ms.nbufs, st.frames_held + 2);
    }
  }
  CHECK_EQ(cuts, 3);
  finish(m, h, NULL, 0);
}

/* ---- joining ---------------------------------------------------------- */

TEST(hub_h264_join_starts_from_cached_gop) {
  sl_mgr *m = mgr_fake();
  sl_hub *h = hub_h264(m, 0, 0);
  CHECK_EQ(pub(m, h, 0, PS_A, 0, NULL), 0);
  /* An IDR without in-band parameter sets, then P-frames. */
  gop(m, h, 5, PS_NONE);
  struct fake a;
  CHECK_EQ(attach(h, &a, OPEN, SL_TRANSPORT_RAW, NULL), 0);
  step(m);
  /* At once: the GOP from its IDR, in order, the IDR behind SPS and PPS. */
  struct aus r;
  got(&a, &r);
  EXPECT_SEQS(&r, 1, 2, 3, 4, 5);
  CHECK_EQ(r.v[0].ps, PS_A);
  CHECK_EQ(r.v[0].start, 0);
  CHECK_EQ(check_decodable(&r, "joined"), 0);
  aus_fini(&r);
  CHECK_EQ(pub(m, h, 0, PS_NONE, SLICE, NULL), 0);
  got(&a, &r);
  EXPECT_SEQS(&r, 1, 2, 3, 4, 5, 6);
  aus_fini(&r);
  sl_sub_stats ss;
  sub_stats(h, &a, &ss);
  CHECK_EQ(ss.resyncs, 0);
  CHECK_EQ(ss.frames_sent, 6);
  struct fake *fs[] = {&a};
  finish(m, h, fs, 1);
}

TEST(hub_h264_join_after_cut_waits_for_next_idr) {
  sl_mgr *m = mgr_fake();
  sl_hub *h = hub_h264(m, 3 * (SLICE + 4) + 100, 0);
  CHECK_EQ(pub(m, h, 0, PS_A, 0, NULL), 0);
  gop(m, h, 6, PS_A); /* cut at the 4th frame */
  CHECK_EQ(hub_stats(h).gop_cuts, 1);
  CHECK_EQ(hub_stats(h).gop_frames, 0);
  struct fake b;
  CHECK_EQ(attach(h, &b, OPEN, SL_TRANSPORT_RAW, NULL), 0);
  step(m);
  CHECK_EQ(b.len, 0);
  CHECK_EQ(pub(m, h, 0, PS_NONE, SLICE, NULL), 0);
  CHECK_EQ(pub(m, h, 0, PS_NONE, SLICE, NULL), 0);
  CHECK_EQ(b.len, 0);
  gop(m, h, 3, PS_NONE); /* frames 9..11, the IDR without parameter sets */
  struct aus r;
  got(&b, &r);
  EXPECT_SEQS(&r, 9, 10, 11);
  CHECK_EQ(r.v[0].ps, PS_A);
  CHECK_EQ(check_decodable(&r, "after cut"), 0);
  aus_fini(&r);
  sl_sub_stats ss;
  sub_stats(h, &b, &ss);
  CHECK_EQ(ss.resyncs, 0);             /* it never fell behind */
  CHECK_EQ(ss.drops[SL_DROP_RESYNC], 2); /* the two P-frames it waited out */
  struct fake *fs[] = {&b};
  finish(m, h, fs, 1);
}

/* A viewer's skip still open (nothing received since it was behind). */
static int open_gap(sl_hub *h, const struct fake *f) {
  for (struct sub *s = h->subs; s; s = s->next)
    if (s->c == f->c) return s->gap;
  CHECK_MSG(0, "not a subscriber");
  return 0;
}

/* ---- falling behind --------------------------------------------------- */

#define GOP 10

/* 30 fps, an IDR every GOP frames (parameter sets in-band on even GOPs,
 * sent by reference on odd ones); viewer `v` has its window closed from
 * frame `stall_from` for `stall` frames, then open. */
static void run_stall(sl_mgr *m, sl_hub *h, struct fake *v, int frames, int stall_from,
                      int stall) {
  for (int i = 0; i < frames; i++) {
    if (i == stall_from) set_window(m, v, 0);
    if (i == stall_from + stall) set_window(m, v, OPEN);
    int key = i % GOP == 0;
    CHECK_EQ(pub(m, h, key, key && (i / GOP) % 2 == 0 ? PS_A : PS_NONE, SLICE, NULL), 0);
  }
  at(m, (uint64_t)frames * 1000 / 30 + 500);
}

TEST(hub_h264_every_lossy_policy_skips_to_next_idr) {
  static const struct {
    int policy;
    unsigned queue_len;
    const char *name;
  } cases[] = {{SL_POLICY_KEYFRAME, 0, "keyframe"},
               {SL_POLICY_LATEST, 0, "latest"},
               {SL_POLICY_QUEUE, 4, "queue:4"},
               {SL_POLICY_INHERIT, 0, "default"}};
  for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
    sl_mgr *m = mgr_fake();
    sl_hub *h = hub_h264(m, 0, 0);
    CHECK_EQ(pub(m, h, 0, PS_A, 0, NULL), 0);
    struct fake v, fast;
    sl_sub_opts o = {.policy = cases[k].policy, .queue_len = cases[k].queue_len};
    CHECK_EQ(attach(h, &v, OPEN, SL_TRANSPORT_RAW, &o), 0);
    CHECK_EQ(attach(h, &fast, OPEN, SL_TRANSPORT_RAW, &o), 0);
    sl_sub_stats ss;
    sub_stats(h, &v, &ss);
    CHECK_MSG(ss.policy == SL_POLICY_KEYFRAME, "%s: policy %s", cases[k].name,
              sl_policy_name(ss.policy));
    /* Stalled 3 s (past resync_ms, and past 60 frames) from mid-GOP. */
    run_stall(m, h, &v, 200, 25, 90);
    struct aus r;
    got(&v, &r);
    int gaps = check_decodable(&r, cases[k].name);
    CHECK_MSG(gaps >= 1, "%s: no gap after a 3 s stall", cases[k].name);
    CHECK_EQ(r.v[r.n - 1].seq, 200);
    sub_stats(h, &v, &ss);
    /* One resync per gap it saw, however long it stalled. */
    CHECK_MSG(ss.resyncs == (uint64_t)gaps, "%s: resyncs %llu, gaps %d", cases[k].name,
              (unsigned long long)ss.resyncs, gaps);
    CHECK_EQ(hub_stats(h).resyncs, ss.resyncs);
    aus_fini(&r);
    /* The viewer that kept up got everything. */
    got(&fast, &r);
    CHECK_EQ(check_decodable(&r, "fast"), 0);
    CHECK_EQ(r.n, 200);
    sub_stats(h, &fast, &ss);
    CHECK_EQ(ss.resyncs, 0);
    aus_fini(&r);
    struct fake *fs[] = {&v, &fast};
    finish(m, h, fs, 2);
  }
}

/* A slow reader: a window of a fraction of each frame, opened a little at
 * every frame, on a stream whose frames vary in size. Whatever it receives
 * decodes. */
TEST(hub_h264_slow_reader_always_decodable) {
  for (int policy = SL_POLICY_LATEST; policy <= SL_POLICY_KEYFRAME; policy++) {
    sl_mgr *m = mgr_fake();
    sl_hub *h = hub_h264(m, 0, 0);
    CHECK_EQ(pub(m, h, 0, PS_A, 0, NULL), 0);
    struct fake v;
    /* queue:N on H.264: N pending frames count as behind. */
    sl_sub_opts o = {.policy = policy, .queue_len = policy == SL_POLICY_QUEUE ? 20 : 0};
    CHECK_EQ(attach(h, &v, 0, SL_TRANSPORT_RAW, &o), 0);
    uint32_t rnd = 12345;
    for (int i = 0; i < 600; i++) {
      rnd = rnd * 1103515245u + 12345u;
      int key = i % 30 == 0;
      size_t slice = key ? 6 * SLICE : SLICE / 2 + (rnd >> 16) % SLICE;
      CHECK_EQ(pub(m, h, key, key ? PS_A : PS_NONE, slice, NULL), 0);
      /* About 60% of the byte rate, in uneven sips. */
      set_window(m, &v, 600 + (rnd >> 8) % 1400);
    }
    struct aus r;
    got(&v, &r);
    int gaps = check_decodable(&r, sl_policy_name(policy));
    sl_sub_stats ss;
    sub_stats(h, &v, &ss);
    CHECK_MSG(gaps >= 2 && ss.resyncs == (uint64_t)(gaps + open_gap(h, &v)),
              "%s: %d gaps, %llu resyncs", sl_policy_name(policy), gaps,
              (unsigned long long)ss.resyncs);
    printf("  %s: %zu of 600 frames, %d gaps, %llu resyncs\n", sl_policy_name(policy), r.n,
           gaps, (unsigned long long)ss.resyncs);
    CHECK_MSG(r.n > 60, "%s: %zu frames", sl_policy_name(policy), r.n);
    aus_fini(&r);
    struct fake *fs[] = {&v};
    finish(m, h, fs, 1);
  }
}

TEST(hub_h264_lossless_gets_every_frame) {
  sl_mgr *m = mgr_fake();
  sl_hub *h = hub_h264(m, 0, 0);
  CHECK_EQ(pub(m, h, 0, PS_A, 0, NULL), 0);
  struct fake v;
  sl_sub_opts o = {.policy = SL_POLICY_LOSSLESS};
  CHECK_EQ(attach(h, &v, OPEN, SL_TRANSPORT_RAW, &o), 0);
  /* Stalled for 90 frames: past its queue of 60, the hub says not ready,
   * and drops nothing. */
  run_stall(m, h, &v, 150, 15, 90);
  struct aus r;
  got(&v, &r);
  CHECK_EQ(check_decodable(&r, "lossless"), 0);
  CHECK_EQ(r.n, 150);
  for (size_t i = 0; i < r.n; i++) CHECK_EQ(r.v[i].seq, i + 1);
  aus_fini(&r);
  sl_sub_stats ss;
  sub_stats(h, &v, &ss);
  CHECK_EQ(ss.resyncs, 0);
  for (int d = 0; d < SL_DROP_NREASONS; d++) CHECK_EQ(ss.drops[d], 0);
  CHECK(sl_hub_ready(h));
  struct fake *fs[] = {&v};
  finish(m, h, fs, 1);
}

/* ---- WebSocket -------------------------------------------------------- */

struct wsmsg {
  int opcode;
  const unsigned char *p;
  size_t len;
};

/* Split the bytes a server sent after its 101 head into messages (every
 * one in a single unmasked frame). Returns how many. */
static size_t ws_split(const struct fake *f, struct wsmsg *out, size_t max) {
  const unsigned char *p = f->rec, *end = f->rec + f->len;
  const unsigned char *h = NULL;
  for (size_t i = 0; i + 4 <= f->len; i++)
    if (memcmp(p + i, "\r\n\r\n", 4) == 0) {
      h = p + i + 4;
      break;
    }
  CHECK_MSG(h != NULL && strncmp((const char *)p, "HTTP/1.1 101 ", 13) == 0, "no 101 head");
  size_t n = 0;
  while (h + 2 <= end && n < max) {
    CHECK_MSG(h[0] & 0x80, "fragmented message");
    CHECK_MSG(!(h[1] & 0x80), "masked server frame");
    size_t len = h[1] & 0x7f, hl = 2;
    if (len == 126) {
      len = (size_t)h[2] << 8 | h[3];
      hl = 4;
    } else if (len == 127) {
      len = 0;
      for (int k = 0; k < 8; k++) len = len << 8 | h[2 + k];
      hl = 10;
    }
    if (h + hl + len > end) break; /* the last one, cut short */
    out[n].opcode = h[0] & 0x0f;
    out[n].p = h + hl;
    out[n].len = len;
    n++;
    h += hl + len;
  }
  return n;
}

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t unix_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static int ws_attach(sl_hub *h, struct fake *f) {
  static const char req[] =
      "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  sl_conn *c = fake_conn(h->mgr, f, OPEN);
  CHECK(sl__http_attach(c, NULL) != NULL);
  sl_http_msg msg;
  CHECK_EQ(sl__http_parse_request(req, sizeof(req) - 1, NULL, &msg), (int)sizeof(req) - 1);
  sl_ws_opts wo = {.ping_ms = UINT32_MAX};
  return sl_hub_attach(h, c, &msg, SL_TRANSPORT_WS, NULL, &wo);
}

/* One binary message: the 16-byte header, then exactly access unit `seq`
 * (with the configuration's parameter sets in front when `ps`). */
static void check_au_msg(const struct wsmsg *w, uint64_t seq, int key, int gap, int ps,
                         uint64_t t0, uint64_t t1) {
  CHECK_EQ(w->opcode, SL_WS_BINARY);
  CHECK(w->len > 16);
  CHECK_EQ(w->p[0], 1);
  CHECK_MSG(w->p[1] == ((key ? 1 : 0) | (gap ? 2 : 0)), "frame %llu: flags %d",
            (unsigned long long)seq, w->p[1]);
  CHECK_EQ(w->p[2], 0);
  CHECK_EQ(w->p[3], 0);
  CHECK_EQ(be32(w->p + 4), seq);
  uint64_t ms = (uint64_t)be32(w->p + 8) << 32 | be32(w->p + 12);
  CHECK_MSG(ms >= t0 && ms <= t1, "frame %llu: publish time %llu not in [%llu, %llu]",
            (unsigned long long)seq, (unsigned long long)ms, (unsigned long long)t0,
            (unsigned long long)t1);
  sl_buf *want = mk_au(seq, key, ps, SLICE);
  CHECK_EQ(w->len - 16, sl_buf_len(want));
  CHECK_MEM(w->p + 16, sl_buf_cdata(want), sl_buf_len(want));
  sl_buf_unref(want);
}

TEST(hub_h264_websocket_config_and_headers) {
  sl_mgr *m = mgr_fake();
  sl_hub *h = hub_h264(m, 0, 0);
  uint64_t t0 = unix_ms();
  CHECK_EQ(pub(m, h, 0, PS_A, 0, NULL), 0);
  gop(m, h, 3, PS_NONE); /* 1..3 */
  struct fake v;
  CHECK_EQ(ws_attach(h, &v), 0);
  step(m);
  gop(m, h, 2, PS_A); /* 4..5: in-band parameter sets, unchanged */
  set_window(m, &v, 0);
  /* Stalled past resync_ms: it skips to the next IDR, flagged as a gap. */
  for (int i = 0; i < 40; i++) CHECK_EQ(pub(m, h, 0, PS_NONE, SLICE, NULL), 0); /* 6..45 */
  set_window(m, &v, OPEN);
  gop(m, h, 2, PS_B); /* 46..47: a new configuration */
  uint64_t t1 = unix_ms();
  struct wsmsg w[64];
  size_t n = ws_split(&v, w, 64);
  /* config, 1..5, the frame in flight when it stalled (6), config, 46, 47. */
  CHECK_EQ(n, 10);
  CHECK_EQ(w[0].opcode, SL_WS_TEXT);
  char want[200];
  snprintf(want, sizeof(want),
           "{\"type\":\"config\",\"codec\":\"avc1.42c00b\",\"width\":160,\"height\":120,"
           "\"fps\":30.000}");
  CHECK_EQ(w[0].len, strlen(want));
  CHECK_MEM(w[0].p, want, w[0].len);
  check_au_msg(&w[1], 1, 1, 0, PS_A, t0, t1); /* parameter sets inserted */
  check_au_msg(&w[2], 2, 0, 0, PS_NONE, t0, t1);
  check_au_msg(&w[3], 3, 0, 0, PS_NONE, t0, t1);
  check_au_msg(&w[4], 4, 1, 0, PS_A, t0, t1); /* in-band, sent as they are */
  check_au_msg(&w[5], 5, 0, 0, PS_NONE, t0, t1);
  check_au_msg(&w[6], 6, 0, 0, PS_NONE, t0, t1);
  CHECK_EQ(w[7].opcode, SL_WS_TEXT);
  CHECK(w[7].len > 30 && memmem(w[7].p, w[7].len, "\"codec\":\"avc1.42c00d\",\"width\":320,"
                                "\"height\":240", 46) != NULL);
  check_au_msg(&w[8], 46, 1, 1, PS_B, t0, t1);
  check_au_msg(&w[9], 47, 0, 0, PS_NONE, t0, t1);
  sl_sub_stats ss;
  sub_stats(h, &v, &ss);
  CHECK_EQ(ss.resyncs, 1);
  CHECK_EQ(ss.frames_sent, 8);
  struct fake *fs[] = {&v};
  finish(m, h, fs, 1);
}
