/*
 * Small-response HTTP server for the requests/s comparison with nginx
 * (bench/fanout.py runs wrk against both, interleaved): GET /hello answers
 * the 13-byte body "Hello, world!" with Content-Type text/plain, keep-alive;
 * anything else is 404. One thread, the library's HTTP server as an
 * application would use it.
 *
 *   bench_http_server [--listen 127.0.0.1:0] [--max-seconds S (900)]
 *
 * Prints "port N" on its first line of stdout; stops on SIGTERM/SIGINT or
 * after --max-seconds.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
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

int main(int argc, char **argv) {
  const char *listen = "127.0.0.1:0";
  double max_s = 900;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) listen = argv[++i];
    else if (strcmp(argv[i], "--max-seconds") == 0 && i + 1 < argc) max_s = atof(argv[++i]);
    else {
      fprintf(stderr, "usage: bench_http_server [--listen H:P] [--max-seconds S]\n");
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
  sl_mgr *m = sl_mgr_new(NULL, &err);
  sl_conn *l = m ? sl_http_listen(m, listen, NULL, on_http, NULL, &err) : NULL;
  if (l == NULL) {
    fprintf(stderr, "bench_http_server: %s: %s\n", listen, sl_strerror(err));
    return 1;
  }
  printf("port %d\n", sl_conn_local_port(l));
  fflush(stdout);
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (!stop) {
    sl_mgr_poll(m, 200);
    clock_gettime(CLOCK_MONOTONIC, &t);
    if ((double)(t.tv_sec - t0.tv_sec) > max_s) break;
  }
  sl_mgr_free(m);
  return 0;
}
