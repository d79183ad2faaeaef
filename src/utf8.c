/*
 * UTF-8 validator as a small state machine over Table 3-7 of the Unicode
 * Standard ("Well-Formed UTF-8 Byte Sequences"), which is RFC 3629's grammar
 * written as byte ranges:
 *
 *   00..7F
 *   C2..DF  80..BF
 *   E0      A0..BF  80..BF        (A0: no overlong 3-byte forms)
 *   E1..EC  80..BF  80..BF
 *   ED      80..9F  80..BF        (9F: no surrogates D800..DFFF)
 *   EE..EF  80..BF  80..BF
 *   F0      90..BF  80..BF 80..BF (90: no overlong 4-byte forms)
 *   F1..F3  80..BF  80..BF 80..BF
 *   F4      80..8F  80..BF 80..BF (8F: nothing past U+10FFFF)
 *
 * C0, C1 and F5..FF never occur. Each state names the range allowed for the
 * next byte, so an error is caught at the first byte that makes it one.
 */
#include "utf8.h"

#include <string.h>

enum {
  ACCEPT = SL_UTF8_ACCEPT,
  TAIL1,  /* one more 80..BF */
  TAIL2,  /* two more 80..BF */
  TAIL3,  /* three more 80..BF */
  AFTER_E0, /* A0..BF, then TAIL1 */
  AFTER_ED, /* 80..9F, then TAIL1 */
  AFTER_F0, /* 90..BF, then TAIL2 */
  AFTER_F4, /* 80..8F, then TAIL2 */
  REJECT
};

static uint32_t step(uint32_t s, unsigned c) {
  switch (s) {
  case ACCEPT:
    if (c < 0x80) return ACCEPT;
    if (c < 0xc2) return REJECT; /* a stray continuation, or overlong C0/C1 */
    if (c < 0xe0) return TAIL1;
    if (c == 0xe0) return AFTER_E0;
    if (c == 0xed) return AFTER_ED;
    if (c < 0xf0) return TAIL2;
    if (c == 0xf0) return AFTER_F0;
    if (c < 0xf4) return TAIL3;
    if (c == 0xf4) return AFTER_F4;
    return REJECT;
  case TAIL1: return c >= 0x80 && c <= 0xbf ? ACCEPT : REJECT;
  case TAIL2: return c >= 0x80 && c <= 0xbf ? TAIL1 : REJECT;
  case TAIL3: return c >= 0x80 && c <= 0xbf ? TAIL2 : REJECT;
  case AFTER_E0: return c >= 0xa0 && c <= 0xbf ? TAIL1 : REJECT;
  case AFTER_ED: return c >= 0x80 && c <= 0x9f ? TAIL1 : REJECT;
  case AFTER_F0: return c >= 0x90 && c <= 0xbf ? TAIL2 : REJECT;
  case AFTER_F4: return c >= 0x80 && c <= 0x8f ? TAIL2 : REJECT;
  default: return REJECT; /* unreachable: sl__utf8_feed filters these */
  }
}

int sl__utf8_feed(uint32_t *state, const void *p, size_t n) {
  const unsigned char *s = p;
  uint32_t st = *state;
  size_t i = 0;
  if (st >= REJECT) {
    *state = REJECT;
    return -1;
  }
  while (i < n) {
    /* Text is mostly ASCII: between characters, skip 8 bytes at a time
     * while none has its high bit set (memcpy: no unaligned access). */
    if (st == ACCEPT) {
      while (n - i >= 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull) break;
        i += 8;
      }
      if (i == n) break;
    }
    st = step(st, s[i++]);
    if (st == REJECT) {
      *state = REJECT;
      return -1;
    }
  }
  *state = st;
  return 0;
}

int sl__utf8_complete(uint32_t state) { return state == ACCEPT; }

int sl__utf8_valid(const void *p, size_t n) {
  uint32_t st = SL_UTF8_ACCEPT;
  return sl__utf8_feed(&st, p, n) == 0 && sl__utf8_complete(st);
}
