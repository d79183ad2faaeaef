/* Interoperability of the HTTP/1.1 server with real clients: curl (keep-
 * alive, uploads by length, chunked and with Expect: 100-continue, ranges,
 * HEAD, conditional requests, Basic and Bearer auth) and wrk (a keep-alive
 * load run without a single error). A missing tool skips outside CI and
 * fails under CI=true. */
#include <fcntl.h>
#include <sys/stat.h>

#include "http_harness.h"

#define USER "user"
#define PASS "p4ss:word"

static atomic_int delivered, chunked_bodies, expects;

static int is(sl_str s, const char *lit) {
  return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static void on_app(sl_conn *c, int ev, void *ev_data) {
  if (ev != SL_EV_HTTP_MSG) return;
  sl_http_msg *m = ev_data;
  atomic_fetch_add(&delivered, 1);
  if (m->chunked) atomic_fetch_add(&chunked_bodies, 1);
  if (m->expect_continue) atomic_fetch_add(&expects, 1);
  if (is(m->path, "/hello")) {
    sl_http_reply(c, 200, "Content-Type: text/plain\r\n", "hello\n", 6);
  } else if (is(m->path, "/echo")) {
    sl_http_replyf(c, 200, NULL, "len=%zu sum=%08x", m->body.len,
                   fnv1a(m->body.ptr, m->body.len));
  } else if (is(m->path, "/basic")) {
    if (sl_http_check_basic(m, USER, PASS)) sl_http_reply(c, 200, NULL, "welcome", 7);
    else sl_http_reply_401(c, "test");
  } else if (is(m->path, "/bearer")) {
    if (sl_http_check_bearer(m, "x")) sl_http_reply(c, 200, NULL, "token ok", 8);
    else sl_http_reply_401(c, NULL);
  } else if (m->path.len > 7 && memcmp(m->path.ptr, "/files/", 7) == 0) {
    sl_http_serve_dir(c, m, sl_conn_data(c));
  } else {
    sl_http_reply_status(c, 404);
  }
}

static void start(struct srv *s, const char *root) {
  atomic_store(&delivered, 0);
  atomic_store(&chunked_bodies, 0);
  atomic_store(&expects, 0);
  srv_start(s, NULL, NULL, on_app, (void *)root);
}

static void finish(struct srv *s) {
  srv_wait_clean(s, 5000);
  srv_stop(s);
  CHECK_MEM_CLEAN();
}

/* --noproxy: an http_proxy in the environment must not take 127.0.0.1. */
#define CURL "curl --http1.1 --noproxy '*' -sS --max-time 10 "

/* ---- keep-alive ------------------------------------------------------- */

TEST_T(http_interop_curl_keepalive, 30) {
  NEED_TOOL("curl");
  struct srv s;
  char out[4096];
  start(&s, NULL);
  /* Two URLs in one invocation reuse the connection. */
  CHECK_EQ(sh_capture(out, sizeof(out),
                      CURL "-o /dev/null -o /dev/null -w '%%{http_code} %%{num_connects}\\n' "
                           "http://127.0.0.1:%d/hello http://127.0.0.1:%d/echo",
                      s.port, s.port), 0);
  CHECK_STR(out, "200 1\n200 0\n");
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "http://127.0.0.1:%d/hello http://127.0.0.1:%d/nope",
                      s.port, s.port), 0);
  CHECK_STR(out, "hello\n404 Not Found\n");
  finish(&s);
  CHECK_EQ(s.st.accepted, 2);
  CHECK_EQ(atomic_load(&delivered), 4);
}

/* ---- uploads ---------------------------------------------------------- */

static size_t make_upload(const char *dir, const char *name, size_t len, char *path,
                          char *want) {
  unsigned char *d = malloc(len ? len : 1);
  fill_pattern(d, len, (unsigned)len);
  sprintf(path, "%s/%s", dir, name);
  write_file(path, d, len);
  sprintf(want, "len=%zu sum=%08x", len, fnv1a(d, len));
  free(d);
  return len;
}

TEST_T(http_interop_curl_uploads, 30) {
  NEED_TOOL("curl");
  char dir[64], file[128], want[64], out[8192];
  make_tmpdir(dir);
  struct srv s;
  start(&s, NULL);
  make_upload(dir, "up.bin", 300000, file, want);
  /* By Content-Length. */
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "-H 'Expect:' --data-binary @%s http://127.0.0.1:%d/echo",
                      file, s.port), 0);
  CHECK_STR(out, want);
  CHECK_EQ(atomic_load(&chunked_bodies), 0);
  /* Chunked: curl streams the file in chunks. */
  CHECK_EQ(sh_capture(out, sizeof(out),
                      CURL "-H 'Expect:' -H 'Transfer-Encoding: chunked' --data-binary @%s "
                           "http://127.0.0.1:%d/echo", file, s.port), 0);
  CHECK_STR(out, want);
  CHECK_EQ(atomic_load(&chunked_bodies), 1);
  /* Expect: 100-continue: the interim response arrives and curl sends the
   * body at once (without it, curl would wait a second and send anyway,
   * which the server-side count below would not tell apart). */
  CHECK_EQ(sh_capture(out, sizeof(out),
                      CURL "-v -H 'Expect: 100-continue' --data-binary @%s "
                           "http://127.0.0.1:%d/echo 2>&1", file, s.port), 0);
  CHECK_MSG(strstr(out, "< HTTP/1.1 100 Continue") != NULL, "no 100 Continue:\n%s", out);
  CHECK_MSG(strstr(out, want) != NULL, "no echo:\n%s", out);
  CHECK_EQ(atomic_load(&expects), 1);
  /* Chunked and Expect together. */
  CHECK_EQ(sh_capture(out, sizeof(out),
                      CURL "-v -H 'Expect: 100-continue' -H 'Transfer-Encoding: chunked' "
                           "--data-binary @%s http://127.0.0.1:%d/echo 2>&1", file, s.port), 0);
  CHECK(strstr(out, "< HTTP/1.1 100 Continue") != NULL);
  CHECK(strstr(out, want) != NULL);
  /* Exactly max_body (1 MiB by default) passes; one byte more is 413,
   * answered before the body is sent. */
  make_upload(dir, "max.bin", 1u << 20, file, want);
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "--data-binary @%s http://127.0.0.1:%d/echo",
                      file, s.port), 0);
  CHECK_STR(out, want);
  make_upload(dir, "over.bin", (1u << 20) + 1, file, want);
  sh_capture(out, sizeof(out),
             CURL "-o /dev/null -w '%%{http_code}' -H 'Expect: 100-continue' "
                  "--data-binary @%s http://127.0.0.1:%d/echo", file, s.port);
  CHECK_STR(out, "413");
  finish(&s);
  CHECK_EQ(atomic_load(&delivered), 5);
  CHECK_EQ(s.st.closed_by[SL_CLOSE_PROTOCOL], 1);
  test_sh("rm -rf %s", dir);
}

/* ---- static files: range, HEAD, conditional requests ------------------ */

static void read_whole(const char *path, char *out, size_t cap, size_t *len) {
  FILE *f = fopen(path, "rb");
  CHECK(f != NULL);
  *len = fread(out, 1, cap, f);
  fclose(f);
}

TEST_T(http_interop_curl_static, 30) {
  NEED_TOOL("curl");
  char dir[64], root[96], p[160], got_path[160], out[8192], url[128], etag[128];
  static char data[10000], got[20000];
  make_tmpdir(dir);
  snprintf(root, sizeof(root), "%s/root", dir);
  snprintf(p, sizeof(p), "%s/files", root);
  CHECK_EQ(mkdir(root, 0755), 0);
  CHECK_EQ(mkdir(p, 0755), 0);
  fill_pattern((unsigned char *)data, sizeof(data), 11);
  snprintf(p, sizeof(p), "%s/files/data.bin", root);
  write_file(p, data, sizeof(data));
  struct timespec ts[2] = {{1600000000, 0}, {1600000000, 0}};
  CHECK_EQ(utimensat(AT_FDCWD, p, ts, 0), 0);
  snprintf(got_path, sizeof(got_path), "%s/got", dir);
  struct srv s;
  start(&s, root);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/files/data.bin", s.port);
  size_t n;

  /* The whole file, byte for byte. */
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "-o %s -w '%%{http_code}' %s", got_path, url), 0);
  CHECK_STR(out, "200");
  read_whole(got_path, got, sizeof(got), &n);
  CHECK_EQ(n, sizeof(data));
  CHECK_MEM(got, data, sizeof(data));
  /* A range: exactly bytes 100 to 199. */
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "-r 100-199 -o %s -w '%%{http_code}' %s",
                      got_path, url), 0);
  CHECK_STR(out, "206");
  read_whole(got_path, got, sizeof(got), &n);
  CHECK_EQ(n, 100);
  CHECK_MEM(got, data + 100, 100);
  /* HEAD: headers with the file's length, no body. */
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "-I %s", url), 0);
  CHECK_MSG(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", out);
  CHECK(strstr(out, "Content-Length: 10000\r\n") != NULL);
  CHECK(strstr(out, "Last-Modified: Sun, 13 Sep 2020 12:26:40 GMT\r\n") != NULL);
  char *e = strstr(out, "ETag: ");
  CHECK(e != NULL);
  CHECK_EQ(sscanf(e, "ETag: %100s", etag), 1);
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "-I -o /dev/null -w '%%{size_download}' %s", url), 0);
  CHECK_STR(out, "0");
  /* Conditional requests. */
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "-o /dev/null -w '%%{http_code}' -H 'If-None-Match: %s' %s",
                      etag, url), 0);
  CHECK_STR(out, "304");
  CHECK_EQ(sh_capture(out, sizeof(out),
                      CURL "-o /dev/null -w '%%{http_code}' --time-cond 'Sun, 13 Sep 2020 12:26:40 GMT' %s",
                      url), 0);
  CHECK_STR(out, "304");
  CHECK_EQ(sh_capture(out, sizeof(out),
                      CURL "-o /dev/null -w '%%{http_code} %%{size_download}' "
                           "--time-cond 'Sat, 12 Sep 2020 00:00:00 GMT' %s", url), 0);
  CHECK_STR(out, "200 10000");
  finish(&s);
  CHECK_EQ(atomic_load(&delivered), 7);
  test_sh("rm -rf %s", dir);
}

/* ---- Basic and Bearer ------------------------------------------------- */

TEST_T(http_interop_curl_auth, 30) {
  NEED_TOOL("curl");
  char out[8192];
  struct srv s;
  start(&s, NULL);
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "-u '" USER ":" PASS "' -w ' %%{http_code}' "
                      "http://127.0.0.1:%d/basic", s.port), 0);
  CHECK_STR(out, "welcome 200");
  static const char *bad[] = {"-u '" USER ":wrong'", "-u 'other:" PASS "'", ""};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    CHECK_EQ(sh_capture(out, sizeof(out), CURL "%s -D - -o /dev/null http://127.0.0.1:%d/basic",
                        bad[i], s.port), 0);
    CHECK_MSG(strncmp(out, "HTTP/1.1 401 Unauthorized\r\n", 27) == 0, "%s: %s", bad[i], out);
    CHECK(strstr(out, "\r\nWWW-Authenticate: Basic realm=\"test\", charset=\"UTF-8\"\r\n") != NULL);
  }
  static const struct {
    const char *opt, *query, *want;
  } t[] = {{"-H 'Authorization: Bearer x'", "", "token ok 200"},
           {"", "?token=x", "token ok 200"},
           {"", "?a=1&token=x", "token ok 200"},
           {"-H 'Authorization: Bearer y'", "", "401 Unauthorized\n 401"},
           {"", "?token=y", "401 Unauthorized\n 401"},
           {"", "?token=xx", "401 Unauthorized\n 401"},
           {"", "", "401 Unauthorized\n 401"}};
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    CHECK_EQ(sh_capture(out, sizeof(out), CURL "%s -w ' %%{http_code}' 'http://127.0.0.1:%d/bearer%s'",
                        t[i].opt, s.port, t[i].query), 0);
    CHECK_MSG(strcmp(out, t[i].want) == 0, "%s%s: %s", t[i].opt, t[i].query, out);
  }
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "-D - -o /dev/null http://127.0.0.1:%d/bearer", s.port), 0);
  CHECK(strstr(out, "\r\nWWW-Authenticate: Bearer\r\n") != NULL);
  finish(&s);
  CHECK_EQ(atomic_load(&delivered), 12);
}

/* ---- wrk -------------------------------------------------------------- */

TEST_T(http_interop_wrk_keepalive, 30) {
  NEED_TOOL("wrk");
  static char out[16384];
  struct srv s;
  start(&s, NULL);
  CHECK_EQ(sh_capture(out, sizeof(out), "wrk -t1 -c50 -d3s http://127.0.0.1:%d/hello 2>&1",
                      s.port), 0);
  long long reqs = -1;
  const char *p = strstr(out, " requests in ");
  CHECK_MSG(p != NULL, "wrk output:\n%s", out);
  while (p > out && p[-1] >= '0' && p[-1] <= '9') p--;
  reqs = atoll(p);
  CHECK_MSG(strstr(out, "Socket errors") == NULL, "wrk output:\n%s", out);
  CHECK_MSG(strstr(out, "Non-2xx") == NULL, "wrk output:\n%s", out);
  CHECK_MSG(reqs > 1000, "only %lld requests:\n%s", reqs, out);
  finish(&s);
  /* Every request went over the 50 connections opened at the start (wrk
   * also opens one probe connection first, in wrk.resolve, and closes it
   * without a request). */
  CHECK_GE(s.st.accepted, 50);
  CHECK_LE(s.st.accepted, 51);
  CHECK_GE(atomic_load(&delivered), reqs);
  CHECK_EQ(s.st.closed_by[SL_CLOSE_PROTOCOL], 0);
}
