/* Loopback integration tests of the core: real sockets on 127.0.0.1 and
 * ::1, each run with the epoll and the poll backend.
 *
 * No test waits a fixed time for something to happen: it runs the loop
 * until the condition holds (WAIT_FOR_MGR, generous bounds that only a
 * hang reaches). Checks that nothing happens run a fixed number of loop
 * iterations (run_iters). The idle deadline runs on the fake clock. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h" /* the fake clock hook, for the idle test */
#include "common.h"
#include "sluice.h"

#define BOTH(name, timeout)                                             \
  static void name(int backend);                                        \
  TEST_T(name##_epoll, timeout) { name(SL_BACKEND_EPOLL); }             \
  TEST_T(name##_poll, timeout) { name(SL_BACKEND_POLL); }               \
  static void name(int backend)

/* Read what is available without blocking; returns bytes read, -1 at EOF
 * or reset. */
static long raw_read_some(int fd, size_t max) {
  char buf[65536];
  long total = 0;
  while ((size_t)total < max) {
    size_t want = max - (size_t)total < sizeof(buf) ? max - (size_t)total : sizeof(buf);
    ssize_t n = recv(fd, buf, want, MSG_DONTWAIT);
    if (n > 0) total += n;
    else if (n == 0) return total ? total : -1;
    else return (errno == EAGAIN || errno == EWOULDBLOCK) ? total : -1;
  }
  return total;
}

/* `n` loop iterations of up to 5 ms each: for checks that something does
 * NOT happen (no extra read, no event), which no condition can wait for. */
static void run_iters(sl_mgr *m, int n) {
  for (int i = 0; i < n; i++) sl_mgr_poll(m, 5);
}

/* Bytes readable from fd within the loop's progress, until `want` have
 * arrived (5 s at most); returns how many did. */
static long read_until(sl_mgr *m, int fd, long want) {
  long got = 0, r = 0;
  WAIT_FOR_MGR(m, (r = raw_read_some(fd, 1 << 20)) < 0 || (got += r) >= want, 5000);
  return got;
}

static void check_all_freed(sl_mgr *m) { CHECK_MGR_FREE_CLEAN(m); }

/* Connections the manager holds, listeners included. */
static size_t conns(sl_mgr *m) {
  sl_mgr_stats st;
  sl_mgr_stats_get(m, &st);
  return st.conns;
}

/* ---- a sender that pushes as fast as the handler allows ---- */

struct flood {
  int fulls, drains, closes, refused, close_reason, timeouts;
  size_t max_queued;
  sl_buf *chunk;
  sl_conn *c;
};
static struct flood fl;

static void push_all(sl_conn *c) {
  for (;;) {
    int rc = sl_send_buf(c, fl.chunk, 0, sl_buf_len(fl.chunk));
    size_t q = sl_conn_queued(c);
    if (q > fl.max_queued) fl.max_queued = q;
    if (rc != 0) {
      CHECK(rc == SL_ENOBUFS);
      fl.refused++;
      break;
    }
  }
}

static void flood_ev(sl_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  switch (ev) {
    case SL_EV_ACCEPT: fl.c = c; push_all(c); break;
    case SL_EV_FULL: fl.fulls++; break;
    case SL_EV_DRAIN: fl.drains++; push_all(c); break;
    case SL_EV_TIMEOUT: fl.timeouts++; break;
    case SL_EV_CLOSE:
      if (!sl_conn_is_listener(c)) {
        fl.closes++;
        fl.close_reason = sl_conn_close_reason(c);
        fl.c = NULL;
      }
      break;
  }
}

BOTH(stalled_peer_is_bounded_then_closed, 30) {
  sl_limits lim = {.send_max = 256 * 1024, .stall_ms = 400};
  sl_mgr_opts o = {.backend = backend, .limits = lim};
  sl_mgr *m = sl_mgr_new(&o, NULL);
  CHECK(m != NULL);
  CHECK_STR(sl_mgr_backend(m), backend == SL_BACKEND_POLL ? "poll" : "epoll");
  memset(&fl, 0, sizeof(fl));
  fl.chunk = sl_buf_new(16 * 1024);
  memset(sl_buf_data(fl.chunk), 'z', 16 * 1024);
  sl_conn *l = sl_listen(m, "127.0.0.1:0", flood_ev, NULL, NULL);
  CHECK(l != NULL);
  int fd = test_connect(sl_conn_local_port(l), 4096);
  /* The kernel's buffers absorb a few rounds; then it is stuck full.
   * FULL and DRAIN come in pairs, and the last FULL is unanswered. */
  WAIT_FOR_MGR(m, fl.c != NULL && fl.fulls >= 1 && fl.refused > 0, 5000);
  run_iters(m, 10);
  CHECK_EQ(fl.fulls, fl.drains + 1);
  int drains0 = fl.drains;
  CHECK(fl.refused > 0);
  /* The hard cap holds exactly. */
  CHECK_LE(fl.max_queued, lim.send_max);
  sl_mgr_stats st;
  sl_mgr_stats_get(m, &st);
  /* Held: the one shared chunk (counted once) + nothing owned. */
  CHECK_LE(st.held, 16 * 1024 + 256);
  CHECK_LE(st.queued, lim.send_max);

  /* The peer reads: output drains below send_low, and DRAIN fires. */
  uint64_t t0 = test_now_ms();
  while (fl.drains == drains0 && test_now_ms() - t0 < 5000) {
    CHECK(raw_read_some(fd, 1 << 20) >= 0);
    sl_mgr_poll(m, 5);
  }
  CHECK(fl.drains > drains0);
  run_iters(m, 4);
  CHECK_EQ(fl.fulls, fl.drains + 1); /* refilled on DRAIN: FULL again */

  /* The peer stalls again: closed after stall_ms, with RST. */
  t0 = test_now_ms();
  while (fl.c && test_now_ms() - t0 < 3000) sl_mgr_poll(m, 20);
  uint64_t took = test_now_ms() - t0;
  CHECK(fl.c == NULL);
  CHECK_EQ(fl.close_reason, SL_CLOSE_STALL);
  CHECK_EQ(fl.timeouts, 1);
  CHECK(took >= 300);
  sl_mgr_stats_get(m, &st);
  CHECK_EQ(st.closed_by[SL_CLOSE_STALL], 1);
  CHECK_EQ(st.held, 0);
  CHECK_EQ(st.queued, 0);
  /* The client sees the reset (after whatever was in flight). */
  long r;
  t0 = test_now_ms();
  while ((r = raw_read_some(fd, 1 << 20)) >= 0 && test_now_ms() - t0 < 2000) {
  }
  CHECK_EQ(r, -1);
  close(fd);
  sl_buf_unref(fl.chunk);
  check_all_freed(m);
}

/* ---- input pauses at recv_max ---- */

static size_t last_in;
static int reads;
static void hold_ev(sl_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == SL_EV_READ) {
    reads++;
    sl_conn_in(c, &last_in);
  }
}

BOTH(fast_sender_is_paused_at_recv_max, 30) {
  sl_limits lim = {.recv_max = 32 * 1024};
  sl_mgr_opts o = {.backend = backend, .limits = lim};
  sl_mgr *m = sl_mgr_new(&o, NULL);
  sl_conn *l = sl_listen(m, "127.0.0.1:0", hold_ev, NULL, NULL);
  int fd = test_connect(sl_conn_local_port(l), 0);
  int sz = 16384;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
  fcntl(fd, F_SETFL, O_NONBLOCK);
  char junk[65536];
  memset(junk, 'a', sizeof(junk));
  size_t sent = 0;
  last_in = 0;
  reads = 0;
  int blocked = 0;
  for (int round = 0; round < 400 && !blocked; round++) {
    ssize_t n = send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
    if (n > 0) sent += (size_t)n;
    sl_mgr_poll(m, 2);
    if (n < 0 && errno == EAGAIN && last_in == lim.recv_max) {
      run_iters(m, 10);
      n = send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
      if (n < 0) blocked = 1;
      else sent += (size_t)n;
    }
  }
  CHECK(blocked);
  CHECK_EQ(last_in, lim.recv_max);
  sl_mgr_stats st;
  sl_mgr_stats_get(m, &st);
  CHECK_LE(st.in, lim.recv_max);
  /* The peer's bytes wait in the kernel, not in our memory. */
  CHECK(sent > lim.recv_max);
  int reads_before = reads;
  run_iters(m, 20);
  CHECK_EQ(reads, reads_before); /* no busy loop on a paused reader */
  close(fd);
  sl_mgr_free(m);
  CHECK_MEM_CLEAN();
}

/* ---- consuming input resumes reading ---- */

static size_t consumed;
static void eat_ev(sl_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == SL_EV_READ) {
    size_t n;
    sl_conn_in(c, &n);
    consumed += n;
    sl_conn_consume(c, n);
  }
}

BOTH(consumer_receives_everything, 30) {
  sl_limits lim = {.recv_max = 8 * 1024};
  sl_mgr_opts o = {.backend = backend, .limits = lim};
  sl_mgr *m = sl_mgr_new(&o, NULL);
  sl_conn *l = sl_listen(m, "127.0.0.1:0", eat_ev, NULL, NULL);
  int fd = test_connect(sl_conn_local_port(l), 0);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  char junk[8192];
  memset(junk, 'b', sizeof(junk));
  size_t sent = 0;
  consumed = 0;
  while (sent < 4u << 20) {
    ssize_t n = send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
    if (n > 0) sent += (size_t)n;
    sl_mgr_poll(m, 0);
  }
  WAIT_FOR_MGR(m, consumed >= sent, 5000);
  CHECK_EQ(consumed, sent);
  close(fd);
  WAIT_FOR_MGR(m, conns(m) == 1, 5000);
  check_all_freed(m);
}

/* ---- send_max refuses and changes nothing; sendv is atomic ---- */

static sl_conn *accepted;
static int closes, keep_reads;
static void keep_ev(sl_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == SL_EV_ACCEPT) accepted = c;
  if (ev == SL_EV_READ) keep_reads++;
  if (ev == SL_EV_CLOSE && !sl_conn_is_listener(c)) {
    closes++;
    if (c == accepted) accepted = NULL;
  }
}

BOTH(send_limits_refuse_without_side_effects, 30) {
  sl_limits lim = {.send_max = 10000};
  sl_mgr_opts o = {.backend = backend, .limits = lim, .budget = 64 * 1024};
  sl_mgr *m = sl_mgr_new(&o, NULL);
  sl_conn *l = sl_listen(m, "127.0.0.1:0", keep_ev, NULL, NULL);
  accepted = NULL;
  int fd = test_connect(sl_conn_local_port(l), 0);
  WAIT_FOR_MGR(m, accepted != NULL, 5000);
  sl_conn *c = accepted;
  char big[20000];
  memset(big, 'q', sizeof(big));
  CHECK_EQ(sl_send(c, big, 6000), 0);
  CHECK_EQ(sl_conn_queued(c), 6000);
  CHECK_EQ(sl_conn_room(c), 4000);
  CHECK_EQ(sl_send(c, big, 4001), SL_ENOBUFS);
  CHECK_EQ(sl_conn_queued(c), 6000);
  sl_buf *b = sl_buf_new(3000);
  sl_part parts[2] = {{big, NULL, 0, 1500}, {NULL, b, 0, 3000}};
  CHECK_EQ(sl_sendv(c, parts, 2), SL_ENOBUFS); /* 4500 > room */
  CHECK_EQ(sl_conn_queued(c), 6000);
  CHECK_EQ(sl_buf_refs(b), 1);
  parts[0].len = 1000;
  CHECK_EQ(sl_sendv(c, parts, 2), 0);
  CHECK_EQ(sl_conn_queued(c), 10000);
  CHECK_EQ(sl_buf_refs(b), 2);
  CHECK_EQ(sl_send_buf(c, b, 2999, 2), SL_ERANGE);
  CHECK_EQ(sl_send(c, "x", 1), SL_ENOBUFS);
  sl_mgr_stats st;
  sl_mgr_stats_get(m, &st);
  CHECK(st.refused_sends >= 3);
  /* Budget: a second connection cannot push held bytes past 64 KiB. */
  CHECK_EQ(read_until(m, fd, 10000), 10000); /* flushed to the client */
  sl_limits biglim = {.send_max = 1 << 20};
  CHECK_EQ(sl_conn_set_limits(c, &biglim), 0);
  sl_buf *huge = sl_buf_new(80 * 1024);
  CHECK_EQ(sl_send_buf(c, huge, 0, 80 * 1024), SL_EBUDGET);
  sl_mgr_set_budget(m, 0);
  CHECK_EQ(sl_send_buf(c, huge, 0, 80 * 1024), 0);
  sl_buf_unref(huge);
  sl_buf_unref(b);
  sl_limits bad = {.send_max = 100, .send_high = 200};
  CHECK_EQ(sl_conn_set_limits(c, &bad), SL_EINVAL);
  close(fd);
  WAIT_FOR_MGR(m, accepted == NULL, 5000);
  check_all_freed(m);
}

/* ---- idle timeout ---- */

BOTH(idle_connection_is_closed, 30) {
  sl_limits lim = {.idle_ms = 200};
  sl_mgr_opts o = {.backend = backend, .limits = lim};
  sl_mgr *m = sl_mgr_new(&o, NULL);
  /* The fake clock: the deadline depends on how far the test moves it, not
   * on how busy the machine is. Sockets still run in real time. */
  test_clock_install(m, 1000000);
  sl_conn *l = sl_listen(m, "127.0.0.1:0", keep_ev, NULL, NULL);
  accepted = NULL;
  closes = 0;
  keep_reads = 0;
  int fd = test_connect(sl_conn_local_port(l), 0);
  WAIT_FOR_MGR(m, accepted != NULL, 5000);
  uint64_t id = sl_conn_id(accepted);
  /* Traffic keeps it open: 4 x 150 ms is past the 200 ms deadline in
   * total, but no gap between reads reaches it ... */
  for (int i = 0; i < 4; i++) {
    int before = keep_reads;
    CHECK_EQ(send(fd, "x", 1, 0), 1);
    WAIT_FOR_MGR(m, keep_reads > before, 5000);
    test_clock_advance(m, 150, 10);
    CHECK(sl_conn_find(m, id) != NULL);
  }
  /* ... and busy (a stream in progress) keeps it open without traffic. */
  sl_conn_set_busy(accepted, 1);
  test_clock_advance(m, 400, 10);
  CHECK(sl_conn_find(m, id) != NULL);
  sl_conn_set_busy(accepted, 0);
  /* Not busy: open until the deadline, closed once it passed. */
  test_clock_advance(m, 150, 10);
  CHECK(sl_conn_find(m, id) != NULL);
  test_clock_advance(m, 100, 10);
  CHECK(sl_conn_find(m, id) == NULL);
  CHECK_EQ(closes, 1);
  sl_mgr_stats st;
  sl_mgr_stats_get(m, &st);
  CHECK_EQ(st.closed_by[SL_CLOSE_IDLE], 1);
  close(fd);
  check_all_freed(m);
}

/* ---- connect by name, IPv6, echo, graceful close ---- */

static int client_connected, client_closed, client_err;
static char client_got[256];
static size_t client_len;

static void echo_ev(sl_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == SL_EV_READ) {
    size_t n;
    const char *p = sl_conn_in(c, &n);
    if (sl_send(c, p, n) == 0) sl_conn_consume(c, n);
  }
}

static void client_ev(sl_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == SL_EV_CONNECT) {
    client_connected = 1;
    sl_printf(c, "hello %d", 42);
  } else if (ev == SL_EV_READ) {
    size_t n;
    const char *p = sl_conn_in(c, &n);
    if (client_len + n < sizeof(client_got)) {
      memcpy(client_got + client_len, p, n);
      client_len += n;
    }
    sl_conn_consume(c, n);
    if (client_len == 8) sl_conn_close(c, SL_CLOSE_FLUSH);
  } else if (ev == SL_EV_CLOSE) {
    client_closed = 1;
    client_err = sl_conn_error(c);
  }
}

static void run_echo(int backend, const char *listen_url, const char *connect_fmt) {
  sl_mgr_opts o = {.backend = backend};
  sl_mgr *m = sl_mgr_new(&o, NULL);
  int err = 0;
  sl_conn *l = sl_listen(m, listen_url, echo_ev, NULL, &err);
  CHECK_MSG(l != NULL, "listen %s: %s", listen_url, sl_strerror(err));
  char url[128];
  snprintf(url, sizeof(url), connect_fmt, sl_conn_local_port(l));
  client_connected = client_closed = 0;
  client_len = 0;
  sl_conn *c = sl_connect(m, url, client_ev, NULL, &err);
  CHECK(c != NULL);
  CHECK(sl_conn_is_client(c));
  WAIT_FOR_MGR(m, client_closed, 5000);
  CHECK(client_connected);
  CHECK_EQ(client_len, 8);
  CHECK_MEM(client_got, "hello 42", 8);
  WAIT_FOR_MGR(m, conns(m) == 1, 5000); /* the server side is gone too */
  check_all_freed(m);
}

BOTH(echo_ipv4_literal, 30) { run_echo(backend, "127.0.0.1:0", "127.0.0.1:%d"); }
BOTH(echo_ipv6_literal, 30) { run_echo(backend, "[::1]:0", "tcp://[::1]:%d"); }
BOTH(echo_by_host_name, 30) { run_echo(backend, "127.0.0.1:0", "http://localhost:%d/x"); }

BOTH(connect_refused_reports_error, 30) {
  sl_mgr_opts o = {.backend = backend};
  sl_mgr *m = sl_mgr_new(&o, NULL);
  /* Find a free port by binding and closing. */
  sl_conn *l = sl_listen(m, "127.0.0.1:0", echo_ev, NULL, NULL);
  int port = sl_conn_local_port(l);
  sl_conn_close(l, SL_CLOSE_NOW);
  WAIT_FOR_MGR(m, conns(m) == 0, 5000);
  char url[64];
  snprintf(url, sizeof(url), "127.0.0.1:%d", port);
  client_closed = client_connected = 0;
  client_err = 0;
  CHECK(sl_connect(m, url, client_ev, NULL, NULL) != NULL);
  WAIT_FOR_MGR(m, client_closed, 5000);
  CHECK(!client_connected);
  CHECK_EQ(client_err, SL_ECONNREFUSED);
  int err = 0;
  CHECK(sl_connect(m, "no-port-here", client_ev, NULL, &err) == NULL);
  CHECK_EQ(err, SL_EURL);
  CHECK(sl_listen(m, "[::1", echo_ev, NULL, &err) == NULL);
  CHECK_EQ(err, SL_EURL);
  check_all_freed(m);
}

BOTH(listen_port_in_use_is_refused, 30) {
  sl_mgr_opts o = {.backend = backend};
  sl_mgr *m = sl_mgr_new(&o, NULL);
  sl_conn *l = sl_listen(m, "127.0.0.1:0", echo_ev, NULL, NULL);
  char url[64];
  snprintf(url, sizeof(url), "127.0.0.1:%d", sl_conn_local_port(l));
  int err = 0;
  CHECK(sl_listen(m, url, echo_ev, NULL, &err) == NULL);
  CHECK_EQ(err, SL_EADDRINUSE);
  check_all_freed(m);
}

/* ---- connection limits ---- */

BOTH(max_conns_and_per_ip_limits, 30) {
  sl_mgr_opts o = {.backend = backend, .max_conns = 4, .max_per_ip = 2};
  sl_mgr *m = sl_mgr_new(&o, NULL);
  sl_conn *l = sl_listen(m, "127.0.0.1:0", keep_ev, NULL, NULL);
  int port = sl_conn_local_port(l);
  int fds[4];
  for (int i = 0; i < 4; i++) fds[i] = test_connect(port, 0);
  sl_mgr_stats st;
  WAIT_FOR_MGR(m, (sl_mgr_stats_get(m, &st), st.accepted + st.rejected >= 4), 5000);
  CHECK_EQ(st.accepted, 2);  /* per-IP limit: 2 */
  CHECK_EQ(st.rejected, 2);
  CHECK_EQ(st.conns, 3);     /* listener + 2 */
  /* The refused ones see a reset. */
  /* A reset, not the 5 s receive timeout (which also returns -1). */
  char b;
  errno = 0;
  CHECK_EQ(recv(fds[3], &b, 1, 0), -1);
  CHECK_MSG(errno == ECONNRESET, "recv: %s", strerror(errno));
  for (int i = 0; i < 4; i++) close(fds[i]);
  WAIT_FOR_MGR(m, conns(m) == 1, 5000);
  check_all_freed(m);
}

/* ---- wakeup message to a connection ---- */

static char woke[32];
static void wake_ev(sl_conn *c, int ev, void *ev_data) {
  if (ev == SL_EV_ACCEPT) accepted = c;
  if (ev == SL_EV_WAKEUP) {
    sl_str *s = ev_data;
    memcpy(woke, s->ptr, s->len < 31 ? s->len : 31);
  }
}

BOTH(wakeup_reaches_connection, 30) {
  sl_mgr_opts o = {.backend = backend};
  sl_mgr *m = sl_mgr_new(&o, NULL);
  sl_conn *l = sl_listen(m, "127.0.0.1:0", wake_ev, NULL, NULL);
  accepted = NULL;
  int fd = test_connect(sl_conn_local_port(l), 0);
  WAIT_FOR_MGR(m, accepted != NULL, 5000);
  memset(woke, 0, sizeof(woke));
  CHECK_EQ(sl_mgr_wakeup(m, sl_conn_id(accepted), "frame ready", 11), 0);
  CHECK_EQ(sl_mgr_wakeup(m, 999999, "nobody", 6), 0);
  WAIT_FOR_MGR(m, woke[0] != '\0', 5000);
  CHECK_STR(woke, "frame ready");
  close(fd);
  WAIT_FOR_MGR(m, conns(m) == 1, 5000);
  check_all_freed(m);
}

/* ---- many peers leaving at once ------------------------------------ */

/* Each accepted connection is a "viewer": it gets a few bytes and never
 * sends anything, so it holds no input buffer. */
static void viewer_ev(sl_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  if (ev == SL_EV_ACCEPT) sl_send(c, "hello\n", 6);
}

/* 300 viewers close at once: reading each EOF allocates nothing (it goes
 * into the stack first), so the manager's peak is what it was while they
 * were connected, and no input bytes were ever held. */
BOTH(mass_disconnect_allocates_no_input, 60) {
  enum { N = 300 };
  test_raise_nofile(2 * N + 64);
  int err = 0;
  sl_mgr_opts mo = {.backend = backend};
  sl_mgr *m = sl_mgr_new(&mo, &err);
  CHECK(m != NULL);
  sl_conn *l = sl_listen(m, "127.0.0.1:0", viewer_ev, NULL, &err);
  CHECK_MSG(l != NULL, "listen: %s", sl_strerror(err));
  int port = sl_conn_local_port(l);
  static int fds[N];
  for (int i = 0; i < N; i++) fds[i] = test_connect(port, 0);
  WAIT_FOR_MGR(m, conns(m) == N + 1, 10000);
  /* Every greeting written: nothing queued, nothing read. */
  sl_mgr_stats st;
  WAIT_FOR_MGR(m, (sl_mgr_stats_get(m, &st), st.queued == 0), 5000);
  size_t peak = st.peak;
  CHECK_EQ(st.in, 0);
  for (int i = 0; i < N; i++) close(fds[i]);
  WAIT_FOR_MGR(m, conns(m) == 1, 10000);
  sl_mgr_stats_get(m, &st);
  CHECK_MSG(st.peak == peak, "peak rose from %zu to %zu while %d peers left", peak,
            st.peak, N);
  CHECK_EQ(st.in, 0);
  check_all_freed(m);
}
