/*
 * Shared by the HTTP loopback tests (test_http_server.c, test_http_interop.c):
 * a server whose manager runs on a thread of its own, and a small blocking
 * HTTP/1.1 client for byte-exact exchanges. The general helpers (dial,
 * WAIT_FOR, leak checks, files, tools) are in tests/common.h.
 *
 * Threads: the manager belongs to the server thread from srv_start to
 * srv_stop. The test thread touches it only through srv_run (sl_mgr_call,
 * waiting for the call to finish); handlers publish what the test checks
 * while the server runs through atomics, the rest is read after srv_stop.
 */
#ifndef SL_HTTP_HARNESS_H
#define SL_HTTP_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "sluice.h"

/* ---- the server thread ---------------------------------------------- */

struct srv {
  sl_mgr *m;
  sl_conn *l;
  int port;
  pthread_t th;
  atomic_int stop;
  sl_mgr_stats st; /* filled by srv_stop */
};

/* The loop; at the stop it reads the counters and frees the manager on the
 * thread that ran it. */
static void *srv_main(void *arg) {
  struct srv *s = arg;
  while (!atomic_load(&s->stop)) sl_mgr_poll(s->m, 100);
  sl_mgr_stats_get(s->m, &s->st);
  sl_mgr_free(s->m);
  return NULL;
}

/* Create the manager and the listener here, then hand both to the thread
 * (pthread_create orders the writes before the thread's first read). */
static inline void srv_start(struct srv *s, const sl_mgr_opts *mo,
                             const sl_http_opts *ho, sl_handler fn,
                             void *data) {
  int err = 0;
  memset(s, 0, sizeof(*s));
  s->m = sl_mgr_new(mo, &err);
  CHECK_MSG(s->m != NULL, "sl_mgr_new: %s", sl_strerror(err));
  s->l = sl_http_listen(s->m, "127.0.0.1:0", ho, fn, data, &err);
  CHECK_MSG(s->l != NULL, "sl_http_listen: %s", sl_strerror(err));
  s->port = sl_conn_local_port(s->l);
  CHECK(s->port > 0);
  CHECK_EQ(pthread_create(&s->th, NULL, srv_main, s), 0);
}

struct srv_call {
  void (*fn)(sl_mgr *m, void *arg);
  void *arg;
  atomic_int done;
};

static void srv_call_tramp(sl_mgr *m, void *arg) {
  struct srv_call *k = arg;
  k->fn(m, k->arg);
  atomic_store(&k->done, 1);
}

/* Run fn(m, arg) on the server thread and wait until it has returned. */
static inline void srv_run(struct srv *s, void (*fn)(sl_mgr *, void *),
                           void *arg) {
  struct srv_call k = {fn, arg, 0};
  CHECK_EQ(sl_mgr_call(s->m, srv_call_tramp, &k), 0);
  while (!atomic_load(&k.done)) usleep(200);
}

static void srv_stats_fn(sl_mgr *m, void *arg) { sl_mgr_stats_get(m, arg); }

/* The manager's counters, read on its thread. */
static inline void srv_stats(struct srv *s, sl_mgr_stats *out) {
  srv_run(s, srv_stats_fn, out);
}

/* Wait until only the listener is left and nothing is held: every
 * connection the test opened has been closed and released. */
static inline void srv_wait_clean(struct srv *s, int timeout_ms) {
  sl_mgr_stats st;
  uint64_t t0 = test_now_ms();
  for (;;) {
    srv_stats(s, &st);
    if (st.conns == 1 && st.held == 0 && st.queued == 0) return;
    if (test_now_ms() - t0 > (uint64_t)timeout_ms) break;
    usleep(5000);
  }
  sl__test_fail(__FILE__, __LINE__, "server not clean: conns %zu held %zu queued %zu",
                st.conns, st.held, st.queued);
}

static void srv_set_stop(sl_mgr *m, void *arg) {
  struct srv *s = arg;
  (void)m;
  atomic_store(&s->stop, 1);
}

/* Stop the thread, which frees the manager; its last counters are in
 * s->st afterwards. The flag is set by a call on the loop, so the manager
 * cannot be freed while this thread still posts to it. */
static inline void srv_stop(struct srv *s) {
  CHECK_EQ(sl_mgr_call(s->m, srv_set_stop, s), 0);
  CHECK_EQ(pthread_join(s->th, NULL), 0);
  s->m = NULL;
}

/* ---- a blocking raw client ------------------------------------------ */

#define CLI_BUF (256 * 1024)
#define RESP_BODY (64 * 1024)

struct cli {
  int fd;
  int eof;    /* the peer closed (recv returned 0) */
  size_t len; /* bytes received and not yet parsed */
  char buf[CLI_BUF];
};

static inline struct cli *cli_open(int port) {
  struct cli *k = malloc(sizeof(*k));
  CHECK(k != NULL);
  k->fd = test_connect(port, 0);
  k->eof = 0;
  k->len = 0;
  return k;
}

static inline void cli_close(struct cli *k) {
  if (k->fd >= 0) close(k->fd);
  free(k);
}

static inline void cli_sendn(struct cli *k, const void *data, size_t len) {
  const char *p = data;
  while (len) {
    ssize_t n = send(k->fd, p, len, MSG_NOSIGNAL);
    CHECK_MSG(n > 0, "send: %s", strerror(errno));
    p += n;
    len -= (size_t)n;
  }
}

static inline void cli_send(struct cli *k, const char *s) { cli_sendn(k, s, strlen(s)); }

/* Receive more bytes: > 0 bytes, 0 at EOF, -1 on reset or timeout. */
static inline long cli_fill(struct cli *k) {
  CHECK_MSG(k->len < CLI_BUF, "client buffer full");
  ssize_t n = recv(k->fd, k->buf + k->len, CLI_BUF - k->len, 0);
  if (n < 0) return -1;
  if (n == 0) k->eof = 1;
  k->len += (size_t)n;
  return (long)n;
}

static inline void cli_drop(struct cli *k, size_t n) {
  memmove(k->buf, k->buf + n, k->len - n);
  k->len -= n;
}

struct resp {
  int status;
  char head[16384]; /* status line and headers, NUL-terminated */
  long long clen;   /* -1 when absent */
  int chunked;
  size_t body_len;
  char body[RESP_BODY + 1];
};

/* The value of header `name` in r (first match), NUL-terminated in a
 * static buffer; NULL when absent. */
static inline const char *resp_header(const struct resp *r, const char *name) {
  static char val[1024];
  size_t nl = strlen(name);
  const char *p = strstr(r->head, "\r\n");
  while (p && p[2] != '\0') {
    p += 2;
    const char *e = strstr(p, "\r\n");
    if (e == NULL) break;
    if ((size_t)(e - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
      const char *v = p + nl + 1;
      while (*v == ' ') v++;
      size_t vl = (size_t)(e - v) < sizeof(val) - 1 ? (size_t)(e - v) : sizeof(val) - 1;
      memcpy(val, v, vl);
      val[vl] = '\0';
      return val;
    }
    p = e;
  }
  return NULL;
}

/* Read `n` body bytes into r->body (beyond RESP_BODY they are counted and
 * dropped). Returns 0, or -1 when the connection ended first. */
static inline int cli_body(struct cli *k, struct resp *r, size_t n) {
  while (n) {
    if (k->len == 0 && cli_fill(k) <= 0) return -1;
    size_t take = k->len < n ? k->len : n;
    size_t keep = r->body_len < RESP_BODY ? RESP_BODY - r->body_len : 0;
    memcpy(r->body + r->body_len, k->buf, take < keep ? take : keep);
    r->body_len += take < keep ? take : keep;
    cli_drop(k, take);
    n -= take;
  }
  r->body[r->body_len] = '\0';
  return 0;
}

/* Read one line ending in CRLF from the client buffer into out. */
static inline int cli_line(struct cli *k, char *out, size_t cap) {
  for (;;) {
    char *e = memmem(k->buf, k->len, "\r\n", 2);
    if (e) {
      size_t n = (size_t)(e - k->buf);
      CHECK(n < cap);
      memcpy(out, k->buf, n);
      out[n] = '\0';
      cli_drop(k, n + 2);
      return 0;
    }
    if (cli_fill(k) <= 0) return -1;
  }
}

/* Read one response. `head_only`: the request was HEAD (no body whatever
 * the headers say). A response without length runs to EOF. Returns 0, or
 * -1 when the connection ended (or timed out) before it was complete. */
static inline int cli_resp(struct cli *k, struct resp *r, int head_only) {
  char *e;
  r->status = 0;
  r->clen = -1;
  r->chunked = 0;
  r->body_len = 0;
  r->body[0] = r->head[0] = '\0';
  while ((e = memmem(k->buf, k->len, "\r\n\r\n", 4)) == NULL)
    if (cli_fill(k) <= 0) return -1;
  size_t hl = (size_t)(e - k->buf) + 4;
  CHECK(hl < sizeof(r->head));
  memcpy(r->head, k->buf, hl);
  r->head[hl] = '\0';
  cli_drop(k, hl);
  CHECK_MSG(sscanf(r->head, "HTTP/1.1 %d ", &r->status) == 1, "bad status line: %.40s",
            r->head);
  const char *v = resp_header(r, "Content-Length");
  if (v) r->clen = atoll(v);
  v = resp_header(r, "Transfer-Encoding");
  r->chunked = v && strcasecmp(v, "chunked") == 0;
  if (head_only || r->status < 200 || r->status == 204 || r->status == 304) return 0;
  if (r->chunked) {
    char line[256];
    for (;;) {
      if (cli_line(k, line, sizeof(line)) < 0) return -1;
      size_t n = strtoul(line, NULL, 16);
      if (n == 0) return cli_line(k, line, sizeof(line)); /* final CRLF */
      if (cli_body(k, r, n) < 0 || cli_line(k, line, sizeof(line)) < 0) return -1;
    }
  }
  if (r->clen >= 0) return cli_body(k, r, (size_t)r->clen);
  /* Close-delimited. */
  for (;;) {
    if (k->len) cli_body(k, r, k->len);
    long n = cli_fill(k);
    if (n == 0) return 0;
    if (n < 0) return -1;
  }
}

/* Wait up to timeout_ms for the peer to end the connection: 1 at EOF or
 * reset with no byte before it, 0 when bytes arrived instead, -1 when the
 * connection is still open at the deadline. */
static inline int cli_wait_eof(struct cli *k, int timeout_ms) {
  if (k->len) return 0;
  struct pollfd p = {k->fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return -1;
  char b;
  ssize_t n = recv(k->fd, &b, 1, MSG_DONTWAIT);
  if (n > 0) {
    k->buf[k->len++] = b;
    return 0;
  }
  return 1;
}

/* One request on a fresh connection, the response read and checked to end
 * with EOF when `closes`. */
static inline void cli_once(int port, const char *req, struct resp *r, int closes) {
  struct cli *k = cli_open(port);
  cli_send(k, req);
  CHECK_MSG(cli_resp(k, r, strncmp(req, "HEAD ", 5) == 0) == 0,
            "no complete response to %.60s", req);
  if (closes) CHECK_EQ(cli_wait_eof(k, 3000), 1);
  cli_close(k);
}

#endif
