/* Iterating a manager's connections (sl_conn_next) and a listener's
 * (sl_conn_listener) over loopback: two listeners with their accepted
 * connections and the clients that dialled them, all in one manager;
 * closing every connection of one listener while iterating, from a timer
 * (prev included); a listener that goes leaves its connections without
 * one; and the counters back to zero. */
#include "common.h"
#include "sluice.h"
#include "test.h"

static int accepted;

static void on_any(sl_conn *c, int ev, void *ev_data) {
  (void)c;
  (void)ev_data;
  if (ev == SL_EV_ACCEPT) accepted++;
}

struct census {
  int listeners, clients, of_a, of_b, closing, total;
};

static struct census count(sl_mgr *m, sl_conn *a, sl_conn *b) {
  struct census k = {0};
  for (sl_conn *c = sl_conn_next(m, NULL); c; c = sl_conn_next(m, c)) {
    k.total++;
    k.listeners += sl_conn_is_listener(c);
    k.clients += sl_conn_is_client(c);
    k.of_a += a && sl_conn_listener(c) == a;
    k.of_b += b && sl_conn_listener(c) == b;
    k.closing += sl_conn_is_closing(c);
  }
  return k;
}

struct closer {
  sl_conn *a;
  int visited, closed;
};

/* From a timer: close every connection of listener A while iterating,
 * each one right after it was returned, and keep going from it. */
static void close_a(sl_mgr *m, void *arg) {
  struct closer *k = arg;
  for (sl_conn *c = sl_conn_next(m, NULL); c; c = sl_conn_next(m, c)) {
    k->visited++;
    if (sl_conn_listener(c) == k->a) {
      sl_conn_close(c, SL_CLOSE_NOW);
      k->closed++;
    }
  }
}

TEST(conn_iterate_manager_and_listener) {
  int err = 0;
  sl_mgr *m = sl_mgr_new(NULL, &err);
  CHECK(m != NULL);
  CHECK(sl_conn_next(m, NULL) == NULL);
  accepted = 0;
  sl_conn *a = sl_listen(m, "127.0.0.1:0", on_any, NULL, &err);
  sl_conn *b = sl_listen(m, "127.0.0.1:0", on_any, NULL, &err);
  CHECK(a && b);
  CHECK(sl_conn_listener(a) == NULL);
  char url[64];
  for (int i = 0; i < 5; i++) {
    snprintf(url, sizeof(url), "127.0.0.1:%d", sl_conn_local_port(i < 3 ? a : b));
    sl_conn *c = sl_connect(m, url, on_any, NULL, &err);
    CHECK(c != NULL);
    CHECK(sl_conn_listener(c) == NULL);
  }
  WAIT_FOR_MGR(m, accepted == 5, 5000);
  struct census k = count(m, a, b);
  CHECK_EQ(k.total, 2 + 5 + 5);
  CHECK_EQ(k.listeners, 2);
  CHECK_EQ(k.clients, 5);
  CHECK_EQ(k.of_a, 3);
  CHECK_EQ(k.of_b, 2);
  CHECK_EQ(k.closing, 0);

  /* Close A's connections from inside the loop, while iterating: every
   * connection is still visited once, the closed ones stay listed (as
   * closing) until the reap at the end of that iteration. */
  struct closer cl = {a, 0, 0};
  CHECK(sl_timer_add(m, 0, 0, close_a, &cl, &err) != NULL);
  WAIT_FOR_MGR(m, cl.visited > 0, 2000);
  CHECK_EQ(cl.visited, 12);
  CHECK_EQ(cl.closed, 3);
  WAIT_FOR_MGR(m, count(m, a, b).total == 6, 2000);
  k = count(m, a, b);
  CHECK_EQ(k.of_a, 0);
  CHECK_EQ(k.of_b, 2);

  /* A listener that goes: its connections stay, with no listener. */
  sl_conn_close(b, SL_CLOSE_NOW);
  k = count(m, a, b);
  CHECK_EQ(k.closing, 1);
  WAIT_FOR_MGR(m, count(m, a, NULL).listeners == 1, 2000);
  int orphans = 0;
  for (sl_conn *c = sl_conn_next(m, NULL); c; c = sl_conn_next(m, c))
    orphans += !sl_conn_is_listener(c) && !sl_conn_is_client(c) && sl_conn_listener(c) == NULL;
  CHECK_EQ(orphans, 2);
  CHECK_MGR_FREE_CLEAN(m);
  CHECK_MEM_CLEAN();
}
