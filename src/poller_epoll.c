/* epoll backend, level-triggered. */
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "alloc.h"
#include "poller.h"
#include "sluice.h"

#define MAX_BATCH 256

struct sl_poller {
  int epfd;
  struct epoll_event evs[MAX_BATCH];
};

static int ep_open(struct sl_poller **out) {
  struct sl_poller *p = sl__alloc(sizeof(*p), SL_MEM_META);
  if (p == NULL) return SL_ENOMEM;
  p->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (p->epfd < 0) {
    int e = -errno;
    sl__free(p, sizeof(*p), SL_MEM_META);
    return e;
  }
  *out = p;
  return 0;
}

static void ep_close(struct sl_poller *p) {
  close(p->epfd);
  sl__free(p, sizeof(*p), SL_MEM_META);
}

static int ep_ctl(struct sl_poller *p, int op, int fd, int events, void *ptr) {
  struct epoll_event e = {0};
  if (events & SL_POLL_IN) e.events |= EPOLLIN | EPOLLRDHUP;
  if (events & SL_POLL_OUT) e.events |= EPOLLOUT;
  e.data.ptr = ptr;
  return epoll_ctl(p->epfd, op, fd, &e) == 0 ? 0 : -errno;
}

static int ep_add(struct sl_poller *p, int fd, int events, void *ptr) {
  return ep_ctl(p, EPOLL_CTL_ADD, fd, events, ptr);
}

static int ep_mod(struct sl_poller *p, int fd, int events, void *ptr) {
  return ep_ctl(p, EPOLL_CTL_MOD, fd, events, ptr);
}

static void ep_del(struct sl_poller *p, int fd) {
  struct epoll_event e = {0};
  epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, &e);
}

static int ep_wait(struct sl_poller *p, struct sl_pevent *ev, int max,
                   int timeout_ms) {
  if (max > MAX_BATCH) max = MAX_BATCH;
  int n = epoll_wait(p->epfd, p->evs, max, timeout_ms);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  for (int i = 0; i < n; i++) {
    uint32_t e = p->evs[i].events;
    ev[i].ptr = p->evs[i].data.ptr;
    ev[i].events = ((e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) ? SL_POLL_IN : 0) |
                   ((e & EPOLLOUT) ? SL_POLL_OUT : 0) |
                   ((e & EPOLLERR) ? SL_POLL_ERR : 0);
  }
  return n;
}

const struct sl_poller_ops sl__poller_epoll = {
    "epoll", ep_open, ep_close, ep_add, ep_mod, ep_del, ep_wait,
};
