/*
 * H.264 bitstream helpers shared by the media layer (the access-unit reader
 * in h264.c, the fMP4 muxer in fmp4.c) and the hub's H.264 side
 * (hub_h264.c): one NAL iterator over whole Annex-B buffers, and the rule
 * for which profiles' SPS carry chroma and bit-depth fields.
 */
#ifndef SL_H264_H
#define SL_H264_H

#include <stddef.h>
#include <stdint.h>

/* Annex-B iteration: finds the next NAL unit at or after *pos in p[0..len),
 * stores its bytes (header included, start code and trailing zero bytes
 * excluded; possibly empty) in *nal / *n, moves *pos past it and returns 1;
 * returns 0 when no start code is left. Start codes are 00 00 01, with any
 * number of zero bytes before them (so 4-byte codes work); bytes before the
 * first start code are ignored. */
int sl__h264_next_nal(const uint8_t *p, size_t len, size_t *pos,
                      const uint8_t **nal, size_t *n);

/* 1 for the profiles whose SPS carries chroma_format_idc and the bit
 * depths (ITU-T H.264 7.3.2.1.1), else 0. */
int sl__h264_profile_has_chroma(int profile_idc);

#endif
