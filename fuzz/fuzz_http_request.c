/*
 * libFuzzer target: the request head parser, and the helpers a server runs
 * on what it returns (header lookup, query, path cleaning, Range, auth).
 *
 * Besides "no crash, no over-read", it checks the parser's contract:
 * every slice lies inside the input, a complete head gives 0 for each of
 * its prefixes, an error never turns into something else as bytes are
 * added, and tighter limits never accept what looser ones reject.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Isrc fuzz/fuzz_http_request.c \
 *     src/http_parse.c src/http_auth.c src/md5.c src/base64.c
 *   cc -DSL_FUZZ_MAIN -Isrc ... && ./a.out fuzz/regress/http_request/
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

static void helpers(const sl_http_msg *m, const uint8_t *d, size_t n) {
  char out[16384];
  int r = sl__http_clean_path(m->path, out, sizeof(out));
  if (r >= 0) {
    ASSERT((size_t)r == strlen(out) || memchr(out, 0, (size_t)r) == NULL);
    ASSERT(r == 0 || out[0] != '/');
    ASSERT(strcmp(out, "..") != 0 && strncmp(out, "../", 3) != 0 &&
           !strstr(out, "/../") && !strchr(out, '\\'));
    ASSERT(!(r >= 3 && strcmp(out + r - 3, "/..") == 0));
  }
  sl__http_query_get(m->query, "a", out, sizeof(out));
  sl__http_query_get(m->query, "", out, 4);
  r = sl__url_decode(m->uri.ptr, m->uri.len, out, sizeof(out), 1);
  ASSERT(r <= (int)m->uri.len);
  const sl_str *v = sl__http_header(m, "range");
  if (v) {
    unsigned long long s = 0, e = 0, size = n * 7 + (d[0] & 3);
    if (sl__http_parse_range(*v, size, &s, &e) == 1) ASSERT(s <= e && e < size);
  }
  v = sl__http_header(m, "authorization");
  if (v) {
    sl_http_auth a;
    if (sl__http_auth_parse(*v, &a) == 0) {
      inside(a.token, d, n);
      inside(a.username, d, n);
      inside(a.response, d, n);
      sl__http_digest_check(&a, "GET", "pw");
    }
    sl__http_basic_check(*v, "user", "pw");
  }
  ASSERT(m->num_headers <= SL_HTTP_MAX_HEADERS);
  for (size_t i = 0; i < m->num_headers; i++) {
    inside(m->headers[i].name, d, m->head_len);
    inside(m->headers[i].value, d, m->head_len);
    ASSERT(m->headers[i].name.len > 0);
  }
  /* Looking a header up by its own name finds it (or an earlier twin). */
  if (m->num_headers && m->headers[0].name.len < sizeof(out)) {
    memcpy(out, m->headers[0].name.ptr, m->headers[0].name.len);
    out[m->headers[0].name.len] = '\0';
    ASSERT(sl__http_header(m, out) == &m->headers[0].value);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static sl_http_msg m, m2;
  const char *buf = (const char *)data;
  int why = -1;
  int r = sl__http_parse_request_why(buf, size, NULL, &m, &why);
  ASSERT(r <= (int)size || r < 0);
  ASSERT(r >= 0 || r == -400 || r == -414 || r == -431 || r == -501 ||
         r == -505);
  /* A refusal names a reason whose status is the one returned. */
  ASSERT(r < 0 ? why > SL_PE_NONE && why < SL_PE_COUNT &&
                     sl__http_perr_status(why) == -r && *sl__http_perr_text(why)
               : why == SL_PE_NONE);
  if (r > 0) {
    ASSERT(m.head_len == (size_t)r);
    inside(m.method, data, size);
    inside(m.uri, data, size);
    inside(m.query, data, size);
    inside(m.proto, data, size);
    if (!(m.path.len == 1 && m.path.ptr[0] == '/')) inside(m.path, data, size);
    ASSERT(m.version_minor == 0 || m.version_minor == 1);
    ASSERT(!m.chunked || m.content_length == -1);
    helpers(&m, data, size);
    /* Every prefix of a complete head is "need more". */
    ASSERT(sl__http_parse_request(buf, (size_t)r - 1, NULL, &m2) == 0);
    ASSERT(sl__http_parse_request(buf, (size_t)r / 2, NULL, &m2) == 0);
  } else if (r < 0 && size > 0) {
    int p = sl__http_parse_request(buf, size - 1, NULL, &m2);
    ASSERT(p == 0 || p == r);
    p = sl__http_parse_request(buf, size / 2, NULL, &m2);
    ASSERT(p == 0 || p == r);
  }
  /* Tighter limits: an accepted head is accepted identically by the
   * defaults; a rejected one stays rejected with the same code unless a
   * limit fired first. */
  sl_http_limits tight = {48, 200, 4};
  int t = sl__http_parse_request(buf, size, &tight, &m2);
  if (t > 0) ASSERT(t == r);
  if (r < 0) ASSERT(t < 0);
  if (t < 0 && t != -414 && t != -431) ASSERT(t == r);

  /* The free-standing helpers on raw bytes. */
  char out[4096];
  sl_str raw = {buf, size < 4000 ? size : 4000};
  sl__http_clean_path(raw, out, sizeof(out));
  sl__url_decode(raw.ptr, raw.len, out, sizeof(out), 0);
  unsigned long long s = 0, e = 0;
  if (sl__http_parse_range(raw, 1000, &s, &e) == 1) ASSERT(s <= e && e < 1000);
  return 0;
}

#ifdef SL_FUZZ_MAIN
#include "fuzz_main.h"
#endif
