/*
 * The poller: the one place that knows how to wait for readiness. Each
 * backend implements these hooks and nothing else (poller_epoll.c,
 * poller_poll.c). Registrations are level-triggered: a paused reader simply
 * drops SL_POLL_IN from its interest.
 */
#ifndef SL_POLLER_H
#define SL_POLLER_H

enum { SL_POLL_IN = 1, SL_POLL_OUT = 2, SL_POLL_ERR = 4 };

struct sl_pevent {
  void *ptr;   /* what was registered with the fd */
  int events;  /* SL_POLL_* */
};

struct sl_poller;

struct sl_poller_ops {
  const char *name;
  /* Create the backend state; 0 or a negative SL_E* code. */
  int (*open)(struct sl_poller **out);
  void (*close)(struct sl_poller *p);
  /* Register fd with interest `events` (may be 0) and a pointer. */
  int (*add)(struct sl_poller *p, int fd, int events, void *ptr);
  /* Change the interest of a registered fd. */
  int (*mod)(struct sl_poller *p, int fd, int events, void *ptr);
  /* Unregister; pending events for fd from the current wait are dropped. */
  void (*del)(struct sl_poller *p, int fd);
  /* Wait up to timeout_ms (-1 forever); fill up to max events. Returns the
   * count or a negative SL_E* code (SL_EINTR is returned as 0). */
  int (*wait)(struct sl_poller *p, struct sl_pevent *ev, int max,
              int timeout_ms);
};

extern const struct sl_poller_ops sl__poller_epoll;
extern const struct sl_poller_ops sl__poller_poll;

#endif
