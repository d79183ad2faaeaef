/*
 * Host name resolution off the loop thread. One worker thread per manager,
 * started on the first lookup, runs getaddrinfo for a bounded queue of
 * requests. Results come back through the manager's wakeup channel. The
 * worker shares a small refcounted state with the manager, so freeing the
 * manager never waits for a slow DNS server: the worker notices, drops its
 * reference and exits on its own.
 */
#include <netdb.h>
#include <string.h>

#include "alloc.h"
#include "internal.h"

#define MAX_PENDING 64

struct req {
  struct req *next;
  uint64_t conn_id;
  uint16_t port;
  int err;
  struct sockaddr_storage ss;
  socklen_t len;
  char host[256];
};

struct sl_resolver {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  sl_mgr *mgr;          /* NULL once the manager is gone */
  struct req *head, *tail;
  size_t pending;
  int refs;             /* manager + worker */
  int busy;             /* inside getaddrinfo */
  pthread_t thread;
};

static void free_req(void *arg) { sl__free(arg, sizeof(struct req), SL_MEM_META); }

static void unref(struct sl_resolver *r) {
  pthread_mutex_lock(&r->lock);
  int last = --r->refs == 0;
  pthread_mutex_unlock(&r->lock);
  if (!last) return;
  while (r->head) {
    struct req *q = r->head;
    r->head = q->next;
    free_req(q);
  }
  pthread_mutex_destroy(&r->lock);
  pthread_cond_destroy(&r->cond);
  sl__free(r, sizeof(*r), SL_MEM_META);
}

/* On the loop thread: hand the address to the waiting connection. */
static void on_result(sl_mgr *m, void *arg) {
  struct req *q = arg;
  sl_conn *c = sl_conn_find(m, q->conn_id);
  if (c && c->state == SL_ST_RESOLVING) {
    if (q->err) {
      sl__conn_fail(c, SL_CLOSE_ERROR, SL_ERESOLVE, "cannot resolve host");
    } else {
      sl__call(c, SL_EV_RESOLVE, NULL);
      if (!(c->flags & SL_F_CLOSING))
        sl__conn_start_connect(c, (struct sockaddr *)&q->ss, q->len);
    }
  }
  free_req(q);
}

static void *worker(void *arg) {
  struct sl_resolver *r = arg;
  pthread_mutex_lock(&r->lock);
  for (;;) {
    while (r->head == NULL && r->mgr != NULL) pthread_cond_wait(&r->cond, &r->lock);
    if (r->mgr == NULL) break;
    struct req *q = r->head;
    r->head = q->next;
    if (r->head == NULL) r->tail = NULL;
    r->pending--;
    r->busy = 1;
    pthread_mutex_unlock(&r->lock);

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    q->err = getaddrinfo(q->host, NULL, &hints, &res) != 0 || res == NULL;
    if (!q->err) {
      memcpy(&q->ss, res->ai_addr, res->ai_addrlen);
      q->len = res->ai_addrlen;
      if (q->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&q->ss)->sin_port = htons(q->port);
      else if (q->ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&q->ss)->sin6_port = htons(q->port);
      else
        q->err = 1;
    }
    if (res) freeaddrinfo(res);

    pthread_mutex_lock(&r->lock);
    r->busy = 0;
    /* Holding the lock keeps the manager alive while we post. */
    if (r->mgr == NULL || sl__mgr_call_drop(r->mgr, on_result, free_req, q) != 0)
      free_req(q);
  }
  pthread_mutex_unlock(&r->lock);
  unref(r);
  return NULL;
}

int sl__resolve_start(sl_mgr *m, sl_conn *c) {
  struct sl_resolver *r = m->resolver;
  if (r == NULL) {
    r = sl__calloc(sizeof(*r), SL_MEM_META);
    if (r == NULL) return SL_ENOMEM;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->mgr = m;
    r->refs = 2;
    if (pthread_create(&r->thread, NULL, worker, r) != 0) {
      pthread_mutex_destroy(&r->lock);
      pthread_cond_destroy(&r->cond);
      sl__free(r, sizeof(*r), SL_MEM_META);
      return SL_ENOMEM;
    }
    m->resolver = r;
  }
  if (strlen(c->host) >= sizeof(((struct req *)0)->host)) return SL_ENAMETOOLONG;
  struct req *q = sl__calloc(sizeof(*q), SL_MEM_META);
  if (q == NULL) return SL_ENOMEM;
  q->conn_id = c->id;
  q->port = c->port;
  strcpy(q->host, c->host);
  pthread_mutex_lock(&r->lock);
  if (r->pending >= MAX_PENDING) {
    pthread_mutex_unlock(&r->lock);
    free_req(q);
    return SL_EFULL;
  }
  if (r->tail) r->tail->next = q;
  else r->head = q;
  r->tail = q;
  r->pending++;
  pthread_cond_signal(&r->cond);
  pthread_mutex_unlock(&r->lock);
  sl__conn_set_state(c, SL_ST_RESOLVING);
  return 0;
}

void sl__resolver_stop(sl_mgr *m) {
  struct sl_resolver *r = m->resolver;
  if (r == NULL) return;
  pthread_mutex_lock(&r->lock);
  r->mgr = NULL;
  int busy = r->busy;
  pthread_t t = r->thread;
  pthread_cond_signal(&r->cond);
  pthread_mutex_unlock(&r->lock);
  m->resolver = NULL;
  /* An idle worker exits at once: wait for it, so that everything is freed
   * when sl_mgr_free returns. One stuck in a slow DNS query is left to
   * finish on its own; it frees the shared state when it does. */
  if (busy) pthread_detach(t);
  unref(r);
  if (!busy) pthread_join(t, NULL);
}
