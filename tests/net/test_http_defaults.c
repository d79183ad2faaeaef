/* Loopback tests of the server's safety rules and defaults: reply header
 * lines are validated before anything is queued, a slow request body is
 * bounded by the body limits and not by the header timeout, CORS on hub
 * streams is off unless listed, WebSocket upgrades default to the same
 * origin. Each test ends with the manager freed and zero bytes held. */
#include "http_harness.h"

/* ---- reply header validation ---------------------------------------- */

static const char *const bad_headers[] = {
    "Content-Type: application/json",          /* no CRLF */
    "A: b\r\n\r\nX: y\r\n",                    /* empty line: a split */
    "\r\n",                                    /* an empty line alone */
    "A: b\nB: c\r\n",                          /* bare LF */
    "A: b\rB: c\r\n",                          /* bare CR */
    ": v\r\n",                                 /* no name */
    "Bad Name: v\r\n",                         /* space in the name */
    "A: b\r\nC",                               /* junk after the last CRLF */
    "A: b\x01\r\n",                            /* a control in the value */
    "X-\xff: v\r\n",                           /* not a token */
};
#define NBAD (sizeof(bad_headers) / sizeof(bad_headers[0]))

static void on_hdr(sl_conn *c, int ev, void *ev_data) {
  if (ev != SL_EV_HTTP_MSG) return;
  const sl_http_msg *m = ev_data;
  char body[512];
  size_t n = 0;
  for (size_t i = 0; i < NBAD; i++) {
    int r1 = sl_http_reply(c, 200, bad_headers[i], "x", 1);
    int r2 = sl_http_start(c, 200, bad_headers[i], SL_HTTP_CHUNKED);
    n += (size_t)snprintf(body + n, sizeof(body) - n, "%d,%d;", r1 == SL_EINVAL,
                          r2 == SL_EINVAL);
  }
  (void)m;
  /* Still unanswered: a valid reply goes through, tabs and all. */
  sl_http_reply(c, 200, "Content-Type: text/plain\r\nX-Ok: a\tb\r\n", body, n);
}

TEST_T(http_reply_headers_validated, 20) {
  struct srv s;
  srv_start(&s, NULL, NULL, on_hdr, NULL);
  struct cli *k = cli_open(s.port);
  cli_send(k, "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n");
  char want[512] = "";
  for (size_t i = 0; i < NBAD; i++) strcat(want, "1,1;");
  for (int i = 0; i < 2; i++) {
    struct resp r;
    CHECK_EQ(cli_resp(k, &r, 0), 0);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, want);
    CHECK_STR(resp_header(&r, "X-Ok"), "a\tb");
    CHECK(resp_header(&r, "X") == NULL);
  }
  /* Nothing else was sent: no stray response before or after. */
  CHECK_EQ(k->len, 0);
  cli_close(k);
  srv_wait_clean(&s, 3000);
  srv_stop(&s);
  CHECK_MEM_CLEAN();
}

/* ---- body timeouts -------------------------------------------------- */

static void on_upload(sl_conn *c, int ev, void *ev_data) {
  if (ev != SL_EV_HTTP_MSG) return;
  const sl_http_msg *m = ev_data;
  uint32_t h = fnv1a(m->body.ptr, m->body.len);
  sl_http_replyf(c, 200, NULL, "%zu %08x", m->body.len, h);
}

/* Send `len` bytes of body in pieces of `piece` every `gap_ms`. */
static void trickle(struct cli *k, const unsigned char *body, size_t len, size_t piece,
                    int gap_ms) {
  for (size_t off = 0; off < len; off += piece) {
    cli_sendn(k, body + off, len - off < piece ? len - off : piece);
    usleep((useconds_t)gap_ms * 1000);
  }
}

/* A body arriving for three header timeouts is served: the header timeout
 * ended with the headers (it used to cut it with 408). Once with
 * Content-Length, once chunked. */
TEST_T(http_slow_body_outlives_header_timeout, 30) {
  sl_http_opts ho = {.header_timeout_ms = 1000, .body_min_rate = 20,
                     .body_rate_window_ms = 1000};
  struct srv s;
  srv_start(&s, NULL, &ho, on_upload, NULL);
  static unsigned char body[600];
  fill_pattern(body, sizeof(body), 7);
  char want[64];
  snprintf(want, sizeof(want), "%zu %08x", sizeof(body), fnv1a(body, sizeof(body)));
  struct cli *k = cli_open(s.port);
  char head[128];
  snprintf(head, sizeof(head), "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
           sizeof(body));
  cli_send(k, head);
  trickle(k, body, sizeof(body), 20, 100); /* 200 B/s: about 3 s */
  struct resp r;
  CHECK_EQ(cli_resp(k, &r, 0), 0);
  CHECK_EQ(r.status, 200);
  CHECK_STR(r.body, want);
  /* Chunked, on the same connection. */
  cli_send(k, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (size_t off = 0; off < sizeof(body); off += 30) {
    char sz[16];
    snprintf(sz, sizeof(sz), "%x\r\n", 30);
    cli_send(k, sz);
    cli_sendn(k, body + off, 30);
    cli_send(k, "\r\n");
    usleep(150 * 1000); /* pacing: a slow but steady chunked upload */
  }
  cli_send(k, "0\r\n\r\n");
  CHECK_EQ(cli_resp(k, &r, 0), 0);
  CHECK_EQ(r.status, 200);
  CHECK_STR(r.body, want);
  cli_close(k);
  srv_wait_clean(&s, 3000);
  srv_stop(&s);
  CHECK_EQ(s.st.closed_by[SL_CLOSE_PROTOCOL], 0);
  CHECK_MEM_CLEAN();
}

/* A body that stops gets 408 from the body timeout, and one that trickles
 * below body_min_rate gets 408 from the rate check. */
TEST_T(http_stalled_or_slow_body_gets_408, 30) {
  sl_http_opts ho = {.header_timeout_ms = 500, .body_timeout_ms = 1500};
  struct srv s;
  srv_start(&s, NULL, &ho, on_upload, NULL);
  struct cli *k = cli_open(s.port);
  uint64_t t0 = test_now_ms();
  cli_send(k, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789");
  struct resp r;
  CHECK_EQ(cli_resp(k, &r, 0), 0);
  CHECK_EQ(r.status, 408);
  /* The body timeout, not the header timeout, ended it. */
  CHECK_GE(test_now_ms() - t0, 1400);
  CHECK_EQ(cli_wait_eof(k, 3000), 1);
  cli_close(k);
  srv_wait_clean(&s, 3000);
  srv_stop(&s);

  sl_http_opts ro = {.header_timeout_ms = 500, .body_timeout_ms = UINT32_MAX,
                     .body_min_rate = 1000, .body_rate_window_ms = 400};
  srv_start(&s, NULL, &ro, on_upload, NULL);
  k = cli_open(s.port);
  cli_send(k, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
  /* 10 bytes every 100 ms: 100 B/s, a tenth of the minimum. */
  int got = 0;
  for (int i = 0; i < 60 && !got; i++) {
    if (send(k->fd, "0123456789", 10, MSG_NOSIGNAL) != 10) break;
    struct pollfd p = {k->fd, POLLIN, 0};
    got = poll(&p, 1, 100) > 0;
  }
  CHECK(got);
  CHECK_EQ(cli_resp(k, &r, 0), 0);
  CHECK_EQ(r.status, 408);
  cli_close(k);
  srv_wait_clean(&s, 3000);
  srv_stop(&s);
  CHECK_MEM_CLEAN();
}

/* ---- CORS on hub streams -------------------------------------------- */

struct cors_app {
  sl_hub *hub;
  const char *const *per_sub; /* sl_sub_opts.cors_origins for /sub */
};

static void on_cors(sl_conn *c, int ev, void *ev_data) {
  if (ev != SL_EV_HTTP_MSG) return;
  struct cors_app *a = sl_conn_data(c);
  const sl_http_msg *m = ev_data;
  sl_sub_opts o = {.cors_origins = a->per_sub};
  int chunked = sl_http_match(m, "/bin", NULL, 0);
  int per = sl_http_match(m, "/sub", NULL, 0);
  sl_hub_attach(a->hub, c, m, chunked ? SL_TRANSPORT_CHUNKED : SL_TRANSPORT_MJPEG,
                per ? &o : NULL, NULL);
}

struct hub_mk {
  const char *const *origins;
  struct cors_app *app;
};

static void make_hub(sl_mgr *m, void *arg) {
  struct hub_mk *k = arg;
  sl_hub_opts ho = {.sub = {.cors_origins = k->origins}};
  int err = 0;
  k->app->hub = sl_hub_new(m, "cam", &ho, &err);
  CHECK(k->app->hub != NULL);
}

/* The head of the stream at `path` for a page of `origin` (NULL: none). */
static void stream_head(int port, const char *path, const char *origin, struct resp *r) {
  struct cli *k = cli_open(port);
  char req[256];
  snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%s\r\n", path,
           origin ? "Origin: " : "", origin ? origin : "", origin ? "\r\n" : "");
  cli_send(k, req);
  CHECK_EQ(cli_resp(k, r, 1), 0);
  CHECK_EQ(r->status, 200);
  cli_close(k);
}

TEST_T(hub_cors_off_by_default_listed_origins_only, 30) {
  static const char *const listed[] = {"http://a.example", "https://b.example:8443", NULL};
  static const char *const any[] = {"*", NULL};
  static const char *const other[] = {"http://c.example", NULL};
  struct resp r;
  struct srv s;
  struct cors_app app = {0};
  /* Default: no CORS header for anyone (it used to be '*' always). */
  struct hub_mk mk = {NULL, &app};
  srv_start(&s, NULL, NULL, on_cors, &app);
  srv_run(&s, make_hub, &mk);
  stream_head(s.port, "/mjpg", "http://a.example", &r);
  CHECK_MSG(resp_header(&r, "Access-Control-Allow-Origin") == NULL, "%s", r.head);
  stream_head(s.port, "/bin", "http://a.example", &r);
  CHECK(resp_header(&r, "Access-Control-Allow-Origin") == NULL);
  srv_wait_clean(&s, 3000);
  srv_stop(&s);

  /* A list: the listed page's origin is echoed, with Vary; others none. */
  mk.origins = listed;
  app.per_sub = other;
  srv_start(&s, NULL, NULL, on_cors, &app);
  srv_run(&s, make_hub, &mk);
  stream_head(s.port, "/mjpg", "https://b.example:8443", &r);
  CHECK_STR(resp_header(&r, "Access-Control-Allow-Origin"), "https://b.example:8443");
  CHECK_STR(resp_header(&r, "Vary"), "Origin");
  CHECK(strstr(r.head, "multipart/x-mixed-replace") != NULL);
  stream_head(s.port, "/bin", "http://a.example", &r);
  CHECK_STR(resp_header(&r, "Access-Control-Allow-Origin"), "http://a.example");
  stream_head(s.port, "/mjpg", "http://evil.example", &r);
  CHECK(resp_header(&r, "Access-Control-Allow-Origin") == NULL);
  CHECK_STR(resp_header(&r, "Vary"), "Origin");
  stream_head(s.port, "/mjpg", NULL, &r);
  CHECK(resp_header(&r, "Access-Control-Allow-Origin") == NULL);
  /* Per-subscriber options override the hub's list. */
  stream_head(s.port, "/sub", "http://a.example", &r);
  CHECK(resp_header(&r, "Access-Control-Allow-Origin") == NULL);
  stream_head(s.port, "/sub", "http://c.example", &r);
  CHECK_STR(resp_header(&r, "Access-Control-Allow-Origin"), "http://c.example");
  srv_wait_clean(&s, 3000);
  srv_stop(&s);

  /* "*": any page, answered with '*'. */
  mk.origins = any;
  app.per_sub = NULL;
  srv_start(&s, NULL, NULL, on_cors, &app);
  srv_run(&s, make_hub, &mk);
  stream_head(s.port, "/mjpg", "http://evil.example", &r);
  CHECK_STR(resp_header(&r, "Access-Control-Allow-Origin"), "*");
  srv_wait_clean(&s, 3000);
  srv_stop(&s);
  CHECK_MEM_CLEAN();
}

/* ---- WebSocket origin default --------------------------------------- */

static void on_ws(sl_conn *c, int ev, void *ev_data) {
  if (ev != SL_EV_HTTP_MSG) return;
  const sl_http_msg *m = ev_data;
  sl_ws_opts o = {0};
  if (sl_http_match(m, "/any", NULL, 0)) o.origins = SL_WS_ANY_ORIGIN;
  if (sl_ws_upgrade(c, m, sl_http_match(m, "/null", NULL, 0) ? NULL : &o) == 0)
    sl_ws_close(c, 1000, NULL);
}

static int ws_status(int port, const char *path, const char *origin) {
  char req[512];
  snprintf(req, sizeof(req),
           "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n%s%s%s\r\n",
           path, port, origin ? "Origin: " : "", origin ? origin : "", origin ? "\r\n" : "");
  struct cli *k = cli_open(port);
  cli_send(k, req);
  struct resp r;
  CHECK_EQ(cli_resp(k, &r, 1), 0);
  cli_close(k);
  return r.status;
}

TEST_T(ws_origin_defaults_to_same_origin, 20) {
  struct srv s;
  srv_start(&s, NULL, NULL, on_ws, NULL);
  char same[64];
  snprintf(same, sizeof(same), "http://127.0.0.1:%d", s.port);
  const char *paths[] = {"/ws", "/null"};
  for (int i = 0; i < 2; i++) {
    /* Another site's page is refused (it used to get a socket). */
    CHECK_EQ(ws_status(s.port, paths[i], "http://evil.example"), 403);
    CHECK_EQ(ws_status(s.port, paths[i], "http://127.0.0.1:1"), 403);
    CHECK_EQ(ws_status(s.port, paths[i], same), 101);
    CHECK_EQ(ws_status(s.port, paths[i], NULL), 101); /* not a browser */
  }
  CHECK_EQ(ws_status(s.port, "/any", "http://evil.example"), 101);
  srv_wait_clean(&s, 3000);
  srv_stop(&s);
  CHECK_MEM_CLEAN();
}
