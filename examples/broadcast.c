/* Broadcast: a timer sends one shared 64 KB message to every client ten
 * times a second. The message is stored once (sl_buf) and referenced by
 * every queue. A client that falls behind (no room) skips messages instead
 * of growing a backlog; one that stops reading is closed after stall_ms.
 *   ./broadcast [127.0.0.1:9001]  then: nc 127.0.0.1 9001 | pv >/dev/null */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "sluice.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static sl_conn *clients[1024];
static size_t nclients, skipped;

static void on_event(sl_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == SL_EV_ACCEPT && nclients < 1024) clients[nclients++] = c;
  if (ev == SL_EV_CLOSE)
    for (size_t i = 0; i < nclients; i++)
      if (clients[i] == c) clients[i] = clients[--nclients];
}

static void tick(sl_mgr *m, void *arg) {
  sl_buf *msg = sl_buf_new(64 * 1024);
  (void)m, (void)arg;
  if (msg == NULL) return;
  memset(sl_buf_data(msg), 'x', sl_buf_len(msg));
  for (size_t i = 0; i < nclients; i++) /* backpressure: skip, don't pile up */
    if (sl_conn_room(clients[i]) < sl_buf_len(msg) ||
        sl_send_buf(clients[i], msg, 0, sl_buf_len(msg)) != 0)
      skipped++;
  sl_buf_unref(msg); /* the queues hold their own references */
}

int main(int argc, char **argv) {
  const char *addr = argc > 1 ? argv[1] : "127.0.0.1:9001";
  sl_limits lim = {.send_max = 256 * 1024, .stall_ms = 10000};
  sl_mgr_opts o = {.limits = lim};
  int err;
  sl_mgr *m = sl_mgr_new(&o, &err);
  if (m == NULL || sl_listen(m, addr, on_event, NULL, &err) == NULL) {
    fprintf(stderr, "broadcast: %s: %s\n", addr, sl_strerror(err));
    return 1;
  }
  sl_timer_add(m, 100, SL_TIMER_REPEAT, tick, NULL, NULL);
  signal(SIGINT, on_signal);
  printf("broadcasting on %s\n", addr);
  while (!stop) sl_mgr_poll(m, 1000);
  printf("skipped %zu sends to slow clients\n", skipped);
  sl_mgr_free(m);
  return 0;
}
