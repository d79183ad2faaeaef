/*
 * libFuzzer target for the H.264 reader and SPS parser (src/h264.c).
 *
 * Input: byte 0 picks the limits (nal_max, au_max: small ones so that the
 * drop paths run), byte 1 seeds the piece sizes, the rest is the stream. The
 * stream is read twice, in one feed and in pseudo-random pieces; both runs
 * must give the same AUs and counters. Every AU must start with a 4-byte
 * start code, fit au_max, and, when key, carry an SPS and a PPS before its
 * first slice, which is an IDR slice. Every NAL unit of the stream is also
 * handed to sl_h264_parse_sps as if it were an SPS, at the very end of its
 * heap block, and the library's memory counters must return to where they
 * were.
 *
 *   FUZZ_TARGETS=h264 scripts/fuzz.sh 60
 * Replay without libFuzzer (as `make test` does for fuzz/regress/):
 *   build/rel/fuzz-replay-h264 FILE...
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice.h"

#define REQUIRE(c)                                                           \
  do {                                                                       \
    if (!(c)) {                                                              \
      fprintf(stderr, "%s:%d: REQUIRE(%s) failed\n", __FILE__, __LINE__, #c); \
      abort();                                                               \
    }                                                                        \
  } while (0)

typedef struct run {
  size_t au_max, naus, total;
  uint64_t hash; /* of every AU's bytes and flags, in order */
  sl_h264_reader_stats st;
} run;

static uint64_t mix(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

static void on_au(const sl_h264_au *au, void *arg) {
  run *r = arg;
  const unsigned char *p = sl_buf_cdata(au->buf);
  size_t n = sl_buf_len(au->buf);
  REQUIRE(n >= 5 && n <= r->au_max);
  REQUIRE(memcmp(p, "\0\0\0\1", 4) == 0);
  REQUIRE(au->config && sl_buf_len(au->config) >= 5 && au->info);
  REQUIRE(au->info->width > 0 && au->info->height > 0);
  if (au->key) {
    int sps = 0, pps = 0, first = -1;
    for (size_t i = 0; i + 3 < n; i++) {
      if (p[i] || p[i + 1] || p[i + 2] != 1) continue;
      int t = p[i + 3] & 0x1f;
      if (t == 1 || t == 2 || t == 5) {
        first = t;
        break;
      }
      sps += t == 7;
      pps += t == 8;
    }
    REQUIRE(first == 5 && sps > 0 && pps > 0);
  }
  r->naus++;
  r->total += n;
  unsigned char flags[2] = {(unsigned char)au->key,
                            (unsigned char)au->config_changed};
  r->hash = mix(mix(r->hash, p, n), flags, 2);
}

static void read_all(run *r, const uint8_t *in, size_t n, size_t nal_max,
                     size_t au_max, unsigned seed) {
  memset(r, 0, sizeof(*r));
  r->au_max = au_max;
  r->hash = 14695981039346656037ull;
  sl_h264_reader_opts o = {.nal_max = nal_max, .au_max = au_max,
                           .on_au = on_au, .arg = r};
  sl_h264_reader *rd = sl_h264_reader_new(&o, NULL);
  REQUIRE(rd != NULL);
  uint32_t x = seed * 2654435761u + 1;
  for (size_t pos = 0; pos < n;) {
    size_t take = n - pos;
    if (seed) {
      x = x * 1103515245u + 12345u;
      size_t want = (x >> 16) % 13 + 1;
      if (((x >> 8) & 7) == 0) want = (x >> 12) % 2048 + 1;
      if (take > want) take = want;
    }
    /* Each piece at the end of its own block, so a read past it shows. */
    uint8_t *piece = malloc(take);
    REQUIRE(piece != NULL);
    memcpy(piece, in + pos, take);
    REQUIRE(sl_h264_reader_feed(rd, piece, take) == 0);
    free(piece);
    pos += take;
  }
  REQUIRE(sl_h264_reader_flush(rd) == 0);
  sl_h264_reader_stats_get(rd, &r->st);
  sl_h264_reader_free(rd);
  REQUIRE(r->st.aus == r->naus && r->st.bytes == n);
  REQUIRE(r->st.keyframes <= r->st.aus);
  REQUIRE(r->st.garbage_bytes <= n);
}

/* Every NAL unit of the input, parsed as an SPS. */
static void parse_all(const uint8_t *in, size_t n) {
  for (size_t i = 0; i + 3 <= n; i++) {
    if (in[i] || in[i + 1] || in[i + 2] != 1) continue;
    size_t s = i + 3, e = s;
    while (e + 3 <= n && !(in[e] == 0 && in[e + 1] == 0 && in[e + 2] <= 1)) e++;
    if (e + 3 > n) e = n;
    uint8_t *nal = malloc(e - s + 1);
    REQUIRE(nal != NULL);
    memcpy(nal, in + s, e - s);
    nal[0] = e > s ? (uint8_t)((nal[0] & 0x60) | 7) : 0x67;
    size_t len = e > s ? e - s : 1;
    sl_h264_info info;
    int rc = sl_h264_parse_sps(nal, len, &info);
    REQUIRE(rc == 0 || rc == SL_EPROTO);
    if (rc == 0) {
      REQUIRE(info.width > 0 && info.height > 0);
      REQUIRE(info.width <= info.coded_width && info.height <= info.coded_height);
      REQUIRE(strlen(info.codec) == 11 && memcmp(info.codec, "avc1.", 5) == 0);
      REQUIRE(info.fps >= 0);
    }
    free(nal);
    i = e - 1; /* the loop steps on to the next start code */
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  static const size_t nal_maxes[4] = {0, 64, 700, 5000};
  static const size_t au_maxes[4] = {0, 200, 2000, 20000};
  size_t nal_max = nal_maxes[data[0] & 3], au_max = au_maxes[(data[0] >> 2) & 3];
  unsigned seed = data[1] | 0x100u;
  data += 2;
  size -= 2;
  sl_mem_stats m0, m1;
  sl_mem_stats_get(&m0);
  run a, b;
  size_t eff_au = au_max ? au_max : (size_t)8 << 20;
  read_all(&a, data, size, nal_max, eff_au, 0);
  read_all(&b, data, size, nal_max, eff_au, seed);
  REQUIRE(a.naus == b.naus && a.total == b.total && a.hash == b.hash);
  REQUIRE(memcmp(&a.st, &b.st, sizeof(a.st)) == 0);
  parse_all(data, size);
  sl_mem_stats_get(&m1);
  REQUIRE(m1.total == m0.total && m1.nbufs == m0.nbufs);
  return 0;
}

#ifdef SL_FUZZ_MAIN
#include "fuzz_main.h"
#endif
