/*
 * The manager and its loop: one iteration waits for readiness, runs due
 * timers and cross-thread messages, flushes output queued meanwhile, and
 * frees the connections that closed. Freeing happens only in that last
 * phase, so a handler may close any connection at any time and every
 * pointer the poller returned stays valid for the whole iteration.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "internal.h"

#define PER_IP_BUCKETS 4096
#define MAX_EVENTS 256
/* A listener accepts at most this many per readiness event, so a flood of
 * connections cannot starve the connections already open. */
#define ACCEPT_BATCH 64
/* After EMFILE, stop polling the listener this long: no busy loop. */
#define EMFILE_PAUSE_MS 100

static uint64_t clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t sl_mgr_now(const sl_mgr *m) { return m->now; }

void sl__mgr_tick(sl_mgr *m) { m->now = m->clock ? m->clock() : clock_ms(); }

int sl__on_loop_thread(const sl_mgr *m) {
  return !m->loop_thread_set ||
         pthread_equal(atomic_load_explicit(&((sl_mgr *)m)->loop_thread, memory_order_relaxed),
                       pthread_self());
}
const char *sl_mgr_backend(const sl_mgr *m) { return m->pops->name; }

static const struct sl_poller_ops *choose_backend(int backend) {
  if (backend == SL_BACKEND_AUTO) {
    const char *env = getenv("SLUICE_BACKEND");
    if (env && strcmp(env, "poll") == 0) return &sl__poller_poll;
    if (env && strcmp(env, "epoll") == 0) return &sl__poller_epoll;
#ifdef SL_DEFAULT_POLL
    return &sl__poller_poll;
#else
    return &sl__poller_epoll;
#endif
  }
  return backend == SL_BACKEND_POLL ? &sl__poller_poll : &sl__poller_epoll;
}

sl_mgr *sl_mgr_new(const sl_mgr_opts *opts, int *err) {
  int rc = SL_ENOMEM;
  sl_mgr *m = sl__calloc(sizeof(*m), SL_MEM_META);
  if (m == NULL) goto fail_nomgr;
  if (opts) m->opts = *opts;
  if (m->opts.backend < SL_BACKEND_AUTO || m->opts.backend > SL_BACKEND_POLL) {
    rc = SL_EINVAL;
    goto fail;
  }
  sl_limits *l = &m->opts.limits;
  if (!l->send_max) l->send_max = SL_DEFAULT_SEND_MAX;
  if (!l->recv_max) l->recv_max = SL_DEFAULT_RECV_MAX;
  if (!l->idle_ms) l->idle_ms = SL_DEFAULT_IDLE_MS;
  if (!l->stall_ms) l->stall_ms = SL_DEFAULT_STALL_MS;
  if (!m->opts.wakeup_max) m->opts.wakeup_max = SL_DEFAULT_WAKEUP_MAX;
  if (!m->opts.max_conns) m->opts.max_conns = SL_DEFAULT_MAX_CONNS;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur > 64 && m->opts.max_conns > rl.rlim_cur - 32)
    m->opts.max_conns = rl.rlim_cur - 32;
  m->wfd[0] = m->wfd[1] = -1;
  m->spare_fd = -1;
  m->now = clock_ms();
  sl__timers_init(&m->timers);
  m->pops = choose_backend(m->opts.backend);
  rc = m->pops->open(&m->poller);
  if (rc) goto fail;
  rc = sl__wakeup_open(m);
  if (rc) goto fail_poller;
  rc = m->pops->add(m->poller, m->wfd[0], SL_POLL_IN, NULL);
  if (rc) goto fail_wakeup;
  if (m->opts.max_per_ip) {
    m->per_ip = sl__calloc(PER_IP_BUCKETS * sizeof(uint32_t), SL_MEM_META);
    if (m->per_ip == NULL) {
      rc = SL_ENOMEM;
      goto fail_wakeup;
    }
  }
  m->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  /* The creating thread is the loop thread until sl_mgr_poll says
   * otherwise, so a producer publishing before the first poll is queued
   * like any other thread's frames. */
  atomic_init(&m->loop_thread, pthread_self());
  m->loop_thread_set = 1;
  return m;

fail_wakeup:
  sl__wakeup_close(m);
fail_poller:
  m->pops->close(m->poller);
fail:
  sl__free(m, sizeof(*m), SL_MEM_META);
fail_nomgr:
  if (err) *err = rc;
  return NULL;
}

/* ---- module state and cleanup (sl__mgr_on_free) ---------------------- */

struct sl_mod {
  struct sl_mod *next;
  const void *key;
  void (*fn)(sl_mgr *m, void *state);
  void *state;
};

int sl__mgr_on_free(sl_mgr *m, const void *key,
                    void (*fn)(sl_mgr *m, void *state), void *state) {
  if (sl__mgr_slot(m, key)) return SL_EALREADY;
  struct sl_mod *e = sl__calloc(sizeof(*e), SL_MEM_META);
  if (e == NULL) return SL_ENOMEM;
  e->key = key;
  e->fn = fn;
  e->state = state;
  e->next = m->mods;
  m->mods = e;
  return 0;
}

void **sl__mgr_slot(sl_mgr *m, const void *key) {
  for (struct sl_mod *e = m->mods; e; e = e->next)
    if (e->key == key) return &e->state;
  return NULL;
}

/* Newest first; an entry stays findable while its callback runs (a
 * module's cleanup may look its own state up), and a callback that
 * registers another module is run in the same call. */
static void run_on_free(sl_mgr *m) {
  while (m->mods) {
    struct sl_mod *e = m->mods;
    if (e->fn) e->fn(m, e->state);
    struct sl_mod **pp = &m->mods;
    while (*pp != e) pp = &(*pp)->next;
    *pp = e->next;
    sl__free(e, sizeof(*e), SL_MEM_META);
  }
}

/* Free every connection marked closing. SL_EV_CLOSE handlers may close
 * more; they join the list and are freed in the same call. */
static void reap(sl_mgr *m) {
  while (m->closing) {
    sl_conn *c = m->closing;
    m->closing = c->close_next;
    sl__conn_free(c);
  }
}

void sl_mgr_opts_small(sl_mgr_opts *o) {
  /* The budget bounds what all queues and input buffers hold together;
   * send_max still fits a few 720p JPEG frames per viewer, and a stalled
   * viewer is cut after 20 s instead of holding its frame for a minute. */
  *o = (sl_mgr_opts){
      .max_conns = SL_SMALL_MAX_CONNS,
      .max_per_ip = SL_SMALL_MAX_PER_IP,
      .budget = SL_SMALL_BUDGET,
      .wakeup_max = SL_SMALL_WAKEUP_MAX,
      .limits = {.send_max = SL_SMALL_SEND_MAX,
                 .recv_max = SL_SMALL_RECV_MAX,
                 .idle_ms = SL_SMALL_IDLE_MS,
                 .stall_ms = SL_SMALL_STALL_MS},
  };
}

void sl_mgr_free(sl_mgr *m) {
  if (m == NULL) return;
  sl__resolver_stop(m);
  run_on_free(m);
  for (sl_conn *c = m->conns; c; c = c->next)
    sl_conn_close_with(c, SL_CLOSE_NOW, SL_CLOSE_SHUTDOWN);
  while (m->conns) {
    reap(m);
    /* Anything left that is not closing was opened by a close handler. */
    for (sl_conn *c = m->conns; c; c = c->next)
      sl_conn_close_with(c, SL_CLOSE_NOW, SL_CLOSE_SHUTDOWN);
  }
  /* State that close handlers registered meanwhile. */
  run_on_free(m);
  sl__timers_fini(&m->timers);
  m->pops->del(m->poller, m->wfd[0]);
  sl__wakeup_close(m);
  m->pops->close(m->poller);
  if (m->per_ip) sl__free(m->per_ip, PER_IP_BUCKETS * sizeof(uint32_t), SL_MEM_META);
  if (m->spare_fd >= 0) close(m->spare_fd);
  sl__free(m, sizeof(*m), SL_MEM_META);
}

/* ---- per-IP accounting --------------------------------------------- */

static uint32_t ip_hash(const struct sockaddr_storage *ss) {
  const unsigned char *p;
  size_t n;
  if (ss->ss_family == AF_INET) {
    p = (const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr;
    n = 4;
  } else {
    p = (const unsigned char *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
    n = 16;
  }
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h % PER_IP_BUCKETS;
}

/* Buckets are hashed, so two addresses may share one: the limit can only
 * be stricter than asked, never looser. */
int sl__ip_acquire(sl_mgr *m, sl_conn *c) {
  if (m->per_ip == NULL) return 0;
  uint32_t h = ip_hash(&c->peer);
  if (m->per_ip[h] >= m->opts.max_per_ip) return SL_ELIMIT;
  m->per_ip[h]++;
  c->ip_hash = h + 1;
  return 0;
}

void sl__ip_release(sl_mgr *m, sl_conn *c) {
  if (m->per_ip == NULL || c->ip_hash == 0) return;
  m->per_ip[c->ip_hash - 1]--;
  c->ip_hash = 0;
}

/* ---- listening and accepting --------------------------------------- */

sl_conn *sl_listen(sl_mgr *m, const char *url, sl_handler fn, void *data,
                   int *err) {
  char host[256];
  uint16_t port;
  struct sockaddr_storage ss;
  socklen_t len;
  int rc, fd = -1, on = 1;
  sl_conn *c = NULL;
  if ((rc = sl__parse_url(url, host, sizeof(host), &port, NULL, NULL)) != 0)
    goto fail;
  if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
  if ((rc = sl__literal_addr(host, port, &ss, &len)) != 0) goto fail;
  if (m->nconns >= m->opts.max_conns) {
    SL_DEBUG("listen on %s refused: max_conns %zu reached", url, m->opts.max_conns);
    rc = SL_ELIMIT;
    goto fail;
  }
  fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    rc = -errno;
    goto fail;
  }
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (m->opts.reuseport) {
#ifdef SO_REUSEPORT
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) {
      rc = -errno;
      goto fail;
    }
#else
    rc = SL_ENOTSUP;
    goto fail;
#endif
  }
  if (ss.ss_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
  if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 511) != 0) {
    rc = -errno;
    goto fail;
  }
  c = sl__conn_new(m, fd, fn, data);
  if (c == NULL) {
    rc = SL_ENOMEM;
    goto fail;
  }
  c->flags |= SL_F_LISTENER;
  c->interest = SL_POLL_IN;
  memcpy(&c->peer, &ss, len);
  c->peer_len = len;
  sl__addr_str((struct sockaddr *)&ss, c->peer_str, sizeof(c->peer_str));
  if ((rc = sl__conn_register(c)) != 0) {
    c->fd = -1; /* closed below */
    sl__conn_refuse(c, SL_CLOSE_ERROR);
    goto fail;
  }
  sl__conn_set_state(c, SL_ST_OPEN);
  sl__call(c, SL_EV_OPEN, NULL);
  return c;

fail:
  if (fd >= 0) close(fd);
  if (err) *err = rc;
  return NULL;
}

static void resume_accept(sl_mgr *m, void *arg) {
  uint64_t id = (uint64_t)(uintptr_t)arg;
  sl_conn *l = sl_conn_find(m, id);
  if (l == NULL) return;
  l->flags &= ~SL_F_ACCEPT_WAIT;
  sl__conn_update_interest(l);
}

/* Out of descriptors: use the spare one to accept and shed the pending
 * connection (the peer sees a close instead of hanging in the backlog),
 * then stop polling the listener briefly instead of spinning on it. */
static void accept_emfile(sl_mgr *m, sl_conn *l) {
  if (m->spare_fd >= 0) {
    close(m->spare_fd);
    int fd = accept(l->fd, NULL, NULL);
    if (fd >= 0) {
      struct linger lg = {1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
      close(fd);
      m->st.rejected++;
    }
    m->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  l->flags |= SL_F_ACCEPT_WAIT;
  sl__conn_update_interest(l);
  sl_timer_add(m, EMFILE_PAUSE_MS, 0, resume_accept,
               (void *)(uintptr_t)l->id, NULL);
}

static void on_accept(sl_mgr *m, sl_conn *l) {
  for (int i = 0; i < ACCEPT_BATCH; i++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = accept4(l->fd, (struct sockaddr *)&ss, &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM) {
        sl_log(SL_LOG_WARN, "accept on %s: %s; shedding load", l->peer_str,
               strerror(errno));
        accept_emfile(m, l);
      }
      return;
    }
    int reject = m->nconns >= m->opts.max_conns;
    const char *why = reject ? "max_conns reached" : "out of memory";
    sl_conn *c = reject ? NULL : sl__conn_new(m, fd, l->fn, l->data);
    if (c) {
      memcpy(&c->peer, &ss, len);
      c->peer_len = len;
      c->listener = l;
      if (sl__ip_acquire(m, c) != 0) {
        reject = 1;
        why = "max_per_ip reached";
      } else {
        sl__conn_resolve_limits(c);
        sl__addr_str((struct sockaddr *)&ss, c->peer_str, sizeof(c->peer_str));
        c->interest = SL_POLL_IN;
        why = "refused by the protocol or transport";
        if (sl__conn_register(c) != 0) reject = 1, why = "poller registration failed";
        else if (l->proto && l->proto->accept && l->proto->accept(l, c) != 0)
          reject = 1;
        else if (l->io->accept && l->io->accept(l, c) != 0)
          reject = 1;
      }
    }
    if (c == NULL || reject) {
      /* Over a limit: refuse with an RST; the peer learns at once. */
      if (sl__log_enabled(SL_LOG_DEBUG)) {
        char peer[64];
        sl__addr_str((struct sockaddr *)&ss, peer, sizeof(peer));
        sl_log(SL_LOG_DEBUG, "accept %s on port %d refused: %s (%zu connections)", peer,
               sl_conn_local_port(l), why, m->nconns);
      }
      m->st.rejected++;
      if (c) {
        c->flags |= SL_F_RESET;
        sl__conn_refuse(c, SL_CLOSE_LIMIT); /* never seen by the application */
      } else {
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);
      }
      continue;
    }
    m->st.accepted++;
    SL_DEBUG("accept %s on port %d: conn %llu (%zu connections)", c->peer_str,
             sl_conn_local_port(l), (unsigned long long)c->id, m->nconns);
    sl__call(c, SL_EV_OPEN, NULL);
    /* A transport with a handshake (TLS: the listener's accept hook or
     * sl_conn_tls in the OPEN handler) is in HANDSHAKE now; it announces
     * the connection when the handshake completes. */
    if ((c->state == SL_ST_NEW || c->state == SL_ST_DRAINING) &&
        !(c->flags & SL_F_ANNOUNCED))
      sl__conn_announce(c);
    else
      sl__conn_rearm(c);
  }
}

/* ---- connecting ---------------------------------------------------- */

void sl__conn_start_connect(sl_conn *c, const struct sockaddr *sa,
                            socklen_t len) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    sl__conn_fail(c, SL_CLOSE_ERROR, -errno, NULL);
    return;
  }
  c->fd = fd;
  memcpy(&c->peer, sa, len);
  c->peer_len = len;
  sl__addr_str(sa, c->peer_str, sizeof(c->peer_str));
  sl__conn_set_state(c, SL_ST_CONNECTING);
  c->interest = SL_POLL_OUT;
  int rc = sl__conn_register(c);
  if (rc) {
    sl__conn_fail(c, SL_CLOSE_ERROR, rc, NULL);
    return;
  }
  if (connect(fd, sa, len) != 0 && errno != EINPROGRESS) {
    sl__conn_fail(c, SL_CLOSE_ERROR, -errno, NULL);
    return;
  }
  sl__conn_rearm(c);
}

static void on_connected(sl_conn *c) {
  int e = 0;
  socklen_t el = sizeof(e);
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0) e = errno;
  if (e == EINPROGRESS) return;
  if (e) {
    sl__conn_fail(c, SL_CLOSE_ERROR, -e, NULL);
    return;
  }
  c->last_io_ms = c->last_progress_ms = c->mgr->now;
  if (c->io->handshake) {
    /* TLS: SL_EV_CONNECT comes when the handshake completes. */
    sl__conn_set_state(c, SL_ST_HANDSHAKE);
    c->io->handshake(c);
    return;
  }
  sl__conn_announce(c);
}

sl_conn *sl_connect(sl_mgr *m, const char *url, sl_handler fn, void *data,
                    int *err) {
  char host[256];
  uint16_t port;
  int rc;
  struct sockaddr_storage ss;
  socklen_t len;
  if ((rc = sl__parse_url(url, host, sizeof(host), &port, NULL, NULL)) != 0 ||
      host[0] == '\0' || port == 0) {
    if (err) *err = SL_EURL;
    return NULL;
  }
  if (m->nconns >= m->opts.max_conns) {
    SL_DEBUG("connect to %s refused: max_conns %zu reached", url, m->opts.max_conns);
    if (err) *err = SL_ELIMIT;
    return NULL;
  }
  sl_conn *c = sl__conn_new(m, -1, fn, data);
  if (c == NULL) {
    if (err) *err = SL_ENOMEM;
    return NULL;
  }
  c->flags |= SL_F_CLIENT;
  c->connect_deadline = m->now + SL_CONNECT_TIMEOUT_MS;
  c->port = port;
  sl__call(c, SL_EV_OPEN, NULL);
  if (c->state != SL_ST_NEW) return c; /* closed by its OPEN handler */
  if (sl__literal_addr(host, port, &ss, &len) == 0) {
    sl__conn_start_connect(c, (struct sockaddr *)&ss, len);
    return c;
  }
  c->host = sl__strdup(host);
  rc = c->host ? sl__resolve_start(m, c) : SL_ENOMEM;
  if (rc) {
    sl__conn_fail(c, SL_CLOSE_ERROR, rc, NULL);
    return c;
  }
  sl__conn_rearm(c);
  return c;
}

sl_conn *sl_conn_find(sl_mgr *m, uint64_t id) {
  for (sl_conn *c = m->conns; c; c = c->next)
    if (c->id == id) return c;
  return NULL;
}

/* The list is changed only by sl__conn_new (at the head) and by release()
 * (at the reap, in sl_mgr_free, and for a refused accept, which no handler
 * sees): so from inside a handler or a timer, `prev` and its successor
 * stay in place whatever the application closes. A connection inside its
 * own SL_EV_CLOSE (state CLOSED) is being freed: it is skipped. */
sl_conn *sl_conn_next(sl_mgr *m, sl_conn *prev) {
  sl_conn *c = prev ? prev->next : m->conns;
  while (c && c->state == SL_ST_CLOSED) c = c->next;
  return c;
}

sl_conn *sl_conn_listener(const sl_conn *c) { return c->listener; }

/* ---- timers (public) ----------------------------------------------- */

sl_timer *sl_timer_add(sl_mgr *m, uint64_t ms, int flags, sl_timer_fn fn,
                       void *arg, int *err) {
  sl_timer *t = sl__calloc(sizeof(*t), SL_MEM_META);
  if (t == NULL) {
    if (err) *err = SL_ENOMEM;
    return NULL;
  }
  t->idx = SIZE_MAX;
  t->fn = fn;
  t->arg = arg;
  t->period = (flags & SL_TIMER_REPEAT) ? (ms ? ms : 1) : 0;
  if (sl__timer_arm(&m->timers, t, m->now + ms) != 0) {
    sl__free(t, sizeof(*t), SL_MEM_META);
    if (err) *err = SL_ENOMEM;
    return NULL;
  }
  return t;
}

void sl_timer_free(sl_mgr *m, sl_timer *t) {
  if (t == NULL) return;
  if (t == m->timers.running) {
    t->dead = 1; /* freed after its callback returns */
    return;
  }
  sl__timer_disarm(&m->timers, t);
  sl__free(t, sizeof(*t), SL_MEM_META);
}

static int run_timers(sl_mgr *m) {
  int n = 0;
  struct sl_timer *t;
  /* Timers armed by callbacks for "now" wait for the next iteration, so a
   * zero-delay timer cannot starve I/O (h2o does the same). */
  uint64_t limit = m->now;
  while ((t = sl__timers_pop_due(&m->timers, limit)) != NULL) {
    n++;
    if (t->internal) {
      t->fn(m, t->arg);
      continue;
    }
    m->timers.running = t;
    t->fn(m, t->arg);
    m->timers.running = NULL;
    if (t->dead || t->period == 0) {
      sl__free(t, sizeof(*t), SL_MEM_META);
      continue;
    }
    uint64_t due = t->due + t->period;
    if (due <= m->now) due = m->now + t->period; /* skip missed periods */
    sl__timer_arm(&m->timers, t, due);
  }
  return n;
}

/* ---- the iteration ------------------------------------------------- */

static void flush_dirty(sl_mgr *m) {
  while (m->dirty) {
    sl_conn *c = m->dirty;
    m->dirty = c->dirty_next;
    c->flags &= ~SL_F_DIRTY;
    if (c->flags & SL_F_IO_INPUT) {
      c->flags &= ~SL_F_IO_INPUT;
      if (c->state < SL_ST_CLOSING) sl__conn_on_readable(c);
    }
    if (c->state < SL_ST_CLOSING) sl__conn_flush(c);
  }
}

int sl_mgr_poll(sl_mgr *m, int timeout_ms) {
  struct sl_pevent evs[MAX_EVENTS];
  int n, dispatched = 0;
  if (!pthread_equal(atomic_load_explicit(&m->loop_thread, memory_order_relaxed), pthread_self()))
    atomic_store_explicit(&m->loop_thread, pthread_self(), memory_order_relaxed);
  sl__mgr_tick(m);
  flush_dirty(m);
  reap(m);
  uint64_t next = sl__timers_next(&m->timers);
  if (next != UINT64_MAX) {
    uint64_t wait = next > m->now ? next - m->now : 0;
    if (timeout_ms < 0 || wait < (uint64_t)timeout_ms) timeout_ms = (int)wait;
  }
  if (m->dirty) timeout_ms = 0;
  n = m->pops->wait(m->poller, evs, MAX_EVENTS, timeout_ms);
  sl__mgr_tick(m);
  if (n < 0) return n;
  for (int i = 0; i < n; i++) {
    sl_conn *c = evs[i].ptr;
    int e = evs[i].events;
    if (c == NULL) {
      dispatched += sl__wakeup_dispatch(m);
      continue;
    }
    if (c->state >= SL_ST_CLOSING) continue;
    dispatched++;
    if (c->flags & SL_F_LISTENER) {
      on_accept(m, c);
      continue;
    }
    if (c->state == SL_ST_CONNECTING) {
      if (e & (SL_POLL_OUT | SL_POLL_ERR | SL_POLL_IN)) on_connected(c);
      continue;
    }
    if ((e & SL_POLL_OUT) && c->state < SL_ST_CLOSING) sl__conn_on_writable(c);
    if ((e & (SL_POLL_IN | SL_POLL_ERR)) && c->state < SL_ST_CLOSING) {
      if (c->interest & SL_POLL_IN) sl__conn_on_readable(c);
      else if (e & SL_POLL_ERR) {
        int se = 0;
        socklen_t sl = sizeof(se);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &se, &sl);
        sl__conn_fail(c, SL_CLOSE_ERROR, se ? -se : SL_ECONNRESET, NULL);
      }
    }
  }
  dispatched += run_timers(m);
  if (m->npoll)
    for (sl_conn *c = m->conns; c; c = c->next)
      if ((c->flags & SL_F_POLL) && c->state < SL_ST_CLOSING)
        sl__call(c, SL_EV_POLL, NULL);
  flush_dirty(m);
  reap(m);
  return dispatched;
}

void sl_mgr_stats_get(const sl_mgr *m, sl_mgr_stats *out) {
  *out = m->st;
  out->held = m->acct.held;
  out->peak = m->acct.peak;
  out->budget = m->opts.budget;
  out->out_owned = m->acct.out_owned;
  out->out_ref = m->acct.out_ref;
  out->in = m->acct.in;
  out->queued = m->acct.queued;
  out->tls = m->io_held;
  out->conns = m->nconns;
}

void sl_mgr_set_budget(sl_mgr *m, size_t budget) { m->opts.budget = budget; }
