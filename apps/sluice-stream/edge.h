/*
 * sluice-stream in a deployment of several boxes (docs/scale-out.md):
 *
 *   edge mode   --edge http://origin:8080 mirrors every stream of another
 *               sluice-stream: its /api/streams is polled, each stream gets
 *               a hub here and one relay upstream, streams come and go with
 *               the origin's
 *   health      /healthz for a load balancer: 200 when ready, 503 with a
 *               short JSON body when draining or (edge) an upstream is down
 *   drain       SIGTERM: stop accepting, tell viewers to reconnect elsewhere
 *               (WebSocket close 1012, HTTP streams ended), exit when empty
 *               or after --drain-timeout
 *   QoS         --dscp / --priority (and per stream --stream-qos) mark the
 *               packets of viewer sockets (SL_OPT_DSCP, SL_OPT_PRIORITY)
 *
 * Everything here runs on a loop thread: edge mode and the drain's
 * decisions on loop 0 (the main thread; edge mode runs one loop), the rest
 * on the loop of the connection concerned. main.c parses the options into
 * ss_ops and calls the start/stop/step functions; server.c calls
 * ss_health_route and ss_qos_apply; stats.c the JSON and Prometheus views.
 */
#ifndef SS_EDGE_H
#define SS_EDGE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sbuf.h"
#include "sluice.h"

struct ss_app;
struct ss_loop;
struct ss_stream;
struct ss_edge;

#define SS_QOS_UNSET (-1)

/* DSCP and SO_PRIORITY of viewer sockets; SS_QOS_UNSET leaves the
 * system's default. */
typedef struct ss_qos {
  int dscp;     /* 0..63 */
  int priority; /* 0..6 */
} ss_qos;

typedef struct ss_stream_qos {
  char name[64];
  ss_qos q;
} ss_stream_qos;

/* Options (main.c fills them) and the state of the drain. */
typedef struct ss_ops {
  char origin[256];          /* --edge: "http://host:port", "" when not an edge */
  uint32_t poll_ms;          /* --edge-poll: how often /api/streams is read (2000) */
  uint32_t drain_timeout_ms; /* --drain-timeout (30 s); 0: exit at once */
  ss_qos qos;                /* --dscp, --priority: every viewer */
  ss_stream_qos sq[16];      /* --stream-qos NAME=DSCP[:PRIO] */
  int nsq;
  /* runtime */
  struct ss_edge *edge;
  atomic_int draining;       /* SIGTERM seen: the listeners are closed
                                (set by loop 0, read by every loop) */
  uint64_t drain_start_ms, drain_told_ms, drain_all_told_ms;
  uint64_t drained;          /* viewers told to go */
} ss_ops;

/* The --help section of these options. */
void ss_ops_usage(FILE *f);

/* Fill the defaults (everything unset, poll 2 s, drain 30 s). */
void ss_ops_defaults(ss_ops *o);

/* Options: parse `v` for --dscp (AF11..AF43, EF, CS0..CS7, VA, LE or
 * 0..63), --priority (0..6), --stream-qos (NAME=DSCP[:PRIO]), --edge
 * (http[s]://HOST:PORT[/]), --edge-poll (ms), --drain-timeout (s). 0, or -1
 * after printing what to fix. */
int ss_ops_dscp(const char *v, int *out);
int ss_ops_stream_qos(ss_ops *o, const char *v);
int ss_ops_edge(ss_ops *o, const char *v);

/* Edge mode: start polling the origin (the first poll is immediate). The
 * streams appear in a->streams as the origin lists them; a->streams[0] is
 * the origin's default stream when it has one. 0, or -1 with err filled. */
int ss_edge_start(struct ss_app *a, char *err, size_t errlen);
/* Stop polling, stop every relay and free every hub made here (also
 * those of removed streams still closing). NULL-safe on a->ops.edge. */
void ss_edge_stop(struct ss_app *a);

/* The shutdown step, called on loop 0 after every sl_mgr_poll with the
 * signal seen (0: none). SIGTERM starts the drain (once): every loop's
 * listener closes and each loop tells its own viewers to go, in batches;
 * SIGINT, or SIGTERM again, ends at once. Returns 1 when the loops should
 * end. */
int ss_drain_step(struct ss_app *a, int sig);

/* /healthz: answers it and returns 1, or returns 0 for any other path.
 * No authentication: balancers probe it. */
int ss_health_route(struct ss_loop *lp, sl_conn *c, const char *path);

/* Mark viewer connection `c` of stream `st` (just attached) with the
 * stream's QoS, else the global one (st NULL: a /mux connection, which
 * carries several streams: the global one). Failures are logged once. */
void ss_qos_apply(struct ss_loop *lp, struct ss_stream *st, sl_conn *c);
/* The DSCP and priority in force on viewer `id`'s socket of loop lp (read
 * back with getsockopt; -1 when unknown). On lp's thread. */
void ss_qos_read(struct ss_loop *lp, uint64_t id, int *dscp, int *priority);

/* Views: ",\"edge\":{...},\"draining\":B" at the top of /api/stats;
 * ",\"upstream\":{...}" inside a stream's object (nothing when the stream
 * is not an edge's); Prometheus lines for every stream. */
void ss_ops_json(struct ss_app *a, ss_sbuf *b);
void ss_edge_stream_json(struct ss_app *a, struct ss_stream *st, ss_sbuf *b);
void ss_ops_prom(struct ss_app *a, ss_sbuf *b);

#endif
