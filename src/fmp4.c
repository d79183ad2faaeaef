/*
 * Fragmented MP4 for H.264: an init segment (ftyp + moov) built from the
 * SPS/PPS, and one self-contained moof + mdat per access unit.
 *
 * Layouts follow ISO/IEC 14496-12 (box syntax, section numbers below) and
 * ISO/IEC 14496-15 5.3.3 (AVCDecoderConfigurationRecord). docs/fmp4.md
 * draws the box tree with its sizes.
 *
 * Every output is written twice by the same function: once by a counting
 * writer that yields its exact size, once into an sl_buf of that size. The
 * writer checks every byte against the capacity, so a mistake in the size
 * arithmetic shows up as an error, never as an overflow.
 */
#include "fmp4.h"
#include "h264.h"

#include <string.h>

#include "sluice.h"

/* ------------------------------------------------------------------ */
/* Bounded box writer                                                  */
/* ------------------------------------------------------------------ */

void sl__boxw_init(sl__boxw *w, void *p, size_t cap) {
  w->p = p;
  w->cap = p ? cap : 0;
  w->len = 0;
  w->over = 0;
}

/* Reserve `n` bytes at the cursor: a pointer to them, or NULL when counting
 * or when they do not fit (then `over` is set and nothing is written). */
static uint8_t *reserve(sl__boxw *w, size_t n) {
  uint8_t *at = NULL;
  if (w->p != NULL) {
    if (!w->over && n <= w->cap - w->len)
      at = w->p + w->len;
    else
      w->over = 1;
  }
  if (n > SIZE_MAX - w->len) {
    w->over = 1;
    return NULL;
  }
  w->len += n;
  return at;
}

void sl__boxw_u8(sl__boxw *w, unsigned v) {
  uint8_t *d = reserve(w, 1);
  if (d) d[0] = (uint8_t)v;
}

void sl__boxw_u16(sl__boxw *w, unsigned v) {
  uint8_t *d = reserve(w, 2);
  if (d) {
    d[0] = (uint8_t)(v >> 8);
    d[1] = (uint8_t)v;
  }
}

static void put32(uint8_t *d, uint32_t v) {
  d[0] = (uint8_t)(v >> 24);
  d[1] = (uint8_t)(v >> 16);
  d[2] = (uint8_t)(v >> 8);
  d[3] = (uint8_t)v;
}

void sl__boxw_u32(sl__boxw *w, uint32_t v) {
  uint8_t *d = reserve(w, 4);
  if (d) put32(d, v);
}

void sl__boxw_u64(sl__boxw *w, uint64_t v) {
  sl__boxw_u32(w, (uint32_t)(v >> 32));
  sl__boxw_u32(w, (uint32_t)v);
}

void sl__boxw_bytes(sl__boxw *w, const void *src, size_t n) {
  uint8_t *d = reserve(w, n);
  if (d && n) memcpy(d, src, n);
}

void sl__boxw_zeros(sl__boxw *w, size_t n) {
  uint8_t *d = reserve(w, n);
  if (d && n) memset(d, 0, n);
}

size_t sl__boxw_open(sl__boxw *w, const char type[4]) {
  size_t off = w->len;
  sl__boxw_u32(w, 0);
  sl__boxw_bytes(w, type, 4);
  return off;
}

size_t sl__boxw_open_full(sl__boxw *w, const char type[4], unsigned version,
                          uint32_t flags) {
  size_t off = sl__boxw_open(w, type);
  sl__boxw_u32(w, (uint32_t)version << 24 | (flags & 0xffffffu));
  return off;
}

void sl__boxw_close(sl__boxw *w, size_t off) {
  size_t size = w->len - off;
  /* 32-bit sizes only: nothing here needs the 64-bit largesize form. */
  if (size > UINT32_MAX) w->over = 1;
  if (w->p != NULL && !w->over && off + 4 <= w->cap)
    put32(w->p + off, (uint32_t)size);
}

/* ------------------------------------------------------------------ */
/* H.264 bitstream helpers                                             */
/* ------------------------------------------------------------------ */

/* A bit reader over an RBSP (emulation prevention already removed). */
typedef struct bits {
  const uint8_t *p;
  size_t nbits, pos;
  int bad;  /* read past the end */
} bits;

static unsigned read_bit(bits *b) {
  if (b->pos >= b->nbits) {
    b->bad = 1;
    return 0;
  }
  unsigned v = (b->p[b->pos >> 3] >> (7 - (b->pos & 7))) & 1u;
  b->pos++;
  return v;
}

static uint32_t read_bits(bits *b, int n) {
  uint32_t v = 0;
  while (n-- > 0) v = v << 1 | read_bit(b);
  return v;
}

/* ue(v), H.264 9.1. More than 31 leading zeros is rejected (nothing read
 * here can be that large), which bounds the bits one value consumes to 63
 * and keeps the result within 32 bits. */
static uint32_t read_ue(bits *b) {
  int zeros = 0;
  while (!read_bit(b)) {
    if (b->bad || ++zeros > 31) {
      b->bad = 1;
      return 0;
    }
  }
  return (uint32_t)((1u << zeros) - 1u) + read_bits(b, zeros);
}

int sl__h264_sps_parse(const uint8_t *nal, size_t n, sl__h264_sps_info *out) {
  /* Everything needed sits in the first bytes: 3 fixed bytes and at most
   * four ue(v) of <= 63 bits, so 48 RBSP bytes are plenty. Unescape only
   * those (H.264 7.4.1: drop the 0x03 of every 00 00 03). */
  uint8_t rbsp[48];
  size_t r = 0, zeros = 0;
  if (n < 4 || (nal[0] & 0x1f) != 7) return SL_EINVAL;
  for (size_t i = 1; i < n && r < sizeof(rbsp); i++) {
    if (zeros >= 2 && nal[i] == 3) {
      zeros = 0;
      continue;
    }
    zeros = nal[i] == 0 ? zeros + 1 : 0;
    rbsp[r++] = nal[i];
  }
  bits b = {rbsp, r * 8, 0, 0};
  memset(out, 0, sizeof(*out));
  out->profile_idc = read_bits(&b, 8);
  out->constraints = read_bits(&b, 8);
  out->level_idc = read_bits(&b, 8);
  uint32_t sps_id = read_ue(&b);
  out->chroma_format_idc = 1;  /* 4:2:0 when the SPS does not say */
  if (sl__h264_profile_has_chroma((int)out->profile_idc)) {
    out->has_chroma = 1;
    out->chroma_format_idc = read_ue(&b);
    if (out->chroma_format_idc == 3) (void)read_bit(&b);  /* separate planes */
    out->bit_depth_luma_minus8 = read_ue(&b);
    out->bit_depth_chroma_minus8 = read_ue(&b);
  }
  /* Ranges from H.264 7.4.2.1.1. */
  if (b.bad || sps_id > 31 || out->chroma_format_idc > 3 ||
      out->bit_depth_luma_minus8 > 6 || out->bit_depth_chroma_minus8 > 6)
    return SL_EINVAL;
  return 0;
}

/* NAL unit types that stay out of a sample: access unit delimiter, SPS,
 * PPS (they are in avcC) and filler data. */
static int nal_dropped(unsigned type) {
  return type == 9 || type == 7 || type == 8 || type == 12;
}

/* ------------------------------------------------------------------ */
/* Init segment                                                        */
/* ------------------------------------------------------------------ */

enum { MAX_SPS = 31, MAX_PPS = 255 };  /* avcC's 5- and 8-bit counts */

typedef struct pset {
  const uint8_t *p;
  size_t n;
} pset;

typedef struct init_args {
  pset sps[MAX_SPS], pps[MAX_PPS];
  unsigned nsps, npps;
  sl__h264_sps_info info;  /* of the first SPS */
  unsigned compat, level;  /* across every SPS */
  unsigned width, height;
  uint32_t timescale;
} init_args;

/* The unity transform of 14496-12 8.2.2 (16.16 and 2.30 fixed point). */
static void write_matrix(sl__boxw *w) {
  static const uint32_t m[9] = {0x00010000, 0, 0, 0, 0x00010000, 0,
                                0,          0, 0x40000000};
  for (int i = 0; i < 9; i++) sl__boxw_u32(w, m[i]);
}

/* 14496-15 5.3.3.1.2 AVCDecoderConfigurationRecord. */
static void write_avcc(sl__boxw *w, const init_args *a) {
  size_t box = sl__boxw_open(w, "avcC");
  sl__boxw_u8(w, 1);  /* configurationVersion */
  sl__boxw_u8(w, a->info.profile_idc);
  sl__boxw_u8(w, a->compat);
  sl__boxw_u8(w, a->level);
  sl__boxw_u8(w, 0xfc | 3);  /* reserved 111111, lengthSizeMinusOne = 3 */
  sl__boxw_u8(w, 0xe0 | a->nsps);
  for (unsigned i = 0; i < a->nsps; i++) {
    sl__boxw_u16(w, (unsigned)a->sps[i].n);
    sl__boxw_bytes(w, a->sps[i].p, a->sps[i].n);
  }
  sl__boxw_u8(w, a->npps);
  for (unsigned i = 0; i < a->npps; i++) {
    sl__boxw_u16(w, (unsigned)a->pps[i].n);
    sl__boxw_bytes(w, a->pps[i].p, a->pps[i].n);
  }
  /* The spec lists 100/110/122/144 for these fields; every profile whose
   * SPS has them gets them, so 4:4:4 (244) and the SVC/MVC high profiles
   * describe their chroma too. Readers that do not expect them ignore the
   * trailing bytes of avcC. */
  if (a->info.has_chroma) {
    sl__boxw_u8(w, 0xfc | a->info.chroma_format_idc);
    sl__boxw_u8(w, 0xf8 | a->info.bit_depth_luma_minus8);
    sl__boxw_u8(w, 0xf8 | a->info.bit_depth_chroma_minus8);
    sl__boxw_u8(w, 0);  /* numOfSequenceParameterSetExt */
  }
  sl__boxw_close(w, box);
}

/* 14496-12 8.5.2 VisualSampleEntry 'avc1' holding the avcC. */
static void write_avc1(sl__boxw *w, const init_args *a) {
  size_t box = sl__boxw_open(w, "avc1");
  sl__boxw_zeros(w, 6);        /* SampleEntry reserved */
  sl__boxw_u16(w, 1);          /* data_reference_index */
  sl__boxw_zeros(w, 16);       /* pre_defined, reserved, pre_defined[3] */
  sl__boxw_u16(w, a->width);
  sl__boxw_u16(w, a->height);
  sl__boxw_u32(w, 0x00480000); /* horizresolution 72 dpi */
  sl__boxw_u32(w, 0x00480000); /* vertresolution */
  sl__boxw_u32(w, 0);          /* reserved */
  sl__boxw_u16(w, 1);          /* frame_count */
  sl__boxw_zeros(w, 32);       /* compressorname: empty Pascal string */
  sl__boxw_u16(w, 0x0018);     /* depth: colour, no alpha */
  sl__boxw_u16(w, 0xffff);     /* pre_defined = -1 */
  write_avcc(w, a);
  sl__boxw_close(w, box);
}

static void write_stbl(sl__boxw *w, const init_args *a) {
  size_t stbl = sl__boxw_open(w, "stbl");
  size_t b = sl__boxw_open_full(w, "stsd", 0, 0);
  sl__boxw_u32(w, 1);  /* entry_count */
  write_avc1(w, a);
  sl__boxw_close(w, b);
  /* Empty sample tables: every sample lives in a fragment. */
  static const char *const empty[] = {"stts", "stsc", "stco"};
  for (int i = 0; i < 3; i++) {
    b = sl__boxw_open_full(w, empty[i], 0, 0);
    sl__boxw_u32(w, 0);  /* entry_count */
    sl__boxw_close(w, b);
  }
  b = sl__boxw_open_full(w, "stsz", 0, 0);
  sl__boxw_u32(w, 0);  /* sample_size */
  sl__boxw_u32(w, 0);  /* sample_count */
  sl__boxw_close(w, b);
  sl__boxw_close(w, stbl);
}

/* Sample flags (14496-12 8.8.3.1): is_leading 0, depends_on, is_depended_
 * on 0, redundancy 0, padding 0, non_sync, degradation priority 0. */
#define FLAGS_SYNC 0x02000000u     /* depends on no other sample */
#define FLAGS_NONSYNC 0x01010000u  /* depends on others, not a sync sample */

static void write_init(sl__boxw *w, const init_args *a) {
  size_t b = sl__boxw_open(w, "ftyp");  /* 4.3 */
  sl__boxw_bytes(w, "iso5", 4);         /* major_brand */
  sl__boxw_u32(w, 0);                   /* minor_version */
  sl__boxw_bytes(w, "iso5iso6avc1mp41", 16);
  sl__boxw_close(w, b);

  size_t moov = sl__boxw_open(w, "moov");
  b = sl__boxw_open_full(w, "mvhd", 0, 0);  /* 8.2.2 */
  sl__boxw_u32(w, 0);             /* creation_time */
  sl__boxw_u32(w, 0);             /* modification_time */
  sl__boxw_u32(w, a->timescale);
  sl__boxw_u32(w, 0);             /* duration: unknown, live */
  sl__boxw_u32(w, 0x00010000);    /* rate 1.0 */
  sl__boxw_u16(w, 0x0100);        /* volume 1.0 */
  sl__boxw_zeros(w, 10);          /* reserved */
  write_matrix(w);
  sl__boxw_zeros(w, 24);          /* pre_defined */
  sl__boxw_u32(w, 2);             /* next_track_ID */
  sl__boxw_close(w, b);

  size_t trak = sl__boxw_open(w, "trak");
  b = sl__boxw_open_full(w, "tkhd", 0, 3);  /* 8.3.2: enabled, in movie */
  sl__boxw_u32(w, 0);             /* creation_time */
  sl__boxw_u32(w, 0);             /* modification_time */
  sl__boxw_u32(w, 1);             /* track_ID */
  sl__boxw_u32(w, 0);             /* reserved */
  sl__boxw_u32(w, 0);             /* duration */
  sl__boxw_zeros(w, 8);           /* reserved */
  sl__boxw_u16(w, 0);             /* layer */
  sl__boxw_u16(w, 0);             /* alternate_group */
  sl__boxw_u16(w, 0);             /* volume: 0 for video */
  sl__boxw_u16(w, 0);             /* reserved */
  write_matrix(w);
  sl__boxw_u32(w, (uint32_t)a->width << 16);   /* 16.16 */
  sl__boxw_u32(w, (uint32_t)a->height << 16);
  sl__boxw_close(w, b);

  size_t mdia = sl__boxw_open(w, "mdia");
  b = sl__boxw_open_full(w, "mdhd", 0, 0);  /* 8.4.2 */
  sl__boxw_u32(w, 0);             /* creation_time */
  sl__boxw_u32(w, 0);             /* modification_time */
  sl__boxw_u32(w, a->timescale);
  sl__boxw_u32(w, 0);             /* duration */
  sl__boxw_u16(w, 0x55c4);        /* language "und", 3 x 5 bits */
  sl__boxw_u16(w, 0);             /* pre_defined */
  sl__boxw_close(w, b);
  b = sl__boxw_open_full(w, "hdlr", 0, 0);  /* 8.4.3 */
  sl__boxw_u32(w, 0);             /* pre_defined */
  sl__boxw_bytes(w, "vide", 4);   /* handler_type */
  sl__boxw_zeros(w, 12);          /* reserved */
  sl__boxw_bytes(w, "VideoHandler", 13);  /* name, NUL included */
  sl__boxw_close(w, b);

  size_t minf = sl__boxw_open(w, "minf");
  b = sl__boxw_open_full(w, "vmhd", 0, 1);  /* 12.1.2: flags must be 1 */
  sl__boxw_u16(w, 0);             /* graphicsmode copy */
  sl__boxw_zeros(w, 6);           /* opcolor */
  sl__boxw_close(w, b);
  size_t dinf = sl__boxw_open(w, "dinf");   /* 8.7.1 */
  size_t dref = sl__boxw_open_full(w, "dref", 0, 0);
  sl__boxw_u32(w, 1);             /* entry_count */
  b = sl__boxw_open_full(w, "url ", 0, 1);  /* media in this file */
  sl__boxw_close(w, b);
  sl__boxw_close(w, dref);
  sl__boxw_close(w, dinf);
  write_stbl(w, a);
  sl__boxw_close(w, minf);
  sl__boxw_close(w, mdia);
  sl__boxw_close(w, trak);

  size_t mvex = sl__boxw_open(w, "mvex");   /* 8.8.1 */
  b = sl__boxw_open_full(w, "trex", 0, 0);  /* 8.8.3 */
  sl__boxw_u32(w, 1);             /* track_ID */
  sl__boxw_u32(w, 1);             /* default_sample_description_index */
  sl__boxw_u32(w, 0);             /* default_sample_duration */
  sl__boxw_u32(w, 0);             /* default_sample_size */
  sl__boxw_u32(w, FLAGS_NONSYNC); /* default_sample_flags */
  sl__boxw_close(w, b);
  sl__boxw_close(w, mvex);
  sl__boxw_close(w, moov);
}

static int same(const pset *s, unsigned n, const uint8_t *p, size_t len) {
  for (unsigned i = 0; i < n; i++)
    if (s[i].n == len && memcmp(s[i].p, p, len) == 0) return 1;
  return 0;
}

/* Collect the parameter sets of `config` into `a`. */
static int collect(init_args *a, const uint8_t *p, size_t len) {
  size_t pos = 0, n;
  const uint8_t *nal;
  a->nsps = a->npps = 0;
  while (sl__h264_next_nal(p, len, &pos, &nal, &n)) {
    if (n == 0) continue;
    unsigned type = nal[0] & 0x1f;
    if (type != 7 && type != 8) continue;
    if (n > 0xffff) return SL_EINVAL;  /* avcC lengths are 16 bits */
    if (type == 7) {
      /* A repeated identical set (a config cut from a stream that repeats
       * them at each keyframe) is stored once. */
      if (same(a->sps, a->nsps, nal, n)) continue;
      sl__h264_sps_info info;
      int rc = sl__h264_sps_parse(nal, n, &info);
      if (rc != 0) return rc;
      if (a->nsps == MAX_SPS) return SL_EINVAL;
      if (a->nsps == 0) {
        a->info = info;
        a->compat = info.constraints;
        a->level = info.level_idc;
      } else {
        a->compat &= info.constraints;  /* flags every SPS obeys */
        if (info.level_idc > a->level) a->level = info.level_idc;
      }
      a->sps[a->nsps++] = (pset){nal, n};
    } else {
      if (same(a->pps, a->npps, nal, n)) continue;
      if (a->npps == MAX_PPS) return SL_EINVAL;
      a->pps[a->npps++] = (pset){nal, n};
    }
  }
  return a->nsps > 0 && a->npps > 0 ? 0 : SL_EINVAL;
}

static void set_err(int *err, int v) {
  if (err) *err = v;
}

/* Run `write` twice: count, then fill an sl_buf of exactly that size. */
typedef void (*write_fn)(sl__boxw *w, const void *arg);

static sl_buf *build(write_fn write, const void *arg, int *err) {
  sl__boxw w;
  sl__boxw_init(&w, NULL, 0);
  write(&w, arg);
  if (w.over) {
    set_err(err, SL_EMSGSIZE);
    return NULL;
  }
  size_t size = w.len;
  sl_buf *b = sl_buf_new(size);
  if (b == NULL) {
    set_err(err, SL_ENOMEM);
    return NULL;
  }
  sl__boxw_init(&w, sl_buf_data(b), size);
  write(&w, arg);
  if (w.over || w.len != size) {  /* the two passes disagree: a bug */
    sl_buf_unref(b);
    set_err(err, SL_EIO);
    return NULL;
  }
  set_err(err, 0);
  return b;
}

static void write_init_cb(sl__boxw *w, const void *arg) {
  write_init(w, arg);
}

sl_buf *sl_fmp4_init(const void *config, size_t len, int width, int height,
                     uint32_t timescale, int *err) {
  if ((config == NULL && len > 0) || width <= 0 || width > 0xffff ||
      height <= 0 || height > 0xffff || timescale == 0) {
    set_err(err, SL_EINVAL);
    return NULL;
  }
  /* About 5 KiB of pointers: on the stack, so the only allocation is the
   * output. */
  init_args a;
  int rc = collect(&a, config, len);
  if (rc != 0) {
    set_err(err, rc);
    return NULL;
  }
  a.width = (unsigned)width;
  a.height = (unsigned)height;
  a.timescale = timescale;
  return build(write_init_cb, &a, err);
}

/* ------------------------------------------------------------------ */
/* Fragments                                                           */
/* ------------------------------------------------------------------ */

typedef struct frag_args {
  const uint8_t *au;
  size_t len;
  uint32_t seq, duration, sample_size;
  uint64_t dts;
  int key;
} frag_args;

/* The sample's size in length-prefixed form, or SL_EINVAL when nothing is
 * left of the access unit, SL_EMSGSIZE when it cannot fit in one mdat
 * with 32-bit sizes. */
static int64_t sample_size(const uint8_t *p, size_t len) {
  size_t pos = 0, n, count = 0;
  uint64_t total = 0;
  const uint8_t *nal;
  while (sl__h264_next_nal(p, len, &pos, &nal, &n)) {
    if (n == 0 || nal_dropped(nal[0] & 0x1fu)) continue;
    /* total stays below 2^32 and n below 2^(bits of size_t): no wrap. */
    total += 4 + (uint64_t)n;
    count++;
    if (total > UINT32_MAX - 8 - SL__FMP4_MOOF_SIZE) return SL_EMSGSIZE;
  }
  return count ? (int64_t)total : SL_EINVAL;
}

static void write_fragment(sl__boxw *w, const void *arg) {
  const frag_args *a = arg;
  size_t moof = sl__boxw_open(w, "moof");   /* 8.8.4 */
  size_t b = sl__boxw_open_full(w, "mfhd", 0, 0);  /* 8.8.5 */
  sl__boxw_u32(w, a->seq);
  sl__boxw_close(w, b);
  size_t traf = sl__boxw_open(w, "traf");   /* 8.8.6 */
  /* 8.8.7: default-base-is-moof (0x020000), so data_offset counts from the
   * first byte of this moof and the fragment needs no absolute offsets. */
  b = sl__boxw_open_full(w, "tfhd", 0, 0x020000);
  sl__boxw_u32(w, 1);             /* track_ID */
  sl__boxw_close(w, b);
  b = sl__boxw_open_full(w, "tfdt", 1, 0);  /* 8.8.12, 64-bit time */
  sl__boxw_u64(w, a->dts);        /* baseMediaDecodeTime */
  sl__boxw_close(w, b);
  /* 8.8.8: data-offset (0x1), sample duration (0x100), size (0x200),
   * flags (0x400) and composition time offset (0x800) present. */
  b = sl__boxw_open_full(w, "trun", 0, 0x000f01);
  sl__boxw_u32(w, 1);             /* sample_count */
  sl__boxw_u32(w, SL__FMP4_MOOF_SIZE + 8);  /* data_offset: mdat payload */
  sl__boxw_u32(w, a->duration);
  sl__boxw_u32(w, a->sample_size);
  sl__boxw_u32(w, a->key ? FLAGS_SYNC : FLAGS_NONSYNC);
  sl__boxw_u32(w, 0);             /* sample_composition_time_offset */
  sl__boxw_close(w, b);
  sl__boxw_close(w, traf);
  sl__boxw_close(w, moof);
  /* The layout is fixed, so data_offset above is a constant; a change to
   * the boxes that breaks it is caught here rather than by a player. */
  if (w->len - moof != SL__FMP4_MOOF_SIZE) w->over = 1;

  size_t mdat = sl__boxw_open(w, "mdat");   /* 8.1.1 */
  size_t pos = 0, n;
  const uint8_t *nal;
  while (sl__h264_next_nal(a->au, a->len, &pos, &nal, &n)) {
    if (n == 0 || nal_dropped(nal[0] & 0x1fu)) continue;
    sl__boxw_u32(w, (uint32_t)n);  /* 4-byte NAL unit length */
    sl__boxw_bytes(w, nal, n);
  }
  sl__boxw_close(w, mdat);
}

sl_buf *sl_fmp4_fragment(const void *au, size_t len, uint32_t seq,
                         uint64_t dts, uint32_t duration, int key, int *err) {
  if (au == NULL && len > 0) {
    set_err(err, SL_EINVAL);
    return NULL;
  }
  int64_t size = sample_size(au, len);
  if (size < 0) {
    set_err(err, (int)size);
    return NULL;
  }
  frag_args a = {au, len, seq, duration, (uint32_t)size, dts, key};
  return build(write_fragment, &a, err);
}
