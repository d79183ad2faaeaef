/*
 * Several loops on several threads, over real sockets: managers sharing a
 * listening port (sl_mgr_opts.reuseport), and a hub group whose frames
 * reach viewers of every loop, each loop serving its own on its thread.
 * Run under TSan by scripts/ci-tsan.sh (the names hold "thread").
 */
#include <pthread.h>
#include <stdatomic.h>

#include "common.h"
#include "hub_test.h"

struct loop {
  sl_mgr *m;
  sl_conn *l;
  int port;
  sl_hub *h;
  sl_sub_opts so;
  pthread_t t;
  atomic_int stop;
  atomic_int accepted;
  atomic_int attached;
  int running;
};

static void *loop_main(void *arg) {
  struct loop *lp = arg;
  while (!atomic_load(&lp->stop)) sl_mgr_poll(lp->m, 5);
  return NULL;
}

static void loops_start(struct loop *lp, int n) {
  for (int i = 0; i < n; i++) {
    atomic_store(&lp[i].stop, 0);
    CHECK_EQ(pthread_create(&lp[i].t, NULL, loop_main, &lp[i]), 0);
    lp[i].running = 1;
  }
}

static void loops_stop(struct loop *lp, int n) {
  for (int i = 0; i < n; i++) atomic_store(&lp[i].stop, 1);
  for (int i = 0; i < n; i++)
    if (lp[i].running) {
      CHECK_EQ(pthread_join(lp[i].t, NULL), 0);
      lp[i].running = 0;
    }
}

/* The manager holds and queues nothing; free it (the process-wide
 * counters are checked once every manager is gone). */
static void mgr_free_clean(sl_mgr *m) {
  sl_mgr_stats st;
  sl_mgr_stats_get(m, &st);
  CHECK_EQ(st.held, 0);
  CHECK_EQ(st.queued, 0);
  sl_mgr_free(m);
}

static size_t conns_of(sl_mgr *m) {
  sl_mgr_stats st;
  sl_mgr_stats_get(m, &st);
  return st.conns;
}

static void on_tcp(sl_conn *c, int ev, void *ev_data) {
  (void)ev_data;
  struct loop *lp = sl_conn_data(c);
  if (ev == SL_EV_ACCEPT) atomic_fetch_add(&lp->accepted, 1);
}

TEST_T(loops_threads_reuseport_two_managers_share_a_port, 30) {
  enum { N = 50 };
  struct loop lp[2];
  memset(lp, 0, sizeof(lp));
  sl_mgr_opts o = {.reuseport = 1};
  int err = 0;
  char url[64];
  for (int i = 0; i < 2; i++) {
    lp[i].m = sl_mgr_new(&o, &err);
    CHECK_MSG(lp[i].m != NULL, "sl_mgr_new: %s", sl_strerror(err));
    /* Port 0: the first picks it, the second binds the same number. */
    snprintf(url, sizeof(url), "127.0.0.1:%d", i ? lp[0].port : 0);
    lp[i].l = sl_listen(lp[i].m, url, on_tcp, &lp[i], &err);
    CHECK_MSG(lp[i].l != NULL, "sl_listen %s: %s", url, sl_strerror(err));
    lp[i].port = sl_conn_local_port(lp[i].l);
  }
  CHECK_EQ(lp[1].port, lp[0].port);
  /* A manager without the option cannot take the port. */
  sl_mgr *plain = sl_mgr_new(NULL, NULL);
  CHECK(plain != NULL);
  CHECK(sl_listen(plain, url, on_tcp, NULL, &err) == NULL);
  CHECK_EQ(err, SL_EADDRINUSE);
  sl_mgr_free(plain);

  loops_start(lp, 2);
  int fds[N];
  for (int i = 0; i < N; i++) fds[i] = test_connect(lp[0].port, 0);
  WAIT_FOR(atomic_load(&lp[0].accepted) + atomic_load(&lp[1].accepted) == N, 5000);
  loops_stop(lp, 2);
  /* The kernel spread them (by the peers' ports): both loops got some. */
  CHECK_MSG(atomic_load(&lp[0].accepted) > 0 && atomic_load(&lp[1].accepted) > 0,
            "accepted %d + %d", atomic_load(&lp[0].accepted), atomic_load(&lp[1].accepted));
  for (int i = 0; i < N; i++) close(fds[i]);
  for (int i = 0; i < 2; i++) {
    WAIT_FOR_MGR(lp[i].m, conns_of(lp[i].m) == 1, 5000);
    mgr_free_clean(lp[i].m);
  }
  CHECK_MEM_CLEAN();
}

/* ---- a hub group over two loops ---------------------------------------- */

static void on_http(sl_conn *c, int ev, void *ev_data) {
  if (ev != SL_EV_HTTP_MSG) return;
  struct loop *lp = sl_conn_data(c);
  const sl_http_msg *hm = ev_data;
  if (sl_hub_attach(lp->h, c, hm, SL_TRANSPORT_MJPEG, &lp->so, NULL) == 0)
    atomic_fetch_add(&lp->attached, 1);
}

static void group_start(struct loop *lp, sl_hub_group **g, int policy) {
  int err = 0;
  memset(lp, 0, 2 * sizeof(*lp));
  *g = sl_hub_group_new(&err);
  CHECK(*g != NULL);
  for (int i = 0; i < 2; i++) {
    lp[i].m = sl_mgr_new(NULL, &err);
    CHECK(lp[i].m != NULL);
    /* Each loop on a port of its own, so the test knows which loop serves
     * which viewer. */
    lp[i].l = sl_http_listen(lp[i].m, "127.0.0.1:0", NULL, on_http, &lp[i], &err);
    CHECK_MSG(lp[i].l != NULL, "sl_http_listen: %s", sl_strerror(err));
    lp[i].port = sl_conn_local_port(lp[i].l);
    lp[i].h = sl_hub_new(lp[i].m, "cam", NULL, &err);
    CHECK(lp[i].h != NULL);
    lp[i].so.policy = policy;
    CHECK_EQ(sl_hub_group_add(*g, lp[i].h), 0);
  }
  loops_start(lp, 2);
}

struct viewer {
  int fd;
  struct mp p;
};

static void viewer_open(struct viewer *v, int port, int rcvbuf) {
  memset(v, 0, sizeof(*v));
  v->fd = test_connect(port, rcvbuf);
  const char req[] = "GET /stream.mjpg HTTP/1.1\r\nHost: t\r\n\r\n";
  CHECK_EQ(test_send_all(v->fd, req, sizeof(req) - 1), 0);
  fcntl(v->fd, F_SETFL, fcntl(v->fd, F_GETFL) | O_NONBLOCK);
  mp_init(&v->p, 1);
}

static void viewer_read(struct viewer *v) {
  static unsigned char buf[256 * 1024];
  for (;;) {
    ssize_t n = recv(v->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n <= 0) return;
    mp_feed(&v->p, buf, (size_t)n);
  }
}

static void viewer_close(struct viewer *v) {
  close(v->fd);
  mp_fini(&v->p);
}

static sl_buf *frame(uint64_t seq, size_t len) {
  sl_buf *b = sl_buf_new(len);
  CHECK(b != NULL);
  memset(sl_buf_data(b), (int)(seq & 0xff), len);
  mp_put_u64(sl_buf_data(b), seq);
  return b;
}

/* Stop the loops, wait (on this thread now) until every viewer has gone,
 * free it all: the counters return to zero. */
static void group_finish(struct loop *lp, sl_hub_group *g) {
  loops_stop(lp, 2);
  for (int i = 0; i < 2; i++) WAIT_FOR_MGR(lp[i].m, conns_of(lp[i].m) == 1, 5000);
  sl_hub_group_stats gs;
  sl_hub_group_stats_get(g, &gs);
  CHECK_EQ(gs.members, 2);
  /* Loop 1's hub leaves the group by sl_hub_free; loop 2's by
   * sl_mgr_free, which frees the hubs it still has. */
  sl_hub_free(lp[0].h);
  mgr_free_clean(lp[0].m);
  sl_hub_group_stats_get(g, &gs);
  CHECK_EQ(gs.members, 1);
  sl_mgr_free(lp[1].m);
  sl_hub_group_stats_get(g, &gs);
  CHECK_EQ(gs.members, 0);
  sl_hub_group_free(g);
  CHECK_MEM_CLEAN();
}

/* A producer thread that waits for sl_hub_group_ready loses nothing:
 * lossless viewers of both loops get every frame, in order. */
TEST_T(loops_threads_group_lossless_viewers_of_both_loops_get_every_frame, 60) {
  enum { FRAMES = 300, LEN = 20000 };
  struct loop lp[2];
  sl_hub_group *g;
  group_start(lp, &g, SL_POLICY_LOSSLESS);
  struct viewer v[4];
  for (int i = 0; i < 4; i++) viewer_open(&v[i], lp[i % 2].port, 0);
  WAIT_FOR(atomic_load(&lp[0].attached) == 2 && atomic_load(&lp[1].attached) == 2, 5000);
  for (uint64_t seq = 1; seq <= FRAMES; seq++) {
    uint64_t end = test_now_ms() + 5000;
    while (!sl_hub_group_ready(g)) {
      CHECK_MSG(test_now_ms() < end, "group never ready at frame %llu",
                (unsigned long long)seq);
      for (int i = 0; i < 4; i++) viewer_read(&v[i]);
      usleep(200);
    }
    sl_buf *b = frame(seq, LEN);
    CHECK_EQ(sl_hub_group_publish(g, b, 0, 0), 0);
    sl_buf_unref(b);
    for (int i = 0; i < 4; i++) viewer_read(&v[i]);
  }
  for (int i = 0; i < 4; i++) {
    WAIT_FOR((viewer_read(&v[i]), v[i].p.ncomplete >= FRAMES), 10000);
    CHECK(!v[i].p.error);
    for (size_t k = 0; k < FRAMES; k++)
      CHECK_MSG(v[i].p.parts[k].content_seq == k + 1, "viewer %d part %zu is frame %llu", i,
                k, (unsigned long long)v[i].p.parts[k].content_seq);
  }
  sl_hub_group_stats gs;
  sl_hub_group_stats_get(g, &gs);
  CHECK_EQ(gs.lost, 0);
  CHECK_EQ(gs.frames_in, FRAMES);
  for (int i = 0; i < 4; i++) viewer_close(&v[i]);
  group_finish(lp, g);
}

/* Live viewers: one viewer of loop 2 never reads; the reading viewers of
 * both loops keep up with the stream, and loop 2 holds a bounded amount
 * for the stalled one. */
TEST_T(loops_threads_group_stalled_viewer_holds_back_no_loop, 60) {
  enum { FRAMES = 400, LEN = 50000 };
  struct loop lp[2];
  sl_hub_group *g;
  group_start(lp, &g, SL_POLICY_LATEST);
  struct viewer v[3];
  viewer_open(&v[0], lp[0].port, 0);
  viewer_open(&v[1], lp[1].port, 0);
  viewer_open(&v[2], lp[1].port, 16384); /* stalled: never read */
  WAIT_FOR(atomic_load(&lp[0].attached) == 1 && atomic_load(&lp[1].attached) == 2, 5000);
  for (uint64_t seq = 1; seq <= FRAMES; seq++) {
    sl_buf *b = frame(seq, LEN);
    CHECK_EQ(sl_hub_group_publish(g, b, 0, 0), 0);
    sl_buf_unref(b);
    uint64_t until = test_now_ms() + 2;
    while (test_now_ms() < until) {
      viewer_read(&v[0]);
      viewer_read(&v[1]);
      usleep(200);
    }
  }
  /* The last frame reaches both reading viewers (latest: the newest is
   * never dropped). */
  for (int i = 0; i < 2; i++) {
    WAIT_FOR((viewer_read(&v[i]), v[i].p.ncomplete &&
              v[i].p.parts[v[i].p.ncomplete - 1].content_seq == FRAMES), 10000);
    CHECK(!v[i].p.error);
    /* They kept up: most frames arrived (a ratio, not a rate). */
    CHECK_MSG(v[i].p.ncomplete * 2 >= FRAMES, "viewer %d got %zu of %d", i,
              v[i].p.ncomplete, FRAMES);
  }
  CHECK(v[2].p.ncomplete < FRAMES / 4);
  /* With the loops stopped, this thread may read them: loop 2 holds a few
   * frames for the stalled viewer (in flight, pending, latest), not a
   * backlog. */
  loops_stop(lp, 2);
  sl_mgr_stats st;
  sl_mgr_stats_get(lp[1].m, &st);
  CHECK_MSG(st.held <= 4 * (LEN + 256) + 64 * 1024, "loop 2 holds %zu", st.held);
  sl_hub_group_stats gs;
  sl_hub_group_stats_get(g, &gs);
  CHECK_EQ(gs.frames_in, FRAMES);
  for (int i = 0; i < 3; i++) viewer_close(&v[i]);
  group_finish(lp, g);
}
