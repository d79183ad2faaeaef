/* Echo server: every byte received is sent back. Reading pauses by itself
 * when a client sends faster than it reads (recv_max), and a client that
 * stops reading is dropped after stall_ms: memory stays bounded.
 *   ./echo_server [127.0.0.1:9000]                                      */
#include <signal.h>
#include <stdio.h>

#include "sluice.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static void on_event(sl_conn *c, int ev, void *ev_data) {
  if (ev == SL_EV_READ) {
    size_t len;
    const char *p = sl_conn_in(c, &len);
    size_t room = sl_conn_room(c);
    size_t n = len < room ? len : room; /* echo what fits; the rest waits */
    if (n && sl_send(c, p, n) == 0) sl_conn_consume(c, n);
  } else if (ev == SL_EV_DRAIN) {
    size_t n = 0;
    (void)ev_data;
    sl_conn_in(c, &n);
    if (n) on_event(c, SL_EV_READ, &n); /* room again: echo the backlog */
  }
}

int main(int argc, char **argv) {
  const char *addr = argc > 1 ? argv[1] : "127.0.0.1:9000";
  int err;
  sl_conn *l = NULL;
  sl_mgr *m = sl_mgr_new(NULL, &err);
  if (m == NULL || (l = sl_listen(m, addr, on_event, NULL, &err)) == NULL) {
    fprintf(stderr, "echo_server: %s: %s\n", addr, sl_strerror(err));
    return 1;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  printf("echoing on port %d\n", sl_conn_local_port(l)); /* the real one for :0 */
  fflush(stdout);
  while (!stop) sl_mgr_poll(m, 1000);
  sl_mgr_free(m);
  return 0;
}
