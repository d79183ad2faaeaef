/*
 * MJPEG splitter: real JPEGs from the pattern generator (and from ffmpeg
 * when it is installed) cut at every byte boundary, with garbage, EXIF-like
 * thumbnails, truncated, oversized and corrupt frames. Every call sees its
 * input right before a PROT_NONE page, through a caller buffer of exactly
 * max_frame bytes, as the header's usage example does.
 *
 * The jpeg_dir tests live at the end of this file (the other file-based
 * frame source; same SOI/EOI rules).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "jpeg_dir.h"
#include "mjpeg_split.h"
#include "pattern.h"
#include "common.h"
#include "test.h"

typedef test_bytes bytes;

static void put(bytes *b, const void *data, size_t n) { test_bytes_put(b, data, n); }

#define PUTS(b, lit) put((b), (lit), sizeof(lit) - 1)

/* A real JPEG of the test pattern, in its own allocation. */
static bytes jpeg(int w, int h, int q, unsigned long long seq) {
  char err[128];
  ss_pattern *p = ss_pattern_new(w, h, q, err, sizeof(err));
  CHECK_MSG(p != NULL, "%s", err);
  const unsigned char *j;
  size_t n;
  CHECK_EQ(ss_pattern_render(p, seq, seq * 40, &j, &n), 0);
  bytes b = {0};
  put(&b, j, n);
  ss_pattern_free(p);
  return b;
}

enum { MAX_FRAMES = 64 };

typedef struct result {
  size_t nframes;
  size_t off[MAX_FRAMES], len[MAX_FRAMES]; /* into all */
  bytes all;                               /* frames, back to back */
  ss_split s;                              /* counters after finish */
} result;

/* Split `in` feeding it in chunks of the sizes in `chunks` (cycled, 0 =
 * skip), through a buffer of max_frame bytes. */
static void run(result *r, const bytes *in, size_t max_frame,
                const size_t *chunks, size_t nchunks) {
  memset(r, 0, sizeof(*r));
  ss_split_init(&r->s, max_frame);
  size_t cap = r->s.max_frame;
  unsigned char *buf = malloc(cap);
  CHECK(buf != NULL);
  size_t have = 0, pos = 0, ci = 0, chunk_left = chunks[0];
  for (;;) {
    ss_split_out o;
    const unsigned char *g = test_guard(buf, have);
    int got = ss_split_next(&r->s, g, have, &o);
    CHECK_LE(o.consumed, have);
    if (got) {
      CHECK_EQ(o.off + o.len, o.consumed);
      CHECK_LE(o.len, cap);
      CHECK(o.len >= 4 && g[o.off] == 0xFF && g[o.off + 1] == 0xD8);
      CHECK(g[o.off + o.len - 2] == 0xFF && g[o.off + o.len - 1] == 0xD9);
      CHECK(r->nframes < MAX_FRAMES);
      r->off[r->nframes] = r->all.n;
      r->len[r->nframes++] = o.len;
      put(&r->all, g + o.off, o.len);
    }
    memmove(buf, buf + o.consumed, have - o.consumed);
    have -= o.consumed;
    if (got) continue;
    CHECK_LE(have, cap - 1); /* the documented bound */
    if (pos == in->n) break;
    while (chunk_left == 0) chunk_left = chunks[++ci % nchunks];
    size_t take = chunk_left;
    if (take > cap - have) take = cap - have;
    if (take > in->n - pos) take = in->n - pos;
    memcpy(buf + have, in->p + pos, take);
    have += take;
    pos += take;
    chunk_left -= take;
  }
  ss_split_finish(&r->s);
  free(buf);
}

static void free_result(result *r) { free(r->all.p); }

static void check_same(const result *a, const result *b) {
  CHECK_EQ(a->nframes, b->nframes);
  CHECK_EQ(a->all.n, b->all.n);
  for (size_t i = 0; i < a->nframes; i++) CHECK_EQ(a->len[i], b->len[i]);
  CHECK_MEM(a->all.p, b->all.p, a->all.n);
  CHECK_EQ(a->s.frames, b->s.frames);
  CHECK_EQ(a->s.garbage_bytes, b->s.garbage_bytes);
  CHECK_EQ(a->s.truncated, b->s.truncated);
  CHECK_EQ(a->s.oversized, b->s.oversized);
  CHECK_EQ(a->s.corrupt, b->s.corrupt);
}

static void check_frame(const result *r, size_t i, const bytes *want) {
  CHECK(i < r->nframes);
  CHECK_EQ(r->len[i], want->n);
  CHECK_MEM(r->all.p + r->off[i], want->p, want->n);
}

static const size_t WHOLE[] = {(size_t)1 << 40};
static const size_t BYTEWISE[] = {1};
static const size_t ODD[] = {3, 1, 7, 64, 2, 255, 13, 1000, 5};

TEST(split_every_byte_boundary) {
  bytes j1 = jpeg(32, 16, 50, 1), j2 = jpeg(48, 32, 30, 2),
        j3 = jpeg(16, 16, 90, 3);
  bytes in = {0};
  PUTS(&in, "junk");
  put(&in, j1.p, j1.n);
  PUTS(&in, "\xff\x00\xff\xff");
  put(&in, j2.p, j2.n);
  PUTS(&in, "\xff\xd9zz\xff");
  put(&in, j3.p, j3.n);
  PUTS(&in, "\xff");
  size_t garbage = in.n - j1.n - j2.n - j3.n;

  result ref, r;
  run(&ref, &in, 1 << 16, WHOLE, 1);
  CHECK_EQ(ref.nframes, 3);
  check_frame(&ref, 0, &j1);
  check_frame(&ref, 1, &j2);
  check_frame(&ref, 2, &j3);
  CHECK_EQ(ref.s.frames, 3);
  CHECK_EQ(ref.s.garbage_bytes, garbage);
  CHECK_EQ(ref.s.truncated + ref.s.oversized + ref.s.corrupt, 0);

  for (size_t k = 0; k <= in.n; k++) {
    size_t cut[2] = {k, in.n};
    run(&r, &in, 1 << 16, cut, 2);
    check_same(&ref, &r);
    free_result(&r);
  }
  run(&r, &in, 1 << 16, BYTEWISE, 1);
  check_same(&ref, &r);
  free_result(&r);
  run(&r, &in, 1 << 16, ODD, sizeof(ODD) / sizeof(ODD[0]));
  check_same(&ref, &r);
  free_result(&r);
  free_result(&ref);
  free(in.p), free(j1.p), free(j2.p), free(j3.p);
}

TEST(split_garbage_and_fill) {
  bytes j = jpeg(32, 32, 60, 7), in = {0};
  /* Noise full of FF, half markers and a lone EOI, then FF fill right
   * before the SOI: only the last FF of the run belongs to the frame. */
  PUTS(&in, "\x00\xff\xff\xd9\xff\x00\xd8\xff\xd9\x12\xff\xff\xff");
  put(&in, j.p, j.n);
  PUTS(&in, "\xd8\xd8\xff\xd9");
  put(&in, j.p, j.n);
  result r;
  for (int pass = 0; pass < 2; pass++) {
    run(&r, &in, 1 << 16, pass ? BYTEWISE : WHOLE, 1);
    CHECK_EQ(r.nframes, 2);
    check_frame(&r, 0, &j);
    check_frame(&r, 1, &j);
    CHECK_EQ(r.s.garbage_bytes, 13 + 4);
    free_result(&r);
  }
  /* Only garbage: everything is dropped as it arrives. */
  bytes junk = {0};
  unsigned long long x = 1;
  for (int i = 0; i < 5000; i++) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    unsigned char c = (unsigned char)(x >> 56);
    if (c == 0xD8) c = 0xFF; /* no SOI, many FF */
    put(&junk, &c, 1);
  }
  run(&r, &junk, 64, ODD, sizeof(ODD) / sizeof(ODD[0]));
  CHECK_EQ(r.nframes, 0);
  CHECK_EQ(r.s.garbage_bytes, junk.n);
  free_result(&r);
  free(junk.p), free(in.p), free(j.p);
}

/* An APP1 segment carrying a whole thumbnail JPEG (so FF D8 and FF D9 inside
 * the segment) must not end or restart the outer frame. */
TEST(split_exif_thumbnail) {
  bytes thumb = jpeg(16, 16, 50, 5), main = jpeg(64, 48, 70, 0x1234), in = {0};
  bytes frame = {0};
  size_t seglen = 2 + 6 + thumb.n;
  unsigned char hdr[4] = {0xFF, 0xE1, (unsigned char)(seglen >> 8),
                          (unsigned char)seglen};
  put(&frame, main.p, 2); /* SOI */
  put(&frame, hdr, 4);
  PUTS(&frame, "Exif\0\0");
  put(&frame, thumb.p, thumb.n);
  put(&frame, main.p + 2, main.n - 2);
  PUTS(&in, "\xff");
  put(&in, frame.p, frame.n);
  put(&in, thumb.p, thumb.n);
  put(&in, frame.p, frame.n);

  result ref, r;
  run(&ref, &in, 1 << 16, WHOLE, 1);
  CHECK_EQ(ref.nframes, 3);
  check_frame(&ref, 0, &frame);
  check_frame(&ref, 1, &thumb);
  check_frame(&ref, 2, &frame);
  CHECK_EQ(ref.s.garbage_bytes, 1);
  /* libjpeg skips the APP1 too, so the frame still carries its code. */
  CHECK_EQ(ss_pattern_read_jpeg(ref.all.p + ref.off[0], ref.len[0]), 0x1234);
  for (size_t k = 0; k <= in.n; k += 3) {
    size_t cut[3] = {k, 5, in.n};
    run(&r, &in, 1 << 16, cut, 3);
    check_same(&ref, &r);
    free_result(&r);
  }
  free_result(&ref);
  free(in.p), free(frame.p), free(thumb.p), free(main.p);
}

/* Cut `a` at every position from `from` (>= 2, after its SOI) in steps of
 * `step`, follow it
 * with whole frames b and c, and split with `max_frame`: the cut frame is
 * never returned or spliced onto b, it counts as truncated (or oversized if
 * it already was), c always comes out whole, and so does b except when the
 * cut leaves a marker code whose length bytes then come from b's SOI (b is
 * lost with the cut frame, see mjpeg_split.h). Chunk boundaries fall on
 * the four bytes after the cut, where the splitter must keep what may be
 * b's SOI even while it drops the rest. */
static void check_cut_anywhere(const bytes *a, const bytes *b, const bytes *c,
                               size_t from, size_t step, size_t max_frame) {
  size_t whole_b = 0, tries = 0;
  for (size_t cut = from; cut < a->n - 1; cut += step, tries++) {
    bytes in = {0};
    put(&in, a->p, cut);
    put(&in, b->p, b->n);
    put(&in, c->p, c->n);
    result r;
    size_t chunks[5] = {cut + 1, 1, 1, 1, in.n};
    if (cut % 2) run(&r, &in, max_frame, chunks, 5);
    else run(&r, &in, max_frame, WHOLE, 1);
    CHECK_MSG(r.nframes >= 1 && r.nframes <= 2, "cut %zu: %zu frames", cut,
              r.nframes);
    if (r.nframes == 2) {
      check_frame(&r, 0, b);
      whole_b++;
    }
    check_frame(&r, r.nframes - 1, c);
    CHECK_MSG(r.s.truncated + r.s.oversized == 1,
              "cut %zu: truncated %llu oversized %llu", cut, r.s.truncated,
              r.s.oversized);
    free_result(&r);
    free(in.p);
  }
  CHECK_GE(whole_b * 100, tries * 95);
}

TEST(split_truncated_frame) {
  bytes j1 = jpeg(48, 32, 50, 1), j2 = jpeg(48, 32, 50, 2),
        j3 = jpeg(48, 32, 50, 3);
  result r;
  /* Cut in the entropy-coded data, and cut just before the final D9 (the
   * lone FF then reads as fill before the next SOI). */
  size_t cuts[2] = {j1.n - 40, j1.n - 1};
  for (int c = 0; c < 2; c++) {
    bytes in = {0};
    put(&in, j1.p, cuts[c]);
    put(&in, j2.p, j2.n);
    put(&in, j3.p, j3.n);
    for (int pass = 0; pass < 2; pass++) {
      run(&r, &in, 1 << 16, pass ? BYTEWISE : WHOLE, 1);
      CHECK_EQ(r.nframes, 2);
      check_frame(&r, 0, &j2);
      check_frame(&r, 1, &j3);
      CHECK_EQ(r.s.truncated, 1);
      CHECK_EQ(r.s.garbage_bytes, 0);
      free_result(&r);
    }
    free(in.p);
  }
  /* A stream that ends inside a frame: finish() counts it. */
  bytes in = {0};
  put(&in, j1.p, j1.n);
  put(&in, j2.p, j2.n / 2);
  run(&r, &in, 1 << 16, ODD, 3);
  CHECK_EQ(r.nframes, 1);
  check_frame(&r, 0, &j1);
  CHECK_EQ(r.s.truncated, 1);
  free_result(&r);
  free(in.p);
  /* A producer restart can cut a frame at any byte, including inside a
   * segment whose length then reaches into the next frame. */
  check_cut_anywhere(&j1, &j2, &j3, 2, 1, 1 << 20);
  free(j1.p), free(j2.p), free(j3.p);
}

TEST(split_oversized_frame) {
  bytes s1 = jpeg(16, 16, 50, 1), s2 = jpeg(16, 16, 50, 2),
        big = jpeg(128, 96, 95, 3), in = {0};
  CHECK(big.n > 4 * s1.n);
  put(&in, s1.p, s1.n);
  put(&in, big.p, big.n);
  put(&in, s2.p, s2.n);
  put(&in, big.p, big.n);
  PUTS(&in, "\x01\x02");
  put(&in, s1.p, s1.n);
  size_t max = s1.n > s2.n ? s1.n : s2.n;
  result ref, r;
  run(&ref, &in, max, WHOLE, 1);
  CHECK_EQ(ref.nframes, 3);
  check_frame(&ref, 0, &s1);
  check_frame(&ref, 1, &s2);
  check_frame(&ref, 2, &s1);
  CHECK_EQ(ref.s.oversized, 2);
  CHECK_EQ(ref.s.garbage_bytes, 2);
  CHECK_EQ(ref.s.truncated, 0);
  for (int pass = 0; pass < 2; pass++) {
    run(&r, &in, max, pass ? BYTEWISE : ODD, pass ? 1 : 9);
    check_same(&ref, &r);
    free_result(&r);
  }
  /* The limit is inclusive: a frame of exactly max_frame bytes is kept. */
  bytes one = {0};
  put(&one, big.p, big.n);
  run(&r, &one, big.n, ODD, 9);
  CHECK_EQ(r.nframes, 1);
  CHECK_EQ(r.s.oversized, 0);
  free_result(&r);
  run(&r, &one, big.n - 1, ODD, 9);
  CHECK_EQ(r.nframes, 0);
  CHECK_EQ(r.s.oversized, 1);
  CHECK_EQ(r.s.truncated, 0);
  free_result(&r);
  /* A big frame cut anywhere, dropped as oversized or truncated; with a
   * long comment first, so that even cuts in its tables fall after it was
   * found oversized and its bytes were dropped. */
  check_cut_anywhere(&big, &s1, &s2, 2, 1, max);
  bytes fat = {0};
  unsigned char com[1004] = {0xFF, 0xFE, 1004 >> 8, 1004 & 255};
  memset(com + 4, 'x', sizeof(com) - 4);
  put(&fat, s1.p, 2);
  put(&fat, com, sizeof(com));
  put(&fat, s1.p + 2, s1.n - 2);
  check_cut_anywhere(&fat, &s1, &s2, 2 + sizeof(com), 1, max);
  free(fat.p);
  /* An oversized frame cut by a new SOI is counted once. */
  bytes cut = {0};
  put(&cut, big.p, big.n - 10);
  put(&cut, s1.p, s1.n);
  run(&r, &cut, max, BYTEWISE, 1);
  CHECK_EQ(r.nframes, 1);
  check_frame(&r, 0, &s1);
  CHECK_EQ(r.s.oversized, 1);
  CHECK_EQ(r.s.truncated, 0);
  free_result(&r);
  free_result(&ref);
  free(cut.p), free(one.p), free(in.p), free(s1.p), free(s2.p), free(big.p);
}

/* A hand-made frame with every marker rule the walker knows: a comment
 * holding EOI, a large APP segment holding EOI and SOI, DRI, fill bytes,
 * stray bytes where a marker is due, stuffing and RSTn in scan data, a table
 * between two scans. */
TEST(split_marker_rules) {
  static const unsigned char f[] =
      "\xff\xd8"
      "\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
      "\xff\xfe\x00\x08\xff\xd9\x41\xff\xd9\x00"
      "\xff\xe2\x00\x44ICC_\xff\xd8\xff\xd9\xff\xd8\xff\xe0\xff\xd9"
      "0123456789012345678901234567890123456789012345678901"
      "\xff\xdd\x00\x04\x00\x10"
      "\x00\x11"
      "\xff\xff\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00"
      "\x12\x34\xff\x00\x56\xff\xd0\x78\xff\xff\xd1\x9a\xff\x00\xff\x01"
      "\xff\xc4\x00\x03\xff"
      "\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00\xab\xff\x00\xcd"
      "\xff\xd9";
  bytes frame = {0}, in = {0};
  put(&frame, f, sizeof(f) - 1);
  put(&in, f, sizeof(f) - 1);
  PUTS(&in, "x");
  put(&in, f, sizeof(f) - 1);
  result ref, r;
  run(&ref, &in, 4096, WHOLE, 1);
  CHECK_EQ(ref.nframes, 2);
  check_frame(&ref, 0, &frame);
  check_frame(&ref, 1, &frame);
  CHECK_EQ(ref.s.garbage_bytes, 1);
  for (size_t k = 0; k <= in.n; k++) {
    size_t cut[2] = {k, in.n};
    run(&r, &in, 4096, cut, 2);
    check_same(&ref, &r);
    free_result(&r);
  }
  free_result(&ref);
  free(in.p), free(frame.p);
}

TEST(split_corrupt_length) {
  bytes j = jpeg(32, 16, 50, 9), in = {0};
  PUTS(&in, "\xff\xd8\xff\xc4\x00\x01zz");
  put(&in, j.p, j.n);
  result r;
  run(&r, &in, 1 << 16, BYTEWISE, 1);
  CHECK_EQ(r.nframes, 1);
  check_frame(&r, 0, &j);
  CHECK_EQ(r.s.corrupt, 1);
  CHECK_EQ(r.s.garbage_bytes, 2);
  free_result(&r);
  free(in.p), free(j.p);
}

/* A caller that hands back fewer bytes than were scanned gets a restart,
 * never an out-of-bounds read. */
TEST(split_contract_violation) {
  bytes j = jpeg(32, 16, 50, 9);
  ss_split s;
  ss_split_init(&s, 1 << 16);
  ss_split_out o;
  CHECK_EQ(ss_split_next(&s, test_guard(j.p, 100), 100, &o), 0);
  CHECK_EQ(o.consumed, 0);
  CHECK_EQ(ss_split_next(&s, test_guard(j.p, 50), 50, &o), 0);
  CHECK_EQ(o.consumed, 50);
  CHECK_EQ(s.truncated, 1);
  CHECK_EQ(ss_split_next(&s, NULL, 10, &o), 0);
  CHECK_EQ(o.consumed, 10);
  CHECK_EQ(ss_split_next(&s, test_guard(j.p, j.n), j.n, &o), 1);
  CHECK_EQ(o.off, 0);
  CHECK_EQ(o.len, j.n);
  ss_split_init(&s, 0);
  CHECK_EQ(s.max_frame, 4);
  CHECK_EQ(ss_split_next(&s, test_guard("\xff\xd8\xff\xd9", 4), 4, &o), 1);
  free(j.p);
}

static int have_ffmpeg(void) {
  if (test_sh("command -v ffmpeg >/dev/null 2>&1") == 0) return 1;
  if (test_in_ci()) CHECK_MSG(0, "ffmpeg must be installed in CI");
  TEST_SKIP("ffmpeg not on PATH");
}

/* Read a command's whole stdout. */
static bytes slurp(const char *cmd) {
  bytes out = {0};
  FILE *f = popen(cmd, "r");
  CHECK(f != NULL);
  unsigned char chunk[4093];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) put(&out, chunk, n);
  CHECK_EQ(pclose(f), 0);
  return out;
}

/* What ffmpeg itself writes for `-f mjpeg -` splits into whole frames that
 * libjpeg-turbo decodes, with nothing left over. */
TEST_T(split_ffmpeg_mjpeg, 120) {
  have_ffmpeg();
  bytes in = slurp("ffmpeg -nostdin -hide_banner -loglevel error -f lavfi "
                   "-i testsrc=size=320x240:rate=25 -frames:v 12 -q:v 5 "
                   "-f mjpeg -");
  result r;
  run(&r, &in, 1 << 20, ODD, sizeof(ODD) / sizeof(ODD[0]));
  CHECK_EQ(r.nframes, 12);
  CHECK_EQ(r.all.n, in.n);
  CHECK_EQ(r.s.garbage_bytes + r.s.truncated + r.s.oversized + r.s.corrupt,
           0);
  tjhandle tj = tjInitDecompress();
  static unsigned char px[320 * 240 * 3];
  for (size_t i = 0; i < r.nframes; i++) {
    int w, h, ss, cs;
    const unsigned char *f = r.all.p + r.off[i];
    CHECK_EQ(tjDecompressHeader3(tj, f, (unsigned long)r.len[i], &w, &h, &ss,
                                 &cs),
             0);
    CHECK_EQ(w, 320);
    CHECK_EQ(h, 240);
    CHECK_EQ(tjDecompress2(tj, f, (unsigned long)r.len[i], px, w, 0, h,
                           TJPF_RGB, TJFLAG_STOPONWARNING),
             0);
  }
  tjDestroy(tj);
  /* ffmpeg's frames cut anywhere (its restart while writing one). */
  bytes f0 = {0}, f1 = {0}, f2 = {0};
  put(&f0, r.all.p + r.off[0], r.len[0]);
  put(&f1, r.all.p + r.off[1], r.len[1]);
  put(&f2, r.all.p + r.off[2], r.len[2]);
  check_cut_anywhere(&f0, &f1, &f2, 2, 7, 1 << 20);
  free(f0.p), free(f1.p), free(f2.p);
  free_result(&r);
  free(in.p);
}

/* The pattern survives an independent decoder, scaler and encoder: ffmpeg
 * shrinks our 1280x720 frames to 480x270 at a low quality, and the codes
 * come back in order. */
TEST_T(split_ffmpeg_rescaled_pattern, 120) {
  have_ffmpeg();
  char path[] = "/tmp/sluice-pattern-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  char err[128];
  ss_pattern *p = ss_pattern_new(1280, 720, 80, err, sizeof(err));
  CHECK(p != NULL);
  enum { N = 8 };
  unsigned long long first = 0xFFFFFFFCull;
  for (unsigned long long s = first; s < first + N; s++) {
    const unsigned char *j;
    size_t n;
    CHECK_EQ(ss_pattern_render(p, s, s * 33, &j, &n), 0);
    CHECK_EQ(write(fd, j, n), (long long)n);
  }
  close(fd);
  ss_pattern_free(p);
  char cmd[512];
  snprintf(cmd, sizeof(cmd),
           "ffmpeg -nostdin -hide_banner -loglevel error -f mjpeg -i %s "
           "-vf scale=480:270 -q:v 12 -f mjpeg -",
           path);
  bytes in = slurp(cmd);
  unlink(path);
  result r;
  run(&r, &in, 1 << 20, ODD, sizeof(ODD) / sizeof(ODD[0]));
  CHECK_EQ(r.nframes, N);
  for (size_t i = 0; i < N; i++)
    CHECK_EQ(ss_pattern_read_jpeg(r.all.p + r.off[i], r.len[i]),
             (first + i) & 0xFFFFFFFFull);
  free_result(&r);
  free(in.p);
}

/* jpeg_dir: a folder of JPEG files is the other frame source that needs no
 * network; its files are checked with the same SOI/EOI rules. */

/* `name` in `dir`, through common.h's write_file. */
static void write_in(const char *dir, const char *name, const void *data, size_t n) {
  char path[512];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  write_file(path, data, n);
}

TEST(jpeg_dir_lists_checks_and_loads) {
  char dir[] = "/tmp/sluice-jpegdir-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  bytes a = jpeg(64, 48, 50, 1), b = jpeg(96, 64, 50, 2),
        big = jpeg(256, 192, 95, 3);
  bytes padded = {0};
  put(&padded, a.p, a.n);
  static const unsigned char zeros[100];
  put(&padded, zeros, sizeof(zeros));
  write_in(dir, "b.jpg", b.p, b.n);
  write_in(dir, "a.JPEG", a.p, a.n);
  write_in(dir, "g.jpg", padded.p, padded.n); /* zero padding after EOI */
  write_in(dir, "c.jpg", "GIF89a....", 10);   /* bad SOI */
  write_in(dir, "d.jpeg", b.p, b.n - 2);      /* no EOI */
  write_in(dir, "e.jpg", big.p, big.n);       /* over max_frame */
  write_in(dir, "h.jpg", "\xff\xd8", 2);      /* too small */
  write_in(dir, "f.txt", a.p, a.n);           /* not a JPEG name */
  write_in(dir, ".hidden.jpg", a.p, a.n);     /* dot file */
  char sub[600];
  snprintf(sub, sizeof(sub), "%s/sub.jpg", dir);
  CHECK_EQ(mkdir(sub, 0700), 0); /* a folder named like a JPEG */
  size_t max = b.n + 200;
  CHECK(big.n > max);

  int err = 0;
  ss_jpeg_dir *d = ss_jpeg_dir_open(dir, max, &err);
  CHECK_MSG(d != NULL, "open: %d", err);
  CHECK_EQ(ss_jpeg_dir_count(d), 3);
  CHECK_STR(ss_jpeg_dir_name(d, 0), "a.JPEG");
  CHECK_STR(ss_jpeg_dir_name(d, 1), "b.jpg");
  CHECK_STR(ss_jpeg_dir_name(d, 2), "g.jpg");
  CHECK(ss_jpeg_dir_name(d, 3) == NULL);
  const ss_jpeg_dir_skips *sk = ss_jpeg_dir_skipped(d);
  CHECK_EQ(sk->bad_soi, 1);
  CHECK_EQ(sk->bad_eoi, 1);
  CHECK_EQ(sk->too_big, 1);
  CHECK_EQ(sk->too_small, 1);
  CHECK_EQ(sk->unreadable, 1);
  CHECK_EQ(sk->too_many, 0);

  unsigned char *buf = malloc(max);
  CHECK(buf != NULL);
  size_t n = 0;
  CHECK_EQ(ss_jpeg_dir_load(d, 0, buf, max, &n), 0);
  CHECK_EQ(n, a.n);
  CHECK_MEM(buf, a.p, a.n);
  CHECK_EQ(ss_jpeg_dir_load(d, 2, buf, max, &n), 0);
  CHECK_EQ(n, a.n); /* padding trimmed */
  CHECK_EQ(ss_pattern_read_jpeg(buf, n), 1);
  CHECK_EQ(ss_jpeg_dir_load(d, 1, buf, max, &n), 0);
  CHECK_EQ(ss_pattern_read_jpeg(buf, n), 2);
  CHECK_EQ(ss_jpeg_dir_load(d, 3, buf, max, &n), -EINVAL);
  CHECK_EQ(ss_jpeg_dir_load(d, 1, buf, b.n - 1, &n), -ENOBUFS);
  /* Files change after the listing: each load checks again. */
  write_in(dir, "b.jpg", "\xff\xd8\xff junk", 9);
  CHECK_EQ(ss_jpeg_dir_load(d, 1, buf, max, &n), -EBADMSG);
  write_in(dir, "b.jpg", big.p, big.n);
  CHECK_EQ(ss_jpeg_dir_load(d, 1, buf, max, &n), -EFBIG);
  test_sh("rm -f %s/b.jpg", dir);
  CHECK_EQ(ss_jpeg_dir_load(d, 1, buf, max, &n), -ENOENT);
  ss_jpeg_dir_close(d);
  ss_jpeg_dir_close(NULL);

  CHECK(ss_jpeg_dir_open("/nonexistent/sluice", max, &err) == NULL);
  CHECK_EQ(err, -ENOENT);
  char file[600];
  snprintf(file, sizeof(file), "%s/a.JPEG", dir);
  CHECK(ss_jpeg_dir_open(file, max, &err) == NULL);
  CHECK_EQ(err, -ENOTDIR);
  CHECK_EQ(test_sh("rm -rf %s", dir), 0);
  free(buf), free(padded.p), free(a.p), free(b.p), free(big.p);
}

/* More than SS_JPEG_DIR_MAX files: the first ones by name are kept, in
 * order, whatever order the folder returns them in. */
TEST_T(jpeg_dir_bounded, 120) {
  char dir[] = "/tmp/sluice-jpegdir-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  enum { EXTRA = 7 };
  for (int i = SS_JPEG_DIR_MAX + EXTRA - 1; i >= 0; i--) {
    char name[32];
    int shuffled = (i * 7919) % (SS_JPEG_DIR_MAX + EXTRA);
    snprintf(name, sizeof(name), "f%06d.jpg", shuffled);
    write_in(dir, name, "\xff\xd8\xff\xd9", 4);
  }
  write_in(dir, "a-bad.jpg", "\xff\xd8\xff\xd0", 4);
  int err = 0;
  ss_jpeg_dir *d = ss_jpeg_dir_open(dir, 1 << 20, &err);
  CHECK(d != NULL);
  CHECK_EQ(ss_jpeg_dir_count(d), SS_JPEG_DIR_MAX);
  CHECK_EQ(ss_jpeg_dir_skipped(d)->too_many, EXTRA);
  CHECK_EQ(ss_jpeg_dir_skipped(d)->bad_eoi, 1);
  for (size_t i = 0; i < SS_JPEG_DIR_MAX; i++) {
    char want[32];
    snprintf(want, sizeof(want), "f%06zu.jpg", i);
    CHECK_STR(ss_jpeg_dir_name(d, i), want);
  }
  ss_jpeg_dir_close(d);
  CHECK_EQ(test_sh("rm -rf %s", dir), 0);
}
