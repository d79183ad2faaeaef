/*
 * Fragmented MP4 (ISO/IEC 14496-12) for H.264 (ISO/IEC 14496-15): the
 * internal pieces behind sl_fmp4_init() and sl_fmp4_fragment(), exposed for
 * the tests and for other muxers that need to write boxes.
 *
 * The box writer is bounded: every write checks the cursor against the
 * capacity, so no input can make it write past its buffer. With p == NULL it
 * only counts, which is how the muxer sizes an output exactly before it
 * allocates it (one counting pass, one writing pass over the same code).
 */
#ifndef SL_FMP4_H
#define SL_FMP4_H

#include <stddef.h>
#include <stdint.h>

typedef struct sl__boxw {
  uint8_t *p;  /* NULL: count only */
  size_t cap;  /* bytes p can hold (ignored when counting) */
  size_t len;  /* bytes written (or counted) so far */
  int over;    /* a write did not fit, or a box grew past 4 GiB */
} sl__boxw;

/* Start a writer over `cap` bytes at `p` (NULL, 0: count only). */
void sl__boxw_init(sl__boxw *w, void *p, size_t cap);
void sl__boxw_u8(sl__boxw *w, unsigned v);
void sl__boxw_u16(sl__boxw *w, unsigned v);
void sl__boxw_u32(sl__boxw *w, uint32_t v);
void sl__boxw_u64(sl__boxw *w, uint64_t v);
void sl__boxw_bytes(sl__boxw *w, const void *src, size_t n);
void sl__boxw_zeros(sl__boxw *w, size_t n);
/* Open a box of four-character `type` with a placeholder size; returns the
 * offset that sl__boxw_close() patches. */
size_t sl__boxw_open(sl__boxw *w, const char type[4]);
/* Open a FullBox: the box header plus version (8 bits) and flags (24). */
size_t sl__boxw_open_full(sl__boxw *w, const char type[4], unsigned version,
                          uint32_t flags);
/* Write the size of the box opened at `off` (everything written since). */
void sl__boxw_close(sl__boxw *w, size_t off);

/* What the avcC extension needs from an SPS (ITU-T H.264 7.3.2.1.1). */
typedef struct sl__h264_sps_info {
  unsigned profile_idc, constraints, level_idc;
  int has_chroma;      /* the profile carries chroma_format_idc etc. */
  unsigned chroma_format_idc, bit_depth_luma_minus8, bit_depth_chroma_minus8;
} sl__h264_sps_info;

/* Parse the start of an SPS NAL unit (header byte included, emulation
 * prevention bytes still in). Returns 0, or SL_EINVAL when it is not an SPS,
 * is truncated or holds out-of-range values. */
int sl__h264_sps_parse(const uint8_t *nal, size_t n, sl__h264_sps_info *out);

/* Size of the moof box sl_fmp4_fragment() writes (it never varies), so
 * trun's data_offset is this plus the 8-byte mdat header. */
#define SL__FMP4_MOOF_SIZE 104u

#endif
