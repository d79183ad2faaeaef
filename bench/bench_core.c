/*
 * Core benchmark: what the bounded, shared-segment output queue costs and
 * saves, each number measured against a plain alternative in the same run.
 *
 * 1. Throughput to one fast loopback reader. A reader thread drains the
 *    socket with recv() into a 256 KiB buffer. The sender pushes 64 KiB
 *    pieces for a fixed time, either through sluice (the queue kept topped
 *    up to 1 MiB from SL_EV_WRITE, as shared-buffer references or as copies)
 *    or with a plain blocking send() loop. Bytes/s are bytes the kernel
 *    accepted. Reported: medians over interleaved rounds and the ratio to
 *    the plain loop. sluice hands the kernel up to 64 segments per sendmsg,
 *    so a plain loop with 1 MiB calls is shown too: it separates the gain
 *    of fewer, larger syscalls from the cost of the queue itself.
 * 2. Fan-out: queueing one 100 KB buffer to 1000 connections with
 *    sl_send_buf (one shared copy, a reference per connection) against
 *    sl_send (1000 copies). The timed window covers the 1000 calls only
 *    (nothing is written: the loop does not run inside it); allocations are
 *    counted by allocator hooks (sl_set_allocator), independently of the
 *    library's own counters, which are shown beside them.
 *
 * Loopback only. Output is a Markdown table; bench/run.sh runs it.
 *   bench_core [-r ROUNDS (5)] [-t SECONDS_PER_RUN (1)] [-n CONNS (1000)]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sluice.h"

#define CHUNK (64u * 1024)
#define SRC_LEN (1u << 20)
#define TOPUP (1u << 20)
#define FRAME (100u * 1000)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int err) {
  fprintf(stderr, "bench_core: %s: %s\n", what,
          err < 0 ? sl_strerror(err) : strerror(err));
  exit(1);
}

/* ---- allocation counting ---------------------------------------------- */

static atomic_size_t n_allocs, n_bytes;

static void *count_malloc(size_t n) {
  atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&n_bytes, n, memory_order_relaxed);
  return malloc(n);
}

static void *count_realloc(void *p, size_t n) {
  atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&n_bytes, n, memory_order_relaxed);
  return realloc(p, n);
}

/* ---- a plain loopback reader ------------------------------------------- */

struct reader {
  int lfd;
  pthread_t th;
  atomic_ullong got;
};

static void *reader_main(void *arg) {
  struct reader *r = arg;
  static char buf[256 * 1024]; /* one reader at a time */
  int fd = accept(r->lfd, NULL, NULL);
  if (fd < 0) return NULL;
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    atomic_fetch_add_explicit(&r->got, (unsigned long long)n,
                              memory_order_relaxed);
  }
  close(fd);
  return NULL;
}

/* Starts a reader listening on 127.0.0.1; returns its port. */
static int reader_start(struct reader *r) {
  struct sockaddr_in a = {0};
  socklen_t al = sizeof(a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (r->lfd < 0 || bind(r->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
      listen(r->lfd, 1) != 0 ||
      getsockname(r->lfd, (struct sockaddr *)&a, &al) != 0)
    die("reader socket", errno);
  atomic_store(&r->got, 0);
  if (pthread_create(&r->th, NULL, reader_main, r) != 0)
    die("pthread_create", errno);
  return ntohs(a.sin_port);
}

static void reader_join(struct reader *r) {
  pthread_join(r->th, NULL);
  close(r->lfd);
}

/* ---- 1. throughput ------------------------------------------------------ */

enum { T_PLAIN, T_REF, T_COPY, T_PLAIN_1M, T_N };
static const char *t_names[T_N] = {
    "plain blocking send() loop, 64 KiB per call",
    "sluice sl_send_buf (shared buffer, no copy)",
    "sluice sl_send (copied into the queue)",
    "plain blocking send() loop, 1 MiB per call"};

static unsigned char *src;
static sl_buf *src_buf;

struct tput {
  int mode, connected, closed;
  size_t off;
  unsigned long long written;
  int err;
};

static void top_up(sl_conn *c, struct tput *t) {
  while (sl_conn_queued(c) < TOPUP) {
    int rc = t->mode == T_REF ? sl_send_buf(c, src_buf, t->off, CHUNK)
                              : sl_send(c, src + t->off, CHUNK);
    if (rc != 0) {
      t->err = rc;
      return;
    }
    t->off = (t->off + CHUNK) % SRC_LEN;
  }
}

static void on_tput(sl_conn *c, int ev, void *ev_data) {
  struct tput *t = sl_conn_data(c);
  if (ev == SL_EV_CONNECT) {
    t->connected = 1;
    top_up(c, t);
  } else if (ev == SL_EV_WRITE) {
    t->written += *(size_t *)ev_data;
    top_up(c, t);
  } else if (ev == SL_EV_CLOSE) {
    t->closed = 1;
  }
}

/* One timed run; returns bytes/s. */
static double run_tput(int mode, double secs) {
  struct reader r;
  int port = reader_start(&r);
  double t0, t1;
  unsigned long long bytes;
  if (mode == T_PLAIN || mode == T_PLAIN_1M) {
    size_t chunk = mode == T_PLAIN ? CHUNK : SRC_LEN;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
      die("connect", errno);
    size_t off = 0;
    bytes = 0;
    t0 = now_s();
    do {
      size_t len = chunk < SRC_LEN - off ? chunk : SRC_LEN - off;
      ssize_t n = send(fd, src + off, len, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) die("send", errno);
      bytes += (unsigned long long)n;
      off = (off + (size_t)n) % SRC_LEN;
    } while ((t1 = now_s()) - t0 < secs);
    close(fd);
  } else {
    int err;
    char url[64];
    struct tput t = {0};
    t.mode = mode;
    sl_mgr *m = sl_mgr_new(NULL, &err);
    if (m == NULL) die("sl_mgr_new", err);
    snprintf(url, sizeof(url), "127.0.0.1:%d", port);
    sl_conn *c = sl_connect(m, url, on_tput, &t, &err);
    if (c == NULL) die("sl_connect", err);
    while (!t.connected && !t.closed) sl_mgr_poll(m, 100);
    if (!t.connected) die("sl_connect", sl_conn_error(c));
    t.written = 0;
    t0 = now_s();
    while ((t1 = now_s()) - t0 < secs && !t.closed && !t.err)
      sl_mgr_poll(m, 100);
    if (t.err) die("send", t.err);
    bytes = t.written;
    sl_conn_close(c, SL_CLOSE_NOW);
    while (!t.closed) sl_mgr_poll(m, 100);
    sl_mgr_free(m);
  }
  reader_join(&r);
  return (double)bytes / (t1 - t0);
}

/* ---- 2. fan-out ---------------------------------------------------------- */

struct fan {
  sl_conn **conns;
  size_t n, cap;
};

static void on_fan(sl_conn *c, int ev, void *ev_data) {
  struct fan *f = sl_conn_data(c);
  (void)ev_data;
  if (ev == SL_EV_ACCEPT && f->n < f->cap) f->conns[f->n++] = c;
}

struct fan_result {
  double secs;
  size_t allocs, bytes;   /* from the allocator hooks */
  size_t mem_total;       /* sl_mem_stats total, delta */
  size_t held;            /* sl_mgr_stats held, delta */
};

/* Opens `n` loopback connections to a sluice listener, then times queueing
 * the frame to each accepted connection (shared or copied). */
static struct fan_result run_fan(int shared, size_t n, const unsigned char *frame_bytes) {
  struct fan_result res = {0};
  struct fan f = {calloc(n, sizeof(sl_conn *)), 0, n};
  int *cfd = malloc(n * sizeof(int)), err;
  sl_mgr_opts o = {0};
  o.max_conns = n + 16;
  sl_mgr *m = sl_mgr_new(&o, &err);
  if (m == NULL || f.conns == NULL || cfd == NULL) die("sl_mgr_new", err);
  sl_conn *l = sl_listen(m, "127.0.0.1:0", on_fan, &f, &err);
  if (l == NULL) die("sl_listen", err);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)sl_conn_local_port(l));
  for (size_t i = 0; i < n; i++) {
    cfd[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (cfd[i] < 0 || connect(cfd[i], (struct sockaddr *)&a, sizeof(a)) != 0)
      die("connect", errno);
    if (i % 64 == 63) sl_mgr_poll(m, 0); /* keep the backlog short */
  }
  double deadline = now_s() + 10;
  while (f.n < n && now_s() < deadline) sl_mgr_poll(m, 50);
  if (f.n < n) die("accepting the fan-out connections", ETIMEDOUT);

  sl_buf *frame = sl_buf_from(frame_bytes, FRAME); /* made once, untimed */
  if (frame == NULL) die("sl_buf_from", ENOMEM);
  sl_mem_stats ms0, ms1;
  sl_mgr_stats st0, st1;
  sl_mem_stats_get(&ms0);
  sl_mgr_stats_get(m, &st0);
  size_t a0 = atomic_load(&n_allocs), b0 = atomic_load(&n_bytes);
  double t0 = now_s();
  for (size_t i = 0; i < n; i++) {
    int rc = shared ? sl_send_buf(f.conns[i], frame, 0, FRAME)
                    : sl_send(f.conns[i], frame_bytes, FRAME);
    if (rc != 0) die("queueing the frame", rc);
  }
  res.secs = now_s() - t0;
  res.allocs = atomic_load(&n_allocs) - a0;
  res.bytes = atomic_load(&n_bytes) - b0;
  sl_mem_stats_get(&ms1);
  sl_mgr_stats_get(m, &st1);
  res.mem_total = ms1.total - ms0.total;
  res.held = st1.held - st0.held;
  sl_buf_unref(frame);

  for (size_t i = 0; i < n; i++) sl_conn_close(f.conns[i], SL_CLOSE_RESET);
  sl_mgr_poll(m, 0);
  sl_mgr_free(m);
  for (size_t i = 0; i < n; i++) close(cfd[i]);
  free(cfd);
  free(f.conns);
  return res;
}

/* ---- reporting ------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(const double *v, int n) {
  double s[64];
  memcpy(s, v, (size_t)n * sizeof(double));
  qsort(s, (size_t)n, sizeof(double), cmp_double);
  return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static double minv(const double *v, int n) {
  double x = v[0];
  for (int i = 1; i < n; i++) x = v[i] < x ? v[i] : x;
  return x;
}

static double maxv(const double *v, int n) {
  double x = v[0];
  for (int i = 1; i < n; i++) x = v[i] > x ? v[i] : x;
  return x;
}

int main(int argc, char **argv) {
  int rounds = 5;
  double secs = 1.0;
  size_t nconn = 1000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "-r") == 0) rounds = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "-t") == 0) secs = atof(argv[i + 1]);
    else if (strcmp(argv[i], "-n") == 0) nconn = (size_t)atol(argv[i + 1]);
  }
  if (rounds < 1 || rounds > 64 || secs <= 0 || nconn < 1) {
    fprintf(stderr, "usage: bench_core [-r ROUNDS<=64] [-t SECONDS] [-n CONNS]\n");
    return 2;
  }
  /* Before any other sl_ call. */
  if (sl_set_allocator(count_malloc, count_realloc, free) != 0)
    die("sl_set_allocator", SL_EBUSY);

  /* 2 fds per fan-out connection, plus slack. */
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rlim_t want = (rlim_t)(2 * nconn + 128);
  if (rl.rlim_cur < want) {
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < want) {
    nconn = rl.rlim_cur > 256 ? (size_t)(rl.rlim_cur - 128) / 2 : 64;
    fprintf(stderr, "bench_core: RLIMIT_NOFILE %llu: %zu connections only\n",
            (unsigned long long)rl.rlim_cur, nconn);
  }

  src = malloc(SRC_LEN);
  if (src == NULL) die("malloc", ENOMEM);
  uint32_t x = 12345;
  for (size_t i = 0; i < SRC_LEN; i++) {
    x = x * 1103515245u + 12345u;
    src[i] = (unsigned char)(x >> 16);
  }
  src_buf = sl_buf_from(src, SRC_LEN);
  if (src_buf == NULL) die("sl_buf_from", ENOMEM);

  /* Interleaved: every round runs each variant once, so drift in the
   * machine's state hits all of them alike. */
  double tp[T_N][64];
  struct fan_result fr[2][64];
  double ft[2][64], fb[2][64], fa[2][64];
  for (int r = 0; r < rounds; r++) {
    for (int k = 0; k < T_N; k++) tp[k][r] = run_tput(k, secs);
    for (int s = 0; s < 2; s++) {
      fr[s][r] = run_fan(s == 0, nconn, src);
      ft[s][r] = fr[s][r].secs;
      fb[s][r] = (double)fr[s][r].bytes;
      fa[s][r] = (double)fr[s][r].allocs;
    }
    fprintf(stderr, "round %d/%d: plain %.0f MB/s, ref %.0f MB/s, copy %.0f MB/s, "
            "plain 1 MiB %.0f MB/s; fan-out shared %.2f ms, copied %.2f ms\n",
            r + 1, rounds, tp[T_PLAIN][r] / 1e6, tp[T_REF][r] / 1e6,
            tp[T_COPY][r] / 1e6, tp[T_PLAIN_1M][r] / 1e6, ft[0][r] * 1e3,
            ft[1][r] * 1e3);
  }

  double plain = median(tp[T_PLAIN], rounds);
  printf("### Throughput to one loopback reader\n\n");
  printf("%.1f s per run, %d interleaved rounds; MB = 10^6 bytes the kernel accepted.\n\n",
         secs, rounds);
  printf("| Sender | median MB/s | min | max | ratio to plain 64 KiB send() |\n");
  printf("|---|---:|---:|---:|---:|\n");
  for (int k = 0; k < T_N; k++)
    printf("| %s | %.0f | %.0f | %.0f | %.2f |\n", t_names[k],
           median(tp[k], rounds) / 1e6, minv(tp[k], rounds) / 1e6,
           maxv(tp[k], rounds) / 1e6, median(tp[k], rounds) / plain);

  printf("\n### Queueing one %u-byte buffer to %zu connections\n\n", FRAME, nconn);
  printf("The %zu calls only (the loop does not run inside the window); %d rounds, medians.\n\n",
         nconn, rounds);
  printf("| Method | time ms | us per conn | bytes allocated | allocations | library total delta | manager held delta |\n");
  printf("|---|---:|---:|---:|---:|---:|---:|\n");
  static const char *fn[2] = {"sl_send_buf: one shared sl_buf, a reference each",
                              "sl_send: copied into each queue"};
  for (int s = 0; s < 2; s++) {
    struct fan_result *last = &fr[s][rounds - 1];
    printf("| %s | %.2f | %.2f | %.0f | %.0f | %zu | %zu |\n", fn[s],
           median(ft[s], rounds) * 1e3, median(ft[s], rounds) * 1e6 / (double)nconn,
           median(fb[s], rounds), median(fa[s], rounds), last->mem_total, last->held);
  }
  double rb = median(fb[1], rounds) / median(fb[0], rounds);
  double rt = median(ft[1], rounds) / median(ft[0], rounds);
  printf("| copy / shared | %.1fx | | %.1fx | | | |\n", rt, rb);

  sl_buf_unref(src_buf);
  free(src);
  sl_mem_stats ms;
  sl_mem_stats_get(&ms);
  if (ms.total != 0) {
    fprintf(stderr, "bench_core: %zu bytes still held by the library at exit\n", ms.total);
    return 1;
  }
  return 0;
}
