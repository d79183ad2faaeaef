/*
 * Loopback tests of multiplexed connections (sl_mux, docs/mux.md): an HTTP
 * listener whose GET /mux becomes a mux, hubs fed by producer timers (each
 * frame's first 8 bytes are its hub sequence number), and clients that are
 * raw sockets of the test thread speaking just enough WebSocket, read
 * without blocking between sl_mgr_poll calls, at full speed or through a
 * byte-rate limit (a slow link), or not at all (stalled).
 *
 * Every test ends with every connection closed, the hubs and the manager
 * freed, and sl_mem_stats back to zero.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"
#include "hub_test.h"
#include "ws_test.h"
#include "sluice.h"
#include "test.h"

#define CHECK_GT(a, b) CHECK_GE((long long)(a), (long long)(b) + 1)
#define MAXH 17
#define MAXID 40

/* ---- the server ------------------------------------------------------- */

struct hubp {
  sl_hub *h;
  sl_timer *t;
  size_t len;
  uint64_t published;
};

static struct {
  sl_mgr *m;
  sl_conn *l;
  int port;
  struct hubp hp[MAXH];
  int nh;
  sl_mux_opts mo;
  int leaves, evicted_leaves;
} S;

static void on_http(sl_conn *c, int ev, void *ev_data) {
  if (ev == SL_EV_WS_MSG) {
    sl_mux *x = sl_mux_of(c);
    if (x) sl_mux_handle(x, ev_data);
    return;
  }
  if (ev != SL_EV_HTTP_MSG) return;
  const sl_http_msg *hm = ev_data;
  if (hm->path.len == 4 && memcmp(hm->path.ptr, "/mux", 4) == 0) {
    if (sl_ws_upgrade(c, hm, NULL) != 0) return;
    int err = 0;
    CHECK_MSG(sl_mux_new(c, &S.mo, &err) != NULL, "sl_mux_new: %s", sl_strerror(err));
  } else {
    sl_http_reply_status(c, 404);
  }
}

static void on_hub(sl_hub *h, const sl_hub_event *e, void *arg) {
  (void)h, (void)arg;
  if (e->type != SL_HUB_LEAVE) return;
  S.leaves++;
  if (e->reason == SL_CLOSE_EVICTED) S.evicted_leaves++;
}

static void produce(sl_mgr *m, void *arg) {
  struct hubp *p = arg;
  (void)m;
  sl_buf *b = sl_buf_new(p->len);
  CHECK(b != NULL);
  unsigned char *d = sl_buf_data(b);
  memset(d + 8, (int)(p->published & 0xff), p->len - 8);
  mp_put_u64(d, ++p->published); /* == the hub's seq: one producer */
  CHECK_EQ(sl_hub_publish(p->h, b, 0, 0), 0);
  sl_buf_unref(b);
}

static void mux_srv_start(void) {
  int err = 0;
  memset(&S, 0, sizeof(S));
  S.m = sl_mgr_new(NULL, &err);
  CHECK_MSG(S.m != NULL, "sl_mgr_new: %s", sl_strerror(err));
  S.l = sl_http_listen(S.m, "127.0.0.1:0", NULL, on_http, NULL, &err);
  CHECK_MSG(S.l != NULL, "sl_http_listen: %s", sl_strerror(err));
  S.port = sl_conn_local_port(S.l);
}

/* Hub "h<i>" publishing `len`-byte frames every `ms` (0: no producer). */
static sl_hub *hub_add(unsigned ms, size_t len, size_t max_subs) {
  int err = 0;
  char name[16];
  struct hubp *p = &S.hp[S.nh];
  snprintf(name, sizeof(name), "h%d", S.nh);
  sl_hub_opts o = {.on_event = on_hub, .max_subs = max_subs, .stall_evict_ms = 300};
  p->h = sl_hub_new(S.m, name, &o, &err);
  CHECK_MSG(p->h != NULL, "sl_hub_new: %s", sl_strerror(err));
  p->len = len;
  if (ms) {
    p->t = sl_timer_add(S.m, ms, SL_TIMER_REPEAT, produce, p, &err);
    CHECK(p->t != NULL);
  }
  S.nh++;
  return p->h;
}

static void producers_stop(void) {
  for (int i = 0; i < S.nh; i++)
    if (S.hp[i].t) {
      sl_timer_free(S.m, S.hp[i].t);
      S.hp[i].t = NULL;
    }
}

static size_t nconns(void) {
  sl_mgr_stats st;
  sl_mgr_stats_get(S.m, &st);
  return st.conns;
}

/* ---- the clients ------------------------------------------------------ */

struct msub {
  uint64_t frames, bytes, last_seq, bad;
  uint64_t by_type[4];   /* H.264 media messages by type (docs/mux.md) */
  uint64_t after_unsub;  /* frames after its "unsubscribed" */
  int unsubscribed;
};

struct cli {
  int fd, eof, open;
  unsigned char *buf;   /* received, not yet parsed */
  size_t len, cap;
  char head[2048];
  size_t hlen;
  double rate;          /* bytes per ms; 0 = no limit */
  double credit;
  uint64_t last_ms;
  struct msub sub[MAXID];
  char texts[64][256];  /* text messages, in order (the first 64) */
  int ntexts;
  uint64_t media;       /* binary messages */
  int h264;             /* the media are H.264 (not checked as JPEG frames) */
};

static void cli_open(struct cli *k, int rcvbuf) {
  memset(k, 0, sizeof(*k));
  k->fd = test_connect(S.port, rcvbuf);
  char req[512];
  int n = snprintf(req, sizeof(req),
                   "GET /mux HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n", S.port);
  test_send_all(k->fd, req, (size_t)n);
  fcntl(k->fd, F_SETFL, fcntl(k->fd, F_GETFL) | O_NONBLOCK);
  k->last_ms = test_now_ms();
}

static void cli_close(struct cli *k) {
  if (k->fd >= 0) close(k->fd);
  k->fd = -1;
  free(k->buf);
  k->buf = NULL;
}

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void on_message(struct cli *k, int op, const unsigned char *p, size_t n) {
  if (op == 1) {
    if (k->ntexts < 64) {
      snprintf(k->texts[k->ntexts], sizeof(k->texts[0]), "%.*s", (int)n, (const char *)p);
      double id;
      if (strstr(k->texts[k->ntexts], "\"unsubscribed\"") &&
          sl_json_get_num((const char *)p, n, "$.id", &id) == 0 && id < MAXID)
        k->sub[(int)id].unsubscribed = 1;
    }
    k->ntexts++;
    return;
  }
  if (op != 2) return;
  k->media++;
  CHECK_MSG(n >= 28, "a media message of %zu bytes", n);
  uint32_t id = be32(p), seq = be32(p + 8);
  CHECK_MSG(id < MAXID, "subscription id %u", id);
  if (k->h264) { /* an H.264 hub's: access units (1), fMP4 init (2) and fragments (3) */
    CHECK_MSG(p[4] >= 1 && p[4] <= 3, "media type %d", p[4]);
    k->sub[id].by_type[p[4]]++;
    return;
  }
  CHECK_EQ(p[4], 0); /* type 0: JPEG (an MJPEG hub's frame) */
  struct msub *s = &k->sub[id];
  if (s->unsubscribed) s->after_unsub++;
  /* In order, and the payload is the frame the header names. */
  if (seq <= s->last_seq || mp_get_u64(p + 20) != seq) s->bad++;
  s->last_seq = seq;
  s->frames++;
  s->bytes += n;
}

/* Parse whole WebSocket frames (server to client: unmasked, unfragmented). */
static void parse(struct cli *k) {
  size_t off = 0;
  for (;;) {
    if (k->len - off < 2) break;
    const unsigned char *p = k->buf + off;
    size_t h = 2, n = p[1] & 0x7f;
    CHECK_MSG(!(p[1] & 0x80), "a masked frame from the server");
    if (n == 126) {
      if (k->len - off < 4) break;
      n = (size_t)p[2] << 8 | p[3];
      h = 4;
    } else if (n == 127) {
      if (k->len - off < 10) break;
      n = 0;
      for (int i = 0; i < 8; i++) n = n << 8 | p[2 + i];
      h = 10;
    }
    if (k->len - off < h + n) break;
    CHECK_MSG(p[0] & 0x80, "a fragmented message");
    on_message(k, p[0] & 0x0f, p + h, n);
    off += h + n;
  }
  memmove(k->buf, k->buf + off, k->len - off);
  k->len -= off;
}

static void cli_read(struct cli *k) {
  uint64_t now = test_now_ms();
  if (k->rate > 0) {
    k->credit += k->rate * (double)(now - k->last_ms);
    if (k->credit > 65536) k->credit = 65536;
  }
  k->last_ms = now;
  while (k->fd >= 0 && !k->eof) {
    if (!k->open) {
      ssize_t r = recv(k->fd, k->head + k->hlen, 1, 0);
      if (r <= 0) {
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) k->eof = 1;
        return;
      }
      k->hlen++;
      if (k->hlen >= 4 && memcmp(k->head + k->hlen - 4, "\r\n\r\n", 4) == 0) {
        CHECK_MSG(strncmp(k->head, "HTTP/1.1 101 ", 13) == 0, "%.*s", (int)k->hlen, k->head);
        k->open = 1;
      }
      CHECK(k->hlen < sizeof(k->head));
      continue;
    }
    size_t want = 65536;
    if (k->rate > 0) {
      if (k->credit < 1) return;
      if (want > (size_t)k->credit) want = (size_t)k->credit;
    }
    if (k->cap - k->len < want) {
      k->cap = k->len + want + 65536;
      k->buf = realloc(k->buf, k->cap);
      CHECK(k->buf != NULL);
    }
    ssize_t r = recv(k->fd, k->buf + k->len, want, 0);
    if (r > 0) {
      k->len += (size_t)r;
      if (k->rate > 0) k->credit -= (double)r;
      parse(k);
    } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      k->eof = 1;
    } else {
      return;
    }
  }
}

static void cli_send(struct cli *k, const char *text) {
  raw_send_frame(k->fd, 0x81, text, strlen(text), 1);
}

/* Run the loop for `ms`, reading every client that is not stalled. */
static void run(uint64_t ms, struct cli **ks, int n) {
  uint64_t end = test_now_ms() + ms;
  do {
    sl_mgr_poll(S.m, 1);
    for (int i = 0; i < n; i++)
      if (ks[i]->rate >= 0) cli_read(ks[i]);
  } while (test_now_ms() < end);
}

/* Run until client `k` holds `n` text messages (5 s at most). */
static void wait_texts(struct cli *k, int n, struct cli **ks, int nk) {
  uint64_t end = test_now_ms() + 5000u * (uint64_t)test_slowdown();
  while (k->ntexts < n && test_now_ms() < end) run(1, ks, nk);
  CHECK_MSG(k->ntexts >= n, "%d text messages, waited for %d (last: %s)", k->ntexts, n,
            k->ntexts ? k->texts[k->ntexts - 1] : "-");
}

/* The text message `i` has "type" `type`, and when `error` is set, that
 * "error" text. */
static void check_text(const struct cli *k, int i, const char *type, int id, const char *error) {
  const char *t = k->texts[i];
  char v[64];
  CHECK_MSG(sl_json_get_str(t, strlen(t), "$.type", v, sizeof(v)) >= 0 && strcmp(v, type) == 0,
            "message %d is %s, expected a %s", i, t, type);
  double d;
  if (id >= 0)
    CHECK_MSG(sl_json_get_num(t, strlen(t), "$.id", &d) == 0 && d == id, "message %d: %s", i, t);
  else
    CHECK_MSG(sl_json_get(t, strlen(t), "$.id", NULL, NULL) == SL_JSON_NULL, "message %d: %s", i, t);
  if (error)
    CHECK_MSG(sl_json_get_str(t, strlen(t), "$.error", v, sizeof(v)) >= 0 && strcmp(v, error) == 0,
              "message %d is %s, expected error \"%s\"", i, t, error);
}

/* Close the clients, wait until the server saw them go, free everything:
 * the counters must be back to zero. */
static void finish(struct cli **ks, int n) {
  producers_stop();
  for (int i = 0; i < n; i++) cli_close(ks[i]);
  uint64_t end = test_now_ms() + 3000;
  while (nconns() > 1 && test_now_ms() < end) sl_mgr_poll(S.m, 5);
  CHECK_EQ(nconns(), 1);
  for (int i = 0; i < S.nh; i++) {
    sl_hub_stats hs;
    sl_hub_stats_get(S.hp[i].h, &hs);
    CHECK_EQ(hs.subs, 0);
    CHECK_EQ(hs.joins, hs.leaves);
  }
  for (int i = 0; i < S.nh; i++) sl_hub_free(S.hp[i].h);
  CHECK_MGR_FREE_CLEAN(S.m);
}

/* ---- the tests -------------------------------------------------------- */

TEST_T(mux_net_subscribe_unsubscribe_and_errors, 30) {
  mux_srv_start();
  S.mo.max_subs = 0; /* the default: 32 */
  hub_add(20, 2000, 0);
  hub_add(0, 100, 0); /* never publishes */
  struct cli k, *ks[] = {&k};
  cli_open(&k, 0);
  int t = 0;
  cli_send(&k, "{\"op\":\"subscribe\",\"id\":1,\"stream\":\"h0\"}");
  wait_texts(&k, ++t, ks, 1);
  check_text(&k, t - 1, "subscribed", 1, NULL);
  CHECK(strstr(k.texts[t - 1], "\"kind\":\"mjpeg\"") && strstr(k.texts[t - 1], "\"format\":\"jpeg\""));
  static const struct { const char *msg, *error; int id; } bad[] = {
      {"{\"op\":\"subscribe\",\"id\":2,\"stream\":\"nope\"}", "unknown stream", 2},
      {"{\"op\":\"subscribe\",\"id\":2,", "bad json", -1},
      {"[1,2,3]", "bad json", -1},
      {"{\"op\":\"subscribe\",\"id\":-4,\"stream\":\"h0\"}", "bad id", -1},
      {"{\"op\":\"subscribe\",\"id\":2.5,\"stream\":\"h0\"}", "bad id", -1},
      {"{\"op\":\"dance\",\"id\":3}", "unknown op", 3},
      {"{\"op\":\"subscribe\",\"id\":1,\"stream\":\"h0\"}", "id in use", 1},
      {"{\"op\":\"subscribe\",\"id\":4,\"stream\":\"h0\",\"policy\":\"lossless\"}", "forbidden", 4},
      {"{\"op\":\"subscribe\",\"id\":4,\"stream\":\"h0\",\"policy\":\"sometimes\"}", "bad policy", 4},
      {"{\"op\":\"subscribe\",\"id\":4,\"stream\":\"h0\",\"fps\":\"x\"}", "bad fps", 4},
      {"{\"op\":\"subscribe\",\"id\":4,\"stream\":\"h0\",\"format\":\"h264\"}", "format not offered", 4},
      {"{\"op\":\"unsubscribe\",\"id\":9}", "unknown id", 9},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    cli_send(&k, bad[i].msg);
    wait_texts(&k, ++t, ks, 1);
    check_text(&k, t - 1, "error", bad[i].id, bad[i].error);
  }
  /* A control message past max_msg (1 KiB) is answered, not obeyed. */
  char big[2000];
  memset(big, ' ', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  memcpy(big, "{\"op\":\"unsubscribe\",\"id\":1}", 27);
  cli_send(&k, big);
  wait_texts(&k, ++t, ks, 1);
  check_text(&k, t - 1, "error", -1, "message too large");
  /* Frames come for id 1, in order, each the frame its header names. */
  run(300, ks, 1);
  CHECK_GE(k.sub[1].frames, 3);
  CHECK_EQ(k.sub[1].bad, 0);
  /* Per-subscription counters, on the server. */
  sl_sub_stats ss[4];
  sl_hub_stats hs;
  sl_hub_stats_get(S.hp[0].h, &hs);
  CHECK_EQ(hs.subs, 1);
  CHECK_EQ(sl_hub_subs(S.hp[0].h, ss, 4), 1);
  CHECK(ss[0].muxed && ss[0].mux_id == 1 && ss[0].frames_sent >= 3);
  /* Up to 32 at once: ids 1..32 then the 33rd is refused. */
  for (int id = 2; id <= 33; id++) {
    char m[96];
    snprintf(m, sizeof(m), "{\"op\":\"subscribe\",\"id\":%d,\"stream\":\"h%d\",\"fps\":5}", id, id & 1);
    cli_send(&k, m);
    wait_texts(&k, ++t, ks, 1);
    if (id <= 32) check_text(&k, t - 1, "subscribed", id, NULL);
    else check_text(&k, t - 1, "error", id, "too many subscriptions");
  }
  sl_hub_stats_get(S.hp[1].h, &hs);
  CHECK_EQ(hs.subs, 15); /* the odd ids 3..31 */
  /* Unsubscribe: the answer, then no frame of that id. */
  cli_send(&k, "{\"op\":\"unsubscribe\",\"id\":1}");
  wait_texts(&k, ++t, ks, 1);
  check_text(&k, t - 1, "unsubscribed", 1, NULL);
  uint64_t f1 = k.sub[1].frames;
  run(200, ks, 1);
  CHECK_EQ(k.sub[1].after_unsub, 0);
  CHECK_EQ(k.sub[1].frames, f1);
  CHECK_GE(k.sub[2].frames, 1); /* the others go on */
  sl_hub_stats_get(S.hp[0].h, &hs);
  CHECK_EQ(hs.subs, 16); /* the even ids 2..32 */
  /* A freed hub ends its subscriptions, not the socket. */
  sl_timer_free(S.m, S.hp[1].t);
  S.hp[1].t = NULL;
  sl_hub_free(S.hp[1].h);
  S.hp[1] = S.hp[--S.nh];
  run(100, ks, 1);
  CHECK_EQ(k.ntexts, t + 15);
  for (int i = t; i < t + 15; i++) {
    double id;
    CHECK(strstr(k.texts[i], "\"type\":\"unsubscribed\"") && strstr(k.texts[i], "hub_closed"));
    CHECK(sl_json_get_num(k.texts[i], strlen(k.texts[i]), "$.id", &id) == 0 && ((int)id & 1));
  }
  uint64_t f2 = k.sub[2].frames;
  run(200, ks, 1);
  CHECK_GT(k.sub[2].frames, f2);
  CHECK(!k.eof);
  finish(ks, 1);
}

/* 16 subscriptions of 16 streams on one socket, one stream at 200 fps and
 * one at 5 fps: each gets its own stream, in order, at its own rate. */
TEST_T(mux_net_16_streams_fast_and_slow, 30) {
  mux_srv_start();
  hub_add(5, 4000, 0); /* fast */
  hub_add(200, 4000, 0); /* slow */
  for (int i = 2; i < 16; i++) hub_add(33, 8000, 0);
  struct cli k, *ks[] = {&k};
  cli_open(&k, 0);
  for (int i = 0; i < 16; i++) {
    char m[96];
    snprintf(m, sizeof(m), "{\"op\":\"subscribe\",\"id\":%d,\"stream\":\"h%d\"}", i + 1, i);
    cli_send(&k, m);
  }
  wait_texts(&k, 16, ks, 1);
  for (int i = 0; i < 16; i++) check_text(&k, i, "subscribed", i + 1, NULL);
  uint64_t p0[16], f0[16];
  for (int i = 0; i < 16; i++) p0[i] = S.hp[i].published, f0[i] = k.sub[i + 1].frames;
  run(2000, ks, 1);
  for (int i = 0; i < 16; i++) {
    uint64_t pub = S.hp[i].published - p0[i], got = k.sub[i + 1].frames - f0[i];
    if (i < 2) printf("  stream h%d: %llu published, %llu received\n", i, (unsigned long long)pub,
                      (unsigned long long)got);
    CHECK_EQ(k.sub[i + 1].bad, 0);
    CHECK_MSG(got + 2 >= pub * 9 / 10, "h%d: %llu of %llu frames", i, (unsigned long long)got,
              (unsigned long long)pub);
  }
  CHECK_GT(k.sub[1].frames - f0[0], 10 * (k.sub[2].frames - f0[1]));
  finish(ks, 1);
}

/* Fairness over a slow link: a mux carries a greedy subscription (large
 * frames, faster than the link, queue:8 so it always has one waiting)
 * beside three modest ones; three control sockets, read at the same rate,
 * carry one modest stream each. Every modest subscription must get at
 * least 90 % of the frames its control gets. */
TEST_T(mux_net_fairness_against_alone, 40) {
  mux_srv_start();
  hub_add(10, 100000, 0); /* greedy: 10 MB/s */
  for (int i = 1; i <= 3; i++) hub_add(50, 10000, 0); /* 200 KB/s each */
  struct cli mx, c[3], *ks[] = {&mx, &c[0], &c[1], &c[2]};
  const double rate = 4000; /* bytes per ms: 4 MB/s */
  cli_open(&mx, 65536);
  cli_send(&mx, "{\"op\":\"subscribe\",\"id\":0,\"stream\":\"h0\",\"policy\":\"queue:8\"}");
  for (int i = 1; i <= 3; i++) {
    char m[96];
    snprintf(m, sizeof(m), "{\"op\":\"subscribe\",\"id\":%d,\"stream\":\"h%d\"}", i, i);
    cli_send(&mx, m);
    cli_open(&c[i - 1], 65536);
    snprintf(m, sizeof(m), "{\"op\":\"subscribe\",\"id\":%d,\"stream\":\"h%d\"}", i, i);
    cli_send(&c[i - 1], m);
  }
  wait_texts(&mx, 4, ks, 4);
  for (int i = 0; i < 4; i++) ks[i]->rate = rate;
  run(500, ks, 4); /* settle: queues full, links busy */
  uint64_t m0[4], c0[3];
  for (int i = 0; i < 4; i++) m0[i] = mx.sub[i].frames;
  for (int i = 0; i < 3; i++) c0[i] = c[i].sub[i + 1].frames;
  run(3000, ks, 4);
  double worst = 1e9;
  for (int i = 1; i <= 3; i++) {
    uint64_t got = mx.sub[i].frames - m0[i], alone = c[i - 1].sub[i].frames - c0[i - 1];
    double r = alone ? (double)got / (double)alone : 0;
    fprintf(stderr, "  h%d: %llu frames beside the greedy one, %llu alone: ratio %.3f\n", i,
           (unsigned long long)got, (unsigned long long)alone, r);
    if (r < worst) worst = r;
    CHECK_GT(alone, 20);
    CHECK_EQ(mx.sub[i].bad, 0);
  }
  uint64_t greedy = mx.sub[0].frames - m0[0];
  fprintf(stderr, "  greedy h0: %llu frames of %llu bytes (the rest of the link)\n",
         (unsigned long long)greedy, (unsigned long long)S.hp[0].len);
  CHECK_MSG(worst >= 0.9, "a modest subscription got %.3f of what it gets alone", worst);
  CHECK_GT(greedy, 10); /* the greedy one is served too */
  CHECK_EQ(mx.sub[0].bad, 0);
  finish(ks, 4);
}

/* A mux socket that stops reading is evicted as one connection: a new
 * viewer of a full hub evicts it (SL_EVICT_SLOT), and all of its
 * subscriptions leave all of their hubs at once; the counters then are
 * those of the newcomer only, and zero once it goes. */
TEST_T(mux_net_stalled_socket_evicted_as_one, 30) {
  mux_srv_start();
  hub_add(10, 60000, 1); /* one viewer at most */
  for (int i = 1; i < 4; i++) hub_add(20, 30000, 0);
  struct cli st, nw, *ks[] = {&st, &nw};
  cli_open(&st, 16384);
  for (int i = 0; i < 4; i++) {
    char m[96];
    snprintf(m, sizeof(m), "{\"op\":\"subscribe\",\"id\":%d,\"stream\":\"h%d\"}", 10 + i, i);
    cli_send(&st, m);
  }
  wait_texts(&st, 4, ks, 1);
  for (int i = 0; i < 4; i++) check_text(&st, i, "subscribed", 10 + i, NULL);
  st.rate = -1; /* stalled from now on */
  nw.fd = -1;
  /* Until the socket counts as stalled for the hub (300 ms without
   * progress and bytes queued). */
  run(1500, ks, 1);
  for (int i = 0; i < 4; i++) {
    sl_hub_stats hs;
    sl_hub_stats_get(S.hp[i].h, &hs);
    CHECK_EQ(hs.subs, 1);
  }
  sl_sub_stats ss;
  CHECK_EQ(sl_hub_subs(S.hp[0].h, &ss, 1), 1);
  CHECK_MSG(ss.stalled && ss.queued > 0, "stalled %d, queued %zu", ss.stalled, ss.queued);
  size_t before = nconns();
  cli_open(&nw, 0);
  ks[1] = &nw;
  cli_send(&nw, "{\"op\":\"subscribe\",\"id\":1,\"stream\":\"h0\"}");
  wait_texts(&nw, 1, ks + 1, 1);
  check_text(&nw, 0, "subscribed", 1, NULL);
  run(100, ks + 1, 1);
  for (int i = 0; i < 4; i++) {
    sl_hub_stats hs;
    sl_hub_stats_get(S.hp[i].h, &hs);
    CHECK_EQ(hs.subs, i == 0 ? 1 : 0);
    if (i == 0) CHECK_EQ(hs.evictions[SL_EVICT_SLOT], 1);
  }
  CHECK_EQ(S.leaves, 4);
  CHECK_EQ(nconns(), before); /* the stalled one went, the new one came */
  /* The stalled client sees its connection reset. */
  char b[4096];
  ssize_t r;
  int gone = 0;
  uint64_t end = test_now_ms() + 2000;
  while (!gone && test_now_ms() < end) {
    r = recv(st.fd, b, sizeof(b), MSG_DONTWAIT);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) gone = 1;
    sl_mgr_poll(S.m, 1);
  }
  CHECK(gone);
  sl_mgr_stats ms;
  sl_mgr_stats_get(S.m, &ms);
  CHECK_LE(ms.queued, 2 * 60000 + 65536);
  CHECK_GE(nw.sub[1].frames, 1);
  finish(ks, 2);
}

/* H.264 over a mux: an access unit of the test's own (parameter sets of a
 * real 160x120 baseline stream, then one fake slice NAL unit). */
static const unsigned char SPS_160[] = {0x67, 0x42, 0xc0, 0x0b, 0xd9, 0x02, 0x84, 0x7e,
                                        0x5c, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40,
                                        0x00, 0x00, 0x0f, 0x03, 0xc5, 0x0a, 0x92};
static const unsigned char PPS_160[] = {0x68, 0xcb, 0x83, 0xcb, 0x20};

static void publish_au(sl_hub *h, int key) {
  unsigned char o[600];
  size_t k = 0;
  if (key) {
    memcpy(o + k, "\0\0\0\1", 4), memcpy(o + k + 4, SPS_160, sizeof(SPS_160));
    k += 4 + sizeof(SPS_160);
    memcpy(o + k, "\0\0\0\1", 4), memcpy(o + k + 4, PPS_160, sizeof(PPS_160));
    k += 4 + sizeof(PPS_160);
  }
  memcpy(o + k, "\0\0\0\1", 4);
  o[k + 4] = key ? 0x65 : 0x41;
  memset(o + k + 5, 0x80, 400); /* first_mb_in_slice 0, then filler */
  k += 405;
  sl_buf *b = sl_buf_from(o, k);
  CHECK(b != NULL);
  CHECK_EQ(sl_hub_publish(h, b, 0, 0), 0);
  sl_buf_unref(b);
}

/* An H.264 hub's subscriptions over a mux: each gets its `config` message
 * (naming its id) before its first frame, then every access unit (format
 * h264) or the init segment and a fragment per frame (fmp4). */
TEST_T(mux_net_h264_config_and_frames, 30) {
  mux_srv_start();
  int err = 0;
  sl_hub_opts o = {.kind = SL_KIND_H264, .on_event = on_hub};
  S.hp[0].h = sl_hub_new(S.m, "v0", &o, &err);
  CHECK_MSG(S.hp[0].h != NULL, "sl_hub_new: %s", sl_strerror(err));
  S.nh = 1;
  sl_hub *h = S.hp[0].h;
  publish_au(h, 1); /* the GOP a subscriber joins with */
  for (int i = 0; i < 3; i++) publish_au(h, 0);
  struct cli k, *ks[] = {&k};
  cli_open(&k, 0);
  k.h264 = 1;
  cli_send(&k, "{\"op\":\"subscribe\",\"id\":1,\"stream\":\"v0\",\"format\":\"h264\"}");
  cli_send(&k, "{\"op\":\"subscribe\",\"id\":2,\"stream\":\"v0\",\"format\":\"fmp4\"}");
  wait_texts(&k, 4, ks, 1);
  int seen[3] = {0, 0, 0};
  for (int i = 0; i < 4; i++) {
    char type[16];
    double id = -1;
    const char *t = k.texts[i];
    CHECK(sl_json_get_str(t, strlen(t), "$.type", type, sizeof(type)) >= 0);
    CHECK(sl_json_get_num(t, strlen(t), "$.id", &id) == 0 && (id == 1 || id == 2));
    if (strcmp(type, "subscribed") == 0) {
      CHECK_MSG(seen[(int)id] == 0, "message %d: %s", i, t);
      seen[(int)id] = 1;
    } else {
      CHECK_MSG(strcmp(type, "config") == 0 && seen[(int)id] == 1, "message %d: %s", i, t);
      CHECK_MSG(strstr(t, "\"codec\":\"avc1.42c00b\"") && strstr(t, "\"width\":160"), "config: %s", t);
      seen[(int)id] = 2;
    }
  }
  CHECK(seen[1] == 2 && seen[2] == 2);
  for (int i = 0; i < 4; i++) {
    publish_au(h, i == 2);
    run(20, ks, 1);
  }
  run(200, ks, 1);
  printf("  h264: %llu access units; fmp4: %llu init, %llu fragments\n",
         (unsigned long long)k.sub[1].by_type[1], (unsigned long long)k.sub[2].by_type[2],
         (unsigned long long)k.sub[2].by_type[3]);
  CHECK_EQ(k.sub[1].by_type[1], 8); /* the cached GOP, then every new unit */
  CHECK_EQ(k.sub[2].by_type[2], 1);
  CHECK_EQ(k.sub[2].by_type[3], 8);
  finish(ks, 1);
}

/* TCP_NOTSENT_LOWAT is the socket's: the mux sets the largest its
 * subscriptions ask for (each hub's automatic value follows its frame
 * size), and lowers it again when that subscription goes. */
TEST_T(mux_net_lowat_is_its_largest_subscriptions, 30) {
  mux_srv_start();
  hub_add(20, 2000, 0);  /* small frames: the floor, 16 KiB */
  hub_add(20, 60000, 0); /* its average frame */
  struct cli k, *ks[] = {&k};
  cli_open(&k, 0);
  int t = 0;
  const char *sub[2] = {"{\"op\":\"subscribe\",\"id\":1,\"stream\":\"h0\"}",
                        "{\"op\":\"subscribe\",\"id\":2,\"stream\":\"h1\"}"};
  static const size_t want[3] = {16384, 60000, 16384};
  for (int step = 0; step < 3; step++) {
    cli_send(&k, step < 2 ? sub[step] : "{\"op\":\"unsubscribe\",\"id\":2}");
    wait_texts(&k, ++t, ks, 1);
    run(200, ks, 1);
    sl_sub_stats ss;
    CHECK_EQ(sl_hub_subs(S.hp[0].h, &ss, 1), 1);
    CHECK_EQ(ss.notsent_lowat, want[step]);
    sl_conn *sc = sl_conn_find(S.m, ss.id);
    CHECK(sc != NULL);
    int v = 0;
    socklen_t len = sizeof(v);
    CHECK_EQ(getsockopt(sl_conn_fd(sc), IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, &len), 0);
    CHECK_EQ(v, (int)want[step]);
  }
  CHECK_GE(k.sub[1].frames, 10);
  finish(ks, 1);
}
