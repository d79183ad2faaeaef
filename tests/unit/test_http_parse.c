/*
 * Tests of src/http_parse.c: request and response heads, the chunked
 * decoder, percent-decoding, query parameters, Range and path cleaning.
 *
 * Every parser input goes through test_guard(), so it ends right before a
 * PROT_NONE page and a one-byte over-read crashes the test.
 */
#include <stdlib.h>

#include "http_parse.h"
#include "common.h"


#define CHECK_HDR(m, name, lit)                                              \
  do {                                                                       \
    const sl_str *h_ = sl__http_header(&(m), (name));                        \
    CHECK_MSG(h_ != NULL, "header %s absent", (name));                       \
    CHECK_SV(*h_, (lit));                                                    \
  } while (0)

/* Parse `n` bytes of `s` placed against the guard page. */
static int reqn(const void *s, size_t n, const sl_http_limits *l,
                sl_http_msg *m) {
  return sl__http_parse_request(test_guard(s, n), n, l, m);
}

static int req(const char *s, sl_http_msg *m) {
  return reqn(s, strlen(s), NULL, m);
}

static int respn(const void *s, size_t n, const sl_http_limits *l,
                 sl_http_msg *m) {
  return sl__http_parse_response(test_guard(s, n), n, l, m);
}

static int resp(const char *s, sl_http_msg *m) {
  return respn(s, strlen(s), NULL, m);
}

/* Feed every prefix of s, as a connection receiving one byte at a time
 * would. A head that parses (want > 0) gives 0 for every shorter prefix; an
 * error may show up early, but once it does it stays the same. Then the
 * fields of the last parse must equal those of a one-shot parse. */
static void incremental(int is_request, const char *s, size_t n,
                        const sl_http_limits *l, int want) {
  static sl_http_msg m, one;
  int seen_err = 0;
  for (size_t k = 0; k < n; k++) {
    int r = is_request ? reqn(s, k, l, &m) : respn(s, k, l, &m);
    if (want > 0 || !seen_err) {
      CHECK_MSG(r == 0 || (want < 0 && r == want),
                "prefix %zu of %zu gave %d (want 0 or %d)", k, n, r, want);
    } else {
      CHECK_MSG(r == want, "prefix %zu gave %d after the error", k, r);
    }
    if (r < 0) seen_err = 1;
  }
  char *copy = malloc(n ? n : 1);
  CHECK(copy != NULL);
  memcpy(copy, s, n);
  int r1 = is_request ? sl__http_parse_request(copy, n, l, &one)
                      : sl__http_parse_response(copy, n, l, &one);
  const char *g = test_guard(s, n);
  int r2 = is_request ? sl__http_parse_request(g, n, l, &m)
                      : sl__http_parse_response(g, n, l, &m);
  CHECK_EQ(r1, want);
  CHECK_EQ(r2, want);
  if (want > 0) {
#define SAME(f)                                                              \
  CHECK_EQ(m.f.len, one.f.len);                                              \
  if (m.f.len) CHECK_EQ(m.f.ptr - g, one.f.ptr - copy)
    SAME(method);
    SAME(uri);
    SAME(query);
    SAME(proto);
    SAME(reason);
    CHECK_EQ(m.num_headers, one.num_headers);
    for (size_t i = 0; i < m.num_headers; i++) {
      SAME(headers[i].name);
      SAME(headers[i].value);
    }
#undef SAME
    CHECK_EQ(m.status, one.status);
    CHECK_EQ(m.content_length, one.content_length);
    CHECK_EQ(m.chunked, one.chunked);
    CHECK_EQ(m.keep_alive, one.keep_alive);
    CHECK_EQ(m.head_len, (size_t)want);
  }
  free(copy);
}

/* ------------------------------------------------------------------ */
/* Real request captures                                               */
/* ------------------------------------------------------------------ */

static const char chrome_get[] =
    "GET /stream.mjpg?cam=1&fps=15 HTTP/1.1\r\n"
    "Host: 192.168.1.20:8080\r\n"
    "Connection: keep-alive\r\n"
    "Cache-Control: max-age=0\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/"
    "avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;"
    "q=0.7\r\n"
    "Referer: http://192.168.1.20:8080/\r\n"
    "Accept-Encoding: gzip, deflate\r\n"
    "Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n"
    "Cookie: session=3f9a1c; theme=dark\r\n"
    "\r\n";

static const char firefox_get[] =
    "GET / HTTP/1.1\r\n"
    "Host: localhost:8000\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 "
    "Firefox/121.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/"
    "avif,image/webp,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "DNT: 1\r\n"
    "Connection: keep-alive\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Sec-Fetch-Site: none\r\n"
    "Sec-Fetch-User: ?1\r\n"
    "\r\n";

static const char firefox_ws[] =
    "GET /ws/live HTTP/1.1\r\n"
    "Host: localhost:8000\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 "
    "Firefox/121.0\r\n"
    "Accept: */*\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Origin: http://localhost:8000\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "DNT: 1\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-Fetch-Dest: empty\r\n"
    "Sec-Fetch-Mode: websocket\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "Upgrade: websocket\r\n"
    "\r\n";

static const char curl_get[] =
    "GET /snapshot.jpg HTTP/1.1\r\n"
    "Host: 127.0.0.1:8080\r\n"
    "User-Agent: curl/7.88.1\r\n"
    "Accept: */*\r\n"
    "\r\n";

/* ffmpeg -i http://... (libavformat's http.c: this order, Connection:
 * close unless told otherwise, Icy-MetaData for Shoutcast). */
static const char ffmpeg_get[] =
    "GET /stream.mjpg HTTP/1.1\r\n"
    "User-Agent: Lavf/59.27.100\r\n"
    "Accept: */*\r\n"
    "Range: bytes=0-\r\n"
    "Connection: close\r\n"
    "Host: 127.0.0.1:8080\r\n"
    "Icy-MetaData: 1\r\n"
    "\r\n";

static const char curl_upload[] =
    "POST /upload?name=clip%201.mp4 HTTP/1.1\r\n"
    "Host: localhost:8080\r\n"
    "User-Agent: curl/7.88.1\r\n"
    "Accept: */*\r\n"
    "Transfer-Encoding: chunked\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Expect: 100-continue\r\n"
    "\r\n";

TEST(http_req_chrome) {
  static sl_http_msg m;
  CHECK_EQ(req(chrome_get, &m), (int)strlen(chrome_get));
  CHECK_SV(m.method, "GET");
  CHECK_SV(m.uri, "/stream.mjpg?cam=1&fps=15");
  CHECK_SV(m.path, "/stream.mjpg");
  CHECK_SV(m.query, "cam=1&fps=15");
  CHECK_SV(m.proto, "HTTP/1.1");
  CHECK_EQ(m.version_minor, 1);
  CHECK_EQ(m.status, 0);
  CHECK_EQ(m.num_headers, 10);
  CHECK_SV(m.headers[0].name, "Host");
  CHECK_SV(m.headers[0].value, "192.168.1.20:8080");
  CHECK_HDR(m, "cookie", "session=3f9a1c; theme=dark");
  CHECK_HDR(m, "ACCEPT-ENCODING", "gzip, deflate");
  CHECK_EQ(m.content_length, -1);
  CHECK_EQ(m.chunked, 0);
  CHECK_EQ(m.keep_alive, 1);
  CHECK_EQ(m.expect_continue, 0);
  CHECK_EQ(m.upgrade_websocket, 0);
  CHECK_EQ(m.body.len, 0);
  CHECK_EQ(m.head_len, strlen(chrome_get));
}

TEST(http_req_firefox) {
  static sl_http_msg m;
  CHECK_EQ(req(firefox_get, &m), (int)strlen(firefox_get));
  CHECK_SV(m.path, "/");
  CHECK_EQ(m.query.len, 0);
  CHECK_EQ(m.num_headers, 12);
  CHECK_HDR(m, "sec-fetch-user", "?1");
  CHECK_EQ(m.keep_alive, 1);
  CHECK_EQ(m.upgrade_websocket, 0);

  CHECK_EQ(req(firefox_ws, &m), (int)strlen(firefox_ws));
  CHECK_SV(m.path, "/ws/live");
  CHECK_HDR(m, "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
  CHECK_EQ(m.upgrade_websocket, 1); /* "Connection: keep-alive, Upgrade" */
  CHECK_EQ(m.keep_alive, 1);
}

TEST(http_req_curl_ffmpeg) {
  static sl_http_msg m;
  CHECK_EQ(req(curl_get, &m), (int)strlen(curl_get));
  CHECK_SV(m.path, "/snapshot.jpg");
  CHECK_EQ(m.num_headers, 3);
  CHECK_HDR(m, "user-agent", "curl/7.88.1");
  CHECK(sl__http_header(&m, "Connection") == NULL);
  CHECK_EQ(m.keep_alive, 1);

  CHECK_EQ(req(ffmpeg_get, &m), (int)strlen(ffmpeg_get));
  CHECK_EQ(m.num_headers, 6);
  CHECK_HDR(m, "Range", "bytes=0-");
  CHECK_HDR(m, "icy-metadata", "1");
  CHECK_EQ(m.keep_alive, 0); /* Connection: close */

  CHECK_EQ(req(curl_upload, &m), (int)strlen(curl_upload));
  CHECK_SV(m.method, "POST");
  CHECK_SV(m.query, "name=clip%201.mp4");
  CHECK_EQ(m.chunked, 1);
  CHECK_EQ(m.content_length, -1);
  CHECK_EQ(m.expect_continue, 1);
}

TEST(http_req_incremental) {
  const char *caps[] = {chrome_get, firefox_get, firefox_ws,
                        curl_get,   ffmpeg_get,  curl_upload};
  for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
    incremental(1, caps[i], strlen(caps[i]), NULL, (int)strlen(caps[i]));
  /* The same with bare LF line endings, which the parser accepts. */
  const char lf[] = "GET /a HTTP/1.1\nHost: x\nX-Y: z\n\n";
  incremental(1, lf, strlen(lf), NULL, (int)strlen(lf));
  /* Errors: a prefix may already show them; then they must not change. */
  const char bad[] = "GET / HTTP/1.1\r\nHost: x\r\nX\x01: y\r\n\r\n";
  incremental(1, bad, strlen(bad), NULL, -400);
  const char v2[] = "GET / HTTP/2.0\r\nHost: x\r\n\r\n";
  incremental(1, v2, strlen(v2), NULL, -505);
  const char smug[] =
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  incremental(1, smug, strlen(smug), NULL, -400);
}

TEST(http_req_pipelined) {
  static sl_http_msg m;
  const char buf[] =
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
      "\r\n" /* a stray CRLF after a body, which 2.2 lets us skip */
      "GET /c?d=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
      "GET /partial HTTP/1.1\r\nHo";
  const char *g = test_guard(buf, strlen(buf));
  const char *p = g;
  size_t left = strlen(buf);
  const char *paths[] = {"/a", "/b", "/c"};
  for (int i = 0; i < 3; i++) {
    int r = sl__http_parse_request(p, left, NULL, &m);
    CHECK(r > 0);
    CHECK_SV(m.path, paths[i]);
    size_t body = m.content_length > 0 ? (size_t)m.content_length : 0;
    if (i == 1) CHECK_MEM(p + r, "hello", 5);
    if (i == 2) {
      CHECK_SV(m.query, "d=1");
      CHECK_EQ(m.keep_alive, 0);
    }
    p += (size_t)r + body;
    left -= (size_t)r + body;
  }
  CHECK_EQ(sl__http_parse_request(p, left, NULL, &m), 0);
}

TEST(http_req_target_forms) {
  static sl_http_msg m;
  CHECK(req("GET http://example.com:8080/a/b?x=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", &m) > 0);
  CHECK_SV(m.uri, "http://example.com:8080/a/b?x=1");
  CHECK_SV(m.path, "/a/b");
  CHECK_SV(m.query, "x=1");
  CHECK(req("GET HTTPS://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", &m) > 0);
  CHECK_SV(m.path, "/");
  CHECK(req("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", &m) > 0);
  CHECK_SV(m.path, "/");
  CHECK_EQ(m.query.len, 0);
  CHECK(req("GET http://example.com?q=2 HTTP/1.1\r\nHost: h\r\n\r\n", &m) > 0);
  CHECK_SV(m.path, "/");
  CHECK_SV(m.query, "q=2");
  CHECK(req("GET /x?a=1?b=2 HTTP/1.1\r\nHost: h\r\n\r\n", &m) > 0);
  CHECK_SV(m.path, "/x");
  CHECK_SV(m.query, "a=1?b=2");
  CHECK(req("GET /x? HTTP/1.1\r\nHost: h\r\n\r\n", &m) > 0);
  CHECK_EQ(m.query.len, 0);
  CHECK(req("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &m) > 0);
  CHECK_SV(m.path, "*");
  CHECK(req("GET /\xc3\xa9t\xc3\xa9.jpg HTTP/1.1\r\nHost: h\r\n\r\n", &m) > 0);

  const char *bad[] = {
      "GET * HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET example.com:443 HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET http://user:pw@h/x HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET http:/h/x HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET https:/x HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET x HTTP/1.1\r\nHost: h\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    CHECK_MSG(req(bad[i], &m) == -400, "target %zu accepted", i);
}

/* ------------------------------------------------------------------ */
/* Limits: 414 and 431, complete or not                                */
/* ------------------------------------------------------------------ */

TEST(http_req_414) {
  static sl_http_msg m;
  static char buf[20000];
  /* 9 KB of request line and no line ending yet: 414 at once. */
  memcpy(buf, "GET /", 5);
  memset(buf + 5, 'a', sizeof(buf) - 5);
  CHECK_EQ(reqn(buf, 9 * 1024, NULL, &m), -414);
  CHECK_EQ(reqn(buf, 8192, NULL, &m), 0); /* at the limit: still waiting */
  CHECK_EQ(reqn(buf, 8193, NULL, &m), -414);

  /* Exactly max_request_line bytes before CRLF passes; one more fails. */
  sl_http_limits l = {64, 0, 0};
  char line[200];
  for (int extra = 0; extra < 2; extra++) {
    size_t n = 64 + (size_t)extra;
    memcpy(line, "GET /", 5);
    memset(line + 5, 'b', n - 5 - 9);
    memcpy(line + n - 9, " HTTP/1.1", 9);
    memcpy(line + n, "\r\nHost: h\r\n\r\n", 13);
    CHECK_EQ(reqn(line, n + 13, &l, &m), extra ? -414 : (int)(n + 13));
    incremental(1, line, n + 13, &l, extra ? -414 : (int)(n + 13));
  }
  /* The default limit with a real CRLF. */
  memcpy(buf + 8000, " HTTP/1.1\r\nHost: h\r\n\r\n", 22);
  CHECK_EQ(reqn(buf, 8022, NULL, &m), 8022);
  memset(buf + 8000, 'a', 22);
  memcpy(buf + 8300, " HTTP/1.1\r\nHost: h\r\n\r\n", 22);
  CHECK_EQ(reqn(buf, 8322, NULL, &m), -414);
}

TEST(http_req_431_size) {
  static sl_http_msg m;
  static char buf[20000];
  /* 17 KB of headers without their end: 431 at once. */
  size_t n = 0;
  n += (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: h\r\n");
  while (n < 17 * 1024) n += (size_t)sprintf(buf + n, "X-Pad-%05zu: %s\r\n", n, "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv");
  CHECK_EQ(reqn(buf, n, NULL, &m), -431);
  /* One huge header line, incomplete. */
  n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: ");
  memset(buf + n, 'z', 16384);
  CHECK_EQ(reqn(buf, n + 16384, NULL, &m), -431);
  CHECK_EQ(reqn(buf, 16384, NULL, &m), 0);

  /* A head of exactly max_head bytes passes; one more byte is 431. */
  sl_http_limits l = {0, 100, 0};
  for (int extra = 0; extra < 2; extra++) {
    n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: h\r\nX: ");
    size_t pad = 100 + (size_t)extra - n - 4;
    memset(buf + n, 'p', pad);
    memcpy(buf + n + pad, "\r\n\r\n", 4);
    n += pad + 4;
    CHECK_EQ(n, 100 + (size_t)extra);
    CHECK_EQ(reqn(buf, n, &l, &m), extra ? -431 : 100);
    incremental(1, buf, n, &l, extra ? -431 : 100);
    /* with a pipelined request after it: same answer */
    memcpy(buf + n, "GET / HTTP/1.1\r\n", 16);
    CHECK_EQ(reqn(buf, n + 16, &l, &m), extra ? -431 : 100);
  }
}

TEST(http_req_431_count) {
  static sl_http_msg m;
  static char buf[8192];
  for (int count = 63; count <= 66; count++) {
    size_t n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 1; i < count; i++) n += (size_t)sprintf(buf + n, "X-%d: %d\r\n", i, i);
    n += (size_t)sprintf(buf + n, "\r\n");
    int r = reqn(buf, n, NULL, &m);
    if (count <= SL_HTTP_MAX_HEADERS) {
      CHECK_EQ(r, (int)n);
      CHECK_EQ(m.num_headers, (size_t)count);
    } else {
      CHECK_EQ(r, -431);
      /* reported as soon as line 65 starts, without the blank line */
      CHECK_EQ(reqn(buf, n - 2, NULL, &m), -431);
    }
  }
  sl_http_limits l = {0, 0, 3};
  const char three[] = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
  const char four[] = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
  CHECK_EQ(reqn(three, strlen(three), &l, &m), (int)strlen(three));
  CHECK_EQ(reqn(four, strlen(four), &l, &m), -431);
  incremental(1, four, strlen(four), &l, -431);
  /* A configured count above the array's capacity is capped, not trusted. */
  sl_http_limits big = {0, 1 << 20, 1000};
  size_t n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: h\r\n");
  for (int i = 0; i < 70; i++) n += (size_t)sprintf(buf + n, "X-%d: %d\r\n", i, i);
  n += (size_t)sprintf(buf + n, "\r\n");
  CHECK_EQ(reqn(buf, n, &big, &m), -431);
}

TEST(http_limits_default) {
  sl_http_limits l;
  sl__http_limits_default(&l);
  CHECK_EQ(l.max_request_line, 8192);
  CHECK_EQ(l.max_head, 16384);
  CHECK_EQ(l.max_headers, 64);
  CHECK_LE(l.max_headers, SL_HTTP_MAX_HEADERS);
}

/* ------------------------------------------------------------------ */
/* 400, 501, 505                                                       */
/* ------------------------------------------------------------------ */

struct bad_case {
  const char *in;
  size_t len; /* 0: strlen */
  int want;
};

#define H "GET / HTTP/1.1\r\nHost: h\r\n"
#define P "POST / HTTP/1.1\r\nHost: h\r\n"

static const struct bad_case bad_requests[] = {
    /* request line */
    {"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 0, -400},
    {"GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 0, -400},
    {"GET /  HTTP/1.1\r\nHost: h\r\n\r\n", 0, -400},
    {" GET / HTTP/1.1\r\nHost: h\r\n\r\n", 0, -400},
    {"GET /\r\n\r\n", 0, -400}, /* HTTP/0.9 */
    {"GET\r\n\r\n", 0, -400},
    {"GET / http/1.1\r\nHost: h\r\n\r\n", 0, -400},
    {"GET / HTTP/1\r\nHost: h\r\n\r\n", 0, -400},
    {"GET / HTTP/1.1x\r\nHost: h\r\n\r\n", 0, -400},
    {"GET / HTTP/11\r\nHost: h\r\n\r\n", 0, -400},
    {"GET / HTTP/1.1\rHost: h\r\n\r\n", 0, -400}, /* bare CR */
    {"GET /a\x01z HTTP/1.1\r\nHost: h\r\n\r\n", 0, -400},
    {"GET /a\x7fz HTTP/1.1\r\nHost: h\r\n\r\n", 0, -400},
    {"GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", 0, -400},
    {"GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n", 30, -400},
    {"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 0, -400},
    {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 0, -400}, /* TLS */
    {"G\xc3\x89T / HTTP/1.1\r\n", 0, -400},
    /* header syntax */
    {H "X-A: b\0c\r\n\r\n", sizeof(H "X-A: b\0c\r\n\r\n") - 1, -400},
    {H "X-A\x01: b\r\n\r\n", 0, -400},
    {H "X-A : b\r\n\r\n", 0, -400},  /* RFC 9112 5.1 */
    {H "X-A\t: b\r\n\r\n", 0, -400},
    {"GET / HTTP/1.1\r\n Host: h\r\n\r\n", 0, -400},
    {H "X-A: b\r\n folded\r\n\r\n", 0, -400},
    {H "X-A: b\r\n\tfolded\r\n\r\n", 0, -400},
    {H ": empty-name\r\n\r\n", 0, -400},
    {H "NoColon\r\n\r\n", 0, -400},
    {H "X-A: b\rc\r\n\r\n", 0, -400},
    {H "X-A: b\rTransfer-Encoding: chunked\r\n\r\n", 0, -400}, /* bare CR
                                             is no line end (smuggling) */
    {H "X-A: b\r\rX-B: c\r\n\r\n", 0, -400},
    {H "X-A: b\x0b\r\n\r\n", 0, -400},
    {H "X-A: b\x7f\r\n\r\n", 0, -400},
    {H "X-A: b\x1b[31m\r\n\r\n", 0, -400},
    {H "X\xff: b\r\n\r\n", 0, -400},
    {H "\r\r\n", 0, -400},
    /* Content-Length */
    {P "Content-Length: abc\r\n\r\n", 0, -400},
    {P "Content-Length: -1\r\n\r\n", 0, -400},
    {P "Content-Length: +5\r\n\r\n", 0, -400},
    {P "Content-Length: 1 2\r\n\r\n", 0, -400},
    {P "Content-Length: 0x10\r\n\r\n", 0, -400},
    {P "Content-Length:\r\n\r\n", 0, -400},
    {P "Content-Length: 99999999999999999999\r\n\r\n", 0, -400},
    {P "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 0, -400},
    {P "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 0, -400},
    {P "Content-Length: 5, 5\r\n\r\n", 0, -400},
    /* smuggling: two framings, or one we would read differently */
    {P "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", 0, -400},
    {P "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", 0, -400},
    {P "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", 0, -400},
    {P "Transfer-Encoding: chunked, chunked\r\n\r\n", 0, -400},
    {P "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0, -400},
    {P "Transfer-Encoding: gzip\r\n\r\n", 0, -400},
    {P "Transfer-Encoding: chunked, gzip\r\n\r\n", 0, -400},
    {P "Transfer-Encoding: identity\r\n\r\n", 0, -400},
    {P "Transfer-Encoding: xchunked\r\n\r\n", 0, -400},
    {P "Transfer-Encoding: chunked;q=1\r\n\r\n", 0, -400},
    {P "Transfer-Encoding:\r\n\r\n", 0, -400},
    {P "Transfer-Encoding : chunked\r\n\r\n", 0, -400},
    {P "Transfer-Encoding: chunked\x0b\r\n\r\n", 0, -400},
    {P "Transfer-Encoding:\r\n chunked\r\n\r\n", 0, -400},
    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, -400},
    /* Host */
    {"GET / HTTP/1.1\r\n\r\n", 0, -400},
    {"GET / HTTP/1.1\r\nX: y\r\n\r\n", 0, -400},
    {H "Host: h\r\n\r\n", 0, -400},
    {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 0, -400},
    {"GET / HTTP/1.1\r\nHost: evil.com/x\r\n\r\n", 0, -400},
    {"GET / HTTP/1.1\r\nHost: u@evil.com\r\n\r\n", 0, -400},
    /* 501: methods and codings we do not implement */
    {"FOO / HTTP/1.1\r\nHost: h\r\n\r\n", 0, -501},
    {"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n", 0, -501},
    {"TRACE / HTTP/1.1\r\nHost: h\r\n\r\n", 0, -501},
    {"get / HTTP/1.1\r\nHost: h\r\n\r\n", 0, -501},
    {"PROPFIND / HTTP/1.1\r\nHost: h\r\n\r\n", 0, -501},
    {"GETGETGETGETGETGET", 0, -501}, /* known before the line ends */
    {P "Transfer-Encoding: gzip, chunked\r\n\r\n", 0, -501},
    {P "Transfer-Encoding: deflate\r\nTransfer-Encoding: chunked\r\n\r\n", 0, -501},
    /* 505 */
    {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 0, -505},
    {"GET / HTTP/0.9\r\nHost: h\r\n\r\n", 0, -505},
    {"GET / HTTP/1.2\r\nHost: h\r\n\r\n", 0, -505},
    {"GET / HTTP/9.9\r\nHost: h\r\n\r\n", 0, -505},
    {"GET / HTTP/3.0", 0, -505}, /* known before the line ends */
};

TEST(http_req_errors) {
  static sl_http_msg m;
  for (size_t i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]); i++) {
    const struct bad_case *c = &bad_requests[i];
    size_t n = c->len ? c->len : strlen(c->in);
    int r = reqn(c->in, n, NULL, &m);
    CHECK_MSG(r == c->want, "case %zu (%.40s...): got %d, want %d", i, c->in,
              r, c->want);
    incremental(1, c->in, n, NULL, c->want);
  }
}

TEST(http_req_errors_early) {
  static sl_http_msg m;
  /* Syntax errors show before the head ends: no need to wait for it. */
  CHECK_EQ(req("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01", &m), -400);
  CHECK_EQ(req("GET / HTTP/1.1\r\nHost: h\r\nX : a", &m), -400);
  CHECK_EQ(req("GET /\x01", &m), -400);
  CHECK_EQ(req("BREW / HTTP/1.1", &m), -501);
  /* Framing conflicts need the whole head: until then, wait. */
  CHECK_EQ(req(P "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", &m), 0);
}

TEST(http_req_accepted_variants) {
  static sl_http_msg m;
  /* One leading empty line (RFC 9112 2.2) is skipped and counted. */
  const char lead[] = "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
  CHECK_EQ(req(lead, &m), (int)strlen(lead));
  CHECK_SV(m.method, "GET");
  CHECK_EQ(req("\nGET / HTTP/1.1\nHost: h\n\n", &m), 25);
  /* Bare LF, and a mix. */
  CHECK_EQ(req("GET / HTTP/1.1\r\nHost: h\n\r\n", &m), 26);
  /* HTTP/1.0 needs no Host and is not persistent by default. */
  CHECK(req("GET / HTTP/1.0\r\n\r\n", &m) > 0);
  CHECK_EQ(m.version_minor, 0);
  CHECK_EQ(m.keep_alive, 0);
  CHECK(req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &m) > 0);
  CHECK_EQ(m.keep_alive, 1);
  CHECK(req("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", &m) > 0);
  CHECK_EQ(m.keep_alive, 0);
  CHECK(req("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", &m) > 0);
  CHECK_EQ(m.expect_continue, 0); /* RFC 9110 10.1.1: ignored in 1.0 */
  CHECK_EQ(m.content_length, 3);
  CHECK(req(H "Connection: close\r\n\r\n", &m) > 0);
  CHECK_EQ(m.keep_alive, 0);
  CHECK(req(H "Connection: ,, CLOSE ,\r\n\r\n", &m) > 0);
  CHECK_EQ(m.keep_alive, 0);
  CHECK(req(H "Upgrade: websocket\r\n\r\n", &m) > 0);
  CHECK_EQ(m.upgrade_websocket, 0); /* Connection: upgrade missing */
  CHECK(req(H "Connection: Upgrade\r\nUpgrade: h2c, WebSocket\r\n\r\n", &m) > 0);
  CHECK_EQ(m.upgrade_websocket, 1);
  CHECK(req(H "Expect: 100-Continue\r\nContent-Length: 0\r\n\r\n", &m) > 0);
  CHECK_EQ(m.expect_continue, 1);
  CHECK_EQ(m.content_length, 0);
  CHECK(req(P "Content-Length: 0010\r\n\r\n", &m) > 0);
  CHECK_EQ(m.content_length, 10);
  CHECK(req(P "Content-Length: 10737418240\r\n\r\n", &m) > 0);
  CHECK_EQ(m.content_length, 10737418240LL); /* the caller says 413 */
  CHECK(req(P "Content-Length: 9223372036854775807\r\n\r\n", &m) > 0);
  CHECK(req(P "Transfer-Encoding:\tChunked \r\n\r\n", &m) > 0);
  CHECK_EQ(m.chunked, 1);
  CHECK(req(P "Transfer-Encoding: ,chunked,\r\n\r\n", &m) > 0);
  CHECK_EQ(m.chunked, 1);
  CHECK(req(P "Transfer_Encoding: chunked\r\n\r\n", &m) > 0);
  CHECK_EQ(m.chunked, 0); /* a different (legal) field name */
  CHECK(req("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", &m) > 0);
  CHECK(req("GET / HTTP/1.1\r\nHost:\r\n\r\n", &m) > 0); /* 3.2: allowed */
  /* Values lose their surrounding whitespace, keep inner and obs-text. */
  CHECK(req(H "X-A: \t  v 1 \t \r\nX-B:\r\nX-C: caf\xc3\xa9\r\n\r\n", &m) > 0);
  CHECK_HDR(m, "x-a", "v 1");
  CHECK_HDR(m, "x-b", "");
  CHECK_HDR(m, "x-c", "caf\xc3\xa9");
  /* Every accepted method. */
  const char *methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
  for (size_t i = 0; i < 7; i++) {
    char b[128];
    snprintf(b, sizeof(b), "%s /x HTTP/1.1\r\nHost: h\r\n\r\n", methods[i]);
    CHECK_EQ(req(b, &m), (int)strlen(b));
    CHECK_SV(m.method, methods[i]);
  }
  /* Incomplete is 0, down to nothing at all. */
  CHECK_EQ(reqn("", 0, NULL, &m), 0);
  CHECK_EQ(sl__http_parse_request(NULL, 0, NULL, &m), 0);
  CHECK_EQ(req("\r", &m), 0);
  CHECK_EQ(req("GET / HTTP/1.1\r", &m), 0);
  CHECK_EQ(req(H "\r", &m), 0);
}

TEST(http_header_lookup) {
  static sl_http_msg m;
  CHECK(req(H "X-Dup: first\r\nx-dup: second\r\nContent-Type: text/plain\r\n\r\n", &m) > 0);
  CHECK_HDR(m, "X-DUP", "first");
  CHECK_HDR(m, "content-type", "text/plain");
  CHECK(sl__http_header(&m, "Content") == NULL);
  CHECK(sl__http_header(&m, "Content-Type-X") == NULL);
  CHECK(sl__http_header(&m, "") == NULL);
}

/* ------------------------------------------------------------------ */
/* Responses                                                           */
/* ------------------------------------------------------------------ */

TEST(http_resp_200) {
  static sl_http_msg m;
  const char r200[] =
      "HTTP/1.1 200 OK\r\n"
      "Server: nginx/1.22.1\r\n"
      "Date: Mon, 04 Dec 2023 10:00:00 GMT\r\n"
      "Content-Type: image/jpeg\r\n"
      "Content-Length: 48213\r\n"
      "Last-Modified: Mon, 04 Dec 2023 09:59:59 GMT\r\n"
      "Connection: keep-alive\r\n"
      "ETag: \"656da2bf-bc55\"\r\n"
      "Accept-Ranges: bytes\r\n"
      "\r\n";
  CHECK_EQ(resp(r200, &m), (int)strlen(r200));
  CHECK_EQ(m.status, 200);
  CHECK_SV(m.reason, "OK");
  CHECK_SV(m.proto, "HTTP/1.1");
  CHECK_EQ(m.method.len, 0);
  CHECK_EQ(m.num_headers, 8);
  CHECK_EQ(m.content_length, 48213);
  CHECK_EQ(m.keep_alive, 1);
  CHECK_HDR(m, "etag", "\"656da2bf-bc55\"");
  incremental(0, r200, strlen(r200), NULL, (int)strlen(r200));
}

TEST(http_resp_401_digest) {
  static sl_http_msg m;
  const char r401[] =
      "HTTP/1.1 401 Unauthorized\r\n"
      "Server: Hikvision-Webs\r\n"
      "Content-Length: 0\r\n"
      "WWW-Authenticate: Digest qop=\"auth\", realm=\"IP Camera(C1234)\", "
      "nonce=\"4e5468694e7a4d304e5467364d7a55334d6a497a4d54413d\", "
      "stale=\"FALSE\"\r\n"
      "WWW-Authenticate: Basic realm=\"IP Camera(C1234)\"\r\n"
      "\r\n";
  CHECK_EQ(resp(r401, &m), (int)strlen(r401));
  CHECK_EQ(m.status, 401);
  CHECK_SV(m.reason, "Unauthorized");
  CHECK_EQ(m.content_length, 0);
  CHECK_EQ(m.num_headers, 4);
  CHECK_SV(m.headers[3].value, "Basic realm=\"IP Camera(C1234)\"");
  const sl_str *w = sl__http_header(&m, "www-authenticate");
  CHECK(w != NULL);
  CHECK(w->len > 7 && memcmp(w->ptr, "Digest ", 7) == 0);
  incremental(0, r401, strlen(r401), NULL, (int)strlen(r401));
}

TEST(http_resp_multipart) {
  static sl_http_msg m;
  /* What MJPEG cameras and mjpg-streamer send: 1.0, no length, no close. */
  const char mj[] =
      "HTTP/1.0 200 OK\r\n"
      "Connection: close\r\n"
      "Server: MJPG-Streamer/0.2\r\n"
      "Cache-Control: no-store, no-cache, must-revalidate, pre-check=0, "
      "post-check=0, max-age=0\r\n"
      "Pragma: no-cache\r\n"
      "Expires: Mon, 3 Jan 2000 12:34:56 GMT\r\n"
      "Content-Type: multipart/x-mixed-replace;boundary=boundarydonotcross\r\n"
      "\r\n"
      "--boundarydonotcross\r\n";
  int r = resp(mj, &m);
  CHECK_EQ(r, (int)strlen(mj) - 22);
  CHECK_EQ(m.version_minor, 0);
  CHECK_EQ(m.keep_alive, 0);
  CHECK_EQ(m.content_length, -1);
  CHECK_HDR(m, "content-type", "multipart/x-mixed-replace;boundary=boundarydonotcross");
}

TEST(http_resp_variants) {
  static sl_http_msg m;
  CHECK(resp("HTTP/1.1 200\r\n\r\n", &m) > 0); /* no SP, no reason */
  CHECK_EQ(m.status, 200);
  CHECK_EQ(m.reason.len, 0);
  CHECK(resp("HTTP/1.1 404 \r\n\r\n", &m) > 0);
  CHECK_EQ(m.reason.len, 0);
  CHECK(resp("HTTP/1.1 500 Internal  Server\tError\r\n\r\n", &m) > 0);
  CHECK_SV(m.reason, "Internal  Server\tError");
  CHECK(resp("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\n"
             "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", &m) > 0);
  CHECK_EQ(m.status, 101);
  CHECK_EQ(m.upgrade_websocket, 1);
  CHECK(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", &m) > 0);
  CHECK_EQ(m.chunked, 1);
  CHECK(resp("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", &m) > 0);
  CHECK_EQ(m.keep_alive, 0);
  CHECK(resp("HTTP/1.1 200 OK\nContent-Length: 2\n\nhi", &m) == 35);
  CHECK(resp("HTTP/1.1 200 OK\r\nExpect: 100-continue\r\n\r\n", &m) > 0);
  CHECK_EQ(m.expect_continue, 0);
  CHECK_EQ(resp("HTTP/1.1 200 OK\r\n", &m), 0);
  CHECK_EQ(resp("HTTP/1.", &m), 0);
  CHECK_EQ(respn("", 0, NULL, &m), 0);

  const char *bad[] = {
      "HTTP/1.1 20 OK\r\n\r\n",   "HTTP/1.1 2000 OK\r\n\r\n",
      "HTTP/1.1 099 X\r\n\r\n",   "HTTP/2 200 OK\r\n\r\n",
      "HTTP/2.0 200 OK\r\n\r\n",  "HTTP/1.1  200 OK\r\n\r\n",
      "ICY 200 OK\r\n\r\n",       "http/1.1 200 OK\r\n\r\n",
      "HTTP/1.1 200 O\x01K\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX : y\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
      "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\rX: y\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: a\rContent-Length: 5\r\n\r\n",
      "\r\nHTTP/1.1 200 OK\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    CHECK_MSG(resp(bad[i], &m) == -1, "response %zu accepted", i);
    incremental(0, bad[i], strlen(bad[i]), NULL, -1);
  }
  /* Limits apply to responses too, complete or not. */
  static char buf[20000];
  size_t n = (size_t)sprintf(buf, "HTTP/1.1 200 OK\r\nX: ");
  memset(buf + n, 'x', 17000);
  CHECK_EQ(respn(buf, n + 17000, NULL, &m), -1);
  memcpy(buf, "HTTP/1.1 200 ", 13);
  memset(buf + 13, 'r', 9000);
  CHECK_EQ(respn(buf, 9000, NULL, &m), -1);
  sl_http_limits l = {0, 0, 2};
  const char two[] = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";
  CHECK_EQ(respn(two, strlen(two), &l, &m), 31);
  const char three[] = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
  CHECK_EQ(respn(three, strlen(three), &l, &m), -1);
}

/* ------------------------------------------------------------------ */
/* Chunked bodies                                                      */
/* ------------------------------------------------------------------ */

struct dec {
  char out[4096];
  size_t out_len;
  size_t consumed;
  int done, err;
};

/* Decode s[0..n) fed in pieces of the given sizes (0 ends the list: the
 * rest in one piece), each piece against the guard page, looping as the
 * header's example does. */
static void decode_pieces(const char *s, size_t n, const size_t *cuts,
                          struct dec *d) {
  sl_chunked st;
  sl__chunked_init(&st);
  memset(d, 0, sizeof(*d));
  size_t off = 0;
  for (int i = 0; off < n || i == 0; i++) {
    size_t piece = cuts && cuts[i] ? cuts[i] : n - off;
    if (piece > n - off) piece = n - off;
    const char *g = test_guard(s + off, piece);
    const char *p = g, *data;
    size_t len = piece, dl;
    int r, done = 0;
    while ((r = sl__chunked_decode(&st, p, len, &data, &dl, &done)) > 0) {
      CHECK_LE((size_t)r, len);
      if (dl) {
        CHECK(data >= p && data + dl <= p + r);
        CHECK_LE(d->out_len + dl, sizeof(d->out));
        memcpy(d->out + d->out_len, data, dl);
        d->out_len += dl;
      }
      p += r;
      len -= (size_t)r;
      d->consumed += (size_t)r;
      if (done) break;
    }
    if (r < 0) {
      d->err = 1;
      return;
    }
    if (done) {
      d->done = 1;
      return;
    }
    CHECK_EQ(len, 0); /* 0 means "all consumed, need more" */
    off += piece;
    if (!cuts || !cuts[i]) break;
  }
}

static const char wiki[] =
    "4\r\nWiki\r\n"
    "6;name=val;quoted=\"a b\"\r\npedia \r\n"
    "E\r\nin \r\n\r\nchunks.\r\n"
    "0 ;last\r\n"
    "Expires: never\r\n"
    "X-Checksum: abc\r\n"
    "\r\n"
    "GET /next HTTP/1.1\r\n";

TEST(chunked_whole) {
  struct dec d;
  size_t body = strlen(wiki) - 20;
  decode_pieces(wiki, strlen(wiki), NULL, &d);
  CHECK(!d.err);
  CHECK(d.done);
  CHECK_EQ(d.consumed, body); /* the pipelined request is left alone */
  CHECK_EQ(d.out_len, 24);
  CHECK_MEM(d.out, "Wikipedia in \r\n\r\nchunks.", 24);

  /* Once done, nothing more is taken. */
  sl_chunked st;
  const char *data;
  size_t dl;
  int done;
  sl__chunked_init(&st);
  const char *g = test_guard("0\r\n\r\nX", 6);
  CHECK_EQ(sl__chunked_decode(&st, g, 6, &data, &dl, &done), 5);
  CHECK_EQ(done, 1);
  CHECK_EQ(sl__chunked_decode(&st, g + 5, 1, &data, &dl, &done), 0);
  CHECK_EQ(done, 1);
  CHECK_EQ(sl__chunked_decode(&st, NULL, 0, &data, &dl, &done), 0);
  CHECK_EQ(st.total, 0);
}

TEST(chunked_split_everywhere) {
  struct dec whole, d;
  size_t n = strlen(wiki);
  decode_pieces(wiki, n, NULL, &whole);
  /* One cut at every position. */
  for (size_t i = 1; i < n; i++) {
    size_t cuts[] = {i, 0};
    decode_pieces(wiki, n, cuts, &d);
    CHECK_MSG(!d.err && d.done, "split at %zu: err %d done %d", i, d.err, d.done);
    CHECK_EQ(d.consumed, whole.consumed);
    CHECK_EQ(d.out_len, whole.out_len);
    CHECK_MEM(d.out, whole.out, whole.out_len);
  }
  /* Byte at a time. */
  size_t ones[512];
  for (size_t i = 0; i < 512; i++) ones[i] = 1;
  decode_pieces(wiki, n, ones, &d);
  CHECK(d.done && !d.err);
  CHECK_EQ(d.consumed, whole.consumed);
  CHECK_MEM(d.out, whole.out, whole.out_len);
  /* Two cuts at every pair of positions, in a smaller body. */
  const char small[] = "3;x\r\nabc\r\n1\r\nd\r\n0\r\nT: v\r\n\r\n";
  size_t sn = strlen(small);
  for (size_t i = 1; i < sn; i++)
    for (size_t j = 1; i + j < sn; j++) {
      size_t cuts[] = {i, j, 0};
      decode_pieces(small, sn, cuts, &d);
      CHECK(d.done && !d.err);
      CHECK_EQ(d.consumed, sn);
      CHECK_EQ(d.out_len, 4);
      CHECK_MEM(d.out, "abcd", 4);
    }
}

TEST(chunked_errors) {
  static char big[12000];
  struct {
    const char *in;
    int ok; /* 1: decodes to done; 0: must fail */
  } cases[] = {
      {"X\r\n", 0},
      {"\r\n", 0},
      {"-5\r\nhello\r\n0\r\n\r\n", 0},
      {" 5\r\nhello\r\n0\r\n\r\n", 0},
      {"5 \r\nhello\r\n0\r\n\r\n", 0},        /* BWS only before ';' */
      {"5 ;a\r\nhello\r\n0\r\n\r\n", 1},
      {"0x5\r\nhello\r\n0\r\n\r\n", 0},
      {"5\nhello\r\n0\r\n\r\n", 0},           /* bare LF */
      {"5\r\nhello\n0\r\n\r\n", 0},
      {"5\r\nhello0\r\n\r\n", 0},             /* data not followed by CRLF */
      {"5\r\nhelloXY0\r\n\r\n", 0},
      {"5\r\nhelloX\n0\r\n\r\n", 0},          /* LF without its CR */
      {"5\r\nhello\r\r0\r\n\r\n", 0},
      {"3\r\nhello\r\n0\r\n\r\n", 0},         /* too much data */
      {"5\r\nhel\r\n0\r\n\r\n", 0},           /* too little: 'l\r\n0' ... */
      {"5\r\nhello\r\n0\r\n\n", 0},
      {"5\r\nhello\r\n0\r\n\rX", 0},
      {"5\r\nhello\r\n0\r\n X: y\r\n\r\n", 0}, /* obs-fold in trailer */
      {"5\r\nhello\r\n0\r\nX : y\r\n\r\n", 0},
      {"5\r\nhello\r\n0\r\nX: y\x01\r\n\r\n", 0},
      {"5\r\nhello\r\n0\r\nX: y\n\r\n", 0},
      {"5;a\x01\r\nhello\r\n0\r\n\r\n", 0},   /* control in extension */
      {"5;a\nhello\r\n0\r\n\r\n", 0},
      {"40000000000000001\r\n", 0},            /* 2^62 * 16 + 1 */
      {"4000000000000001\r\n", 0},             /* 2^62 + 1 */
      {"8000000000000000\r\n", 0},
      {"FFFFFFFFFFFFFFFF\r\n", 0},             /* 2^64 - 1 */
      {"FFFFFFFFFFFFFFFFF\r\n", 0},            /* wraps 64 bits */
      {"100000000000000000000\r\n", 0},
      {"5\r\nhello\r\n0\r\n\r\n", 1},
      {"00000005\r\nhello\r\n000\r\n\r\n", 1},
      {"a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n", 1},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct dec d;
    size_t ones[64];
    for (size_t k = 0; k < 64; k++) ones[k] = 1;
    decode_pieces(cases[i].in, strlen(cases[i].in), NULL, &d);
    CHECK_MSG(cases[i].ok ? d.done && !d.err : d.err,
              "case %zu: done %d err %d", i, d.done, d.err);
    decode_pieces(cases[i].in, strlen(cases[i].in), ones, &d);
    CHECK_MSG(cases[i].ok ? d.done && !d.err : d.err,
              "case %zu bytewise: done %d err %d", i, d.done, d.err);
  }

  /* The largest size is accepted (and waits for its data). */
  sl_chunked st;
  const char *data;
  size_t dl;
  int done;
  sl__chunked_init(&st);
  const char *g = test_guard("4000000000000000\r\nabc", 21);
  CHECK_EQ(sl__chunked_decode(&st, g, 18, &data, &dl, &done), 18);
  CHECK_EQ(dl, 0);
  CHECK_EQ(sl__chunked_decode(&st, g + 18, 3, &data, &dl, &done), 3);
  CHECK_EQ(dl, 3);
  CHECK(data == g + 18);
  CHECK(st.remaining == (1ULL << 62) - 3);
  CHECK_EQ(st.total, 3);

  /* 64 digits (leading zeros) pass, 65 do not. */
  for (int nd = 64; nd <= 65; nd++) {
    memset(big, '0', (size_t)nd);
    memcpy(big + nd - 1, "1\r\nx\r\n0\r\n\r\n", 11);
    struct dec d;
    decode_pieces(big, (size_t)nd + 10, NULL, &d);
    CHECK_EQ(d.err, nd == 65);
  }
  /* Extensions: 1024 bytes pass, 1025 do not. */
  for (int ext = 1024; ext <= 1025; ext++) {
    big[0] = '1';
    big[1] = ';';
    memset(big + 2, 'e', (size_t)ext - 1);
    memcpy(big + 1 + ext, "\r\nx\r\n0\r\n\r\n", 10);
    struct dec d;
    decode_pieces(big, (size_t)ext + 11, NULL, &d);
    CHECK_EQ(d.err, ext == 1025);
  }
  /* Trailer section: 8192 bytes (final CRLF included) pass, 8193 fail. */
  for (int tr = 8192; tr <= 8193; tr++) {
    /* "0\r\n", then "X: " + padding + "\r\n" + "\r\n" = tr bytes */
    memcpy(big, "0\r\nX: ", 6);
    memset(big + 6, 't', (size_t)tr - 7);
    memcpy(big + 3 + tr - 4, "\r\n\r\n", 4);
    struct dec d;
    decode_pieces(big, 3 + (size_t)tr, NULL, &d);
    CHECK_EQ(d.err, tr == 8193);
    CHECK_EQ(d.done, tr == 8192);
  }
  /* An error sticks. */
  sl__chunked_init(&st);
  g = test_guard("Z", 1);
  CHECK_EQ(sl__chunked_decode(&st, g, 1, &data, &dl, &done), -1);
  g = test_guard("0\r\n\r\n", 5);
  CHECK_EQ(sl__chunked_decode(&st, g, 5, &data, &dl, &done), -1);
  CHECK_EQ(done, 0);
}

/* ------------------------------------------------------------------ */
/* URL decoding and query parameters                                   */
/* ------------------------------------------------------------------ */

static int dec(const char *in, char *out, size_t cap, int form) {
  return sl__url_decode(test_guard(in, strlen(in)), strlen(in), out, cap, form);
}

TEST(url_decode) {
  char out[64];
  CHECK_EQ(dec("a%20b", out, sizeof(out), 0), 3);
  CHECK_STR(out, "a b");
  CHECK_EQ(dec("a+b%2B", out, sizeof(out), 1), 4);
  CHECK_STR(out, "a b+");
  CHECK_EQ(dec("a+b", out, sizeof(out), 0), 3);
  CHECK_STR(out, "a+b");
  CHECK_EQ(dec("%c3%A9%7e", out, sizeof(out), 0), 3);
  CHECK_STR(out, "\xc3\xa9~");
  CHECK_EQ(dec("", out, sizeof(out), 0), 0);
  CHECK_STR(out, "");
  CHECK_EQ(dec("x%00y", out, sizeof(out), 0), 3);
  CHECK_MEM(out, "x\0y", 4);
  const char *bad[] = {"%", "%4", "a%zz", "%%41", "%g1", "%1g", "abc%"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    memcpy(out, "untouched", 10);
    CHECK_MSG(dec(bad[i], out, sizeof(out), 0) == SL_EINVAL, "%s accepted", bad[i]);
    CHECK_STR(out, "untouched"); /* a failed call writes nothing */
  }
  /* Capacity: the result and its NUL. */
  CHECK_EQ(dec("abcd", out, 5, 0), 4);
  memcpy(out, "untouched", 10);
  CHECK_EQ(dec("abcd", out, 4, 0), SL_EMSGSIZE);
  CHECK_STR(out, "untouched");
  CHECK_EQ(dec("%41%42", out, 3, 0), 2);
  CHECK_EQ(sl__url_decode("", 0, NULL, 0, 0), SL_EMSGSIZE);
  /* In place. */
  char buf[] = "%48ello+w%6Frld";
  CHECK_EQ(sl__url_decode(buf, strlen(buf), buf, sizeof(buf), 1), 11);
  CHECK_STR(buf, "Hello world");
}

static int qget(const char *q, const char *name, char *out, size_t cap) {
  sl_str s = {test_guard(q, strlen(q)), strlen(q)};
  return sl__http_query_get(s, name, out, cap);
}

TEST(http_query_get) {
  char out[32];
  const char q[] = "a=1&b=hello+world&c=%41%42&d&e=&ab=7&a=2&x%5By%5D=5&sp+ace=6";
  CHECK_EQ(qget(q, "a", out, sizeof(out)), 1);
  CHECK_STR(out, "1"); /* first wins */
  CHECK_EQ(qget(q, "b", out, sizeof(out)), 11);
  CHECK_STR(out, "hello world");
  CHECK_EQ(qget(q, "c", out, sizeof(out)), 2);
  CHECK_STR(out, "AB");
  CHECK_EQ(qget(q, "d", out, sizeof(out)), 0);
  CHECK_STR(out, "");
  CHECK_EQ(qget(q, "e", out, sizeof(out)), 0);
  CHECK_EQ(qget(q, "ab", out, sizeof(out)), 1);
  CHECK_STR(out, "7");
  CHECK_EQ(qget(q, "x[y]", out, sizeof(out)), 1);
  CHECK_EQ(qget(q, "sp ace", out, sizeof(out)), 1);
  CHECK_EQ(qget(q, "z", out, sizeof(out)), SL_ENOENT);
  CHECK_EQ(qget(q, "", out, sizeof(out)), SL_ENOENT);
  CHECK_EQ(qget(q, "hello", out, sizeof(out)), SL_ENOENT);
  CHECK_EQ(qget(q, "b", out, 11), SL_EMSGSIZE);
  CHECK_EQ(qget(q, "b", out, 12), 11);
  CHECK_EQ(qget("?cam=2", "cam", out, sizeof(out)), 1);
  CHECK_STR(out, "2");
  CHECK_EQ(qget("v=%zz", "v", out, sizeof(out)), SL_EINVAL);
  CHECK_EQ(qget("k%zz=1&k=2", "k", out, sizeof(out)), 1);
  CHECK_STR(out, "2");
  CHECK_EQ(qget("&&a=1&", "a", out, sizeof(out)), 1);
  CHECK_EQ(qget("a=b=c", "a", out, sizeof(out)), 3);
  CHECK_STR(out, "b=c");
  sl_str empty = {NULL, 0};
  CHECK_EQ(sl__http_query_get(empty, "a", out, sizeof(out)), SL_ENOENT);
  /* A query straight from a parsed request. */
  static sl_http_msg m;
  CHECK(req("GET /s?fps=30&name=front%20door HTTP/1.1\r\nHost: h\r\n\r\n", &m) > 0);
  CHECK_EQ(sl__http_query_get(m.query, "name", out, sizeof(out)), 10);
  CHECK_STR(out, "front door");
}

/* ------------------------------------------------------------------ */
/* Range                                                               */
/* ------------------------------------------------------------------ */

TEST(http_range) {
  struct {
    const char *v;
    unsigned long long size;
    int want;
    unsigned long long s, e;
  } t[] = {
      {"bytes=0-499", 1000, 1, 0, 499},
      {"bytes=500-999", 1000, 1, 500, 999},
      {"bytes=500-", 1000, 1, 500, 999},
      {"bytes=0-", 1000, 1, 0, 999},
      {"bytes=0-0", 1000, 1, 0, 0},
      {"bytes=999-999", 1000, 1, 999, 999},
      {"bytes=999-5000", 1000, 1, 999, 999},
      {"bytes=-200", 1000, 1, 800, 999},
      {"bytes=-1", 1000, 1, 999, 999},
      {"bytes=-1000", 1000, 1, 0, 999},
      {"bytes=-2000", 1000, 1, 0, 999},
      {"BYTES=1-2", 1000, 1, 1, 2},
      {" bytes=1-2 \t", 1000, 1, 1, 2},
      {"bytes= 1-2", 1000, 1, 1, 2},
      {"bytes=0-99999999999999999999999999", 1000, 1, 0, 999},
      {"bytes=-99999999999999999999999999", 1000, 1, 0, 999},
      {"bytes=0-", 1, 1, 0, 0},
      /* 416 */
      {"bytes=1000-", 1000, -1, 0, 0},
      {"bytes=1000-2000", 1000, -1, 0, 0},
      {"bytes=5000-6000", 1000, -1, 0, 0},
      {"bytes=-0", 1000, -1, 0, 0},
      {"bytes=99999999999999999999999999-", 1000, -1, 0, 0},
      {"bytes=0-", 0, -1, 0, 0},
      {"bytes=0-10", 0, -1, 0, 0},
      /* ignored: 200 */
      {"bytes=-5", 0, 0, 0, 0},
      {"bytes=5-1", 1000, 0, 0, 0},
      {"bytes=0-1,5-6", 1000, 0, 0, 0},
      {"bytes=0-1, -5", 1000, 0, 0, 0},
      {"bytes=0-1,", 1000, 0, 0, 0},
      {"items=0-5", 1000, 0, 0, 0},
      {"bytes 0-5", 1000, 0, 0, 0},
      {"bytes =0-5", 1000, 0, 0, 0},
      {"bytes=", 1000, 0, 0, 0},
      {"bytes=-", 1000, 0, 0, 0},
      {"bytes=a-b", 1000, 0, 0, 0},
      {"bytes=1-2x", 1000, 0, 0, 0},
      {"bytes=1 -2", 1000, 0, 0, 0},
      {"bytes=--5", 1000, 0, 0, 0},
      {"bytes=+1-2", 1000, 0, 0, 0},
      {"bytes", 1000, 0, 0, 0},
      {"", 1000, 0, 0, 0},
  };
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    unsigned long long s = 7, e = 7;
    sl_str v = {test_guard(t[i].v, strlen(t[i].v)), strlen(t[i].v)};
    int r = sl__http_parse_range(v, t[i].size, &s, &e);
    CHECK_MSG(r == t[i].want, "\"%s\" size %llu: got %d want %d", t[i].v,
              t[i].size, r, t[i].want);
    if (r == 1) {
      CHECK_MSG(s == t[i].s && e == t[i].e, "\"%s\": %llu-%llu", t[i].v, s, e);
      CHECK(s <= e && e < t[i].size);
    }
  }
  /* Huge representations. */
  unsigned long long s, e;
  sl_str v = {"bytes=-10", 9};
  CHECK_EQ(sl__http_parse_range(v, ~0ULL, &s, &e), 1);
  CHECK(s == ~0ULL - 10 && e == ~0ULL - 1);
}

/* ------------------------------------------------------------------ */
/* Paths                                                               */
/* ------------------------------------------------------------------ */

static int clean(const char *raw, char *out, size_t cap) {
  sl_str r = {test_guard(raw, strlen(raw)), strlen(raw)};
  return sl__http_clean_path(r, out, cap);
}

TEST(http_clean_path_good) {
  struct {
    const char *raw, *want;
  } t[] = {
      {"/", ""},
      {"", ""},
      {"/index.html", "index.html"},
      {"/a/b/c.jpg", "a/b/c.jpg"},
      {"//a//b", "a/b"},
      {"/a/./b", "a/b"},
      {"/./a", "a"},
      {"/a/.", "a/"},
      {"/./", ""},
      {"/dir/", "dir/"},
      {"/dir//", "dir/"},
      {"/a%20b.txt", "a b.txt"},
      {"/caf%C3%A9", "caf\xc3\xa9"},
      {"/a+b", "a+b"},
      {"/.hidden", ".hidden"},
      {"/...", "..."},
      {"/%2e%2e%2e", "..."},
      {"/a..b", "a..b"},
      {"/..a", "..a"},
      {"/a../b", "a../b"},
      {"/%252e%252e/x", "%2e%2e/x"}, /* decoded once: a literal name */
      {"/%252f", "%2f"},
      {"//etc/passwd", "etc/passwd"}, /* relative, below the root */
      {"/%2e/a", "a"},
      {"/a/b/c/d/e/f/g/h", "a/b/c/d/e/f/g/h"},
  };
  char out[256];
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    int r = clean(t[i].raw, out, sizeof(out));
    CHECK_MSG(r >= 0, "\"%s\" rejected", t[i].raw);
    CHECK_EQ(r, (int)strlen(t[i].want));
    CHECK_STR(out, t[i].want);
  }
  /* Capacity: result plus NUL; a failure writes nothing. */
  CHECK_EQ(clean("/abc/def", out, 8), 7);
  memcpy(out, "untouched", 10);
  CHECK_EQ(clean("/abc/def", out, 7), -1);
  CHECK_STR(out, "untouched");
  CHECK_EQ(clean("/", out, 1), 0);
  CHECK_EQ(clean("/", out, 0), -1);
}

TEST(http_clean_path_malicious) {
  const char *t[] = {
      "/..",
      "/../",
      "/../etc/passwd",
      "/a/../../b",
      "/a/..",
      "/a/b/../../../etc/shadow",
      "/..%2f..%2fetc/passwd",
      "/..%2F..%2Fetc/passwd",
      "/%2e%2e/etc/passwd",
      "/%2E%2e/x",
      "/.%2e/x",
      "/%2e./x",
      "/a/%2e%2e",
      "/..\\windows\\win.ini",
      "/..%5cwindows",
      "/..%5C..%5Cwindows",
      "/a%5cb",
      "/a\\b",
      "\\..\\x",
      "/a%2fb",
      "/%2f/etc/passwd",
      "/a%00.jpg",
      "/a%00",
      "/%0a",
      "/%0d%0aSet-Cookie:x",
      "/a%7f",
      "/a\x01",
      "/%",
      "/%2",
      "/%g0",
  };
  char out[256];
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    memcpy(out, "untouched", 10);
    int r = clean(t[i], out, sizeof(out));
    CHECK_MSG(r == -1, "\"%s\" accepted as \"%s\"", t[i], out);
    CHECK_STR(out, "untouched");
  }
  /* "..;" is a literal file name on POSIX (Tomcat treats it specially; we
   * do not), so it is allowed but stays below the root. */
  CHECK_EQ(clean("/a/..;/b", out, sizeof(out)), 7);
  CHECK_STR(out, "a/..;/b");

  /* Whatever is accepted never starts with '/' and has no ".." segment:
   * try every sequence of up to 5 hostile tokens. */
  static const char *const tok[] = {"/", ".", "%2e", "%2E", "%2f", "%5c",
                                    "a", "%", "%00", "\\"};
  const size_t nt = sizeof(tok) / sizeof(tok[0]);
  char raw[64];
  for (size_t len = 1; len <= 5; len++) {
    size_t total = 1;
    for (size_t k = 0; k < len; k++) total *= nt;
    for (size_t idx = 0; idx < total; idx++) {
      size_t x = idx;
      raw[0] = '\0';
      for (size_t k = 0; k < len; k++, x /= nt) strcat(raw, tok[x % nt]);
      /* An exact-size heap copy: ASan's redzone stands in for the guard
       * page here, at a fraction of the cost of 10^5 mmap calls. */
      size_t rl = strlen(raw);
      char *h = malloc(rl);
      CHECK(h != NULL);
      memcpy(h, raw, rl);
      sl_str rs = {h, rl};
      int r = sl__http_clean_path(rs, out, sizeof(out));
      free(h);
      if (r < 0) continue;
      CHECK_EQ((size_t)r, strlen(out));
      CHECK_MSG(out[0] != '/', "\"%s\" -> \"%s\"", raw, out);
      CHECK_MSG(strcmp(out, "..") != 0 && strncmp(out, "../", 3) != 0 &&
                    !strstr(out, "/../") &&
                    !(r >= 3 && strcmp(out + r - 3, "/..") == 0),
                "\"%s\" -> \"%s\"", raw, out);
      CHECK(!strchr(out, '\\'));
    }
  }
}
