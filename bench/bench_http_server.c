/*
 * Small-response HTTP server for the requests/s comparison with nginx
 * (bench/fanout.py runs wrk against both, interleaved): GET /hello answers
 * the 13-byte body "Hello, world!" with Content-Type text/plain, keep-alive;
 * anything else is 404. The library's HTTP server as an application
 * would use it: one loop on one thread, or with --threads N, N managers on
 * N threads, each listening on the same port (sl_mgr_opts.reuseport; the
 * kernel spreads the connections), as nginx does with N workers.
 *
 *   bench_http_server [--listen 127.0.0.1:0] [--max-seconds S (900)]
 *                     [--threads N (1)]
 *
 * Prints "port N" on its first line of stdout; stops on SIGTERM/SIGINT or
 * after --max-seconds.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "sluice.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static void on_http(sl_conn *c, int ev, void *ev_data) {
  if (ev != SL_EV_HTTP_MSG) return;
  const sl_http_msg *m = ev_data;
  if (m->path.len == 6 && memcmp(m->path.ptr, "/hello", 6) == 0)
    sl_http_reply(c, 200, "Content-Type: text/plain\r\n", "Hello, world!", 13);
  else
    sl_http_reply_status(c, 404);
}

#define MAX_LOOPS 16

static double max_s = 900;

/* Run one manager's loop until a signal or --max-seconds. */
static void run(sl_mgr *m) {
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (!stop) {
    sl_mgr_poll(m, 200);
    clock_gettime(CLOCK_MONOTONIC, &t);
    if ((double)(t.tv_sec - t0.tv_sec) > max_s) break;
  }
}

/* Loops 1..N-1: each makes its manager on its own thread (the manager's
 * loop thread) and listens on the port loop 0 got. */
struct loop {
  pthread_t t;
  char addr[64];
  int err, ready;
  pthread_mutex_t *mu;
  pthread_cond_t *cv;
};

static void *loop_main(void *arg) {
  struct loop *lp = arg;
  sl_mgr_opts mo = {.reuseport = 1};
  int err = 0;
  sl_mgr *m = sl_mgr_new(&mo, &err);
  sl_conn *l = m ? sl_http_listen(m, lp->addr, NULL, on_http, NULL, &err) : NULL;
  pthread_mutex_lock(lp->mu);
  lp->err = l ? 0 : (err ? err : SL_ENOMEM);
  lp->ready = 1;
  pthread_cond_signal(lp->cv);
  pthread_mutex_unlock(lp->mu);
  if (l) run(m);
  if (m) sl_mgr_free(m);
  return NULL;
}

int main(int argc, char **argv) {
  const char *listen = "127.0.0.1:0";
  int threads = 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) listen = argv[++i];
    else if (strcmp(argv[i], "--max-seconds") == 0 && i + 1 < argc) max_s = atof(argv[++i]);
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
    else threads = 0;
    if (threads < 1 || threads > MAX_LOOPS) {
      fprintf(stderr, "usage: bench_http_server [--listen H:P] [--max-seconds S] [--threads N (1-16)]\n");
      return 2;
    }
  }
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  int err = 0;
  sl_log_set(SL_LOG_ERROR, NULL, NULL);
  sl_mgr_opts mo = {.reuseport = threads > 1};
  sl_mgr *m = sl_mgr_new(&mo, &err);
  sl_conn *l = m ? sl_http_listen(m, listen, NULL, on_http, NULL, &err) : NULL;
  if (l == NULL) {
    fprintf(stderr, "bench_http_server: %s: %s\n", listen, sl_strerror(err));
    return 1;
  }
  /* The other loops bind the port loop 0 got (port 0 = any). */
  static struct loop loops[MAX_LOOPS];
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
  char host[64] = "127.0.0.1";
  const char *colon = strrchr(listen, ':');
  if (colon && (size_t)(colon - listen) < sizeof(host)) {
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = 0;
  }
  for (int i = 1; i < threads; i++) {
    loops[i].mu = &mu;
    loops[i].cv = &cv;
    snprintf(loops[i].addr, sizeof(loops[i].addr), "%s:%d", host, sl_conn_local_port(l));
    if (pthread_create(&loops[i].t, NULL, loop_main, &loops[i]) != 0) return 1;
  }
  for (int i = 1; i < threads; i++) {
    pthread_mutex_lock(&mu);
    while (!loops[i].ready) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    if (loops[i].err) {
      fprintf(stderr, "bench_http_server: loop %d: %s: %s\n", i, loops[i].addr, sl_strerror(loops[i].err));
      stop = 1;
    }
  }
  if (!stop) {
    printf("port %d\n", sl_conn_local_port(l));
    fflush(stdout);
    run(m);
  }
  stop = 1;
  for (int i = 1; i < threads; i++) pthread_join(loops[i].t, NULL);
  sl_mgr_free(m);
  return 0;
}
