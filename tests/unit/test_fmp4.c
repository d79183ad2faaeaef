/*
 * Fragmented MP4 muxer: every box of the init segment and of a fragment
 * against bytes derived by hand from ISO/IEC 14496-12/-15; random access
 * units and parameter sets, with every box size checked by walking the
 * output; and real libx264 streams (baseline, high, high 4:4:4, late start,
 * skipped GOP) muxed to a file that ffprobe and ffmpeg must read without a
 * single warning and decode frame for frame.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fmp4.h"
#include "sluice.h"
#include "common.h"
#include "test.h"

/* SPS and PPS of an x264 constrained-baseline 320x240 stream (level 1.3).
 * The SPS carries two emulation prevention bytes (00 00 03). */
static const uint8_t SPS[] = {0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb,
                              0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
                              0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80};
static const uint8_t PPS[] = {0x68, 0xcb, 0x83, 0xcb, 0x20};

typedef test_bytes bytes;

static void put(bytes *b, const void *data, size_t n) { test_bytes_put(b, data, n); }

static void put_sc(bytes *b, int four) {
  static const uint8_t sc[] = {0, 0, 0, 1};
  put(b, four ? sc : sc + 1, four ? 4 : 3);
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

/* Where the children of a box of `type` start (bytes after its start), or
 * 0 when it has none we know of. */
static size_t child_off(const uint8_t *type) {
  static const char *const plain[] = {"moov", "trak", "mdia", "minf", "dinf",
                                      "stbl", "mvex", "moof", "traf"};
  for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
    if (memcmp(type, plain[i], 4) == 0) return 8;
  if (memcmp(type, "stsd", 4) == 0 || memcmp(type, "dref", 4) == 0)
    return 16;  /* FullBox header + entry_count */
  if (memcmp(type, "avc1", 4) == 0) return 86;  /* VisualSampleEntry */
  return 0;
}

/* Walk p[0..len) as a sequence of boxes, recursing into containers: every
 * size must be >= its header and the boxes must tile each parent exactly.
 * Returns how many boxes were seen, or -1. */
static int walk(const uint8_t *p, size_t len) {
  int count = 0;
  size_t off = 0;
  while (off < len) {
    if (len - off < 8) return -1;
    uint32_t size = be32(p + off);
    if (size < 8 || size > len - off) return -1;
    size_t c = child_off(p + off + 4);
    if (c) {
      if (c > size) return -1;
      int k = walk(p + off + c, size - c);
      if (k < 0) return -1;
      count += k;
    }
    count++;
    off += size;
  }
  return count;
}

/* The box at slash-separated `path` ("moov/trak/tkhd"), or NULL. */
static const uint8_t *find(const uint8_t *p, size_t len, const char *path,
                           size_t *blen) {
  size_t off = 0;
  while (off + 8 <= len) {
    uint32_t size = be32(p + off);
    if (size < 8 || size > len - off) return NULL;
    if (memcmp(p + off + 4, path, 4) == 0) {
      if (path[4] == '\0') {
        *blen = size;
        return p + off;
      }
      size_t c = child_off(p + off + 4);
      if (c == 0 || c > size) return NULL;
      return find(p + off + c, size - c, path + 5, blen);
    }
    off += size;
  }
  return NULL;
}

#define CHECK_BOX(buf, path, expect)                                         \
  do {                                                                       \
    size_t n_;                                                               \
    const uint8_t *b_ = find(sl_buf_cdata(buf), sl_buf_len(buf), path, &n_); \
    CHECK_MSG(b_ != NULL, "box %s missing", path);                           \
    CHECK_EQ(n_, sizeof(expect));                                            \
    CHECK_MEM(b_, expect, sizeof(expect));                                   \
  } while (0)

static sl_buf *init_tiny(void) {
  bytes cfg = {0};
  put_sc(&cfg, 1);
  put(&cfg, SPS, sizeof(SPS));
  put_sc(&cfg, 0);
  put(&cfg, PPS, sizeof(PPS));
  int err = 1;
  sl_buf *b = sl_fmp4_init(cfg.p, cfg.n, 320, 240, 90000, &err);
  CHECK(b != NULL);
  CHECK_EQ(err, 0);
  free(cfg.p);
  return b;
}

#define MATRIX                                                            \
  0x00, 0x01, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, /* a=1.0 b c  */       \
  0, 0, 0, 0, 0x00, 0x01, 0x00, 0x00, 0, 0, 0, 0, /* d e=1.0 f */        \
  0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x00, 0x00, 0x00  /* g h w=1.0 (2.30) */

TEST(fmp4_init_boxes) {
  sl_mem_stats m0;
  sl_mem_stats_get(&m0);
  sl_buf *b = init_tiny();
  const uint8_t *p = sl_buf_cdata(b);
  size_t n = sl_buf_len(b);
  CHECK_GE(walk(p, n), 20);

  static const uint8_t ftyp[] = {
      0, 0, 0, 32, 'f', 't', 'y', 'p', /* size 32 */
      'i', 's', 'o', '5',              /* major_brand */
      0, 0, 0, 0,                      /* minor_version */
      'i', 's', 'o', '5', 'i', 's', 'o', '6', 'a', 'v', 'c', '1',
      'm', 'p', '4', '1'};             /* compatible_brands */
  CHECK_MEM(p, ftyp, sizeof(ftyp));  /* ftyp comes first */
  CHECK_BOX(b, "ftyp", ftyp);

  static const uint8_t avcc[] = {
      0, 0, 0, 48, 'a', 'v', 'c', 'C', /* 8 + 6 + 2+24 + 1 + 2+5 */
      1,                               /* configurationVersion */
      0x42,                            /* AVCProfileIndication: baseline */
      0xc0,                            /* profile_compatibility (constraint 0,1) */
      0x0d,                            /* AVCLevelIndication: 1.3 */
      0xff,                            /* 111111 + lengthSizeMinusOne = 3 */
      0xe1,                            /* 111 + numOfSequenceParameterSets 1 */
      0x00, 0x18,                      /* sequenceParameterSetLength 24 */
      0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00,
      0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
      0x01,                            /* numOfPictureParameterSets */
      0x00, 0x05,                      /* pictureParameterSetLength */
      0x68, 0xcb, 0x83, 0xcb, 0x20};   /* no extension: baseline */
  CHECK_BOX(b, "moov/trak/mdia/minf/stbl/stsd/avc1/avcC", avcc);

  static const uint8_t tkhd[] = {
      0, 0, 0, 92, 't', 'k', 'h', 'd', /* size 92 */
      0, 0, 0, 3,                      /* version 0, flags enabled|in_movie */
      0, 0, 0, 0,                      /* creation_time */
      0, 0, 0, 0,                      /* modification_time */
      0, 0, 0, 1,                      /* track_ID */
      0, 0, 0, 0,                      /* reserved */
      0, 0, 0, 0,                      /* duration */
      0, 0, 0, 0, 0, 0, 0, 0,          /* reserved[2] */
      0, 0,                            /* layer */
      0, 0,                            /* alternate_group */
      0, 0,                            /* volume (video: 0) */
      0, 0,                            /* reserved */
      MATRIX,
      0x01, 0x40, 0x00, 0x00,          /* width 320.0 (16.16) */
      0x00, 0xf0, 0x00, 0x00};         /* height 240.0 */
  CHECK_BOX(b, "moov/trak/tkhd", tkhd);

  static const uint8_t mdhd[] = {
      0, 0, 0, 32, 'm', 'd', 'h', 'd', /* size 32 */
      0, 0, 0, 0,                      /* version 0, flags 0 */
      0, 0, 0, 0,                      /* creation_time */
      0, 0, 0, 0,                      /* modification_time */
      0x00, 0x01, 0x5f, 0x90,          /* timescale 90000 */
      0, 0, 0, 0,                      /* duration */
      0x55, 0xc4,                      /* pad 0 + 'und' (21,14,4 in 5 bits) */
      0, 0};                           /* pre_defined */
  CHECK_BOX(b, "moov/trak/mdia/mdhd", mdhd);

  static const uint8_t trex[] = {
      0, 0, 0, 32, 't', 'r', 'e', 'x', /* size 32 */
      0, 0, 0, 0,                      /* version 0, flags 0 */
      0, 0, 0, 1,                      /* track_ID */
      0, 0, 0, 1,                      /* default_sample_description_index */
      0, 0, 0, 0,                      /* default_sample_duration */
      0, 0, 0, 0,                      /* default_sample_size */
      0x01, 0x01, 0x00, 0x00};         /* depends_on 1, non_sync 1 */
  CHECK_BOX(b, "moov/mvex/trex", trex);

  static const uint8_t hdlr[] = {
      0, 0, 0, 45, 'h', 'd', 'l', 'r', 0, 0, 0, 0, /* FullBox v0 */
      0, 0, 0, 0,                      /* pre_defined */
      'v', 'i', 'd', 'e',              /* handler_type */
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* reserved[3] */
      'V', 'i', 'd', 'e', 'o', 'H', 'a', 'n', 'd', 'l', 'e', 'r', 0};
  CHECK_BOX(b, "moov/trak/mdia/hdlr", hdlr);

  static const uint8_t stsz[] = {0, 0, 0, 20, 's', 't', 's', 'z', 0, 0, 0, 0,
                                 0, 0, 0, 0,   /* sample_size */
                                 0, 0, 0, 0};  /* sample_count */
  CHECK_BOX(b, "moov/trak/mdia/minf/stbl/stsz", stsz);
  static const uint8_t stco[] = {0, 0, 0, 16, 's', 't', 'c', 'o',
                                 0, 0, 0, 0, 0, 0, 0, 0};
  CHECK_BOX(b, "moov/trak/mdia/minf/stbl/stco", stco);

  /* avc1's own fields: width and height as 16-bit integers. */
  size_t an;
  const uint8_t *avc1 =
      find(p, n, "moov/trak/mdia/minf/stbl/stsd/avc1", &an);
  CHECK(avc1 != NULL);
  CHECK_EQ(an, 86 + 48);
  CHECK_EQ(avc1[14] << 8 | avc1[15], 1);      /* data_reference_index */
  CHECK_EQ(avc1[32] << 8 | avc1[33], 320);
  CHECK_EQ(avc1[34] << 8 | avc1[35], 240);
  CHECK_EQ(avc1[84] << 8 | avc1[85], 0xffff); /* pre_defined -1 */
  size_t vn;
  CHECK(find(p, n, "moov/mvhd", &vn) != NULL && vn == 108);
  CHECK(find(p, n, "moov/trak/mdia/minf/vmhd", &vn) != NULL && vn == 20);
  CHECK(find(p, n, "moov/trak/mdia/minf/dinf/dref/url ", &vn) != NULL &&
        vn == 12);
  sl_buf_unref(b);
  sl_mem_stats m1;
  sl_mem_stats_get(&m1);
  CHECK_EQ(m1.total, m0.total);
}

TEST(fmp4_fragment_boxes) {
  /* AUD, SEI, IDR slice (with an emulation prevention byte, which stays),
   * filler, and a slice followed by trailing zero bytes; 4- and 3-byte
   * start codes mixed. */
  static const uint8_t au[] = {
      0, 0, 0, 1, 0x09, 0x10,                          /* AUD: dropped */
      0, 0, 1, 0x06, 0x05, 0x01, 0xaa, 0x80,           /* SEI: kept */
      0, 0, 0, 1, 0x65, 0x88, 0x84, 0, 0, 3, 1, 0xff,  /* IDR slice */
      0, 0, 1, 0x0c, 0xff, 0xff, 0x80,                 /* filler: dropped */
      0, 0, 1, 0x67, 0x42, 0xc0, 0x0d, 0xd9,           /* SPS: dropped */
      0, 0, 0, 1, 0x41, 0x9a, 0x02, 0, 0};             /* slice, 2 zeros */
  int err = 1;
  sl_buf *b = sl_fmp4_fragment(test_guard(au, sizeof(au)), sizeof(au), 7,
                               0x123456789ull, 3600, 1, &err);
  CHECK(b != NULL);
  CHECK_EQ(err, 0);
  static const uint8_t expect[] = {
      0, 0, 0, 104, 'm', 'o', 'o', 'f',   /* moof: 8 + 16 + 80 */
      0, 0, 0, 16, 'm', 'f', 'h', 'd',    /* mfhd */
      0, 0, 0, 0,                         /* version 0, flags 0 */
      0, 0, 0, 7,                         /* sequence_number */
      0, 0, 0, 80, 't', 'r', 'a', 'f',    /* traf: 8 + 16 + 20 + 36 */
      0, 0, 0, 16, 't', 'f', 'h', 'd',    /* tfhd */
      0, 0x02, 0, 0,                      /* v0, default-base-is-moof */
      0, 0, 0, 1,                         /* track_ID */
      0, 0, 0, 20, 't', 'f', 'd', 't',    /* tfdt */
      1, 0, 0, 0,                         /* version 1: 64-bit time */
      0, 0, 0, 0x01, 0x23, 0x45, 0x67, 0x89, /* baseMediaDecodeTime */
      0, 0, 0, 36, 't', 'r', 'u', 'n',    /* trun */
      0, 0, 0x0f, 0x01,                   /* v0; offset, dur, size, flags, cto */
      0, 0, 0, 1,                         /* sample_count */
      0, 0, 0, 112,                       /* data_offset: 104 + 8 */
      0, 0, 0x0e, 0x10,                   /* sample_duration 3600 */
      0, 0, 0, 28,                        /* sample_size: 9 + 12 + 7 */
      0x02, 0, 0, 0,                      /* sync: depends on no other */
      0, 0, 0, 0,                         /* composition offset */
      0, 0, 0, 36, 'm', 'd', 'a', 't',    /* mdat: 8 + 28 */
      0, 0, 0, 5, 0x06, 0x05, 0x01, 0xaa, 0x80,
      0, 0, 0, 8, 0x65, 0x88, 0x84, 0, 0, 3, 1, 0xff,
      0, 0, 0, 3, 0x41, 0x9a, 0x02};
  CHECK_EQ(sl_buf_len(b), sizeof(expect));
  CHECK_MEM(sl_buf_cdata(b), expect, sizeof(expect));
  CHECK_EQ(walk(sl_buf_cdata(b), sl_buf_len(b)), 7);
  sl_buf_unref(b);

  /* The non-key flags, and that the bytes depend only on the arguments. */
  sl_buf *k1 = sl_fmp4_fragment(au, sizeof(au), 7, 0x123456789ull, 3600, 0,
                                NULL);
  sl_buf *k2 = sl_fmp4_fragment(au, sizeof(au), 7, 0x123456789ull, 3600, 0,
                                NULL);
  CHECK(k1 && k2 && sl_buf_len(k1) == sizeof(expect));
  CHECK_MEM(sl_buf_cdata(k1), sl_buf_cdata(k2), sizeof(expect));
  static const uint8_t nonsync[] = {0x01, 0x01, 0, 0};
  CHECK_MEM((const uint8_t *)sl_buf_cdata(k1) + 96, nonsync, 4);
  sl_buf_unref(k1);
  sl_buf_unref(k2);

  /* Nothing but AUD/SPS/PPS/filler, empty NAL units or no start code. */
  static const uint8_t none[] = {0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0, 0, 1,
                                 0x68, 0xce, 0, 0, 0, 1};
  err = 0;
  CHECK(sl_fmp4_fragment(none, sizeof(none), 1, 0, 1, 0, &err) == NULL);
  CHECK_EQ(err, SL_EINVAL);
  err = 0;
  CHECK(sl_fmp4_fragment("\x65\x88", 2, 1, 0, 1, 0, &err) == NULL);
  CHECK_EQ(err, SL_EINVAL);
  err = 0;
  CHECK(sl_fmp4_fragment(NULL, 0, 1, 0, 1, 0, &err) == NULL);
  CHECK_EQ(err, SL_EINVAL);
}

/* The avcC extension of a high-profile SPS, hand-assembled. */
static void check_ext(const uint8_t *sps, size_t n, const uint8_t ext[4]) {
  bytes cfg = {0};
  put_sc(&cfg, 1);
  put(&cfg, sps, n);
  put_sc(&cfg, 1);
  put(&cfg, PPS, sizeof(PPS));
  sl_buf *b = sl_fmp4_init(cfg.p, cfg.n, 64, 64, 1000, NULL);
  CHECK(b != NULL);
  size_t an;
  const uint8_t *a = find(sl_buf_cdata(b), sl_buf_len(b),
                          "moov/trak/mdia/minf/stbl/stsd/avc1/avcC", &an);
  CHECK(a != NULL);
  CHECK_EQ(an, 8 + 6 + 2 + n + 1 + 2 + sizeof(PPS) + 4);
  CHECK_EQ(a[9], sps[1]);  /* profile */
  CHECK_MEM(a + an - 4, ext, 4);
  sl_buf_unref(b);
  free(cfg.p);
}

TEST(fmp4_sps_variants) {
  /* High (100), 4:2:0 8-bit: sps_id ue 0 '1', chroma_format_idc ue 1 '010',
   * luma ue 0 '1', chroma ue 0 '1', then '1' and padding: 1010111 0. */
  static const uint8_t high[] = {0x67, 0x64, 0x00, 0x1f, 0xae};
  static const uint8_t high_ext[] = {0xfd,  /* 111111 + chroma_format 1 */
                                     0xf8,  /* 11111 + luma depth-8 = 0 */
                                     0xf8,  /* 11111 + chroma depth-8 = 0 */
                                     0x00}; /* numOfSequenceParameterSetExt */
  check_ext(high, sizeof(high), high_ext);
  /* High 4:4:4 (244) 10-bit: '1' sps_id 0, '00100' chroma 3, '0' separate
   * planes, '011' luma 2, '011' chroma 2, '1', pad: 10010000 11011100. */
  static const uint8_t h444[] = {0x67, 0xf4, 0x00, 0x1f, 0x90, 0xdc};
  static const uint8_t h444_ext[] = {0xff, 0xfa, 0xfa, 0x00};
  check_ext(h444, sizeof(h444), h444_ext);

  /* Emulation prevention inside the parsed bits: level 0, then 00 00 03. */
  sl__h264_sps_info info;
  static const uint8_t esc[] = {0x67, 0x64, 0x00, 0x00, 0x03, 0xae};
  CHECK_EQ(sl__h264_sps_parse(esc, sizeof(esc), &info), 0);
  CHECK_EQ(info.level_idc, 0);
  CHECK_EQ(info.chroma_format_idc, 1);
  CHECK_EQ(sl__h264_sps_parse(SPS, sizeof(SPS), &info), 0);
  CHECK_EQ(info.profile_idc, 66);
  CHECK_EQ(info.has_chroma, 0);

  /* Truncated: every prefix of the high SPS shorter than its bits. */
  int err;
  for (size_t k = 1; k < sizeof(high); k++) {
    bytes cfg = {0};
    put_sc(&cfg, 0);
    put(&cfg, high, k);
    put_sc(&cfg, 0);
    put(&cfg, PPS, sizeof(PPS));
    err = 0;
    CHECK(sl_fmp4_init(cfg.p, cfg.n, 64, 64, 1000, &err) == NULL);
    CHECK_EQ(err, SL_EINVAL);
    free(cfg.p);
  }
  /* Out-of-range chroma_format_idc (ue 4 = '00101'). */
  static const uint8_t badchroma[] = {0x67, 0x64, 0x00, 0x1f, 0x94, 0xff};
  CHECK_EQ(sl__h264_sps_parse(badchroma, sizeof(badchroma), &info),
           SL_EINVAL);

  /* Missing PPS, missing SPS, bad sizes and timescale. */
  bytes cfg = {0};
  put_sc(&cfg, 1);
  put(&cfg, SPS, sizeof(SPS));
  err = 0;
  CHECK(sl_fmp4_init(cfg.p, cfg.n, 320, 240, 90000, &err) == NULL);
  CHECK_EQ(err, SL_EINVAL);
  bytes pps = {0};
  put_sc(&pps, 1);
  put(&pps, PPS, sizeof(PPS));
  err = 0;
  CHECK(sl_fmp4_init(pps.p, pps.n, 320, 240, 90000, &err) == NULL);
  CHECK_EQ(err, SL_EINVAL);
  put(&cfg, pps.p, pps.n);
  err = 0;
  CHECK(sl_fmp4_init(cfg.p, cfg.n, 0, 240, 90000, &err) == NULL);
  CHECK_EQ(err, SL_EINVAL);
  CHECK(sl_fmp4_init(cfg.p, cfg.n, 320, 65536, 90000, &err) == NULL);
  CHECK(sl_fmp4_init(cfg.p, cfg.n, 320, 240, 0, &err) == NULL);
  CHECK(sl_fmp4_init(NULL, 0, 320, 240, 90000, &err) == NULL);

  /* Repeated identical sets are stored once; distinct ones all go in. */
  bytes twice = {0};
  put(&twice, cfg.p, cfg.n);
  put(&cfg, twice.p, twice.n);  /* SPS PPS SPS PPS */
  free(twice.p);
  static const uint8_t pps2[] = {0, 0, 1, 0x68, 0xce, 0x38, 0x80};
  put(&cfg, pps2, sizeof(pps2));
  sl_buf *b = sl_fmp4_init(test_guard(cfg.p, cfg.n), cfg.n, 320, 240, 90000,
                           &err);
  CHECK(b != NULL);
  size_t an;
  const uint8_t *a = find(sl_buf_cdata(b), sl_buf_len(b),
                          "moov/trak/mdia/minf/stbl/stsd/avc1/avcC", &an);
  CHECK(a != NULL);
  CHECK_EQ(a[13], 0xe1);                   /* one SPS */
  CHECK_EQ(a[14 + 2 + sizeof(SPS)], 2);    /* two PPS */
  CHECK_EQ(an, 48 + 2 + 4);
  CHECK_GE(walk(sl_buf_cdata(b), sl_buf_len(b)), 20);
  sl_buf_unref(b);

  /* 32 distinct SPS do not fit avcC's 5-bit count. */
  bytes many = {0};
  for (int i = 0; i < 32; i++) {
    uint8_t s[] = {0x67, 0x42, 0xc0, 0x0d, 0x80 | (uint8_t)i, 0xff};
    put_sc(&many, 0);
    put(&many, s, sizeof(s));
  }
  put(&many, pps.p, pps.n);
  err = 0;
  CHECK(sl_fmp4_init(many.p, many.n, 320, 240, 90000, &err) == NULL);
  CHECK_EQ(err, SL_EINVAL);
  free(many.p);
  free(cfg.p);
  free(pps.p);
}

/* xorshift64*: deterministic, so a failure replays. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

TEST_T(fmp4_random_access_units, 120) {
  sl_mem_stats m0;
  sl_mem_stats_get(&m0);
  for (int iter = 0; iter < 400; iter++) {
    /* An access unit of 0..40 NAL units of random types and sizes (one in
     * 400 up to 3 MiB), payloads free of start codes: the expected sample is
     * each kept unit behind its 4-byte length. */
    bytes au = {0}, want = {0};
    if (rnd() % 4 == 0) put(&au, "\x00\x00", rnd() % 3);  /* leading zeros */
    unsigned nnal = rnd() % 41;
    for (unsigned i = 0; i < nnal; i++) {
      size_t len = 1 + rnd() % 300;
      if (rnd() % 400 == 0) len = 1 + rnd() % (3u << 20);
      uint8_t *nal = malloc(len);
      CHECK(nal != NULL);
      nal[0] = (uint8_t)(rnd() % 32 | 0x60);
      size_t zeros = 0;
      for (size_t k = 1; k < len; k++) {
        uint8_t v = (uint8_t)rnd();
        if (rnd() % 8 == 0) v = 0;
        if (zeros >= 2 && v <= 3) v = 3;  /* emulation prevention */
        zeros = v == 0 ? zeros + 1 : 0;
        nal[k] = v;
      }
      if (nal[len - 1] == 0) nal[len - 1] = 0x80;
      put_sc(&au, (int)(rnd() % 2));
      put(&au, nal, len);
      if (rnd() % 5 == 0) put(&au, "\0\0\0", 1 + rnd() % 3);  /* trailing */
      unsigned t = nal[0] & 0x1f;
      if (t != 7 && t != 8 && t != 9 && t != 12) {
        uint8_t l[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16),
                        (uint8_t)(len >> 8), (uint8_t)len};
        put(&want, l, 4);
        put(&want, nal, len);
      }
      free(nal);
    }
    if (rnd() % 6 == 0) put_sc(&au, 0);  /* a start code with no unit */
    int err = 1;
    uint64_t dts = (uint64_t)rnd() << 32 | rnd();
    const void *in = au.n < (1u << 16) ? test_guard(au.p, au.n) : au.p;
    sl_buf *b = sl_fmp4_fragment(in, au.n, (uint32_t)iter, dts, rnd(),
                                 (int)(rnd() % 2), &err);
    if (want.n == 0) {
      CHECK(b == NULL);
      CHECK_EQ(err, SL_EINVAL);
    } else {
      CHECK(b != NULL);
      CHECK_EQ(err, 0);
      const uint8_t *p = sl_buf_cdata(b);
      CHECK_EQ(sl_buf_len(b), 112 + want.n);
      CHECK_EQ(walk(p, sl_buf_len(b)), 7);
      CHECK_EQ(be32(p + 92), want.n);             /* trun sample_size */
      CHECK_EQ(be32(p + 104), 8 + want.n);        /* mdat size */
      CHECK_EQ(be32(p + 84), 112);                /* data_offset */
      CHECK_EQ(be32(p + 60), dts >> 32);          /* tfdt */
      CHECK_MEM(p + 112, want.p, want.n);
      sl_buf_unref(b);
    }
    free(au.p);
    free(want.p);
  }

  /* Random bytes biased towards 0 and 1 (start-code soup): no crash, no
   * read past the end, and any output nests exactly. */
  for (int iter = 0; iter < 2000; iter++) {
    uint8_t junk[512];
    size_t n = rnd() % sizeof(junk);
    for (size_t k = 0; k < n; k++) {
      uint32_t r = rnd();
      junk[k] = r % 3 == 0 ? 0 : r % 3 == 1 ? 1 : (uint8_t)(r >> 8);
    }
    const void *in = test_guard(junk, n);
    sl_buf *f = sl_fmp4_fragment(in, n, 1, 0, 1, 1, NULL);
    if (f) {
      CHECK_EQ(walk(sl_buf_cdata(f), sl_buf_len(f)), 7);
      sl_buf_unref(f);
    }
    sl_buf *i = sl_fmp4_init(in, n, 16, 16, 90000, NULL);
    if (i) {
      CHECK_GE(walk(sl_buf_cdata(i), sl_buf_len(i)), 20);
      sl_buf_unref(i);
    }
  }

  /* Mutated parameter sets: every output still nests. */
  for (int iter = 0; iter < 2000; iter++) {
    uint8_t cfg[64];
    size_t n = 0;
    memcpy(cfg, "\0\0\0\1", 4);
    n = 4;
    memcpy(cfg + n, SPS, sizeof(SPS));
    n += sizeof(SPS);
    memcpy(cfg + n, "\0\0\1", 3);
    n += 3;
    memcpy(cfg + n, PPS, sizeof(PPS));
    n += sizeof(PPS);
    for (int k = rnd() % 4; k >= 0; k--) cfg[rnd() % n] = (uint8_t)rnd();
    n -= rnd() % 8;
    sl_buf *i = sl_fmp4_init(test_guard(cfg, n), n, 320, 240, 90000, NULL);
    if (i) {
      CHECK_GE(walk(sl_buf_cdata(i), sl_buf_len(i)), 20);
      sl_buf_unref(i);
    }
  }
  sl_mem_stats m1;
  sl_mem_stats_get(&m1);
  CHECK_EQ(m1.total, m0.total);
  CHECK_EQ(m1.nbufs, m0.nbufs);
}

/* An allocator that refuses once `oom_armed` is set. Each test runs in its
 * own child, so installing it here touches no other test. */
static int oom_armed;
static void *oom_malloc(size_t n) { return oom_armed ? NULL : malloc(n); }

TEST(fmp4_enomem) {
  CHECK_EQ(sl_set_allocator(oom_malloc, NULL, NULL), 0);
  bytes cfg = {0};
  put_sc(&cfg, 1);
  put(&cfg, SPS, sizeof(SPS));
  put_sc(&cfg, 1);
  put(&cfg, PPS, sizeof(PPS));
  static const uint8_t au[] = {0, 0, 1, 0x65, 0x88, 0x84};
  oom_armed = 1;
  int err = 0;
  CHECK(sl_fmp4_init(cfg.p, cfg.n, 320, 240, 90000, &err) == NULL);
  CHECK_EQ(err, SL_ENOMEM);
  err = 0;
  CHECK(sl_fmp4_fragment(au, sizeof(au), 1, 0, 1, 1, &err) == NULL);
  CHECK_EQ(err, SL_ENOMEM);
  oom_armed = 0;
  sl_buf *b = sl_fmp4_fragment(au, sizeof(au), 1, 0, 1, 1, &err);
  CHECK(b != NULL);
  CHECK_EQ(sl_buf_len(b), 112 + 4 + 3);
  sl_buf_unref(b);
  sl_mem_stats m;
  sl_mem_stats_get(&m);
  CHECK_EQ(m.total, 0);
  free(cfg.p);
}

TEST(fmp4_boxw_bounded) {
  /* A writer never passes its capacity: it flags instead. */
  uint8_t buf[12];
  memset(buf, 0xee, sizeof(buf));
  sl__boxw w;
  sl__boxw_init(&w, buf, 10);
  size_t b = sl__boxw_open_full(&w, "test", 1, 0x020304);
  sl__boxw_u32(&w, 0xdeadbeef);  /* 16 > 10 */
  sl__boxw_close(&w, b);
  CHECK(w.over);
  CHECK_EQ(buf[10], 0xee);
  CHECK_EQ(buf[11], 0xee);
  sl__boxw_init(&w, NULL, 0);  /* counting */
  b = sl__boxw_open(&w, "free");
  sl__boxw_zeros(&w, 100);
  sl__boxw_close(&w, b);
  CHECK(!w.over);
  CHECK_EQ(w.len, 108);
}

/* ------------------------------------------------------------------ */
/* Real encoder output through ffprobe / ffmpeg                        */
/* ------------------------------------------------------------------ */

static int have_ffmpeg(void) {
  return test_sh("ffmpeg -version >/dev/null 2>&1 && "
                 "ffprobe -version >/dev/null 2>&1") == 0;
}

static bytes slurp(const char *path) {
  bytes b = {0};
  FILE *f = fopen(path, "rb");
  CHECK_MSG(f != NULL, "cannot open %s", path);
  uint8_t tmp[65536];
  size_t k;
  while ((k = fread(tmp, 1, sizeof(tmp), f)) > 0) put(&b, tmp, k);
  fclose(f);
  return b;
}

enum { MAX_AUS = 256 };

typedef struct clip {
  bytes data;
  size_t start[MAX_AUS + 1];  /* AU i is data[start[i] .. start[i+1]) */
  int key[MAX_AUS];
  int n;
} clip;

/* Split a stream encoded with aud=1 at its access unit delimiters. The
 * zero byte of a 4-byte start code belongs to the unit that follows. */
static void split(clip *c) {
  const uint8_t *p = c->data.p;
  size_t n = c->data.n;
  c->n = 0;
  for (size_t i = 0; i + 3 < n; i++) {
    if (p[i] != 0 || p[i + 1] != 0 || p[i + 2] != 1) continue;
    unsigned t = p[i + 3] & 0x1f;
    if (t == 9) {
      CHECK(c->n < MAX_AUS);
      c->start[c->n++] = i > 0 && p[i - 1] == 0 ? i - 1 : i;
      c->key[c->n - 1] = 0;
    } else if (t == 5 && c->n > 0) {
      c->key[c->n - 1] = 1;
    }
  }
  c->start[c->n] = n;
}

/* Encode `frames` frames of testsrc at w x h with extra x264 `opts` into
 * dir/x.h264 and split it. */
static void encode(clip *c, const char *dir, int w, int h, int frames,
                   const char *opts) {
  CHECK_EQ(test_sh("ffmpeg -nostdin -v error -y -f lavfi -i "
                   "testsrc=size=%dx%d:rate=25 -frames:v %d -c:v libx264 "
                   "-g 25 -bf 0 -x264-params aud=1 %s -f h264 %s/x.h264",
                   w, h, frames, opts, dir),
           0);
  char path[512];
  snprintf(path, sizeof(path), "%s/x.h264", dir);
  c->data = slurp(path);
  split(c);
  CHECK_EQ(c->n, frames);
  CHECK(c->key[0]);
}

/* Mux AUs [from, to) of `c`, leaving out [skip_from, skip_to), into
 * dir/out.mp4; dts is the frame index times 3600 (25 fps at 90 kHz), so a
 * late start and a skipped GOP show up as they would live. Returns the
 * number of fragments written. */
static int mux(const clip *c, const char *dir, int w, int h, int from, int to,
               int skip_from, int skip_to) {
  char path[512];
  snprintf(path, sizeof(path), "%s/out.mp4", dir);
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  const uint8_t *p = c->data.p;
  int err = 1;
  sl_buf *init = sl_fmp4_init(p + c->start[from],
                              c->start[from + 1] - c->start[from], w, h,
                              90000, &err);
  CHECK_MSG(init != NULL, "init: %s", sl_err_name(err));
  CHECK_GE(walk(sl_buf_cdata(init), sl_buf_len(init)), 20);
  CHECK_EQ(fwrite(sl_buf_cdata(init), 1, sl_buf_len(init), f),
           sl_buf_len(init));
  sl_buf_unref(init);
  uint32_t seq = 1;
  for (int i = from; i < to; i++) {
    if (i >= skip_from && i < skip_to) continue;
    sl_buf *fr = sl_fmp4_fragment(p + c->start[i], c->start[i + 1] -
                                  c->start[i], seq++, (uint64_t)i * 3600,
                                  3600, c->key[i], &err);
    CHECK_MSG(fr != NULL, "fragment %d: %s", i, sl_err_name(err));
    CHECK_EQ(walk(sl_buf_cdata(fr), sl_buf_len(fr)), 7);
    CHECK_EQ(fwrite(sl_buf_cdata(fr), 1, sl_buf_len(fr), f), sl_buf_len(fr));
    sl_buf_unref(fr);
  }
  CHECK_EQ(fclose(f), 0);
  return (int)(seq - 1);
}

static size_t file_size(const char *dir, const char *name) {
  char path[512];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (f == NULL) return (size_t)-1;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fclose(f);
  return (size_t)n;
}

/* `needle` occurs in dir/name. */
static int file_has(const char *dir, const char *name, const char *needle) {
  char path[512];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  bytes b = slurp(path);
  put(&b, "", 1);
  int found = strstr((const char *)b.p, needle) != NULL;
  free(b.p);
  return found;
}

/* ffprobe and ffmpeg read dir/out.mp4 silently and decode `frames` frames
 * of `codec`, w x h; the first packet's dts is `first_dts`. */
static void probe(const char *dir, int w, int h, int frames,
                  long long first_dts, const char *profile) {
  CHECK_EQ(test_sh("cd %s && ffprobe -v warning -count_frames "
                   "-select_streams v:0 -show_entries "
                   "stream=codec_name,width,height,profile,nb_read_frames "
                   "-of default=nw=1 out.mp4 >probe.txt 2>probe.err",
                   dir),
           0);
  CHECK_MSG(file_size(dir, "probe.err") == 0, "ffprobe warned (see %s)",
            dir);
  char want[128];
  CHECK(file_has(dir, "probe.txt", "codec_name=h264\n"));
  snprintf(want, sizeof(want), "width=%d\nheight=%d\n", w, h);
  CHECK_MSG(file_has(dir, "probe.txt", want), "size in %s/probe.txt", dir);
  snprintf(want, sizeof(want), "nb_read_frames=%d\n", frames);
  CHECK_MSG(file_has(dir, "probe.txt", want), "frames in %s/probe.txt", dir);
  snprintf(want, sizeof(want), "profile=%s\n", profile);
  CHECK_MSG(file_has(dir, "probe.txt", want), "profile in %s/probe.txt", dir);
  CHECK_EQ(test_sh("cd %s && ffprobe -v error -select_streams v:0 "
                   "-show_entries packet=dts -of csv=p=0 -read_intervals "
                   "%%+#1 out.mp4 >dts.txt 2>&1",
                   dir),
           0);
  snprintf(want, sizeof(want), "%lld\n", first_dts);
  CHECK_MSG(file_has(dir, "dts.txt", want), "first dts in %s/dts.txt", dir);
  CHECK_EQ(test_sh("cd %s && ffmpeg -nostdin -v error -xerror -i out.mp4 "
                   "-f null - >dec.txt 2>&1",
                   dir),
           0);
  CHECK_MSG(file_size(dir, "dec.txt") == 0, "ffmpeg complained (see %s)",
            dir);
}

static void tmpdir(char *dir, size_t n) {
  snprintf(dir, n, "/tmp/sl-fmp4-XXXXXX");
  CHECK(mkdtemp(dir) != NULL);
}

TEST_T(fmp4_ffprobe_baseline, 120) {
  if (!have_ffmpeg()) {
    CHECK_MSG(!test_in_ci(), "ffmpeg/ffprobe missing under CI");
    TEST_SKIP("ffmpeg/ffprobe not installed");
  }
  char dir[64];
  tmpdir(dir, sizeof(dir));
  clip c = {0};
  encode(&c, dir, 320, 240, 75,
         "-pix_fmt yuv420p -profile:v baseline");
  /* From the start. */
  CHECK_EQ(mux(&c, dir, 320, 240, 0, 50, -1, -1), 50);
  probe(dir, 320, 240, 50, 0, "Constrained Baseline");
  /* Joining at the second keyframe: nonzero first dts. */
  CHECK(c.key[25]);
  CHECK_EQ(mux(&c, dir, 320, 240, 25, 75, -1, -1), 50);
  probe(dir, 320, 240, 50, 25 * 3600, "Constrained Baseline");
  /* The second GOP skipped: a dts gap, still no complaint. */
  CHECK(c.key[50]);
  CHECK_EQ(mux(&c, dir, 320, 240, 0, 75, 25, 50), 50);
  probe(dir, 320, 240, 50, 0, "Constrained Baseline");
  CHECK_EQ(test_sh("cd %s && ffprobe -v error -select_streams v:0 "
                   "-show_entries packet=dts -of csv=p=0 out.mp4 "
                   ">dts.txt 2>&1",
                   dir),
           0);
  CHECK(file_has(dir, "dts.txt", "\n86400\n180000\n"));  /* 24 -> 50 */
  free(c.data.p);
  test_sh("rm -rf %s", dir);
}

TEST_T(fmp4_ffprobe_high, 180) {
  if (!have_ffmpeg()) {
    CHECK_MSG(!test_in_ci(), "ffmpeg/ffprobe missing under CI");
    TEST_SKIP("ffmpeg/ffprobe not installed");
  }
  char dir[64];
  tmpdir(dir, sizeof(dir));
  clip c = {0};
  encode(&c, dir, 1280, 720, 50,
         "-pix_fmt yuv420p -profile:v high -preset veryfast");
  CHECK_EQ(mux(&c, dir, 1280, 720, 0, 50, -1, -1), 50);
  probe(dir, 1280, 720, 50, 0, "High");
  free(c.data.p);

  /* High 4:4:4 Predictive, 10-bit: the avcC extension must say so. */
  clip d = {0};
  encode(&d, dir, 320, 240, 30,
         "-pix_fmt yuv444p10le -profile:v high444");
  CHECK_EQ(mux(&d, dir, 320, 240, 0, 30, -1, -1), 30);
  probe(dir, 320, 240, 30, 0, "High 4:4:4 Predictive");
  sl_buf *init = sl_fmp4_init(d.data.p + d.start[0], d.start[1] - d.start[0],
                              320, 240, 90000, NULL);
  CHECK(init != NULL);
  size_t an;
  const uint8_t *a = find(sl_buf_cdata(init), sl_buf_len(init),
                          "moov/trak/mdia/minf/stbl/stsd/avc1/avcC", &an);
  CHECK(a != NULL);
  CHECK_EQ(a[9], 244);
  static const uint8_t ext[] = {0xff, 0xfa, 0xfa, 0x00};  /* 4:4:4, 10, 10 */
  CHECK_MEM(a + an - 4, ext, 4);
  sl_buf_unref(init);
  CHECK_EQ(test_sh("cd %s && ffprobe -v error -show_entries stream=pix_fmt "
                   "-of default=nw=1 out.mp4 >fmt.txt 2>&1",
                   dir),
           0);
  CHECK(file_has(dir, "fmt.txt", "pix_fmt=yuv444p10le"));
  free(d.data.p);
  test_sh("rm -rf %s", dir);
}
