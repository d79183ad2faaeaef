/*
 * sluice-stream's fragmented MP4 transports end to end (docs/fmp4.md,
 * docs/h264.md): `/stream.mp4` and `/ws?format=fmp4` of the openh264 test
 * pattern, read by ffmpeg and by raw sockets or the library's WebSocket
 * client that read fast, slowly or stall. What a viewer received is split
 * into its boxes here (init segment, then moof+mdat pairs), cut after the
 * last complete pair, and decoded by ffmpeg with zero errors, one frame per
 * fragment; the block code of every frame must be its fragment's mfhd
 * sequence number, and the fragment after every gap must be a sync sample
 * (trun flags) whose mdat holds an IDR.
 *
 * 1000 viewers of one stream: the fragment is built once per frame
 * (mp4_fragments against frames_in), and the hub's held bytes stay bounded.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "h264_viewer.h"

/* Frames keep the fMP4 timescale (90 kHz) on the way out: the rawvideo
 * muxer otherwise gets a time base from the frame rate ffmpeg guesses, in
 * which two frames closer than its tick collide ("non monotonically
 * increasing dts"), which says nothing about the stream. */
#define ENC_TB "-enc_time_base 1/90000"

/* ---- the boxes a viewer received ---------------------------------------- */

enum { MAXF = 8192 };

struct frags {
  size_t n, inits, end; /* end: after the last complete moof+mdat */
  uint32_t seq[MAXF];
  uint64_t dts[MAXF];
  unsigned char sync[MAXF]; /* trun sample flags 0x02000000 */
  unsigned char idr[MAXF];  /* the mdat holds a NAL unit of type 5 */
};

static uint64_t be64(const unsigned char *p) {
  return (uint64_t)hv_be32(p) << 32 | hv_be32(p + 4);
}

/* The child box `type` of the box at [p, p + len) whose children start at
 * `skip`; NULL when absent. *n gets its size. */
static const unsigned char *child(const unsigned char *p, size_t len, size_t skip,
                                  const char *type, size_t *n) {
  for (size_t i = skip; i + 8 <= len;) {
    size_t sz = hv_be32(p + i);
    if (sz < 8 || i + sz > len) return NULL;
    if (memcmp(p + i + 4, type, 4) == 0) {
      *n = sz;
      return p + i;
    }
    i += sz;
  }
  return NULL;
}

/* Walk the top-level boxes: ftyp+moov once at the start (inits counts the
 * moov boxes), then moof+mdat pairs, each checked against docs/fmp4.md
 * (one sample; its size is the mdat's payload; the payload is 4-byte
 * length-prefixed NAL units). A box cut short ends the walk. */
static void parse_mp4(const unsigned char *p, size_t len, struct frags *f, const char *who) {
  memset(f, 0, sizeof(*f));
  size_t i = 0;
  const unsigned char *moof = NULL;
  size_t moof_len = 0;
  while (i + 8 <= len) {
    size_t sz = hv_be32(p + i);
    CHECK_MSG(sz >= 8, "%s: box of size %zu at %zu", who, sz, i);
    if (i + sz > len) break;
    const unsigned char *b = p + i;
    if (memcmp(b + 4, "ftyp", 4) == 0) {
      CHECK_MSG(f->n == 0 && i == 0, "%s: ftyp at %zu after %zu fragments", who, i, f->n);
    } else if (memcmp(b + 4, "moov", 4) == 0) {
      CHECK_MSG(f->n == 0, "%s: moov after %zu fragments", who, f->n);
      f->inits++;
    } else if (memcmp(b + 4, "moof", 4) == 0) {
      CHECK_MSG(f->inits == 1 && moof == NULL, "%s: moof at %zu (inits %zu)", who, i, f->inits);
      moof = b;
      moof_len = sz;
    } else if (memcmp(b + 4, "mdat", 4) == 0) {
      CHECK_MSG(moof != NULL, "%s: mdat at %zu without a moof", who, i);
      CHECK_MSG(f->n < MAXF, "%s: too many fragments", who);
      size_t n1 = 0, n2 = 0, n3 = 0, n4 = 0;
      const unsigned char *mfhd = child(moof, moof_len, 8, "mfhd", &n1);
      const unsigned char *traf = child(moof, moof_len, 8, "traf", &n2);
      CHECK_MSG(mfhd && traf && n1 == 16, "%s: fragment %zu: no mfhd/traf", who, f->n);
      const unsigned char *tfdt = child(traf, n2, 8, "tfdt", &n3);
      const unsigned char *trun = child(traf, n2, 8, "trun", &n4);
      CHECK_MSG(tfdt && trun && n3 == 20 && n4 == 36 && hv_be32(trun + 8) == 0x000f01 &&
                    hv_be32(trun + 12) == 1,
                "%s: fragment %zu: tfdt %zu bytes, trun %zu bytes", who, f->n, n3, n4);
      uint32_t flags = hv_be32(trun + 28);
      CHECK_MSG(flags == 0x02000000 || flags == 0x01010000, "%s: fragment %zu: flags %08x", who,
                f->n, flags);
      CHECK_MSG(hv_be32(trun + 24) == sz - 8, "%s: fragment %zu: sample %u bytes, mdat %zu", who,
                f->n, hv_be32(trun + 24), sz - 8);
      f->seq[f->n] = hv_be32(mfhd + 12);
      f->dts[f->n] = be64(tfdt + 12);
      f->sync[f->n] = flags == 0x02000000;
      int idr = 0;
      for (size_t k = 8; k < sz;) {
        CHECK_MSG(k + 5 <= sz, "%s: fragment %zu: NAL length cut", who, f->n);
        size_t nl = hv_be32(b + k);
        CHECK_MSG(nl > 0 && k + 4 + nl <= sz, "%s: fragment %zu: NAL of %zu at %zu", who, f->n,
                  nl, k);
        if ((b[k + 4] & 0x1f) == 5) idr = 1;
        k += 4 + nl;
      }
      f->idr[f->n] = (unsigned char)idr;
      f->n++;
      f->end = i + sz;
      moof = NULL;
    } else {
      CHECK_MSG(0, "%s: box %.4s at %zu", who, (const char *)b + 4, i);
    }
    i += sz;
  }
}

/* The last fragment's sequence number of the last recording checked. */
static uint32_t last_seq;

/* Cut the recording after its last complete fragment, decode it, check
 * it: one frame per fragment, each frame's code its fragment's sequence
 * number, sequence numbers and decode times increasing, the first
 * fragment and the one after every gap a sync sample with an IDR, every
 * sync sample an IDR and the reverse. Returns the gaps. */
static int check_mp4(struct rec *r, const char *tag) {
  static struct frags f;
  static struct decoded d;
  parse_mp4(r->p, r->len, &f, tag);
  CHECK_MSG(f.n > 0, "%s: no complete fragment in %zu bytes", tag, r->len);
  r->len = f.end;
  char path[256];
  snprintf(path, sizeof(path), "/tmp/sl-fmp4-%d-%s.mp4", (int)getpid(), tag);
  hv_save(r, path);
  hv_decode(path, "-xerror", ENC_TB, 0, &d, tag);
  CHECK_MSG(d.n == f.n, "%s: %zu frames decoded from %zu fragments", tag, d.n, f.n);
  int gaps = 0;
  size_t keys = 0;
  for (size_t i = 0; i < f.n; i++) {
    CHECK_MSG(f.sync[i] == f.idr[i], "%s: fragment %zu: sync flag %d, IDR %d", tag, i, f.sync[i],
              f.idr[i]);
    CHECK_MSG(d.code[i] == (long long)f.seq[i], "%s: frame %zu: code %lld, mfhd %u", tag, i,
              d.code[i], f.seq[i]);
    keys += f.sync[i];
    if (i == 0) {
      CHECK_MSG(f.sync[0], "%s: the first fragment is not a sync sample", tag);
      continue;
    }
    CHECK_MSG(f.seq[i] > f.seq[i - 1] && f.dts[i] > f.dts[i - 1],
              "%s: fragment %zu: seq %u dts %llu after seq %u dts %llu", tag, i, f.seq[i],
              (unsigned long long)f.dts[i], f.seq[i - 1], (unsigned long long)f.dts[i - 1]);
    if (f.seq[i] != f.seq[i - 1] + 1) {
      CHECK_MSG(f.sync[i], "%s: fragment %zu (seq %u) after a gap (from %u) is not a sync sample",
                tag, i, f.seq[i], f.seq[i - 1]);
      gaps++;
    }
  }
  last_seq = f.seq[f.n - 1];
  printf("  %s: %zu bytes, %zu fragments (%zu sync), codes %lld..%lld, %d gaps\n", tag, r->len,
         f.n, keys, d.code[0], d.code[d.n - 1], gaps);
  unlink(path);
  return gaps;
}

/* ---- /stream.mp4 -------------------------------------------------------- */

TEST_T(fmp4_stream_fast_viewer_decodes_every_frame, 90) {
  struct rel_srv s;
  hv_start(&s, NULL);
  char url[128];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/stream.mp4", s.port);
  hv_check_fast(url, "-xerror", ENC_TB, 90, "mp4-fast");
  /* And the bytes themselves: an init segment, then whole fragments. */
  struct rec r = {0};
  int fd = hv_open(s.port, 0, "/stream.mp4", "video/mp4", &r);
  uint64_t end = test_now_ms() + 10000;
  while (r.len < 200000 && test_now_ms() < end) CHECK(hv_read_some(fd, &r, 0, 100) >= 0);
  close(fd);
  CHECK_EQ(check_mp4(&r, "mp4-bytes"), 0);
  free(r.p);
  hv_stop(&s);
}

TEST_T(fmp4_stream_slow_viewer_skips_to_sync_and_decodes, 120) {
  struct rel_srv s;
  struct rec r = {0};
  long long resyncs = hv_paced_viewer(&s, "/stream.mp4", "video/mp4", 0, &r);
  int gaps = check_mp4(&r, "mp4-slow");
  CHECK_MSG(gaps >= 2, "a viewer reading a quarter of the stream for 20 s: %d gaps", gaps);
  CHECK_MSG(resyncs >= gaps, "viewer resyncs %lld, gaps %d", resyncs, gaps);
  printf("  mp4-slow: resyncs %lld\n", resyncs);
  free(r.p);
  hv_stop(&s);
}

TEST_T(fmp4_stream_stalled_viewer_resumes_at_sync, 120) {
  struct rel_srv s;
  struct rec r = {0};
  long long resyncs = hv_paced_viewer(&s, "/stream.mp4", "video/mp4", 1, &r);
  int gaps = check_mp4(&r, "mp4-stalled");
  CHECK_MSG(gaps >= 1, "a viewer stalled for 10 s: no gap");
  CHECK_MSG(resyncs == gaps, "viewer resyncs %lld, gaps %d", resyncs, gaps);
  /* It caught up: the last fragment is within two GOPs of the newest. */
  struct h264_stats st;
  hv_stats(s.port, &st);
  CHECK_MSG((long long)last_seq + 60 >= st.seq, "last fragment %u, newest %lld", last_seq, st.seq);
  printf("  mp4-stalled: resyncs %lld\n", resyncs);
  free(r.p);
  hv_stop(&s);
}

/* ---- /ws?format=fmp4 ------------------------------------------------------ */

static void ws_case(int mode, const char *tag) {
  struct rel_srv s;
  hv_start(&s, mode == HV_FAST ? NULL : "1000");
  static struct wsc w;
  memset(&w, 0, sizeof(w));
  w.frame_type = 3;
  long long resyncs = hv_ws_run(s.port, "/ws?format=fmp4", mode, mode == HV_SLOW ? 1 : 90, &w);
  CHECK_EQ(w.inits, 1);
  int gaps = check_mp4(&w.data, tag);
  if (mode == HV_FAST) CHECK_EQ(gaps, 0);
  if (mode == HV_SLOW) CHECK_MSG(gaps >= 2, "%s: %d gaps", tag, gaps);
  if (mode == HV_STALL) CHECK_MSG(gaps >= 1 && resyncs == gaps, "%s: %d gaps, resyncs %lld", tag,
                                  gaps, resyncs);
  if (mode != HV_FAST) CHECK_MSG(resyncs >= gaps, "%s: resyncs %lld, gaps %d", tag, resyncs, gaps);
  printf("  %s: %s; %d fragments, seq ..%u, resyncs %lld\n", tag, w.config, w.msgs, w.last_seq,
         resyncs);
  free(w.data.p);
  hv_stop(&s);
}

TEST_T(fmp4_stream_websocket_fast_viewer, 90) { ws_case(HV_FAST, "ws-fast"); }
TEST_T(fmp4_stream_websocket_slow_viewer, 120) { ws_case(HV_SLOW, "ws-slow"); }
TEST_T(fmp4_stream_websocket_stalled_viewer, 120) { ws_case(HV_STALL, "ws-stalled"); }

/* ---- 1000 viewers ---------------------------------------------------------- */

/* What the hub may hold with N viewers that read everything (docs/h264.md,
 * "What an H.264 viewer costs"), every frame counted as its access unit and
 * its fragment (at most the unit + 112 bytes of moof and mdat header), each
 * with its sl_buf header (HDR), each once whatever the number of viewers:
 *   held <= 2 * (gop_bytes + 64 * (HDR + 112))     the cached GOP (<= 64
 *                                                  frames at --gop 30) with
 *                                                  its fragments
 *         + 2 * (largest_frame + HDR + 112)        the frame being published
 *         + 2 * 2 * bitrate / 8 * 1.1 s            frames of the last
 *                                                  resync_ms still referenced
 *                                                  by a viewer one frame
 *                                                  behind (the rate is a 2 s
 *                                                  average, doubled)
 * No per-viewer term: a viewer that keeps reading references only frames
 * that are recent, and those are shared. */
#define NVIEW 1000
#define HDR ((long long)sizeof(struct sl_buf))

static long long held_bound(long long gop_bytes, const struct h264_stats *st) {
  return 2 * (gop_bytes + 64 * (HDR + 112)) + 2 * (st->largest + HDR + 112) +
         2 * 2 * (st->bitrate / 8) * 11 / 10;
}

/* Read every socket that has bytes, for `ms`; viewers 0 and 1 (`keep`)
 * are recorded. Returns the bytes read. */
static long long drain(int *fds, int n, struct rec *keep, int ms) {
  static struct pollfd p[NVIEW];
  static unsigned char b[65536];
  long long total = 0;
  uint64_t end = test_now_ms() + (uint64_t)ms;
  for (int i = 0; i < n; i++) p[i] = (struct pollfd){fds[i], POLLIN, 0};
  while (test_now_ms() < end) {
    if (poll(p, (nfds_t)n, 50) <= 0) continue;
    for (int i = 0; i < n; i++) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      for (;;) {
        ssize_t k = recv(fds[i], b, sizeof(b), MSG_DONTWAIT);
        CHECK_MSG(k != 0, "viewer %d: closed by the server", i);
        if (k < 0) break;
        if (i < 2) rec_add(&keep[i], b, (size_t)k);
        total += k;
      }
    }
  }
  return total;
}

TEST_T(fmp4_stream_1000_viewers_one_fragment_per_frame, 180) {
  long nofile = test_raise_nofile(4 * NVIEW);
  CHECK_MSG(nofile >= NVIEW + 200, "RLIMIT_NOFILE %ld too low", nofile);
  struct rel_srv s;
  const char *more[] = {"--max-viewers", "1100", NULL};
  hv_start_ex(&s, "300", more); /* ~37 KB/s per viewer, 37 MB/s in all */
  static int fds[NVIEW];
  static struct rec keep[2];
  memset(keep, 0, sizeof(keep));
  for (int i = 0; i < NVIEW; i++) {
    fds[i] = hv_open(s.port, 0, "/stream.mp4", "video/mp4", i < 2 ? &keep[i] : NULL);
    if (i % 100 == 99) drain(fds, i + 1, keep, 0);
  }
  long long bytes = drain(fds, NVIEW, keep, 1000);
  struct h264_stats s0, s1, st;
  hv_stats(s.port, &s0);
  CHECK_EQ(s0.viewers, NVIEW);
  long long worst_held = 0, worst_bound = 0, max_gop = s0.gop_bytes;
  int samples = 0;
  for (int k = 0; k < 16; k++) {
    bytes += drain(fds, NVIEW, keep, 250);
    hv_stats(s.port, &st);
    if (st.gop_bytes > max_gop) max_gop = st.gop_bytes;
    long long bound = held_bound(max_gop, &st);
    CHECK_MSG(st.held <= bound, "held %lld > bound %lld (GOP <= %lld, largest %lld, bitrate %lld)",
              st.held, bound, max_gop, st.largest, st.bitrate);
    if (st.held > worst_held) worst_held = st.held, worst_bound = bound;
    samples++;
  }
  hv_stats(s.port, &s1);
  CHECK_EQ(s1.viewers, NVIEW);
  long long frames = s1.frames_in - s0.frames_in, frags = s1.mp4_fragments - s0.mp4_fragments;
  CHECK_MSG(frames > 0, "no frame published in the window");
  /* One fragment per frame (and loop: with --threads each loop builds its
   * own for its viewers), however many viewers take it. */
  CHECK_MSG(frags <= s1.loops * (frames + 1), "%lld fragments for %lld frames published (%lld loops)",
            frags, frames, s1.loops);
  printf("  %d viewers: %lld frames published, %lld fragments built (%lld bytes) in the window; "
         "%lld bytes read in all; held <= %lld (bound then %lld; GOP <= %lld, largest %lld), "
         "%d samples\n",
         NVIEW, frames, frags, s1.mp4_bytes - s0.mp4_bytes, bytes, worst_held, worst_bound,
         max_gop, s1.largest, samples);
  for (int i = 0; i < NVIEW; i++) close(fds[i]);
  /* What two of them received decodes. */
  check_mp4(&keep[0], "mp4-1000-first");
  check_mp4(&keep[1], "mp4-1000-second");
  free(keep[0].p);
  free(keep[1].p);
  /* All gone: no fragment is built any more, and once the cached GOP is
   * one published after they left, the hub holds exactly its frames. */
  WAIT_FOR((hv_stats(s.port, &st), st.viewers == 0), 10000);
  struct h264_stats z = st;
  WAIT_FOR((hv_stats(s.port, &st), st.seq - st.gop_frames + 1 > z.seq), 10000);
  CHECK_EQ(st.mp4_fragments, z.mp4_fragments);
  CHECK_EQ(st.frames_held, st.gop_frames);
  /* With several loops (--threads) every hub is a group member, whose
   * frames are aliases: a header of their own beside the original's. */
  CHECK_EQ(st.held, st.gop_bytes + st.frames_held * HDR * (st.loops > 1 ? 2 : 1));
  printf("  after: viewers 0, mp4_fragments stays %lld over %lld frames, held %lld = GOP %lld "
         "bytes + %lld headers\n",
         st.mp4_fragments, st.seq - z.seq, st.held, st.gop_bytes, st.frames_held);
  hv_stop(&s);
}
