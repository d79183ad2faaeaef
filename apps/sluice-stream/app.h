/* sluice-stream: state shared by the command line (main.c), the HTTP
 * routes (server.c) and the statistics views (stats.c). */
#ifndef SS_APP_H
#define SS_APP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "edge.h"
#include "sbuf.h"
#include "sluice.h"
#include "source.h"

#define SS_MAX_STREAMS 48
#define SS_MAX_ORIGINS 16
#define SS_RECENT 32
#define SS_MAX_LOOPS 16

struct ss_leave {
  uint64_t id, at_ms;
  char peer[64];
  int transport, reason, evict;
};

typedef struct ss_stream {
  char name[64];
  char base[96];          /* "/" or "/streams/NAME/" */
  char spec[512];         /* the source as given */
  sl_hub *hub;             /* loop 0's hub (the only one with --threads 1) */
  sl_hub_group *group;     /* --threads > 1: every loop's hub of the stream */
  int kind;                /* SL_KIND_* of its hubs */
  ss_source *src;
  /* The last leaves, from every loop's hub events: ss_app.recent_lock
   * guards them (loop threads write, the stats view of any loop reads). */
  struct ss_leave recent[SS_RECENT];
  unsigned nrecent;
  atomic_size_t viewers;   /* across loops, from the hub events */
  struct ss_app *app;
} ss_stream;

/* One loop: a manager on its own thread (loop 0 on the main thread), its
 * listener on the shared address (SO_REUSEPORT when there are several), a
 * hub per stream, and the /api/events clients it accepted. */
typedef struct ss_loop {
  int idx;
  struct ss_app *app;
  sl_mgr *mgr;
  sl_conn *listener;
  sl_hub *hubs[SS_MAX_STREAMS]; /* loops > 0; loop 0 uses streams[i].hub */
  sl_conn *sse[256];
  int nsse;
  sl_timer *sse_timer;
  pthread_t thread;
  atomic_int up;                /* its manager is made: others may call it */
  atomic_int quit;
  atomic_size_t viewers;        /* this loop's viewers, every stream */
  /* Drain (edge.c): loop 0 asks, each other loop tells its own viewers. */
  atomic_size_t drain_batch;
  atomic_int drain_idle;        /* 1: the last batch found nobody to tell */
  atomic_ullong drained;
  atomic_int qos_logged;
} ss_loop;

typedef struct ss_app {
  /* options */
  char listen[256];
  ss_source_opts src;
  sl_sub_opts sub;         /* viewer defaults */
  size_t max_viewers;
  size_t gop_max;         /* H.264 hubs: cached GOP bytes (0: the library default) */
  size_t budget;
  char token[256];
  char basic_user[128], basic_pass[128];
  const char *origins[SS_MAX_ORIGINS + 1];
  int any_origin;
  const char *cors[SS_MAX_ORIGINS + 1]; /* --cors: sub.cors_origins */
  int allow_lossless;
  int log_level;
  char tls_cert[512], tls_key[512]; /* HTTPS when both are set */
  ss_ops ops;              /* edge mode, drain, QoS (edge.h) */
  int threads;             /* --threads: loops (0 until chosen) */
  /* runtime */
  sl_mgr *mgr;             /* loop 0's manager */
  sl_tls_ctx *tls;         /* server context (reloaded on SIGHUP), or NULL;
                              shared by every loop's listener */
  ss_stream streams[SS_MAX_STREAMS];
  int nstreams;
  ss_loop loops[SS_MAX_LOOPS];
  int nloops;
  atomic_int loops_stopped;    /* shutdown: loops > 0 that stopped polling */
  uint64_t started_ms;
  pthread_mutex_t recent_lock; /* every stream's recent[] and nrecent */
  /* Statistics requests waiting for other loops (stats.c). */
  pthread_mutex_t gather_lock;
  struct ss_gather *gathers;
} ss_app;

/* The loop that runs manager `m`, and stream i's hub on loop `lp`. */
ss_loop *ss_loop_of(ss_app *a, sl_mgr *m);
sl_hub *ss_loop_hub(ss_loop *lp, int i);

/* server.c: loop `lp`'s listener (loop 0's on the configured address,
 * the others on the port loop 0 got) and its SSE timer. On lp's thread. */
int ss_server_start(ss_app *a, ss_loop *lp, char *err, size_t errlen);
/* Free what ss_server_start made. On lp's thread. */
void ss_server_stop(ss_loop *lp);
/* stats.c: a snapshot of every loop's counters, then one view of it. */
enum { SS_VIEW_STATS, SS_VIEW_STREAMS, SS_VIEW_METRICS, SS_VIEW_SSE };
/* Answer connection `c` of loop `lp` with `view`, once every loop has
 * filled its part of the snapshot (at once with one loop; else through
 * sl_mgr_call to each, the reply going out on lp's thread). SS_VIEW_SSE:
 * c is NULL and the view goes to lp's /api/events clients. */
void ss_view_request(ss_loop *lp, sl_conn *c, int view);
/* Free the requests still waiting (at shutdown, every loop stopped). */
void ss_view_free_pending(ss_app *a);
size_t ss_rss_bytes(void);
const char *ss_transport_name(int t);
const char *ss_policy_name(int p);
void ss_on_hub_event(sl_hub *h, const sl_hub_event *e, void *arg);

#endif
