/*
 * H.264 encoder for the test pattern: one Annex-B access unit per frame,
 * IDRs at the interval and on demand with SPS and PPS in front, a stream
 * ffmpeg decodes without a complaint, and the block code of every decoded
 * frame equal to the frame number that was drawn. Built without openh264,
 * the constructor must say what to install instead (and CI must have it).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h264enc.h"
#include "pattern.h"
#include "test.h"

#ifdef SS_HAVE_OPENH264

enum { W = 320, H = 240, FRAMES = 60, GOP = 30, MAX_NALS = 16 };

/* Frame numbers with many bits set and cleared, so every code cell flips. */
static unsigned long long seq_of(int i) {
  return 0x9E3779B9ull + 1000003ull * (unsigned long long)i;
}

/* NAL unit types of an Annex-B access unit, in order; returns the count,
 * or -1 if it does not start with a start code. */
static int nal_types(const unsigned char *au, size_t len, int types[MAX_NALS]) {
  if (len < 4 || !(au[0] == 0 && au[1] == 0 &&
                   (au[2] == 1 || (au[2] == 0 && au[3] == 1))))
    return -1;
  int n = 0;
  for (size_t i = 0; i + 3 < len; i++) {
    if (au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1) {
      if (n < MAX_NALS) types[n] = au[i + 3] & 0x1F;
      n++;
      i += 2;
    }
  }
  return n;
}

static ss_h264enc *make(int w, int h, double fps, int kbps, int gop) {
  char err[200] = "";
  ss_h264enc *e = ss_h264enc_new(w, h, fps, kbps, gop, err, sizeof(err));
  CHECK_MSG(e != NULL, "ss_h264enc_new(%d, %d, %g, %d, %d): %s", w, h, fps,
            kbps, gop, err);
  return e;
}

static int have_ffmpeg(void) {
  if (test_sh("command -v ffmpeg >/dev/null 2>&1") == 0) return 1;
  CHECK_MSG(!test_in_ci(), "ffmpeg missing (run scripts/deps.sh)");
  return 0;
}

TEST(h264enc_pattern_decodes_and_reads_back) {
  char dir[] = "/tmp/sl-h264-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[256], gray[256], log[256];
  snprintf(path, sizeof(path), "%s/f.h264", dir);
  snprintf(gray, sizeof(gray), "%s/out.gray", dir);
  snprintf(log, sizeof(log), "%s/ffmpeg.log", dir);

  char err[128] = "";
  ss_pattern *p = ss_pattern_new(W, H, 80, err, sizeof(err));
  CHECK_MSG(p != NULL, "%s", err);
  ss_h264enc *e = make(W, H, 30, 0, GOP);
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  int aus = 0;
  for (int i = 0; i < FRAMES; i++) {
    const unsigned char *pl[3];
    int st[3];
    CHECK_EQ(ss_pattern_render_yuv(p, seq_of(i), 1700000000000ull + 33u * i,
                                   pl, st),
             0);
    const unsigned char *au = NULL;
    size_t len = 0;
    int key = -1;
    CHECK_EQ(ss_h264enc_encode(e, pl, st, 0, &au, &len, &key), 0);
    CHECK(au != NULL && len > 0);
    aus++;
    CHECK_MSG(key == (i % GOP == 0), "frame %d: key %d", i, key);
    int t[MAX_NALS], n = nal_types(au, len, t);
    CHECK_MSG(n >= 1 && n <= MAX_NALS, "frame %d: %d NAL units", i, n);
    int idr = 0, vcl = 0;
    for (int k = 0; k < n; k++) {
      idr += t[k] == 5;
      vcl += t[k] == 1 || t[k] == 5;
    }
    CHECK_MSG(vcl >= 1, "frame %d: no slice", i);
    if (key) {
      CHECK_MSG(n >= 3 && t[0] == 7 && t[1] == 8,
                "frame %d: key AU starts with NAL types %d, %d", i, t[0],
                n > 1 ? t[1] : -1);
      CHECK_MSG(idr == vcl, "frame %d: key AU has non-IDR slices", i);
    } else {
      CHECK_MSG(idr == 0, "frame %d: IDR slice in a non-key AU", i);
    }
    CHECK_EQ(fwrite(au, 1, len, f), len);
  }
  CHECK_EQ(fclose(f), 0);
  CHECK_EQ(aus, FRAMES);
  ss_h264enc_free(e);
  ss_pattern_free(p);

  if (!have_ffmpeg()) {
    test_sh("rm -rf %s", dir);
    TEST_SKIP("ffmpeg not installed");
  }
  CHECK_EQ(test_sh("ffmpeg -nostdin -v error -i %s -f rawvideo -pix_fmt gray "
                   "%s 2>%s",
                   path, gray, log),
           0);
  CHECK_MSG(test_sh("test ! -s %s", log) == 0, "ffmpeg reported errors (%s)",
            log);
  FILE *g = fopen(gray, "rb");
  CHECK(g != NULL);
  unsigned char *px = malloc((size_t)W * H);
  CHECK(px != NULL);
  int frames = 0;
  while (fread(px, 1, (size_t)W * H, g) == (size_t)W * H) {
    CHECK_MSG(frames < FRAMES, "more than %d decoded frames", FRAMES);
    long long got = ss_pattern_read_code(px, W, H, 1, W);
    CHECK_MSG(got == (long long)(seq_of(frames) & 0xFFFFFFFFull),
              "decoded frame %d: code %lld, drew %llu", frames, got,
              seq_of(frames) & 0xFFFFFFFFull);
    frames++;
  }
  CHECK_MSG(feof(g), "short read: not a whole number of frames");
  fclose(g);
  free(px);
  CHECK_EQ(frames, FRAMES);
  test_sh("rm -rf %s", dir);
}

TEST(h264enc_force_idr_restarts_interval) {
  char err[128] = "";
  ss_pattern *p = ss_pattern_new(W, H, 80, err, sizeof(err));
  CHECK_MSG(p != NULL, "%s", err);
  ss_h264enc *e = make(W, H, 30, 0, GOP);
  for (int i = 0; i < 80; i++) {
    const unsigned char *pl[3];
    int st[3];
    CHECK_EQ(ss_pattern_render_yuv(p, (unsigned long long)i, 0, pl, st), 0);
    const unsigned char *au;
    size_t len;
    int key;
    CHECK_EQ(ss_h264enc_encode(e, pl, st, i == 12, &au, &len, &key), 0);
    /* IDR at 0, forced at 12, then every GOP frames from 12. */
    int want = i == 0 || (i >= 12 && (i - 12) % GOP == 0);
    CHECK_MSG(key == want, "frame %d: key %d, want %d", i, key, want);
    if (key) {
      int t[MAX_NALS];
      CHECK(nal_types(au, len, t) >= 3 && t[0] == 7 && t[1] == 8);
    }
  }
  ss_h264enc_free(e);
  ss_pattern_free(p);
}

TEST(h264enc_defaults_and_bad_arguments) {
  CHECK_EQ(ss_h264enc_default_kbps(640, 480, 30), 1000);
  CHECK_EQ(ss_h264enc_default_kbps(1280, 720, 30), 3000);
  CHECK_EQ(ss_h264enc_default_kbps(160, 120, 5), 100);
  static const struct {
    int w, h;
    double fps;
    int kbps, gop;
  } bad[] = {{0, 240, 30, 0, 0},    {321, 240, 30, 0, 0},
             {320, 241, 30, 0, 0},  {8192, 240, 30, 0, 0},
             {320, 240, 0, 0, 0},   {320, 240, 61, 0, 0},
             {320, 240, 30, 10, 0}, {320, 240, 30, 200000, 0},
             {320, 240, 30, 0, -1}};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char err[200] = "";
    ss_h264enc *e = ss_h264enc_new(bad[i].w, bad[i].h, bad[i].fps,
                                   bad[i].kbps, bad[i].gop, err, sizeof(err));
    CHECK_MSG(e == NULL, "case %zu accepted", i);
    CHECK_MSG(strncmp(err, "H.264 ", 6) == 0, "case %zu: err \"%s\"", i, err);
  }
  ss_h264enc_free(NULL);
  /* A wrong stride or a NULL plane fails without touching the outputs. */
  ss_h264enc *e = make(W, H, 30, 0, 0);
  static unsigned char y[W * H], u[W * H / 4], v[W * H / 4];
  const unsigned char *pl[3] = {y, u, NULL};
  int st[3] = {W, W / 2, W / 2};
  const unsigned char *au = (const unsigned char *)"x";
  size_t len = 7;
  int key = 7;
  CHECK_EQ(ss_h264enc_encode(e, pl, st, 0, &au, &len, &key), -1);
  pl[2] = v;
  st[0] = W - 2;
  CHECK_EQ(ss_h264enc_encode(e, pl, st, 0, &au, &len, &key), -1);
  CHECK(len == 7 && key == 7);
  st[0] = W;
  memset(y, 128, sizeof(y));
  memset(u, 128, sizeof(u));
  memset(v, 128, sizeof(v));
  CHECK_EQ(ss_h264enc_encode(e, pl, st, 0, &au, &len, &key), 0);
  CHECK(len > 0 && key == 1);
  ss_h264enc_free(e);
}

#else /* !SS_HAVE_OPENH264 */

TEST(h264enc_missing_says_what_to_install) {
  char err[200] = "";
  ss_h264enc *e = ss_h264enc_new(320, 240, 30, 0, 0, err, sizeof(err));
  CHECK(e == NULL);
  CHECK_STR(err, "H.264 test pattern needs libopenh264 (Debian: "
                 "libopenh264-dev); rebuild after installing it");
  ss_h264enc_free(NULL);
  /* CI builds must include the encoder; a local build may lack it. */
  CHECK_MSG(!test_in_ci(), "built without openh264 under CI=true: install "
                           "libopenh264-dev (scripts/deps.sh)");
}

#endif
