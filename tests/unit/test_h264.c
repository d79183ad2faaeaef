/*
 * H.264 reader and SPS parser: hand-built streams for the boundary rules,
 * garbage, limits and latency (a small bit writer makes SPS, PPS and slice
 * headers), then real libx264 output made with ffmpeg at test time (several
 * profiles, cropping, interlacing, scaling lists, parameter sets sent once)
 * whose AUs, written back, must decode without one error, whole and cut at
 * every key AU. Every split of the input must give the same AUs.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice.h"
#include "common.h"
#include "test.h"

/* ------------------------------------------------------------------ */
/* Byte and bit builders                                               */
/* ------------------------------------------------------------------ */

typedef test_bytes bytes;

static void put(bytes *b, const void *data, size_t n) { test_bytes_put(b, data, n); }

static void put1(bytes *b, unsigned c) {
  unsigned char x = (unsigned char)c;
  put(b, &x, 1);
}

typedef struct bw {
  unsigned char d[512];
  size_t bits;
} bw;

static void bw_u(bw *w, unsigned n, uint32_t v) {
  while (n--) {
    if ((v >> n) & 1) w->d[w->bits / 8] |= (unsigned char)(0x80 >> (w->bits % 8));
    w->bits++;
  }
}
static void bw_ue(bw *w, uint32_t v) {
  uint64_t x = (uint64_t)v + 1;
  unsigned n = 0;
  while ((x >> n) > 1) n++;
  bw_u(w, n, 0);
  bw_u(w, n + 1, (uint32_t)x);
}
static void bw_se(bw *w, int32_t v) {
  bw_ue(w, v > 0 ? (uint32_t)(2 * v - 1) : (uint32_t)(-2 * v));
}

/* Append NAL unit `hdr` + the RBSP in `w` (with its stop bit), escaped,
 * behind a 3- or 4-byte start code. */
static void put_nal(bytes *b, int sc4, unsigned hdr, bw *w, int trailing) {
  if (trailing) {
    bw_u(w, 1, 1);
    while (w->bits % 8) bw_u(w, 1, 0);
  }
  put(b, &"\0\0\0\1"[!sc4], sc4 ? 4 : 3);
  put1(b, hdr);
  size_t n = (w->bits + 7) / 8;
  int zeros = 0;
  for (size_t i = 0; i < n; i++) {
    if (zeros >= 2 && w->d[i] <= 3) {
      put1(b, 3);
      zeros = 0;
    }
    put1(b, w->d[i]);
    zeros = w->d[i] == 0 ? zeros + 1 : 0;
  }
}

/* A baseline SPS: w x h macroblocks, cropped by crop_r / crop_b chroma
 * units, 4-bit frame_num, POC type 2, VUI timing when fps_scale. */
static void build_sps(bw *w, int id, int wmbs, int hmbs, int crop_r,
                      int crop_b, uint32_t units, uint32_t scale) {
  memset(w, 0, sizeof(*w));
  bw_u(w, 8, 66);
  bw_u(w, 8, 0xc0);
  bw_u(w, 8, 30);
  bw_ue(w, (uint32_t)id);
  bw_ue(w, 0); /* log2_max_frame_num_minus4 */
  bw_ue(w, 2); /* poc type */
  bw_ue(w, 1); /* refs */
  bw_u(w, 1, 0);
  bw_ue(w, (uint32_t)wmbs - 1);
  bw_ue(w, (uint32_t)hmbs - 1);
  bw_u(w, 1, 1); /* frame_mbs_only */
  bw_u(w, 1, 1); /* direct_8x8 */
  bw_u(w, 1, crop_r || crop_b);
  if (crop_r || crop_b) {
    bw_ue(w, 0);
    bw_ue(w, (uint32_t)crop_r);
    bw_ue(w, 0);
    bw_ue(w, (uint32_t)crop_b);
  }
  bw_u(w, 1, scale != 0); /* vui */
  if (scale) {
    bw_u(w, 4, 0); /* aspect, overscan, video signal, chroma loc: absent */
    bw_u(w, 1, 1);
    bw_u(w, 32, units);
    bw_u(w, 32, scale);
    bw_u(w, 1, 1);
    bw_u(w, 4, 0); /* no HRD, no pic_struct, no restriction */
  }
}

static void put_sps(bytes *b, int sc4) {
  bw w;
  build_sps(&w, 0, 20, 15, 0, 0, 1, 50);
  put_nal(b, sc4, 0x67, &w, 1);
}

static void put_pps(bytes *b, int sc4, int id) {
  bw w;
  memset(&w, 0, sizeof(w));
  bw_ue(&w, (uint32_t)id);
  bw_ue(&w, 0);
  bw_u(&w, 2, 0);
  bw_ue(&w, 0);
  bw_ue(&w, 0);
  bw_ue(&w, 0);
  bw_u(&w, 3, 0);
  bw_se(&w, 0);
  bw_se(&w, 0);
  bw_se(&w, 0);
  bw_u(&w, 3, 2);
  put_nal(b, sc4, 0x68, &w, 1);
}

/* A slice: header up to idr_pic_id, then `body` bytes of payload with
 * zero runs in it (so the escaping and the scanner's zero logic run). */
static void put_slice(bytes *b, int sc4, int idr, int ref, int first_mb,
                      int frame_num, int pps, size_t body) {
  bw w;
  memset(&w, 0, sizeof(w));
  bw_ue(&w, (uint32_t)first_mb);
  bw_ue(&w, idr ? 7 : 5);
  bw_ue(&w, (uint32_t)pps);
  bw_u(&w, 4, (uint32_t)frame_num);
  if (idr) bw_ue(&w, 0);
  if (body > sizeof(w.d) - 16) body = sizeof(w.d) - 16;
  for (size_t i = 0; i < body; i++)
    bw_u(&w, 8, i % 7 == 3 || i % 7 == 4 ? 0
                : i % 7 == 5                ? 1
                                            : ((uint32_t)i * 37 + 1) & 0xff);
  unsigned hdr = (unsigned)(idr ? 5 : 1) | (ref ? 0x60u : 0u);
  put_nal(b, sc4, hdr, &w, 1);
}

static void put_aud(bytes *b) { put(b, "\0\0\0\1\x09\xf0", 6); }
static void put_sei(bytes *b) {
  put(b, "\0\0\1\x06\x05\x01\xaa\x80", 8); /* user data, 1 byte */
}

/* ------------------------------------------------------------------ */
/* Running the reader                                                  */
/* ------------------------------------------------------------------ */

enum { MAX_AUS = 512 };

typedef struct result {
  size_t n;
  size_t off[MAX_AUS], len[MAX_AUS];
  int key[MAX_AUS], changed[MAX_AUS];
  bytes all;
  sl_h264_info info;
  sl_h264_reader_stats st;
  size_t au_max;
} result;

/* NAL unit types of an Annex-B buffer, in order; returns how many. */
static size_t nal_types(const unsigned char *p, size_t n, int *types,
                        size_t max) {
  size_t k = 0;
  for (size_t i = 0; i + 3 <= n; i++) {
    if (p[i] == 0 && p[i + 1] == 0 && p[i + 2] == 1 && i + 3 < n) {
      if (k < max) types[k] = p[i + 3] & 0x1f;
      k++;
      i += 2;
    }
  }
  return k;
}

static void on_au(const sl_h264_au *au, void *arg) {
  result *r = arg;
  const unsigned char *p = sl_buf_cdata(au->buf);
  size_t n = sl_buf_len(au->buf);
  CHECK(r->n < MAX_AUS);
  CHECK(n >= 5 && n <= r->au_max);
  CHECK_MEM(p, "\0\0\0\1", 4);
  CHECK(au->config != NULL && au->info != NULL);
  if (au->key) {
    /* SPS and PPS come before the first slice. */
    int t[64];
    size_t k = nal_types(p, n, t, 64), i, sps = 0, pps = 0;
    for (i = 0; i < k && i < 64 && t[i] != 1 && t[i] != 5; i++) {
      sps += t[i] == 7;
      pps += t[i] == 8;
    }
    CHECK(i < k && t[i] == 5);
    CHECK(sps >= 1 && pps >= 1);
  }
  r->off[r->n] = r->all.n;
  r->len[r->n] = n;
  r->key[r->n] = au->key;
  r->changed[r->n] = au->config_changed;
  r->info = *au->info;
  r->n++;
  put(&r->all, p, n);
}

/* Feed `in` in pieces: mode 0 whole, 1 byte at a time, else pseudo-random
 * sizes from that seed. */
static void run_opts(result *r, const bytes *in, int mode, size_t nal_max,
                     size_t au_max) {
  memset(r, 0, sizeof(*r));
  sl_h264_reader_opts o = {.nal_max = nal_max, .au_max = au_max,
                           .on_au = on_au, .arg = r};
  r->au_max = au_max ? au_max : (size_t)8 << 20;
  sl_h264_reader *rd = sl_h264_reader_new(&o, NULL);
  CHECK(rd != NULL);
  uint32_t x = (uint32_t)mode * 2654435761u;
  for (size_t pos = 0; pos < in->n;) {
    size_t take = in->n - pos;
    if (mode == 1) {
      take = 1;
    } else if (mode > 1) {
      x = x * 1103515245u + 12345u;
      size_t want = (x >> 16) % 9 + 1;
      if (((x >> 8) & 3) == 0) want = (x >> 12) % 3000 + 1;
      if (take > want) take = want;
    }
    CHECK_EQ(sl_h264_reader_feed(rd, test_guard(in->p + pos, take), take), 0);
    pos += take;
  }
  CHECK_EQ(sl_h264_reader_flush(rd), 0);
  sl_h264_reader_stats_get(rd, &r->st);
  CHECK_EQ(r->st.bytes, in->n);
  CHECK_EQ(r->st.aus, r->n);
  sl_h264_reader_free(rd);
}

static void run(result *r, const bytes *in, int mode) {
  run_opts(r, in, mode, 0, 0);
}

static void same(const result *a, const result *b) {
  CHECK_EQ(a->n, b->n);
  CHECK_EQ(a->all.n, b->all.n);
  CHECK_MEM(a->all.p, b->all.p, a->all.n);
  for (size_t i = 0; i < a->n; i++) {
    CHECK_EQ(a->len[i], b->len[i]);
    CHECK_EQ(a->key[i], b->key[i]);
    CHECK_EQ(a->changed[i], b->changed[i]);
  }
  CHECK_MEM(&a->st, &b->st, sizeof(a->st));
}

static void free_result(result *r) { free(r->all.p); }

/* Every split of `in` gives the AUs of the whole-buffer feed. */
static void check_splits(const bytes *in, result *whole) {
  result *r = malloc(sizeof(*r));
  CHECK(r != NULL);
  run(whole, in, 0);
  run(r, in, 1);
  same(whole, r);
  free_result(r);
  for (int seed = 2; seed < 8; seed++) {
    run(r, in, seed);
    same(whole, r);
    free_result(r);
  }
  free(r);
}

static void au_types(const result *r, size_t i, int *t, size_t *k) {
  *k = nal_types(r->all.p + r->off[i], r->len[i], t, 16);
}

#define CHECK_TYPES(r, i, ...)                                               \
  do {                                                                       \
    static const int want_[] = {__VA_ARGS__};                                \
    int t_[16];                                                              \
    size_t k_;                                                               \
    au_types((r), (i), t_, &k_);                                             \
    CHECK_EQ(k_, sizeof(want_) / sizeof(want_[0]));                          \
    for (size_t j_ = 0; j_ < k_; j_++) CHECK_EQ(t_[j_], want_[j_]);          \
  } while (0)

static size_t mem_total(void) {
  sl_mem_stats m;
  sl_mem_stats_get(&m);
  return m.total;
}

/* ------------------------------------------------------------------ */
/* SPS                                                                 */
/* ------------------------------------------------------------------ */

TEST(h264_sps_baseline_crop_vui) {
  bytes b = {0};
  bw w;
  build_sps(&w, 3, 120, 68, 0, 4, 1001, 60000); /* 1920x1088 -> 1080 */
  put_nal(&b, 1, 0x67, &w, 1);
  sl_h264_info i;
  CHECK_EQ(sl_h264_parse_sps(test_guard(b.p + 4, b.n - 4), b.n - 4, &i), 0);
  CHECK_EQ(i.profile_idc, 66);
  CHECK_EQ(i.constraints, 0xc0);
  CHECK_EQ(i.level_idc, 30);
  CHECK_EQ(i.sps_id, 3);
  CHECK_EQ(i.width, 1920);
  CHECK_EQ(i.height, 1080);
  CHECK_EQ(i.coded_height, 1088);
  CHECK(i.fps > 29.97 && i.fps < 29.98);
  CHECK_STR(i.codec, "avc1.42c01e");
  /* Every truncation either fails cleanly or (inside the VUI) drops fps. */
  for (size_t n = 1; n < b.n - 4; n++) {
    int rc = sl_h264_parse_sps(test_guard(b.p + 4, n), n, &i);
    CHECK(rc == 0 || rc == SL_EPROTO);
    if (rc == 0) CHECK(i.height == 1080 && (i.fps == 0 || i.fps > 29.97));
  }
  /* Not an SPS, NULL, forbidden bit. */
  CHECK_EQ(sl_h264_parse_sps("\x68\xce", 2, &i), SL_EINVAL);
  CHECK_EQ(sl_h264_parse_sps(NULL, 4, &i), SL_EINVAL);
  CHECK_EQ(sl_h264_parse_sps("\xe7\x42", 2, &i), SL_EINVAL);
  CHECK_EQ(sl_h264_parse_sps("\x67", 1, &i), SL_EPROTO);
  /* Cropping away the whole picture. */
  b.n = 0;
  build_sps(&w, 0, 1, 1, 8, 0, 0, 0);
  put_nal(&b, 1, 0x67, &w, 1);
  CHECK_EQ(sl_h264_parse_sps(b.p + 4, b.n - 4, &i), SL_EPROTO);
  free(b.p);
}

TEST(h264_sps_high_fields_scaling) {
  /* High profile, 4:2:0 8-bit, one explicit 4x4 and one 8x8 scaling list,
   * POC type 1 with a cycle, interlaced (frame_mbs_only 0) 1920x1080. */
  bw w;
  memset(&w, 0, sizeof(w));
  bw_u(&w, 8, 100);
  bw_u(&w, 8, 0);
  bw_u(&w, 8, 40);
  bw_ue(&w, 0);
  bw_ue(&w, 1); /* chroma_format_idc */
  bw_ue(&w, 0);
  bw_ue(&w, 0);
  bw_u(&w, 1, 0);
  bw_u(&w, 1, 1); /* scaling matrix */
  for (int l = 0; l < 8; l++) {
    bw_u(&w, 1, l == 0 || l == 6);
    if (l == 0)
      for (int j = 0; j < 16; j++) bw_se(&w, j == 0 ? 8 : 1);
    if (l == 6) bw_se(&w, -8); /* nextScale 0 at once: use the default */
  }
  bw_ue(&w, 2);
  bw_ue(&w, 1); /* POC type 1 */
  bw_u(&w, 1, 0);
  bw_se(&w, -2);
  bw_se(&w, 1);
  bw_ue(&w, 2);
  bw_se(&w, 4);
  bw_se(&w, -4);
  bw_ue(&w, 4);
  bw_u(&w, 1, 0);
  bw_ue(&w, 119);
  bw_ue(&w, 33); /* 34 map units of 32 lines */
  bw_u(&w, 1, 0);
  bw_u(&w, 1, 1); /* mbaff */
  bw_u(&w, 1, 1);
  bw_u(&w, 1, 1); /* crop: bottom 2 units of 4 lines */
  bw_ue(&w, 0);
  bw_ue(&w, 0);
  bw_ue(&w, 0);
  bw_ue(&w, 2);
  bw_u(&w, 1, 0);
  bytes b = {0};
  put_nal(&b, 0, 0x67, &w, 1);
  sl_h264_info i;
  CHECK_EQ(sl_h264_parse_sps(test_guard(b.p + 3, b.n - 3), b.n - 3, &i), 0);
  CHECK_EQ(i.width, 1920);
  CHECK_EQ(i.height, 1080);
  CHECK_EQ(i.coded_height, 1088);
  CHECK_EQ(i.frame_mbs_only, 0);
  CHECK_EQ(i.chroma_format_idc, 1);
  CHECK(i.fps == 0);
  CHECK_STR(i.codec, "avc1.640028");
  /* A scaling delta out of range is malformed. */
  CHECK_EQ(sl_h264_parse_sps("\x67\x64\x00\x28\xac\xb0", 6, &i), SL_EPROTO);
  free(b.p);
}

/* ------------------------------------------------------------------ */
/* Access-unit boundaries                                              */
/* ------------------------------------------------------------------ */

TEST(h264_reader_boundaries) {
  size_t m0 = mem_total();
  bytes s = {0};
  /* 0: AUD SPS PPS IDR(two slices) */
  put_aud(&s);
  put_sps(&s, 1);
  put_pps(&s, 0, 0);
  put_slice(&s, 1, 1, 1, 0, 0, 0, 40);
  put_slice(&s, 0, 1, 1, 150, 0, 0, 40);
  /* 1: AUD P P P (first_mb 0, 100, 200) */
  put_aud(&s);
  put_slice(&s, 0, 0, 1, 0, 1, 0, 30);
  put_slice(&s, 1, 0, 1, 100, 1, 0, 30);
  put_slice(&s, 1, 0, 1, 200, 1, 0, 30);
  /* 2: P, no AUD: first_mb 0 starts it */
  put_slice(&s, 0, 0, 1, 0, 2, 0, 30);
  /* 3: SEI after a slice starts an AU; then P */
  put_sei(&s);
  put_slice(&s, 1, 0, 1, 0, 3, 0, 30);
  /* 4: the first slice was lost: frame_num changes at first_mb 100 */
  put_slice(&s, 1, 0, 1, 100, 4, 0, 30);
  /* 5: nal_ref_idc becomes 0 */
  put_slice(&s, 1, 0, 0, 120, 4, 0, 30);
  /* 6: a second PPS then a slice referring to it, first_mb 0 */
  put_pps(&s, 1, 1);
  put_slice(&s, 1, 0, 1, 0, 5, 1, 30);
  /* 7: a slice on another PPS with first_mb != 0 */
  put_slice(&s, 1, 0, 1, 50, 5, 0, 30);
  /* 8: end of sequence belongs to the AU it ends; then trailing zeros */
  put_slice(&s, 1, 0, 1, 0, 6, 0, 30);
  put(&s, "\0\0\1\x0a\0\0\0\0", 8);

  result *r = malloc(sizeof(*r));
  CHECK(r != NULL);
  check_splits(&s, r);
  CHECK_EQ(r->n, 9);
  CHECK_TYPES(r, 0, 9, 7, 8, 5, 5);
  CHECK_TYPES(r, 1, 9, 1, 1, 1);
  CHECK_TYPES(r, 2, 1);
  CHECK_TYPES(r, 3, 6, 1);
  CHECK_TYPES(r, 4, 1);
  CHECK_TYPES(r, 5, 1);
  CHECK_TYPES(r, 6, 8, 1);
  CHECK_TYPES(r, 7, 1);
  CHECK_TYPES(r, 8, 1, 10);
  CHECK_EQ(r->key[0], 1);
  for (size_t i = 1; i < r->n; i++) CHECK_EQ(r->key[i], 0);
  CHECK_EQ(r->changed[0], 1);
  CHECK_EQ(r->changed[1], 0);
  CHECK_EQ(r->changed[6], 1); /* the second PPS joined the config */
  CHECK_EQ(r->changed[7], 0);
  CHECK_EQ(r->st.keyframes, 1);
  CHECK_EQ(r->st.garbage_bytes, 0);
  CHECK_EQ(r->info.width, 320);
  CHECK_EQ(r->info.height, 240);
  CHECK(r->info.fps == 25);
  /* Output start codes are all 4 bytes: the bytes differ from the input
   * only by the added zero of each 3-byte one and the dropped trailing
   * zeros. */
  CHECK_EQ(r->st.nals, 19);
  free_result(r);
  free(r);
  free(s.p);
  CHECK_EQ(mem_total(), m0);
}

/* The AU is handed over as soon as the next one's first NAL unit is known:
 * its header for an AUD, PPS, SEI, its first slice bytes for a slice. */
static void count_au(const sl_h264_au *au, void *arg) {
  (void)au;
  ++*(int *)arg;
}

TEST(h264_reader_latency) {
  size_t m0 = mem_total();
  bytes s = {0};
  put_sps(&s, 1);
  put_pps(&s, 1, 0);
  put_slice(&s, 1, 1, 1, 0, 0, 0, 100);
  size_t au1 = s.n;
  put_aud(&s); /* 00 00 00 01 09 f0 */
  put_slice(&s, 1, 0, 1, 0, 1, 0, 100);
  int n = 0;
  sl_h264_reader_opts o = {.on_au = count_au, .arg = &n};
  sl_h264_reader *rd = sl_h264_reader_new(&o, NULL);
  CHECK(rd != NULL);
  CHECK_EQ(sl_h264_reader_feed(rd, s.p, au1 + 4), 0);
  CHECK_EQ(n, 0);
  CHECK_EQ(sl_h264_reader_feed(rd, s.p + au1 + 4, 1), 0); /* AUD header */
  CHECK_EQ(n, 1);
  /* The slice after the AUD joins its AU; nothing more until flush. */
  CHECK_EQ(sl_h264_reader_feed(rd, s.p + au1 + 5, s.n - au1 - 5), 0);
  CHECK_EQ(n, 1);
  /* A new slice with first_mb 0: decided after its first 24 bytes. */
  bytes t = {0};
  put_slice(&t, 1, 0, 1, 0, 2, 0, 100);
  CHECK_EQ(sl_h264_reader_feed(rd, t.p, 5 + 23), 0);
  CHECK_EQ(n, 1);
  CHECK_EQ(sl_h264_reader_feed(rd, t.p + 28, 1), 0);
  CHECK_EQ(n, 2);
  CHECK_EQ(sl_h264_reader_feed(rd, t.p + 29, t.n - 29), 0);
  CHECK_EQ(sl_h264_reader_flush(rd), 0);
  CHECK_EQ(n, 3);
  sl_h264_reader_free(rd);
  free(s.p);
  free(t.p);
  CHECK_EQ(mem_total(), m0);
}

/* ------------------------------------------------------------------ */
/* Garbage, limits, parameter sets                                     */
/* ------------------------------------------------------------------ */

/* A GOP of `n` AUs (IDR + P), parameter sets in front when `ps`. */
static void put_gop(bytes *s, int n, int ps, size_t body) {
  if (ps) {
    put_sps(s, 1);
    put_pps(s, 1, 0);
  }
  put_slice(s, 1, 1, 1, 0, 0, 0, body);
  for (int i = 1; i < n; i++) put_slice(s, i & 1, 0, 1, 0, i, 0, body);
}

TEST(h264_reader_garbage) {
  size_t m0 = mem_total();
  bytes s = {0};
  put(&s, "junk\xff\xfe", 6);           /* 6 before the first start code */
  put_slice(&s, 1, 0, 1, 0, 3, 0, 30); /* 1 AU before any SPS: dropped */
  put_gop(&s, 3, 1, 60);
  put(&s, "\0\0\1\xff\x11\x22\x33", 7); /* forbidden bit: 4 bytes */
  put(&s, "\0\0\1\x00", 4);             /* empty NAL unit: not garbage */
  put(&s, "\0\0\1\x1c\x44", 5);         /* type 28: 2 bytes */
  put_slice(&s, 1, 0, 1, 0, 3, 0, 60);
  put(&s, "\0\0\0\x77\x77", 5);         /* after 00 00 00: 2 bytes */
  put_gop(&s, 2, 1, 60);
  result *r = malloc(sizeof(*r));
  CHECK(r != NULL);
  check_splits(&s, r);
  CHECK_EQ(r->n, 6);
  CHECK_EQ(r->st.garbage_bytes, 6 + 4 + 2 + 2);
  CHECK_EQ(r->st.drop_before_key, 1);
  CHECK_EQ(r->st.keyframes, 2);
  CHECK_TYPES(r, 3, 1);
  free_result(r);
  free(r);
  free(s.p);
  CHECK_EQ(mem_total(), m0);
}

TEST(h264_reader_limits) {
  size_t m0 = mem_total();
  result *r = malloc(sizeof(*r));
  CHECK(r != NULL);
  /* A non-reference slice too big: only its AU goes. */
  bytes s = {0};
  put_gop(&s, 3, 1, 60);
  put_slice(&s, 1, 0, 0, 0, 3, 0, 400);
  put_slice(&s, 1, 0, 1, 0, 4, 0, 60);
  run_opts(r, &s, 0, 300, 0);
  CHECK_EQ(r->n, 4);
  CHECK_EQ(r->st.drop_nal_too_big, 1);
  CHECK_EQ(r->st.drop_before_key, 0);
  free_result(r);
  run_opts(r, &s, 1, 300, 0);
  CHECK_EQ(r->n, 4);
  free_result(r);
  /* A reference slice too big: the P frames after it wait for an IDR. */
  s.n = 0;
  put_gop(&s, 3, 1, 60);
  put_slice(&s, 1, 0, 1, 0, 3, 0, 400);
  put_slice(&s, 1, 0, 1, 0, 4, 0, 60);
  put_gop(&s, 2, 0, 60);
  run_opts(r, &s, 3, 300, 0);
  CHECK_EQ(r->n, 3 + 2);
  CHECK_EQ(r->st.drop_nal_too_big, 1);
  CHECK_EQ(r->st.drop_before_key, 1);
  CHECK_EQ(r->key[3], 1);
  free_result(r);
  /* An AU too big, out of two slices each under nal_max. */
  s.n = 0;
  put_gop(&s, 2, 1, 60);
  put_slice(&s, 1, 0, 0, 0, 2, 0, 250);
  put_slice(&s, 1, 0, 0, 99, 2, 0, 250);
  put_slice(&s, 1, 0, 0, 0, 3, 0, 60);
  for (int mode = 0; mode < 4; mode++) {
    run_opts(r, &s, mode, 300, 400);
    CHECK_EQ(r->n, 3);
    CHECK_EQ(r->st.drop_au_too_big, 1);
    CHECK_EQ(r->st.drop_nal_too_big, 0);
    free_result(r);
  }
  free(r);
  free(s.p);
  CHECK_EQ(mem_total(), m0);
}

TEST(h264_reader_inserts_parameter_sets) {
  size_t m0 = mem_total();
  bytes s = {0};
  put_gop(&s, 3, 1, 60);
  put_gop(&s, 3, 0, 60);
  put_gop(&s, 2, 0, 60);
  put_sps(&s, 1); /* parameter sets at the very end: no slice, dropped */
  put_pps(&s, 1, 0);
  result *r = malloc(sizeof(*r));
  CHECK(r != NULL);
  check_splits(&s, r);
  CHECK_EQ(r->n, 8);
  CHECK_EQ(r->st.keyframes, 3);
  CHECK_EQ(r->st.drop_no_slice, 1);
  CHECK_TYPES(r, 0, 7, 8, 5);
  CHECK_TYPES(r, 3, 7, 8, 5);
  CHECK_TYPES(r, 6, 7, 8, 5);
  CHECK_MEM(r->all.p + r->off[3], r->all.p, r->len[3]);
  CHECK_EQ(r->changed[3], 0);
  free_result(r);
  free(r);
  free(s.p);
  CHECK_EQ(mem_total(), m0);
}

/* An AU kept past the callback (a reference taken) stays valid and is the
 * only thing left once the reader is freed. */
static void keep_au(const sl_h264_au *au, void *arg) {
  sl_buf **keep = arg;
  sl_buf_unref(*keep);
  *keep = sl_buf_ref(au->buf);
}

TEST(h264_reader_reference) {
  size_t m0 = mem_total();
  sl_mem_stats m;
  sl_mem_stats_get(&m);
  size_t nb0 = m.nbufs;
  bytes s = {0};
  put_gop(&s, 2, 1, 60);
  sl_buf *keep = NULL;
  sl_h264_reader_opts o = {.on_au = keep_au, .arg = &keep};
  sl_h264_reader *rd = sl_h264_reader_new(&o, NULL);
  CHECK(rd != NULL);
  CHECK_EQ(sl_h264_reader_feed(rd, s.p, s.n), 0);
  CHECK(keep != NULL);
  CHECK_EQ(sl_buf_refs(keep), 1);
  sl_h264_reader_free(rd);
  sl_mem_stats_get(&m);
  CHECK_EQ(m.nbufs, nb0 + 1);
  CHECK_MEM(sl_buf_cdata(keep), "\0\0\0\1\x67", 5);
  sl_buf_unref(keep);
  CHECK_EQ(mem_total(), m0);
  free(s.p);
}

/* ------------------------------------------------------------------ */
/* Real encoder output                                                 */
/* ------------------------------------------------------------------ */

static char tmpdir[64];

static int need_ffmpeg(void) {
  if (test_sh("ffmpeg -hide_banner -encoders 2>/dev/null | grep -q libx264") == 0)
    return 1;
  if (!test_in_ci()) TEST_SKIP("ffmpeg with libx264 not installed");
  CHECK_MSG(0, "ffmpeg with libx264 is required under CI");
  return 0;
}

static void make_tmp(void) {
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/sl_h264_XXXXXX");
  CHECK(mkdtemp(tmpdir) != NULL);
}

/* A file's bytes (common.h's read_file, as a byte string). */
static bytes file_bytes(const char *path) {
  bytes b = {0};
  char *p = read_file(path, &b.n);
  CHECK_MSG(p != NULL, "cannot open %s", path);
  b.p = (unsigned char *)p;
  b.cap = b.n + 1;
  return b;
}

/* ffmpeg decodes the file without printing a single error. */
static void check_decodes(const char *path) {
  CHECK_MSG(test_sh("ffmpeg -nostdin -v error -i %s -f null - 2>%s/err && "
                    "test ! -s %s/err", path, tmpdir, tmpdir) == 0,
            "%s does not decode cleanly", path);
}

/* The AUs written back decode, whole and cut at every key AU. */
static void check_cuts(const result *r) {
  char path[128];
  snprintf(path, sizeof(path), "%s/out.h264", tmpdir);
  write_file(path, r->all.p, r->all.n);
  check_decodes(path);
  for (size_t i = 1; i < r->n; i++) {
    if (!r->key[i]) continue;
    write_file(path, r->all.p + r->off[i], r->all.n - r->off[i]);
    check_decodes(path);
  }
}

typedef struct clip {
  const char *args; /* ffmpeg input and encoder arguments */
  int frames, keys, profile, width, height;
  double fps;
  const char *codec_prefix;
} clip;

static const clip clips[] = {
    {"-f lavfi -i testsrc=size=320x240:rate=25 -frames:v 30 -pix_fmt yuv420p "
     "-c:v libx264 -g 10 -bf 0 -profile:v baseline",
     30, 3, 66, 320, 240, 25, "avc1.42c0"},
    {"-f lavfi -i testsrc=size=1920x1080:rate=30 -frames:v 6 -pix_fmt yuv420p "
     "-c:v libx264 -preset veryfast -g 3 -bf 0 -profile:v high",
     6, 2, 100, 1920, 1080, 30, "avc1.6400"},
    {"-f lavfi -i testsrc=size=1280x720:rate=50 -frames:v 8 -pix_fmt yuv420p "
     "-c:v libx264 -preset veryfast -g 4 -bf 2 -profile:v high",
     8, 2, 100, 1280, 720, 50, "avc1.6400"},
    {"-f lavfi -i testsrc=size=720x576:rate=25 -frames:v 6 -pix_fmt yuv420p "
     "-c:v libx264 -flags +ildct+ilme -g 3 -bf 0",
     6, 2, 100, 720, 576, 25, "avc1.6400"},
    {"-f lavfi -i testsrc=size=330x250:rate=30 -frames:v 6 -pix_fmt yuv422p "
     "-c:v libx264 -g 3 -bf 0",
     6, 2, 122, 330, 250, 30, "avc1.7a00"},
    {"-f lavfi -i testsrc=size=321x241:rate=24 -frames:v 6 -pix_fmt yuv444p "
     "-c:v libx264 -g 3 -bf 0 -x264-params "
     "cqm4=16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31:cqm8="
     "16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,16,17,18,19,20,21,22,"
     "23,24,25,26,27,28,29,30,31,16,17,18,19,20,21,22,23,24,25,26,27,28,29,"
     "30,31,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
     6, 2, 244, 321, 241, 24, "avc1.f400"},
    {"-f lavfi -i testsrc=size=320x240:rate=25 -frames:v 6 -pix_fmt yuv420p10le "
     "-c:v libx264 -g 3 -bf 2",
     6, 2, 110, 320, 240, 25, "avc1.6e00"},
};

static bytes encode(const clip *c, const char *name) {
  char path[128];
  snprintf(path, sizeof(path), "%s/%s.h264", tmpdir, name);
  CHECK_MSG(test_sh("ffmpeg -nostdin -v error -y %s -f h264 %s", c->args,
                    path) == 0,
            "ffmpeg failed: %s", c->args);
  return file_bytes(path);
}

TEST_T(h264_ffmpeg_clips, 240) {
  if (!need_ffmpeg()) return;
  make_tmp();
  size_t m0 = mem_total();
  result *r = malloc(sizeof(*r));
  CHECK(r != NULL);
  for (size_t k = 0; k < sizeof(clips) / sizeof(clips[0]); k++) {
    const clip *c = &clips[k];
    char name[16];
    snprintf(name, sizeof(name), "c%zu", k);
    bytes in = encode(c, name);
    run(r, &in, 0);
    CHECK_MSG(r->n == (size_t)c->frames, "clip %zu: %zu AUs", k, r->n);
    CHECK_EQ(r->st.keyframes, c->keys);
    CHECK_EQ(r->st.garbage_bytes, 0);
    CHECK_EQ(r->st.drop_before_key + r->st.drop_bad_sps + r->st.drop_no_slice, 0);
    CHECK_EQ(r->info.profile_idc, c->profile);
    CHECK_EQ(r->info.width, c->width);
    CHECK_EQ(r->info.height, c->height);
    CHECK_MSG(r->info.fps == c->fps, "clip %zu: fps %f", k, r->info.fps);
    CHECK_MSG(strncmp(r->info.codec, c->codec_prefix, 9) == 0 &&
                  strlen(r->info.codec) == 11,
              "clip %zu: %s", k, r->info.codec);
    /* The codec string is the SPS bytes 1..3 (x264 puts the SPS first). */
    char want[16];
    snprintf(want, sizeof(want), "avc1.%02x%02x%02x", in.p[5], in.p[6], in.p[7]);
    CHECK_STR(r->info.codec, want);
    CHECK_EQ(r->changed[0], 1);
    for (size_t i = 1; i < r->n; i++) CHECK_EQ(r->changed[i], 0);
    check_cuts(r);
    free_result(r);
    if (k < 2) { /* random splits of real data too */
      result *w = malloc(sizeof(*w));
      CHECK(w != NULL);
      check_splits(&in, w);
      free_result(w);
      free(w);
    }
    free(in.p);
  }
  free(r);
  CHECK_EQ(mem_total(), m0);
  test_sh("rm -rf %s", tmpdir);
}

/* Parameter sets sent once (as with repeat-headers=0 and the headers
 * stored apart): every later key AU gets them from the reader, so a cut
 * there decodes. Made from the baseline clip by removing every SPS and PPS
 * but the first ones. */
TEST_T(h264_ffmpeg_headers_once, 120) {
  if (!need_ffmpeg()) return;
  make_tmp();
  size_t m0 = mem_total();
  bytes in = encode(&clips[0], "once");
  /* Cut at every 00 00 01; a segment is one NAL unit (with maybe the
   * leading zero of the next 4-byte start code, a harmless trailing zero). */
  bytes s = {0};
  int slice_seen = 0;
  size_t i = 0;
  while (i + 3 < in.n) {
    size_t j = i + 3;
    while (j + 3 <= in.n && !(in.p[j] == 0 && in.p[j + 1] == 0 && in.p[j + 2] == 1))
      j++;
    if (j + 3 > in.n) j = in.n;
    size_t h = i;
    while (in.p[h] == 0) h++;
    int t = in.p[h + 1] & 0x1f;
    if ((t != 7 && t != 8) || !slice_seen) put(&s, in.p + i, j - i);
    slice_seen |= t == 1 || t == 5;
    i = j;
  }
  int types[256];
  size_t n = nal_types(s.p, s.n, types, 256), nsps = 0;
  for (size_t k = 0; k < n && k < 256; k++) nsps += types[k] == 7;
  CHECK_EQ(nsps, 1);
  result *r = malloc(sizeof(*r));
  CHECK(r != NULL);
  check_splits(&s, r);
  CHECK_EQ(r->n, 30);
  CHECK_EQ(r->st.keyframes, 3);
  check_cuts(r);
  free_result(r);
  free(r);
  free(in.p);
  free(s.p);
  CHECK_EQ(mem_total(), m0);
  test_sh("rm -rf %s", tmpdir);
}
