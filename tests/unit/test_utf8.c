/*
 * The incremental UTF-8 validator: RFC 3629 boundary cases in the spirit of
 * Autobahn section 6 (and Markus Kuhn's stress test it is built on), every
 * split point of valid multi-byte text, fail-fast positions, and an
 * exhaustive comparison with a plain decoder written from RFC 3629
 * section 3 for all sequences of up to three bytes.
 */
#include "test.h"
#include "utf8.h"

static int valid(const char *s, size_t n) {
  return sl__utf8_valid(test_guard(s, n), n);
}

#define VALID(lit) valid((lit), sizeof(lit) - 1)

/* "κόσμε", Autobahn 6.2.1. */
static const char kosme[] = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";

TEST(utf8_valid_boundaries) {
  CHECK(valid("", 0));
  CHECK(VALID("Hello, world"));
  CHECK(VALID("\x00"));                 /* U+0000 is a character */
  CHECK(VALID("\x7f"));                 /* U+007F */
  CHECK(VALID("\xc2\x80"));             /* U+0080, first 2-byte */
  CHECK(VALID("\xdf\xbf"));             /* U+07FF, last 2-byte */
  CHECK(VALID("\xe0\xa0\x80"));         /* U+0800, first 3-byte */
  CHECK(VALID("\xed\x9f\xbf"));         /* U+D7FF, below the surrogates */
  CHECK(VALID("\xee\x80\x80"));         /* U+E000, above them */
  CHECK(VALID("\xef\xbf\xbd"));         /* U+FFFD */
  CHECK(VALID("\xef\xbf\xbf"));         /* U+FFFF: a noncharacter, valid */
  CHECK(VALID("\xef\xbf\xbe"));         /* U+FFFE, likewise (Autobahn 6.22) */
  CHECK(VALID("\xf0\x90\x80\x80"));     /* U+10000, first 4-byte */
  CHECK(VALID("\xf4\x8f\xbf\xbf"));     /* U+10FFFF, the last code point */
  CHECK(VALID("\xf3\xbf\xbf\xbf"));     /* U+FFFFF */
  CHECK(valid(kosme, sizeof(kosme) - 1));
}

TEST(utf8_invalid_sequences) {
  static const struct {
    const char *s;
    size_t n;
  } bad[] = {
#define B(lit) {(lit), sizeof(lit) - 1}
      B("\xc0\xaf"),             /* overlong '/' */
      B("\xc0\x80"),             /* overlong U+0000 */
      B("\xc1\xbf"),             /* overlong U+007F */
      B("\xe0\x80\xaf"),         /* overlong '/', 3 bytes */
      B("\xe0\x9f\xbf"),         /* overlong U+07FF */
      B("\xf0\x80\x80\xaf"),     /* overlong '/', 4 bytes */
      B("\xf0\x8f\xbf\xbf"),     /* overlong U+FFFF */
      B("\xf8\x88\x80\x80\x80"), /* 5-byte form */
      B("\xfc\x84\x80\x80\x80\x80"),
      B("\xed\xa0\x80"),         /* U+D800, high surrogate */
      B("\xed\xad\xbf"),         /* U+DB7F */
      B("\xed\xb0\x80"),         /* U+DC00, low surrogate */
      B("\xed\xbf\xbf"),         /* U+DFFF */
      B("\xed\xa0\x80\xed\xb0\x80"), /* a surrogate pair (CESU-8) */
      B("\xf4\x90\x80\x80"),     /* U+110000 */
      B("\xf7\xbf\xbf\xbf"),     /* U+1FFFFF */
      B("\xf5"), B("\xfe"), B("\xff"), B("\xfe\xfe\xff\xff"),
      B("\x80"), B("\xbf"), B("\x80\xbf\x80"), /* lone continuations */
      B("\xc2\x41"),             /* continuation missing */
      B("\xe1\x80\x41"),
      B("\xf1\x80\x80\x41"),
      B("a\xce\xba\xceZ"),
#undef B
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    CHECK_MSG(!valid(bad[i].s, bad[i].n), "bad[%zu] accepted", i);
}

TEST(utf8_truncated_at_end) {
  /* A valid prefix: feed succeeds, but the text is not complete. */
  static const char *prefixes[] = {"\xce", "\xe1\xbd", "\xe1", "\xf0\x90",
                                   "\xf0\x90\x80", "\xf4\x8f\xbf", "ab\xdf"};
  for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
    uint32_t st = SL_UTF8_ACCEPT;
    size_t n = strlen(prefixes[i]);
    CHECK_EQ(sl__utf8_feed(&st, test_guard(prefixes[i], n), n), 0);
    CHECK_EQ(sl__utf8_complete(st), 0);
    CHECK(!valid(prefixes[i], n));
  }
}

TEST(utf8_split_at_every_boundary) {
  /* Every code point length, with ASCII runs long enough to take the
   * 8-byte fast path on either side of a split. */
  const char text[] = "0123456789\xce\xba\xe1\xbd\xb9\xf0\x9f\x98\x80" "abcdefgh"
                      "\xf4\x8f\xbf\xbf\xed\x9f\xbf\xe0\xa0\x80zz\xc2\x80";
  size_t n = sizeof(text) - 1;
  for (size_t cut = 0; cut <= n; cut++) {
    for (size_t cut2 = cut; cut2 <= n; cut2++) {
      uint32_t st = SL_UTF8_ACCEPT;
      CHECK_EQ(sl__utf8_feed(&st, test_guard(text, cut), cut), 0);
      CHECK_EQ(sl__utf8_feed(&st, test_guard(text + cut, cut2 - cut),
                             cut2 - cut),
               0);
      CHECK_EQ(sl__utf8_feed(&st, test_guard(text + cut2, n - cut2), n - cut2),
               0);
      CHECK_EQ(sl__utf8_complete(st), 1);
    }
  }
  /* One byte at a time. */
  uint32_t st = SL_UTF8_ACCEPT;
  for (size_t i = 0; i < n; i++)
    CHECK_EQ(sl__utf8_feed(&st, test_guard(text + i, 1), 1), 0);
  CHECK_EQ(sl__utf8_complete(st), 1);
}

TEST(utf8_fails_fast) {
  /* Autobahn 6.4.1-6.4.4: "κόσμε" then U+D800... The error shows at the
   * byte that makes it one (A0 after ED), not at the end of the text. */
  uint32_t st = SL_UTF8_ACCEPT;
  CHECK_EQ(sl__utf8_feed(&st, kosme, sizeof(kosme) - 1), 0);
  CHECK_EQ(sl__utf8_feed(&st, "\xed", 1), 0);
  CHECK_EQ(sl__utf8_feed(&st, "\xa0", 1), -1);
  /* F4 is fine, F4 90 is not. */
  st = SL_UTF8_ACCEPT;
  CHECK_EQ(sl__utf8_feed(&st, "\xf4", 1), 0);
  CHECK_EQ(sl__utf8_feed(&st, "\x90", 1), -1);
  /* Sticky: once invalid, always invalid. */
  CHECK_EQ(sl__utf8_feed(&st, "a", 1), -1);
  CHECK_EQ(sl__utf8_feed(&st, NULL, 0), -1);
  CHECK_EQ(sl__utf8_complete(st), 0);
  /* A corrupt state is treated as invalid. */
  st = 0xdeadbeef;
  CHECK_EQ(sl__utf8_feed(&st, "a", 1), -1);
  CHECK_EQ(sl__utf8_complete(st), 0);
}

TEST(utf8_bad_byte_at_every_position) {
  /* The 8-byte ASCII skip must not step over a bad byte wherever it is. */
  char buf[64];
  for (size_t len = 1; len <= sizeof(buf); len++) {
    for (size_t pos = 0; pos < len; pos++) {
      memset(buf, 'a', len);
      buf[pos] = (char)0xff;
      CHECK_MSG(!valid(buf, len), "len %zu pos %zu", len, pos);
      buf[pos] = (char)0x80;
      CHECK_MSG(!valid(buf, len), "len %zu pos %zu", len, pos);
    }
  }
}

/* Reference: decode by the RFC 3629 section 3 rules directly. Returns 1
 * when `s` is complete, valid UTF-8. */
static int ref_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    size_t len;
    unsigned long cp, min;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return 0;
    }
    if (n - i < len) return 0;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return 0;
      cp = cp << 6 | (s[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    i += len;
  }
  return 1;
}

TEST(utf8_exhaustive_up_to_three_bytes) {
  unsigned char s[3];
  for (unsigned a = 0; a < 256; a++) {
    s[0] = (unsigned char)a;
    CHECK_EQ(sl__utf8_valid(s, 1), ref_valid(s, 1));
    for (unsigned b = 0; b < 256; b++) {
      s[1] = (unsigned char)b;
      CHECK_EQ(sl__utf8_valid(s, 2), ref_valid(s, 2));
      for (unsigned c = 0; c < 256; c++) {
        s[2] = (unsigned char)c;
        if (sl__utf8_valid(s, 3) != ref_valid(s, 3))
          sl__test_fail(__FILE__, __LINE__, "%02x %02x %02x", a, b, c);
      }
    }
  }
}

TEST(utf8_every_code_point) {
  /* Each scalar value in its shortest form is valid; each surrogate, and
   * each value in a form one byte too long, is not. */
  for (unsigned long cp = 0; cp <= 0x10ffff; cp++) {
    unsigned char s[4];
    size_t n;
    if (cp < 0x80) {
      s[0] = (unsigned char)cp, n = 1;
    } else if (cp < 0x800) {
      s[0] = (unsigned char)(0xc0 | cp >> 6);
      s[1] = (unsigned char)(0x80 | (cp & 0x3f)), n = 2;
    } else if (cp < 0x10000) {
      s[0] = (unsigned char)(0xe0 | cp >> 12);
      s[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
      s[2] = (unsigned char)(0x80 | (cp & 0x3f)), n = 3;
    } else {
      s[0] = (unsigned char)(0xf0 | cp >> 18);
      s[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
      s[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
      s[3] = (unsigned char)(0x80 | (cp & 0x3f)), n = 4;
    }
    int want = !(cp >= 0xd800 && cp <= 0xdfff);
    if (sl__utf8_valid(s, n) != want)
      sl__test_fail(__FILE__, __LINE__, "U+%04lX", cp);
    if (cp < 0x10000) { /* the 4-byte overlong form */
      unsigned char o[4] = {0xf0, (unsigned char)(0x80 | cp >> 12),
                            (unsigned char)(0x80 | ((cp >> 6) & 0x3f)),
                            (unsigned char)(0x80 | (cp & 0x3f))};
      if (sl__utf8_valid(o, 4))
        sl__test_fail(__FILE__, __LINE__, "overlong U+%04lX", cp);
    }
  }
  /* Everything past U+10FFFF that a 4-byte form can hold. */
  for (unsigned long cp = 0x110000; cp < 0x200000; cp += 0x1001) {
    unsigned char s[4] = {(unsigned char)(0xf0 | cp >> 18),
                          (unsigned char)(0x80 | ((cp >> 12) & 0x3f)),
                          (unsigned char)(0x80 | ((cp >> 6) & 0x3f)),
                          (unsigned char)(0x80 | (cp & 0x3f))};
    CHECK(!sl__utf8_valid(s, 4));
  }
}
