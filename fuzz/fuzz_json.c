/*
 * libFuzzer target: the JSON getters, escaper and printf on arbitrary
 * bytes. Properties: every result is in bounds, a value found lies inside
 * the text, a string read back is valid UTF-8 without NUL, and escaping
 * then reading back through sl_json_printf's %Q gives the bytes escaped
 * (for inputs the getters accept as a string).
 *
 *   clang -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
 *     fuzz/fuzz_json.c src/http_util.c src/http_parse.c src/utf8.c
 *   cc -DSL_FUZZ_MAIN ... && ./a.out fuzz/regress/json/
 */
#include "fuzz_assert.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice.h"
#include "utf8.h"


static const char *const paths[] = {"$", "$.a", "$[0]", "$.a.b", "$[1].a", "$.a[2]",
                                    "$[0][0][0]", "$.s"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *j = (const char *)data;
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    const char *v = NULL;
    size_t vl = 0;
    int t = sl_json_get(j, size, paths[i], &v, &vl);
    ASSERT(t == SL_ENOENT || t == SL_EINVAL || (t >= SL_JSON_NULL && t <= SL_JSON_OBJECT));
    if (t < 0) continue;
    ASSERT(v >= j && vl > 0 && v + vl <= j + size);
    /* The value alone is a valid document of the same type. */
    ASSERT(sl_json_get(v, vl, "$", NULL, NULL) == t);
    char s[256];
    int r = sl_json_get_str(j, size, paths[i], s, sizeof(s));
    if (t != SL_JSON_STRING) {
      ASSERT(r == SL_EINVAL);
      continue;
    }
    ASSERT(r == SL_EINVAL || r == SL_EMSGSIZE || (r >= 0 && (size_t)r < sizeof(s)));
    if (r < 0) continue;
    ASSERT(s[r] == '\0' && memchr(s, '\0', (size_t)r) == NULL);
    ASSERT(sl__utf8_valid(s, (size_t)r));
    /* Round trip through %Q. */
    char q[256 * 6 + 3], back[256];
    int qn = sl_json_printf(q, sizeof(q), "%.*Q", r, s);
    ASSERT(qn >= 2);
    ASSERT(sl_json_get_str(q, (size_t)qn, "$", back, sizeof(back)) == r);
    ASSERT(memcmp(back, s, (size_t)r) == 0);
  }
  double d;
  int b;
  sl_json_get_num(j, size, "$", &d);
  sl_json_get_bool(j, size, "$[0]", &b);
  /* Escaping arbitrary bytes stays in bounds and has no raw controls. */
  char e[64];
  int en = sl_json_escape(j, size, e, sizeof(e));
  ASSERT(en == SL_EMSGSIZE || (en >= 0 && (size_t)en < sizeof(e) && e[en] == '\0'));
  for (int i = 0; i < en; i++) ASSERT((unsigned char)e[i] >= 0x20 && e[i] != 0x7f);
  return 0;
}

#ifdef SL_FUZZ_MAIN
#include "fuzz_main.h"
#endif
