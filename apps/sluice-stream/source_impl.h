/*
 * What the kinds of source (src_pattern.c, src_dir.c, src_stdin.c,
 * src_relay.c) share with the dispatcher and common code in source.c.
 *
 * Threads: a source is created and freed on the loop thread. A threaded
 * kind's producer reads `o`, `mgr`, `hub` and its own `impl`, and writes
 * only the atomic counters and flags, so ss_source_stats_get may read them
 * from the loop thread at any time. Loop kinds (relays) touch everything on
 * the loop thread only.
 */
#ifndef SS_SOURCE_IMPL_H
#define SS_SOURCE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "source.h"

/* One kind of source. `open` parses `arg` (the spec, or what follows its
 * prefix), allocates `impl`, fills `desc`, and for loop kinds starts the
 * work; on failure it frees what it allocated and writes `err`. `run` is
 * the producer thread's body (NULL for loop kinds). `wake` (optional)
 * unblocks `run` after `stop` is set. `close` frees `impl` after the thread
 * has been joined; on the loop thread. */
struct ss_kind {
  const char *name;
  int (*open)(ss_source *s, const char *arg, char *err, size_t errlen);
  void *(*run)(void *s);
  void (*wake)(ss_source *s);
  void (*close)(ss_source *s);
};

extern const struct ss_kind ss__kind_pattern, ss__kind_dir, ss__kind_stdin,
    ss__kind_relay;

struct ss_source {
  const struct ss_kind *kind;
  sl_mgr *mgr;
  sl_hub *hub;
  ss_source_opts o;        /* defaults applied; user/pass point to copies */
  char desc[320];
  void *impl;
  /* Threaded kinds. */
  pthread_t thread;
  int threaded;
  sl_timer *gate;          /* one-shot: fires once the loop runs */
  atomic_int live;         /* the gate fired: publishing is safe */
  atomic_int stop;
  /* Counters (see ss_source_stats). */
  atomic_ullong frames, bytes, errors, reconnects, skipped, garbage;
  atomic_int connected, ended;
  /* Relays of another sluice-stream: the upstream's sequence number and
   * publish time (Unix ms) of the last frame, and our wall clock when it
   * arrived; 0 when the upstream does not say (see ss_source_stats). */
  atomic_ullong up_seq, up_unix_ms, up_arrival_ms, up_gaps;
};

/* Flags of ss__publish. */
enum {
  SS_PUB_WAIT = 1,  /* producer thread: wait while the hub is not ready */
  SS_PUB_RETRY = 2  /* retry on SL_EFULL instead of skipping the frame */
};

/* Copy `len` bytes (borrowed) into a new sl_buf and publish it as a
 * keyframe. Returns 0 (counted in frames/bytes), SL_EFULL (skipped and
 * counted), SL_ECANCELED (stopping), SL_ENOMEM (counted as an error). */
int ss__publish(ss_source *s, const void *data, size_t len, int flags);
/* The same for a buffer the caller keeps its own reference to. */
int ss__publish_buf(ss_source *s, sl_buf *b, int flags);

/* sl_hub_ready of the hub, or sl_hub_group_ready of the group (every loop
 * ready, with room for a frame). Any thread. */
int ss__ready(ss_source *s);

/* Producer thread: wait until the loop has run once and the hub is ready.
 * 0, or -1 when the source is stopping. */
int ss__wait_ready(ss_source *s);

/* Producer thread: sleep until `deadline_ns` on CLOCK_MONOTONIC, waking
 * every 20 ms to notice a stop. 0, or -1 when stopping. */
int ss__sleep_until(ss_source *s, uint64_t deadline_ns);

/* Producer pacing: slot k is due at start + k * period (ns, monotonic).
 * Given the slot `k` that is due next, returns it, or, when it is more than
 * one period overdue, the first slot still ahead; the slots passed over are
 * counted in `skipped`. */
unsigned long long ss__next_slot(ss_source *s, uint64_t start, double period,
                                 unsigned long long k);

/* CLOCK_MONOTONIC in ns, CLOCK_REALTIME in ms. */
uint64_t ss__mono_ns(void);
uint64_t ss__unix_ms(void);

/* 1 when the source is stopping. */
int ss__stopping(ss_source *s);

/* snprintf into err (when errlen > 0); returns -1 for `return ss__fail()`. */
int ss__fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 1 for the error counts worth logging: 1, 2, 4, 8, ... (no log floods). */
int ss__log_due(unsigned long long n);

#endif
