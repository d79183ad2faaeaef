/* Debug-level diagnostics over loopback, captured through the log sink
 * (sl_log_set): an accept, a send refused at send_max, an accept refused
 * at max_conns, a hub eviction and the close reasons each write a line at
 * SL_LOG_DEBUG; at SL_LOG_INFO the same run writes none (the sink is not
 * even called). */
#include "common.h"
#include "sluice.h"
#include "test.h"

static char captured[16384];
static size_t ncap;
static int debug_lines;

static void sink(int level, const char *line, void *arg) {
  (void)arg;
  if (level == SL_LOG_DEBUG) debug_lines++;
  size_t n = strlen(line);
  if (ncap + n + 2 < sizeof(captured)) {
    memcpy(captured + ncap, line, n);
    ncap += n;
    captured[ncap++] = '\n';
    captured[ncap] = '\0';
  }
}

static sl_conn *last_accepted;

static void on_conn(sl_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == SL_EV_ACCEPT) last_accepted = c;
}

/* The same scenario at any level: accept, refused send, refused accept,
 * eviction, closes. */
static void scenario(void) {
  int err = 0;
  sl_mgr_opts mo = {.max_conns = 3, .limits = {.send_max = 1024}};
  sl_mgr *m = sl_mgr_new(&mo, &err);
  CHECK(m != NULL);
  sl_conn *l = sl_listen(m, "127.0.0.1:0", on_conn, NULL, &err);
  CHECK(l != NULL);
  int port = sl_conn_local_port(l);
  last_accepted = NULL;
  int a = test_dial("127.0.0.1", port, 0);
  CHECK(a >= 0);
  WAIT_FOR_MGR(m, last_accepted != NULL, 3000);
  sl_conn *c1 = last_accepted;
  static char big[2048];
  CHECK_EQ(sl_send(c1, big, sizeof(big)), SL_ENOBUFS);
  /* A hub viewer, evicted when the hub goes. */
  last_accepted = NULL;
  int b = test_dial("127.0.0.1", port, 0);
  CHECK(b >= 0);
  WAIT_FOR_MGR(m, last_accepted != NULL, 3000);
  sl_hub *h = sl_hub_new(m, "cam", NULL, &err);
  CHECK(h != NULL);
  CHECK_EQ(sl_hub_attach_conn(h, last_accepted, SL_TRANSPORT_RAW, NULL), 0);
  /* The fourth connection (listener + 2 + this) is over max_conns. */
  int d = test_dial("127.0.0.1", port, 0);
  CHECK(d >= 0);
  sl_mgr_stats st;
  WAIT_FOR_MGR(m, (sl_mgr_stats_get(m, &st), st.rejected == 1), 3000);
  sl_hub_free(h);
  close(a);
  WAIT_FOR_MGR(m, (sl_mgr_stats_get(m, &st), st.conns == 1), 3000);
  close(b);
  close(d);
  sl_mgr_free(m);
  CHECK_MEM_CLEAN();
}

TEST(debug_log_lines_at_debug_level_only) {
  ncap = 0;
  captured[0] = '\0';
  debug_lines = 0;
  sl_log_set(SL_LOG_DEBUG, sink, NULL);
  scenario();
  CHECK_MSG(strstr(captured, "accept 127.0.0.1:") && strstr(captured, ": conn "), "%s", captured);
  CHECK_MSG(strstr(captured, "send of 2048 bytes to 127.0.0.1:") &&
                strstr(captured, "refused: 0 queued, send_max 1024"), "%s", captured);
  CHECK_MSG(strstr(captured, "refused: max_conns reached (3 connections)"), "%s", captured);
  CHECK_MSG(strstr(captured, "hub cam: evict viewer 127.0.0.1:") &&
                strstr(captured, "raw): hub_closed"), "%s", captured);
  CHECK_MSG(strstr(captured, ": evicted, ") != NULL, "%s", captured);
  CHECK_MSG(strstr(captured, ": peer, ") != NULL, "%s", captured);
  CHECK_MSG(strstr(captured, "close listener 127.0.0.1:") &&
                strstr(captured, ": shutdown, "), "%s", captured);
  CHECK_GE(debug_lines, 7);
  /* Above debug: the same run calls the sink for nothing. */
  ncap = 0;
  captured[0] = '\0';
  debug_lines = 0;
  sl_log_set(SL_LOG_INFO, sink, NULL);
  scenario();
  CHECK_EQ(debug_lines, 0);
  CHECK_STR(captured, "");
  sl_log_set(SL_LOG_WARN, NULL, NULL);
}
