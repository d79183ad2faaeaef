/* Loopback tests of sl_http_serve_dir with a raw client: malicious paths
 * that try to leave the root, the HTTP features of a file (MIME type,
 * validators and 304, ranges, HEAD, directories), and bounded memory for a
 * 1 GiB download to a slow reader. */
#include <fcntl.h>
#include <sys/stat.h>

#include "http_harness.h"

#define FILE_LEN 1000
#define MTIME 1600000000 /* Sun, 13 Sep 2020 12:26:40 GMT */

static char file_txt[FILE_LEN];

static void on_static(sl_conn *c, int ev, void *ev_data) {
  if (ev == SL_EV_HTTP_MSG) sl_http_serve_dir(c, ev_data, sl_conn_data(c));
}

static void set_mtime(const char *path, time_t t) {
  struct timespec ts[2] = {{t, 0}, {t, 0}};
  CHECK_EQ(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* dir/root holds the files served; dir/secret and dir/root2 lie beside
 * it, and symlinks inside the root point out of it. */
static void make_root(const char *dir, char *root, size_t cap) {
  char p[512], q[512];
  snprintf(root, cap, "%s/root", dir);
  CHECK_EQ(mkdir(root, 0755), 0);
  for (int i = 0; i < FILE_LEN; i++) file_txt[i] = (char)('a' + (i * 7) % 26);
  snprintf(p, sizeof(p), "%s/file.txt", root);
  write_file(p, file_txt, FILE_LEN);
  set_mtime(p, MTIME);
  snprintf(p, sizeof(p), "%s/style.css", root);
  write_file(p, "body{}\n", 7);
  snprintf(p, sizeof(p), "%s/pic.png", root);
  write_file(p, "\x89PNG", 4);
  snprintf(p, sizeof(p), "%s/noext", root);
  write_file(p, "x", 1);
  snprintf(p, sizeof(p), "%s/empty.txt", root);
  write_file(p, "", 0);
  snprintf(p, sizeof(p), "%s/a", root);
  CHECK_EQ(mkdir(p, 0755), 0);
  snprintf(p, sizeof(p), "%s/a/index.html", root);
  write_file(p, "<h1>a</h1>\n", 11);
  snprintf(p, sizeof(p), "%s/secret", dir);
  write_file(p, "TOPSECRET\n", 10);
  snprintf(p, sizeof(p), "%s/root2", dir);
  CHECK_EQ(mkdir(p, 0755), 0);
  snprintf(p, sizeof(p), "%s/root2/x.txt", dir);
  write_file(p, "TOPSECRET too\n", 14);
  snprintf(p, sizeof(p), "%s/link_to_etc_passwd", root);
  CHECK_EQ(symlink("/etc/passwd", p), 0);
  snprintf(p, sizeof(p), "%s/link_secret", root);
  CHECK_EQ(symlink("../secret", p), 0);
  snprintf(p, sizeof(p), "%s/linkdir", root);
  CHECK_EQ(symlink(dir, p), 0);
  /* Same prefix as the root: "/tmp/x/root2" starts with "/tmp/x/root". */
  snprintf(p, sizeof(p), "%s/l2", root);
  snprintf(q, sizeof(q), "%s/root2/x.txt", dir);
  CHECK_EQ(symlink(q, p), 0);
}

/* ---- paths that try to leave the root --------------------------------- */

TEST_T(http_static_traversal_refused, 30) {
  static const struct {
    const char *path;
    int status;
  } t[] = {
      {"/../secret", 403},
      {"/..%2fsecret", 403},
      {"/%2e%2e/secret", 403},
      {"/%2E%2E/secret", 403},
      {"/.%2e/secret", 403},
      {"/%2e%2e%2fsecret", 403},
      {"/..\\secret", 403},
      {"/..%5csecret", 403},
      {"/%5c..%5csecret", 403},
      {"/a/../../secret", 403},
      {"/a/%2e%2e/%2e%2e/secret", 403},
      {"/a/..%2f..%2fsecret", 403},
      {"/./../secret", 403},
      {"/file.txt/../../secret", 403},
      {"/../../../../../../../../etc/passwd", 403},
      {"/file%00.txt", 403},
      {"/file.txt%2f", 403},
      {"/%u002e%u002e/secret", 403},
      {"/link_to_etc_passwd", 403},
      {"/link_secret", 403},
      {"/linkdir/secret", 403},
      {"/l2", 403},
      {"http://x/../secret", 403},
      {"//etc/passwd", 404},
      {"/%252e%252e/secret", 404},
      {"/%c0%ae%c0%ae/secret", 404},
      {"/..;/secret", 404},
      {"/...", 404},
      {"/secret", 404},
  };
  char dir[64], root[128];
  make_tmpdir(dir);
  make_root(dir, root, sizeof(root));
  struct srv s;
  srv_start(&s, NULL, NULL, on_static, root);
  struct cli *k = cli_open(s.port);
  struct resp r;
  /* The control: the file itself is served. */
  cli_send(k, "GET /file.txt HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK_EQ(cli_resp(k, &r, 0), 0);
  CHECK_EQ(r.status, 200);
  CHECK_EQ(r.body_len, FILE_LEN);
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    char req[512];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", t[i].path);
    cli_send(k, req);
    CHECK_MSG(cli_resp(k, &r, 0) == 0, "%s: no response", t[i].path);
    CHECK_MSG(r.status == t[i].status, "%s: status %d, want %d", t[i].path, r.status,
              t[i].status);
    CHECK_MSG(strstr(r.body, "TOPSECRET") == NULL && strstr(r.body, "root:") == NULL,
              "%s: leaked %s", t[i].path, r.body);
  }
  cli_close(k);
  srv_wait_clean(&s, 3000);
  srv_stop(&s);
  CHECK_EQ(s.st.accepted, 1); /* 403 and 404 keep the connection */
  CHECK_MEM_CLEAN();
  test_sh("rm -rf %s", dir);
}

/* ---- what a file response carries ------------------------------------- */

static void get(struct cli *k, struct resp *r, const char *path, const char *headers) {
  char req[1024];
  snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n", path, headers);
  cli_send(k, req);
  CHECK_MSG(cli_resp(k, r, 0) == 0, "GET %s: no response", path);
}

static void check_range(struct cli *k, const char *range, const char *crange,
                        size_t from, size_t len) {
  struct resp r;
  char h[128];
  snprintf(h, sizeof(h), "Range: %s\r\n", range);
  get(k, &r, "/file.txt", h);
  CHECK_MSG(r.status == 206, "%s: %d", range, r.status);
  CHECK_STR(resp_header(&r, "Content-Range"), crange);
  CHECK_EQ(r.clen, (long long)len);
  CHECK_EQ(r.body_len, len);
  CHECK_MEM(r.body, file_txt + from, len);
}

TEST_T(http_static_file_features, 30) {
  char dir[64], root[128], h[256], etag[128], lastmod[128];
  make_tmpdir(dir);
  make_root(dir, root, sizeof(root));
  struct srv s;
  struct resp r;
  srv_start(&s, NULL, NULL, on_static, root);
  struct cli *k = cli_open(s.port);

  get(k, &r, "/file.txt", "");
  CHECK_EQ(r.status, 200);
  CHECK_EQ(r.clen, FILE_LEN);
  CHECK_EQ(r.body_len, FILE_LEN);
  CHECK_MEM(r.body, file_txt, FILE_LEN);
  CHECK_STR(resp_header(&r, "Content-Type"), "text/plain; charset=utf-8");
  CHECK_STR(resp_header(&r, "Accept-Ranges"), "bytes");
  CHECK_STR(resp_header(&r, "Last-Modified"), "Sun, 13 Sep 2020 12:26:40 GMT");
  CHECK(resp_header(&r, "ETag") != NULL);
  snprintf(etag, sizeof(etag), "%.100s", resp_header(&r, "ETag"));
  snprintf(lastmod, sizeof(lastmod), "%.100s", resp_header(&r, "Last-Modified"));
  CHECK(etag[0] == '"' && etag[strlen(etag) - 1] == '"' && strlen(etag) > 2);

  /* MIME types by extension. */
  static const struct {
    const char *path, *mime, *body;
  } mt[] = {{"/style.css", "text/css; charset=utf-8", "body{}\n"},
            {"/pic.png", "image/png", "\x89PNG"},
            {"/noext", "application/octet-stream", "x"},
            {"/a/", "text/html; charset=utf-8", "<h1>a</h1>\n"},
            {"/a/index.html", "text/html; charset=utf-8", "<h1>a</h1>\n"},
            {"/empty.txt", "text/plain; charset=utf-8", ""}};
  for (size_t i = 0; i < sizeof(mt) / sizeof(mt[0]); i++) {
    get(k, &r, mt[i].path, "");
    CHECK_MSG(r.status == 200, "%s: %d", mt[i].path, r.status);
    CHECK_STR(resp_header(&r, "Content-Type"), mt[i].mime);
    CHECK_STR(r.body, mt[i].body);
  }

  /* Validators: 304 carries no body and no length, and the next response
   * on the connection parses right after it. */
  static const char *hit[] = {"If-None-Match: %s\r\n", "If-None-Match: W/%s\r\n",
                              "If-None-Match: \"x\", %s\r\n", "If-None-Match: *\r\n%.0s"};
  for (size_t i = 0; i < sizeof(hit) / sizeof(hit[0]); i++) {
    snprintf(h, sizeof(h), hit[i], etag);
    get(k, &r, "/file.txt", h);
    CHECK_MSG(r.status == 304, "%s: %d", h, r.status);
    CHECK_EQ(r.clen, -1);
    CHECK_STR(resp_header(&r, "ETag"), etag);
  }
  snprintf(h, sizeof(h), "If-Modified-Since: %s\r\n", lastmod);
  get(k, &r, "/file.txt", h);
  CHECK_EQ(r.status, 304);
  get(k, &r, "/file.txt", "If-Modified-Since: Sat, 12 Sep 2020 00:00:00 GMT\r\n");
  CHECK_EQ(r.status, 200);
  CHECK_EQ(r.body_len, FILE_LEN);
  /* If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3). */
  snprintf(h, sizeof(h), "If-None-Match: \"other\"\r\nIf-Modified-Since: %s\r\n", lastmod);
  get(k, &r, "/file.txt", h);
  CHECK_EQ(r.status, 200);
  CHECK_EQ(r.body_len, FILE_LEN);

  /* Ranges. */
  check_range(k, "bytes=100-199", "bytes 100-199/1000", 100, 100);
  check_range(k, "bytes=-10", "bytes 990-999/1000", 990, 10);
  check_range(k, "bytes=990-", "bytes 990-999/1000", 990, 10);
  check_range(k, "bytes=995-5000", "bytes 995-999/1000", 995, 5);
  check_range(k, "bytes=0-0", "bytes 0-0/1000", 0, 1);
  get(k, &r, "/file.txt", "Range: bytes=1000-\r\n");
  CHECK_EQ(r.status, 416);
  CHECK_STR(resp_header(&r, "Content-Range"), "bytes */1000");
  static const char *ignored[] = {"Range: bytes=5-2\r\n", "Range: bytes=0-1,5-6\r\n",
                                  "Range: items=0-1\r\n", "Range: bytes=0-9\r\nIf-Range: \"old\"\r\n"};
  for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++) {
    get(k, &r, "/file.txt", ignored[i]);
    CHECK_MSG(r.status == 200 && r.body_len == FILE_LEN, "%s: %d", ignored[i], r.status);
  }
  snprintf(h, sizeof(h), "Range: bytes=10-19\r\nIf-Range: %s\r\n", etag);
  get(k, &r, "/file.txt", h);
  CHECK_EQ(r.status, 206);
  CHECK_MEM(r.body, file_txt + 10, 10);

  /* HEAD: the GET's headers and length, no body (the pipelined GET after
   * it is parsed right after the head). */
  cli_send(k, "HEAD /file.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /noext HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK_EQ(cli_resp(k, &r, 1), 0);
  CHECK_EQ(r.status, 200);
  CHECK_EQ(r.clen, FILE_LEN);
  CHECK_STR(resp_header(&r, "ETag"), etag);
  CHECK_STR(resp_header(&r, "Content-Type"), "text/plain; charset=utf-8");
  CHECK_EQ(cli_resp(k, &r, 0), 0);
  CHECK_STR(r.body, "x");

  /* Directories: redirect to the slash form, then index.html; no index is
   * a 404. A doubled leading slash must not redirect off-site ("//a/" is
   * a network-path reference to host "a"). */
  static const struct {
    const char *path;
    int status;
    const char *location;
  } dirs[] = {{"/a", 301, "/a/"}, {"/a?x=1", 301, "/a/"}, {"//a", 301, "/a/"},
              {"///a", 301, "/a/"}, {"/", 404, NULL}, {"/missing/", 404, NULL}};
  for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
    get(k, &r, dirs[i].path, "");
    CHECK_MSG(r.status == dirs[i].status, "%s: %d", dirs[i].path, r.status);
    const char *loc = resp_header(&r, "Location");
    if (dirs[i].location) CHECK_STR(loc, dirs[i].location);
    else CHECK(loc == NULL);
  }

  /* Other methods. */
  cli_send(k, "POST /file.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  CHECK_EQ(cli_resp(k, &r, 0), 0);
  CHECK_EQ(r.status, 405);
  CHECK_STR(resp_header(&r, "Allow"), "GET, HEAD");

  /* A changed file gets a new ETag: the old one no longer matches. */
  char p[256];
  snprintf(p, sizeof(p), "%s/file.txt", root);
  set_mtime(p, MTIME + 60);
  snprintf(h, sizeof(h), "If-None-Match: %s\r\n", etag);
  get(k, &r, "/file.txt", h);
  CHECK_EQ(r.status, 200);
  CHECK(strcmp(resp_header(&r, "ETag"), etag) != 0);

  cli_close(k);
  srv_wait_clean(&s, 3000);
  srv_stop(&s);
  CHECK_EQ(s.st.accepted, 1);
  CHECK_MEM_CLEAN();
  test_sh("rm -rf %s", dir);
}

/* ---- a 1 GiB download to a slow reader holds bounded memory ----------- */

static void held_now(sl_mgr *m, void *arg) {
  sl_mgr_stats st;
  sl_mgr_stats_get(m, &st);
  *(size_t *)arg = st.held;
}

#define GIB (1ull << 30)
/* The documented bound of one download, plus the connection's input
 * buffer (at most one read step, 16 KiB) and its response head. */
#define HELD_BOUND (256u * 1024 + 20u * 1024)

TEST_T(http_static_large_download_bounded, 30) {
  char dir[64], root[128], p[256];
  make_tmpdir(dir);
  snprintf(root, sizeof(root), "%s/root", dir);
  CHECK_EQ(mkdir(root, 0755), 0);
  snprintf(p, sizeof(p), "%s/big.bin", root);
  int f = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
  CHECK(f >= 0);
  CHECK_EQ(ftruncate(f, (off_t)GIB), 0); /* sparse: reads as zeros */
  close(f);
  struct srv s;
  srv_start(&s, NULL, NULL, on_static, root);

  struct cli *k = cli_open(s.port);
  struct resp r;
  cli_send(k, "HEAD /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK_EQ(cli_resp(k, &r, 1), 0);
  CHECK_EQ(r.clen, (long long)GIB);
  cli_close(k);

  int fd = test_connect(s.port, 65536);
  const char *req = "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n";
  CHECK_EQ(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
  static char buf[1 << 20];
  size_t got = 0, head = 0, max_held = 0, samples = 0;
  uint64_t t0 = test_now_ms();
  while (test_now_ms() - t0 < 2000) {
    /* About 1 MB every 50 ms: far slower than the server can send. */
    size_t n = 0;
    ssize_t rc;
    while (n < sizeof(buf) && (rc = recv(fd, buf + n, sizeof(buf) - n, MSG_DONTWAIT)) > 0)
      n += (size_t)rc;
    if (head == 0 && n) {
      char *e = memmem(buf, n, "\r\n\r\n", 4);
      CHECK(e != NULL);
      head = (size_t)(e - buf) + 4;
      CHECK(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
      CHECK(memmem(buf, head, "Content-Length: 1073741824\r\n", 28) != NULL);
    }
    for (size_t i = got ? 0 : head; i < n; i++) CHECK(buf[i] == 0);
    got += n;
    size_t held = 0;
    srv_run(&s, held_now, &held);
    if (held > max_held) max_held = held;
    samples++;
    usleep(50000); /* pacing: the sampling interval of a slow reader */
  }
  CHECK_GE(got, 10u << 20); /* it did flow ... */
  CHECK(got < GIB);          /* ... and it was still going */
  CHECK_GE(max_held, 64 * 1024); /* the samples saw it in flight */
  CHECK_LE(max_held, HELD_BOUND);
  close(fd); /* unread data: the server sees a reset or EOF */
  srv_wait_clean(&s, 3000);
  srv_stop(&s);
  CHECK_LE(s.st.peak, HELD_BOUND); /* the exact maximum, not a sample */
  CHECK_EQ(s.st.closed_by[SL_CLOSE_PEER] + s.st.closed_by[SL_CLOSE_ERROR], 2);
  CHECK_MEM_CLEAN();
  test_sh("rm -rf %s", dir);
}

/* A download the budget cannot feed ends (reason "limit") instead of
 * hanging with nothing queued and no timeout that applies. */
TEST_T(http_static_download_over_budget_ends, 30) {
  char dir[64], root[128], p[256];
  static char data[300000];
  make_tmpdir(dir);
  snprintf(root, sizeof(root), "%s/root", dir);
  CHECK_EQ(mkdir(root, 0755), 0);
  snprintf(p, sizeof(p), "%s/f.bin", root);
  write_file(p, data, sizeof(data));
  /* The head fits, one 64 KiB piece of the file never does. */
  sl_mgr_opts mo = {.budget = 40 * 1024};
  struct srv s;
  srv_start(&s, &mo, NULL, on_static, root);
  struct cli *k = cli_open(s.port);
  struct resp r;
  cli_send(k, "GET /f.bin HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK_EQ(cli_resp(k, &r, 0), -1); /* the head, then the end ... */
  CHECK(k->eof);                     /* ... by a close, not a time-out */
  CHECK_EQ(r.status, 200);
  CHECK_EQ(r.clen, (long long)sizeof(data));
  CHECK(r.body_len < sizeof(data));
  cli_close(k);
  srv_wait_clean(&s, 3000);
  srv_stop(&s);
  CHECK_EQ(s.st.closed_by[SL_CLOSE_LIMIT], 1);
  CHECK_MEM_CLEAN();
  test_sh("rm -rf %s", dir);
}
