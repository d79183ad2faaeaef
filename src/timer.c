/* A binary min-heap of timers; O(log n) arm, disarm and pop. One heap
 * entry per armed timer, so per-connection timeouts cost nothing per I/O
 * event: connections re-arm lazily when their timer fires (conn.c). */
#include "timer.h"

#include <string.h>

#include "alloc.h"

static int before(const struct sl_timer *a, const struct sl_timer *b) {
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void place(struct sl_timers *ts, size_t i, struct sl_timer *t) {
  ts->heap[i] = t;
  t->idx = i;
}

static void sift_up(struct sl_timers *ts, size_t i) {
  struct sl_timer *t = ts->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!before(t, ts->heap[parent])) break;
    place(ts, i, ts->heap[parent]);
    i = parent;
  }
  place(ts, i, t);
}

static void sift_down(struct sl_timers *ts, size_t i) {
  struct sl_timer *t = ts->heap[i];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    const struct sl_timer *best = t;
    if (l < ts->n && before(ts->heap[l], best)) m = l, best = ts->heap[l];
    if (r < ts->n && before(ts->heap[r], best)) m = r;
    if (m == i) break;
    place(ts, i, ts->heap[m]);
    i = m;
  }
  place(ts, i, t);
}

void sl__timers_init(struct sl_timers *ts) { memset(ts, 0, sizeof(*ts)); }

void sl__timers_fini(struct sl_timers *ts) {
  for (size_t i = 0; i < ts->n; i++) {
    struct sl_timer *t = ts->heap[i];
    t->idx = SIZE_MAX;
    if (!t->internal) sl__free(t, sizeof(*t), SL_MEM_META);
  }
  sl__free(ts->heap, ts->cap * sizeof(*ts->heap), SL_MEM_META);
  memset(ts, 0, sizeof(*ts));
}

/* Give back what a burst of connections made the heap grow to, once it is
 * a quarter full (halving, so that a load around one size does not make it
 * grow and shrink in turn). A failed shrink keeps the larger heap. */
static void maybe_shrink(struct sl_timers *ts) {
  if (ts->cap <= 64 || ts->n >= ts->cap / 4) return;
  size_t ncap = ts->cap / 2;
  struct sl_timer **h = sl__realloc(ts->heap, ts->cap * sizeof(*h), ncap * sizeof(*h),
                                    SL_MEM_META);
  if (h == NULL) return;
  ts->heap = h;
  ts->cap = ncap;
}

void sl__timer_disarm(struct sl_timers *ts, struct sl_timer *t) {
  size_t i = t->idx;
  if (i == SIZE_MAX || i >= ts->n || ts->heap[i] != t) return;
  t->idx = SIZE_MAX;
  ts->n--;
  if (i != ts->n) {
    place(ts, i, ts->heap[ts->n]);
    sift_down(ts, i);
    sift_up(ts, ts->heap[i] == NULL ? i : ts->heap[i]->idx);
  }
  maybe_shrink(ts);
}

int sl__timer_arm(struct sl_timers *ts, struct sl_timer *t, uint64_t due) {
  if (t->idx != SIZE_MAX && t->idx < ts->n && ts->heap[t->idx] == t)
    sl__timer_disarm(ts, t);
  if (ts->n == ts->cap) {
    size_t ncap = ts->cap ? ts->cap * 2 : 64;
    struct sl_timer **h = sl__realloc(ts->heap, ts->cap * sizeof(*h),
                                      ncap * sizeof(*h), SL_MEM_META);
    if (h == NULL) return SL_ENOMEM;
    ts->heap = h;
    ts->cap = ncap;
  }
  t->due = due;
  t->seq = ++ts->seq;
  place(ts, ts->n++, t);
  sift_up(ts, ts->n - 1);
  return 0;
}

uint64_t sl__timers_next(const struct sl_timers *ts) {
  return ts->n ? ts->heap[0]->due : UINT64_MAX;
}

struct sl_timer *sl__timers_pop_due(struct sl_timers *ts, uint64_t now) {
  if (ts->n == 0 || ts->heap[0]->due > now) return NULL;
  struct sl_timer *t = ts->heap[0];
  sl__timer_disarm(ts, t);
  return t;
}
