/*
 * Base64 (RFC 4648 section 4). Decoding validates the whole input before it
 * writes a byte, so a failed call leaves `out` untouched.
 */
#include "base64.h"

#include <limits.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t sl__base64_encode(const void *in, size_t len, char *out) {
  const unsigned char *p = in;
  size_t o = 0, i = 0;
  for (; len - i >= 3; i += 3) {
    unsigned long v = (unsigned long)p[i] << 16 | (unsigned long)p[i + 1] << 8 |
                      p[i + 2];
    out[o++] = alphabet[(v >> 18) & 63];
    out[o++] = alphabet[(v >> 12) & 63];
    out[o++] = alphabet[(v >> 6) & 63];
    out[o++] = alphabet[v & 63];
  }
  if (len - i == 1) {
    unsigned long v = (unsigned long)p[i] << 16;
    out[o++] = alphabet[(v >> 18) & 63];
    out[o++] = alphabet[(v >> 12) & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (len - i == 2) {
    unsigned long v = (unsigned long)p[i] << 16 | (unsigned long)p[i + 1] << 8;
    out[o++] = alphabet[(v >> 18) & 63];
    out[o++] = alphabet[(v >> 12) & 63];
    out[o++] = alphabet[(v >> 6) & 63];
    out[o++] = '=';
  }
  out[o] = '\0';
  return o;
}

/* The 6-bit value of a base64 character, or -1. Ranges instead of a 256-byte
 * table: the inputs are handshake-sized, and this cannot be mistyped. */
static int value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

int sl__base64_decode(const char *in, size_t len, void *out, size_t outcap) {
  const unsigned char *s = (const unsigned char *)in;
  unsigned char *o = out;
  size_t pad = 0, n;

  if (len % 4 != 0) return -1;
  if (len == 0) return 0;
  if (s[len - 1] == '=') pad = s[len - 2] == '=' ? 2 : 1;
  n = len / 4 * 3 - pad;
  if (n > outcap || n > (size_t)INT_MAX) return -1;

  /* Pass 1: every character but the padding is in the alphabet, and the
   * bits the padding drops are zero. */
  for (size_t i = 0; i < len - pad; i++)
    if (value(s[i]) < 0) return -1;
  if (pad == 2 && (value(s[len - 3]) & 0x0f)) return -1;
  if (pad == 1 && (value(s[len - 2]) & 0x03)) return -1;

  /* Pass 2: decode; the last quantum is padded out with 'A' (zero bits)
   * and only its real bytes are stored. */
  size_t w = 0;
  for (size_t i = 0; i < len; i += 4) {
    unsigned long v = 0;
    for (size_t k = 0; k < 4; k++)
      v = v << 6 | (unsigned long)(s[i + k] == '=' ? 0 : value(s[i + k]));
    unsigned char b[3] = {(unsigned char)(v >> 16), (unsigned char)(v >> 8),
                          (unsigned char)v};
    for (size_t k = 0; k < 3 && w < n; k++) o[w++] = b[k];
  }
  return (int)n;
}
