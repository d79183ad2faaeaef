/* Unit tests of the output queue, shared buffers, timers and the wakeup
 * channel: no sockets except where a manager is needed for timers. */
#include <pthread.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "internal.h"
#include "common.h"
#include "outq.h"
#include "sluice.h"
#include "test.h"
#include "timer.h"

static void drain(struct sl_outq *q, struct sl_acct *a, char *out, size_t step) {
  size_t pos = 0;
  while (q->queued) {
    struct iovec iov[8];
    size_t bytes;
    int n = sl__outq_iov(q, iov, 8, step, &bytes);
    CHECK(n > 0);
    for (int i = 0; i < n; i++) {
      memcpy(out + pos, iov[i].iov_base, iov[i].iov_len);
      pos += iov[i].iov_len;
    }
    sl__outq_consume(q, a, bytes);
  }
}

TEST(outq_copy_and_ref_accounting) {
  struct sl_outq q;
  struct sl_acct a = {0};
  sl_mem_stats m0, m1;
  sl_mem_stats_get(&m0);
  sl__outq_init(&q);
  sl_buf *b = sl_buf_from("0123456789", 10);
  sl_part parts[3] = {{"ab", NULL, 0, 2}, {NULL, b, 2, 5}, {"cd", NULL, 0, 2}};
  CHECK_EQ(sl__outq_push(&q, &a, parts, 3), 0);
  CHECK_EQ(q.queued, 9);
  CHECK_EQ(q.owned, 4);
  CHECK_EQ(q.referenced, 5);
  CHECK_EQ(a.queued, 9);
  CHECK_EQ(sl_buf_refs(b), 2);
  /* The buffer is counted once however many segments reference it. */
  CHECK_EQ(sl__outq_push(&q, &a, &parts[1], 1), 0);
  CHECK_EQ(a.out_ref, sl__buf_size(b));
  CHECK_EQ(sl_buf_refs(b), 3);
  char out[64] = {0};
  drain(&q, &a, out, 3); /* partial writes of 3 bytes */
  CHECK_MEM(out, "ab23456cd23456", 14);
  CHECK_EQ(sl_buf_refs(b), 1);
  CHECK_EQ(a.held, 0);
  CHECK_EQ(a.queued, 0);
  CHECK_EQ(a.out_ref, 0);
  CHECK_EQ(a.out_owned, 0);
  CHECK(a.peak > 0);
  sl_buf_unref(b);
  sl_mem_stats_get(&m1);
  CHECK_EQ(m1.total, m0.total);
  CHECK_EQ(m1.nbufs, m0.nbufs);
}

TEST(outq_small_writes_share_a_chunk) {
  struct sl_outq q;
  struct sl_acct a = {0};
  sl__outq_init(&q);
  for (int i = 0; i < 100; i++) {
    sl_part p = {"0123456789", NULL, 0, 5};
    CHECK_EQ(sl__outq_push(&q, &a, &p, 1), 0);
  }
  CHECK_EQ(q.queued, 500);
  CHECK_EQ(q.nseg, 1); /* 500 bytes fit one SL_OUTQ_CHUNK */
  sl_part p = {"x", NULL, 0, 1};
  sl__outq_push(&q, &a, &p, 1);
  sl__outq_push(&q, &a, &p, 1);
  sl__outq_push(&q, &a, &p, 1);
  sl__outq_push(&q, &a, &p, 1);
  sl__outq_push(&q, &a, &p, 1);
  sl__outq_push(&q, &a, &p, 1);
  sl__outq_push(&q, &a, &p, 1);
  sl__outq_push(&q, &a, &p, 1);
  sl__outq_push(&q, &a, &p, 1);
  sl__outq_push(&q, &a, &p, 1);
  sl__outq_push(&q, &a, &p, 1);
  sl__outq_push(&q, &a, &p, 1);
  sl__outq_push(&q, &a, &p, 1);
  CHECK_EQ(q.nseg, 2);
  /* Consuming the front advances an offset: the remaining bytes do not
   * move (the address of the next byte is unchanged). */
  struct iovec iov[2];
  size_t bytes;
  sl__outq_iov(&q, iov, 2, 1 << 20, &bytes);
  const char *second = (const char *)iov[0].iov_base + 7;
  sl__outq_consume(&q, &a, 7);
  sl__outq_iov(&q, iov, 2, 1 << 20, &bytes);
  CHECK(iov[0].iov_base == second);
  sl__outq_clear(&q, &a);
  CHECK_EQ(a.held, 0);
  CHECK_EQ(a.queued, 0);
}

TEST(buf_refcount_frees_exactly_once) {
  sl_mem_stats m0, m1;
  sl_mem_stats_get(&m0);
  sl_buf *b = sl_buf_new(1000);
  sl_mem_stats_get(&m1);
  CHECK_EQ(m1.nbufs, m0.nbufs + 1);
  CHECK_EQ(m1.bufs, m0.bufs + sl__buf_size(b));
  for (int i = 0; i < 10; i++) sl_buf_ref(b);
  CHECK_EQ(sl_buf_refs(b), 11);
  for (int i = 0; i < 10; i++) sl_buf_unref(b);
  sl_mem_stats_get(&m1);
  CHECK_EQ(m1.nbufs, m0.nbufs + 1);
  sl_buf_unref(b);
  sl_mem_stats_get(&m1);
  CHECK_EQ(m1.nbufs, m0.nbufs);
  CHECK_EQ(m1.bufs, m0.bufs);
  sl_buf *z = sl_buf_new(4);
  CHECK_EQ(sl_buf_truncate(z, 5), SL_EINVAL);
  CHECK_EQ(sl_buf_truncate(z, 2), 0);
  CHECK_EQ(sl_buf_len(z), 2);
  sl_buf_unref(z);
}

static void *ref_storm(void *arg) {
  sl_buf *b = arg;
  for (int i = 0; i < 100000; i++) sl_buf_unref(sl_buf_ref(b));
  return NULL;
}

TEST(buf_refcount_across_threads) {
  sl_mem_stats m0, m1;
  sl_mem_stats_get(&m0);
  sl_buf *b = sl_buf_new(64);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, ref_storm, b);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  CHECK_EQ(sl_buf_refs(b), 1);
  sl_buf_unref(b);
  sl_mem_stats_get(&m1);
  CHECK_EQ(m1.nbufs, m0.nbufs);
}

TEST(mgr_new_free_leaves_nothing) {
  sl_mgr *m = sl_mgr_new(NULL, NULL);
  CHECK(m != NULL);
  sl_mgr_free(m);
  sl_mem_stats s;
  sl_mem_stats_get(&s);
  CHECK_EQ(s.total, 0);
}

/* ---- timers ---- */

static int order[16], norder;
static void rec(sl_mgr *m, void *arg) {
  (void)m;
  order[norder++] = (int)(intptr_t)arg;
}

TEST(timer_heap_orders_by_due_then_arming) {
  struct sl_timers ts;
  struct sl_timer t[6];
  sl__timers_init(&ts);
  uint64_t due[6] = {50, 10, 10, 30, 10, 5};
  for (int i = 0; i < 6; i++) {
    memset(&t[i], 0, sizeof(t[i]));
    t[i].idx = SIZE_MAX;
    t[i].internal = 1;
    t[i].arg = (void *)(intptr_t)i;
    CHECK_EQ(sl__timer_arm(&ts, &t[i], due[i]), 0);
  }
  sl__timer_disarm(&ts, &t[3]);
  int want[] = {5, 1, 2, 4, 0};
  struct sl_timer *x;
  int k = 0;
  CHECK(sl__timers_pop_due(&ts, 4) == NULL);
  while ((x = sl__timers_pop_due(&ts, 100)) != NULL) {
    CHECK(k < 5);
    CHECK_EQ((intptr_t)x->arg, want[k]);
    k++;
  }
  CHECK_EQ(k, 5);
  sl__timers_fini(&ts);
}

/* On the fake clock: the counts are exact, whatever the machine's load. */
TEST(timer_oneshot_and_repeat_on_manager) {
  sl_mgr *m = sl_mgr_new(NULL, NULL);
  test_clock_install(m, 1000000);
  norder = 0;
  sl_timer *r = sl_timer_add(m, 20, SL_TIMER_REPEAT, rec, (void *)1, NULL);
  sl_timer_add(m, 50, 0, rec, (void *)2, NULL);
  sl_timer_add(m, 50, 0, rec, (void *)3, NULL); /* same ms: arming order */
  test_clock_advance(m, 49, 1);
  CHECK_EQ(norder, 2); /* 20, 40 */
  test_clock_advance(m, 1, 1);
  CHECK_EQ(norder, 4); /* the two one-shots at 50, in arming order */
  CHECK_EQ(order[2], 2);
  CHECK_EQ(order[3], 3);
  test_clock_advance(m, 80, 1); /* to 130: 60, 80, 100, 120 */
  sl_timer_free(m, r);
  int reps = 0;
  for (int i = 0; i < norder; i++) reps += order[i] == 1;
  CHECK_EQ(reps, 6);
  CHECK_EQ(norder, 8);
  /* A late loop skips the periods it missed instead of firing them in a
   * burst: one jump of 100 ms is one call, not five. */
  norder = 0;
  r = sl_timer_add(m, 20, SL_TIMER_REPEAT, rec, (void *)1, NULL);
  test_clock_advance(m, 100, 100);
  CHECK_EQ(norder, 1);
  sl_timer_free(m, r);
  CHECK_MGR_FREE_CLEAN(m);
}

static int self_free_count;
static sl_timer *self_t;
static void self_free(sl_mgr *m, void *arg) {
  (void)arg;
  if (++self_free_count == 3) sl_timer_free(m, self_t);
}

TEST(timer_free_from_own_callback) {
  sl_mgr *m = sl_mgr_new(NULL, NULL);
  test_clock_install(m, 1000000);
  self_t = sl_timer_add(m, 1, SL_TIMER_REPEAT, self_free, NULL, NULL);
  test_clock_advance(m, 50, 1);
  CHECK_EQ(self_free_count, 3);
  CHECK_MGR_FREE_CLEAN(m);
}

/* ---- wakeup from other threads ---- */

static int calls;
static void on_call(sl_mgr *m, void *arg) {
  (void)m;
  calls += (int)(intptr_t)arg;
}

static void *poster(void *arg) {
  sl_mgr *m = arg;
  for (int i = 0; i < 500; i++)
    while (sl_mgr_call(m, on_call, (void *)1) == SL_EFULL) usleep(100);
  return NULL;
}

TEST(wakeup_calls_from_threads) {
  sl_mgr_opts o = {.wakeup_max = 64};
  sl_mgr *m = sl_mgr_new(&o, NULL);
  pthread_t t[2];
  calls = 0;
  for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, poster, m);
  uint64_t t0 = test_now_ms();
  while (calls < 1000 && test_now_ms() - t0 < 10000) sl_mgr_poll(m, 50);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  sl_mgr_poll(m, 0);
  CHECK_EQ(calls, 1000);
  sl_mgr_free(m);
}

TEST(wakeup_wakes_a_blocked_poll) {
  sl_mgr *m = sl_mgr_new(NULL, NULL);
  calls = 0;
  pthread_t t;
  pthread_create(&t, NULL, poster, m);
  uint64_t t0 = test_now_ms();
  int rounds = 0;
  /* Each poll would block for 10 s without the wakeup. */
  while (calls < 500 && rounds++ < 1000) sl_mgr_poll(m, 10000);
  pthread_join(t, NULL);
  CHECK_EQ(calls, 500);
  CHECK(test_now_ms() - t0 < 5000);
  sl_mgr_free(m);
}

TEST(wakeup_bounded_queue_refuses_when_full) {
  sl_mgr_opts o = {.wakeup_max = 4};
  sl_mgr *m = sl_mgr_new(&o, NULL);
  for (int i = 0; i < 4; i++) CHECK_EQ(sl_mgr_wakeup(m, 1, "x", 1), 0);
  CHECK_EQ(sl_mgr_wakeup(m, 1, "x", 1), SL_EFULL);
  sl_mgr_free(m); /* drops the pending messages */
  sl_mem_stats s;
  sl_mem_stats_get(&s);
  CHECK_EQ(s.total, 0);
}

TEST(errors_and_names_from_one_list) {
  CHECK_STR(sl_err_name(SL_ENOBUFS), "SL_ENOBUFS");
  CHECK_STR(sl_strerror(SL_ENOMEM), "out of memory");
  CHECK_STR(sl_strerror(12345), "unknown error");
  CHECK_STR(sl_ev_name(SL_EV_DRAIN), "drain");
  CHECK_STR(sl_ev_name(999), "?");
  CHECK_STR(sl_close_reason_name(SL_CLOSE_STALL), "stall");
  CHECK_EQ(SL_ETIMEDOUT, -110);
}
