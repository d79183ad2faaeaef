/*
 * Timers: a binary min-heap ordered by (due, seq). `seq` is taken each time
 * a timer is armed, so timers due at the same millisecond fire in arming
 * order: the ordering guarantee documented in sluice.h.
 */
#ifndef SL_TIMER_H
#define SL_TIMER_H

#include <stddef.h>
#include <stdint.h>

#include "sluice.h"

struct sl_timer {
  uint64_t due;
  uint64_t seq;
  uint64_t period;   /* 0: one-shot */
  size_t idx;        /* position in the heap; SIZE_MAX when not armed */
  sl_timer_fn fn;
  void *arg;
  int internal;      /* embedded in another object: never freed here */
  int dead;          /* freed from inside its own callback */
};

struct sl_timers {
  struct sl_timer **heap;
  size_t n, cap;
  uint64_t seq;
  /* The timer whose callback runs now (loop.c run_timers): sl_timer_free
   * on it only marks it dead. Per manager, so loops on other threads
   * never see it. */
  struct sl_timer *running;
};

void sl__timers_init(struct sl_timers *ts);
/* Free every non-internal timer and the heap. */
void sl__timers_fini(struct sl_timers *ts);
/* Arm (or re-arm) `t` to fire at `due`. 0 or SL_ENOMEM. */
int sl__timer_arm(struct sl_timers *ts, struct sl_timer *t, uint64_t due);
/* Disarm if armed. */
void sl__timer_disarm(struct sl_timers *ts, struct sl_timer *t);
/* The earliest due time, or UINT64_MAX. */
uint64_t sl__timers_next(const struct sl_timers *ts);
/* Pop the earliest timer if it is due at `now`, else NULL. */
struct sl_timer *sl__timers_pop_due(struct sl_timers *ts, uint64_t now);

#endif
