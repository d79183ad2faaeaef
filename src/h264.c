/*
 * H.264 Annex-B access-unit reader and SPS parser (ITU-T H.264 7.3, 7.4 and
 * Annex B).
 *
 * The reader is a byte-level state machine, so a start code split across
 * feed() calls at any byte gives the same result as one big feed. NAL units
 * are written straight into the sl_buf of the access unit under assembly
 * (each behind a 4-byte start code); when the first NAL unit of the next AU
 * has begun, that buffer is trimmed and handed to on_au, and a new one is
 * started. A slice's boundary decision needs a few bytes of its header, so
 * the first PEND_MAX bytes of a slice wait in a small fixed array first.
 * Parameter sets are also copied into a fixed array as they arrive, so they
 * are remembered even when the AU around them is dropped.
 */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "h264.h"
#include "sluice.h"

#define DEFAULT_NAL_MAX ((size_t)4 << 20)
#define DEFAULT_AU_MAX ((size_t)8 << 20)
/* Bytes of a slice (after its header byte) read before deciding whether it
 * starts a new AU: enough for first_mb_in_slice .. pic_order_cnt_lsb at their
 * largest legal sizes (about 130 bits) plus emulation-prevention bytes. */
#define PEND_MAX 24
/* Largest SPS or PPS kept. A 4:4:4 SPS with all twelve scaling lists and a
 * full HRD stays well under 3 KiB. */
#define PS_MAX 4096
#define AU_MIN_CAP 4096

/* ------------------------------------------------------------------ */
/* Bit reader over an escaped NAL payload                              */
/* ------------------------------------------------------------------ */

/* Reads RBSP bits from the bytes as they are in the stream, skipping each
 * emulation_prevention_three_byte (00 00 03 -> 00 00) on the way (7.4.1). */
typedef struct br {
  const unsigned char *p;
  size_t n, pos;
  int zeros; /* zero bytes just read, for spotting 00 00 03 */
  unsigned cur, bits;
  int err; /* read past the end */
} br;

static void br_init(br *b, const unsigned char *p, size_t n) {
  memset(b, 0, sizeof(*b));
  b->p = p;
  b->n = n;
}

static unsigned br_bit(br *b) {
  if (b->bits == 0) {
    if (b->pos >= b->n) {
      b->err = 1;
      return 0;
    }
    unsigned c = b->p[b->pos++];
    if (b->zeros >= 2 && c == 3) {
      b->zeros = 0;
      if (b->pos >= b->n) {
        b->err = 1;
        return 0;
      }
      c = b->p[b->pos++];
    }
    b->zeros = c == 0 ? b->zeros + 1 : 0;
    b->cur = c;
    b->bits = 8;
  }
  b->bits--;
  return (b->cur >> b->bits) & 1;
}

static uint32_t br_u(br *b, unsigned n) {
  uint32_t v = 0;
  while (n--) v = (v << 1) | br_bit(b);
  return v;
}

/* ue(v), 9.1. More than 31 leading zeros is not a 32-bit value: an error. */
static uint32_t br_ue(br *b) {
  unsigned lz = 0;
  while (br_bit(b) == 0) {
    if (b->err || ++lz > 31) {
      b->err = 1;
      return 0;
    }
  }
  return (uint32_t)(((uint64_t)1 << lz) - 1 + br_u(b, lz));
}

static int32_t br_se(br *b) {
  uint32_t k = br_ue(b);
  return (k & 1) ? (int32_t)((k + 1) / 2) : -(int32_t)(k / 2);
}

/* ------------------------------------------------------------------ */
/* SPS                                                                 */
/* ------------------------------------------------------------------ */

/* What slice-header parsing needs from an SPS, beyond the public info. */
typedef struct sps_ext {
  unsigned log2_max_frame_num, log2_max_poc_lsb;
  int poc_type, separate_colour_plane;
} sps_ext;

/* scaling_list() of 7.3.2.1.1.1: only checked and skipped. */
static int skip_scaling_list(br *b, int size) {
  int last = 8, next = 8;
  for (int j = 0; j < size; j++) {
    if (next != 0) {
      int32_t delta = br_se(b);
      if (b->err || delta < -128 || delta > 127) return SL_EPROTO;
      next = (last + delta + 256) % 256;
    }
    if (next != 0) last = next;
  }
  return 0;
}

/* ---- whole-buffer helpers (h264.h) --------------------------------- */

/* Offset of the first byte after the next 00 00 01 at or after `from`,
 * with *sc set to where those three bytes begin; len when there is none. */
static size_t find_start(const uint8_t *p, size_t len, size_t from,
                         size_t *sc) {
  size_t i = from + 2;
  while (i < len) {
    const uint8_t *one = memchr(p + i, 1, len - i);
    if (one == NULL) break;
    i = (size_t)(one - p);
    if (p[i - 1] == 0 && p[i - 2] == 0) {
      *sc = i - 2;
      return i + 1;
    }
    i++;
  }
  *sc = len;
  return len;
}

int sl__h264_next_nal(const uint8_t *p, size_t len, size_t *pos,
                      const uint8_t **nal, size_t *n) {
  size_t sc;
  if (*pos >= len) return 0;
  size_t s = find_start(p, len, *pos, &sc);
  if (s >= len && sc >= len) {
    *pos = len;
    return 0;
  }
  size_t next;
  find_start(p, len, s, &next);
  /* The next start code begins at `next`; zero bytes before it are
   * trailing_zero_8bits or the first byte of a 4-byte start code. A NAL
   * unit never ends in 0x00 (its RBSP ends in a stop bit, and cabac_zero_
   * words end in the 0x03 of emulation prevention), so they are not its. */
  size_t e = next;
  while (e > s && p[e - 1] == 0) e--;
  *nal = p + s;
  *n = e - s;
  *pos = next;
  return 1;
}

int sl__h264_profile_has_chroma(int p) {
  switch (p) {
  case 100: case 110: case 122: case 244: case 44: case 83: case 86:
  case 118: case 128: case 138: case 139: case 134: case 135:
    return 1;
  default:
    return 0;
  }
}

/* The VUI up to timing_info (E.1.1). Returns fps, or 0 when absent or cut
 * short. */
static double parse_vui_fps(br *b) {
  if (br_u(b, 1)) {               /* aspect_ratio_info_present_flag */
    if (br_u(b, 8) == 255) br_u(b, 32); /* Extended_SAR: sar w, h */
  }
  if (br_u(b, 1)) br_u(b, 1);     /* overscan_info_present, appropriate */
  if (br_u(b, 1)) {               /* video_signal_type_present_flag */
    br_u(b, 4);                   /* video_format, full_range */
    if (br_u(b, 1)) br_u(b, 24);  /* colour description */
  }
  if (br_u(b, 1)) {               /* chroma_loc_info_present_flag */
    br_ue(b);
    br_ue(b);
  }
  if (!br_u(b, 1) || b->err) return 0; /* timing_info_present_flag */
  uint32_t units = br_u(b, 32), scale = br_u(b, 32);
  if (b->err || units == 0 || scale == 0) return 0;
  return (double)scale / (2.0 * units);
}

static int parse_sps(const unsigned char *p, size_t len, sl_h264_info *out,
                     sps_ext *x) {
  if (p == NULL || out == NULL || len < 1 || (p[0] & 0x1f) != 7 ||
      (p[0] & 0x80))
    return SL_EINVAL;
  br b;
  br_init(&b, p + 1, len - 1);
  memset(out, 0, sizeof(*out));
  memset(x, 0, sizeof(*x));
  out->profile_idc = (int)br_u(&b, 8);
  out->constraints = (int)br_u(&b, 8);
  out->level_idc = (int)br_u(&b, 8);
  uint32_t id = br_ue(&b);
  if (b.err || id > 31) return SL_EPROTO;
  out->sps_id = (int)id;
  uint32_t chroma = 1, depth = 0;
  if (sl__h264_profile_has_chroma(out->profile_idc)) {
    chroma = br_ue(&b);
    if (chroma > 3) return SL_EPROTO;
    if (chroma == 3) x->separate_colour_plane = (int)br_u(&b, 1);
    depth = br_ue(&b);
    uint32_t depth_c = br_ue(&b);
    if (depth > 6 || depth_c > 6) return SL_EPROTO;
    br_u(&b, 1); /* qpprime_y_zero_transform_bypass_flag */
    if (br_u(&b, 1)) { /* seq_scaling_matrix_present_flag */
      int n = chroma != 3 ? 8 : 12;
      for (int i = 0; i < n; i++)
        if (br_u(&b, 1) && skip_scaling_list(&b, i < 6 ? 16 : 64))
          return SL_EPROTO;
    }
  }
  out->chroma_format_idc = (int)chroma;
  out->bit_depth = 8 + (int)depth;
  uint32_t v = br_ue(&b); /* log2_max_frame_num_minus4 */
  if (v > 12) return SL_EPROTO;
  x->log2_max_frame_num = v + 4;
  v = br_ue(&b);
  if (v > 2) return SL_EPROTO;
  x->poc_type = (int)v;
  if (v == 0) {
    v = br_ue(&b);
    if (v > 12) return SL_EPROTO;
    x->log2_max_poc_lsb = v + 4;
  } else if (v == 1) {
    br_u(&b, 1); /* delta_pic_order_always_zero_flag */
    br_se(&b);   /* offset_for_non_ref_pic */
    br_se(&b);   /* offset_for_top_to_bottom_field */
    uint32_t cycle = br_ue(&b);
    if (cycle > 255) return SL_EPROTO;
    for (uint32_t i = 0; i < cycle && !b.err; i++) br_se(&b);
  }
  br_ue(&b);   /* max_num_ref_frames */
  br_u(&b, 1); /* gaps_in_frame_num_value_allowed_flag */
  uint32_t wmbs = br_ue(&b) + 1, hmap = br_ue(&b) + 1;
  out->frame_mbs_only = (int)br_u(&b, 1);
  if (!out->frame_mbs_only) br_u(&b, 1); /* mb_adaptive_frame_field_flag */
  br_u(&b, 1);                           /* direct_8x8_inference_flag */
  if (b.err) return SL_EPROTO;
  /* Level 6.2 allows 139264 macroblocks; 1024 per side is far beyond any
   * level and keeps every product below in range. */
  if (wmbs > 1024 || hmap > 1024) return SL_EPROTO;
  int w = (int)wmbs * 16, h = (2 - out->frame_mbs_only) * (int)hmap * 16;
  out->coded_width = w;
  out->coded_height = h;
  if (br_u(&b, 1)) { /* frame_cropping_flag, with its units from 7.4.2.1.1 */
    uint32_t l = br_ue(&b), r = br_ue(&b), t = br_ue(&b), bo = br_ue(&b);
    int cx = 1, cy = 2 - out->frame_mbs_only;
    if (chroma != 0 && !x->separate_colour_plane) {
      cx = chroma == 3 ? 1 : 2;
      cy *= chroma == 1 ? 2 : 1;
    }
    if (b.err || l > (uint32_t)w || r > (uint32_t)w || t > (uint32_t)h ||
        bo > (uint32_t)h)
      return SL_EPROTO;
    w -= cx * (int)(l + r);
    h -= cy * (int)(t + bo);
    if (w <= 0 || h <= 0) return SL_EPROTO;
  }
  if (b.err) return SL_EPROTO;
  out->width = w;
  out->height = h;
  if (br_u(&b, 1) && !b.err) out->fps = parse_vui_fps(&b);
  snprintf(out->codec, sizeof(out->codec), "avc1.%02x%02x%02x",
           (unsigned)out->profile_idc, (unsigned)out->constraints,
           (unsigned)out->level_idc);
  return 0;
}

int sl_h264_parse_sps(const void *nal, size_t len, sl_h264_info *out) {
  sps_ext x;
  return parse_sps(nal, len, out, &x);
}

/* ------------------------------------------------------------------ */
/* Reader                                                              */
/* ------------------------------------------------------------------ */

typedef struct ps_entry {
  unsigned char *data; /* the NAL unit as in the stream (header included) */
  size_t len;          /* 0: empty slot */
  int sps_id;          /* of a PPS: the SPS it refers to */
  sl_h264_info info;   /* of an SPS */
  sps_ext x;
} ps_entry;

/* The parts of a slice header that tell pictures apart (7.4.1.2.4). `have`
 * counts how far parsing got: 1 first_mb, 2 pps_id, 3 frame_num and field
 * flags, 4 idr_pic_id, 5 poc lsb. */
typedef struct slice_id {
  int have;
  uint32_t first_mb, pps_id, frame_num, idr_pic_id, poc_lsb;
  int field, bottom, idr, ref;
} slice_id;

enum { S_SYNC, S_HDR, S_NAL };
enum { AU_OK, AU_DROP };

struct sl_h264_reader {
  sl_h264_reader_opts o;
  sl_h264_reader_stats st;
  int in_cb;
  int nomem; /* an AU was dropped for memory during this call */

  /* Scanner. */
  int state;
  uint64_t zeros; /* zero bytes held back: in a NAL, at most 2 */

  /* The NAL unit being read. */
  int nal_type, nal_ref, nal_skip;
  size_t nal_len;  /* header + payload bytes so far */
  int pending;     /* a slice waiting for its boundary decision */
  unsigned char hdr, pend[PEND_MAX];
  size_t pend_len;
  unsigned char ps[PS_MAX]; /* a parameter set being read */
  size_t ps_len;
  int ps_over;

  /* The access unit under assembly. */
  sl_buf *au;      /* NULL until needed; cap is au->cap */
  size_t au_len, au_hint;
  int au_open, au_state, au_vcl, au_key, au_ref;
  int au_sps, au_npps; /* parameter sets before its first slice */
  size_t au_vcl_off;   /* offset of its first slice's start code */
  slice_id au_first;

  /* Parameter sets and the config in force. */
  ps_entry sps[32], pps[256];
  int cfg_dirty, cfg_new, cfg_sps;
  sl_buf *cfg;
  size_t cfg_npps;
  int need_key;
};

static const unsigned char start_code[4] = {0, 0, 0, 1};

static void au_drop(sl_h264_reader *r) {
  r->au_state = AU_DROP;
  r->au_len = 0;
}

/* Make room for `n` more bytes of AU, growing geometrically up to au_max
 * (plus nothing: callers check au_max first). */
static int au_reserve(sl_h264_reader *r, size_t n) {
  size_t need = r->au_len + n, cap = r->au ? r->au->cap : 0;
  if (need <= cap) return 0;
  size_t ncap = cap ? cap * 2 : r->au_hint;
  if (ncap < need) ncap = need;
  if (ncap > r->o.au_max && need <= r->o.au_max) ncap = r->o.au_max;
  sl_buf *nb = r->au ? sl__buf_resize(r->au, ncap) : sl_buf_new(ncap);
  if (nb == NULL) return SL_ENOMEM;
  r->au = nb;
  return 0;
}

static void au_put(sl_h264_reader *r, const void *p, size_t n) {
  if (r->au_state != AU_OK || n == 0) return;
  if (n > r->o.au_max - r->au_len) {
    r->st.drop_au_too_big++;
    au_drop(r);
    return;
  }
  if (au_reserve(r, n) != 0) {
    r->st.drop_nomem++;
    r->nomem = 1;
    au_drop(r);
    return;
  }
  memcpy(r->au->data + r->au_len, p, n);
  r->au_len += n;
}

/* Parse what the pending bytes hold of a slice header. */
static void parse_slice(const sl_h264_reader *r, slice_id *s) {
  memset(s, 0, sizeof(*s));
  s->idr = r->nal_type == 5;
  s->ref = r->nal_ref != 0;
  br b;
  br_init(&b, r->pend, r->pend_len);
  s->first_mb = br_ue(&b);
  if (b.err) {
    /* One byte is enough to tell first_mb_in_slice == 0 (a lone 1 bit). */
    if (r->pend_len > 0) {
      s->have = 1;
      s->first_mb = (r->pend[0] & 0x80) ? 0 : 1;
    }
    return;
  }
  s->have = 1;
  br_ue(&b); /* slice_type */
  s->pps_id = br_ue(&b);
  if (b.err || s->pps_id > 255) return;
  s->have = 2;
  const ps_entry *pp = &r->pps[s->pps_id];
  if (pp->len == 0 || r->sps[pp->sps_id].len == 0) return;
  const ps_entry *sp = &r->sps[pp->sps_id];
  if (sp->x.separate_colour_plane) br_u(&b, 2);
  s->frame_num = br_u(&b, sp->x.log2_max_frame_num);
  if (!sp->info.frame_mbs_only && (s->field = (int)br_u(&b, 1)) != 0)
    s->bottom = (int)br_u(&b, 1);
  if (b.err) return;
  s->have = 3;
  if (s->idr) s->idr_pic_id = br_ue(&b);
  if (b.err) return;
  s->have = 4;
  if (sp->x.poc_type == 0) {
    s->poc_lsb = br_u(&b, sp->x.log2_max_poc_lsb);
    if (b.err) return;
  }
  s->have = 5;
}

/* 7.4.1.2.4: does slice `s` begin a new primary coded picture after `a`,
 * the first slice of the current one? */
static int new_picture(const slice_id *a, const slice_id *s) {
  if (s->have >= 1 && s->first_mb == 0) return 1;
  if (s->idr != a->idr || s->ref != a->ref) return 1;
  if (s->have >= 2 && a->have >= 2 && s->pps_id != a->pps_id) return 1;
  if (s->have >= 3 && a->have >= 3 &&
      (s->frame_num != a->frame_num || s->field != a->field ||
       s->bottom != a->bottom))
    return 1;
  if (s->have >= 4 && a->have >= 4 && s->idr && s->idr_pic_id != a->idr_pic_id)
    return 1;
  if (s->have >= 5 && a->have >= 5 && s->poc_lsb != a->poc_lsb) return 1;
  return 0;
}

/* Build the config of SPS `id`: the SPS and every PPS referring to it.
 * Keeps the current object when the bytes are the same. */
static int update_config(sl_h264_reader *r, int id) {
  if (!r->cfg_dirty && r->cfg && r->cfg_sps == id) return 0;
  size_t n = 4 + r->sps[id].len, npps = 0;
  for (int i = 0; i < 256; i++)
    if (r->pps[i].len && r->pps[i].sps_id == id) n += 4 + r->pps[i].len;
  sl_buf *c = sl_buf_new(n);
  if (c == NULL) return SL_ENOMEM;
  unsigned char *p = c->data;
  memcpy(p, start_code, 4);
  memcpy(p + 4, r->sps[id].data, r->sps[id].len);
  p += 4 + r->sps[id].len;
  for (int i = 0; i < 256; i++) {
    if (!r->pps[i].len || r->pps[i].sps_id != id) continue;
    memcpy(p, start_code, 4);
    memcpy(p + 4, r->pps[i].data, r->pps[i].len);
    p += 4 + r->pps[i].len;
    npps++;
  }
  r->cfg_dirty = 0;
  r->cfg_sps = id;
  if (r->cfg && r->cfg->len == n && memcmp(r->cfg->data, c->data, n) == 0) {
    sl_buf_unref(c);
    return 0;
  }
  sl_buf_unref(r->cfg);
  r->cfg = c;
  r->cfg_npps = npps;
  r->cfg_new = 1;
  return 0;
}

static void au_reset(sl_h264_reader *r) {
  r->au_len = 0;
  r->au_open = r->au_vcl = r->au_key = r->au_ref = 0;
  r->au_sps = r->au_npps = 0;
  r->au_state = AU_OK;
  r->au_vcl_off = 0;
}

/* The AU under assembly is complete: hand it over or count why not. */
static void emit_au(sl_h264_reader *r) {
  if (!r->au_open) return;
  if (r->au_state != AU_OK) {
    /* Later pictures may predict from a dropped reference picture. */
    if (r->au_ref || r->au_key) r->need_key = 1;
    goto out;
  }
  if (!r->au_vcl) {
    r->st.drop_no_slice++;
    goto out;
  }
  int id = -1;
  if (r->au_first.have >= 2 && r->pps[r->au_first.pps_id].len) {
    int s = r->pps[r->au_first.pps_id].sps_id;
    if (r->sps[s].len) id = s;
  }
  /* An IDR picture whose PPS or SPS is unknown cannot be made to decode
   * on its own: it is no key AU. */
  if (id < 0) r->au_key = 0;
  if (r->need_key && !r->au_key) {
    r->st.drop_before_key++;
    goto out;
  }
  if (id < 0) id = r->cfg ? r->cfg_sps : -1; /* keep the last config */
  if (id < 0 || update_config(r, id) != 0) {
    if (id >= 0) {
      r->st.drop_nomem++;
      r->nomem = 1;
      r->need_key = 1;
    } else {
      r->st.drop_before_key++;
    }
    goto out;
  }
  size_t clen = r->cfg->len;
  if (r->au_key && (!r->au_sps || (size_t)r->au_npps < r->cfg_npps)) {
    /* Put the parameter sets in force in front of the first slice. */
    if (clen > r->o.au_max - r->au_len) {
      r->st.drop_au_too_big++;
      r->need_key = 1;
      goto out;
    }
    if (au_reserve(r, clen) != 0) {
      r->st.drop_nomem++;
      r->nomem = 1;
      r->need_key = 1;
      goto out;
    }
    unsigned char *d = r->au->data;
    memmove(d + r->au_vcl_off + clen, d + r->au_vcl_off,
            r->au_len - r->au_vcl_off);
    memcpy(d + r->au_vcl_off, r->cfg->data, clen);
    r->au_len += clen;
  }
  r->need_key = 0;
  sl_buf *b = r->au;
  r->au = NULL;
  /* Trim a large slack so the AU holds what it shows (the hub counts the
   * allocation); a failed trim only wastes the slack. */
  if (b->cap - r->au_len > r->au_len / 8 + 256) {
    sl_buf *nb = sl__buf_resize(b, r->au_len);
    if (nb) b = nb;
  }
  sl_buf_truncate(b, r->au_len);
  /* The next AU starts with room for one a little larger than this one. */
  r->au_hint = r->au_len + r->au_len / 4 + 256;
  if (r->au_hint < AU_MIN_CAP) r->au_hint = AU_MIN_CAP;
  if (r->au_hint > r->o.au_max) r->au_hint = r->o.au_max;
  sl_h264_au a = {.buf = b, .key = r->au_key, .config_changed = r->cfg_new,
                  .config = r->cfg, .info = &r->sps[id].info};
  r->cfg_new = 0;
  r->st.aus++;
  r->st.keyframes += r->au_key != 0;
  if (r->o.on_au) {
    r->in_cb = 1;
    r->o.on_au(&a, r->o.arg);
    r->in_cb = 0;
  }
  sl_buf_unref(b);
out:
  au_reset(r);
}

/* The current NAL unit's boundary is decided: emit the previous AU if this
 * NAL starts a new one, then write its start code, header and pending
 * bytes. */
static void decide(sl_h264_reader *r) {
  int t = r->nal_type, vcl = t == 1 || t == 2 || t == 5, start = 0;
  slice_id s;
  if (vcl) parse_slice(r, &s);
  if (!r->au_open) {
    start = 1;
  } else if (r->au_vcl) {
    if (vcl)
      start = new_picture(&r->au_first, &s);
    else
      start = t == 6 || t == 7 || t == 8 || t == 9 || (t >= 14 && t <= 18);
  }
  if (start) {
    emit_au(r);
    r->au_open = 1;
  }
  if (vcl) {
    if (!r->au_vcl) {
      r->au_vcl = 1;
      r->au_first = s;
      r->au_vcl_off = r->au_len;
    }
    r->au_key |= t == 5;
    r->au_ref |= r->nal_ref != 0;
  } else if (!r->au_vcl) {
    r->au_sps |= t == 7;
    r->au_npps += t == 8;
  }
  r->pending = 0;
  au_put(r, start_code, 4);
  au_put(r, &r->hdr, 1);
  au_put(r, r->pend, r->pend_len);
  if (r->nal_skip) au_drop(r); /* a slice found too big while pending */
}

/* Payload bytes of the current NAL unit (held zeros included). A slice's
 * first PEND_MAX bytes are always collected, even when the slice turns out
 * too big, so that the boundary decision sees the same bytes however the
 * input was split. */
static void nal_put(sl_h264_reader *r, const unsigned char *p, size_t n) {
  if (n == 0) return;
  if (!r->nal_skip && n > r->o.nal_max - r->nal_len) {
    /* Take the part that fits first, so the AU sees the same bytes before
     * the drop however the input was split. */
    size_t fit = r->o.nal_max - r->nal_len;
    nal_put(r, p, fit);
    p += fit;
    n -= fit;
    r->nal_skip = 1;
    r->st.drop_nal_too_big++;
    if (!r->pending) au_drop(r); /* else once decide() placed the NAL */
  }
  if (!r->nal_skip) {
    r->nal_len += n;
    if (r->nal_type == 7 || r->nal_type == 8) {
      if (n > PS_MAX - r->ps_len) {
        r->ps_over = 1;
      } else if (!r->ps_over) {
        memcpy(r->ps + r->ps_len, p, n);
        r->ps_len += n;
      }
    }
  }
  if (r->pending) {
    size_t k = PEND_MAX - r->pend_len;
    if (k > n) k = n;
    memcpy(r->pend + r->pend_len, p, k);
    r->pend_len += k;
    p += k;
    n -= k;
    if (r->pend_len < PEND_MAX) return;
    decide(r);
  }
  if (!r->nal_skip) au_put(r, p, n);
}

static void nal_begin(sl_h264_reader *r, unsigned char hdr) {
  r->hdr = hdr;
  r->nal_type = hdr & 0x1f;
  r->nal_ref = (hdr >> 5) & 3;
  r->nal_len = 1;
  r->nal_skip = 0;
  r->pend_len = 0;
  r->ps[0] = hdr;
  r->ps_len = 1;
  r->ps_over = 0;
  r->pending = r->nal_type == 1 || r->nal_type == 2 || r->nal_type == 5;
  if (!r->pending) decide(r);
}

/* Remember a parameter set; returns 0 or SL_EPROTO. */
static int store_ps(sl_h264_reader *r) {
  if (r->ps_over) return SL_EPROTO;
  ps_entry *e;
  sl_h264_info info;
  sps_ext x;
  int sps_id = 0;
  if (r->nal_type == 7) {
    if (parse_sps(r->ps, r->ps_len, &info, &x) != 0) return SL_EPROTO;
    e = &r->sps[info.sps_id];
  } else {
    br b;
    br_init(&b, r->ps + 1, r->ps_len - 1);
    uint32_t id = br_ue(&b), sid = br_ue(&b);
    if (b.err || id > 255 || sid > 31) return SL_EPROTO;
    e = &r->pps[id];
    sps_id = (int)sid;
  }
  if (e->len == r->ps_len && memcmp(e->data, r->ps, r->ps_len) == 0 &&
      e->sps_id == sps_id)
    return 0;
  unsigned char *d = sl__alloc(r->ps_len, SL_MEM_META);
  if (d == NULL) {
    r->nomem = 1;
    return 0; /* the old one stays in force */
  }
  memcpy(d, r->ps, r->ps_len);
  sl__free(e->data, e->len, SL_MEM_META);
  e->data = d;
  e->len = r->ps_len;
  e->sps_id = sps_id;
  if (r->nal_type == 7) {
    e->info = info;
    e->x = x;
  }
  r->cfg_dirty = 1;
  return 0;
}

static void nal_end(sl_h264_reader *r) {
  if (r->pending) decide(r);
  r->st.nals++;
  /* A parameter set over nal_max is already counted, and only a part of
   * it was seen: it must not replace the one in force. */
  if ((r->nal_type == 7 || r->nal_type == 8) && !r->nal_skip &&
      store_ps(r) != 0)
    r->st.drop_bad_sps++;
}

sl_h264_reader *sl_h264_reader_new(const sl_h264_reader_opts *o, int *err) {
  sl_h264_reader *r = sl__calloc(sizeof(*r), SL_MEM_META);
  if (r == NULL) {
    if (err) *err = SL_ENOMEM;
    return NULL;
  }
  if (o) r->o = *o;
  if (r->o.nal_max == 0) r->o.nal_max = DEFAULT_NAL_MAX;
  if (r->o.au_max == 0) r->o.au_max = DEFAULT_AU_MAX;
  r->au_hint = AU_MIN_CAP < r->o.au_max ? AU_MIN_CAP : r->o.au_max;
  r->state = S_SYNC;
  r->need_key = 1;
  r->cfg_sps = -1;
  return r;
}

int sl_h264_reader_feed(sl_h264_reader *r, const void *data, size_t len) {
  if (r->in_cb) return SL_EBUSY;
  const unsigned char *p = data, *end = p + len;
  r->st.bytes += len;
  r->nomem = 0;
  while (p < end) {
    unsigned char c = *p;
    switch (r->state) {
    case S_SYNC:
      if (c == 0) {
        r->zeros++;
      } else if (c == 1 && r->zeros >= 2) {
        r->state = S_HDR;
        r->zeros = 0;
      } else {
        /* Skip to the next zero byte in one step. */
        const unsigned char *z = memchr(p, 0, (size_t)(end - p));
        size_t run = z ? (size_t)(z - p) : (size_t)(end - p);
        r->st.garbage_bytes += run;
        r->zeros = 0;
        p += run;
        continue;
      }
      break;
    case S_HDR:
      if (c == 0) { /* an empty NAL unit: these zeros may start a code */
        r->state = S_SYNC;
        r->zeros = 1;
      } else if ((c & 0x80) || (c & 0x1f) == 0 || (c & 0x1f) >= 24) {
        r->st.garbage_bytes++;
        r->state = S_SYNC;
      } else {
        nal_begin(r, c);
        r->state = S_NAL;
      }
      break;
    case S_NAL:
      if (c == 0) {
        if (++r->zeros == 3) { /* 00 00 00 cannot occur inside a NAL unit */
          nal_end(r);
          r->state = S_SYNC;
        }
      } else if (c == 1 && r->zeros == 2) {
        nal_end(r);
        r->state = S_HDR;
        r->zeros = 0;
      } else {
        static const unsigned char zz[2] = {0, 0};
        nal_put(r, zz, (size_t)r->zeros);
        r->zeros = 0;
        /* The payload runs to the next zero byte. */
        const unsigned char *z = memchr(p, 0, (size_t)(end - p));
        size_t run = z ? (size_t)(z - p) : (size_t)(end - p);
        nal_put(r, p, run);
        p += run;
        continue;
      }
      break;
    }
    p++;
  }
  return r->nomem ? SL_ENOMEM : 0;
}

int sl_h264_reader_flush(sl_h264_reader *r) {
  if (r->in_cb) return SL_EBUSY;
  r->nomem = 0;
  if (r->state == S_NAL) nal_end(r); /* held zeros are trailing zeros */
  emit_au(r);
  r->state = S_SYNC;
  r->zeros = 0;
  return r->nomem ? SL_ENOMEM : 0;
}

void sl_h264_reader_stats_get(const sl_h264_reader *r,
                              sl_h264_reader_stats *out) {
  *out = r->st;
}

void sl_h264_reader_free(sl_h264_reader *r) {
  if (r == NULL) return;
  sl_buf_unref(r->au);
  sl_buf_unref(r->cfg);
  for (int i = 0; i < 32; i++)
    sl__free(r->sps[i].data, r->sps[i].len, SL_MEM_META);
  for (int i = 0; i < 256; i++)
    sl__free(r->pps[i].data, r->pps[i].len, SL_MEM_META);
  sl__free(r, sizeof(*r), SL_MEM_META);
}
