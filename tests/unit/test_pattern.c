/*
 * Test-pattern generator: the block code read back from real JPEGs (at every
 * size and quality the server offers, from gray, RGB and RGBA pixels, after
 * rescaling), the encoder output format, motion, and argument checks.
 */
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "pattern.h"
#include "test.h"

/* A fixed LCG so "random" values are the same on every run. */
static unsigned long long lcg(unsigned long long *x) {
  *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
  return *x >> 32;
}

static ss_pattern *make(int w, int h, int q) {
  char err[128] = "";
  ss_pattern *p = ss_pattern_new(w, h, q, err, sizeof(err));
  CHECK_MSG(p != NULL, "ss_pattern_new(%d, %d, %d): %s", w, h, q, err);
  return p;
}

/* Decode to `pf` at width `dw` (a libjpeg-turbo scaling factor applies). */
static unsigned char *decode(const unsigned char *j, size_t n, int pf, int dw,
                             int *out_w, int *out_h, int pad) {
  tjhandle tj = tjInitDecompress();
  CHECK(tj != NULL);
  int w, h, ss, cs;
  CHECK_EQ(tjDecompressHeader3(tj, j, (unsigned long)n, &w, &h, &ss, &cs), 0);
  int sw = dw ? dw : w;
  int sh = (int)((long long)h * sw / w);
  int pitch = sw * tjPixelSize[pf] + pad;
  unsigned char *px = malloc((size_t)pitch * (size_t)sh);
  CHECK(px != NULL);
  CHECK_EQ(tjDecompress2(tj, j, (unsigned long)n, px, sw, pitch, sh, pf, 0), 0);
  tjDestroy(tj);
  *out_w = sw;
  *out_h = sh;
  return px;
}

TEST(pattern_code_roundtrip_sizes_qualities) {
  static const int sizes[][2] = {{160, 120}, {640, 480}, {1280, 720}};
  static const int quals[] = {30, 80};
  unsigned long long fixed[] = {0, 1, 0xFFFFFFFFull, 0x80000000ull,
                                0x55555555ull, 0xAAAAAAAAull, 0x7FFFFFFFull,
                                0x0000FFFFull};
  for (size_t si = 0; si < 3; si++)
    for (size_t qi = 0; qi < 2; qi++) {
      ss_pattern *p = make(sizes[si][0], sizes[si][1], quals[qi]);
      unsigned long long rnd = 12345 + si * 7 + qi;
      for (int i = 0; i < 24; i++) {
        unsigned long long seq =
            i < 8 ? fixed[i] : (lcg(&rnd) & 0xFFFFFFFFull);
        const unsigned char *j = NULL;
        size_t n = 0;
        CHECK_EQ(ss_pattern_render(p, seq, 1700000000000ULL + seq, &j, &n), 0);
        long long got = ss_pattern_read_jpeg(j, n);
        CHECK_MSG(got == (long long)seq,
                  "%dx%d q%d seq %llu: read %lld", sizes[si][0],
                  sizes[si][1], quals[qi], seq, got);
      }
      ss_pattern_free(p);
    }
}

TEST(pattern_code_is_low_32_bits) {
  ss_pattern *p = make(320, 240, 50);
  const unsigned char *j;
  size_t n;
  CHECK_EQ(ss_pattern_render(p, 0x500000007ULL, 0, &j, &n), 0);
  CHECK_EQ(ss_pattern_read_jpeg(j, n), 7);
  CHECK_EQ(ss_pattern_render(p, ~0ULL, ~0ULL, &j, &n), 0);
  CHECK_EQ(ss_pattern_read_jpeg(j, n), 0xFFFFFFFFll);
  ss_pattern_free(p);
}

/* Readers that get pixels from a canvas see RGB or RGBA with padded rows. */
TEST(pattern_read_gray_rgb_rgba) {
  ss_pattern *p = make(640, 480, 30);
  const unsigned char *j;
  size_t n;
  unsigned long long seq = 0xC0FFEE42ull;
  CHECK_EQ(ss_pattern_render(p, seq, 0, &j, &n), 0);
  static const struct { int pf, ps, pad; } fmt[] = {
      {TJPF_GRAY, 1, 0}, {TJPF_GRAY, 1, 13}, {TJPF_RGB, 3, 0},
      {TJPF_RGB, 3, 7},  {TJPF_RGBA, 4, 0},  {TJPF_RGBA, 4, 64}};
  for (size_t i = 0; i < sizeof(fmt) / sizeof(fmt[0]); i++) {
    int w, h;
    unsigned char *px = decode(j, n, fmt[i].pf, 0, &w, &h, fmt[i].pad);
    CHECK_EQ(ss_pattern_read_code(px, w, h, fmt[i].ps,
                                  w * fmt[i].ps + fmt[i].pad),
             seq);
    free(px);
  }
  ss_pattern_free(p);
}

/* Box-filter shrink by an arbitrary ratio, like a browser drawing a frame
 * into a smaller canvas. */
static unsigned char *shrink(const unsigned char *src, int w, int h, int dw,
                             int dh) {
  unsigned char *dst = malloc((size_t)dw * (size_t)dh);
  CHECK(dst != NULL);
  for (int y = 0; y < dh; y++)
    for (int x = 0; x < dw; x++) {
      int x0 = x * w / dw, x1 = (x + 1) * w / dw;
      int y0 = y * h / dh, y1 = (y + 1) * h / dh;
      unsigned sum = 0, cnt = 0;
      for (int yy = y0; yy < y1; yy++)
        for (int xx = x0; xx < x1; xx++, cnt++) sum += src[yy * w + xx];
      dst[y * dw + x] = (unsigned char)(sum / cnt);
    }
  return dst;
}

TEST(pattern_read_after_scaling) {
  static const int sizes[][2] = {{640, 480}, {1280, 720}};
  for (int si = 0; si < 2; si++) {
    ss_pattern *p = make(sizes[si][0], sizes[si][1], 30);
    const unsigned char *j;
    size_t n;
    unsigned long long seq = 0x9E3779B9ull + (unsigned)si;
    CHECK_EQ(ss_pattern_render(p, seq, 0, &j, &n), 0);
    int w, h;
    /* Decoder-side DCT scaling to 1/2 and 1/4. */
    for (int div = 2; div <= 4; div *= 2) {
      unsigned char *px = decode(j, n, TJPF_GRAY, sizes[si][0] / div, &w, &h,
                                 0);
      CHECK_EQ(ss_pattern_read_code(px, w, h, 1, w), seq);
      free(px);
    }
    /* Odd ratios keeping the aspect ratio, and one that squeezes it. */
    unsigned char *full = decode(j, n, TJPF_GRAY, 0, &w, &h, 0);
    static const int pct[][2] = {{73, 73}, {37, 37}, {90, 60}};
    for (int k = 0; k < 3; k++) {
      int dw = w * pct[k][0] / 100, dh = h * pct[k][1] / 100;
      unsigned char *small = shrink(full, w, h, dw, dh);
      long long got = ss_pattern_read_code(small, dw, dh, 1, dw);
      CHECK_MSG(got == (long long)seq, "%dx%d -> %dx%d: read %lld",
                w, h, dw, dh, got);
      free(small);
    }
    free(full);
    ss_pattern_free(p);
  }
}

/* Limited-range levels (16..235) and dimming keep the code readable because
 * the markers set the threshold. */
TEST(pattern_read_squeezed_levels) {
  ss_pattern *p = make(320, 240, 80);
  const unsigned char *j;
  size_t n;
  CHECK_EQ(ss_pattern_render(p, 0x13579BDFull, 0, &j, &n), 0);
  int w, h;
  unsigned char *px = decode(j, n, TJPF_GRAY, 0, &w, &h, 0);
  for (int i = 0; i < w * h; i++)
    px[i] = (unsigned char)(40 + px[i] * 100 / 255);
  CHECK_EQ(ss_pattern_read_code(px, w, h, 1, w), 0x13579BDFll);
  free(px);
  ss_pattern_free(p);
}

TEST(pattern_read_rejects) {
  enum { W = 320, H = 240 };
  static unsigned char grey[W * H * 4];
  memset(grey, 128, sizeof(grey));
  CHECK_EQ(ss_pattern_read_code(grey, W, H, 1, W), -1);
  CHECK_EQ(ss_pattern_read_code(NULL, W, H, 1, W), -1);
  CHECK_EQ(ss_pattern_read_code(grey, W, H, 2, 2 * W), -1);
  CHECK_EQ(ss_pattern_read_code(grey, W, H, 3, 3 * W - 1), -1);
  CHECK_EQ(ss_pattern_read_code(grey, 33, H, 1, 33), -1);
  CHECK_EQ(ss_pattern_read_code(grey, W, 11, 1, W), -1);
  CHECK_EQ(ss_pattern_read_jpeg(NULL, 0), -1);
  CHECK_EQ(ss_pattern_read_jpeg((const unsigned char *)"\xff\xd8junk", 6), -1);

  /* A real pattern whose one data cell is forced to mid-grey is ambiguous:
   * the reader says "no code" rather than guessing a bit. */
  ss_pattern *p = make(W, H, 80);
  const unsigned char *j;
  size_t n;
  CHECK_EQ(ss_pattern_render(p, 0xF0F0F0F0ull, 0, &j, &n), 0);
  int w, h;
  unsigned char *px = decode(j, n, TJPF_GRAY, 0, &w, &h, 0);
  CHECK_EQ(ss_pattern_read_code(px, w, h, 1, w), 0xF0F0F0F0ll);
  for (int y = h / 60; y < h / 12; y++)
    memset(px + y * w + 5 * w / 34, 128, (size_t)(w / 34));
  CHECK_EQ(ss_pattern_read_code(px, w, h, 1, w), -1);
  free(px);
  ss_pattern_free(p);
}

TEST(pattern_new_rounds_and_rejects) {
  char err[128];
  ss_pattern *p = make(100, 50, 75);
  CHECK_EQ(ss_pattern_width(p), 112);
  CHECK_EQ(ss_pattern_height(p), 64);
  ss_pattern_free(p);
  p = make(1280, 720, 100);
  CHECK_EQ(ss_pattern_width(p), 1280);
  CHECK_EQ(ss_pattern_height(p), 720);
  ss_pattern_free(p);

  err[0] = 0;
  CHECK(ss_pattern_new(640, 480, 0, err, sizeof(err)) == NULL);
  CHECK(strstr(err, "quality") != NULL);
  CHECK(ss_pattern_new(640, 480, 101, err, sizeof(err)) == NULL);
  err[0] = 0;
  CHECK(ss_pattern_new(0, 480, 80, err, sizeof(err)) == NULL);
  CHECK(strstr(err, "size") != NULL);
  CHECK(ss_pattern_new(9000, 480, 80, err, sizeof(err)) == NULL);
  CHECK(ss_pattern_new(640, -1, 80, NULL, 0) == NULL);
  ss_pattern_free(NULL);
}

/* The output is a baseline (SOF0) 4:2:0 JPEG of the rounded size, in a
 * buffer the pattern reuses; the same inputs give the same bytes. */
TEST(pattern_output_format_and_reuse) {
  ss_pattern *p = make(640, 480, 80);
  const unsigned char *j1, *j2;
  size_t n1, n2;
  CHECK_EQ(ss_pattern_render(p, 42, 1000, &j1, &n1), 0);
  CHECK(n1 > 1000);
  CHECK(j1[0] == 0xFF && j1[1] == 0xD8);
  CHECK(j1[n1 - 2] == 0xFF && j1[n1 - 1] == 0xD9);
  int sof0 = 0, sof2 = 0;
  for (size_t i = 0; i + 1 < n1 && !(j1[i] == 0xFF && j1[i + 1] == 0xDA); i++) {
    sof0 |= j1[i] == 0xFF && j1[i + 1] == 0xC0;
    sof2 |= j1[i] == 0xFF && j1[i + 1] == 0xC2;
  }
  CHECK(sof0 && !sof2);
  tjhandle tj = tjInitDecompress();
  int w, h, ss, cs;
  CHECK_EQ(tjDecompressHeader3(tj, j1, (unsigned long)n1, &w, &h, &ss, &cs), 0);
  tjDestroy(tj);
  CHECK_EQ(w, 640);
  CHECK_EQ(h, 480);
  CHECK_EQ(ss, TJSAMP_420);

  unsigned char *copy = malloc(n1);
  CHECK(copy != NULL);
  memcpy(copy, j1, n1);
  CHECK_EQ(ss_pattern_render(p, 42, 1000, &j2, &n2), 0);
  CHECK(j2 == j1);
  CHECK_EQ(n2, n1);
  CHECK_MEM(copy, j2, n1);
  /* Another publish time redraws the clock text. */
  CHECK_EQ(ss_pattern_render(p, 42, 1000 + 3723004, &j2, &n2), 0);
  CHECK(n2 != n1 || memcmp(copy, j2, n1) != 0);
  free(copy);
  ss_pattern_free(p);
}

/* Something visibly moves below the code band from frame to frame. */
TEST(pattern_motion) {
  ss_pattern *p = make(320, 240, 80);
  const unsigned char *j;
  size_t n;
  int w, h;
  CHECK_EQ(ss_pattern_render(p, 0, 0, &j, &n), 0);
  unsigned char *a = decode(j, n, TJPF_GRAY, 0, &w, &h, 0);
  CHECK_EQ(ss_pattern_render(p, 30, 0, &j, &n), 0);
  unsigned char *b = decode(j, n, TJPF_GRAY, 0, &w, &h, 0);
  long changed = 0;
  for (int y = h / 10; y < h; y++)
    for (int x = 0; x < w; x++)
      changed += abs(a[y * w + x] - b[y * w + x]) > 32;
  CHECK_GE(changed, (long)(w * h / 50));
  free(a);
  free(b);
  ss_pattern_free(p);
}
