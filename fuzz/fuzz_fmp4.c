/*
 * libFuzzer target for the fragmented-MP4 muxer. The input is used twice:
 * as an Annex-B access unit for sl_fmp4_fragment() and as the parameter
 * sets for sl_fmp4_init(). Invariants:
 *
 *   - every output is a sequence of boxes that tile it exactly, containers
 *     included (moov, trak, ..., stsd, avc1; moof, traf);
 *   - a fragment's mdat holds 4-byte length-prefixed NAL units that tile it
 *     exactly, none empty and none of the types left out (AUD, SPS, PPS,
 *     filler), and trun's sample_size equals the mdat payload;
 *   - a failure is SL_EINVAL (or SL_EMSGSIZE), never anything else.
 *
 * Build and run (clang):
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
 *     -Isrc fuzz/fuzz_fmp4.c src/fmp4.c src/buf.c src/alloc.c -o fuzz_fmp4
 *   ./fuzz_fmp4 -max_total_time=60 WORKDIR fuzz/corpus/fmp4
 * Replay without libFuzzer: add -DSL_FUZZ_MAIN, drop -fsanitize=fuzzer.
 */
#include "fuzz_assert.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmp4.h"
#include "sluice.h"


static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

static size_t child_off(const uint8_t *t) {
  static const char *const plain[] = {"moov", "trak", "mdia", "minf", "dinf",
                                      "stbl", "mvex", "moof", "traf"};
  for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
    if (memcmp(t, plain[i], 4) == 0) return 8;
  if (memcmp(t, "stsd", 4) == 0 || memcmp(t, "dref", 4) == 0) return 16;
  if (memcmp(t, "avc1", 4) == 0) return 86;
  return 0;
}

/* Boxes tile p[0..len) exactly, recursively. */
static void tiles(const uint8_t *p, size_t len) {
  size_t off = 0;
  while (off < len) {
    ASSERT(len - off >= 8);
    uint32_t size = be32(p + off);
    ASSERT(size >= 8 && size <= len - off);
    size_t c = child_off(p + off + 4);
    if (c) {
      ASSERT(c <= size);
      tiles(p + off + c, size - c);
    }
    off += size;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int err = 0;
  sl_buf *f = sl_fmp4_fragment(data, size, 1, 0, 3600, 1, &err);
  if (f == NULL) {
    ASSERT(err == SL_EINVAL || err == SL_EMSGSIZE);
  } else {
    const uint8_t *p = sl_buf_cdata(f);
    size_t n = sl_buf_len(f);
    tiles(p, n);
    ASSERT(n > SL__FMP4_MOOF_SIZE + 8);
    ASSERT(memcmp(p + SL__FMP4_MOOF_SIZE + 4, "mdat", 4) == 0);
    const uint8_t *s = p + SL__FMP4_MOOF_SIZE + 8;
    size_t sn = n - SL__FMP4_MOOF_SIZE - 8;
    ASSERT(be32(p + 92) == sn);  /* trun sample_size */
    for (size_t off = 0; off < sn;) {
      ASSERT(sn - off > 4);
      uint32_t l = be32(s + off);
      ASSERT(l > 0 && l <= sn - off - 4);
      unsigned t = s[off + 4] & 0x1f;
      ASSERT(t != 7 && t != 8 && t != 9 && t != 12);
      off += 4 + l;
    }
    sl_buf_unref(f);
  }
  sl_buf *i = sl_fmp4_init(data, size, 320, 240, 90000, &err);
  if (i == NULL) {
    ASSERT(err == SL_EINVAL);
  } else {
    tiles(sl_buf_cdata(i), sl_buf_len(i));
    sl_buf_unref(i);
  }
  return 0;
}

#ifdef SL_FUZZ_MAIN
#include "fuzz_main.h"
#endif
