/* The HTTP helpers (src/http_util.c): URL decoding, form variables,
 * cookies, JSON, case-insensitive compare, hostile inputs included. Inputs
 * that are not NUL-terminated strings are put against a guard page
 * (test_guard) so a read past their end crashes. */
#include <math.h>
#include <string.h>

#include "http_parse.h"
#include "test.h"

static int dec(const char *in, char *out, size_t cap, int form) {
  return sl_url_decode(test_guard(in, strlen(in)), strlen(in), out, cap, form);
}

TEST(http_util_url_decode) {
  char out[64];
  CHECK_EQ(dec("a%20b+c", out, sizeof(out), 0), 5);
  CHECK_STR(out, "a b+c");
  CHECK_EQ(dec("a%20b+c", out, sizeof(out), 1), 5);
  CHECK_STR(out, "a b c");
  CHECK_EQ(dec("%e2%82%AC", out, sizeof(out), 0), 3);
  CHECK_STR(out, "\xe2\x82\xac");
  CHECK_EQ(dec("", out, sizeof(out), 0), 0);
  CHECK_STR(out, "");
  /* Bad escapes, NUL: SL_EINVAL, and dst is left "". */
  static const char *const bad[] = {"%", "%4", "%g0", "%0g", "ab%", "a%%20", "%00", "x%00y"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    strcpy(out, "junk");
    CHECK_MSG(dec(bad[i], out, sizeof(out), 0) == SL_EINVAL, "%s", bad[i]);
    CHECK_STR(out, "");
  }
  CHECK_EQ(sl_url_decode("a\0b", 3, out, sizeof(out), 0), SL_EINVAL);
  /* Room: the result and its NUL. */
  CHECK_EQ(dec("abc", out, 3, 0), SL_EMSGSIZE);
  CHECK_STR(out, "");
  CHECK_EQ(dec("abc", out, 4, 0), 3);
  CHECK_EQ(dec("%41%42", out, 3, 0), 2);
  CHECK_EQ(dec("a", NULL, 0, 0), SL_EMSGSIZE);
  CHECK_EQ(dec("a", out, 0, 0), SL_EMSGSIZE);
  /* In place. */
  char b[] = "x%2Fy+z";
  CHECK_EQ(sl_url_decode(b, strlen(b), b, sizeof(b), 1), 5);
  CHECK_STR(b, "x/y z");
}

static int var(const char *buf, const char *name, char *out, size_t cap) {
  return sl_http_var(test_guard(buf, strlen(buf)), strlen(buf), name, out, cap);
}

TEST(http_util_form_vars) {
  char out[32];
  const char *form = "ssid=My+Net&pass=p%26ss%3Dw&empty=&flag&a%20b=c&dup=1&dup=2";
  CHECK_EQ(var(form, "ssid", out, sizeof(out)), 6);
  CHECK_STR(out, "My Net");
  CHECK_EQ(var(form, "pass", out, sizeof(out)), 6);
  CHECK_STR(out, "p&ss=w");
  CHECK_EQ(var(form, "empty", out, sizeof(out)), 0);
  CHECK_EQ(var(form, "flag", out, sizeof(out)), 0);
  CHECK_EQ(var(form, "a b", out, sizeof(out)), 1); /* names are decoded */
  CHECK_STR(out, "c");
  CHECK_EQ(var(form, "dup", out, sizeof(out)), 1);
  CHECK_STR(out, "1");
  CHECK_EQ(var(form, "nope", out, sizeof(out)), SL_ENOENT);
  CHECK_EQ(var(form, "ss", out, sizeof(out)), SL_ENOENT);
  CHECK_EQ(var(form, "ssid", out, 6), SL_EMSGSIZE);
  CHECK_EQ(var("a=%zz", "a", out, sizeof(out)), SL_EINVAL);
  CHECK_EQ(var("a=x%00", "a", out, sizeof(out)), SL_EINVAL);
  CHECK_EQ(var("?a=1", "a", out, sizeof(out)), 1);
  CHECK_EQ(var("", "a", out, sizeof(out)), SL_ENOENT);
  CHECK_EQ(var("&&&=&", "a", out, sizeof(out)), SL_ENOENT);
  CHECK_EQ(sl_http_var(NULL, 0, "a", out, sizeof(out)), SL_ENOENT);
  CHECK_EQ(sl_http_var("a=1", 3, NULL, out, sizeof(out)), SL_ENOENT);
  /* A length, not a terminator, ends the buffer. */
  CHECK_EQ(sl_http_var("a=12&b=3", 3, "a", out, sizeof(out)), 1);
  CHECK_STR(out, "1");
}

static void msg_with(sl_http_msg *m, const char *const *cookies, size_t n) {
  memset(m, 0, sizeof(*m));
  for (size_t i = 0; i < n; i++) {
    m->headers[i].name = (sl_str){i % 2 ? "cookie" : "Cookie", 6};
    /* One guard page is shared by every test_guard copy: plain strings. */
    m->headers[i].value = (sl_str){cookies[i], strlen(cookies[i])};
  }
  m->num_headers = n;
}

TEST(http_util_cookies) {
  sl_http_msg m;
  char out[32];
  static const char *const c1[] = {"sid=abc123; theme=\"dark\"; empty=; x=1=2 ;  sp = v ",
                                   "late=yes;;;bare;sid=second"};
  msg_with(&m, c1, 2);
  CHECK_EQ(sl_http_cookie(&m, "sid", out, sizeof(out)), 6);
  CHECK_STR(out, "abc123");
  CHECK_EQ(sl_http_cookie(&m, "theme", out, sizeof(out)), 4);
  CHECK_STR(out, "dark");
  CHECK_EQ(sl_http_cookie(&m, "empty", out, sizeof(out)), 0);
  CHECK_EQ(sl_http_cookie(&m, "x", out, sizeof(out)), 3);
  CHECK_STR(out, "1=2");
  CHECK_EQ(sl_http_cookie(&m, "sp", out, sizeof(out)), 1);
  CHECK_EQ(sl_http_cookie(&m, "late", out, sizeof(out)), 3);
  CHECK_EQ(sl_http_cookie(&m, "bare", out, sizeof(out)), SL_ENOENT);
  CHECK_EQ(sl_http_cookie(&m, "SID", out, sizeof(out)), SL_ENOENT);
  CHECK_EQ(sl_http_cookie(&m, "", out, sizeof(out)), SL_ENOENT);
  CHECK_EQ(sl_http_cookie(&m, "sid", out, 6), SL_EMSGSIZE);
  CHECK_STR(out, "");
  static const char *const c2[] = {"\"", "=", ";", "a"};
  msg_with(&m, c2, 4);
  CHECK_EQ(sl_http_cookie(&m, "a", out, sizeof(out)), SL_ENOENT);
  CHECK_EQ(sl_http_cookie(NULL, "a", out, sizeof(out)), SL_ENOENT);

  char h[256];
  CHECK_EQ(sl_http_set_cookie(h, sizeof(h), "sid", "abc", NULL), (int)strlen("Set-Cookie: sid=abc\r\n"));
  CHECK_STR(h, "Set-Cookie: sid=abc\r\n");
  sl_cookie_opts o = {.path = "/", .max_age = 3600, .http_only = 1, .secure = 1,
                      .same_site = "lax"};
  CHECK(sl_http_set_cookie(h, sizeof(h), "sid", "abc", &o) > 0);
  CHECK_STR(h, "Set-Cookie: sid=abc; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Lax\r\n");
  o = (sl_cookie_opts){.max_age = -1, .domain = "example.com"};
  CHECK(sl_http_set_cookie(h, sizeof(h), "sid", "", &o) > 0);
  CHECK_STR(h, "Set-Cookie: sid=; Domain=example.com; Max-Age=0\r\n");
  /* Whatever would break the header or the cookie is refused. */
  static const char *const badv[] = {"a b", "a;b", "a,b", "a\"b", "a\\b", "a\r\nX: y", "\x7f",
                                     "\x80"};
  for (size_t i = 0; i < sizeof(badv) / sizeof(badv[0]); i++)
    CHECK_MSG(sl_http_set_cookie(h, sizeof(h), "n", badv[i], NULL) == SL_EINVAL, "%zu", i);
  static const char *const badn[] = {"", "a b", "a=b", "a;", "a\r\n", "(x)"};
  for (size_t i = 0; i < sizeof(badn) / sizeof(badn[0]); i++)
    CHECK_EQ(sl_http_set_cookie(h, sizeof(h), badn[i], "v", NULL), SL_EINVAL);
  o = (sl_cookie_opts){.path = "/a;b"};
  CHECK_EQ(sl_http_set_cookie(h, sizeof(h), "n", "v", &o), SL_EINVAL);
  o = (sl_cookie_opts){.path = "/a\r\nX: 1"};
  CHECK_EQ(sl_http_set_cookie(h, sizeof(h), "n", "v", &o), SL_EINVAL);
  o = (sl_cookie_opts){.same_site = "None"};
  CHECK_EQ(sl_http_set_cookie(h, sizeof(h), "n", "v", &o), SL_EINVAL);
  o.secure = 1;
  CHECK(sl_http_set_cookie(h, sizeof(h), "n", "v", &o) > 0);
  o = (sl_cookie_opts){.same_site = "sometimes"};
  CHECK_EQ(sl_http_set_cookie(h, sizeof(h), "n", "v", &o), SL_EINVAL);
  CHECK_EQ(sl_http_set_cookie(h, 10, "sid", "abc", NULL), SL_EMSGSIZE);
  CHECK_STR(h, "");
  CHECK_EQ(sl_http_set_cookie(h, 21, "sid", "abc", NULL), SL_EMSGSIZE);
  CHECK_EQ(sl_http_set_cookie(h, 22, "sid", "abc", NULL), 21);
}

static int jget(const char *j, const char *path, const char **v, size_t *vl) {
  return sl_json_get(test_guard(j, strlen(j)), strlen(j), path, v, vl);
}

TEST(http_util_json_get) {
  const char *j = " {\"a\": {\"b\": [10, -2.5e3, {\"c\": \"x\\\"y\"}], \"t\": true, \"f\": false,"
                  " \"n\": null}, \"s\": \"caf\\u00e9 \\ud83d\\ude00\", \"e\": [], \"o\": {}} ";
  const char *v;
  size_t vl;
  CHECK_EQ(jget(j, "$", &v, &vl), SL_JSON_OBJECT);
  CHECK_EQ(v[0], '{');
  CHECK_EQ(v[vl - 1], '}');
  CHECK_EQ(jget(j, "$.a.b", &v, &vl), SL_JSON_ARRAY);
  CHECK_EQ(jget(j, "$.a.b[0]", &v, &vl), SL_JSON_NUMBER);
  CHECK_EQ(vl, 2);
  CHECK_EQ(jget(j, "$.a.b[2].c", &v, &vl), SL_JSON_STRING);
  CHECK_EQ(vl, 6);
  CHECK_EQ(jget(j, "$.a.t", NULL, NULL), SL_JSON_TRUE);
  CHECK_EQ(jget(j, "$.a.f", NULL, NULL), SL_JSON_FALSE);
  CHECK_EQ(jget(j, "$.a.n", NULL, NULL), SL_JSON_NULL);
  CHECK_EQ(jget(j, "$.e", NULL, NULL), SL_JSON_ARRAY);
  CHECK_EQ(jget(j, "$.o", NULL, NULL), SL_JSON_OBJECT);
  /* Absent: SL_ENOENT. */
  CHECK_EQ(jget(j, "$.a.b[3]", NULL, NULL), SL_ENOENT);
  CHECK_EQ(jget(j, "$.e[0]", NULL, NULL), SL_ENOENT);
  CHECK_EQ(jget(j, "$.o.x", NULL, NULL), SL_ENOENT);
  CHECK_EQ(jget(j, "$.zz", NULL, NULL), SL_ENOENT);
  CHECK_EQ(jget(j, "$.a[0]", NULL, NULL), SL_ENOENT);
  CHECK_EQ(jget(j, "$.a.b.c", NULL, NULL), SL_ENOENT);
  CHECK_EQ(jget(j, "$.s.x", NULL, NULL), SL_ENOENT);
  CHECK_EQ(jget(j, "$.a.b[99999999999999999999]", NULL, NULL), SL_EINVAL);
  /* Malformed paths. */
  static const char *const badp[] = {"", "a", "$.", "$..a", "$[", "$[x]", "$[1", "$a", "$[-1]"};
  for (size_t i = 0; i < sizeof(badp) / sizeof(badp[0]); i++)
    CHECK_MSG(jget(j, badp[i], NULL, NULL) == SL_EINVAL, "%s", badp[i]);
  CHECK_EQ(jget(j, "$.zz[", NULL, NULL), SL_EINVAL);
  /* Malformed documents, whatever the path. */
  static const char *const badj[] = {"", " ", "{", "}", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}",
                                     "{a:1}", "[01]", "[1.]", "[.5]", "[1e]", "[-]", "[+1]",
                                     "\"\\x\"", "\"\\u12\"", "\"a\nb\"", "\"abc", "tru",
                                     "nul", "[1] [2]", "{\"a\":1,}", "[\"\\", "'a'", "[1 2]"};
  for (size_t i = 0; i < sizeof(badj) / sizeof(badj[0]); i++)
    CHECK_MSG(jget(badj[i], "$", NULL, NULL) == SL_EINVAL, "%s", badj[i]);
  CHECK_EQ(sl_json_get(NULL, 0, "$", NULL, NULL), SL_EINVAL);
  CHECK_EQ(sl_json_get("[1]", 3, NULL, NULL, NULL), SL_EINVAL);
  CHECK_EQ(sl_json_get("[1] junk", 3, "$[0]", NULL, NULL), SL_JSON_NUMBER);
  /* Nesting: up to the cap, not one level more, and no deep recursion
   * however deep the input. */
  static char deep[200001];
  for (int d = SL_JSON_MAX_DEPTH; d <= SL_JSON_MAX_DEPTH + 1; d++) {
    memset(deep, '[', (size_t)d);
    memset(deep + d, ']', (size_t)d);
    deep[2 * d] = '\0';
    CHECK_EQ(jget(deep, "$", NULL, NULL), d == SL_JSON_MAX_DEPTH ? SL_JSON_ARRAY : SL_EINVAL);
  }
  memset(deep, '[', 100000);
  memset(deep + 100000, ']', 100000);
  deep[200000] = '\0';
  CHECK_EQ(jget(deep, "$", NULL, NULL), SL_EINVAL);
}

TEST(http_util_json_num_str_bool) {
  const char *j = "{\"fps\": 25, \"g\": -2.5e3, \"big\": 1e999, \"s\": \"caf\\u00e9 \\ud83d\\ude00"
                  " \\\"q\\\" \\\\ \\/ \\b\\f\\n\\r\\t\", \"on\": true, \"lone\": \"\\ud83d\","
                  " \"low\": \"\\ude00x\", \"nul\": \"a\\u0000b\", \"bad8\": \"\xff\"}";
  size_t n = strlen(j);
  const char *g = test_guard(j, n);
  double d = 0;
  CHECK_EQ(sl_json_get_num(g, n, "$.fps", &d), 0);
  CHECK(d == 25);
  CHECK_EQ(sl_json_get_num(g, n, "$.g", &d), 0);
  CHECK(d == -2500);
  CHECK_EQ(sl_json_get_num(g, n, "$.big", &d), SL_ERANGE);
  CHECK_EQ(sl_json_get_num(g, n, "$.s", &d), SL_EINVAL);
  CHECK_EQ(sl_json_get_num(g, n, "$.none", &d), SL_ENOENT);
  int b = 0;
  CHECK_EQ(sl_json_get_bool(g, n, "$.on", &b), 0);
  CHECK_EQ(b, 1);
  CHECK_EQ(sl_json_get_bool(g, n, "$.fps", &b), SL_EINVAL);
  char out[64];
  const char *want = "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\" \\ / \b\f\n\r\t";
  CHECK_EQ(sl_json_get_str(g, n, "$.s", out, sizeof(out)), (int)strlen(want));
  CHECK_STR(out, want);
  CHECK_EQ(sl_json_get_str(g, n, "$.s", out, strlen(want)), SL_EMSGSIZE);
  CHECK_STR(out, "");
  CHECK_EQ(sl_json_get_str(g, n, "$.s", out, strlen(want) + 1), (int)strlen(want));
  CHECK_EQ(sl_json_get_str(g, n, "$.lone", out, sizeof(out)), SL_EINVAL);
  CHECK_EQ(sl_json_get_str(g, n, "$.low", out, sizeof(out)), SL_EINVAL);
  CHECK_EQ(sl_json_get_str(g, n, "$.nul", out, sizeof(out)), SL_EINVAL);
  CHECK_EQ(sl_json_get_str(g, n, "$.bad8", out, sizeof(out)), SL_EINVAL);
  CHECK_EQ(sl_json_get_str(g, n, "$.fps", out, sizeof(out)), SL_EINVAL);
  CHECK_EQ(sl_json_get_str(g, n, "$.x", out, sizeof(out)), SL_ENOENT);
  CHECK_EQ(sl_json_get_str(g, n, "$.s", NULL, 0), SL_EMSGSIZE);
  /* A 4-byte character needs its 4 bytes and the NUL. */
  CHECK_EQ(sl_json_get_str("\"\\ud83d\\ude00\"", 14, "$", out, 4), SL_EMSGSIZE);
  CHECK_EQ(sl_json_get_str("\"\\ud83d\\ude00\"", 14, "$", out, 5), 4);
}

TEST(http_util_json_escape_printf) {
  char out[128];
  CHECK_EQ(sl_json_escape("a\"b\\c\n\x01\x7f/", 9, out, sizeof(out)), 22);
  CHECK_STR(out, "a\\\"b\\\\c\\n\\u0001\\u007f/");
  CHECK_EQ(sl_json_escape("abc", 3, out, 3), SL_EMSGSIZE);
  CHECK_EQ(sl_json_escape("abc", 3, out, 4), 3);
  CHECK_EQ(sl_json_escape("", 0, out, 1), 0);
  CHECK_EQ(sl_json_escape("a\0b", 3, out, sizeof(out)), 8);
  CHECK_STR(out, "a\\u0000b");

  int n = sl_json_printf(out, sizeof(out), "{%Q:%d,%Q:%Q,%Q:%B,%Q:%.2f,%Q:%s,%Q:%.*Q,%Q:%Q}",
                         "fps", 25, "name", "c\"am", "on", 1, "x", 1.5, "raw", "[1,2]", "cut",
                         2, "abcdef", "nil", (const char *)NULL);
  const char *want = "{\"fps\":25,\"name\":\"c\\\"am\",\"on\":true,\"x\":1.50,\"raw\":[1,2],"
                     "\"cut\":\"ab\",\"nil\":null}";
  CHECK_EQ(n, (int)strlen(want));
  CHECK_STR(out, want);
  CHECK_EQ(sl_json_printf(out, sizeof(out), "[%lld,%zu,%u,%x,%5d,%-3d|,%%,%ld,%g,%e]", -1LL,
                          (size_t)7, 3u, 255u, 42, 1, 9L, NAN, INFINITY), 36);
  CHECK_STR(out, "[-1,7,3,ff,   42,1  |,%,9,null,null]");
  CHECK_EQ(sl_json_printf(out, sizeof(out), "%*d|%.*s", 4, 7, 2, "xyz"), 7);
  CHECK_STR(out, "   7|xy");
  /* Too small, unknown conversions: an error and "". */
  CHECK_EQ(sl_json_printf(out, 5, "%Q", "abcd"), SL_EMSGSIZE);
  CHECK_STR(out, "");
  CHECK_EQ(sl_json_printf(out, 7, "%Q", "abcd"), 6);
  CHECK_EQ(sl_json_printf(out, 6, "%Q", "abcd"), SL_EMSGSIZE);
  CHECK_EQ(sl_json_printf(out, sizeof(out), "%n", &n), SL_EINVAL);
  CHECK_STR(out, "");
  CHECK_EQ(sl_json_printf(out, sizeof(out), "abc%"), SL_EINVAL);
  CHECK_EQ(sl_json_printf(out, sizeof(out), "%lQ", "a"), SL_EINVAL);
  CHECK_EQ(sl_json_printf(out, sizeof(out), "%Lf", 1.0), SL_EINVAL);
  CHECK_EQ(sl_json_printf(out, 0, "x"), SL_EMSGSIZE);
  CHECK_EQ(sl_json_printf(out, 1, ""), 0);
  /* Round trip: what printf writes, the getters read back. */
  n = sl_json_printf(out, sizeof(out), "{%Q:[%d,{%Q:%Q}]}", "a\tb", 3, "k", "v\x01\"\\");
  CHECK(n > 0);
  char s[16];
  /* Keys are compared as written: the escaped form names it. */
  CHECK_EQ(sl_json_get(out, (size_t)n, "$.a\tb", NULL, NULL), SL_ENOENT);
  CHECK_EQ(sl_json_get(out, (size_t)n, "$.a\\tb[1]", NULL, NULL), SL_JSON_OBJECT);
  CHECK_EQ(sl_json_get_str(out, (size_t)n, "$.a\\tb[1].k", s, sizeof(s)), 4);
  CHECK_STR(s, "v\x01\"\\");
}

TEST(http_util_strcaseeq) {
  CHECK_EQ(sl_strcaseeq("Content-Type", 12, "content-type"), 1);
  CHECK_EQ(sl_strcaseeq("CONTENT-TYPEx", 12, "content-type"), 1);
  CHECK_EQ(sl_strcaseeq("Content-Typ", 11, "content-type"), 0);
  CHECK_EQ(sl_strcaseeq("Content-Type", 12, "content-typ"), 0);
  CHECK_EQ(sl_strcaseeq("", 0, ""), 1);
  CHECK_EQ(sl_strcaseeq("a\0b", 3, "a"), 0);
  CHECK_EQ(sl_strcaseeq("\xc9", 1, "\xe9"), 0); /* ASCII only */
  CHECK_EQ(sl_strcaseeq("[", 1, "{"), 0);
  CHECK_EQ(sl_strcaseeq(NULL, 0, "a"), 0);
}
