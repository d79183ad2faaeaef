/*
 * Shared by the hub's unit tests (tests/unit/test_hub_policy.c,
 * tests/unit/test_hub_h264.c): a manager on a fake clock that the test
 * moves by hand, and fake writable connections.
 *
 * A fake connection is sl__conn_new(m, -1) with an sl_io whose writev
 * accepts up to a test-controlled window of bytes (EAGAIN at 0) and records
 * them, so a test knows exactly what each subscriber was sent. It has no
 * fd, so the poller never reports it writable: opening its window marks it
 * dirty (sl__conn_mark_dirty), and the next sl_mgr_poll flushes it like a
 * socket that became writable. Timers (the hub's tick, stall deadlines) run
 * from sl_mgr_poll when the fake clock passes them.
 *
 * It needs the library's internal headers, which is why it is apart from
 * hub_test.h (the loopback tests use that one through the public API only).
 * The recordings are the test's own memory (malloc), never counted by
 * sl_mem_stats.
 */
#ifndef SL_HUB_FAKE_H
#define SL_HUB_FAKE_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "alloc.h"
#include "buf.h"
#include "hub.h"
#include "internal.h"
#include "common.h"
#include "sluice.h"
#include "test.h"

#define T0 1000000u
#define OPEN SIZE_MAX

/* ---- the fake clock ------------------------------------------------- */

static uint64_t fake_now;
static inline uint64_t fake_clock(void) { return fake_now; }

static inline sl_mgr *mgr_fake(void) {
  int err = 0;
  sl_mgr *m = sl_mgr_new(NULL, &err);
  CHECK_MSG(m != NULL, "sl_mgr_new: %s", sl_strerror(err));
  fake_now = T0;
  m->clock = fake_clock;
  sl__mgr_tick(m);
  return m;
}

/* One loop iteration at the current fake time: flush, timers, reap. */
static inline void step(sl_mgr *m) { sl_mgr_poll(m, 0); }

/* Move the clock to T0 + t (never back), one iteration per 10 ms. */
static inline void at(sl_mgr *m, uint64_t t) {
  while (fake_now < T0 + t) {
    uint64_t d = T0 + t - fake_now;
    fake_now += d < 10 ? d : 10;
    step(m);
  }
  step(m);
}

/* ---- fake connections ----------------------------------------------- */

struct fake {
  sl_conn *c;
  size_t window;         /* bytes writev still accepts; OPEN: no limit */
  unsigned char *rec;    /* everything written, in order */
  size_t len, cap;
  int closed, close_reason;
  uint64_t closed_at;
};

static inline ssize_t fake_writev(sl_conn *c, const struct iovec *iov, int n) {
  struct fake *f = c->io_data;
  size_t done = 0;
  if (f->window == 0) {
    errno = EAGAIN;
    return -1;
  }
  for (int i = 0; i < n && f->window; i++) {
    size_t take = iov[i].iov_len < f->window ? iov[i].iov_len : f->window;
    if (f->len + take > f->cap) {
      f->cap = (f->len + take) * 2;
      f->rec = realloc(f->rec, f->cap);
      CHECK(f->rec != NULL);
    }
    memcpy(f->rec + f->len, iov[i].iov_base, take);
    f->len += take;
    done += take;
    if (f->window != OPEN) f->window -= take;
    if (take < iov[i].iov_len) break;
  }
  return (ssize_t)done;
}

static inline ssize_t fake_read(sl_conn *c, void *buf, size_t len) {
  (void)c, (void)buf, (void)len;
  errno = EAGAIN;
  return -1;
}

static const struct sl_io fake_io = {.writev = fake_writev, .read = fake_read};

static inline void fake_ev(sl_conn *c, int ev, void *ev_data) {
  struct fake *f = sl_conn_data(c);
  (void)ev_data;
  if (ev == SL_EV_CLOSE) {
    f->closed = 1;
    f->close_reason = sl_conn_close_reason(c);
    f->closed_at = fake_now - T0;
    f->c = NULL;
  }
}

static inline sl_conn *fake_conn(sl_mgr *m, struct fake *f, size_t window) {
  memset(f, 0, sizeof(*f));
  sl_conn *c = sl__conn_new(m, -1, fake_ev, f);
  CHECK(c != NULL);
  c->io = &fake_io;
  c->io_data = f;
  f->c = c;
  f->window = window;
  return c;
}

static inline int attach(sl_hub *h, struct fake *f, size_t window, int transport,
                  const sl_sub_opts *o) {
  sl_conn *c = fake_conn(h->mgr, f, window);
  int rc = sl_hub_attach_conn(h, c, transport, o);
  if (rc) sl_conn_close(c, SL_CLOSE_NOW);
  return rc;
}

/* Let `window` more bytes through (OPEN: all) and flush at once. */
static inline void set_window(sl_mgr *m, struct fake *f, size_t window) {
  f->window = window;
  if (f->c) sl__conn_mark_dirty(f->c);
  step(m);
}

static inline void sub_stats(sl_hub *h, const struct fake *f, sl_sub_stats *out) {
  sl_sub_stats all[128];
  size_t n = sl_hub_subs(h, all, 128);
  CHECK(f->c != NULL);
  for (size_t i = 0; i < n && i < 128; i++)
    if (all[i].id == sl_conn_id(f->c)) {
      *out = all[i];
      return;
    }
  CHECK_MSG(0, "subscriber %llu not found", (unsigned long long)sl_conn_id(f->c));
}

static inline sl_hub_stats hub_stats(sl_hub *h) {
  sl_hub_stats st;
  sl_hub_stats_get(h, &st);
  return st;
}

/* Close what is still open, free the hub and the manager: every counter
 * must be back to zero. */
static inline void finish(sl_mgr *m, sl_hub *h, struct fake **fs, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (fs[i]->c) sl_conn_close(fs[i]->c, SL_CLOSE_NOW);
  step(m);
  sl_hub_free(h);
  step(m);
  CHECK_MGR_FREE_CLEAN(m);
  for (size_t i = 0; i < n; i++) {
    free(fs[i]->rec);
    fs[i]->rec = NULL;
  }
}

#endif
