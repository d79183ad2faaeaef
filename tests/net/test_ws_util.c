/* The helpers of ws_test.h: a threaded sluice WebSocket server, a raw
 * WebSocket client socket and a runner for the node scripts. No tests. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "ws_test.h"

#define NODE_DIR SL_SOURCE_DIR "/tests/node"

/* ---- the server ---- */

static void copy_str(char *dst, size_t cap, const char *p, size_t n) {
  if (n >= cap) n = cap - 1;
  memcpy(dst, p, n);
  dst[n] = '\0';
}

static int is_text(const sl_ws_msg *wm, const char *s) {
  return wm->opcode == SL_WS_TEXT && wm->data.len == strlen(s) &&
         memcmp(wm->data.ptr, s, wm->data.len) == 0;
}

static void on_ws_msg(struct srv *s, sl_conn *c, const sl_ws_msg *wm) {
  s->msgs++;
  s->bytes[wm->opcode] += wm->data.len;
  if (wm->opcode == SL_WS_TEXT) copy_str(s->last_text, sizeof(s->last_text), wm->data.ptr, wm->data.len);
  if (is_text(wm, "close-me")) {
    s->close_rc = sl_ws_close(c, 4001, "bye");
  } else if (is_text(wm, "ping-me")) {
    if (sl_ws_send(c, SL_WS_PING, "srv", 3) != 0) s->send_errors++;
  } else if (sl_ws_send(c, wm->opcode, wm->data.ptr, wm->data.len) != 0) {
    s->send_errors++;
  }
}

static void on_ws_ctl(struct srv *s, sl_conn *c, const sl_ws_msg *wm) {
  if (wm->opcode == SL_WS_PING) {
    s->pings++;
    copy_str(s->ping_data, sizeof(s->ping_data), wm->data.ptr, wm->data.len);
  } else if (wm->opcode == SL_WS_PONG) {
    s->pongs++;
    copy_str(s->pong_data, sizeof(s->pong_data), wm->data.ptr, wm->data.len);
    if (wm->data.len == 3 && memcmp(wm->data.ptr, "srv", 3) == 0 &&
        sl_ws_send(c, SL_WS_TEXT, "pong-seen srv", 13) != 0)
      s->send_errors++;
  } else if (wm->opcode == SL_WS_CLOSE) {
    s->close_code = wm->close_code;
    copy_str(s->close_text, sizeof(s->close_text), wm->data.ptr, wm->data.len);
  }
}

static void srv_ev(sl_conn *c, int ev, void *ev_data) {
  struct srv *s = sl_conn_data(c);
  switch (ev) {
    case SL_EV_HTTP_MSG: {
      const sl_http_msg *hm = ev_data;
      if (!sl_http_match(hm, "/ws", NULL, 0)) sl_http_reply_status(c, 404);
      else if (sl_ws_upgrade(c, hm, &s->wo) != 0) s->upgrade_refused++;
      break;
    }
    case SL_EV_WS_OPEN: {
      const char *p = sl_ws_protocol(c);
      snprintf(s->protocol, sizeof(s->protocol), "%s", p ? p : "-");
      s->ws = c;
      if (s->nconns < SRV_MAX_CONNS) s->conns[s->nconns++] = c;
      s->open_ms = sl_mgr_now(sl_conn_mgr(c));
      if (s->on_open) s->on_open(s, c);
      atomic_fetch_add(&s->opens, 1);
      break;
    }
    case SL_EV_WS_MSG: on_ws_msg(s, c, ev_data); break;
    case SL_EV_WS_CTL: on_ws_ctl(s, c, ev_data); break;
    case SL_EV_TIMEOUT: s->timeouts++; break;
    case SL_EV_CLOSE:
      if (sl_conn_is_listener(c)) break;
      s->closes++;
      for (int i = 0; i < s->nconns; i++)
        if (s->conns[i] == c) {
          s->conns[i] = s->conns[--s->nconns];
          s->close_reason = sl_conn_close_reason(c);
          s->close_ms = sl_mgr_now(sl_conn_mgr(c));
          if (s->ws == c) s->ws = NULL;
          atomic_fetch_add(&s->ws_closes, 1);
          break;
        }
      break;
  }
}

static void *srv_main(void *arg) {
  struct srv *s = arg;
  int err = 0;
  s->m = sl_mgr_new(&s->mo, &err);
  CHECK_MSG(s->m != NULL, "sl_mgr_new: %s", sl_strerror(err));
  sl_conn *l = sl_http_listen(s->m, "127.0.0.1:0", NULL, srv_ev, s, &err);
  CHECK_MSG(l != NULL, "sl_http_listen: %s", sl_strerror(err));
  s->port = sl_conn_local_port(l);
  atomic_store(&s->ready, 1);
  while (!atomic_load(&s->stop)) sl_mgr_poll(s->m, 10);
  /* Let closes in flight finish: the peers closed before stop was set. */
  uint64_t t0 = test_now_ms();
  do {
    sl_mgr_poll(s->m, 5);
    sl_mgr_stats_get(s->m, &s->end);
  } while (s->end.conns > 1 && test_now_ms() - t0 < 3000);
  if (s->shared) sl_buf_unref(s->shared);
  s->shared = NULL;
  sl_mgr_free(s->m);
  sl_mem_stats_get(&s->mem_after_free);
  return NULL;
}

void srv_start(struct srv *s, const sl_mgr_opts *mo, const sl_ws_opts *wo,
               srv_open_fn on_open) {
  memset(s, 0, sizeof(*s));
  if (mo) s->mo = *mo;
  if (wo) {
    s->wo = *wo;
    for (int i = 0; wo->protocols && wo->protocols[i] && i < 3; i++)
      s->protocols[i] = wo->protocols[i];
    for (int i = 0; wo->origins && wo->origins[i] && i < 3; i++)
      s->origins[i] = wo->origins[i];
    s->wo.protocols = wo->protocols ? s->protocols : NULL;
    s->wo.origins = wo->origins ? s->origins : NULL;
  }
  s->on_open = on_open;
  CHECK_EQ(pthread_create(&s->th, NULL, srv_main, s), 0);
  WAIT_FOR(atomic_load(&s->ready), 10000);
}

void srv_stop(struct srv *s) {
  atomic_store(&s->stop, 1);
  CHECK_EQ(pthread_join(s->th, NULL), 0);
}

void srv_check_clean(const struct srv *s) {
  CHECK_EQ(s->end.conns, 1); /* the listener */
  CHECK_EQ(s->end.held, 0);
  CHECK_EQ(s->end.queued, 0);
  CHECK_EQ(s->end.out_ref, 0);
  CHECK_EQ(s->end.in, 0);
  CHECK_EQ(s->mem_after_free.total, 0);
  CHECK_EQ(s->mem_after_free.nbufs, 0);
}

void srv_wait_flag(struct srv *s, int v) { WAIT_FOR(atomic_load(&s->flag) == v, 5000); }

/* ---- the raw client ---- */

void raw_send_all(int fd, const void *p, size_t n) {
  CHECK_MSG(test_send_all(fd, p, n) == 0, "send: %s", strerror(errno));
}

int raw_ws_open(int port, const char *extra, int rcvbuf) {
  int fd = test_connect(port, rcvbuf);
  char req[1024];
  /* The key and accept value of RFC 6455 section 1.3. */
  int n = snprintf(req, sizeof(req),
                   "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n%s\r\n", port, extra);
  raw_send_all(fd, req, (size_t)n);
  char head[1024];
  size_t len = 0;
  /* One byte at a time: frames may follow the head at once. */
  while (len < sizeof(head) - 1 && (len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4) != 0)) {
    ssize_t r = recv(fd, head + len, 1, 0);
    CHECK_MSG(r == 1, "handshake: %s", r == 0 ? "EOF" : strerror(errno));
    len++;
  }
  head[len] = '\0';
  CHECK_MSG(strncmp(head, "HTTP/1.1 101 ", 13) == 0, "response: %s", head);
  CHECK_MSG(strstr(head, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            "response: %s", head);
  return fd;
}

void raw_send_frame(int fd, int b0, const void *payload, size_t n, int mask) {
  static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
  unsigned char f[65536 + 8];
  size_t h = 0;
  CHECK(n < 65536);
  f[h++] = (unsigned char)b0;
  if (n < 126) {
    f[h++] = (unsigned char)((mask ? 0x80 : 0) | n);
  } else {
    f[h++] = (unsigned char)((mask ? 0x80 : 0) | 126);
    f[h++] = (unsigned char)(n >> 8);
    f[h++] = (unsigned char)n;
  }
  if (mask) memcpy(f + h, key, 4), h += 4;
  for (size_t i = 0; i < n; i++)
    f[h + i] = ((const unsigned char *)payload)[i] ^ (mask ? key[i & 3] : 0);
  raw_send_all(fd, f, h + n);
}

long raw_read(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = recv(fd, (char *)buf + got, n - got, 0);
    if (r <= 0) break;
    got += (size_t)r;
  }
  return (long)got;
}

long raw_read_to_eof(int fd, void *buf, size_t cap) {
  size_t got = 0;
  for (;;) {
    char tmp[4096];
    ssize_t r = recv(fd, tmp, sizeof(tmp), 0);
    if (r == 0 || (r < 0 && errno == ECONNRESET)) break;
    CHECK_MSG(r > 0, "read to EOF: %s after %zu bytes", strerror(errno), got);
    size_t k = (size_t)r < cap - got ? (size_t)r : cap - got;
    memcpy((char *)buf + got, tmp, k);
    got += k;
  }
  return (long)got;
}

/* ---- node ---- */

/* The node binary on PATH, or NULL. */
static const char *node_path(void) {
  static char path[512];
  const char *env = getenv("PATH");
  char dirs[4096];
  snprintf(dirs, sizeof(dirs), "%s", env ? env : "/usr/local/bin:/usr/bin:/bin");
  for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    snprintf(path, sizeof(path), "%s/node", d);
    if (access(path, X_OK) == 0) return path;
  }
  return NULL;
}

void node_require(void) {
  const char *why = NULL;
  if (node_path() == NULL) why = "node is not installed";
  else if (access(NODE_DIR "/node_modules/ws/package.json", R_OK) != 0)
    why = "tests/node/node_modules/ws is missing";
  TEST_NEED(why == NULL, why);
}

void node_start(struct node *n, const char *script, const char *a1,
                const char *a2, const char *a3) {
  const char *node = node_path();
  char path[512];
  int p[2];
  CHECK(node != NULL);
  snprintf(path, sizeof(path), "%s/%s", NODE_DIR, script);
  CHECK_EQ(pipe(p), 0);
  memset(n, 0, sizeof(*n));
  /* Only async-signal-safe calls in the child: a server thread may be
   * running. Our sockets are all close-on-exec. */
  n->pid = fork();
  CHECK(n->pid >= 0);
  if (n->pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    execl(node, "node", path, a1, a2, a3, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  n->fd = p[0];
}

/* Read more output into n->out; 0 at EOF. Fails on a 10 s silence. */
static int node_read(struct node *n) {
  struct pollfd pf = {n->fd, POLLIN, 0};
  CHECK_MSG(n->len < sizeof(n->out) - 1, "node printed too much:\n%s", n->out);
  int r = poll(&pf, 1, 10000);
  CHECK_MSG(r == 1, "node silent for 10 s; output so far:\n%.*s", (int)n->len, n->out);
  ssize_t k = read(n->fd, n->out + n->len, sizeof(n->out) - 1 - n->len);
  if (k <= 0) return 0;
  n->len += (size_t)k;
  n->out[n->len] = '\0';
  return 1;
}

void node_first_line(struct node *n, char *line, size_t cap) {
  while (memchr(n->out, '\n', n->len) == NULL)
    CHECK_MSG(node_read(n), "node ended before a line:\n%s", n->out);
  size_t k = (size_t)((char *)memchr(n->out, '\n', n->len) - n->out);
  copy_str(line, cap, n->out, k);
}

void node_finish(struct node *n) {
  while (node_read(n)) {
  }
  close(n->fd);
  int st = 0;
  CHECK_EQ(waitpid(n->pid, &st, 0), n->pid);
  CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0,
            "node exited with status %d; output:\n%s", st, n->out);
}

void node_client_expect(int port, const char *scenario, const char *arg,
                        const char *want) {
  char url[64];
  struct node n;
  snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws", port);
  node_start(&n, "ws_client.js", url, scenario, arg);
  node_finish(&n);
  CHECK_MSG(strcmp(n.out, want) == 0, "ws_client %s printed:\n%s\nwanted:\n%s",
            scenario, n.out, want);
}
