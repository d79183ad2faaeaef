/*
 * The clients of the reliability tests: one epoll loop on a thread of its
 * own drives every kind of peer at once while the test's main thread asks
 * the server for its numbers.
 *
 *   REL_HEALTHY  a viewer of /stream.mjpg that reads everything and counts
 *                the multipart boundaries (frames)
 *   REL_STALLED  a viewer with a tiny receive buffer that never reads; the
 *                loop only notes when and how the server drops it (an RST
 *                from the stall timeout)
 *   REL_SLOW     slowloris: a request head that never ends, one more header
 *                line every second; the loop notes the 408 and the close
 *   REL_FLOOD    a keep-alive connection that asks for /snapshot.jpg again
 *                as soon as the previous response is in (counted)
 *
 * Threads: the main thread adds clients (rel_add) while the loop runs; a
 * client's struct is complete before its descriptor enters the epoll set,
 * and after that only the loop thread touches it, until rel_loop_stop.
 * Counters the main thread reads meanwhile are atomics.
 */
#ifndef SL_REL_CLIENTS_H
#define SL_REL_CLIENTS_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>

#include "rel_harness.h"

enum { REL_HEALTHY, REL_STALLED, REL_SLOW, REL_FLOOD, REL_NKINDS };
enum { REL_OPEN, REL_EOF, REL_RESET, REL_DONE };

#define REL_MAXCL 8192
/* Receive buffer of a stalled viewer: the kernel doubles it, and clamps it
 * to its minimum. */
#define REL_STALL_RCVBUF 4096

struct rel_cl {
  atomic_int ready; /* set once the slot is filled */
  int fd, kind;
  int state;              /* REL_OPEN, REL_EOF, REL_RESET */
  atomic_long count;      /* healthy: frames; flood: responses */
  uint64_t t_open, t_end; /* ms, test clock */
  size_t match;           /* boundary matcher */
  char head[64];          /* first bytes received */
  size_t head_len;
  uint64_t next_send; /* slowloris: next header line */
  char hbuf[2048];    /* flood: response head being read */
  size_t hlen;
  long long body_left; /* flood: body bytes still to skip */
  int bad;             /* flood: a response that was not 200 */
};

struct rel_loop {
  int ep, port;
  pthread_t th;
  atomic_int stop;
  atomic_int n;                   /* slots used */
  struct rel_cl *cls;             /* REL_MAXCL slots */
  atomic_long closed[REL_NKINDS]; /* closed by the server, per kind */
  atomic_long opened[REL_NKINDS];
  /* Until this time (ms), a slowloris or stalled client the server closed
   * is replaced by a new one of its kind: the attack is sustained. */
  atomic_ullong respawn_until;
  pthread_mutex_t lock; /* slot allocation */
};

static const char *const rel_boundary = "--sluiceframe";

/* Open one client of `kind`: connect, send its request, hand it to the
 * loop. Returns the slot, or -1 when connect failed. */
static inline int rel_add(struct rel_loop *L, int kind) {
  int fd = test_dial("127.0.0.1", L->port, kind == REL_STALLED ? REL_STALL_RCVBUF : 0);
  if (fd < 0) return -1;
  pthread_mutex_lock(&L->lock);
  int i = atomic_load(&L->n);
  if (i == REL_MAXCL) {
    pthread_mutex_unlock(&L->lock);
    close(fd);
    return -1;
  }
  atomic_store(&L->n, i + 1);
  pthread_mutex_unlock(&L->lock);
  struct rel_cl *c = &L->cls[i];
  memset(c, 0, sizeof(*c));
  c->fd = fd;
  c->kind = kind;
  c->t_open = test_now_ms();
  const char *req;
  switch (kind) {
    case REL_SLOW:
      req = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n";
      c->next_send = c->t_open + 1000;
      break;
    case REL_FLOOD:
      req = "GET /snapshot.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
      break;
    default:
      req = "GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  }
  test_send_all(fd, req, strlen(req));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  struct epoll_event ev;
  memset(&ev, 0, sizeof(ev));
  /* A stalled viewer is watched only for the server's close: its unread
   * data keeps EPOLLIN up for good. */
  ev.events = kind == REL_STALLED ? EPOLLRDHUP : EPOLLIN | EPOLLRDHUP;
  ev.data.u32 = (uint32_t)i;
  atomic_fetch_add(&L->opened[kind], 1);
  atomic_store(&c->ready, 1);
  epoll_ctl(L->ep, EPOLL_CTL_ADD, fd, &ev);
  return i;
}

static inline void rel_cl_end(struct rel_loop *L, struct rel_cl *c, int state) {
  c->state = state;
  c->t_end = test_now_ms();
  epoll_ctl(L->ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
  atomic_fetch_add(&L->closed[c->kind], 1);
  if ((c->kind == REL_SLOW || c->kind == REL_STALLED) && c->t_end < atomic_load(&L->respawn_until))
    rel_add(L, c->kind);
}

static inline void rel_note_head(struct rel_cl *c, const char *p, size_t n) {
  size_t room = sizeof(c->head) - 1 - c->head_len;
  if (n > room) n = room;
  memcpy(c->head + c->head_len, p, n);
  c->head_len += n;
  c->head[c->head_len] = '\0';
}

/* Flood: consume a response (head, then Content-Length bytes) and ask for
 * the next one. */
static inline void rel_flood_feed(struct rel_cl *c, const char *p, size_t n) {
  while (n) {
    if (c->body_left > 0) {
      size_t take = (long long)n < c->body_left ? n : (size_t)c->body_left;
      c->body_left -= (long long)take;
      p += take;
      n -= take;
      if (c->body_left == 0) {
        atomic_fetch_add(&c->count, 1);
        const char *req = "GET /snapshot.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        send(c->fd, req, strlen(req), MSG_NOSIGNAL | MSG_DONTWAIT);
      }
      continue;
    }
    size_t take = sizeof(c->hbuf) - 1 - c->hlen;
    if (take > n) take = n;
    memcpy(c->hbuf + c->hlen, p, take);
    c->hlen += take;
    c->hbuf[c->hlen] = '\0';
    char *e = strstr(c->hbuf, "\r\n\r\n");
    if (e == NULL) {
      if (c->hlen == sizeof(c->hbuf) - 1) c->bad = 1, c->hlen = 0;
      p += take;
      n -= take;
      continue;
    }
    size_t headlen = (size_t)(e + 4 - c->hbuf);
    int status = 0;
    sscanf(c->hbuf, "HTTP/1.1 %d", &status);
    if (status != 200) c->bad = 1;
    const char *cl = strstr(c->hbuf, "Content-Length: ");
    c->body_left = cl ? atoll(cl + 16) : 0;
    /* Bytes of this piece past the head are body. */
    size_t used = take - (c->hlen - headlen);
    c->hlen = 0;
    p += used;
    n -= used;
    if (c->body_left == 0) {
      atomic_fetch_add(&c->count, 1);
      const char *req = "GET /snapshot.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
      send(c->fd, req, strlen(req), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
  }
}

static inline void rel_on_event(struct rel_loop *L, struct rel_cl *c, uint32_t ev) {
  static char buf[1 << 16];
  if (c->fd < 0) return;
  if (c->kind == REL_STALLED) {
    int e = 0;
    socklen_t el = sizeof(e);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
    if ((ev & (EPOLLERR | EPOLLHUP)) || e)
      rel_cl_end(L, c, REL_RESET);
    else if (ev & EPOLLRDHUP)
      rel_cl_end(L, c, REL_EOF);
    return;
  }
  for (int rounds = 0; rounds < 4; rounds++) {
    ssize_t r = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      rel_cl_end(L, c, REL_RESET);
      return;
    }
    if (r == 0) {
      rel_cl_end(L, c, REL_EOF);
      return;
    }
    if (c->head_len < sizeof(c->head) - 1) rel_note_head(c, buf, (size_t)r);
    if (c->kind == REL_HEALTHY) {
      long frames = 0;
      size_t m = c->match, pl = 13;
      for (ssize_t i = 0; i < r; i++) {
        m = buf[i] == rel_boundary[m] ? m + 1 : (buf[i] == rel_boundary[0] ? 1 : 0);
        if (m == pl) {
          frames++;
          m = 0;
        }
      }
      c->match = m;
      if (frames) atomic_fetch_add(&c->count, frames);
    } else if (c->kind == REL_FLOOD) {
      rel_flood_feed(c, buf, (size_t)r);
    }
    if ((size_t)r < sizeof(buf)) return;
  }
}

static void *rel_loop_main(void *arg) {
  struct rel_loop *L = arg;
  struct epoll_event evs[256];
  while (!atomic_load(&L->stop)) {
    int n = epoll_wait(L->ep, evs, 256, 10);
    for (int i = 0; i < n; i++) rel_on_event(L, &L->cls[evs[i].data.u32], evs[i].events);
    /* Slowloris: one more header line a second, never the blank line. */
    uint64_t now = test_now_ms();
    int total = atomic_load(&L->n);
    for (int i = 0; i < total; i++) {
      struct rel_cl *c = &L->cls[i];
      if (!atomic_load(&c->ready) || c->kind != REL_SLOW || c->fd < 0 || now < c->next_send)
        continue;
      send(c->fd, "X-Slow: 1\r\n", 11, MSG_NOSIGNAL | MSG_DONTWAIT);
      c->next_send = now + 1000;
    }
  }
  return NULL;
}

static inline void rel_loop_start(struct rel_loop *L, int port) {
  memset(L, 0, sizeof(*L));
  L->port = port;
  L->cls = calloc(REL_MAXCL, sizeof(*L->cls));
  CHECK(L->cls != NULL);
  L->ep = epoll_create1(EPOLL_CLOEXEC);
  CHECK(L->ep >= 0);
  pthread_mutex_init(&L->lock, NULL);
  CHECK_EQ(pthread_create(&L->th, NULL, rel_loop_main, L), 0);
}

/* Stop the loop thread; the clients stay as they are (see rel_close_all). */
static inline void rel_loop_stop(struct rel_loop *L) {
  atomic_store(&L->stop, 1);
  pthread_join(L->th, NULL);
}

/* After rel_loop_stop: close every client still open, then free it all. */
static inline void rel_loop_free(struct rel_loop *L) {
  int total = atomic_load(&L->n);
  for (int i = 0; i < total; i++)
    if (L->cls[i].fd >= 0) close(L->cls[i].fd);
  close(L->ep);
  pthread_mutex_destroy(&L->lock);
  free(L->cls);
}

/* Sum of `count` over the clients of `kind` in slots [from, to). */
static inline long rel_sum(struct rel_loop *L, int kind, int from, int to) {
  long s = 0;
  for (int i = from; i < to; i++)
    if (L->cls[i].kind == kind) s += atomic_load(&L->cls[i].count);
  return s;
}

#endif
