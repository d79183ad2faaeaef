/*
 * SHA-1 against the FIPS 180-2 appendix vectors (and lengths around the
 * 56- and 64-byte padding boundaries, values from Python's hashlib), and
 * base64 against RFC 4648 section 10, plus the strict-decoding refusals.
 */
#include <stdlib.h>

#include "base64.h"
#include "sha1.h"
#include "test.h"

static void hex(const unsigned char *d, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[d[i] >> 4];
    out[2 * i + 1] = digits[d[i] & 15];
  }
  out[2 * n] = '\0';
}

/* Digest of `len` bytes, read from right before a guard page. */
static const char *sha1_hex(const void *data, size_t len) {
  static char s[41];
  unsigned char d[20];
  sl__sha1(test_guard(data, len), len, d);
  hex(d, 20, s);
  return s;
}

TEST(sha1_fips_vectors) {
  const char *l448 =
      "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  const char *l896 =
      "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
      "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
  CHECK_STR(sha1_hex("abc", 3), "a9993e364706816aba3e25717850c26c9cd0d89d");
  CHECK_STR(sha1_hex("", 0), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  CHECK_STR(sha1_hex(l448, strlen(l448)),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  CHECK_STR(sha1_hex(l896, strlen(l896)),
            "a49b2446a02c645bf419f995b67091253a04a259");
}

TEST(sha1_million_a) {
  size_t n = 1000000;
  char *a = malloc(n);
  CHECK(a != NULL);
  memset(a, 'a', n);
  CHECK_STR(sha1_hex(a, n), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");

  /* The same through the incremental API in odd-sized pieces that straddle
   * block boundaries. */
  sl_sha1 c;
  unsigned char d[20];
  char s[41];
  sl__sha1_init(&c);
  for (size_t off = 0, step = 1; off < n; step = step % 97 + 1) {
    size_t k = step < n - off ? step : n - off;
    sl__sha1_update(&c, a + off, k);
    off += k;
  }
  sl__sha1_final(&c, d);
  hex(d, 20, s);
  CHECK_STR(s, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  free(a);
}

TEST(sha1_padding_boundaries) {
  static const struct {
    size_t n;
    const char *digest;
  } v[] = {
      {55, "c1c8bbdc22796e28c0e15163d20899b65621d65a"},
      {56, "c2db330f6083854c99d4b5bfb6e8f29f201be699"},
      {57, "f08f24908d682555111be7ff6f004e78283d989a"},
      {63, "03f09f5b158a7a8cdad920bddc29b81c18a551f5"},
      {64, "0098ba824b5c16427bd7a1122a5a442a25ec644d"},
      {65, "11655326c708d70319be2610e8a57d9a5b959d3b"},
      {119, "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56"},
      {120, "f34c1488385346a55709ba056ddd08280dd4c6d6"},
      {128, "ad5b3fdbcb526778c2839d2f151ea753995e26a0"},
  };
  char a[128];
  memset(a, 'a', sizeof(a));
  for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
    CHECK_STR(sha1_hex(a, v[i].n), v[i].digest);
    /* Every two-piece split gives the same digest. */
    for (size_t cut = 0; cut <= v[i].n; cut++) {
      sl_sha1 c;
      unsigned char d[20];
      char s[41];
      sl__sha1_init(&c);
      sl__sha1_update(&c, a, cut);
      sl__sha1_update(&c, a + cut, v[i].n - cut);
      sl__sha1_final(&c, d);
      hex(d, 20, s);
      CHECK_STR(s, v[i].digest);
    }
  }
}

TEST(sha1_update_null_empty) {
  sl_sha1 c;
  unsigned char d[20];
  char s[41];
  sl__sha1_init(&c);
  sl__sha1_update(&c, "ab", 2);
  sl__sha1_update(&c, NULL, 0);
  sl__sha1_update(&c, "c", 1);
  sl__sha1_final(&c, d);
  hex(d, 20, s);
  CHECK_STR(s, "a9993e364706816aba3e25717850c26c9cd0d89d");
}

/* RFC 4648 section 10. */
static const struct {
  const char *raw, *enc;
} rfc4648[] = {
    {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
    {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

TEST(base64_rfc4648_encode) {
  for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
    size_t n = strlen(rfc4648[i].raw);
    char out[SL_BASE64_ENCODED_SIZE(6)];
    memset(out, 'X', sizeof(out));
    CHECK_EQ(sl__base64_encode(test_guard(rfc4648[i].raw, n), n, out),
             strlen(rfc4648[i].enc));
    CHECK_STR(out, rfc4648[i].enc);
  }
  char z[1] = {'X'};
  CHECK_EQ(sl__base64_encode(NULL, 0, z), 0);
  CHECK_EQ(z[0], '\0');
}

TEST(base64_rfc4648_decode) {
  for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
    size_t n = strlen(rfc4648[i].enc), want = strlen(rfc4648[i].raw);
    unsigned char out[8];
    CHECK_EQ(sl__base64_decode(test_guard(rfc4648[i].enc, n), n, out,
                               sizeof(out)),
             want);
    CHECK_MEM(out, rfc4648[i].raw, want);
    /* Exactly enough room works; one byte less fails and writes nothing. */
    CHECK_EQ(sl__base64_decode(test_guard(rfc4648[i].enc, n), n, out, want),
             want);
    if (want > 0) {
      memset(out, 0xee, sizeof(out));
      CHECK_EQ(sl__base64_decode(test_guard(rfc4648[i].enc, n), n, out,
                                 want - 1),
               -1);
      CHECK_EQ(out[0], 0xee);
    }
  }
  CHECK_EQ(sl__base64_decode("", 0, NULL, 0), 0);
}

TEST(base64_decode_rejects) {
  static const char *bad[] = {
      "Z",        "Zg",       "Zg=",      "Zm9vY",     /* not a multiple of 4 */
      "Zg=a",     "Z===",     "====",     "=Zm9",      /* misplaced padding */
      "Zm=v",     "Zg==Zm9v", "Zm8=Zm9v",              /* padding mid-input */
      "Zh==",     "Zm9=",                             /* non-zero pad bits */
      "Zm9 ",     " Zm9",     "Zm9v\n",   "Zm9\r\nv",  /* whitespace */
      "Zm9-",     "Zm9_",     "Zm.v",     "Zm9\x80",   /* other alphabets */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    unsigned char out[16];
    size_t n = strlen(bad[i]);
    memset(out, 0xee, sizeof(out));
    CHECK_MSG(sl__base64_decode(test_guard(bad[i], n), n, out, sizeof(out)) ==
                  -1,
              "accepted \"%s\"", bad[i]);
    CHECK_EQ(out[0], 0xee);
  }
  /* An embedded NUL is not a terminator: the length rules. */
  CHECK_EQ(sl__base64_decode(test_guard("Zm\0v", 4), 4, NULL, 0), -1);
}

TEST(base64_roundtrip_all_bytes) {
  unsigned char raw[256], back[256];
  char enc[SL_BASE64_ENCODED_SIZE(256)];
  for (int i = 0; i < 256; i++) raw[i] = (unsigned char)i;
  for (size_t n = 0; n <= 256; n++) {
    size_t k = sl__base64_encode(raw + 256 - n, n, enc);
    CHECK_EQ(k, 4 * ((n + 2) / 3));
    CHECK_EQ(strlen(enc), k);
    CHECK_EQ(sl__base64_decode(test_guard(enc, k), k, back, sizeof(back)), n);
    CHECK_MEM(back, raw + 256 - n, n);
  }
  sl__base64_encode(raw, 30, enc);
  CHECK_STR(enc, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd");
}
