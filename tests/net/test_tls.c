/*
 * TLS over loopback, with a throwaway CA made at test time (tls_test.h):
 * curl and the npm `ws` client against sluice's HTTPS and WSS; sluice's
 * own client verifying a sluice server, and refusing a wrong host name and
 * an untrusted certificate with OpenSSL's reason; client certificates;
 * reloading a certificate under open connections; input held inside
 * OpenSSL with a tiny recv_max and paused reading; a stalled TLS viewer of
 * a 30 fps stream held to its bounds and evicted after stall_ms; garbage
 * instead of a ClientHello and a handshake that stops halfway.
 *
 * Every test ends with every manager freed and sl_mem_stats total == 0.
 * In a library built without TLS, the one test here checks that the API
 * says SL_ENOTSUP.
 */
#include "sluice.h"
#include "test.h"

#ifndef SL_HAVE_TLS

TEST(tls_not_built_says_enotsup) {
  int err = 0;
  sl_tls_opts o = {.cert_file = "x.pem", .key_file = "x.key"};
  CHECK(sl_tls_server_new(&o, &err) == NULL);
  CHECK_EQ(err, SL_ENOTSUP);
  CHECK(sl_tls_client_new(NULL, &err) == NULL);
  CHECK_EQ(err, SL_ENOTSUP);
  sl_mgr *m = sl_mgr_new(NULL, &err);
  CHECK(m != NULL);
  CHECK(sl_http_request(m, "https://127.0.0.1:1/", NULL, NULL, NULL, &err) == NULL);
  CHECK_EQ(err, SL_ENOTSUP);
  CHECK(sl_ws_connect(m, "wss://127.0.0.1:1/", NULL, NULL, NULL, &err) == NULL);
  CHECK_EQ(err, SL_ENOTSUP);
  sl_mgr_free(m);
  sl_mem_stats ms;
  sl_mem_stats_get(&ms);
  CHECK_EQ(ms.total, 0);
}

#else

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "http_harness.h"
#include "tls_test.h"

static sl_tls_ctx *server_ctx(const char *name, uint32_t hs_ms) {
  int err = 0;
  char cert[64], key[64];
  snprintf(cert, sizeof(cert), "%s.pem", name);
  snprintf(key, sizeof(key), "%s.key", name);
  char certp[256], keyp[256];
  snprintf(certp, sizeof(certp), "%s", tls_path(cert));
  snprintf(keyp, sizeof(keyp), "%s", tls_path(key));
  sl_tls_opts o = {.cert_file = certp, .key_file = keyp, .handshake_timeout_ms = hs_ms};
  sl_tls_ctx *ctx = sl_tls_server_new(&o, &err);
  CHECK_MSG(ctx != NULL, "sl_tls_server_new(%s): %s: %s", name, sl_strerror(err),
            sl_tls_last_error());
  return ctx;
}

/* A client context trusting the test CA (and, with `cert`, presenting a
 * client certificate). */
static sl_tls_ctx *client_ctx(const char *cert) {
  int err = 0;
  char ca[256], c[256] = "", k[256] = "";
  snprintf(ca, sizeof(ca), "%s", tls_path("ca.pem"));
  sl_tls_opts o = {.ca_file = ca};
  if (cert) {
    snprintf(c, sizeof(c), "%s/%s.pem", tls_dir, cert);
    snprintf(k, sizeof(k), "%s/%s.key", tls_dir, cert);
    o.cert_file = c;
    o.key_file = k;
  }
  sl_tls_ctx *ctx = sl_tls_client_new(&o, &err);
  CHECK_MSG(ctx != NULL, "sl_tls_client_new: %s: %s", sl_strerror(err), sl_tls_last_error());
  return ctx;
}

static void mem_zero(void) {
  sl_mem_stats ms;
  sl_mem_stats_get(&ms);
  CHECK_EQ(ms.total, 0);
}

/* Run the loop until `done` or `ms` pass; returns done. */
static int pump(sl_mgr *m, int ms, const int *done) {
  uint64_t end = test_now_ms() + (uint64_t)ms;
  while (test_now_ms() < end) {
    if (done && *done) return 1;
    sl_mgr_poll(m, 5);
  }
  return done ? *done : 0;
}

/* Only the listeners left, nothing held. */
static void wait_clean(sl_mgr *m, size_t listeners) {
  sl_mgr_stats st;
  uint64_t end = test_now_ms() + 3000;
  do {
    sl_mgr_poll(m, 5);
    sl_mgr_stats_get(m, &st);
  } while ((st.conns != listeners || st.held) && test_now_ms() < end);
  CHECK_EQ(st.conns, listeners);
  CHECK_EQ(st.held, 0);
  CHECK_EQ(st.queued, 0);
  CHECK_EQ(st.tls, 0);
}

/* The record buffer at its usual size (tls.c): one record and its
 * overhead. */
#define REC_LIMIT (16384 + 512)

/* ---- a server: /hello, /big (1 MiB), /ws (echo) ------------------------ */

#define BIG_LEN (1u << 20)

static unsigned char pattern_at(size_t i) { return (unsigned char)((i * 131u + 7u) >> 3); }

struct tsrv {
  int accepts, errors, closes, by_reason[SL_CLOSE_SHUTDOWN + 1];
  int last_err;
  char last_msg[400];
  char peer_subject[256];
  int info_at_accept;
  sl_buf *big;
};
static struct tsrv S;

static void on_srv(sl_conn *c, int ev, void *ev_data) {
  switch (ev) {
    case SL_EV_ACCEPT: {
      char info[128];
      S.accepts++;
      /* The handshake is done before SL_EV_ACCEPT. */
      if (sl_conn_tls_info(c, info, sizeof(info)) == 0 && strncmp(info, "TLSv1.", 6) == 0)
        S.info_at_accept++;
      sl_conn_tls_peer(c, S.peer_subject, sizeof(S.peer_subject));
      return;
    }
    case SL_EV_ERROR:
      S.errors++;
      S.last_err = sl_conn_error(c);
      snprintf(S.last_msg, sizeof(S.last_msg), "%s", (const char *)ev_data);
      return;
    case SL_EV_CLOSE:
      S.closes++;
      S.by_reason[sl_conn_close_reason(c)]++;
      return;
    case SL_EV_HTTP_MSG: {
      const sl_http_msg *m = ev_data;
      if (m->path.len == 6 && memcmp(m->path.ptr, "/hello", 6) == 0) {
        sl_http_reply(c, 200, "Content-Type: text/plain\r\n", "hello over tls", 14);
      } else if (m->path.len == 4 && memcmp(m->path.ptr, "/big", 4) == 0) {
        sl_http_reply_buf(c, 200, NULL, S.big, 0, BIG_LEN);
      } else if (m->path.len == 3 && memcmp(m->path.ptr, "/ws", 3) == 0) {
        sl_ws_upgrade(c, m, NULL);
      } else {
        sl_http_reply_status(c, 404);
      }
      return;
    }
    case SL_EV_WS_MSG: {
      const sl_ws_msg *w = ev_data;
      sl_ws_send(c, w->opcode, w->data.ptr, w->data.len);
      return;
    }
    default:
      return;
  }
}

static sl_buf *make_big(void) {
  sl_buf *b = sl_buf_new(BIG_LEN);
  CHECK(b != NULL);
  unsigned char *d = sl_buf_data(b);
  for (size_t i = 0; i < BIG_LEN; i++) d[i] = pattern_at(i);
  return b;
}

static sl_conn *listen_https(sl_mgr *m, sl_tls_ctx *ctx) {
  int err = 0;
  sl_http_opts ho = {.tls = ctx};
  sl_conn *l = sl_http_listen(m, "127.0.0.1:0", &ho, on_srv, NULL, &err);
  CHECK_MSG(l != NULL, "sl_http_listen: %s", sl_strerror(err));
  CHECK(sl_conn_is_tls(l));
  return l;
}

/* ---- curl: a page and a Range over HTTPS ------------------------------- */

static char static_root[256];

static void on_static(sl_conn *c, int ev, void *ev_data) {
  if (ev == SL_EV_HTTP_MSG) sl_http_serve_dir(c, ev_data, static_root);
}

TEST_T(tls_curl_static_page_and_range, 30) {
  tls_certs_make();
  snprintf(static_root, sizeof(static_root), "%s/www", tls_dir);
  CHECK_EQ(test_sh("mkdir -p %s && head -c 300000 /dev/urandom > %s/big.bin && "
                   "printf '<h1>sluice over TLS</h1>\\n' > %s/index.html",
                   static_root, static_root, static_root), 0);
  sl_tls_ctx *ctx = server_ctx("srv", 0);
  struct srv s;
  sl_http_opts ho = {.tls = ctx};
  srv_start(&s, NULL, &ho, on_static, NULL);
  sl_tls_ctx_free(ctx); /* the listener keeps its own reference */
  const char *ca = tls_path("ca.pem");
  /* The page, verified against the test CA under the name "localhost". */
  CHECK_EQ(test_sh("curl -sS --max-time 5 --cacert %s https://localhost:%d/ -o %s/page.out",
                   ca, s.port, tls_dir), 0);
  CHECK_EQ(test_sh("grep -q 'sluice over TLS' %s/page.out", tls_dir), 0);
  /* The whole file, byte for byte (about 19 records). */
  CHECK_EQ(test_sh("curl -sS --max-time 5 --cacert %s https://localhost:%d/big.bin -o %s/big.out"
                   " && cmp -s %s/big.bin %s/big.out",
                   ca, s.port, tls_dir, static_root, tls_dir), 0);
  /* A Range: 206 and exactly those bytes. */
  CHECK_EQ(test_sh("test \"$(curl -sS --max-time 5 --cacert %s -r 100000-165535 -o %s/part.out "
                   "-w '%%{http_code}' https://localhost:%d/big.bin)\" = 206 && "
                   "test $(stat -c %%s %s/part.out) = 65536 && "
                   "cmp -s -n 65536 -i 100000:0 %s/big.bin %s/part.out",
                   ca, tls_dir, s.port, tls_dir, static_root, tls_dir), 0);
  /* Without the CA, curl refuses our certificate (exit 60). */
  CHECK_EQ(test_sh("curl -sS --max-time 5 https://localhost:%d/ -o /dev/null 2>/dev/null",
                   s.port), 60);
  srv_wait_clean(&s, 3000);
  srv_stop(&s);
  CHECK_EQ(s.st.closed_by[SL_CLOSE_ERROR], 0);
  tls_certs_remove();
  mem_zero();
}

/* ---- npm ws over WSS --------------------------------------------------- */

TEST_T(tls_node_ws_client_over_wss, 30) {
  tls_certs_make();
  if (test_sh("command -v node >/dev/null && test -d %s/tests/node/node_modules/ws",
              SL_SOURCE_DIR) != 0) {
    CHECK_MSG(!test_in_ci(), "node and tests/node/node_modules/ws are required in CI");
    TEST_SKIP("node or the npm ws package is missing (scripts/deps.sh)");
  }
  memset(&S, 0, sizeof(S));
  sl_tls_ctx *ctx = server_ctx("srv", 0);
  struct srv s;
  sl_http_opts ho = {.tls = ctx};
  srv_start(&s, NULL, &ho, on_srv, NULL);
  sl_tls_ctx_free(ctx);
  char out[256];
  snprintf(out, sizeof(out), "%s/node.out", tls_dir);
  int rc = test_sh("node %s/tests/node/wss_client.js wss://localhost:%d/ws %s >%s 2>&1",
                   SL_SOURCE_DIR, s.port, tls_path("ca.pem"), out);
  test_sh("sed 's/^/  node: /' %s", out);
  CHECK_EQ(rc, 0);
  CHECK_EQ(test_sh("printf 'text ok\\nbinary 300000 ok\\nclose 1000\\n' | cmp -s - %s", out), 0);
  srv_wait_clean(&s, 3000);
  srv_stop(&s);
  tls_certs_remove();
  mem_zero();
}

/* ---- sluice's client against sluice's server --------------------------- */

struct res {
  int status, done, closed, err;
  size_t got;
  int mismatch;
  char body[64];
  char msg[400];
};

static void on_req(sl_conn *c, int ev, void *ev_data) {
  struct res *r = sl_conn_data(c);
  if (ev == SL_EV_HTTP_MSG) {
    r->status = ((const sl_http_msg *)ev_data)->status;
  } else if (ev == SL_EV_HTTP_CHUNK) {
    const sl_str *p = ev_data;
    if (p->len == 0) r->done = 1;
    for (size_t i = 0; i < p->len; i++) {
      if (r->got + i < sizeof(r->body) - 1) r->body[r->got + i] = p->ptr[i];
      if (r->status == 200 && r->got >= 64 && (unsigned char)p->ptr[i] != pattern_at(r->got + i))
        r->mismatch++;
    }
    r->got += p->len;
  } else if (ev == SL_EV_ERROR) {
    r->err = sl_conn_error(c);
    snprintf(r->msg, sizeof(r->msg), "%s", (const char *)ev_data);
  } else if (ev == SL_EV_CLOSE) {
    r->closed = 1;
  }
}

static void request(sl_mgr *m, const char *url, sl_tls_ctx *cli, struct res *r) {
  int err = 0;
  memset(r, 0, sizeof(*r));
  sl_http_client_opts o = {.tls = cli};
  CHECK_MSG(sl_http_request(m, url, &o, on_req, r, &err) != NULL, "sl_http_request(%s): %s",
            url, sl_strerror(err));
  CHECK_MSG(pump(m, 5000, &r->closed), "no close from %s", url);
}

struct wsres {
  int open, echoed, closed, err;
  char msg[400];
};

static void on_wscli(sl_conn *c, int ev, void *ev_data) {
  struct wsres *w = sl_conn_data(c);
  if (ev == SL_EV_WS_OPEN) {
    w->open = 1;
    sl_ws_send(c, SL_WS_TEXT, "ping over wss", 13);
  } else if (ev == SL_EV_WS_MSG) {
    const sl_ws_msg *msg = ev_data;
    w->echoed = msg->data.len == 13 && memcmp(msg->data.ptr, "ping over wss", 13) == 0;
    sl_ws_close(c, 1000, NULL);
  } else if (ev == SL_EV_ERROR) {
    w->err = sl_conn_error(c);
    snprintf(w->msg, sizeof(w->msg), "%s", (const char *)ev_data);
  } else if (ev == SL_EV_CLOSE) {
    w->closed = 1;
  }
}

struct raw {
  int connected, info_ok, closed;
  char subject[256];
  char in[256];
  size_t len;
};

static void on_raw(sl_conn *c, int ev, void *ev_data) {
  struct raw *r = sl_conn_data(c);
  if (ev == SL_EV_CONNECT) {
    char info[128];
    r->connected = 1;
    r->info_ok = sl_conn_tls_info(c, info, sizeof(info)) == 0;
    sl_conn_tls_peer(c, r->subject, sizeof(r->subject));
    sl_printf(c, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  } else if (ev == SL_EV_READ) {
    size_t n;
    const char *p = sl_conn_in(c, &n);
    size_t take = n < sizeof(r->in) - 1 - r->len ? n : sizeof(r->in) - 1 - r->len;
    memcpy(r->in + r->len, p, take);
    r->len += take;
    r->in[r->len] = '\0';
    sl_conn_consume(c, n);
  } else if (ev == SL_EV_CLOSE) {
    r->closed = 1;
  }
}

TEST_T(tls_sluice_client_verifies_and_refuses, 30) {
  tls_certs_make();
  memset(&S, 0, sizeof(S));
  S.big = make_big();
  int err = 0;
  sl_mgr *m = sl_mgr_new(NULL, &err);
  CHECK(m != NULL);
  /* The good server's certificate and key from memory (PEM text). */
  char *cert = tls_read("srv.pem"), *key = tls_read("srv.key");
  sl_tls_opts so = {.cert_pem = cert, .key_pem = key};
  sl_tls_ctx *good = sl_tls_server_new(&so, &err);
  CHECK_MSG(good != NULL, "%s", sl_tls_last_error());
  free(cert);
  free(key);
  sl_tls_ctx *wrong = server_ctx("other", 0), *untrusted = server_ctx("self", 0);
  sl_conn *lg = listen_https(m, good), *lw = listen_https(m, wrong),
          *lu = listen_https(m, untrusted);
  sl_tls_ctx_free(good);
  sl_tls_ctx_free(wrong);
  sl_tls_ctx_free(untrusted);
  sl_tls_ctx *cli = client_ctx(NULL);
  char url[128];
  struct res r;

  /* Verified: a page, and 1 MiB (64 records) intact. */
  snprintf(url, sizeof(url), "https://localhost:%d/hello", sl_conn_local_port(lg));
  request(m, url, cli, &r);
  CHECK_MSG(r.err == 0, "%s", r.msg);
  CHECK_EQ(r.status, 200);
  CHECK(r.done);
  CHECK_STR(r.body, "hello over tls");
  CHECK_EQ(S.info_at_accept, S.accepts);
  snprintf(url, sizeof(url), "https://localhost:%d/big", sl_conn_local_port(lg));
  request(m, url, cli, &r);
  CHECK_EQ(r.status, 200);
  CHECK_EQ(r.got, BIG_LEN);
  CHECK_EQ(r.mismatch, 0);

  /* A certificate for another name. */
  int errors0 = S.errors;
  snprintf(url, sizeof(url), "https://localhost:%d/hello", sl_conn_local_port(lw));
  request(m, url, cli, &r);
  printf("  wrong name: %s\n", r.msg);
  CHECK_EQ(r.err, SL_ETLS);
  CHECK_EQ(r.status, 0);
  CHECK_MSG(strstr(r.msg, "hostname mismatch") != NULL, "%s", r.msg);
  CHECK(strstr(r.msg, url) != NULL);

  /* A certificate no CA we trust signed. */
  snprintf(url, sizeof(url), "https://localhost:%d/hello", sl_conn_local_port(lu));
  request(m, url, cli, &r);
  printf("  untrusted: %s\n", r.msg);
  CHECK_EQ(r.err, SL_ETLS);
  CHECK_MSG(strstr(r.msg, "certificate verify failed: self-signed certificate") != NULL,
            "%s", r.msg);
  /* Each refused server learned why from the client's alert. */
  pump(m, 200, NULL);
  CHECK_EQ(S.errors, errors0 + 2);
  CHECK_EQ(S.last_err, SL_ETLS);
  CHECK_MSG(strstr(S.last_msg, "alert") != NULL, "%s", S.last_msg);

  /* wss:// with sluice's WebSocket client. */
  struct wsres w = {0};
  sl_ws_opts wo = {.tls = cli};
  snprintf(url, sizeof(url), "wss://localhost:%d/ws", sl_conn_local_port(lg));
  CHECK(sl_ws_connect(m, url, &wo, on_wscli, &w, &err) != NULL);
  CHECK(pump(m, 5000, &w.closed));
  CHECK_MSG(w.err == 0, "%s", w.msg);
  CHECK(w.open);
  CHECK(w.echoed);

  /* A raw connection to an address: checked against the IP in the
   * certificate, SL_EV_CONNECT only once the handshake is done. */
  struct raw raw = {0};
  char addr[64];
  snprintf(addr, sizeof(addr), "tcp://127.0.0.1:%d", sl_conn_local_port(lg));
  sl_conn *rc = sl_connect(m, addr, on_raw, &raw, &err);
  CHECK(rc != NULL);
  CHECK_EQ(sl_conn_tls(rc, cli, NULL), 0);
  CHECK(sl_conn_is_tls(rc));
  CHECK_EQ(sl_conn_tls(rc, cli, NULL), SL_EALREADY);
  CHECK(pump(m, 5000, &raw.closed));
  CHECK(raw.connected);
  CHECK(raw.info_ok);
  CHECK_STR(raw.subject, "/CN=localhost");
  CHECK(strstr(raw.in, "hello over tls") != NULL);

  /* Wrong roles. */
  CHECK(sl_http_listen(m, "127.0.0.1:0", &(sl_http_opts){.tls = cli}, on_srv, NULL, &err) ==
        NULL);
  CHECK_EQ(err, SL_EINVAL);
  CHECK(sl_http_listen(m, "https://127.0.0.1:0", NULL, on_srv, NULL, &err) == NULL);
  CHECK_EQ(err, SL_EINVAL);

  sl_tls_ctx_free(cli);
  wait_clean(m, 3);
  sl_buf_unref(S.big);
  sl_mgr_free(m);
  tls_certs_remove();
  mem_zero();
}

/* ---- client certificates ----------------------------------------------- */

TEST_T(tls_client_certificate_required, 30) {
  tls_certs_make();
  memset(&S, 0, sizeof(S));
  int err = 0;
  sl_mgr *m = sl_mgr_new(NULL, &err);
  CHECK(m != NULL);
  char cert[256], key[256], ca[256];
  snprintf(cert, sizeof(cert), "%s", tls_path("srv.pem"));
  snprintf(key, sizeof(key), "%s", tls_path("srv.key"));
  snprintf(ca, sizeof(ca), "%s", tls_path("ca.pem"));
  sl_tls_opts so = {.cert_file = cert, .key_file = key, .verify_client = SL_TLS_VERIFY_REQUIRE};
  CHECK(sl_tls_server_new(&so, &err) == NULL); /* no CA to verify against */
  CHECK_EQ(err, SL_EINVAL);
  so.ca_file = ca;
  sl_tls_ctx *sctx = sl_tls_server_new(&so, &err);
  CHECK_MSG(sctx != NULL, "%s", sl_tls_last_error());
  sl_conn *l = listen_https(m, sctx);
  sl_tls_ctx_free(sctx);
  char url[128];
  snprintf(url, sizeof(url), "https://localhost:%d/hello", sl_conn_local_port(l));

  /* Without a certificate: refused. */
  sl_tls_ctx *anon = client_ctx(NULL);
  struct res r;
  request(m, url, anon, &r);
  pump(m, 200, NULL);
  printf("  client without a certificate: %s\n  server: %s\n", r.msg, S.last_msg);
  CHECK_EQ(r.err, SL_ETLS);
  CHECK_EQ(r.status, 0);
  CHECK_MSG(strstr(r.msg, "certificate required") != NULL, "%s", r.msg);
  CHECK_EQ(S.errors, 1);
  CHECK_MSG(strstr(S.last_msg, "did not return a certificate") != NULL, "%s", S.last_msg);
  CHECK_EQ(S.by_reason[SL_CLOSE_PROTOCOL], 1);
  CHECK_EQ(S.accepts, 0);
  sl_tls_ctx_free(anon);

  /* With one signed by the CA: in, and the server knows who. */
  sl_tls_ctx *viewer = client_ctx("cli");
  request(m, url, viewer, &r);
  CHECK_MSG(r.err == 0, "%s", r.msg);
  CHECK_EQ(r.status, 200);
  CHECK_STR(S.peer_subject, "/CN=viewer-7");
  sl_tls_ctx_free(viewer);

  wait_clean(m, 1);
  sl_mgr_free(m);
  tls_certs_remove();
  mem_zero();
}

/* ---- reloading the certificate ----------------------------------------- */

struct echo_cli {
  int connected, closed;
  char subject[256];
  char in[64];
  size_t len;
};

static void on_echo_srv(sl_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == SL_EV_READ) {
    size_t n;
    const char *p = sl_conn_in(c, &n);
    sl_send(c, p, n);
    sl_conn_consume(c, n);
  }
}

static void on_echo_cli(sl_conn *c, int ev, void *ev_data) {
  struct echo_cli *e = sl_conn_data(c);
  (void)ev_data;
  if (ev == SL_EV_CONNECT) {
    e->connected = 1;
    sl_conn_tls_peer(c, e->subject, sizeof(e->subject));
  } else if (ev == SL_EV_READ) {
    size_t n;
    const char *p = sl_conn_in(c, &n);
    size_t take = n < sizeof(e->in) - 1 - e->len ? n : sizeof(e->in) - 1 - e->len;
    memcpy(e->in + e->len, p, take);
    e->len += take;
    e->in[e->len] = '\0';
    sl_conn_consume(c, n);
  } else if (ev == SL_EV_CLOSE) {
    e->closed = 1;
  }
}

static sl_conn *echo_connect(sl_mgr *m, int port, sl_tls_ctx *cli, struct echo_cli *e) {
  int err = 0;
  char url[64];
  memset(e, 0, sizeof(*e));
  snprintf(url, sizeof(url), "tcp://localhost:%d", port); /* resolved: SNI "localhost" */
  sl_conn *c = sl_connect(m, url, on_echo_cli, e, &err);
  CHECK(c != NULL);
  CHECK_EQ(sl_conn_tls(c, cli, NULL), 0);
  CHECK(pump(m, 5000, &e->connected));
  return c;
}

TEST_T(tls_reload_new_certificate_keeps_open_connections, 30) {
  tls_certs_make();
  int err = 0;
  sl_mgr *m = sl_mgr_new(NULL, &err);
  CHECK(m != NULL);
  sl_tls_ctx *sctx = server_ctx("srv", 0);
  sl_conn *l = sl_listen_tls(m, "127.0.0.1:0", sctx, on_echo_srv, NULL, &err);
  CHECK(l != NULL);
  int port = sl_conn_local_port(l);
  sl_tls_ctx *cli = client_ctx(NULL);
  struct echo_cli a, b, d;
  sl_conn *ca = echo_connect(m, port, cli, &a);
  CHECK_STR(a.subject, "/CN=localhost");

  char cert[256], key[256], oldkey[256];
  snprintf(cert, sizeof(cert), "%s", tls_path("srv2.pem"));
  snprintf(key, sizeof(key), "%s", tls_path("srv2.key"));
  snprintf(oldkey, sizeof(oldkey), "%s", tls_path("srv.key"));
  sl_tls_opts o = {.cert_file = cert, .key_file = key};
  CHECK_EQ(sl_tls_reload(sctx, &o), 0);
  /* The open connection goes on with its session. */
  sl_send(ca, "after reload", 12);
  for (uint64_t end = test_now_ms() + 3000; a.len < 12 && test_now_ms() < end;)
    sl_mgr_poll(m, 5);
  CHECK_STR(a.in, "after reload");
  /* A new one gets the renewed certificate. */
  sl_conn *cb = echo_connect(m, port, cli, &b);
  CHECK_STR(b.subject, "/CN=localhost-renewed");
  /* A reload that fails changes nothing, and says why. */
  o.key_file = oldkey;
  CHECK_EQ(sl_tls_reload(sctx, &o), SL_ETLS);
  CHECK_MSG(strstr(sl_tls_last_error(), "does not match") != NULL, "%s", sl_tls_last_error());
  o.key_file = "/nonexistent/key.pem";
  CHECK_EQ(sl_tls_reload(sctx, &o), SL_ENOENT);
  sl_conn *cd = echo_connect(m, port, cli, &d);
  CHECK_STR(d.subject, "/CN=localhost-renewed");

  sl_conn_close(ca, SL_CLOSE_NOW);
  sl_conn_close(cb, SL_CLOSE_NOW);
  sl_conn_close(cd, SL_CLOSE_NOW);
  sl_tls_ctx_free(sctx);
  sl_tls_ctx_free(cli);
  wait_clean(m, 1);
  sl_mgr_free(m);
  tls_certs_remove();
  mem_zero();
}

/* ---- limits, watermarks and idle as on a plain connection ------------- */

#define LIM_SEND_MAX (256 * 1024)
#define LIM_PIECE 16000

static struct {
  int full, drain, refused, close_reason, closed;
  size_t sent, written, max_queued;
  uint64_t last_write_ms, closed_ms;
  size_t got;
  int cli_closed;
  sl_conn *cli;
} L;

static void on_lim_srv(sl_conn *c, int ev, void *ev_data) {
  static char piece[LIM_PIECE];
  if (ev == SL_EV_ACCEPT) {
    sl_limits lim = {.send_max = LIM_SEND_MAX, .idle_ms = 300, .stall_ms = 5000};
    CHECK_EQ(sl_conn_set_limits(c, &lim), 0);
    /* Fill the queue to send_max: the next piece is refused whole. */
    int rc;
    while ((rc = sl_send(c, piece, sizeof(piece))) == 0) L.sent += sizeof(piece);
    CHECK_EQ(rc, SL_ENOBUFS);
    L.refused++;
    CHECK_LE(sl_conn_queued(c), LIM_SEND_MAX);
    CHECK_GE(sl_conn_queued(c) + sizeof(piece), LIM_SEND_MAX + 1);
  } else if (ev == SL_EV_FULL) {
    L.full++;
  } else if (ev == SL_EV_DRAIN) {
    L.drain++;
  } else if (ev == SL_EV_WRITE) {
    L.written += *(size_t *)ev_data;
    L.last_write_ms = sl_mgr_now(sl_conn_mgr(c));
  } else if (ev == SL_EV_CLOSE) {
    L.close_reason = sl_conn_close_reason(c);
    L.closed_ms = sl_mgr_now(sl_conn_mgr(c));
    L.closed = 1;
  }
  if (sl_conn_queued(c) > L.max_queued) L.max_queued = sl_conn_queued(c);
}

static void lim_resume(sl_mgr *m, void *arg) {
  (void)m, (void)arg;
  sl_conn_pause_read(L.cli, 0);
}

static void on_lim_cli(sl_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == SL_EV_CONNECT) {
    /* Read nothing for a while: the server's queue stays full. */
    L.cli = c;
    sl_conn_pause_read(c, 1);
    sl_timer_add(sl_conn_mgr(c), 300, 0, lim_resume, NULL, NULL);
  } else if (ev == SL_EV_READ) {
    size_t n;
    sl_conn_in(c, &n);
    L.got += n;
    sl_conn_consume(c, n);
  } else if (ev == SL_EV_CLOSE) {
    L.cli_closed = 1;
  }
}

TEST_T(tls_limits_watermarks_and_idle_as_plain, 30) {
  tls_certs_make();
  memset(&L, 0, sizeof(L));
  int err = 0;
  sl_mgr *m = sl_mgr_new(NULL, &err);
  CHECK(m != NULL);
  sl_tls_ctx *sctx = server_ctx("srv", 0), *cli = client_ctx(NULL);
  sl_conn *l = sl_listen_tls(m, "127.0.0.1:0", sctx, on_lim_srv, NULL, &err);
  CHECK(l != NULL);
  char url[64];
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", sl_conn_local_port(l));
  sl_conn *c = sl_connect(m, url, on_lim_cli, NULL, &err);
  CHECK(c != NULL);
  CHECK_EQ(sl_conn_tls(c, cli, NULL), 0);
  uint64_t end = test_now_ms() + 5000;
  while (!(L.closed && L.cli_closed) && test_now_ms() < end) {
    sl_mgr_poll(m, 5);
    sl_mgr_stats ms;
    sl_mgr_stats_get(m, &ms);
    CHECK_LE(ms.tls, 2 * REC_LIMIT);
  }
  CHECK(L.closed);
  CHECK(L.cli_closed);
  CHECK_EQ(L.refused, 1);
  CHECK_LE(L.max_queued, LIM_SEND_MAX);
  /* FULL on the way up, DRAIN on the way down: one pair. */
  CHECK_EQ(L.full, 1);
  CHECK_EQ(L.drain, 1);
  /* Every plaintext byte written was received; then idle closed it. */
  CHECK_EQ(L.written, L.sent);
  CHECK_EQ(L.got, L.sent);
  CHECK_EQ(L.close_reason, SL_CLOSE_IDLE);
  CHECK_GE(L.closed_ms - L.last_write_ms, 300);
  sl_tls_ctx_free(sctx);
  sl_tls_ctx_free(cli);
  wait_clean(m, 1);
  sl_mgr_free(m);
  tls_certs_remove();
  mem_zero();
}

/* ---- input held inside OpenSSL ------------------------------------------ */

struct slow {
  size_t got;
  int mismatch, closed, paused_once;
  sl_timer *resume;
  uint64_t paused_at, resumed_at;
  sl_conn *c;
};
static struct slow SW;

static void on_blast(sl_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == SL_EV_ACCEPT) {
    sl_send_buf(c, S.big, 0, BIG_LEN);
    sl_conn_close(c, SL_CLOSE_FLUSH);
  }
}

static void resume_reading(sl_mgr *m, void *arg) {
  (void)arg;
  SW.resume = NULL;
  SW.resumed_at = sl_mgr_now(m);
  sl_conn_pause_read(SW.c, 0);
}

static void on_slow(sl_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == SL_EV_READ) {
    size_t n;
    const unsigned char *p = (const unsigned char *)sl_conn_in(c, &n);
    for (size_t i = 0; i < n; i++)
      if (p[i] != pattern_at(SW.got + i)) SW.mismatch++;
    SW.got += n;
    sl_conn_consume(c, n);
    /* Stop in the middle of a record, with the rest decrypted in OpenSSL
     * and nothing in the socket to wake the poller: resuming must find
     * it. */
    if (!SW.paused_once && SW.got >= 300000) {
      SW.paused_once = 1;
      SW.c = c;
      SW.paused_at = sl_mgr_now(sl_conn_mgr(c));
      sl_conn_pause_read(c, 1);
      SW.resume = sl_timer_add(sl_conn_mgr(c), 200, 0, resume_reading, NULL, NULL);
    }
  } else if (ev == SL_EV_CLOSE) {
    SW.closed = 1;
  }
}

TEST_T(tls_tiny_recv_max_and_paused_reading, 30) {
  tls_certs_make();
  memset(&S, 0, sizeof(S));
  memset(&SW, 0, sizeof(SW));
  S.big = make_big();
  int err = 0;
  sl_mgr *m = sl_mgr_new(NULL, &err);
  CHECK(m != NULL);
  sl_tls_ctx *sctx = server_ctx("srv", 0), *cli = client_ctx(NULL);
  sl_conn *l = sl_listen_tls(m, "127.0.0.1:0", sctx, on_blast, NULL, &err);
  CHECK(l != NULL);
  char url[64];
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", sl_conn_local_port(l));
  sl_conn *c = sl_connect(m, url, on_slow, NULL, &err);
  CHECK(c != NULL);
  /* Far less than a record: most of each record waits in OpenSSL. */
  sl_limits lim = {.recv_max = 1000};
  CHECK_EQ(sl_conn_set_limits(c, &lim), 0);
  CHECK_EQ(sl_conn_tls(c, cli, NULL), 0);
  CHECK(pump(m, 10000, &SW.closed));
  CHECK_EQ(SW.got, BIG_LEN);
  CHECK_EQ(SW.mismatch, 0);
  CHECK(SW.paused_once);
  CHECK_GE(SW.resumed_at - SW.paused_at, 200);
  sl_tls_ctx_free(sctx);
  sl_tls_ctx_free(cli);
  wait_clean(m, 1);
  sl_buf_unref(S.big);
  sl_mgr_free(m);
  tls_certs_remove();
  mem_zero();
}

/* ---- a stalled TLS viewer of a 30 fps stream ---------------------------- */

#define FRAME 100000u
#define VIEWER_SEND_MAX (2 * FRAME + 65536)
#define PART_OVERHEAD 256
#define CONN_OVERHEAD 4096
#define REC_MAX REC_LIMIT
#define NSTALL 3
#define STALL_MS 1500
#define RUN_MS 3200

/* A viewer using OpenSSL directly in a thread of its own: blocking
 * handshake, the request, then reading everything (healthy) or nothing
 * ever again (stalled, with a 4 KiB receive buffer). */
struct viewer {
  int port, rcvbuf, reading;
  char peer[64];
  atomic_int ready, stop, failed;
  atomic_ullong got;
  pthread_t th;
  char ca[256];
};

static void *viewer_main(void *arg) {
  static const char req[] = "GET /stream.mjpg HTTP/1.1\r\nHost: localhost\r\n\r\n";
  static _Thread_local char buf[65536];
  struct viewer *v = arg;
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_load_verify_locations(ctx, v->ca, NULL);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  SSL *s = SSL_new(ctx);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (v->rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v->rcvbuf, sizeof(v->rcvbuf));
  struct sockaddr_in a = {0}, me;
  socklen_t ml = sizeof(me);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)v->port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {0, 50000};
  int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
  if (ok) {
    getsockname(fd, (struct sockaddr *)&me, &ml);
    snprintf(v->peer, sizeof(v->peer), "127.0.0.1:%d", ntohs(me.sin_port));
    SSL_set_fd(s, fd);
    SSL_set_tlsext_host_name(s, "localhost");
    SSL_set1_host(s, "localhost");
    ok = SSL_connect(s) == 1 && SSL_write(s, req, (int)sizeof(req) - 1) > 0;
  }
  if (!ok) atomic_store(&v->failed, 1);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  atomic_store(&v->ready, 1);
  while (ok && !atomic_load(&v->stop)) {
    if (!v->reading) {
      usleep(10000); /* the test holds this viewer back: idle until it reads again */
      continue;
    }
    int n = SSL_read(s, buf, sizeof(buf));
    if (n > 0) atomic_fetch_add(&v->got, (unsigned long long)n);
    else if (SSL_get_error(s, n) != SSL_ERROR_WANT_READ) break;
  }
  SSL_free(s);
  close(fd);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return NULL;
}

static void viewer_start(struct viewer *v, int port, int rcvbuf, int reading) {
  memset(v, 0, sizeof(*v));
  v->port = port;
  v->rcvbuf = rcvbuf;
  v->reading = reading;
  snprintf(v->ca, sizeof(v->ca), "%s", tls_path("ca.pem"));
  CHECK_EQ(pthread_create(&v->th, NULL, viewer_main, v), 0);
}

static struct {
  sl_hub *h;
  uint64_t published;
  int leaves, stall_leaves;
  uint64_t leave_ms[16];
  size_t max_stalled_queued, max_tls, max_held_over_frames;
} V;

static void on_hub(sl_hub *h, const sl_hub_event *e, void *arg) {
  (void)h, (void)arg;
  if (e->type != SL_HUB_LEAVE) return;
  if (V.leaves < 16) V.leave_ms[V.leaves] = test_now_ms();
  V.leaves++;
  if (e->reason == SL_CLOSE_STALL) V.stall_leaves++;
}

static void on_stream_http(sl_conn *c, int ev, void *ev_data) {
  if (ev != SL_EV_HTTP_MSG) return;
  sl_sub_opts so = {.stall_ms = STALL_MS};
  sl_hub_attach(V.h, c, ev_data, SL_TRANSPORT_MJPEG, &so, NULL);
}

static void produce(sl_mgr *m, void *arg) {
  (void)m, (void)arg;
  sl_buf *b = sl_buf_new(FRAME);
  CHECK(b != NULL);
  memset(sl_buf_data(b), (int)(V.published & 0xff), FRAME);
  CHECK_EQ(sl_hub_publish(V.h, b, 0, 0), 0);
  sl_buf_unref(b);
  V.published++;
}

/* The bounds, after every iteration: a stalled TLS viewer holds the rest
 * of one frame queued (within send_max) plus at most one record of
 * ciphertext; the manager holds the live frames once, plus per connection
 * its owned chunks and its record buffer. */
static void sample(sl_mgr *m, const char *healthy) {
  sl_hub_stats hs;
  sl_mgr_stats ms;
  sl_sub_stats all[16];
  sl_hub_stats_get(V.h, &hs);
  sl_mgr_stats_get(m, &ms);
  size_t n = sl_hub_subs(V.h, all, 16);
  for (size_t i = 0; i < n && i < 16; i++) {
    CHECK_LE(all[i].queued, all[i].send_max);
    if (hs.largest_frame) CHECK_EQ(all[i].send_max, VIEWER_SEND_MAX);
    if (strcmp(all[i].peer, healthy) == 0) continue;
    CHECK_LE(all[i].queued, FRAME + PART_OVERHEAD);
    CHECK_LE(all[i].pending, 1);
    if (all[i].queued > V.max_stalled_queued) V.max_stalled_queued = all[i].queued;
  }
  CHECK_LE(ms.tls, ms.conns * REC_MAX);
  CHECK_LE(ms.held, hs.held + ms.conns * (CONN_OVERHEAD + REC_MAX));
  if (ms.tls > V.max_tls) V.max_tls = ms.tls;
  /* (The hub's latest frame may be queued nowhere: not in ms.held.) */
  size_t over = ms.held > hs.held ? ms.held - hs.held : 0;
  if (over > V.max_held_over_frames) V.max_held_over_frames = over;
}

TEST_T(tls_stalled_viewer_bounded_and_evicted, 30) {
  tls_certs_make();
  memset(&V, 0, sizeof(V));
  int err = 0;
  sl_mgr *m = sl_mgr_new(NULL, &err);
  CHECK(m != NULL);
  sl_tls_ctx *sctx = server_ctx("srv", 0);
  sl_http_opts ho = {.tls = sctx};
  sl_conn *l = sl_http_listen(m, "127.0.0.1:0", &ho, on_stream_http, NULL, &err);
  CHECK(l != NULL);
  sl_tls_ctx_free(sctx);
  sl_hub_opts hopt = {.on_event = on_hub};
  V.h = sl_hub_new(m, "cam", &hopt, &err);
  CHECK(V.h != NULL);
  sl_timer *prod = sl_timer_add(m, 33, SL_TIMER_REPEAT, produce, NULL, &err);
  CHECK(prod != NULL);
  int port = sl_conn_local_port(l);

  static struct viewer st[NSTALL], hl;
  uint64_t t0 = test_now_ms();
  for (int i = 0; i < NSTALL; i++) viewer_start(&st[i], port, 4096, 0);
  viewer_start(&hl, port, 0, 1);
  /* The handshakes need the loop: run it until every viewer is in. */
  uint64_t end = test_now_ms() + 5000;
  for (;;) {
    int ready = atomic_load(&hl.ready);
    for (int i = 0; i < NSTALL; i++) ready &= atomic_load(&st[i].ready);
    if (ready || test_now_ms() > end) break;
    sl_mgr_poll(m, 5);
  }
  CHECK(!atomic_load(&hl.failed));
  for (int i = 0; i < NSTALL; i++) CHECK(!atomic_load(&st[i].failed));
  uint64_t ready_ms = test_now_ms();
  /* Slow builds (valgrind: TEST_TIMEOUT_SCALE) get more time, not other
   * rules. */
  double scale = getenv("TEST_TIMEOUT_SCALE") ? atof(getenv("TEST_TIMEOUT_SCALE")) : 1;
  if (scale < 1) scale = 1;
  end = t0 + RUN_MS;
  uint64_t limit = ready_ms + (uint64_t)(scale * (STALL_MS + 1500));
  while (test_now_ms() < end || (V.stall_leaves < NSTALL && test_now_ms() < limit)) {
    sl_mgr_poll(m, 5);
    sample(m, hl.peer);
  }
  sl_hub_stats hs;
  sl_hub_stats_get(V.h, &hs);
  sl_mgr_stats ms;
  sl_mgr_stats_get(m, &ms);
  printf("  %llu frames published; healthy TLS viewer got %llu bytes (%.0f frames' worth)\n",
         (unsigned long long)V.published, (unsigned long long)atomic_load(&hl.got),
         (double)atomic_load(&hl.got) / FRAME);
  printf("  while stalled: queued <= %zu per stalled viewer, TLS record buffers <= %zu, "
         "held beyond the frames <= %zu\n",
         V.max_stalled_queued, V.max_tls, V.max_held_over_frames);
  /* The stalled viewers were closed for stalling, after stall_ms. */
  CHECK_EQ(V.stall_leaves, NSTALL);
  CHECK_EQ(ms.closed_by[SL_CLOSE_STALL], NSTALL);
  for (int i = 0; i < V.leaves && i < 16; i++) {
    CHECK_GE(V.leave_ms[i], t0 + STALL_MS);
    CHECK_LE(V.leave_ms[i], limit);
  }
  CHECK_EQ(hs.subs, 1);
  /* The healthy one kept receiving: at least half the frames (in a
   * normal build; under valgrind its own decryption is the bottleneck). */
  if (scale == 1)
    CHECK_GE(atomic_load(&hl.got), (unsigned long long)(V.published / 2) * FRAME);
  else
    CHECK_GE(atomic_load(&hl.got), FRAME);

  sl_timer_free(m, prod);
  for (int i = 0; i < NSTALL; i++) atomic_store(&st[i].stop, 1);
  atomic_store(&hl.stop, 1);
  for (int i = 0; i < NSTALL; i++) pthread_join(st[i].th, NULL);
  pthread_join(hl.th, NULL);
  sl_hub_free(V.h); /* and the latest frame it holds */
  wait_clean(m, 1);
  sl_mgr_free(m);
  tls_certs_remove();
  mem_zero();
}

/* ---- garbage and half handshakes ----------------------------------------- */

static int raw_dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_EQ(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

/* 1 once the peer closed (EOF or RST); whatever it sent first is read. */
static int raw_closed(int fd) {
  char buf[4096];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) continue;
    if (n == 0) return 1;
    return errno != EAGAIN && errno != EWOULDBLOCK;
  }
}

TEST_T(tls_garbage_instead_of_client_hello, 30) {
  tls_certs_make();
  memset(&S, 0, sizeof(S));
  int err = 0;
  sl_mgr *m = sl_mgr_new(NULL, &err);
  CHECK(m != NULL);
  sl_tls_ctx *sctx = server_ctx("srv", 0);
  sl_conn *l = listen_https(m, sctx);
  sl_tls_ctx_free(sctx);
  int port = sl_conn_local_port(l);
  static const struct {
    const char *bytes;
    size_t len;
    const char *reason;
  } cases[] = {
      {"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", 35, "http request"},
      {"\x16\x03\x01\x00\x05hello", 10, ""},
      {"\x17\x03\x03\x00\x10" "0123456789abcdef", 21, ""},
      {"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f", 16, ""},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int closes0 = S.closes, errors0 = S.errors;
    int fd = raw_dial(port);
    CHECK_EQ(send(fd, cases[i].bytes, cases[i].len, MSG_NOSIGNAL), (long long)cases[i].len);
    uint64_t t = test_now_ms();
    while (S.closes == closes0 && test_now_ms() - t < 3000) {
      sl_mgr_poll(m, 5);
      /* No input buffer for a connection still in its handshake. */
      sl_mgr_stats ms;
      sl_mgr_stats_get(m, &ms);
      CHECK_EQ(ms.in, 0);
    }
    CHECK_EQ(S.closes, closes0 + 1);
    CHECK_LE(test_now_ms() - t, 1000); /* by the protocol error, not a timeout */
    printf("  case %zu: %s\n", i, S.last_msg);
    CHECK_EQ(S.errors, errors0 + 1);
    CHECK_EQ(S.last_err, SL_ETLS);
    CHECK(strstr(S.last_msg, "TLS handshake with 127.0.0.1:") != NULL);
    CHECK_MSG(strstr(S.last_msg, cases[i].reason) != NULL, "%s", S.last_msg);
    WAIT_FOR(raw_closed(fd), 5000);
    close(fd);
  }
  CHECK_EQ(S.accepts, 0);
  CHECK_EQ(S.by_reason[SL_CLOSE_PROTOCOL], 4);
  /* A client that connects and leaves: an ordinary close, no error. */
  int fd = raw_dial(port);
  close(fd);
  int closes0 = S.closes;
  uint64_t t = test_now_ms();
  while (S.closes == closes0 && test_now_ms() - t < 2000) sl_mgr_poll(m, 5);
  CHECK_EQ(S.by_reason[SL_CLOSE_PEER], 1);
  CHECK_EQ(S.errors, 4);
  wait_clean(m, 1);
  sl_mgr_free(m);
  tls_certs_remove();
  mem_zero();
}

/* The first bytes a real client sends: its ClientHello. */
static size_t client_hello(unsigned char *out, size_t cap) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL *s = SSL_new(ctx);
  BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
  SSL_set_bio(s, rb, wb);
  SSL_set_connect_state(s);
  SSL_set_tlsext_host_name(s, "localhost");
  SSL_do_handshake(s);
  int n = BIO_read(wb, out, (int)cap);
  SSL_free(s);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  CHECK(n > 100);
  return (size_t)n;
}

TEST_T(tls_handshake_that_stops_halfway_times_out, 30) {
  tls_certs_make();
  memset(&S, 0, sizeof(S));
  int err = 0;
  sl_mgr *m = sl_mgr_new(NULL, &err);
  CHECK(m != NULL);
  sl_tls_ctx *sctx = server_ctx("srv", 400); /* handshake_timeout_ms */
  sl_conn *l = listen_https(m, sctx);
  sl_tls_ctx_free(sctx);
  int port = sl_conn_local_port(l);
  unsigned char hello[4096];
  size_t n = client_hello(hello, sizeof(hello));
  /* Half a ClientHello, then silence; and a connection that never sends
   * a byte. */
  int half = raw_dial(port), mute = raw_dial(port);
  uint64_t t0 = test_now_ms();
  CHECK_EQ(send(half, hello, n / 2, MSG_NOSIGNAL), (long long)(n / 2));
  while (S.closes < 2 && test_now_ms() - t0 < 3000) sl_mgr_poll(m, 5);
  uint64_t took = test_now_ms() - t0;
  CHECK_EQ(S.closes, 2);
  CHECK_GE(took, 400);
  CHECK_LE(took, 1500);
  CHECK_EQ(S.by_reason[SL_CLOSE_TIMEOUT], 2);
  CHECK_EQ(S.accepts, 0);
  CHECK_EQ(S.errors, 0);
  WAIT_FOR(raw_closed(half) && raw_closed(mute), 5000);
  close(half);
  close(mute);
  /* The whole ClientHello afterwards would have been answered. */
  sl_mgr_stats ms;
  sl_mgr_stats_get(m, &ms);
  CHECK_EQ(ms.closed_by[SL_CLOSE_TIMEOUT], 2);
  wait_clean(m, 1);
  sl_mgr_free(m);
  tls_certs_remove();
  mem_zero();
}

/* ---- contexts ------------------------------------------------------------ */

TEST_T(tls_context_errors_are_explained, 30) {
  tls_certs_make();
  int err = 0;
  sl_tls_opts o = {0};
  CHECK(sl_tls_server_new(&o, &err) == NULL);
  CHECK_EQ(err, SL_EINVAL);
  o.cert_file = "/nonexistent/cert.pem";
  o.key_file = "/nonexistent/key.pem";
  CHECK(sl_tls_server_new(&o, &err) == NULL);
  CHECK_EQ(err, SL_ENOENT);
  CHECK(strstr(sl_tls_last_error(), "/nonexistent/cert.pem") != NULL);
  char cert[256], key[256];
  snprintf(cert, sizeof(cert), "%s", tls_path("srv.pem"));
  snprintf(key, sizeof(key), "%s", tls_path("other.key"));
  o.cert_file = cert;
  o.key_file = key;
  CHECK(sl_tls_server_new(&o, &err) == NULL);
  CHECK_EQ(err, SL_ETLS);
  CHECK_MSG(strstr(sl_tls_last_error(), "does not match") != NULL, "%s", sl_tls_last_error());
  o.key_file = cert; /* a certificate where the key should be */
  CHECK(sl_tls_server_new(&o, &err) == NULL);
  CHECK_EQ(err, SL_ETLS);
  printf("  %s\n", sl_tls_last_error());
  sl_tls_opts bad = {.cert_pem = "not PEM", .key_pem = "not PEM"};
  CHECK(sl_tls_server_new(&bad, &err) == NULL);
  CHECK_EQ(err, SL_ETLS);
  /* Text and a file mixed: the wrong key, then the right one. */
  char *pem = tls_read("srv.pem");
  snprintf(key, sizeof(key), "%s", tls_path("other.key"));
  sl_tls_opts mix = {.cert_pem = pem, .key_file = key};
  CHECK(sl_tls_server_new(&mix, &err) == NULL);
  CHECK_EQ(err, SL_ETLS);
  snprintf(key, sizeof(key), "%s", tls_path("srv.key"));
  sl_tls_ctx *ok = sl_tls_server_new(&mix, &err);
  CHECK_MSG(ok != NULL, "%s", sl_tls_last_error());
  sl_tls_ctx_free(ok);
  free(pem);
  /* The system store loads (whatever it holds). */
  sl_tls_ctx *sys = sl_tls_client_new(NULL, &err);
  CHECK(sys != NULL);
  sl_tls_ctx_free(sys);
  tls_certs_remove();
  mem_zero();
}

#endif /* SL_HAVE_TLS */
