/* The small-device preset (sl_mgr_opts_small): a manager made with it has
 * those limits in force over loopback: the connection limits a listener's
 * accepted connection gets, the budget, and max_conns (connections over it
 * are accepted and reset, counted in `rejected`); changing a field after
 * the preset keeps the rest. */
#include "common.h"
#include "sluice.h"
#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static int opened;

/* A blocking connect from source address `src` (any 127/8 address). */
static int dial_from(const char *src, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  if (fd < 0) return -1;
  inet_pton(AF_INET, src, &a.sin_addr);
  if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) goto fail;
  a.sin_port = htons((uint16_t)port);
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) goto fail;
  return fd;
fail:
  close(fd);
  return -1;
}

static void on_conn(sl_conn *c, int ev, void *ev_data) {
  (void)c;
  (void)ev_data;
  if (ev == SL_EV_ACCEPT) opened++;
}

TEST_T(mgr_opts_small_limits_in_force, 30) {
  test_raise_nofile(256);
  sl_mgr_opts o;
  memset(&o, 0xab, sizeof(o));
  sl_mgr_opts_small(&o);
  CHECK_EQ(o.backend, SL_BACKEND_AUTO);
  CHECK_EQ(o.limits.send_high, 0);
  CHECK_EQ(o.limits.min_rate, 0);
  int err = 0;
  sl_mgr *m = sl_mgr_new(&o, &err);
  CHECK(m != NULL);
  sl_mgr_stats st;
  sl_mgr_stats_get(m, &st);
  CHECK_EQ(st.budget, SL_SMALL_BUDGET);
  opened = 0;
  sl_conn *l = sl_listen(m, "127.0.0.1:0", on_conn, NULL, &err);
  CHECK(l != NULL);
  int port = sl_conn_local_port(l);
  /* One accepted connection: its limits are the preset's. */
  int fds[80];
  fds[0] = test_dial("127.0.0.1", port, 0);
  CHECK(fds[0] >= 0);
  WAIT_FOR_MGR(m, opened == 1, 3000);
  sl_conn *c = NULL;
  for (sl_conn *x = sl_conn_next(m, NULL); x; x = sl_conn_next(m, x))
    if (sl_conn_listener(x) == l) c = x;
  CHECK(c != NULL);
  sl_limits lim;
  sl_conn_get_limits(c, &lim);
  CHECK_EQ(lim.send_max, SL_SMALL_SEND_MAX);
  CHECK_EQ(lim.send_high, SL_SMALL_SEND_MAX / 2);
  CHECK_EQ(lim.recv_max, SL_SMALL_RECV_MAX);
  CHECK_EQ(lim.idle_ms, SL_SMALL_IDLE_MS);
  CHECK_EQ(lim.stall_ms, SL_SMALL_STALL_MS);
  /* send_max refuses a send over it, queueing nothing. */
  static char big[SL_SMALL_SEND_MAX + 1];
  CHECK_EQ(sl_send(c, big, sizeof(big)), SL_ENOBUFS);
  CHECK_EQ(sl_conn_queued(c), 0);
  /* max_conns: the listener and 63 accepted fit; the rest are refused.
   * max_per_ip (16) would refuse first from one address: 127.0.0.x are
   * all loopback, so dial from several source addresses. */
  int n = 1;
  for (int i = 1; i < 75; i++) {
    char src[32];
    snprintf(src, sizeof(src), "127.0.%d.%d", 1 + i / 10, 1 + i % 10);
    fds[n] = dial_from(src, port);
    CHECK(fds[n] >= 0);
    n++;
  }
  WAIT_FOR_MGR(m, (sl_mgr_stats_get(m, &st), st.accepted + st.rejected == 75), 5000);
  CHECK_EQ(st.conns, SL_SMALL_MAX_CONNS);
  CHECK_EQ(st.rejected, 75 - (SL_SMALL_MAX_CONNS - 1));
  for (int i = 0; i < n; i++) close(fds[i]);
  WAIT_FOR_MGR(m, (sl_mgr_stats_get(m, &st), st.conns == 1), 5000);
  CHECK_MGR_FREE_CLEAN(m);
  CHECK_MEM_CLEAN();
}
