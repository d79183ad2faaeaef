/* sluice-stream: state shared by the command line (main.c), the HTTP
 * routes (server.c) and the statistics views (stats.c). */
#ifndef SS_APP_H
#define SS_APP_H

#include <stdint.h>

#include "edge.h"
#include "sbuf.h"
#include "sluice.h"
#include "source.h"

#define SS_MAX_STREAMS 48
#define SS_MAX_ORIGINS 16
#define SS_RECENT 32

struct ss_leave {
  uint64_t id, at_ms;
  char peer[64];
  int transport, reason, evict;
};

typedef struct ss_stream {
  char name[64];
  char base[96];          /* "/" or "/streams/NAME/" */
  char spec[512];         /* the source as given */
  sl_hub *hub;
  ss_source *src;
  struct ss_leave recent[SS_RECENT];
  unsigned nrecent;
  struct ss_app *app;
} ss_stream;

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
  /* runtime */
  sl_mgr *mgr;
  sl_conn *listener;
  sl_tls_ctx *tls;         /* server context (reloaded on SIGHUP), or NULL */
  ss_stream streams[SS_MAX_STREAMS];
  int nstreams;
  sl_conn *sse[256];       /* /api/events subscribers */
  int nsse;
  sl_timer *sse_timer;
  uint64_t started_ms;
} ss_app;

/* server.c */
int ss_server_start(ss_app *a, char *err, size_t errlen);
/* stats.c */
void ss_stats_json(ss_app *a, ss_sbuf *b);
void ss_stats_prometheus(ss_app *a, ss_sbuf *b);
void ss_streams_json(ss_app *a, ss_sbuf *b);
size_t ss_rss_bytes(void);
const char *ss_transport_name(int t);
const char *ss_policy_name(int p);
void ss_on_hub_event(sl_hub *h, const sl_hub_event *e, void *arg);

#endif
