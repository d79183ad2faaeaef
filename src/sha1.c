/*
 * SHA-1 after FIPS 180-4 section 6.1, written for clarity over speed: the
 * handshake hashes 60 bytes once per connection.
 */
#include "sha1.h"

#include <string.h>

static uint32_t rol(uint32_t x, unsigned n) {
  return (x << n) | (x >> (32 - n));
}

/* Big-endian loads and stores byte by byte, so alignment and host byte
 * order never matter. */
static uint32_t load_be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

static void store_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

/* One 512-bit block. The message schedule is kept as a 16-word ring
 * (FIPS 180-4 allows either form) to stay at 64 bytes of stack. */
static void compress(uint32_t h[5], const unsigned char *blk) {
  uint32_t w[16];
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int t = 0; t < 16; t++) w[t] = load_be32(blk + 4 * t);
  for (int t = 0; t < 80; t++) {
    uint32_t f, k;
    if (t >= 16) {
      w[t & 15] = rol(w[(t - 3) & 15] ^ w[(t - 8) & 15] ^ w[(t - 14) & 15] ^
                          w[t & 15],
                      1);
    }
    if (t < 20) {
      f = (b & c) | (~b & d);
      k = 0x5a827999u;
    } else if (t < 40) {
      f = b ^ c ^ d;
      k = 0x6ed9eba1u;
    } else if (t < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8f1bbcdcu;
    } else {
      f = b ^ c ^ d;
      k = 0xca62c1d6u;
    }
    uint32_t tmp = rol(a, 5) + f + e + k + w[t & 15];
    e = d;
    d = c;
    c = rol(b, 30);
    b = a;
    a = tmp;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

void sl__sha1_init(sl_sha1 *c) {
  c->h[0] = 0x67452301u;
  c->h[1] = 0xefcdab89u;
  c->h[2] = 0x98badcfeu;
  c->h[3] = 0x10325476u;
  c->h[4] = 0xc3d2e1f0u;
  c->total = 0;
  c->used = 0;
}

void sl__sha1_update(sl_sha1 *c, const void *data, size_t len) {
  const unsigned char *p = data;
  if (len == 0) return; /* data may be NULL; memcpy(NULL, 0) is undefined */
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
  /* Whole blocks straight from the input, without copying. */
  for (; len >= 64; p += 64, len -= 64) compress(c->h, p);
  if (len) memcpy(c->block, p, len);
  c->used = len;
}

void sl__sha1_final(sl_sha1 *c, unsigned char out[20]) {
  uint64_t bits = c->total * 8; /* the length is mod 2^64, as FIPS says */
  unsigned char pad[72];
  /* 0x80, zeros up to 56 mod 64, then the 64-bit big-endian bit count:
   * between 9 and 72 bytes in all. */
  size_t padlen = (c->used < 56 ? 56 : 120) - c->used;
  memset(pad, 0, sizeof(pad));
  pad[0] = 0x80;
  store_be32(pad + padlen, (uint32_t)(bits >> 32));
  store_be32(pad + padlen + 4, (uint32_t)bits);
  sl__sha1_update(c, pad, padlen + 8);
  for (int i = 0; i < 5; i++) store_be32(out + 4 * i, c->h[i]);
}

void sl__sha1(const void *data, size_t len, unsigned char out[20]) {
  sl_sha1 c;
  sl__sha1_init(&c);
  sl__sha1_update(&c, data, len);
  sl__sha1_final(&c, out);
}
