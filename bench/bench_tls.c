/*
 * TLS benchmark: what encryption costs a live stream's fan-out, measured
 * against plain TCP in the same run.
 *
 * A hub publishes FRAME-byte frames (64 KiB) as fast as its subscribers
 * take them (policy lossless: the producer publishes whenever the hub is
 * ready, so nothing is dropped and the queues stay bounded) to N readers
 * (100) attached as raw subscribers, either over plain TCP or over TLS.
 * The readers are sluice client connections on a second manager on a
 * thread of its own, which count and discard what they receive (over
 * TLS they decrypt it: the machine pays for both ends). Reported: bytes
 * per second delivered to all readers together, the median over
 * interleaved rounds, and the ratio TLS / plain.
 *
 * Beside it, what a TLS connection costs in memory that is not in the
 * library's counters: OpenSSL's own per-connection state, measured with
 * mallinfo2() around establishing N idle connections (both ends in this
 * process, so the figure is per end: total / 2N), net of what sl_mem_stats
 * counted meanwhile.
 *
 * The certificate is made at start-up by the `openssl` command (an EC
 * P-256 self-signed one, in a temporary directory). Loopback only; output
 * is a Markdown table; bench/run.sh runs it.
 *   bench_tls [-r ROUNDS (3)] [-t SECONDS_PER_RUN (1)] [-n READERS (100)]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "sluice.h"

#define FRAME (64u * 1024)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int err) {
  fprintf(stderr, "bench_tls: %s: %s\n", what, err < 0 ? sl_strerror(err) : strerror(err));
  exit(1);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* ---- the readers: a manager on a thread of its own ------------------ */

enum { R_IDLE, R_OPEN, R_CLOSE, R_QUIT };

static struct {
  sl_mgr *m;
  pthread_t th;
  atomic_int cmd, done;       /* a command and its completion */
  int port, tls, n;
  sl_tls_ctx *cli;
  sl_conn **conns;
  int connected, closed;
  atomic_ullong got;
} R;

static void on_reader(sl_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == SL_EV_CONNECT) {
    R.connected++;
  } else if (ev == SL_EV_READ) {
    size_t n;
    sl_conn_in(c, &n);
    atomic_fetch_add_explicit(&R.got, n, memory_order_relaxed);
    sl_conn_consume(c, n);
  } else if (ev == SL_EV_ERROR) {
    fprintf(stderr, "bench_tls: reader: %s\n", (const char *)ev_data);
  } else if (ev == SL_EV_CLOSE) {
    R.closed++;
  }
}

static void readers_open(void) {
  char url[64];
  int err = 0;
  snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", R.port);
  R.connected = R.closed = 0;
  for (int i = 0; i < R.n; i++) {
    R.conns[i] = sl_connect(R.m, url, on_reader, NULL, &err);
    if (R.conns[i] == NULL) die("sl_connect", err);
    if (R.tls && (err = sl_conn_tls(R.conns[i], R.cli, "localhost")) != 0)
      die("sl_conn_tls", err);
  }
  while (R.connected < R.n) sl_mgr_poll(R.m, 10);
}

static void readers_close(void) {
  for (int i = 0; i < R.n; i++) sl_conn_close(R.conns[i], SL_CLOSE_NOW);
  while (R.closed < R.n) sl_mgr_poll(R.m, 10);
}

static void *readers_main(void *arg) {
  (void)arg;
  for (;;) {
    int cmd = atomic_load(&R.cmd);
    if (cmd == R_QUIT) break;
    if (cmd == R_OPEN) readers_open();
    if (cmd == R_CLOSE) readers_close();
    if (cmd != R_IDLE) {
      atomic_store(&R.cmd, R_IDLE);
      atomic_store(&R.done, 1);
    }
    sl_mgr_poll(R.m, 5);
  }
  return NULL;
}

/* Run a command on the readers' thread; the server's loop keeps running
 * meanwhile (handshakes need both). */
static void readers_do(sl_mgr *server, int cmd) {
  atomic_store(&R.done, 0);
  atomic_store(&R.cmd, cmd);
  while (!atomic_load(&R.done)) sl_mgr_poll(server, 5);
}

/* ---- the server ------------------------------------------------------ */

static sl_hub *hub;
static sl_buf *frame;

static void on_server(sl_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == SL_EV_ACCEPT) {
    sl_sub_opts so = {.policy = SL_POLICY_LOSSLESS};
    int rc = sl_hub_attach_conn(hub, c, SL_TRANSPORT_RAW, &so);
    if (rc) die("sl_hub_attach_conn", rc);
  }
}

static size_t subs(void) {
  sl_hub_stats hs;
  sl_hub_stats_get(hub, &hs);
  return hs.subs;
}

/* One timed run over listener port `port`; returns bytes/s delivered. */
static double run(sl_mgr *m, int port, int tls, double secs) {
  R.port = port;
  R.tls = tls;
  readers_do(m, R_OPEN);
  while (subs() < (size_t)R.n) sl_mgr_poll(m, 5);
  unsigned long long g0 = atomic_load(&R.got);
  double t0 = now_s(), t1;
  while ((t1 = now_s()) - t0 < secs) {
    while (sl_hub_ready(hub)) {
      int rc = sl_hub_publish(hub, frame, 0, 0);
      if (rc) die("sl_hub_publish", rc);
    }
    sl_mgr_poll(m, 1);
  }
  unsigned long long bytes = atomic_load(&R.got) - g0;
  readers_do(m, R_CLOSE);
  while (subs() > 0) sl_mgr_poll(m, 5);
  return (double)bytes / (t1 - t0);
}

/* OpenSSL's memory per connection end, beyond the library's counters. */
static double openssl_bytes_per_conn(sl_mgr *m, int port) {
  for (int i = 0; i < 20; i++) sl_mgr_poll(m, 1);
  struct mallinfo2 a = mallinfo2();
  sl_mem_stats sa;
  sl_mem_stats_get(&sa);
  R.port = port;
  R.tls = 1;
  readers_do(m, R_OPEN);
  while (subs() < (size_t)R.n) sl_mgr_poll(m, 5);
  for (int i = 0; i < 50; i++) sl_mgr_poll(m, 1);
  struct mallinfo2 b = mallinfo2();
  sl_mem_stats sb;
  sl_mem_stats_get(&sb);
  double total = (double)b.uordblks - (double)a.uordblks;
  double ours = (double)sb.total - (double)sa.total;
  readers_do(m, R_CLOSE);
  while (subs() > 0) sl_mgr_poll(m, 5);
  return (total - ours) / (2.0 * R.n);
}

int main(int argc, char **argv) {
  int rounds = 3, opt, err = 0;
  double secs = 1.0;
  R.n = 100;
  while ((opt = getopt(argc, argv, "r:t:n:")) != -1) {
    if (opt == 'r') rounds = atoi(optarg);
    else if (opt == 't') secs = atof(optarg);
    else if (opt == 'n') R.n = atoi(optarg);
    else {
      fprintf(stderr, "usage: bench_tls [-r ROUNDS] [-t SECONDS] [-n READERS]\n");
      return 2;
    }
  }
  if (rounds < 1 || rounds > 50 || secs <= 0 || R.n < 1 || R.n > 2000) return 2;

  /* A throwaway certificate. */
  char dir[] = "/tmp/sluice-bench-tls-XXXXXX", cmd[1024], cert[256], key[256];
  if (mkdtemp(dir) == NULL) die("mkdtemp", errno);
  snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
  snprintf(key, sizeof(key), "%s/key.pem", dir);
  snprintf(cmd, sizeof(cmd),
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
           "-subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout %s -out %s "
           ">/dev/null 2>&1", key, cert);
  if (system(cmd) != 0) {
    fprintf(stderr, "bench_tls: the openssl command failed: %s\n", cmd);
    return 1;
  }
  sl_tls_opts so = {.cert_file = cert, .key_file = key};
  sl_tls_opts co = {.ca_file = cert};
  sl_tls_ctx *srv = sl_tls_server_new(&so, &err);
  if (srv == NULL && err == SL_ENOTSUP) {
    printf("TLS is not built into this library (SL_TLS=OFF): nothing to measure.\n");
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
  }
  if (srv == NULL) die(sl_tls_last_error(), err);
  R.cli = sl_tls_client_new(&co, &err);
  if (R.cli == NULL) die(sl_tls_last_error(), err);

  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)(4 * R.n + 64)) {
    rl.rlim_cur = rl.rlim_max < (rlim_t)(4 * R.n + 64) ? rl.rlim_max : (rlim_t)(4 * R.n + 64);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  sl_mgr *m = sl_mgr_new(NULL, &err);
  if (m == NULL) die("sl_mgr_new", err);
  R.m = sl_mgr_new(NULL, &err);
  if (R.m == NULL) die("sl_mgr_new", err);
  R.conns = calloc((size_t)R.n, sizeof(*R.conns));
  sl_hub_opts ho = {.max_subs = (size_t)R.n};
  hub = sl_hub_new(m, "bench", &ho, &err);
  if (hub == NULL) die("sl_hub_new", err);
  sl_conn *lp = sl_listen(m, "127.0.0.1:0", on_server, NULL, &err);
  if (lp == NULL) die("sl_listen", err);
  sl_conn *lt = sl_listen_tls(m, "127.0.0.1:0", srv, on_server, NULL, &err);
  if (lt == NULL) die("sl_listen_tls", err);
  int pport = sl_conn_local_port(lp), tport = sl_conn_local_port(lt);
  frame = sl_buf_new(FRAME);
  memset(sl_buf_data(frame), 0x5a, FRAME);
  if (pthread_create(&R.th, NULL, readers_main, NULL) != 0) die("pthread_create", errno);

  double *plain = calloc((size_t)rounds, sizeof(double));
  double *tls = calloc((size_t)rounds, sizeof(double));
  for (int i = 0; i < rounds; i++) {
    plain[i] = run(m, pport, 0, secs);
    tls[i] = run(m, tport, 1, secs);
    fprintf(stderr, "round %d: plain %.1f MB/s, TLS %.1f MB/s\n", i + 1, plain[i] / 1e6,
            tls[i] / 1e6);
  }
  double per_conn = openssl_bytes_per_conn(m, tport);
  qsort(plain, (size_t)rounds, sizeof(double), cmp_double);
  qsort(tls, (size_t)rounds, sizeof(double), cmp_double);
  double mp = plain[rounds / 2], mt = tls[rounds / 2];

  printf("Fan-out of one stream of %u KiB frames to %d readers (hub, policy lossless, "
         "raw transport), %d rounds of %.1f s each, medians; the readers run on a second "
         "thread (over TLS they decrypt too).\n\n", FRAME / 1024, R.n, rounds, secs);
  printf("| transport | delivered to all readers | per reader | ratio to plain |\n");
  printf("|---|---:|---:|---:|\n");
  printf("| plain TCP | %.1f MB/s | %.2f MB/s | 1.00 |\n", mp / 1e6, mp / 1e6 / R.n);
  printf("| TLS (%s) | %.1f MB/s | %.2f MB/s | **%.2f** |\n", "OpenSSL", mt / 1e6,
         mt / 1e6 / R.n, mt / mp);
  printf("\nOpenSSL's own state per idle TLS connection end (not in sl_mem_stats; "
         "mallinfo2 over %d connections, both ends): %.1f KiB\n", R.n, per_conn / 1024);

  atomic_store(&R.cmd, R_QUIT);
  pthread_join(R.th, NULL);
  sl_mgr_free(R.m);
  sl_hub_free(hub);
  sl_buf_unref(frame);
  sl_mgr_free(m);
  sl_tls_ctx_free(srv);
  sl_tls_ctx_free(R.cli);
  free(R.conns);
  free(plain);
  free(tls);
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  if (system(cmd) != 0) return 1;
  sl_mem_stats ms;
  sl_mem_stats_get(&ms);
  if (ms.total != 0) {
    fprintf(stderr, "bench_tls: %zu bytes still held\n", ms.total);
    return 1;
  }
  return 0;
}
