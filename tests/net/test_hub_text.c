/* WebSocket text messages through a hub (sl_hub_publish_text) over
 * loopback, with the library's WebSocket client: every WebSocket viewer
 * gets each text as one TEXT message, in order with the frames, from one
 * shared buffer; texts published from other threads arrive in order; a
 * viewer that does not read misses texts once its send_max is reached,
 * counted as drops, while a healthy one misses none; the counters return
 * to zero. */
#include <pthread.h>

#include "common.h"
#include "sluice.h"
#include "test.h"

#define NCLI 3

struct cli {
  int open;
  int texts, bins;
  char log[4096]; /* "T:<text>|" and "B<len>|" in arrival order */
  size_t n;
};

static sl_hub *hub;
static struct cli clis[NCLI + 1];

static void on_http(sl_conn *c, int ev, void *ev_data) {
  if (ev == SL_EV_HTTP_MSG) {
    const sl_http_msg *m = ev_data;
    if (sl_http_match(m, "/ws", NULL, 0)) sl_hub_attach(hub, c, m, SL_TRANSPORT_WS, NULL, NULL);
    else sl_http_reply_status(c, 404);
  }
}

static void on_client(sl_conn *c, int ev, void *ev_data) {
  struct cli *k = sl_conn_data(c);
  if (ev == SL_EV_WS_OPEN) k->open = 1;
  if (ev != SL_EV_WS_MSG) return;
  const sl_ws_msg *w = ev_data;
  char item[64];
  int n;
  if (w->opcode == SL_WS_TEXT) {
    k->texts++;
    n = w->data.len < 40 ? snprintf(item, sizeof(item), "T:%.*s|", (int)w->data.len, w->data.ptr)
                         : snprintf(item, sizeof(item), "T%zu|", w->data.len);
  } else {
    k->bins++;
    n = snprintf(item, sizeof(item), "B%zu|", w->data.len);
  }
  if (k->n + (size_t)n < sizeof(k->log)) {
    memcpy(k->log + k->n, item, (size_t)n + 1);
    k->n += (size_t)n;
  }
}

/* Close every connection and let the loop free them. */
static void close_all(sl_mgr *m) {
  for (sl_conn *c = sl_conn_next(m, NULL); c; c = sl_conn_next(m, c)) sl_conn_close(c, SL_CLOSE_NOW);
  sl_mgr_stats st;
  WAIT_FOR_MGR(m, (sl_mgr_stats_get(m, &st), st.conns == 0), 5000);
}

static int all_open(int n) {
  for (int i = 0; i < n; i++)
    if (!clis[i].open) return 0;
  return 1;
}

struct pub {
  sl_hub *h;
  int fulls;
};

/* Another thread: ten numbered texts, retried while the hub's queue is
 * full (SL_EFULL is the caller's signal to retry, nothing was kept). */
static void *publisher(void *arg) {
  struct pub *p = arg;
  char msg[32];
  for (int i = 0; i < 10; i++) {
    int n = snprintf(msg, sizeof(msg), "{\"n\":%d}", i);
    int rc;
    while ((rc = sl_hub_publish_text(p->h, msg, (size_t)n)) == SL_EFULL) {
      p->fulls++;
      usleep(1000); /* back off and retry: SL_EFULL is the point here */
    }
    if (rc) return (void *)(intptr_t)rc;
  }
  return NULL;
}

TEST_T(hub_text_to_websocket_viewers, 40) {
  int err = 0;
  memset(clis, 0, sizeof(clis));
  sl_mgr *m = sl_mgr_new(NULL, &err);
  CHECK(m != NULL);
  hub = sl_hub_new(m, "status", NULL, &err);
  CHECK(hub != NULL);
  sl_conn *l = sl_http_listen(m, "127.0.0.1:0", NULL, on_http, NULL, &err);
  CHECK(l != NULL);
  char url[64];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws", sl_conn_local_port(l));
  for (int i = 0; i < NCLI; i++) CHECK(sl_ws_connect(m, url, NULL, on_client, &clis[i], &err) != NULL);
  WAIT_FOR_MGR(m, all_open(NCLI), 5000);
  WAIT_FOR_MGR(m, sl_hub_subs(hub, NULL, 0) == NCLI, 5000);

  /* Not UTF-8, or NULL: refused, nothing sent. */
  CHECK_EQ(sl_hub_publish_text(hub, "\xff", 1), SL_EINVAL);
  CHECK_EQ(sl_hub_publish_text(NULL, "x", 1), SL_EINVAL);

  /* One shared buffer for every viewer: the manager holds its bytes once
   * while three queues reference it. */
  sl_mem_stats ms0, ms1;
  sl_mem_stats_get(&ms0);
  static const char st[] = "{\"type\":\"status\",\"rec\":true}";
  CHECK_EQ(sl_hub_publish_text(hub, st, sizeof(st) - 1), 0);
  sl_mem_stats_get(&ms1);
  CHECK_EQ(ms1.nbufs, ms0.nbufs + 1);
  sl_mgr_stats mst;
  sl_mgr_stats_get(m, &mst);
  CHECK_EQ(mst.out_ref, ms1.bufs - ms0.bufs); /* that buffer, once */
  CHECK_EQ(mst.queued, NCLI * (2 + sizeof(st) - 1)); /* header + payload each */
  /* A frame, then another text. The frame waits in the viewer's policy
   * queue until the first text has left (the pull rule); the second text
   * does not wait behind it. */
  sl_buf *f = sl_buf_from("JPEGDATA", 8);
  CHECK_EQ(sl_hub_publish(hub, f, 0, 0), 0);
  sl_buf_unref(f);
  CHECK_EQ(sl_hub_publish_text(hub, "second", 6), 0);
  WAIT_FOR_MGR(m, clis[0].texts == 2 && clis[1].texts == 2 && clis[2].texts == 2 &&
                      clis[0].bins == 1 && clis[1].bins == 1 && clis[2].bins == 1, 5000);
  for (int i = 0; i < NCLI; i++)
    CHECK_STR(clis[i].log, "T:{\"type\":\"status\",\"rec\":true}|T:second|B8|");

  /* From two other threads at once: each one's texts arrive in its order. */
  struct pub p1 = {hub, 0}, p2 = {hub, 0};
  pthread_t t1, t2;
  CHECK_EQ(pthread_create(&t1, NULL, publisher, &p1), 0);
  CHECK_EQ(pthread_create(&t2, NULL, publisher, &p2), 0);
  WAIT_FOR_MGR(m, clis[0].texts == 22 && clis[1].texts == 22 && clis[2].texts == 22, 10000);
  void *r1, *r2;
  pthread_join(t1, &r1);
  pthread_join(t2, &r2);
  CHECK(r1 == NULL && r2 == NULL);
  for (int i = 0; i < NCLI; i++) {
    /* Both publishers wrote {"n":0}..{"n":9}: for each n, two copies,
     * the k-th {"n":k} after every {"n":k-1} of the same thread. Checked
     * as: the positions of n's first copies rise with n. */
    const char *prev = clis[i].log;
    for (int n = 0; n < 10; n++) {
      char want[16];
      snprintf(want, sizeof(want), "{\"n\":%d}", n);
      const char *at = strstr(prev, want);
      CHECK_MSG(at != NULL, "viewer %d lacks %s: %s", i, want, clis[i].log);
      prev = at;
    }
  }
  sl_hub_stats hs;
  sl_hub_stats_get(hub, &hs);
  CHECK_EQ(hs.texts_in, 22);
  CHECK_EQ(hs.texts_sent, 22 * NCLI);
  CHECK_EQ(hs.text_drops, 0);
  sl_sub_stats ss[NCLI];
  CHECK_EQ(sl_hub_subs(hub, ss, NCLI), NCLI);
  for (int i = 0; i < NCLI; i++) {
    CHECK_EQ(ss[i].texts_sent, 22);
    CHECK_EQ(ss[i].text_drops, 0);
  }
  sl_hub_free(hub);
  close_all(m);
  CHECK_MGR_FREE_CLEAN(m);
  CHECK_MEM_CLEAN();
}

TEST_T(hub_text_stalled_viewer_drops_counted, 60) {
  int err = 0;
  memset(clis, 0, sizeof(clis));
  sl_mgr *m = sl_mgr_new(NULL, &err);
  CHECK(m != NULL);
  sl_hub_opts ho = {.sub = {.send_max = 64 * 1024}};
  hub = sl_hub_new(m, "status", &ho, &err);
  CHECK(hub != NULL);
  sl_conn *l = sl_http_listen(m, "127.0.0.1:0", NULL, on_http, NULL, &err);
  CHECK(l != NULL);
  int port = sl_conn_local_port(l);
  char url[64];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws", port);
  CHECK(sl_ws_connect(m, url, NULL, on_client, &clis[0], &err) != NULL);
  /* A viewer that upgrades and then never reads, with a small receive
   * window. */
  int fd = test_dial("127.0.0.1", port, 4096);
  CHECK(fd >= 0);
  static const char up[] = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n";
  CHECK_EQ(write(fd, up, sizeof(up) - 1), (ssize_t)(sizeof(up) - 1));
  WAIT_FOR_MGR(m, clis[0].open && sl_hub_subs(hub, NULL, 0) == 2, 5000);
  char big[8192];
  memset(big, 'x', sizeof(big));
  sl_sub_stats ss[2];
  int sent = 0;
  for (; sent < 4000; sent++) {
    CHECK_EQ(sl_hub_publish_text(hub, big, sizeof(big)), 0);
    sl_mgr_poll(m, 1);
    CHECK_EQ(sl_hub_subs(hub, ss, 2), 2);
    if (ss[0].text_drops + ss[1].text_drops >= 5) break;
  }
  CHECK(sent < 4000);
  WAIT_FOR_MGR(m, clis[0].texts == sent + 1, 10000);
  CHECK_EQ(sl_hub_subs(hub, ss, 2), 2);
  /* The stalled viewer is the one with drops; the healthy one has none,
   * and every text was either sent or counted as a drop. */
  int stalled = ss[0].text_drops ? 0 : 1;
  CHECK_EQ(ss[1 - stalled].text_drops, 0);
  CHECK_EQ(ss[1 - stalled].texts_sent, sent + 1);
  CHECK_EQ(ss[stalled].texts_sent + ss[stalled].text_drops, sent + 1);
  CHECK_LE(ss[stalled].queued, 64 * 1024);
  sl_hub_stats hs;
  sl_hub_stats_get(hub, &hs);
  CHECK_EQ(hs.text_drops, ss[stalled].text_drops);
  CHECK_EQ(hs.texts_in, sent + 1);
  close(fd);
  sl_hub_free(hub);
  close_all(m);
  CHECK_MGR_FREE_CLEAN(m);
  CHECK_MEM_CLEAN();
}
