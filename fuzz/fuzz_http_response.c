/*
 * libFuzzer target: the response head parser as the HTTP client uses it,
 * then what the client does next: answer a Digest challenge, and decode a
 * chunked body that follows the head (whole and split, which must agree).
 *
 *   clang -fsanitize=fuzzer,address,undefined -Isrc fuzz/fuzz_http_response.c \
 *     src/http_parse.c src/http_auth.c src/md5.c src/base64.c
 *   cc -DSL_FUZZ_MAIN -Isrc ... && ./a.out fuzz/regress/http_response/
 */
#include "fuzz_assert.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_auth.h"
#include "http_parse.h"


static void inside(sl_str s, const uint8_t *d, size_t n) {
  if (s.len == 0) return;
  const char *b = (const char *)d;
  ASSERT(s.ptr >= b && s.len <= n && s.ptr - b <= (ptrdiff_t)(n - s.len));
}

/* Decode a chunked body in pieces of `step` bytes (0: all at once);
 * returns -1 on error, else the data bytes, and *consumed / *done. */
static long long dechunk(const char *p, size_t n, size_t step, size_t *consumed,
                         int *done, unsigned *sum) {
  sl_chunked st;
  sl__chunked_init(&st);
  long long total = 0;
  *consumed = 0;
  *done = 0;
  *sum = 0;
  for (size_t off = 0; off < n && !*done;) {
    size_t piece = step && step < n - off ? step : n - off;
    const char *q = p + off, *data;
    size_t len = piece, dl;
    int r;
    while ((r = sl__chunked_decode(&st, q, len, &data, &dl, done)) > 0) {
      ASSERT((size_t)r <= len);
      ASSERT(dl == 0 || (data >= q && data + dl <= q + r));
      for (size_t i = 0; i < dl; i++) *sum = *sum * 31 + (unsigned char)data[i];
      total += (long long)dl;
      q += r;
      len -= (size_t)r;
      *consumed += (size_t)r;
      if (*done) break;
    }
    if (r < 0) return -1;
    ASSERT(*done || len == 0);
    off += piece;
  }
  ASSERT(st.total == (unsigned long long)total);
  return total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static sl_http_msg m, m2;
  const char *buf = (const char *)data;
  int r = sl__http_parse_response(buf, size, NULL, &m);
  ASSERT(r >= -1 && r <= (int)size);
  if (r < 0 && size) {
    int p = sl__http_parse_response(buf, size - 1, NULL, &m2);
    ASSERT(p == 0 || p == -1);
  }
  if (r <= 0) return 0;
  ASSERT(sl__http_parse_response(buf, (size_t)r - 1, NULL, &m2) == 0);
  ASSERT(m.status >= 100 && m.status <= 999);
  inside(m.reason, data, size);
  inside(m.proto, data, size);
  ASSERT(m.method.len == 0 && m.uri.len == 0);
  for (size_t i = 0; i < m.num_headers; i++) {
    inside(m.headers[i].name, data, (size_t)r);
    inside(m.headers[i].value, data, (size_t)r);
    sl_digest_challenge ch;
    if (m.headers[i].name.len == 16 &&
        sl__http_digest_challenge(m.headers[i].value, &ch) == 0) {
      char out[4096];
      /* Any challenge we accept can be answered, and the answer is a
       * valid Authorization value our own server side agrees with. */
      int n = sl__http_digest_authorization(&ch, "user", "pw", "GET", "/x",
                                            "0a4f113b", 1, out, sizeof(out));
      ASSERT(n > 0 && (size_t)n == strlen(out));
      sl_str v = {out, (size_t)n};
      sl_http_auth a;
      ASSERT(sl__http_auth_parse(v, &a) == 0);
      ASSERT(sl__http_digest_check(&a, "GET", "pw") == 1);
    }
  }
  if (m.chunked) {
    size_t c1, c2;
    int d1, d2;
    unsigned s1, s2;
    long long t1 = dechunk(buf + r, size - (size_t)r, 0, &c1, &d1, &s1);
    size_t step = 1 + (m.status % 7);
    long long t2 = dechunk(buf + r, size - (size_t)r, step, &c2, &d2, &s2);
    ASSERT(t1 == t2);
    if (t1 >= 0) ASSERT(c1 == c2 && d1 == d2 && s1 == s2);
  }
  return 0;
}

#ifdef SL_FUZZ_MAIN
#include "fuzz_main.h"
#endif
