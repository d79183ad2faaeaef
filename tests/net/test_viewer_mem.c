/*
 * What an idle viewer costs, from the library's exact counters
 * (sl_mem_stats): many MJPEG and WebSocket viewers of a hub with one
 * published frame, each having received that frame and then sitting idle.
 * The cost per viewer is (total with the viewers - total before) / viewers,
 * bounded at 2 KiB; the counters return to the baseline when they leave.
 * And a thousand viewers of a streaming hub that leave at once do not push
 * the library's peak above what they held while connected.
 *
 * Viewers are raw sockets of the test thread, read without blocking between
 * sl_mgr_poll calls.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"
#include "sluice.h"
#include "test.h"

/* The budget of an idle viewer: connection, subscriber, protocol state. */
#define VIEWER_MAX_BYTES 2048u
#define FRAME_LEN 4000u

struct vm {
  sl_mgr *m;
  sl_conn *l;
  sl_hub *h;
  int port;
  int attached, ws_msgs;
};
static struct vm g;

static void on_http(sl_conn *c, int ev, void *ev_data) {
  if (ev == SL_EV_WS_MSG) {
    g.ws_msgs++;
    return;
  }
  if (ev != SL_EV_HTTP_MSG) return;
  const sl_http_msg *hm = ev_data;
  int t = -1;
  if (sl_http_match(hm, "/stream.mjpg", NULL, 0)) t = SL_TRANSPORT_MJPEG;
  else if (sl_http_match(hm, "/ws", NULL, 0)) t = SL_TRANSPORT_WS;
  if (t < 0) {
    sl_http_reply_status(c, 404);
    return;
  }
  CHECK_EQ(sl_hub_attach(g.h, c, hm, t, NULL, NULL), 0);
  /* The request stays readable until the handler returns (an access log
   * written after the attach). */
  CHECK(sl_http_get_header(hm, "Host") != NULL);
  CHECK(hm->path.len > 0 && hm->path.ptr[0] == '/');
  g.attached++;
}

static void publish(size_t len, uint64_t ts) {
  sl_buf *b = sl_buf_new(len);
  CHECK(b != NULL);
  memset(sl_buf_data(b), 0x5a, len);
  CHECK_EQ(sl_hub_publish(g.h, b, ts, 0), 0);
  sl_buf_unref(b);
}

static void vm_start_on(int backend) {
  int err = 0;
  memset(&g, 0, sizeof(g));
  sl_mgr_opts mo = {.backend = backend};
  g.m = sl_mgr_new(&mo, &err);
  CHECK_MSG(g.m != NULL, "sl_mgr_new: %s", sl_strerror(err));
  g.l = sl_http_listen(g.m, "127.0.0.1:0", NULL, on_http, NULL, &err);
  CHECK_MSG(g.l != NULL, "sl_http_listen: %s", sl_strerror(err));
  g.port = sl_conn_local_port(g.l);
  sl_hub_opts ho = {.max_subs = 2000};
  g.h = sl_hub_new(g.m, "cam", &ho, &err);
  CHECK_MSG(g.h != NULL, "sl_hub_new: %s", sl_strerror(err));
}

static void vm_start(void) { vm_start_on(SL_BACKEND_AUTO); }

static void vm_stop(void) {
  sl_hub_free(g.h);
  CHECK_MGR_FREE_CLEAN(g.m);
}

static size_t mem_total(void) {
  sl_mem_stats ms;
  sl_mem_stats_get(&ms);
  return ms.total;
}

/* The manager settled: nothing queued and the total unchanged over a few
 * loop passes. Returns that total. */
static size_t settled_total(void) {
  size_t prev = SIZE_MAX, now;
  sl_mgr_stats st;
  for (int same = 0; same < 3;) {
    test_mgr_settle(g.m);
    sl_mgr_stats_get(g.m, &st);
    now = mem_total();
    same = (now == prev && st.queued == 0) ? same + 1 : 0;
    prev = now;
  }
  return now;
}

static size_t hub_subs(void) {
  sl_hub_stats hs;
  sl_hub_stats_get(g.h, &hs);
  return hs.subs;
}

/* Read what is there on each socket; returns the bytes read in total. */
static size_t drain(const int *fds, size_t *got, int n) {
  static char sink[65536];
  size_t all = 0;
  for (int i = 0; i < n; i++) {
    ssize_t r;
    while ((r = recv(fds[i], sink, sizeof(sink), MSG_DONTWAIT)) > 0) {
      got[i] += (size_t)r;
      all += (size_t)r;
    }
  }
  return all;
}

static int all_got(const size_t *got, int n, size_t min) {
  for (int i = 0; i < n; i++)
    if (got[i] < min) return 0;
  return 1;
}

static int drained_all(const int *fds, size_t *got, int n, size_t min) {
  drain(fds, got, n);
  return all_got(got, n, min);
}

/* A masked client text frame of `len` (< 126) bytes. */
static size_t ws_text(unsigned char *out, const char *s) {
  size_t len = strlen(s);
  const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
  out[0] = 0x81;
  out[1] = (unsigned char)(0x80 | len);
  memcpy(out + 2, mask, 4);
  for (size_t i = 0; i < len; i++) out[6 + i] = (unsigned char)(s[i] ^ mask[i % 4]);
  return 6 + len;
}

/* `n` viewers of one transport connect, get the one frame and sit idle:
 * the bytes each costs, printed and bounded; then they leave and the
 * total comes back. */
static void idle_viewers(int n, int ws, int backend) {
  test_raise_nofile(2 * n + 64);
  vm_start_on(backend);
  publish(FRAME_LEN, 1);
  size_t before = settled_total();
  int *fds = calloc((size_t)n, sizeof(int));
  size_t *got = calloc((size_t)n, sizeof(size_t));
  CHECK(fds != NULL && got != NULL);
  char req[256];
  int rl = ws ? snprintf(req, sizeof(req),
                         "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n")
              : snprintf(req, sizeof(req),
                         "GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "User-Agent: test\r\nAccept: */*\r\n\r\n");
  for (int i = 0; i < n; i++) {
    fds[i] = test_connect(g.port, 0);
    CHECK_EQ(test_send_all(fds[i], req, (size_t)rl), 0);
    if (i % 50 == 49) sl_mgr_poll(g.m, 0);
  }
  /* Every viewer has its response head and the whole frame. */
  WAIT_FOR_MGR(g.m, g.attached == n && drained_all(fds, got, n, FRAME_LEN + 100), 20000);
  if (ws) {
    /* Half of them say something once: the message is delivered, and
     * what assembled it is not kept for an idle connection. */
    unsigned char f[64];
    size_t fl = ws_text(f, "pause please");
    for (int i = 0; i < n; i += 2) CHECK_EQ(test_send_all(fds[i], f, fl), 0);
    WAIT_FOR_MGR(g.m, g.ws_msgs == (n + 1) / 2, 10000);
  }
  size_t with = settled_total();
  drain(fds, got, n);
  CHECK_EQ(hub_subs(), (size_t)n);
  CHECK(with >= before);
  size_t per = (with - before) / (size_t)n;
  printf("  %s: %zu bytes per idle viewer (%zu -> %zu, %d viewers)\n",
         ws ? "WebSocket" : "MJPEG", per, before, with, n);
  CHECK_MSG(per <= VIEWER_MAX_BYTES, "an idle %s viewer costs %zu bytes (budget %u)",
            ws ? "WebSocket" : "MJPEG", per, VIEWER_MAX_BYTES);
  for (int i = 0; i < n; i++) close(fds[i]);
  WAIT_FOR_MGR(g.m, hub_subs() == 0 && sl_conn_next(g.m, sl_conn_next(g.m, NULL)) == NULL,
               20000);
  size_t after = settled_total();
  CHECK_MSG(after == before, "after the viewers left: %zu bytes, before: %zu", after, before);
  free(fds);
  free(got);
  vm_stop();
}

TEST_T(idle_mjpeg_viewer_costs_under_2k, 90) { idle_viewers(200, 0, SL_BACKEND_AUTO); }
/* The poll(2) fallback's arrays grow with the viewers and shrink when they
 * leave: back to the same total on that backend as well. */
TEST_T(idle_mjpeg_viewer_costs_under_2k_poll, 90) { idle_viewers(200, 0, SL_BACKEND_POLL); }

TEST_T(idle_ws_viewer_costs_under_2k, 90) { idle_viewers(200, 1, SL_BACKEND_AUTO); }

/* A frame every 40 ms (loop clock), for the streaming test. */
static uint64_t stream_seq;
static void produce(sl_mgr *m, void *arg) {
  (void)m, (void)arg;
  publish(FRAME_LEN, ++stream_seq * 40);
}

/* 1000 viewers of a streaming hub, reading; over a window the library's
 * peak is the steady figure they hold (frames and parts in flight
 * included). Then all of them disconnect at once: until the last has gone,
 * the peak stays within 10 % of that figure (reading each EOF, ending each
 * subscription and freeing each connection allocate nothing that adds up
 * across them). */
TEST_T(mass_viewer_disconnect_keeps_peak, 120) {
  enum { N = 1000 };
  long lim = test_raise_nofile(2 * N + 64);
  TEST_NEED(lim >= 2 * N + 64, "RLIMIT_NOFILE too low for 1000 viewers");
  vm_start();
  stream_seq = 0;
  publish(FRAME_LEN, 0);
  sl_timer *prod = sl_timer_add(g.m, 40, SL_TIMER_REPEAT, produce, NULL, NULL);
  CHECK(prod != NULL);
  static int fds[N];
  static size_t got[N];
  memset(got, 0, sizeof(got));
  const char *req = "GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  for (int i = 0; i < N; i++) {
    fds[i] = test_connect(g.port, 0);
    CHECK_EQ(test_send_all(fds[i], req, strlen(req)), 0);
    if (i % 50 == 49) {
      sl_mgr_poll(g.m, 0);
      drain(fds, got, i + 1);
    }
  }
  WAIT_FOR_MGR(g.m, g.attached == N && drained_all(fds, got, N, 3 * FRAME_LEN), 30000);
  /* The steady figure: the peak over a window of streaming to all. */
  sl_mem_peak_reset();
  uint64_t end = test_now_ms() + 500;
  while (test_now_ms() < end) {
    sl_mgr_poll(g.m, 5);
    drain(fds, got, N);
  }
  sl_mem_stats ms;
  sl_mem_stats_get(&ms);
  size_t steady = ms.peak;
  CHECK_EQ(hub_subs(), (size_t)N);
  /* All at once. The producer goes on. */
  sl_mem_peak_reset();
  for (int i = 0; i < N; i++) close(fds[i]);
  WAIT_FOR_MGR(g.m, hub_subs() == 0 && sl_conn_next(g.m, sl_conn_next(g.m, NULL)) == NULL,
               30000);
  sl_mem_stats_get(&ms);
  printf("  steady peak %zu B with %d viewers, peak while they left %zu B\n", steady, N,
         ms.peak);
  CHECK_MSG(ms.peak <= steady + steady / 10,
            "peak %zu while %d viewers left, steady %zu", ms.peak, N, steady);
  sl_timer_free(g.m, prod);
  vm_stop();
}
