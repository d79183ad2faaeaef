/* Uploads over real sockets: the headers event (refusing with 401 and 413
 * before 100 Continue and before the body is read), per-request and
 * per-route body limits, and streamed bodies (Content-Length and chunked,
 * 1 GiB held within a few input buffers, backpressure by pausing reading,
 * the body timeout on a client that stops). */
#include "http_harness.h"

#define RECV_MAX (64u * 1024)
/* The streamed body is a repeating pattern of a prime period, so a lost,
 * doubled or misplaced byte shows at its position. PAT holds three periods:
 * any piece up to two periods long compares in one memcmp. */
#define PERIOD 65521u
static unsigned char pat[3 * PERIOD];

static void pat_init(void) {
  fill_pattern(pat, PERIOD, 7);
  memcpy(pat + PERIOD, pat, PERIOD);
  memcpy(pat + 2 * PERIOD, pat, PERIOD);
}

/* What the server saw, published to the test thread. */
static atomic_int n_headers, n_msgs, n_ends, n_closes;
static atomic_ullong got, bad_at, peak_held, peak_in, peak_mem_in, paused_bytes;
static atomic_uint sum;
static atomic_int pause_ms;             /* >0: pause once, this long */
static atomic_ullong pause_at;          /* ...when `got` passes this */
static int paused;                      /* loop thread only */
static sl_router *router;

static void reset(void) {
  atomic_store(&n_headers, 0);
  atomic_store(&n_msgs, 0);
  atomic_store(&n_ends, 0);
  atomic_store(&n_closes, 0);
  atomic_store(&got, 0);
  atomic_store(&bad_at, 0);
  atomic_store(&peak_held, 0);
  atomic_store(&peak_in, 0);
  atomic_store(&peak_mem_in, 0);
  atomic_store(&paused_bytes, 0);
  atomic_store(&sum, 2166136261u);
  atomic_store(&pause_ms, 0);
  atomic_store(&pause_at, 0);
}

static void raise_to(atomic_ullong *a, unsigned long long v) {
  if (v > atomic_load(a)) atomic_store(a, v);
}

static void resume(sl_mgr *m, void *arg) {
  (void)m;
  paused = 0;
  sl_conn_pause_read(arg, 0);
}

/* One piece of a streamed body: check it against the pattern at its
 * position, hash it, and sample what the library holds. */
static void on_piece(sl_conn *c, const sl_str *s) {
  if (s->len == 0) {
    atomic_fetch_add(&n_ends, 1);
    sl_http_replyf(c, 200, NULL, "len=%llu sum=%08x bad=%llu", atomic_load(&got),
                   atomic_load(&sum), atomic_load(&bad_at));
    return;
  }
  unsigned long long pos = atomic_load(&got);
  if (paused) atomic_fetch_add(&paused_bytes, s->len);
  if (atomic_load(&bad_at) == 0 && memcmp(s->ptr, pat + pos % PERIOD, s->len) != 0)
    atomic_store(&bad_at, pos + 1);
  uint32_t h = atomic_load(&sum);
  for (size_t i = 0; i < s->len; i++) h = (h ^ (unsigned char)s->ptr[i]) * 16777619u;
  atomic_store(&sum, h);
  atomic_store(&got, pos + s->len);
  sl_mgr_stats st;
  sl_mgr_stats_get(sl_conn_mgr(c), &st);
  sl_mem_stats ms;
  sl_mem_stats_get(&ms);
  raise_to(&peak_held, st.held);
  raise_to(&peak_in, st.in);
  raise_to(&peak_mem_in, ms.in);
  int pm = atomic_load(&pause_ms);
  if (pm > 0 && pos + s->len >= atomic_load(&pause_at)) {
    atomic_store(&pause_ms, 0);
    paused = 1;
    sl_conn_pause_read(c, 1);
    CHECK(sl_timer_add(sl_conn_mgr(c), (uint64_t)pm, 0, resume, c, NULL) != NULL);
  }
}

static void tiny_route(sl_conn *c, const sl_http_msg *m, const sl_str *caps, void *data) {
  (void)caps, (void)data;
  sl_http_replyf(c, 200, NULL, "route len=%zu", m->body.len);
}

static void on_http(sl_conn *c, int ev, void *ev_data) {
  sl_http_msg *m = ev_data;
  switch (ev) {
    case SL_EV_HTTP_HEADERS:
      atomic_fetch_add(&n_headers, 1);
      CHECK_EQ(m->body.len, 0);
      if (sl_http_match(m, "/auth/**", NULL, 0) && !sl_http_check_bearer(m, "sesame")) {
        CHECK_EQ(sl_http_reply_401(c, NULL), 0);
        /* Answered: the request takes nothing more. */
        CHECK_EQ(sl_http_body_stream(c, 1), SL_EINVAL);
        return;
      }
      if (sl_http_match(m, "/small", NULL, 0)) CHECK_EQ(sl_http_body_max(c, 100), 0);
      sl_router_headers(router, c, m);
      if (sl_http_match(m, "/stream", NULL, 0)) {
        CHECK_EQ(sl_http_body_max(c, ~0ull), 0);
        CHECK_EQ(sl_http_body_stream(c, 1), 0);
      }
      return;
    case SL_EV_HTTP_CHUNK:
      on_piece(c, ev_data);
      return;
    case SL_EV_HTTP_MSG:
      atomic_fetch_add(&n_msgs, 1);
      /* The upload calls act only in the headers event. */
      CHECK_EQ(sl_http_body_max(c, 1), SL_EINVAL);
      CHECK_EQ(sl_http_body_stream(c, 1), SL_EINVAL);
      if (!sl_router_dispatch(router, c, m))
        sl_http_replyf(c, 200, NULL, "len=%zu sum=%08x", m->body.len, fnv1a(m->body.ptr, m->body.len));
      return;
    case SL_EV_CLOSE:
      atomic_fetch_add(&n_closes, 1);
      return;
    default:
      return;
  }
}

static void start(struct srv *s, const sl_http_opts *ho) {
  sl_mgr_opts mo;
  memset(&mo, 0, sizeof(mo));
  mo.limits.recv_max = RECV_MAX;
  pat_init();
  reset();
  router = sl_router_new();
  CHECK(router != NULL);
  sl_route_opts ro = {64};
  CHECK_EQ(sl_router_add_opts(router, "POST", "/route/tiny", tiny_route, NULL, &ro), 0);
  CHECK_EQ(sl_router_add(router, "POST", "/route/default", tiny_route, NULL), 0);
  srv_start(s, &mo, ho, on_http, NULL);
}

static void finish(struct srv *s) {
  srv_wait_clean(s, 5000);
  srv_stop(s);
  sl_router_free(router);
  router = NULL;
  CHECK_EQ(s->st.held, 0);
  CHECK_EQ(s->st.in, 0);
  CHECK_EQ(s->st.queued, 0);
  CHECK_MEM_CLEAN();
}

/* Nothing more arrives within `ms`: no 100 Continue sneaks in after. */
static int quiet_for(struct cli *k, int ms) {
  struct pollfd p = {k->fd, POLLIN, 0};
  return poll(&p, 1, ms) == 0;
}

/* ---- refusing in the headers event ---------------------------------- */

TEST_T(http_upload_refused_before_continue, 30) {
  struct srv s;
  struct resp r;
  start(&s, NULL);
  /* 401: the first bytes back are the final response, never a 100, and
   * the connection closes after it (the body was not read). */
  struct cli *k = cli_open(s.port);
  cli_send(k, "POST /auth/up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
              "Expect: 100-continue\r\n\r\n");
  CHECK_EQ(cli_resp(k, &r, 0), 0);
  CHECK_EQ(r.status, 401);
  CHECK(strncmp(r.head, "HTTP/1.1 401 ", 13) == 0);
  CHECK_STR(resp_header(&r, "Connection"), "close");
  CHECK_EQ(cli_wait_eof(k, 5000), 1);
  cli_close(k);
  /* 413 from a per-request limit set in the event, before 100 Continue. */
  k = cli_open(s.port);
  cli_send(k, "POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n"
              "Expect: 100-continue\r\n\r\n");
  CHECK_EQ(cli_resp(k, &r, 0), 0);
  CHECK_EQ(r.status, 413);
  CHECK_EQ(cli_wait_eof(k, 5000), 1);
  cli_close(k);
  CHECK_EQ(atomic_load(&n_msgs), 0);
  /* Accepted: 100 Continue, then the body, then the answer; the
   * connection goes on (keep-alive) with the per-request limit reset. */
  k = cli_open(s.port);
  cli_send(k, "POST /auth/up HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sesame\r\n"
              "Content-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  char line[256];
  CHECK_EQ(cli_line(k, line, sizeof(line)), 0);
  CHECK_STR(line, "HTTP/1.1 100 Continue");
  CHECK_EQ(cli_line(k, line, sizeof(line)), 0);
  CHECK_STR(line, "");
  CHECK(quiet_for(k, 50));
  cli_send(k, "hello");
  CHECK_EQ(cli_resp(k, &r, 0), 0);
  CHECK_EQ(r.status, 200);
  char want[64];
  snprintf(want, sizeof(want), "len=5 sum=%08x", fnv1a("hello", 5));
  CHECK_STR(r.body, want);
  CHECK(resp_header(&r, "Connection") == NULL);
  /* A 401 to a request without a body keeps the connection. */
  cli_send(k, "GET /auth/x HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK_EQ(cli_resp(k, &r, 0), 0);
  CHECK_EQ(r.status, 401);
  CHECK(resp_header(&r, "Connection") == NULL);
  cli_send(k, "POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n");
  char body[100];
  memset(body, 'b', sizeof(body));
  cli_sendn(k, body, sizeof(body));
  CHECK_EQ(cli_resp(k, &r, 0), 0);
  CHECK_EQ(r.status, 200);
  cli_close(k);
  finish(&s);
  CHECK_EQ(atomic_load(&n_msgs), 2);
  CHECK_EQ(atomic_load(&n_headers), 5);
}

TEST_T(http_upload_refused_curl_expect, 30) {
  NEED_TOOL("curl");
  char dir[64], file[128], out[8192];
  make_tmpdir(dir);
  snprintf(file, sizeof(file), "%s/up.bin", dir);
  unsigned char *d = malloc(200000);
  fill_pattern(d, 200000, 3);
  write_file(file, d, 200000);
  free(d);
  struct srv s;
  start(&s, NULL);
  /* curl waits for the 100 (up to 10 s here): a final 401 instead ends the
   * exchange without a body sent. */
  CHECK_EQ(sh_capture(out, sizeof(out),
                      "curl --http1.1 --noproxy '*' -sS --max-time 20 --expect100-timeout 10 -v "
                      "-H 'Expect: 100-continue' --data-binary @%s "
                      "http://127.0.0.1:%d/auth/up 2>&1", file, s.port), 0);
  CHECK_MSG(strstr(out, "< HTTP/1.1 401") != NULL, "no 401:\n%s", out);
  CHECK_MSG(strstr(out, "100 Continue") == NULL, "100 sent:\n%s", out);
  CHECK_EQ(sh_capture(out, sizeof(out),
                      "curl --http1.1 --noproxy '*' -sS --max-time 20 --expect100-timeout 10 "
                      "-o /dev/null -w '%%{http_code}' -H 'Expect: 100-continue' "
                      "--data-binary @%s http://127.0.0.1:%d/small", file, s.port), 0);
  CHECK_STR(out, "413");
  finish(&s);
  CHECK_EQ(atomic_load(&n_msgs), 0);
  CHECK_EQ(atomic_load(&n_headers), 2);
}

/* ---- per-route limits ------------------------------------------------- */

static int post(int port, const char *path, size_t len, struct resp *r) {
  struct cli *k = cli_open(port);
  char head[256];
  snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
           path, len);
  cli_send(k, head);
  char *b = malloc(len + 1);
  memset(b, 'r', len);
  /* The server may answer (413) and close before it has all: ignore a
   * failed send, the response is what counts. */
  test_send_all(k->fd, b, len);
  free(b);
  int rc = cli_resp(k, r, 0);
  cli_close(k);
  return rc;
}

TEST_T(http_upload_route_limit, 30) {
  struct srv s;
  struct resp r;
  sl_http_opts ho;
  memset(&ho, 0, sizeof(ho));
  ho.max_body = 1000;
  start(&s, &ho);
  CHECK_EQ(post(s.port, "/route/tiny", 64, &r), 0);
  CHECK_EQ(r.status, 200);
  CHECK_STR(r.body, "route len=64");
  CHECK_EQ(post(s.port, "/route/tiny", 65, &r), 0);
  CHECK_EQ(r.status, 413);
  /* A route without a limit of its own has the server's. */
  CHECK_EQ(post(s.port, "/route/default", 1000, &r), 0);
  CHECK_EQ(r.status, 200);
  CHECK_STR(r.body, "route len=1000");
  CHECK_EQ(post(s.port, "/route/default", 1001, &r), 0);
  CHECK_EQ(r.status, 413);
  /* Chunked past the route's limit: 413 as it grows. */
  struct cli *k = cli_open(s.port);
  cli_send(k, "POST /route/tiny HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              "20\r\n01234567890123456789012345678901\r\n"
              "21\r\n012345678901234567890123456789012\r\n0\r\n\r\n");
  CHECK_EQ(cli_resp(k, &r, 0), 0);
  CHECK_EQ(r.status, 413);
  cli_close(k);
  finish(&s);
  CHECK_EQ(atomic_load(&n_msgs), 2);
}

/* ---- streamed bodies -------------------------------------------------- */

/* Send `total` bytes of the pattern; chunked with pseudo-random chunk
 * sizes when `chunked`. */
static void send_pattern(struct cli *k, unsigned long long total, int chunked) {
  unsigned long long pos = 0;
  uint32_t x = 12345;
  while (pos < total) {
    size_t n = PERIOD;
    if (chunked) {
      x = x * 1103515245u + 12345u;
      n = 1 + (x >> 8) % 100000;
    }
    if (n > total - pos) n = (size_t)(total - pos);
    if (chunked) {
      char sz[24];
      snprintf(sz, sizeof(sz), "%zx\r\n", n);
      cli_send(k, sz);
    }
    /* A piece may wrap the period: the pattern holds three of them. */
    size_t off = (size_t)(pos % PERIOD);
    while (n) {
      size_t take = n < 2 * PERIOD ? n : 2 * PERIOD;
      cli_sendn(k, pat + off, take);
      pos += take;
      n -= take;
      off = (size_t)(pos % PERIOD);
    }
    if (chunked) cli_send(k, "\r\n");
  }
  if (chunked) cli_send(k, "0\r\n\r\n");
}

static uint32_t pattern_sum(unsigned long long total) {
  uint32_t h = 2166136261u;
  for (unsigned long long i = 0; i < total; i++) h = (h ^ pat[i % PERIOD]) * 16777619u;
  return h;
}

static void upload(int port, unsigned long long total, int chunked) {
  struct cli *k = cli_open(port);
  char head[256];
  if (chunked)
    snprintf(head, sizeof(head),
             "POST /stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  else
    snprintf(head, sizeof(head), "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: %llu\r\n\r\n",
             total);
  cli_send(k, head);
  send_pattern(k, total, chunked);
  struct resp r;
  CHECK_EQ(cli_resp(k, &r, 0), 0);
  CHECK_EQ(r.status, 200);
  /* The length and the position check as the server saw them; the hash
   * is compared by the callers that can afford to compute it. */
  unsigned long long len = 0, bad = 1;
  unsigned h = 0;
  CHECK_EQ(sscanf(r.body, "len=%llu sum=%x bad=%llu", &len, &h, &bad), 3);
  CHECK_EQ(len, total);
  CHECK_EQ(bad, 0);
  CHECK_EQ(h, atomic_load(&sum));
  cli_close(k);
}

TEST_T(http_upload_stream_1gib_bounded, 300) {
  struct srv s;
  sl_http_opts ho;
  memset(&ho, 0, sizeof(ho));
  /* 1 GiB at a few MB/s under a sanitizer must not hit the total. */
  ho.body_timeout_ms = UINT32_MAX;
  ho.body_min_rate = 1;
  start(&s, &ho);
  const unsigned long long total = 1ull << 30;
  upload(s.port, total, 0);
  CHECK_EQ(atomic_load(&got), total);
  CHECK_EQ(atomic_load(&bad_at), 0);
  CHECK_EQ(atomic_load(&n_ends), 1);
  CHECK_EQ(atomic_load(&n_msgs), 0);
  /* A few input buffers, whatever the size of the body. */
  CHECK_MSG(atomic_load(&peak_held) <= 4 * RECV_MAX, "held %llu", atomic_load(&peak_held));
  CHECK_MSG(atomic_load(&peak_in) <= 4 * RECV_MAX, "in %llu", atomic_load(&peak_in));
  CHECK_MSG(atomic_load(&peak_mem_in) <= 4 * RECV_MAX, "mem in %llu", atomic_load(&peak_mem_in));
  fprintf(stderr, "  1 GiB streamed: peak held %llu, input %llu, process input %llu bytes\n",
          atomic_load(&peak_held), atomic_load(&peak_in), atomic_load(&peak_mem_in));
  finish(&s);
  CHECK_MSG(s.st.peak <= 4 * RECV_MAX, "manager peak %zu", s.st.peak);
}

TEST_T(http_upload_stream_chunked, 120) {
  struct srv s;
  start(&s, NULL);
  const unsigned long long total = 64ull << 20;
  upload(s.port, total, 1);
  CHECK_EQ(atomic_load(&got), total);
  CHECK_EQ(atomic_load(&sum), pattern_sum(total));
  CHECK_MSG(atomic_load(&peak_held) <= 4 * RECV_MAX, "held %llu", atomic_load(&peak_held));
  /* A request without a body, streamed: just the end. */
  reset();
  struct cli *k = cli_open(s.port);
  cli_send(k, "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  struct resp r;
  CHECK_EQ(cli_resp(k, &r, 0), 0);
  CHECK_STR(r.body, "len=0 sum=811c9dc5 bad=0");
  cli_close(k);
  finish(&s);
  CHECK_EQ(atomic_load(&n_ends), 1);
  CHECK_EQ(atomic_load(&n_msgs), 0);
}

TEST_T(http_upload_stream_curl, 60) {
  NEED_TOOL("curl");
  char dir[64], file[128], out[256], want[96];
  make_tmpdir(dir);
  snprintf(file, sizeof(file), "%s/big.bin", dir);
  const size_t total = 24u << 20;
  unsigned char *d = malloc(total);
  pat_init();
  for (size_t i = 0; i < total; i++) d[i] = pat[i % PERIOD];
  write_file(file, d, total);
  free(d);
  struct srv s;
  start(&s, NULL);
  snprintf(want, sizeof(want), "len=%zu sum=%08x bad=0", total, pattern_sum(total));
  /* -T: a PUT by Content-Length; from stdin: chunked. Both with
   * Expect: 100-continue, which the headers event lets through. */
  CHECK_EQ(sh_capture(out, sizeof(out),
                      "curl --http1.1 --noproxy '*' -sS --max-time 30 -H 'Expect: 100-continue' "
                      "-T %s http://127.0.0.1:%d/stream", file, s.port), 0);
  CHECK_STR(out, want);
  reset();
  CHECK_EQ(sh_capture(out, sizeof(out),
                      "curl --http1.1 --noproxy '*' -sS --max-time 30 -T - "
                      "http://127.0.0.1:%d/stream < %s", s.port, file), 0);
  CHECK_STR(out, want);
  CHECK_MSG(atomic_load(&peak_held) <= 4 * RECV_MAX, "held %llu", atomic_load(&peak_held));
  finish(&s);
}

TEST_T(http_upload_stream_pause_backpressure, 60) {
  struct srv s;
  sl_http_opts ho;
  memset(&ho, 0, sizeof(ho));
  /* The pause (1.5 s) outlasts the total body limit (1 s): the bounds wait
   * while the application holds reading back. */
  ho.body_timeout_ms = 1000;
  ho.body_rate_window_ms = 100;
  start(&s, &ho);
  atomic_store(&pause_at, 1u << 20);
  atomic_store(&pause_ms, 1500);
  const unsigned long long total = 8ull << 20;
  upload(s.port, total, 1);
  CHECK_EQ(atomic_load(&got), total);
  CHECK_EQ(atomic_load(&bad_at), 0);
  /* Paused, the handler gets only what was already read. */
  CHECK_MSG(atomic_load(&paused_bytes) <= RECV_MAX, "paused got %llu",
            atomic_load(&paused_bytes));
  CHECK_MSG(atomic_load(&peak_held) <= 4 * RECV_MAX, "held %llu", atomic_load(&peak_held));
  finish(&s);
  CHECK_EQ(s.st.closed_by[SL_CLOSE_PROTOCOL], 0);
}

TEST_T(http_upload_stream_client_stops_408, 30) {
  struct srv s;
  sl_http_opts ho;
  memset(&ho, 0, sizeof(ho));
  ho.body_timeout_ms = 300;
  start(&s, &ho);
  struct cli *k = cli_open(s.port);
  cli_send(k, "POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n");
  cli_sendn(k, pat, 150000);
  struct resp r;
  CHECK_EQ(cli_resp(k, &r, 0), 0);
  CHECK_EQ(r.status, 408);
  CHECK_EQ(cli_wait_eof(k, 5000), 1);
  cli_close(k);
  WAIT_FOR(atomic_load(&n_closes) == 1, 5000);
  CHECK_EQ(atomic_load(&got), 150000);
  CHECK_EQ(atomic_load(&n_ends), 0);
  /* The same for a chunked body that stops inside a chunk. */
  k = cli_open(s.port);
  cli_send(k, "POST /stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              "10000\r\n");
  cli_sendn(k, pat, 1000);
  CHECK_EQ(cli_resp(k, &r, 0), 0);
  CHECK_EQ(r.status, 408);
  cli_close(k);
  finish(&s);
  CHECK_EQ(atomic_load(&n_ends), 0);
  CHECK_EQ(s.st.closed_by[SL_CLOSE_PROTOCOL], 2);
}
