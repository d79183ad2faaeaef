/* poll(2) backend: the portable fallback. Keeps a dense pollfd array and a
 * fd -> slot index so add/mod/del are O(1); wait is O(n) as poll is.
 * Both arrays shrink again when the connections that grew them leave, so a
 * burst of viewers does not keep its bookkeeping after it is gone. */
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "alloc.h"
#include "poller.h"
#include "sluice.h"

/* The state behind the opaque struct sl_poller. It has a name of its own,
 * not the epoll backend's, so that both backends can share one translation
 * unit (scripts/amalgamate.py); the hooks convert at their entry. */
struct pl_poller {
  struct pollfd *fds;
  void **ptrs;
  int *slot;       /* fd -> index in fds, -1 when absent */
  size_t n;        /* entries in fds and ptrs */
  size_t fcap, pcap; /* capacities of fds and ptrs, each >= n */
  size_t nslot;    /* entries in slot */
  size_t high;     /* present fds >= nslot / 4: while any, slot keeps size */
};

#define PL_MIN 64 /* neither array shrinks below this many entries */

static struct pl_poller *pl_of(struct sl_poller *p) { return (struct pl_poller *)(void *)p; }

static int pl_open(struct sl_poller **out) {
  struct pl_poller *p = sl__calloc(sizeof(*p), SL_MEM_META);
  if (p == NULL) return SL_ENOMEM;
  *out = (struct sl_poller *)(void *)p;
  return 0;
}

static void pl_close(struct sl_poller *pp) {
  struct pl_poller *p = pl_of(pp);
  sl__free(p->fds, p->fcap * sizeof(*p->fds), SL_MEM_META);
  sl__free(p->ptrs, p->pcap * sizeof(*p->ptrs), SL_MEM_META);
  sl__free(p->slot, p->nslot * sizeof(*p->slot), SL_MEM_META);
  sl__free(p, sizeof(*p), SL_MEM_META);
}

static short to_poll(int events) {
  return (short)(((events & SL_POLL_IN) ? POLLIN : 0) |
                 ((events & SL_POLL_OUT) ? POLLOUT : 0));
}

/* Counts the present fds in the top three quarters of a slot array of ns
 * entries: O(n), run only when slot changes size. */
static size_t count_high(const struct pl_poller *p, size_t ns) {
  size_t c = 0;
  for (size_t i = 0; i < p->n; i++)
    if ((size_t)p->fds[i].fd >= ns / 4) c++;
  return c;
}

static int grow(struct pl_poller *p, int fd) {
  if ((size_t)fd >= p->nslot) {
    size_t ns = p->nslot ? p->nslot : PL_MIN;
    while (ns <= (size_t)fd) ns *= 2;
    int *s = sl__realloc(p->slot, p->nslot * sizeof(int), ns * sizeof(int),
                         SL_MEM_META);
    if (s == NULL) return SL_ENOMEM;
    for (size_t i = p->nslot; i < ns; i++) s[i] = -1;
    p->slot = s;
    p->nslot = ns;
    p->high = count_high(p, ns);
  }
  if (p->n == p->fcap) {
    size_t nc = p->fcap ? p->fcap * 2 : PL_MIN;
    struct pollfd *f = sl__realloc(p->fds, p->fcap * sizeof(*f),
                                   nc * sizeof(*f), SL_MEM_META);
    if (f == NULL) return SL_ENOMEM;
    p->fds = f;
    p->fcap = nc;
  }
  if (p->n == p->pcap) {
    size_t nc = p->pcap ? p->pcap * 2 : PL_MIN;
    void **q = sl__realloc(p->ptrs, p->pcap * sizeof(*q), nc * sizeof(*q),
                           SL_MEM_META);
    if (q == NULL) return SL_ENOMEM;
    p->ptrs = q;
    p->pcap = nc;
  }
  return 0;
}

static int pl_add(struct sl_poller *pp, int fd, int events, void *ptr) {
  struct pl_poller *p = pl_of(pp);
  if (fd < 0) return SL_EBADF;
  int rc = grow(p, fd);
  if (rc) return rc;
  if (p->slot[fd] >= 0) return SL_EEXIST;
  p->fds[p->n].fd = fd;
  p->fds[p->n].events = to_poll(events);
  p->fds[p->n].revents = 0;
  p->ptrs[p->n] = ptr;
  p->slot[fd] = (int)p->n++;
  if ((size_t)fd >= p->nslot / 4) p->high++;
  return 0;
}

/* Halves what no longer needs its size. The dense arrays (each with its
 * own capacity, so that one failed realloc leaves both consistent) halve
 * when a quarter full; the fd index halves when no fd is in its top three
 * quarters, so a regrowth needs twice the fd that allowed the shrink (no
 * realloc ping-pong around one boundary). A failed shrink keeps the larger
 * array, which is still correct. */
static void shrink(struct pl_poller *p) {
  while (p->fcap > PL_MIN && p->n <= p->fcap / 4) {
    struct pollfd *f = sl__realloc(p->fds, p->fcap * sizeof(*f),
                                   p->fcap / 2 * sizeof(*f), SL_MEM_META);
    if (f == NULL) break;
    p->fds = f;
    p->fcap /= 2;
  }
  while (p->pcap > PL_MIN && p->n <= p->pcap / 4) {
    void **q = sl__realloc(p->ptrs, p->pcap * sizeof(*q),
                           p->pcap / 2 * sizeof(*q), SL_MEM_META);
    if (q == NULL) break;
    p->ptrs = q;
    p->pcap /= 2;
  }
  while (p->nslot > PL_MIN && p->high == 0) {
    size_t ns = p->nslot / 2;
    int *s = sl__realloc(p->slot, p->nslot * sizeof(int), ns * sizeof(int),
                         SL_MEM_META);
    if (s == NULL) break;
    p->slot = s;
    p->nslot = ns;
    p->high = count_high(p, ns);
  }
}

static int pl_mod(struct sl_poller *pp, int fd, int events, void *ptr) {
  struct pl_poller *p = pl_of(pp);
  if (fd < 0 || (size_t)fd >= p->nslot || p->slot[fd] < 0) return SL_ENOENT;
  int i = p->slot[fd];
  p->fds[i].events = to_poll(events);
  p->ptrs[i] = ptr;
  return 0;
}

static void pl_del(struct sl_poller *pp, int fd) {
  struct pl_poller *p = pl_of(pp);
  if (fd < 0 || (size_t)fd >= p->nslot || p->slot[fd] < 0) return;
  size_t i = (size_t)p->slot[fd], last = p->n - 1;
  p->slot[fd] = -1;
  if ((size_t)fd >= p->nslot / 4) p->high--;
  if (i != last) {
    p->fds[i] = p->fds[last];
    p->ptrs[i] = p->ptrs[last];
    p->slot[p->fds[i].fd] = (int)i;
  }
  p->n--;
  shrink(p);
}

static int pl_wait(struct sl_poller *pp, struct sl_pevent *ev, int max,
                   int timeout_ms) {
  struct pl_poller *p = pl_of(pp);
  int n = poll(p->fds, (nfds_t)p->n, timeout_ms);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  int out = 0;
  for (size_t i = 0; i < p->n && out < max && n > 0; i++) {
    short r = p->fds[i].revents;
    if (r == 0) continue;
    n--;
    ev[out].ptr = p->ptrs[i];
    ev[out].events = ((r & (POLLIN | POLLHUP)) ? SL_POLL_IN : 0) |
                     ((r & POLLOUT) ? SL_POLL_OUT : 0) |
                     ((r & (POLLERR | POLLNVAL)) ? SL_POLL_ERR : 0);
    out++;
  }
  return out;
}

const struct sl_poller_ops sl__poller_poll = {
    "poll", pl_open, pl_close, pl_add, pl_mod, pl_del, pl_wait,
};
