/*
 * The cross-thread channel: a bounded, mutex-protected message list plus an
 * eventfd (a pipe where there is none) that wakes the poller. The fd is
 * written only when the list goes from empty to non-empty, so a burst of
 * publishes costs one wakeup.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

#include "alloc.h"
#include "internal.h"

struct sl_wmsg {
  struct sl_wmsg *next;
  void (*fn)(sl_mgr *, void *);  /* NULL: a wakeup message for a conn */
  void (*drop)(void *);
  void *arg;
  uint64_t conn_id;
  size_t len;
  unsigned char data[];
};

int sl__wakeup_open(sl_mgr *m) {
  pthread_mutex_init(&m->wlock, NULL);
#ifdef __linux__
  m->wfd[0] = m->wfd[1] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (m->wfd[0] >= 0) return 0;
#endif
  if (pipe(m->wfd) != 0) {
    m->wfd[0] = m->wfd[1] = -1;
    return -errno;
  }
  for (int i = 0; i < 2; i++) {
    fcntl(m->wfd[i], F_SETFL, fcntl(m->wfd[i], F_GETFL) | O_NONBLOCK);
    fcntl(m->wfd[i], F_SETFD, FD_CLOEXEC);
  }
  return 0;
}

static void free_msg(struct sl_wmsg *w) {
  sl__free(w, sizeof(*w) + w->len, SL_MEM_META);
}

void sl__wakeup_close(sl_mgr *m) {
  struct sl_wmsg *w = m->whead;
  while (w) {
    struct sl_wmsg *next = w->next;
    if (w->drop) w->drop(w->arg);
    free_msg(w);
    w = next;
  }
  m->whead = m->wtail = NULL;
  if (m->wfd[0] >= 0) close(m->wfd[0]);
  if (m->wfd[1] >= 0 && m->wfd[1] != m->wfd[0]) close(m->wfd[1]);
  pthread_mutex_destroy(&m->wlock);
}

static int post(sl_mgr *m, struct sl_wmsg *w) {
  int signal_now = 0;
  pthread_mutex_lock(&m->wlock);
  if (m->wcount >= m->opts.wakeup_max) {
    pthread_mutex_unlock(&m->wlock);
    free_msg(w);
    return SL_EFULL;
  }
  w->next = NULL;
  if (m->wtail) m->wtail->next = w;
  else m->whead = w;
  m->wtail = w;
  m->wcount++;
  if (!m->wsignalled) signal_now = m->wsignalled = 1;
  pthread_mutex_unlock(&m->wlock);
  if (signal_now) {
    uint64_t one = 1;
    /* EAGAIN means the counter/pipe is already full: it is readable, which
     * is all we need. */
    ssize_t r = write(m->wfd[1], &one, m->wfd[0] == m->wfd[1] ? 8 : 1);
    (void)r;
  }
  return 0;
}

int sl__mgr_call_drop(sl_mgr *m, void (*fn)(sl_mgr *, void *),
                      void (*drop)(void *), void *arg) {
  struct sl_wmsg *w = sl__alloc(sizeof(*w), SL_MEM_META);
  if (w == NULL) return SL_ENOMEM;
  w->fn = fn;
  w->drop = drop;
  w->arg = arg;
  w->conn_id = 0;
  w->len = 0;
  return post(m, w);
}

int sl_mgr_call(sl_mgr *m, void (*fn)(sl_mgr *, void *), void *arg) {
  if (fn == NULL) return SL_EINVAL;
  return sl__mgr_call_drop(m, fn, NULL, arg);
}

int sl_mgr_wakeup(sl_mgr *m, uint64_t conn_id, const void *data, size_t len) {
  struct sl_wmsg *w = sl__alloc(sizeof(*w) + len, SL_MEM_META);
  if (w == NULL) return SL_ENOMEM;
  w->fn = NULL;
  w->drop = NULL;
  w->arg = NULL;
  w->conn_id = conn_id;
  w->len = len;
  if (len) memcpy(w->data, data, len);
  return post(m, w);
}

int sl__wakeup_dispatch(sl_mgr *m) {
  unsigned char drain[64];
  while (read(m->wfd[0], drain, sizeof(drain)) > 0) {
  }
  pthread_mutex_lock(&m->wlock);
  struct sl_wmsg *w = m->whead;
  m->whead = m->wtail = NULL;
  m->wcount = 0;
  m->wsignalled = 0;
  pthread_mutex_unlock(&m->wlock);
  int n = 0;
  while (w) {
    struct sl_wmsg *next = w->next;
    if (w->fn) {
      w->fn(m, w->arg);
    } else {
      sl_conn *c = sl_conn_find(m, w->conn_id);
      if (c && !(c->flags & SL_F_CLOSING)) {
        sl_str s = {(const char *)w->data, w->len};
        sl__call(c, SL_EV_WAKEUP, &s);
      }
    }
    free_msg(w);
    w = next;
    n++;
  }
  return n;
}
