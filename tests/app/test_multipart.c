/*
 * The MJPEG-over-HTTP body reader (multipart.h): the layouts real servers
 * send (with and without Content-Length, odd boundaries, headerless parts,
 * miscounted lengths, metadata parts, oversized parts, a closing
 * delimiter, a plain JPEG stream), each fed whole, byte by byte and in
 * random pieces, every call's input placed against a guard page, and the
 * buffer bound checked after every call.
 */
#include <stdlib.h>
#include <string.h>

#include "multipart.h"
#include "pattern.h"
#include "test.h"

/* Three real JPEGs with block codes 1, 2, 3, and a larger one, 4. */
static unsigned char *jpg[5];
static size_t jlen[5];

static void make_jpegs(void) {
  char err[128];
  ss_pattern *p = ss_pattern_new(160, 120, 40, err, sizeof(err));
  CHECK(p != NULL);
  for (int i = 1; i <= 4; i++) {
    const unsigned char *j;
    if (i == 4) {
      ss_pattern_free(p);
      p = ss_pattern_new(640, 480, 90, err, sizeof(err));
      CHECK(p != NULL);
    }
    CHECK_EQ(ss_pattern_render(p, (unsigned long long)i, 0, &j, &jlen[i]), 0);
    jpg[i] = malloc(jlen[i]);
    memcpy(jpg[i], j, jlen[i]);
  }
  ss_pattern_free(p);
}

/* A body under construction. */
struct body {
  unsigned char b[64 << 10];
  size_t n;
};

static void put(struct body *b, const void *p, size_t n) {
  CHECK(b->n + n <= sizeof(b->b));
  memcpy(b->b + b->n, p, n);
  b->n += n;
}
static void puts_(struct body *b, const char *s) { put(b, s, strlen(s)); }
static void put_jpeg(struct body *b, int i) { put(b, jpg[i], jlen[i]); }
static void put_part(struct body *b, const char *delim, int i, int with_len) {
  char h[256];
  if (with_len)
    snprintf(h, sizeof(h), "%s\r\nContent-Type: image/jpeg\r\nContent-Length: %zu\r\n\r\n",
             delim, jlen[i]);
  else
    snprintf(h, sizeof(h), "%s\r\nContent-Type: image/jpeg\r\n\r\n", delim);
  puts_(b, h);
  put_jpeg(b, i);
  puts_(b, "\r\n");
}

struct result {
  long long codes[32];
  int n;
  ss_mp p;
};

/* Feed `b` in pieces: 0 = all at once, 1 = byte by byte, else random
 * sizes from 1 to `mode`. */
static void run(const char *ctype, size_t max_frame, const struct body *b,
                size_t mode, struct result *r) {
  memset(r, 0, sizeof(*r));
  ss_mp_init(&r->p, ctype, ctype ? strlen(ctype) : 0, max_frame);
  size_t cap = ss_mp_cap(&r->p), have = 0, at = 0;
  unsigned char *buf = malloc(cap);
  unsigned long long x = 7;
  while (at < b->n) {
    size_t k = mode == 0 ? b->n - at : mode == 1 ? 1 : 1 + (x = x * 6364136223846793005ULL + 1) % mode;
    if (k > b->n - at) k = b->n - at;
    if (k > cap - have) k = cap - have;
    CHECK(k > 0); /* the bound: always room for more */
    memcpy(buf + have, b->b + at, k);
    have += k;
    at += k;
    for (;;) {
      ss_mp_out o;
      const unsigned char *g = test_guard(buf, have);
      int got = ss_mp_next(&r->p, g, have, &o);
      CHECK_LE(o.consumed, have);
      if (got) {
        CHECK_LE(o.off + o.len, o.consumed);
        CHECK(r->n < 32);
        r->codes[r->n++] = ss_pattern_read_jpeg(g + o.off, o.len);
      }
      memmove(buf, buf + o.consumed, have - o.consumed);
      have -= o.consumed;
      if (!got) {
        CHECK_LE(have, cap - 1);
        break;
      }
    }
  }
  free(buf);
}

/* Every feeding mode gives the same frames and counters. */
static void expect(const char *ctype, size_t max_frame, const struct body *b,
                   const long long *codes, int n, struct result *out) {
  static const size_t modes[] = {0, 1, 7, 300, 5000};
  for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
    struct result r;
    run(ctype, max_frame, b, modes[m], &r);
    CHECK_MSG(r.n == n, "mode %zu: %d frames, want %d", modes[m], r.n, n);
    for (int i = 0; i < n; i++)
      CHECK_MSG(r.codes[i] == codes[i], "mode %zu frame %d: code %lld, want %lld",
                modes[m], i, r.codes[i], codes[i]);
    if (m == 0) *out = r;
    CHECK_EQ(r.p.garbage, out->p.garbage);
    CHECK_EQ(ss_mp_lost(&r.p), ss_mp_lost(&out->p));
    CHECK_EQ(r.p.other, out->p.other);
  }
}

static const long long ONE_TWO_THREE[] = {1, 2, 3};

TEST(multipart_sluice_layout_with_length) {
  make_jpegs();
  struct body b = {.n = 0};
  for (int i = 1; i <= 3; i++) put_part(&b, "--sluiceframe", i, 1);
  struct result r;
  CHECK_EQ(ss_mp_init(&r.p, "multipart/x-mixed-replace; boundary=sluiceframe", 48, 1 << 20), 1);
  expect("multipart/x-mixed-replace; boundary=sluiceframe", 1 << 20, &b,
         ONE_TWO_THREE, 3, &r);
  CHECK_EQ(r.p.parts, 3);
  CHECK_EQ(r.p.garbage, 0);
  CHECK_EQ(ss_mp_lost(&r.p), 0);
}

TEST(multipart_without_length_and_odd_boundaries) {
  make_jpegs();
  struct result r;
  /* No Content-Length; quoted boundary, parameter name in capitals. */
  struct body b = {.n = 0};
  for (int i = 1; i <= 3; i++) put_part(&b, "--b0undary", i, 0);
  expect("Multipart/X-Mixed-Replace;charset=x; BOUNDARY=\"b0undary\"", 1 << 20, &b,
         ONE_TWO_THREE, 3, &r);
  CHECK_EQ(r.p.parts, 3);
  CHECK_EQ(r.p.garbage, 0);
  /* A boundary that starts with "--", written with two more, or without
   * any dash at the start of a line (LF only line ends). */
  b.n = 0;
  put_part(&b, "----myboundary", 1, 1);
  puts_(&b, "--myboundary\nContent-Length: ");
  char n[32];
  snprintf(n, sizeof(n), "%zu\n\n", jlen[2]);
  puts_(&b, n);
  put_jpeg(&b, 2);
  puts_(&b, "\n");
  put_part(&b, "--myboundary", 3, 0);
  expect("multipart/x-mixed-replace;boundary=--myboundary", 1 << 20, &b,
         ONE_TWO_THREE, 3, &r);
  CHECK_EQ(r.p.parts, 3);
  b.n = 0;
  puts_(&b, "frame\r\n\r\n"); /* at the very start, no dashes */
  put_jpeg(&b, 1);
  puts_(&b, "\r\nframe\r\n\r\n");
  put_jpeg(&b, 2);
  put_part(&b, "--frame", 3, 1);
  expect("multipart/x-mixed-replace; boundary=frame", 1 << 20, &b, ONE_TWO_THREE,
         3, &r);
}

TEST(multipart_miscounted_lengths_and_headerless_parts) {
  make_jpegs();
  struct result r;
  struct body b = {.n = 0};
  char h[128];
  /* Too short by 10, too long by 40 (swallowing the next delimiter). */
  snprintf(h, sizeof(h), "--x\r\nContent-Length: %zu\r\n\r\n", jlen[1] - 10);
  puts_(&b, h);
  put_jpeg(&b, 1);
  snprintf(h, sizeof(h), "\r\n--x\r\nContent-Length: %zu\r\n\r\n", jlen[2] + 40);
  puts_(&b, h);
  put_jpeg(&b, 2);
  /* A part with no headers at all: the JPEG right after the delimiter. */
  puts_(&b, "\r\n--x\r\n");
  put_jpeg(&b, 3);
  puts_(&b, "\r\n--x\r\n");
  expect("multipart/x-mixed-replace; boundary=x", 1 << 20, &b, ONE_TWO_THREE, 3, &r);
  CHECK_EQ(r.p.bad, 0);
}

TEST(multipart_metadata_oversized_and_closing) {
  make_jpegs();
  struct result r;
  struct body b = {.n = 0};
  puts_(&b, "preamble text\r\n");
  puts_(&b, "--x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello\r\n");
  put_part(&b, "--x", 1, 1);
  puts_(&b, "--x\r\nContent-Type: application/json\r\n\r\n{\"a\":1}\r\n");
  put_part(&b, "--x", 2, 1);
  /* Oversized: max_frame is below frame 4's length; skipped by its length. */
  put_part(&b, "--x", 4, 1);
  put_part(&b, "--x", 3, 1);
  puts_(&b, "--x--\r\nepilogue");
  size_t maxf = 16 << 10;
  CHECK(jlen[4] > maxf && jlen[3] <= maxf);
  static const long long want[] = {1, 2, 3};
  expect("multipart/x-mixed-replace; boundary=x", maxf, &b, want, 3, &r);
  CHECK_EQ(r.p.other, 2);
  CHECK_EQ(r.p.oversized, 1);
  CHECK_EQ(r.p.closed, 1);
  /* preamble + "epilogue" + the JSON part's body, which has no length
   * and is skipped up to the next delimiter */
  CHECK_EQ(r.p.garbage, strlen("preamble text") + strlen("epilogue") + strlen("{\"a\":1}"));
}

TEST(multipart_endless_headers_recover) {
  make_jpegs();
  struct result r;
  struct body b = {.n = 0};
  puts_(&b, "--x\r\n");
  for (int i = 0; i < SS_MP_HEAD_MAX / 16 + 8; i++) puts_(&b, "X-Filler: 12345\r\n");
  put_part(&b, "\r\n--x", 2, 1);
  static const long long want[] = {2};
  expect("multipart/x-mixed-replace; boundary=x", 1 << 20, &b, want, 1, &r);
  CHECK_EQ(r.p.bad, 1);
}

TEST(multipart_plain_stream) {
  make_jpegs();
  struct result r;
  struct body b = {.n = 0};
  put_jpeg(&b, 1);
  puts_(&b, "junk");
  put_jpeg(&b, 2);
  put_jpeg(&b, 3);
  CHECK_EQ(ss_mp_init(&r.p, "image/jpeg", 10, 1 << 20), 0);
  expect("image/jpeg", 1 << 20, &b, ONE_TWO_THREE, 3, &r);
  expect(NULL, 1 << 20, &b, ONE_TWO_THREE, 3, &r);
  /* multipart without a boundary parameter reads as a plain stream */
  expect("multipart/x-mixed-replace", 1 << 20, &b, ONE_TWO_THREE, 3, &r);
  CHECK_EQ(ss_mp_garbage(&r.p), 4);
}
