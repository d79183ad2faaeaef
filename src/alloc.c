/*
 * Counted allocation with replaceable hooks. The counters are atomics
 * because shared buffers are allocated and freed on any thread (a capture
 * thread creates frames; the loop drops the last reference).
 */
#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "sluice.h"

static void *(*hook_malloc)(size_t) = malloc;
static void *(*hook_realloc)(void *, size_t) = realloc;
static void (*hook_free)(void *) = free;

static atomic_size_t used[SL_MEM_NKINDS];
static atomic_size_t total, peak, nbufs;
static atomic_int started;

static void count_add(size_t n, int kind) {
  atomic_fetch_add_explicit(&used[kind], n, memory_order_relaxed);
  size_t now = atomic_fetch_add_explicit(&total, n, memory_order_relaxed) + n;
  size_t p = atomic_load_explicit(&peak, memory_order_relaxed);
  while (now > p && !atomic_compare_exchange_weak_explicit(
                        &peak, &p, now, memory_order_relaxed,
                        memory_order_relaxed)) {
  }
  if (kind == SL_MEM_BUF) atomic_fetch_add_explicit(&nbufs, 1, memory_order_relaxed);
}

static void count_sub(size_t n, int kind) {
  atomic_fetch_sub_explicit(&used[kind], n, memory_order_relaxed);
  atomic_fetch_sub_explicit(&total, n, memory_order_relaxed);
  if (kind == SL_MEM_BUF) atomic_fetch_sub_explicit(&nbufs, 1, memory_order_relaxed);
}

int sl_set_allocator(void *(*m)(size_t), void *(*r)(void *, size_t),
                     void (*f)(void *)) {
  if (atomic_load(&started)) return SL_EBUSY;
  hook_malloc = m ? m : malloc;
  hook_realloc = r ? r : realloc;
  hook_free = f ? f : free;
  return 0;
}

void *sl__alloc(size_t size, int kind) {
  atomic_store_explicit(&started, 1, memory_order_relaxed);
  void *p = hook_malloc(size ? size : 1);
  if (p) count_add(size, kind);
  return p;
}

void *sl__calloc(size_t size, int kind) {
  void *p = sl__alloc(size, kind);
  if (p) memset(p, 0, size);
  return p;
}

void *sl__realloc(void *p, size_t old, size_t size, int kind) {
  if (p == NULL) return sl__alloc(size, kind);
  void *q = hook_realloc(p, size ? size : 1);
  if (q == NULL) return NULL;
  /* A realloc is not a new SL_MEM_BUF object: adjust bytes only. */
  if (size >= old) {
    atomic_fetch_add_explicit(&used[kind], size - old, memory_order_relaxed);
    size_t now = atomic_fetch_add_explicit(&total, size - old, memory_order_relaxed) + (size - old);
    size_t pk = atomic_load_explicit(&peak, memory_order_relaxed);
    while (now > pk && !atomic_compare_exchange_weak_explicit(
                           &peak, &pk, now, memory_order_relaxed,
                           memory_order_relaxed)) {
    }
  } else {
    atomic_fetch_sub_explicit(&used[kind], old - size, memory_order_relaxed);
    atomic_fetch_sub_explicit(&total, old - size, memory_order_relaxed);
  }
  return q;
}

void sl__free(void *p, size_t size, int kind) {
  if (p == NULL) return;
  count_sub(size, kind);
  hook_free(p);
}

char *sl__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = sl__alloc(n, SL_MEM_META);
  if (d) memcpy(d, s, n);
  return d;
}

void sl_mem_peak_reset(void) {
  atomic_store(&peak, atomic_load(&total));
}

void sl_mem_stats_get(sl_mem_stats *out) {
  out->out = atomic_load(&used[SL_MEM_OUT]);
  out->in = atomic_load(&used[SL_MEM_IN]);
  out->bufs = atomic_load(&used[SL_MEM_BUF]);
  out->meta = atomic_load(&used[SL_MEM_META]);
  out->total = atomic_load(&total);
  out->peak = atomic_load(&peak);
  out->nbufs = atomic_load(&nbufs);
}
