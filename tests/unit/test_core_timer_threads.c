/* Timers of two managers on two threads: each loop frees and re-adds its
 * timers from inside their own callbacks, concurrently. The timer whose
 * callback runs belongs to one manager; a process-wide "running timer"
 * would let one loop's sl_timer_free see the other loop's timer, free a
 * timer still in use, and re-arm freed memory. Run under TSan by
 * scripts/ci-tsan.sh (its default patterns include "thread"). */
#include <pthread.h>
#include <stdint.h>

#include "sluice.h"
#include "test.h"

#define SLOTS 8
#define TARGET 40000 /* callbacks per manager */

struct loop;
struct slot {
  struct loop *lp;
  sl_timer *t;
  int idx;
};

struct loop {
  sl_mgr *m;
  struct slot s[SLOTS];
  long fired;     /* callbacks run */
  long wrong;     /* a callback saw a slot of another manager */
  long oneshots;  /* one-shot callbacks run */
};

static void on_oneshot(sl_mgr *m, void *arg) {
  struct loop *lp = arg;
  if (lp->m != m) lp->wrong++;
  lp->oneshots++;
}

/* A repeating timer that frees itself (the manager defers that until the
 * callback returns), frees a neighbour outright, and re-adds both. */
static void on_tick(sl_mgr *m, void *arg) {
  struct slot *s = arg;
  struct loop *lp = s->lp;
  if (lp->m != m) lp->wrong++;
  lp->fired++;
  sl_timer_free(m, s->t);
  s->t = NULL;
  struct slot *o = &lp->s[(s->idx + 1) % SLOTS];
  if (o != s && o->t) {
    sl_timer_free(m, o->t);
    o->t = NULL;
  }
  if (lp->fired >= TARGET) return;
  s->t = sl_timer_add(m, 0, SL_TIMER_REPEAT, on_tick, s, NULL);
  if (o != s && o->t == NULL)
    o->t = sl_timer_add(m, 0, SL_TIMER_REPEAT, on_tick, o, NULL);
  /* A one-shot as well: freed by the loop once it has run. */
  sl_timer_add(m, 0, 0, on_oneshot, lp, NULL);
}

static void *run_loop(void *arg) {
  struct loop *lp = arg;
  for (int i = 0; i < SLOTS; i++) {
    lp->s[i].lp = lp;
    lp->s[i].idx = i;
    lp->s[i].t = sl_timer_add(lp->m, 0, SL_TIMER_REPEAT, on_tick, &lp->s[i], NULL);
  }
  uint64_t t0 = test_now_ms();
  while (lp->fired < TARGET && test_now_ms() - t0 < 30000) sl_mgr_poll(lp->m, 0);
  for (int i = 0; i < SLOTS; i++) {
    sl_timer_free(lp->m, lp->s[i].t);
    lp->s[i].t = NULL;
  }
  return NULL;
}

TEST_T(timer_free_readd_on_two_threads, 60) {
  struct loop lp[2] = {{0}, {0}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++) {
    lp[i].m = sl_mgr_new(NULL, NULL);
    CHECK(lp[i].m != NULL);
  }
  for (int i = 0; i < 2; i++) CHECK_EQ(pthread_create(&th[i], NULL, run_loop, &lp[i]), 0);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 2; i++) {
    CHECK_EQ(lp[i].wrong, 0);
    CHECK_LE(TARGET, lp[i].fired);
    CHECK_LE(TARGET / 2, lp[i].oneshots);
    sl_mgr_free(lp[i].m);
  }
  sl_mem_stats ms;
  sl_mem_stats_get(&ms);
  CHECK_EQ(ms.total, 0);
}
