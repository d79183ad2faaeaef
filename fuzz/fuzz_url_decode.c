/*
 * libFuzzer target: sl_url_decode, sl_http_var and route matching on
 * arbitrary bytes. Properties: the result is within bounds and
 * NUL-terminated, a successful decode never holds a NUL and never grows,
 * decoding in place agrees with decoding elsewhere, a too-small buffer is
 * SL_EMSGSIZE exactly when the result does not fit, and a path that
 * matches a route contains no ".." segment once decoded.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
 *     fuzz/fuzz_url_decode.c src/http_util.c src/http_parse.c src/utf8.c
 *   cc -DSL_FUZZ_MAIN ... && ./a.out fuzz/regress/url_decode/
 */
#include "fuzz_assert.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int form = data[0] & 1;
  const char *in = (const char *)data + 1;
  size_t n = size - 1;
  char *out = malloc(n + 1), *copy = malloc(n + 1);
  if (!out || !copy) goto done;
  int r = sl_url_decode(in, n, out, n + 1, form);
  ASSERT(r == SL_EINVAL || (r >= 0 && (size_t)r <= n));
  ASSERT(out[r >= 0 ? r : 0] == '\0');
  if (r >= 0) {
    ASSERT(memchr(out, '\0', (size_t)r) == NULL);
    /* In place gives the same bytes. */
    memcpy(copy, in, n);
    ASSERT(sl_url_decode(copy, n, copy, n + 1, form) == r);
    ASSERT(memcmp(copy, out, (size_t)r + 1) == 0);
    /* One byte short of room is SL_EMSGSIZE, exactly enough is fine. */
    ASSERT(sl_url_decode(in, n, copy, (size_t)r, form) == SL_EMSGSIZE);
    ASSERT(sl_url_decode(in, n, copy, (size_t)r + 1, form) == r);
  }
  /* Form variables: the first byte's upper bits pick a name. */
  static const char *const names[] = {"a", "", "a b", "x"};
  char v[64];
  int vr = sl_http_var(in, n, names[(data[0] >> 1) & 3], v, sizeof(v));
  ASSERT(vr == SL_ENOENT || vr == SL_EINVAL || vr == SL_EMSGSIZE ||
         (vr >= 0 && (size_t)vr < sizeof(v) && v[vr] == '\0'));
  /* A path that matches a catch-all route is free of traversal. */
  sl_str path = {in, n}, cap[1];
  if (sl__http_match_path(path, "/**", cap, 1)) {
    ASSERT(cap[0].ptr >= in && cap[0].ptr + cap[0].len <= in + n);
    char *clean = malloc(n + 1);
    ASSERT(clean != NULL);
    ASSERT(sl__http_clean_path(path, clean, n + 1) >= 0);
    for (char *seg = strtok(clean, "/"); seg; seg = strtok(NULL, "/"))
      ASSERT(strcmp(seg, "..") != 0);
    free(clean);
  }
  sl__http_match_path(path, "/a/*/b/**", cap, 1);
done:
  free(out);
  free(copy);
  return 0;
}

#ifdef SL_FUZZ_MAIN
#include "fuzz_main.h"
#endif
