/*
 * Loopback integration tests of the hub: an HTTP listener whose handler
 * attaches GET /stream.mjpg to a hub as multipart MJPEG, a producer timer
 * publishing 100 KB frames (each frame's first 8 bytes are its sequence
 * number), and viewers that are raw sockets of the test thread, read
 * without blocking between sl_mgr_poll calls (or never read: stalled).
 *
 * Every test ends with every connection closed, the hub and the manager
 * freed, and sl_mem_stats total == 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "common.h"
#include "hub_test.h"
#include "sluice.h"
#include "test.h"

#define FRAME 100000u
/* send_max of a viewer of FRAME-sized frames: 2 x the largest + 64 KiB. */
#define VIEWER_SEND_MAX (2 * FRAME + 65536)
/* TCP_NOTSENT_LOWAT the hub sets on stream connections. The kernel checks
 * it only before it allocates a new skb (tcp_sendmsg_locked), so the
 * unsent bytes may pass it by up to one skb: 64 KiB. */
#define NOTSENT_LOWAT (128 * 1024)
#define SKB_MAX 65536
/* A part's head and trailing CRLF (the hub keeps 256 bytes for them). */
#define PART_OVERHEAD 256
/* Per connection, beyond the frames it references: its owned chunks (at
 * most two part heads and CRLFs, each a 512-byte chunk plus a segment
 * header) and no input buffer (a viewer's request is consumed, and the
 * buffer given back). */
#define CONN_OVERHEAD 4096
/* What one live frame of FRAME bytes counts in `held`. */
#define FRAME_SIZE (sizeof(struct sl_buf) + FRAME)

/* ---- the server side -------------------------------------------------- */

struct net {
  sl_mgr *m;
  sl_conn *l;
  int port;
  sl_hub *h;
  sl_sub_opts so;
  sl_timer *prod;
  size_t frame_len;
  uint64_t published;
  int attached, refused;
  void (*after_publish)(void);
  int leaves, leave_reason[SL_CLOSE_SHUTDOWN + 1];
  uint64_t leave_ms[64];
  int leave_reasons[64];
};
static struct net g;

static void on_http(sl_conn *c, int ev, void *ev_data) {
  if (ev != SL_EV_HTTP_MSG) return;
  const sl_http_msg *hm = ev_data;
  if (hm->path.len == 12 && memcmp(hm->path.ptr, "/stream.mjpg", 12) == 0) {
    int rc = sl_hub_attach(g.h, c, hm, SL_TRANSPORT_MJPEG, &g.so, NULL);
    if (rc == 0) g.attached++;
    else g.refused++;
  } else {
    sl_http_reply_status(c, 404);
  }
}

static void on_hub(sl_hub *h, const sl_hub_event *e, void *arg) {
  (void)h, (void)arg;
  if (e->type != SL_HUB_LEAVE) return;
  if (g.leaves < 64) {
    g.leave_ms[g.leaves] = test_now_ms();
    g.leave_reasons[g.leaves] = e->reason;
  }
  g.leaves++;
  if (e->reason >= 0 && e->reason <= SL_CLOSE_SHUTDOWN) g.leave_reason[e->reason]++;
}

static void produce(sl_mgr *m, void *arg) {
  (void)m, (void)arg;
  sl_buf *b = sl_buf_new(g.frame_len);
  CHECK(b != NULL);
  unsigned char *d = sl_buf_data(b);
  memset(d + 8, (int)(g.published & 0xff), g.frame_len - 8);
  mp_put_u64(d, ++g.published); /* == the hub's seq: one producer */
  CHECK_EQ(sl_hub_publish(g.h, b, 0, 0), 0);
  sl_buf_unref(b);
  if (g.after_publish) g.after_publish();
}

/* A manager, an HTTP listener, a hub and (fps > 0) a producer timer. */
static void net_start(double fps, size_t frame_len, const sl_hub_opts *ho,
                      const sl_sub_opts *so) {
  int err = 0;
  memset(&g, 0, sizeof(g));
  g.m = sl_mgr_new(NULL, &err);
  CHECK_MSG(g.m != NULL, "sl_mgr_new: %s", sl_strerror(err));
  g.l = sl_http_listen(g.m, "127.0.0.1:0", NULL, on_http, NULL, &err);
  CHECK_MSG(g.l != NULL, "sl_http_listen: %s", sl_strerror(err));
  g.port = sl_conn_local_port(g.l);
  sl_hub_opts o = {0};
  if (ho) o = *ho;
  o.on_event = on_hub;
  g.h = sl_hub_new(g.m, "cam", &o, &err);
  CHECK_MSG(g.h != NULL, "sl_hub_new: %s", sl_strerror(err));
  if (so) g.so = *so;
  g.frame_len = frame_len;
  if (fps > 0) {
    g.prod = sl_timer_add(g.m, (uint64_t)(1000.0 / fps), SL_TIMER_REPEAT,
                          produce, NULL, &err);
    CHECK(g.prod != NULL);
  }
}

static void producer_stop(void) {
  sl_timer_free(g.m, g.prod);
  g.prod = NULL;
}

static sl_hub_stats hub_stats(void) {
  sl_hub_stats st;
  sl_hub_stats_get(g.h, &st);
  return st;
}

static sl_mgr_stats mgr_stats(void) {
  sl_mgr_stats st;
  sl_mgr_stats_get(g.m, &st);
  return st;
}

/* ---- viewers ----------------------------------------------------------- */

struct client {
  int fd;
  int reading;
  int eof;
  char peer[64];  /* as the server sees it: "127.0.0.1:port" */
  uint64_t opened_ms;
  struct mp p;
};

static void client_open(struct client *cl, int rcvbuf, int reading,
                        const char *path) {
  memset(cl, 0, sizeof(*cl));
  int fd = test_connect(g.port, rcvbuf);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  char req[128];
  int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n",
                   path ? path : "/stream.mjpg");
  CHECK_EQ(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
  struct sockaddr_in me;
  socklen_t len = sizeof(me);
  getsockname(fd, (struct sockaddr *)&me, &len);
  snprintf(cl->peer, sizeof(cl->peer), "127.0.0.1:%d", ntohs(me.sin_port));
  cl->fd = fd;
  cl->reading = reading;
  cl->opened_ms = test_now_ms();
  mp_init(&cl->p, 1);
}

/* Read whatever is there; returns the bytes read. */
static size_t client_read(struct client *cl) {
  static unsigned char buf[256 * 1024];
  size_t total = 0;
  while (cl->fd >= 0 && !cl->eof) {
    ssize_t n = recv(cl->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) {
      mp_feed(&cl->p, buf, (size_t)n);
      total += (size_t)n;
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      cl->eof = 1;
    } else {
      break;
    }
  }
  return total;
}

static void client_close(struct client *cl) {
  if (cl->fd >= 0) close(cl->fd);
  cl->fd = -1;
  mp_fini(&cl->p);
}

static int rcvbuf_of(const struct client *cl) {
  int v = 0;
  socklen_t len = sizeof(v);
  getsockopt(cl->fd, SOL_SOCKET, SO_RCVBUF, &v, &len);
  return v;
}

/* Run the loop for `ms`, reading the reading viewers between iterations
 * and calling `sample` (may be NULL) after each. */
static void run(uint64_t ms, struct client **cls, int n, void (*sample)(void)) {
  uint64_t end = test_now_ms() + ms;
  while (test_now_ms() < end) {
    sl_mgr_poll(g.m, 1);
    for (int i = 0; i < n; i++)
      if (cls[i]->reading) client_read(cls[i]);
    if (sample) sample();
  }
}

/* Close the viewers, wait until the server saw every one go, free it all:
 * the counters must be back to zero. */
static void net_finish(struct client **cls, int n) {
  if (g.prod) producer_stop();
  for (int i = 0; i < n; i++) client_close(cls[i]);
  uint64_t end = test_now_ms() + 3000;
  while (mgr_stats().conns > 1 && test_now_ms() < end) sl_mgr_poll(g.m, 5);
  sl_mgr_stats st = mgr_stats();
  CHECK_EQ(st.conns, 1); /* the listener */
  CHECK_EQ(st.queued, 0);
  sl_hub_stats hs = hub_stats();
  CHECK_EQ(hs.subs, 0);
  CHECK_LE(hs.frames_held, 1);
  /* What the manager still holds is the hub's latest frame, once. */
  CHECK_EQ(st.held, hs.held);
  sl_hub_free(g.h);
  sl_mgr_free(g.m);
  sl_mem_stats ms;
  sl_mem_stats_get(&ms);
  CHECK_EQ(ms.nbufs, 0);
  CHECK_EQ(ms.total, 0);
}

static int find_sub(const char *peer, sl_sub_stats *out) {
  sl_sub_stats all[128];
  size_t n = sl_hub_subs(g.h, all, 128);
  for (size_t i = 0; i < n && i < 128; i++)
    if (strcmp(all[i].peer, peer) == 0) {
      if (out) *out = all[i];
      return 1;
    }
  return 0;
}

/* ---- 1 healthy + 10 stalled viewers ------------------------------------ */

#define NSTALL 10
#define RUN_MS 20000
#define STALL_MS 10000

static struct {
  const char *healthy;
  size_t max_frames_held, max_hub_held, max_mgr_held, max_healthy_queued;
  size_t max_stalled_queued_when_stalled;
  int samples;
  uint64_t all_gone_ms;
} b1;

/* The bounds, at every iteration. Frames alive: the latest, the frame in
 * flight to the healthy viewer, and at most one per stalled viewer (the
 * rest of the frame in its queue; its pending frame is the shared latest).
 * Bytes the manager holds: those frames, each once, plus each connection's
 * owned chunks. */
static void sample_bounds(void) {
  sl_hub_stats hs = hub_stats();
  sl_mgr_stats ms = mgr_stats();
  sl_sub_stats all[32];
  size_t n = sl_hub_subs(g.h, all, 32);
  size_t stalled = 0;
  for (size_t i = 0; i < n && i < 32; i++) {
    if (strcmp(all[i].peer, b1.healthy) != 0) {
      stalled++;
      /* The rest of one frame and its part head: within send_max, and
       * within one frame (latest never queues a second one behind it). */
      CHECK_LE(all[i].queued, all[i].send_max);
      CHECK_LE(all[i].queued, FRAME + PART_OVERHEAD);
      CHECK_LE(all[i].pending, 1);
      if (all[i].queued > b1.max_stalled_queued_when_stalled)
        b1.max_stalled_queued_when_stalled = all[i].queued;
    } else if (all[i].queued > b1.max_healthy_queued) {
      b1.max_healthy_queued = all[i].queued;
    }
    if (hs.largest_frame) CHECK_EQ(all[i].send_max, VIEWER_SEND_MAX);
  }
  CHECK_LE(hs.frames_held, 2 + stalled);
  CHECK_EQ(hs.held, hs.frames_held * FRAME_SIZE);
  CHECK_LE(ms.held, hs.held + ms.conns * CONN_OVERHEAD);
  if (hs.frames_held > b1.max_frames_held) b1.max_frames_held = hs.frames_held;
  if (hs.held > b1.max_hub_held) b1.max_hub_held = hs.held;
  if (ms.held > b1.max_mgr_held) b1.max_mgr_held = ms.held;
  if (stalled == 0 && n == 1 && !b1.all_gone_ms) b1.all_gone_ms = test_now_ms();
  b1.samples++;
}

TEST_T(hub_net_stalled_viewers_bounded_healthy_unaffected, 100) {
  sl_sub_opts so = {.stall_ms = STALL_MS};

  /* Control: one viewer alone, for the same time. */
  net_start(30, FRAME, NULL, &so);
  struct client ctl;
  client_open(&ctl, 0, 1, NULL);
  struct client *cc[] = {&ctl};
  run(RUN_MS, cc, 1, NULL);
  mp_check_consistent(&ctl.p, 1);
  CHECK_EQ(ctl.p.status, 200);
  size_t control = ctl.p.ncomplete;
  uint64_t control_pub = g.published;
  net_finish(cc, 1);

  /* The same stream with 10 viewers that connect, ask, and never read
   * (4 KiB receive buffers) beside one healthy viewer. */
  net_start(30, FRAME, NULL, &so);
  struct client st[NSTALL], hl;
  struct client *all[NSTALL + 1];
  uint64_t t0 = test_now_ms();
  for (int i = 0; i < NSTALL; i++) {
    client_open(&st[i], 4096, 0, NULL);
    all[i] = &st[i];
  }
  client_open(&hl, 0, 1, NULL);
  all[NSTALL] = &hl;
  memset(&b1, 0, sizeof(b1));
  b1.healthy = hl.peer;
  run(RUN_MS, all, NSTALL + 1, sample_bounds);
  CHECK_EQ(g.attached, NSTALL + 1);
  mp_check_consistent(&hl.p, 1);
  size_t healthy = hl.p.ncomplete;
  sl_hub_stats hs = hub_stats();
  sl_mgr_stats ms = mgr_stats();
  sl_sub_stats hss;
  CHECK(find_sub(hl.peer, &hss));
  printf("  control: %zu of %llu frames; healthy beside %d stalled: %zu of %llu "
         "(%.1f%%, %llu replaced)\n",
         control, (unsigned long long)control_pub, NSTALL, healthy,
         (unsigned long long)g.published, 100.0 * (double)healthy / (double)control,
         (unsigned long long)hss.drops[SL_DROP_REPLACED]);
  printf("  while stalled: frames alive <= %zu, hub held <= %zu, manager held <= %zu, "
         "stalled queued <= %zu, healthy queued <= %zu, samples %d\n",
         b1.max_frames_held, b1.max_hub_held, b1.max_mgr_held,
         b1.max_stalled_queued_when_stalled, b1.max_healthy_queued, b1.samples);
  CHECK_GE(healthy * 10, control * 9);
  /* The stalled ones were closed for stalling, not before stall_ms. */
  CHECK_EQ(ms.closed_by[SL_CLOSE_STALL], NSTALL);
  CHECK_EQ(g.leave_reason[SL_CLOSE_STALL], NSTALL);
  for (int i = 0; i < g.leaves && i < 64; i++) {
    CHECK_EQ(g.leave_reasons[i], SL_CLOSE_STALL);
    CHECK_GE(g.leave_ms[i], t0 + STALL_MS);
    CHECK_LE(g.leave_ms[i], t0 + STALL_MS + 2000);
  }
  CHECK(b1.all_gone_ms != 0);
  CHECK_EQ(hs.subs, 1);
  /* Their RST reached the viewers. */
  for (int i = 0; i < NSTALL; i++) {
    char c;
    ssize_t n;
    while ((n = recv(st[i].fd, &c, 1, MSG_DONTWAIT)) > 0) {
    }
    CHECK(n == 0 || errno == ECONNRESET);
  }
  /* Back to the one-frame baseline once the healthy viewer is drained. */
  producer_stop();
  run(500, &all[NSTALL], 1, NULL);
  hs = hub_stats();
  ms = mgr_stats();
  CHECK_EQ(hs.frames_held, 1);
  CHECK_EQ(hs.held, FRAME_SIZE);
  CHECK_EQ(ms.queued, 0);
  CHECK_EQ(ms.held, hs.held); /* the manager counts the hub's frame once */
  /* Everything handed to the healthy viewer arrived, and its drops are
   * the frames replaced while it was busy. */
  CHECK(find_sub(hl.peer, &hss));
  CHECK_EQ(hl.p.ncomplete, hss.frames_sent);
  CHECK_EQ(hss.frames_sent + hss.drops[SL_DROP_REPLACED], g.published);
  net_finish(all, NSTALL + 1);
}

/* ---- resume ------------------------------------------------------------ */

/* Viewers with different receive buffers stall at different points of a
 * frame, some near its end (the rest below send_low). */
#define NRES 6
static const int r_rcvbuf[NRES] = {16384, 24576, 32768, 49152, 65536, 98304};
static struct client r_v[NRES];
static size_t r_max_frames;

static void sample_paused(void) {
  for (int i = 0; i < NRES; i++) {
    sl_sub_stats s;
    if (!find_sub(r_v[i].peer, &s)) continue;
    /* Stalled: the rest of one frame queued, one pending reference. */
    CHECK_LE(s.queued, FRAME + PART_OVERHEAD);
    CHECK_LE(s.pending, 1);
  }
  sl_hub_stats hs = hub_stats();
  CHECK_LE(hs.frames_held, 2 + NRES);
  if (hs.frames_held > r_max_frames) r_max_frames = hs.frames_held;
}

TEST_T(hub_net_resume_starts_with_newest_frame, 40) {
  net_start(30, FRAME, NULL, NULL);
  struct client *cs[NRES];
  for (int i = 0; i < NRES; i++) {
    client_open(&r_v[i], r_rcvbuf[i], 1, NULL);
    cs[i] = &r_v[i];
  }
  run(1000, cs, NRES, NULL);
  uint64_t pause_off[NRES];
  size_t parts_at_pause[NRES];
  int rcvbuf[NRES];
  for (int i = 0; i < NRES; i++) {
    CHECK(r_v[i].p.ncomplete >= 10);
    rcvbuf[i] = rcvbuf_of(&r_v[i]);
    /* Pause reading for 5 s. */
    r_v[i].reading = 0;
    pause_off[i] = r_v[i].p.off;
    parts_at_pause[i] = r_v[i].p.nparts;
  }
  r_max_frames = 0;
  run(5000, cs, NRES, sample_paused);
  /* Where every byte is at the resume: in the viewer's receive queue, in
   * the server socket's send queue, or in the connection's output queue,
   * whose first byte is at stream offset held_off. */
  size_t queued_at_resume[NRES];
  uint64_t held_off[NRES];
  int inq[NRES], sndq[NRES], notsent[NRES];
  for (int i = 0; i < NRES; i++) {
    sl_sub_stats s;
    CHECK(find_sub(r_v[i].peer, &s));
    CHECK(s.drops[SL_DROP_REPLACED] >= 140);
    CHECK_EQ(s.pending, 1);
    queued_at_resume[i] = s.queued;
    sl_conn *sc = sl_conn_find(g.m, s.id);
    CHECK(sc != NULL);
    CHECK_EQ(ioctl(r_v[i].fd, FIONREAD, &inq[i]), 0);
    CHECK_EQ(ioctl(sl_conn_fd(sc), SIOCOUTQ, &sndq[i]), 0);
    CHECK_EQ(ioctl(sl_conn_fd(sc), SIOCOUTQNSD, &notsent[i]), 0);
    held_off[i] = pause_off[i] + (uint64_t)inq[i] + (uint64_t)sndq[i];
  }

  /* Resume: for each viewer, the first part whose header starts after this
   * is the newest frame published, and before it come only the bytes
   * already in flight: the receive buffer, the kernel's unsent queue
   * (TCP_NOTSENT_LOWAT) and the rest of one frame. */
  uint64_t newest = g.published;
  long fresh[NRES];
  uint64_t published_when_seen[NRES];
  for (int i = 0; i < NRES; i++) {
    r_v[i].reading = 1;
    fresh[i] = -1;
  }
  uint64_t end = test_now_ms() + 3000;
  int done = 0;
  while (test_now_ms() < end && done < NRES) {
    sl_mgr_poll(g.m, 1);
    done = 0;
    for (int i = 0; i < NRES; i++) {
      struct client *v = &r_v[i];
      client_read(v);
      for (size_t k = parts_at_pause[i]; k < v->p.nparts && fresh[i] < 0; k++)
        if (v->p.parts[k].seq >= newest) {
          fresh[i] = (long)k;
          published_when_seen[i] = g.published;
        }
      if (fresh[i] >= 0 && v->p.parts[fresh[i]].complete) done++;
    }
  }
  for (int i = 0; i < NRES; i++) {
    struct client *v = &r_v[i];
    CHECK(fresh[i] >= 0);
    const struct mp_part *f = &v->p.parts[fresh[i]];
    CHECK(f->complete);
    mp_check_consistent(&v->p, 1);
    uint64_t before = f->start - pause_off[i];
    long stale = 0;
    for (size_t k = 0; k < (size_t)fresh[i]; k++)
      if (v->p.parts[k].end > pause_off[i]) stale++;
    uint64_t bound =
        (uint64_t)rcvbuf[i] + NOTSENT_LOWAT + SKB_MAX + FRAME + PART_OVERHEAD;
    /* Parts that start after the first byte the connection still held:
     * frames it was handed behind the rest of the in-flight one. */
    long late = 0;
    for (size_t k = 0; k < (size_t)fresh[i]; k++)
      if (v->p.parts[k].start > held_off[i]) late++;
    printf("  rcvbuf %6d: newest %llu, first fresh %llu (published then %llu); "
           "%6llu bytes before it (bound %llu) in %ld stale part(s): receive queue "
           "%d + send queue %d (unsent %d) + output queue %zu; parts started "
           "late %ld\n",
           rcvbuf[i], (unsigned long long)newest, (unsigned long long)f->seq,
           (unsigned long long)published_when_seen[i], (unsigned long long)before,
           (unsigned long long)bound, stale, inq[i], sndq[i], notsent[i],
           queued_at_resume[i], late);
    fflush(stdout);
    /* Every byte accounted for: the fresh part follows them directly. */
    CHECK_EQ(f->start, held_off[i] + queued_at_resume[i]);
    /* The output queue held the rest of one frame and nothing behind it:
     * no stale frame starts after the resume. */
    CHECK_EQ(late, 0);
    CHECK_LE(inq[i], rcvbuf[i]);
    CHECK_LE(notsent[i], NOTSENT_LOWAT + SKB_MAX);
    CHECK_LE(queued_at_resume[i], FRAME + PART_OVERHEAD);
    /* A newer frame may have been published while the old bytes drained:
     * then that one is the newest. */
    CHECK(f->seq >= newest && f->seq <= published_when_seen[i]);
    CHECK_LE(before, bound);
    /* So the stale parts are only those that fit in the bound. */
    CHECK_LE(stale, (long)(bound / FRAME) + 1);
  }
  printf("  frames alive while %d viewers were paused <= %zu\n", NRES, r_max_frames);
  /* And they are live again. */
  size_t n0[NRES];
  for (int i = 0; i < NRES; i++) n0[i] = r_v[i].p.ncomplete;
  run(500, cs, NRES, NULL);
  for (int i = 0; i < NRES; i++) CHECK_GE(r_v[i].p.ncomplete - n0[i], 10);
  net_finish(cs, NRES);
}

/* ---- admission ---------------------------------------------------------- */

TEST_T(hub_net_admission_evicts_stalled_else_503, 30) {
  sl_hub_opts ho = {.max_subs = 2, .stall_evict_ms = 500};
  net_start(30, FRAME, &ho, NULL);
  struct client a, b, c, d;
  client_open(&a, 4096, 0, NULL); /* stalls */
  client_open(&b, 0, 1, NULL);
  struct client *cs[] = {&a, &b, &c, &d};
  run(1200, cs, 2, NULL);
  sl_sub_stats s;
  CHECK(find_sub(a.peer, &s));
  CHECK_EQ(s.stalled, 1);
  CHECK(find_sub(b.peer, &s));
  CHECK_EQ(s.stalled, 0);
  /* Full, one stalled >= 500 ms: the new viewer takes its slot. */
  client_open(&c, 0, 1, NULL);
  run(300, cs, 3, NULL);
  sl_hub_stats hs = hub_stats();
  CHECK_EQ(hs.evictions[SL_EVICT_SLOT], 1);
  CHECK_EQ(hs.subs, 2);
  CHECK(!find_sub(a.peer, NULL));
  CHECK(find_sub(c.peer, NULL));
  CHECK_EQ(c.p.status, 200);
  CHECK(c.p.ncomplete >= 3);
  CHECK_EQ(mgr_stats().closed_by[SL_CLOSE_EVICTED], 1);
  a.reading = 1; /* it was reset */
  run(200, cs, 3, NULL);
  CHECK(a.eof);
  /* Full, nobody stalled: 503 with Retry-After. */
  client_open(&d, 0, 1, NULL);
  run(300, cs, 4, NULL);
  CHECK_EQ(d.p.status, 503);
  CHECK(strncmp(d.p.status_line, "HTTP/1.1 503", 12) == 0);
  CHECK(d.p.retry_after);
  hs = hub_stats();
  CHECK_EQ(hs.refused, 1);
  CHECK_EQ(hs.evictions[SL_EVICT_SLOT], 1);
  CHECK_EQ(hs.subs, 2);
  CHECK_EQ(g.attached, 3);
  CHECK_EQ(g.refused, 1);
  mp_check_consistent(&b.p, 1);
  mp_check_consistent(&c.p, 1);
  net_finish(cs, 4);
}

/* ---- 100 viewers --------------------------------------------------------- */

#define NVIEW 100
static size_t v_max_frames, v_max_held, v_max_mgr, v_max_queued, v_pub_held;

/* Right after a publish, before any flush: every viewer's queue references
 * the new frame (the manager's queued bytes are ~100 frames), yet the
 * manager holds it once. */
static void sample_published(void) {
  sl_mgr_stats ms = mgr_stats();
  sl_hub_stats hs = hub_stats();
  CHECK_LE(ms.held, hs.held + ms.conns * CONN_OVERHEAD);
  if (ms.queued > v_max_queued) {
    v_max_queued = ms.queued;
    v_pub_held = ms.held;
  }
}

static void sample_100(void) {
  sl_hub_stats hs = hub_stats();
  sl_mgr_stats ms = mgr_stats();
  CHECK_EQ(hs.held, hs.frames_held * FRAME_SIZE);
  CHECK_LE(ms.held, hs.held + ms.conns * CONN_OVERHEAD);
  if (hs.frames_held > v_max_frames) v_max_frames = hs.frames_held;
  if (hs.held > v_max_held) v_max_held = hs.held;
  if (ms.held > v_max_mgr) v_max_mgr = ms.held;
}

TEST_T(hub_net_100_viewers_hold_one_copy, 40) {
  CHECK_GE(test_raise_nofile(4 * NVIEW), 2 * NVIEW + 64);
  net_start(15, FRAME, NULL, NULL);
  static struct client v[NVIEW];
  struct client *vs[NVIEW];
  for (int i = 0; i < NVIEW; i++) {
    client_open(&v[i], 0, 1, NULL);
    vs[i] = &v[i];
  }
  v_max_frames = v_max_held = v_max_mgr = v_max_queued = v_pub_held = 0;
  g.after_publish = sample_published;
  run(2500, vs, NVIEW, sample_100);
  CHECK_EQ(g.attached, NVIEW);
  size_t min_frames = SIZE_MAX;
  for (int i = 0; i < NVIEW; i++) {
    mp_check_consistent(&v[i].p, 1);
    if (v[i].p.ncomplete < min_frames) min_frames = v[i].p.ncomplete;
  }
  printf("  %d viewers, %llu frames published, each got >= %zu; frames alive <= %zu, "
         "hub held <= %zu (%.2f frames), manager held <= %zu; right after a publish: "
         "queued %zu (%.1f frames) held %zu (%.2f frames)\n",
         NVIEW, (unsigned long long)g.published, min_frames, v_max_frames, v_max_held,
         (double)v_max_held / (double)FRAME_SIZE, v_max_mgr, v_max_queued,
         (double)v_max_queued / FRAME, v_pub_held, (double)v_pub_held / (double)FRAME_SIZE);
  CHECK(min_frames >= 1);
  CHECK_GE(v_max_queued, (NVIEW / 2) * FRAME);
  CHECK_LE(v_pub_held, 2 * FRAME_SIZE + NVIEW * CONN_OVERHEAD);
  /* One copy of each live frame, however many viewers send it: a few
   * frames alive (the latest and those still in flight), not 100. */
  CHECK_LE(v_max_frames, 4);
  CHECK_LE(v_max_held, 4 * FRAME_SIZE);
  net_finish(vs, NVIEW);
}

/* ---- publishing from other threads --------------------------------------- */

#define NPROD 2
#define TFRAME 20000u
static atomic_int prod_stop;
static atomic_ullong prod_ok, prod_efull;

static void *producer_main(void *arg) {
  uint64_t id = (uint64_t)(uintptr_t)arg, n = 0;
  /* Pacing, not waiting: 1 ms back-off after SL_EFULL, 2 ms between frames
   * (some 500 frames/s per producer). */
  struct timespec ms1 = {0, 1000000}, ms2 = {0, 2000000};
  while (!atomic_load(&prod_stop)) {
    sl_buf *b = sl_buf_new(TFRAME);
    CHECK(b != NULL);
    memset(sl_buf_data(b), (int)id, TFRAME);
    mp_put_u64(sl_buf_data(b), id << 56 | ++n);
    int rc;
    while ((rc = sl_hub_publish(g.h, b, 0, 0)) == SL_EFULL &&
           !atomic_load(&prod_stop)) {
      atomic_fetch_add(&prod_efull, 1);
      nanosleep(&ms1, NULL);
    }
    CHECK(rc == 0 || rc == SL_EFULL);
    if (rc == 0) atomic_fetch_add(&prod_ok, 1);
    sl_buf_unref(b);
    nanosleep(&ms2, NULL);
  }
  return NULL;
}

TEST_T(hub_net_publish_from_threads_while_viewers_come_and_go, 30) {
  net_start(0, TFRAME, NULL, NULL);
  sl_mgr_poll(g.m, 0); /* this thread runs the loop from now on */
  atomic_store(&prod_stop, 0);
  atomic_store(&prod_ok, 0);
  atomic_store(&prod_efull, 0);
  pthread_t th[NPROD];
  for (int i = 0; i < NPROD; i++)
    CHECK_EQ(pthread_create(&th[i], NULL, producer_main, (void *)(uintptr_t)(i + 1)), 0);
  enum { SLOTS = 8 };
  struct client v[SLOTS];
  struct client *open_[SLOTS];
  int is_open[SLOTS] = {0};
  int opened = 0, closed = 0;
  unsigned seed = 12345;
  uint64_t end = test_now_ms() + 3000, next_change = 0;
  size_t frames_seen = 0;
  while (test_now_ms() < end) {
    sl_mgr_poll(g.m, 1);
    for (int i = 0; i < SLOTS; i++)
      if (is_open[i]) client_read(&v[i]);
    if (test_now_ms() >= next_change) {
      next_change = test_now_ms() + 50;
      int i = (int)(rand_r(&seed) % SLOTS);
      if (is_open[i]) {
        mp_check_consistent(&v[i].p, 0);
        frames_seen += v[i].p.ncomplete;
        client_close(&v[i]);
        is_open[i] = 0;
        closed++;
      } else {
        client_open(&v[i], 0, 1, NULL);
        is_open[i] = 1;
        opened++;
      }
    }
  }
  atomic_store(&prod_stop, 1);
  for (int i = 0; i < NPROD; i++) pthread_join(th[i], NULL);
  /* Every frame a producer was told was taken reaches the hub. */
  uint64_t published = atomic_load(&prod_ok);
  end = test_now_ms() + 2000;
  while (hub_stats().frames_in < published && test_now_ms() < end) sl_mgr_poll(g.m, 5);
  sl_hub_stats hs = hub_stats();
  int n = 0;
  for (int i = 0; i < SLOTS; i++)
    if (is_open[i]) {
      client_read(&v[i]);
      mp_check_consistent(&v[i].p, 0);
      frames_seen += v[i].p.ncomplete;
      open_[n++] = &v[i];
    }
  printf("  %llu frames published from %d threads (%llu SL_EFULL retries), "
         "hub frames_in %llu; viewers opened %d, closed %d, %zu frames seen\n",
         (unsigned long long)published, NPROD,
         (unsigned long long)atomic_load(&prod_efull),
         (unsigned long long)hs.frames_in, opened, closed, frames_seen);
  CHECK_EQ(hs.frames_in, published);
  CHECK_EQ(hs.seq, published);
  CHECK(published > 100);
  CHECK(opened >= 10);
  CHECK(frames_seen > 0);
  net_finish(open_, n);
}
