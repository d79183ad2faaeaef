/* sluice-stream over TLS, end to end: the real binary with --tls-cert and
 * --tls-key serving pages, snapshots, MJPEG and WebSocket viewers over
 * HTTPS/WSS; SIGHUP swapping in a renewed certificate without dropping a
 * viewer; and https:// and wss:// relay sources. Certificates come from
 * tls_test.h. */
#include "sluice.h"
#include "test.h"

#ifdef SL_HAVE_TLS

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rel_harness.h"
#include "tls_test.h"

/* Start sluice-stream (port 0, read back) with `extra` arguments
 * (NULL-terminated), its log in tls_dir/NAME.log; `ca`, when set, becomes
 * SSL_CERT_FILE (the CAs its relays trust). */
static void start(struct rel_srv *p, const char *name, const char *ca,
                  const char *const *extra) {
  char log[256];
  snprintf(log, sizeof(log), "%s/%s.log", tls_dir, name);
  const char *argv[32] = {"--log-level", "info", "--size", "320x240"};
  int n = 4;
  for (int i = 0; extra && extra[i] && n < 30; i++) argv[n++] = extra[i];
  argv[n] = NULL;
  rel_srv_spawn(p, NULL, argv, 0, 5000, ca, log);
}

/* SIGTERM; its exit status (0: stopped with every counter at zero). */
static int stop(struct rel_srv *p) { return rel_srv_stop(p, 3000); }

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* The subject curl saw in the server's certificate contains `cn`. */
static int served_subject(int port, const char *cn) {
  return test_sh("curl -sv --max-time 3 --cacert %s https://localhost:%d/api/stats -o /dev/null "
                 "2>&1 | grep -q 'subject: CN=%s$'",
                 tls_path("ca.pem"), port, cn) == 0;
}

/* A WSS viewer with sluice's own client: the first binary message must be
 * a JPEG. */
struct wsv {
  int jpeg, closed, err;
  char msg[300];
};

static void on_wsv(sl_conn *c, int ev, void *ev_data) {
  struct wsv *w = sl_conn_data(c);
  if (ev == SL_EV_WS_MSG) {
    const sl_ws_msg *m = ev_data;
    if (m->opcode != SL_WS_BINARY) return; /* status text */
    w->jpeg = m->data.len > 2 && (unsigned char)m->data.ptr[0] == 0xFF &&
              (unsigned char)m->data.ptr[1] == 0xD8;
    sl_ws_close(c, 1000, NULL);
  } else if (ev == SL_EV_ERROR) {
    w->err = sl_conn_error(c);
    snprintf(w->msg, sizeof(w->msg), "%s", (const char *)ev_data);
  } else if (ev == SL_EV_CLOSE) {
    w->closed = 1;
  }
}

static void wss_viewer(int port) {
  int err = 0;
  char ca[256], url[128];
  snprintf(ca, sizeof(ca), "%s", tls_path("ca.pem"));
  sl_tls_opts o = {.ca_file = ca};
  sl_mgr *m = sl_mgr_new(NULL, &err);
  CHECK(m != NULL);
  sl_tls_ctx *cli = sl_tls_client_new(&o, &err);
  CHECK(cli != NULL);
  struct wsv w = {0};
  sl_ws_opts wo = {.tls = cli};
  snprintf(url, sizeof(url), "wss://localhost:%d/ws", port);
  CHECK(sl_ws_connect(m, url, &wo, on_wsv, &w, &err) != NULL);
  sl_tls_ctx_free(cli);
  for (uint64_t end = test_now_ms() + 5000; !w.closed && test_now_ms() < end;)
    sl_mgr_poll(m, 10);
  CHECK_MSG(w.err == 0, "%s", w.msg);
  CHECK(w.jpeg);
  sl_mgr_free(m);
  sl_mem_stats ms;
  sl_mem_stats_get(&ms);
  CHECK_EQ(ms.total, 0);
}

TEST_T(stream_tls_everything_over_https_and_sighup_reload, 30) {
  tls_certs_make();
  /* The files the server is told about; the renewal is copied over them. */
  CHECK_EQ(test_sh("cd %s && cp srv.pem live.pem && cp srv.key live.key", tls_dir), 0);
  char cert[256], key[256];
  snprintf(cert, sizeof(cert), "%s", tls_path("live.pem"));
  snprintf(key, sizeof(key), "%s", tls_path("live.key"));
  const char *args[] = {"--tls-cert", cert, "--tls-key", key, NULL};
  struct rel_srv p;
  start(&p, "tls", NULL, args);
  const char *ca = tls_path("ca.pem");
  CHECK_EQ(test_sh("grep -q 'serving https://127.0.0.1:%d/' %s", p.port, p.log), 0);
  /* Every endpoint is HTTPS: the page, a snapshot, the API. */
  CHECK_EQ(test_sh("curl -sS --max-time 3 --cacert %s https://localhost:%d/ | grep -qi '<html'",
                   ca, p.port), 0);
  CHECK_EQ(test_sh("curl -sS --max-time 3 --cacert %s https://localhost:%d/snapshot.jpg -o %s/snap.jpg"
                   " && head -c 2 %s/snap.jpg | od -An -tx1 | grep -q 'ff d8'",
                   ca, p.port, tls_dir, tls_dir), 0);
  CHECK_EQ(test_sh("curl -sS --max-time 3 --cacert %s https://localhost:%d/api/stats | grep -q '\"streams\"'",
                   ca, p.port), 0);
  /* Plain HTTP on that port is a TLS error for the server, not a page. */
  CHECK(test_sh("curl -sS --max-time 3 http://127.0.0.1:%d/ -o /dev/null 2>/dev/null", p.port) != 0);
  CHECK(served_subject(p.port, "localhost"));
  wss_viewer(p.port);

  /* A viewer of the MJPEG stream over HTTPS, for the whole test. */
  char out[256];
  snprintf(out, sizeof(out), "%s/viewer.mjpg", tls_dir);
  CHECK_EQ(test_sh("curl -sN --max-time 4 --cacert %s https://localhost:%d/stream.mjpg -o %s "
                   ">/dev/null 2>&1 &", ca, p.port, out), 0);
  WAIT_FOR(file_size(out) >= 10000, 10000);
  long before = file_size(out);

  /* Renewed: new connections get the new certificate at once. */
  CHECK_EQ(test_sh("cd %s && cp srv2.pem live.pem && cp srv2.key live.key", tls_dir), 0);
  kill(p.pid, SIGHUP);
  WAIT_FOR(test_sh("grep -q 'reloaded TLS certificate' %s", p.log) == 0, 5000);
  CHECK(served_subject(p.port, "localhost-renewed"));
  /* A broken one changes nothing. */
  CHECK_EQ(test_sh("cd %s && echo broken > live.key", tls_dir), 0);
  kill(p.pid, SIGHUP);
  WAIT_FOR(test_sh("grep -q 'TLS reload failed, keeping the previous certificate' %s", p.log) == 0,
           5000);
  CHECK(served_subject(p.port, "localhost-renewed"));
  /* The viewer watched through both reloads: its stream goes on after
   * them (curl stops at 4 s, so the bound is well within its life). */
  WAIT_FOR(file_size(out) >= before + 20000 &&
               test_sh("grep -c 'Content-Type: image/jpeg' %s | awk '$1 < 40 { exit 1 }'", out) == 0,
           4000);
  printf("  viewer: %ld bytes before the reloads, %ld after\n", before, file_size(out));

  CHECK_EQ(stop(&p), 0);
  test_sh("sed 's/^/  log: /' %s | grep -i -e tls -e stopped", p.log);
  tls_certs_remove();
}

TEST_T(stream_tls_relays_https_and_wss_sources, 30) {
  tls_certs_make();
  char cert[256], key[256], src[128], wss[160];
  snprintf(cert, sizeof(cert), "%s", tls_path("srv.pem"));
  snprintf(key, sizeof(key), "%s", tls_path("srv.key"));
  const char *up_args[] = {"--tls-cert", cert, "--tls-key", key, NULL};
  struct rel_srv up, relay;
  start(&up, "upstream", NULL, up_args);
  /* A plain server relaying the TLS one twice: MJPEG over https:// and
   * WebSocket over wss://, trusting the test CA through SSL_CERT_FILE. */
  snprintf(src, sizeof(src), "https://localhost:%d/stream.mjpg", up.port);
  snprintf(wss, sizeof(wss), "w=wss://localhost:%d/ws", up.port);
  const char *relay_args[] = {"--source", src, "--stream", wss, NULL};
  start(&relay, "relay", tls_path("ca.pem"), relay_args);
  int ok_mjpeg = 0, ok_ws = 0;
  for (uint64_t end = test_now_ms() + 5000; !(ok_mjpeg && ok_ws) && test_now_ms() < end;) {
    if (!ok_mjpeg)
      ok_mjpeg = test_sh("curl -sf --max-time 2 http://127.0.0.1:%d/snapshot.jpg | head -c 2 | "
                         "od -An -tx1 | grep -q 'ff d8'", relay.port) == 0;
    if (!ok_ws)
      ok_ws = test_sh("curl -sf --max-time 2 http://127.0.0.1:%d/streams/w/snapshot.jpg | head -c 2 | "
                      "od -An -tx1 | grep -q 'ff d8'", relay.port) == 0;
    usleep(100000);
  }
  if (!(ok_mjpeg && ok_ws)) test_sh("sed 's/^/  relay log: /' %s", relay.log);
  CHECK(ok_mjpeg);
  CHECK(ok_ws);
  CHECK_EQ(stop(&relay), 0);
  /* Without the CA the relay refuses the upstream, and says why. */
  start(&relay, "relay-untrusting", NULL, relay_args);
  int said = 0;
  for (uint64_t end = test_now_ms() + 4000; !said && test_now_ms() < end; usleep(100000))
    said = test_sh("grep -q 'certificate verify failed' %s", relay.log) == 0;
  if (!said) test_sh("sed 's/^/  relay log: /' %s", relay.log);
  CHECK(said);
  CHECK_EQ(stop(&relay), 0);
  CHECK_EQ(stop(&up), 0);
  tls_certs_remove();
}

#endif /* SL_HAVE_TLS */
