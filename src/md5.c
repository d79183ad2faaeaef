/*
 * MD5 as specified in RFC 1321. Section numbers below refer to it.
 *
 * Words are loaded and stored byte by byte in little-endian order, so the
 * code is correct on any host byte order and never makes an unaligned
 * access.
 */
#include "md5.h"

#include <string.h>

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static uint32_t load32le(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static void store32le(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

/* Section 3.4: T[i] = floor(2^32 * abs(sin(i + 1))), precomputed so that no
 * floating point is involved. */
static const uint32_t T[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a,
    0xa8304613, 0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
    0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340,
    0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8,
    0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
    0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92,
    0xffeff47d, 0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
    0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};

/* Per-round shift amounts, four per round (section 3.4). */
static const int S[16] = {7, 12, 17, 22, 5, 9,  14, 20,
                          4, 11, 16, 23, 6, 10, 15, 21};

/* One 64-byte block (section 3.4). The four rounds differ only in the
 * auxiliary function F, G, H or I and in which message word step i uses. */
static void compress(uint32_t h[4], const unsigned char *block) {
  uint32_t x[16], a = h[0], b = h[1], c = h[2], d = h[3];
  for (int i = 0; i < 16; i++) x[i] = load32le(block + 4 * i);
  for (int i = 0; i < 64; i++) {
    uint32_t f;
    int k;
    switch (i >> 4) {
      case 0: f = (b & c) | (~b & d); k = i; break;
      case 1: f = (b & d) | (c & ~d); k = (5 * i + 1) & 15; break;
      case 2: f = b ^ c ^ d; k = (3 * i + 5) & 15; break;
      default: f = c ^ (b | ~d); k = (7 * i) & 15; break;
    }
    uint32_t t = d;
    d = c;
    c = b;
    b = b + rol(a + f + x[k] + T[i], S[(i >> 4) * 4 + (i & 3)]);
    a = t;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
}

void sl__md5_init(sl_md5 *c) {
  /* Section 3.3, word A..D written low-order byte first. */
  c->h[0] = 0x67452301;
  c->h[1] = 0xefcdab89;
  c->h[2] = 0x98badcfe;
  c->h[3] = 0x10325476;
  c->total = 0;
  c->used = 0;
}

void sl__md5_update(sl_md5 *c, const void *data, size_t len) {
  const unsigned char *p = data;
  c->total += len;
  if (c->used) {
    size_t take = 64 - c->used;
    if (take > len) take = len;
    memcpy(c->block + c->used, p, take);
    c->used += take;
    p += take;
    len -= take;
    if (c->used < 64) return;
    compress(c->h, c->block);
    c->used = 0;
  }
  for (; len >= 64; p += 64, len -= 64) compress(c->h, p);
  if (len) memcpy(c->block, p, len);
  c->used = len;
}

void sl__md5_final(sl_md5 *c, unsigned char out[16]) {
  /* Sections 3.1 and 3.2: a 1 bit, zeros up to 56 mod 64, then the message
   * length in bits as a 64-bit little-endian number. */
  uint64_t bits = c->total * 8;
  unsigned char pad[72] = {0x80};
  size_t padlen = (c->used < 56 ? 56 : 120) - c->used;
  for (int i = 0; i < 8; i++) pad[padlen + (size_t)i] = (unsigned char)(bits >> (8 * i));
  sl__md5_update(c, pad, padlen + 8);
  for (int i = 0; i < 4; i++) store32le(out + 4 * i, c->h[i]);
}

void sl__md5(const void *data, size_t len, unsigned char out[16]) {
  sl_md5 c;
  sl__md5_init(&c);
  sl__md5_update(&c, data, len);
  sl__md5_final(&c, out);
}

void sl__md5_tohex(const unsigned char d[16], char hex[33]) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 16; i++) {
    hex[2 * i] = digits[d[i] >> 4];
    hex[2 * i + 1] = digits[d[i] & 15];
  }
  hex[32] = '\0';
}

void sl__md5_hex(const void *data, size_t len, char hex[33]) {
  unsigned char d[16];
  sl__md5(data, len, d);
  sl__md5_tohex(d, hex);
}
