/* Loopback tests of sl_http_opts.on_error: the application's own body for
 * the errors the server answers by itself. Here requests under /api/ get
 * JSON ({"error":413,"reason":"body over 100 bytes","path":"/api/up"}) and
 * the rest the library's text, for an error found in the head, one found
 * while a buffered body arrives, one while a streamed body arrives, and
 * the header and body timeouts. The callback sees the status, the reason
 * and the request's method and path where they are known, may not start a
 * streamed response, and every connection still closes as a protocol
 * error with the library holding nothing afterwards. */
#include "http_harness.h"

static atomic_int calls;        /* on_error calls */
static atomic_int start_refused;/* sl_http_start returned SL_EINVAL inside */
static char last_method[16];    /* loop thread; read after the response */

static void on_error(sl_conn *c, const sl_http_error *e, void *arg) {
  CHECK(arg == &calls);
  atomic_fetch_add(&calls, 1);
  snprintf(last_method, sizeof(last_method), "%.*s", (int)e->method.len,
           e->method.ptr ? e->method.ptr : "");
  if (sl_http_start(c, e->status, NULL, SL_HTTP_CHUNKED) == SL_EINVAL)
    atomic_fetch_add(&start_refused, 1);
  if (e->path.len < 5 || memcmp(e->path.ptr, "/api/", 5) != 0) return;
  /* The reasons hold no '"' or '\\': %s inside the quotes is safe. */
  CHECK_EQ(sl_http_replyf(c, e->status, "Content-Type: application/json\r\n",
                          "{\"error\":%d,\"reason\":\"%s\",\"path\":\"%.*s\"}",
                          e->status, e->reason, (int)e->path.len, e->path.ptr),
           0);
}

static void on_app(sl_conn *c, int ev, void *ev_data) {
  sl_http_msg *m = ev_data;
  if (ev == SL_EV_HTTP_HEADERS && sl_http_match(m, "/api/stream", NULL, 0)) {
    CHECK_EQ(sl_http_body_stream(c, 1), 0);
  } else if (ev == SL_EV_HTTP_MSG) {
    sl_http_reply(c, 200, NULL, "ok", 2);
  } else if (ev == SL_EV_HTTP_CHUNK && ((sl_str *)ev_data)->len == 0) {
    sl_http_reply(c, 200, NULL, "ok", 2);
  }
}

struct case_ {
  const char *name, *req;
  int status;
  const char *body;   /* the whole expected body */
  const char *ctype;  /* its Content-Type */
  const char *method; /* what on_error saw */
};

TEST_T(http_on_error_json_for_api, 30) {
  static const struct case_ t[] = {
      {"413 by Content-Length on /api", 
       "POST /api/up HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", 413,
       "{\"error\":413,\"reason\":\"body over 100 bytes\",\"path\":\"/api/up\"}",
       "application/json", "POST"},
      {"413 by Content-Length elsewhere",
       "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", 413,
       "413 Content Too Large: body over 100 bytes\n", "text/plain", "POST"},
      {"400 in the head on /api",
       "GET /api/x HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400,
       "{\"error\":400,\"reason\":\"header line without colon\",\"path\":\"/api/x\"}",
       "application/json", "GET"},
      {"431 on /api",
       "GET /api/big HTTP/1.1\r\nHost: x\r\nX-A: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
       431, "{\"error\":431,\"reason\":\"header section over 256 bytes\",\"path\":\"/api/big\"}",
       "application/json", "GET"},
      {"no request line: no path, text",
       "\x01\x02 garbage\r\n\r\n", 400, "400 Bad Request: malformed request line\n",
       "text/plain", ""},
      {"buffered chunked body over the limit on /api",
       "POST /api/up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
       "40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n"
       "40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n0\r\n\r\n",
       413, "{\"error\":413,\"reason\":\"body over 100 bytes\",\"path\":\"/api/up\"}",
       "application/json", "POST"},
      {"streamed chunked body, bad framing, on /api",
       "PUT /api/stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
       "5\r\nhello\r\nzz\r\n", 400,
       "{\"error\":400,\"reason\":\"malformed chunked body\",\"path\":\"/api/stream\"}",
       "application/json", "PUT"},
      {"header timeout on /api", "GET /api/slow HTTP/1.1\r\nHost: x\r\n", 408,
       "{\"error\":408,\"reason\":\"headers not complete in 300 ms\",\"path\":\"/api/slow\"}",
       "application/json", "GET"},
      {"body timeout on /api",
       "POST /api/up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", 408,
       "{\"error\":408,\"reason\":\"body not complete in 300 ms\",\"path\":\"/api/up\"}",
       "application/json", "POST"},
  };
  size_t n = sizeof(t) / sizeof(t[0]);
  sl_http_opts ho = {.max_head = 256, .max_body = 100, .header_timeout_ms = 300,
                     .body_timeout_ms = 300, .on_error = on_error,
                     .error_arg = (void *)&calls};
  struct srv s;
  atomic_store(&calls, 0);
  atomic_store(&start_refused, 0);
  srv_start(&s, NULL, &ho, on_app, NULL);
  for (size_t i = 0; i < n; i++) {
    struct cli *k = cli_open(s.port);
    struct resp r;
    cli_send(k, t[i].req);
    CHECK_MSG(cli_resp(k, &r, 0) == 0, "%s: no response", t[i].name);
    CHECK_MSG(r.status == t[i].status, "%s: status %d", t[i].name, r.status);
    CHECK_MSG(strcmp(r.body, t[i].body) == 0, "%s: body %s", t[i].name, r.body);
    CHECK_STR(resp_header(&r, "Content-Type"), t[i].ctype);
    CHECK_STR(resp_header(&r, "Connection"), "close");
    CHECK_MSG(cli_wait_eof(k, 3000) == 1, "%s: not closed", t[i].name);
    /* The response was read after on_error returned on the loop thread,
     * and the close after it: last_method is settled. */
    CHECK_MSG(strcmp(last_method, t[i].method) == 0, "%s: method %s", t[i].name,
              last_method);
    CHECK_EQ(atomic_load(&calls), (int)i + 1);
    cli_close(k);
  }
  /* A good request still works. */
  struct resp r;
  cli_once(s.port, "GET /api/ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r, 1);
  CHECK_EQ(r.status, 200);
  srv_wait_clean(&s, 3000);
  srv_stop(&s);
  CHECK_EQ(atomic_load(&start_refused), (int)n);
  CHECK_EQ(s.st.closed_by[SL_CLOSE_PROTOCOL], n);
  CHECK_MEM_CLEAN();
}
