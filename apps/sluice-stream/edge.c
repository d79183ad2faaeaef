/*
 * Edge mode, health, drain and QoS marking of sluice-stream (edge.h).
 *
 * Edge: every poll_ms one GET of the origin's /api/streams with the
 * library's HTTP client. A poll that fails (origin down, restarting,
 * unreadable answer) changes nothing: the streams, their hubs and their
 * viewers stay, and each relay keeps retrying on its own (250 ms doubling
 * to 10 s, src_relay.c). Only a poll that succeeds adds and removes
 * streams, so an origin restart never looks like "every stream removed".
 *
 * The upstream subscription (one per stream): MJPEG is read from
 * stream.mjpg?policy=queue:32, H.264 from ws?policy=keyframe (whose message
 * header carries the origin's sequence and publish time, hence the lag).
 * Neither is lossless on purpose: policy=lossless would make the origin's
 * producer wait for its slowest lossless viewer, so one slow edge would
 * freeze the camera for every viewer of the origin and of the other
 * edges. What these policies give instead: MJPEG frames are each whole
 * pictures, so a skipped one is a skipped picture, never a broken one, and
 * a queue of 32 absorbs bursts on a healthy link (the edge reads as fast
 * as the network allows); H.264 hubs skip only whole frames up to the next
 * IDR (keyframe is their only mode), so the stream the edge re-publishes
 * always decodes; gaps are counted (up_gaps) from the sequence numbers.
 *
 * Removal: a stream gone from the origin's list is taken out of a->streams
 * at once (no new viewer can find it), its relay stops, its WebSocket
 * viewers get close 1001 "stream removed on the origin" and its HTTP
 * viewers the end of their response; the hub is freed once they are gone
 * or GRAVE_MS later (sl_hub_free resets the rest).
 *
 * Drain: the listener closes (a balancer's next check fails, and new
 * connections go elsewhere), then the viewers are told to go in batches
 * every DRAIN_TICK_MS, spread over at most DRAIN_SPREAD_MS so the other
 * edges do not all get a burst of joins (each a GOP) in the same
 * millisecond; a batch is at least DRAIN_BATCH_MIN viewers, so a small
 * server drains in a tick. WebSocket: close 1012 "service restart" (RFC
 * 6455 7.4.1 via the IANA registry: the client should reconnect). HTTP
 * streams: the response ends after what is queued (FLUSH); a player or an
 * <img> reconnecting goes through the balancer to another edge. A viewer
 * that is stalled gets nothing more anyway and is reset at once. Once every
 * viewer has been told, those still there get DRAIN_GRACE_MS to take the
 * end of their stream (a WebSocket peer to answer the close), then the
 * process exits and the rest are closed: waiting longer would hold the
 * edge's shutdown hostage to a client that does not read. The whole drain
 * is bounded by --drain-timeout.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "app.h"
#include "edge.h"

#define LIST_MAX (1u << 20)      /* /api/streams answer we accept */
#define GRAVE_MS 2000u           /* a removed stream's viewers get this long */
#define DRAIN_TICK_MS 100u
#define DRAIN_SPREAD_MS 5000u
#define DRAIN_BATCH_MIN 50u
#define DRAIN_GRACE_MS 1000u     /* for a told viewer to take the end of its stream */
#define MJPEG_UPSTREAM "stream.mjpg?policy=queue:32"
#define H264_UPSTREAM "ws?policy=keyframe"

struct grave {
  sl_hub *hub;
  uint64_t since;
};

struct ss_edge {
  ss_app *a;
  sl_timer *poll, *reap;
  sl_http_req *req;
  int status;               /* of the poll in flight */
  char *body;
  size_t len;
  int overflow;
  unsigned long long polls, poll_errors, added, removed;
  int synced;               /* one poll has succeeded */
  int reachable;            /* the last poll succeeded */
  char why[200];            /* why the last poll failed */
  struct grave graves[SS_MAX_STREAMS];
  int ngraves;
};

static uint64_t unix_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* 1 for the 1st, 2nd, 4th, 8th... failure in a row: no log floods. */
static int log_due(unsigned long long n) { return n && (n & (n - 1)) == 0; }

void ss_ops_defaults(ss_ops *o) {
  memset(o, 0, sizeof(*o));
  o->poll_ms = 2000;
  o->drain_timeout_ms = 30000;
  o->qos.dscp = o->qos.priority = SS_QOS_UNSET;
}

/* ---- options --------------------------------------------------------- */

void ss_ops_usage(FILE *f) {
  fputs(
"Scale-out (docs/scale-out.md):\n"
"      --edge URL           mirror every stream of the sluice-stream at URL\n"
"                           (http://origin:8080): its /api/streams is polled\n"
"                           and each stream relayed once, MJPEG with\n"
"                           policy=queue:32, H.264 over ws with policy=keyframe;\n"
"                           streams follow the origin's; viewers stay through\n"
"                           an upstream outage (no --source/--stream with it)\n"
"      --edge-poll MS       how often the origin's stream list is read (2000)\n"
"      --drain-timeout S    on SIGTERM: close the listener, tell viewers to\n"
"                           reconnect elsewhere (WebSocket close 1012, HTTP\n"
"                           streams ended), exit when empty or after S seconds\n"
"                           (30; 0: exit at once); SIGINT or a second\n"
"                           SIGTERM: exit at once. /healthz answers 200 when\n"
"                           ready (not draining; edge: every upstream\n"
"                           connected), else 503 with a JSON reason\n"
"      --dscp CODE          mark viewer packets: AF11..AF43, EF, CS0..CS7, VA,\n"
"                           LE or 0..63 (IP_TOS / IPV6_TCLASS = CODE << 2)\n"
"      --priority N         SO_PRIORITY 0..6 of viewer sockets\n"
"      --stream-qos NAME=CODE[:N]  the same for one stream (repeatable)\n"
"\n",
      f);
}

int ss_ops_dscp(const char *v, int *out) {
  /* RFC 2474 class selectors, RFC 2597 assured forwarding, RFC 3246
   * expedited forwarding, RFC 5865 voice admit, RFC 8622 lower effort. */
  static const struct {
    const char *name;
    int dscp;
  } names[] = {{"EF", 46}, {"VA", 44}, {"LE", 1}, {"DF", 0}, {"BE", 0}};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (strcasecmp(v, names[i].name) == 0) return *out = names[i].dscp, 0;
  if ((v[0] == 'C' || v[0] == 'c') && (v[1] == 'S' || v[1] == 's') && v[2] >= '0' &&
      v[2] <= '7' && !v[3])
    return *out = (v[2] - '0') << 3, 0;
  if ((v[0] == 'A' || v[0] == 'a') && (v[1] == 'F' || v[1] == 'f') && v[2] >= '1' &&
      v[2] <= '4' && v[3] >= '1' && v[3] <= '3' && !v[4])
    return *out = ((v[2] - '0') << 3) | ((v[3] - '0') << 1), 0;
  char *e;
  long n = strtol(v, &e, 10);
  if (e == v || *e || n < 0 || n > 63) return -1;
  *out = (int)n;
  return 0;
}

int ss_ops_stream_qos(ss_ops *o, const char *v) {
  const char *eq = strchr(v, '=');
  if (eq == NULL || eq == v || (size_t)(eq - v) >= sizeof(o->sq[0].name) ||
      o->nsq == (int)(sizeof(o->sq) / sizeof(o->sq[0])))
    return -1;
  ss_stream_qos *q = &o->sq[o->nsq];
  snprintf(q->name, sizeof(q->name), "%.*s", (int)(eq - v), v);
  char d[32];
  const char *colon = strchr(eq + 1, ':');
  size_t dl = colon ? (size_t)(colon - eq - 1) : strlen(eq + 1);
  if (dl >= sizeof(d)) return -1;
  memcpy(d, eq + 1, dl);
  d[dl] = '\0';
  q->q.dscp = q->q.priority = SS_QOS_UNSET;
  if (dl && ss_ops_dscp(d, &q->q.dscp)) return -1;
  if (colon) {
    char *e;
    long p = strtol(colon + 1, &e, 10);
    if (e == colon + 1 || *e || p < 0 || p > 6) return -1;
    q->q.priority = (int)p;
  }
  o->nsq++;
  return 0;
}

int ss_ops_edge(ss_ops *o, const char *v) {
  size_t n = strlen(v);
  if ((strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) ||
      n + 1 >= sizeof(o->origin))
    return -1;
  while (n > 8 && v[n - 1] == '/') n--; /* paths are appended with their '/' */
  if (memchr(v + 8, '/', n - 8) || memchr(v, '?', n)) return -1;
  snprintf(o->origin, sizeof(o->origin), "%.*s", (int)n, v);
  return 0;
}

/* ---- closing viewers -------------------------------------------------- */

/* Tell at most `max` of hub h's viewers that are still open to go: WebSocket
 * viewers get a close frame (`code`, `why`), HTTP ones the end of their
 * response, stalled ones a reset. A /mux connection carries other streams
 * too: it is closed only when `mux_too` (the drain); when one stream goes,
 * sl_hub_free ends just that subscription ("unsubscribed"). Returns how
 * many were told. */
static size_t tell_viewers(sl_mgr *mgr, sl_hub *h, size_t max, int code, const char *why,
                           int mux_too) {
  size_t n = sl_hub_subs(h, NULL, 0), told = 0;
  if (n == 0 || max == 0) return 0;
  sl_sub_stats *v = malloc(n * sizeof(*v));
  if (v == NULL) return 0;
  n = sl_hub_subs(h, v, n);
  for (size_t i = 0; i < n && told < max; i++) {
    sl_conn *c = sl_conn_find(mgr, v[i].id);
    if (c == NULL || sl_conn_is_closing(c) || (v[i].muxed && !mux_too)) continue;
    int ws = v[i].transport == SL_TRANSPORT_WS || v[i].transport == SL_TRANSPORT_WS_FMP4;
    if (ws && !sl_ws_is_open(c)) continue; /* told already: closing handshake */
    if (v[i].stalled) sl_conn_close_with(c, SL_CLOSE_RESET, SL_CLOSE_LOCAL);
    else if (ws) sl_ws_close(c, code, why);
    else sl_conn_close_with(c, SL_CLOSE_FLUSH, SL_CLOSE_LOCAL);
    told++;
  }
  free(v);
  return told;
}

/* Every loop's viewers: loop 0's counted here, the others' as their hub
 * events counted them (exact once their last events ran). */
static size_t viewers_total(ss_app *a) {
  size_t n = 0;
  for (int i = 0; i < a->nstreams; i++) n += sl_hub_subs(a->streams[i].hub, NULL, 0);
  for (int l = 1; l < a->nloops; l++) n += atomic_load(&a->loops[l].viewers);
  return n;
}

/* Tell up to `batch` of loop lp's viewers to go; on lp's thread. Returns
 * how many were told. */
static size_t tell_loop(ss_loop *lp, size_t batch) {
  size_t told = 0;
  for (int i = 0; i < lp->app->nstreams && told < batch; i++)
    told += tell_viewers(lp->mgr, ss_loop_hub(lp, i), batch - told, 1012, "service restart", 1);
  return told;
}

/* Loops > 0, asked by loop 0: close the listener (once), tell a batch. */
static void drain_loop(sl_mgr *m, void *arg) {
  ss_loop *lp = arg;
  (void)m;
  if (lp->listener) {
    sl_conn_close(lp->listener, SL_CLOSE_NOW);
    lp->listener = NULL;
  }
  size_t batch = atomic_load(&lp->drain_batch);
  if (batch == 0) return;
  size_t told = tell_loop(lp, batch);
  atomic_fetch_add(&lp->drained, told);
  atomic_store(&lp->drain_idle, told == 0);
}

static uint64_t drained_total(ss_app *a) {
  uint64_t n = a->ops.drained;
  for (int l = 1; l < a->nloops; l++) n += atomic_load(&a->loops[l].drained);
  return n;
}

/* ---- edge: streams ----------------------------------------------------- */

static ss_stream *find_stream(ss_app *a, const char *name) {
  for (int i = 0; i < a->nstreams; i++)
    if (strcmp(a->streams[i].name, name) == 0) return &a->streams[i];
  return NULL;
}

static int stream_kind(ss_stream *st) {
  sl_hub_stats hs;
  sl_hub_stats_get(st->hub, &hs);
  return hs.kind;
}

/* The relay URL of an origin stream under `base` ("/" or "/streams/N/"). */
static void upstream_url(ss_app *a, const char *base, int h264, char *out, size_t cap) {
  const char *o = a->ops.origin;
  if (h264) /* http:// -> ws://, https:// -> wss:// */
    snprintf(out, cap, "ws%s%s%s", o + 4, base, H264_UPSTREAM);
  else
    snprintf(out, cap, "%s%s%s", o, base, MJPEG_UPSTREAM);
}

static int add_stream(struct ss_edge *e, const char *name, const char *base, int h264) {
  ss_app *a = e->a;
  char err[256];
  int rc = 0;
  if (a->nstreams == SS_MAX_STREAMS) {
    sl_log(SL_LOG_WARN, "edge: origin stream %s not mirrored: at most %d streams", name,
           SS_MAX_STREAMS);
    return -1;
  }
  /* The origin's default stream (base "/") is ours at "/" too, which
   * server.c serves from a->streams[0]. */
  int root = strcmp(base, "/") == 0;
  int at = root ? 0 : a->nstreams;
  if (root) memmove(&a->streams[1], &a->streams[0], (size_t)a->nstreams * sizeof(a->streams[0]));
  ss_stream *st = &a->streams[at];
  memset(st, 0, sizeof(*st));
  a->nstreams++;
  st->app = a;
  snprintf(st->name, sizeof(st->name), "%s", name);
  if (root) snprintf(st->base, sizeof(st->base), "/");
  else snprintf(st->base, sizeof(st->base), "/streams/%.63s/", name);
  upstream_url(a, base, h264, st->spec, sizeof(st->spec));
  st->kind = h264 ? SL_KIND_H264 : SL_KIND_MJPEG;
  sl_hub_opts ho = {.kind = h264 ? SL_KIND_H264 : SL_KIND_MJPEG, .gop_max = a->gop_max,
                    .max_subs = a->max_viewers, .sub = a->sub, .on_event = ss_on_hub_event,
                    .arg = &a->loops[0]};
  ss_source_opts so = a->src;
  so.codec = h264 ? SS_CODEC_H264 : SS_CODEC_MJPEG;
  st->hub = sl_hub_new(a->mgr, st->name, &ho, &rc);
  if (st->hub) st->src = ss_source_start(st->spec, a->mgr, st->hub, &so, err, sizeof(err));
  if (st->hub == NULL || st->src == NULL) {
    sl_log(SL_LOG_ERROR, "edge: stream %s: %s", name, st->hub ? err : sl_strerror(rc));
    if (st->hub) sl_hub_free(st->hub);
    memmove(st, st + 1, (size_t)(a->nstreams - at - 1) * sizeof(*st));
    a->nstreams--;
    return -1;
  }
  e->added++;
  sl_log(SL_LOG_INFO, "edge: stream %s (%s) at %s <- %s", name, h264 ? "H.264" : "MJPEG",
         st->base, st->spec);
  return 0;
}

static void remove_stream(struct ss_edge *e, ss_stream *st, const char *why) {
  ss_app *a = e->a;
  size_t n = sl_hub_subs(st->hub, NULL, 0);
  sl_log(SL_LOG_WARN, "edge: stream %s %s: closing its %zu viewer(s)", st->name, why, n);
  ss_source_stop(st->src);
  st->src = NULL;
  tell_viewers(a->mgr, st->hub, n, 1001, "stream removed on the origin", 0);
  if (e->ngraves < SS_MAX_STREAMS) {
    e->graves[e->ngraves].hub = st->hub;
    e->graves[e->ngraves++].since = sl_mgr_now(a->mgr);
  } else {
    sl_hub_free(st->hub);
  }
  int at = (int)(st - a->streams);
  memmove(st, st + 1, (size_t)(a->nstreams - at - 1) * sizeof(*st));
  a->nstreams--;
  e->removed++;
}

/* Free the hubs of removed streams once their viewers are gone. */
static void reap_graves(sl_mgr *m, void *arg) {
  struct ss_edge *e = arg;
  uint64_t now = sl_mgr_now(m);
  for (int i = 0; i < e->ngraves;) {
    struct grave *g = &e->graves[i];
    if (sl_hub_subs(g->hub, NULL, 0) == 0 || now - g->since >= GRAVE_MS) {
      sl_hub_free(g->hub);
      *g = e->graves[--e->ngraves];
    } else {
      i++;
    }
  }
}

/* Bring a->streams in line with the origin's list (a whole, valid answer). */
static void sync_streams(struct ss_edge *e, const char *json, size_t len) {
  ss_app *a = e->a;
  char seen[SS_MAX_STREAMS * 4][64];
  int nseen = 0;
  for (int i = 0; nseen < (int)(sizeof(seen) / sizeof(seen[0])); i++) {
    char path[48], name[64], base[96], kind[16];
    snprintf(path, sizeof(path), "$.streams[%d].name", i);
    int rc = sl_json_get_str(json, len, path, name, sizeof(name));
    if (rc == SL_ENOENT) break;
    snprintf(path, sizeof(path), "$.streams[%d].base", i);
    int rb = sl_json_get_str(json, len, path, base, sizeof(base));
    snprintf(path, sizeof(path), "$.streams[%d].kind", i);
    int rk = sl_json_get_str(json, len, path, kind, sizeof(kind));
    if (rc < 1 || rb < 1 || base[0] != '/' || base[rb - 1] != '/' || strpbrk(name, "/?#% ")) {
      sl_log(SL_LOG_WARN, "edge: origin stream %d has no usable name and base; skipped", i);
      continue;
    }
    int h264 = rk > 0 && strcmp(kind, "h264") == 0;
    snprintf(seen[nseen++], sizeof(seen[0]), "%s", name);
    ss_stream *st = find_stream(a, name);
    if (st && (stream_kind(st) == SL_KIND_H264) != h264) {
      remove_stream(e, st, "changed codec on the origin");
      st = NULL;
    }
    if (st == NULL) add_stream(e, name, base, h264);
  }
  for (int i = a->nstreams - 1; i >= 0; i--) {
    int keep = 0;
    for (int k = 0; k < nseen && !keep; k++) keep = strcmp(seen[k], a->streams[i].name) == 0;
    if (!keep) remove_stream(e, &a->streams[i], "was removed on the origin");
  }
}

/* ---- edge: polling ----------------------------------------------------- */

static void poll_failed(struct ss_edge *e, const char *why) {
  e->poll_errors++;
  if (e->reachable || log_due(e->poll_errors))
    sl_log(SL_LOG_WARN, "edge: origin %s: %s; keeping the %d stream(s) as they are",
           e->a->ops.origin, why, e->a->nstreams);
  e->reachable = 0;
  snprintf(e->why, sizeof(e->why), "%s", why);
}

static void on_list(sl_conn *c, int ev, void *ev_data) {
  struct ss_edge *e = sl_conn_data(c);
  if (e == NULL) return;
  switch (ev) {
    case SL_EV_HTTP_MSG:
      e->status = ((const sl_http_msg *)ev_data)->status;
      return;
    case SL_EV_HTTP_CHUNK: {
      const sl_str *d = ev_data;
      if (d->len == 0) {
        if (e->status != 200) {
          char why[64];
          snprintf(why, sizeof(why), "/api/streams answered %d", e->status);
          poll_failed(e, why);
        } else if (e->overflow || sl_json_get(e->body, e->len, "$.streams", NULL, NULL) !=
                                      SL_JSON_ARRAY) {
          poll_failed(e, "/api/streams is not a stream list");
        } else {
          if (!e->reachable && e->synced)
            sl_log(SL_LOG_INFO, "edge: origin %s reachable again", e->a->ops.origin);
          e->reachable = e->synced = 1;
          e->why[0] = '\0';
          sync_streams(e, e->body, e->len);
        }
        e->status = -1; /* handled */
        return;
      }
      if (e->overflow || e->len + d->len > LIST_MAX) {
        e->overflow = 1;
        return;
      }
      char *p = realloc(e->body, e->len + d->len + 1);
      if (p == NULL) {
        e->overflow = 1;
        return;
      }
      e->body = p;
      memcpy(e->body + e->len, d->ptr, d->len);
      e->len += d->len;
      e->body[e->len] = '\0';
      return;
    }
    case SL_EV_ERROR:
      poll_failed(e, (const char *)ev_data);
      e->status = -1;
      return;
    case SL_EV_CLOSE:
      if (e->status != -1) poll_failed(e, "the connection closed before the answer");
      e->req = NULL;
      return;
    default:
      return;
  }
}

static void poll_origin(sl_mgr *m, void *arg) {
  struct ss_edge *e = arg;
  if (e->req) return; /* the previous poll is still running */
  char url[sizeof(e->a->ops.origin) + 16];
  snprintf(url, sizeof(url), "%s/api/streams", e->a->ops.origin);
  free(e->body);
  e->body = NULL;
  e->len = 0;
  e->overflow = 0;
  e->status = 0;
  e->polls++;
  ss_source_opts *so = &e->a->src;
  uint32_t t = e->a->ops.poll_ms < 5000 ? 5000 : e->a->ops.poll_ms;
  sl_http_client_opts ho = {.user = so->user, .pass = so->pass, .connect_timeout_ms = t,
                            .header_timeout_ms = t, .body_timeout_ms = t,
                            .headers = "Accept: application/json\r\n"};
  int err = 0;
  e->req = sl_http_request(m, url, &ho, on_list, e, &err);
  if (e->req == NULL) poll_failed(e, sl_strerror(err));
}

int ss_edge_start(ss_app *a, char *err, size_t errlen) {
  struct ss_edge *e = calloc(1, sizeof(*e));
  int rc = 0;
  if (e == NULL) return snprintf(err, errlen, "edge: out of memory"), -1;
  e->a = a;
  e->reachable = 1; /* until a poll says otherwise: log the first failure */
  e->poll = sl_timer_add(a->mgr, a->ops.poll_ms, SL_TIMER_REPEAT, poll_origin, e, &rc);
  if (e->poll) e->reap = sl_timer_add(a->mgr, 250, SL_TIMER_REPEAT, reap_graves, e, &rc);
  if (e->reap == NULL) {
    if (e->poll) sl_timer_free(a->mgr, e->poll);
    free(e);
    snprintf(err, errlen, "edge: cannot arm a timer: %s", sl_strerror(rc));
    return -1;
  }
  a->ops.edge = e;
  poll_origin(a->mgr, e);
  return 0;
}

void ss_edge_stop(ss_app *a) {
  struct ss_edge *e = a->ops.edge;
  if (e == NULL) return;
  if (e->req) {
    sl_conn *c = sl_http_req_conn(e->req);
    sl_conn_set_handler(c, NULL);
    sl_conn_set_data(c, NULL);
    sl_http_req_cancel(e->req);
  }
  sl_timer_free(a->mgr, e->poll);
  sl_timer_free(a->mgr, e->reap);
  for (int i = 0; i < e->ngraves; i++) sl_hub_free(e->graves[i].hub);
  free(e->body);
  free(e);
  a->ops.edge = NULL;
}

/* ---- drain ------------------------------------------------------------- */

int ss_drain_step(ss_app *a, int sig) {
  ss_ops *o = &a->ops;
  uint64_t now = sl_mgr_now(a->mgr);
  if (sig == SIGINT || (sig && o->draining)) {
    if (o->draining) sl_log(SL_LOG_INFO, "signal %d while draining: stopping now", sig);
    return 1;
  }
  if (sig && !o->draining) {
    if (o->drain_timeout_ms == 0) return 1;
    atomic_store(&o->draining, 1);
    o->drain_start_ms = o->drain_told_ms = now;
    if (a->loops[0].listener) {
      sl_conn_close(a->loops[0].listener, SL_CLOSE_NOW);
      a->loops[0].listener = NULL;
    }
    for (int l = 1; l < a->nloops; l++) {
      atomic_store(&a->loops[l].drain_batch, 0);
      if (sl_mgr_call(a->loops[l].mgr, drain_loop, &a->loops[l]) != 0)
        sl_log(SL_LOG_WARN, "drain: loop %d is busy; its listener closes at the next tick", l);
    }
    sl_log(SL_LOG_INFO,
           "signal %d: draining: no new viewers; telling %zu viewer(s) to reconnect "
           "elsewhere; exit when empty or in %u ms",
           sig, viewers_total(a), o->drain_timeout_ms);
  }
  if (!o->draining) return 0;
  size_t left = viewers_total(a);
  if (left == 0) {
    sl_log(SL_LOG_INFO, "drained: %llu viewer(s) told to go in %llu ms",
           (unsigned long long)drained_total(a), (unsigned long long)(now - o->drain_start_ms));
    return 1;
  }
  if (now - o->drain_start_ms >= o->drain_timeout_ms) {
    sl_log(SL_LOG_WARN, "drain timeout: %zu viewer(s) still connected; stopping", left);
    return 1;
  }
  if (o->drain_all_told_ms && now - o->drain_all_told_ms >= DRAIN_GRACE_MS) {
    sl_log(SL_LOG_INFO, "drained: %llu viewer(s) told to go; %zu did not take the end of "
           "their stream in %u ms and are closed", (unsigned long long)drained_total(a), left,
           DRAIN_GRACE_MS);
    return 1;
  }
  if (!o->drain_all_told_ms && (now - o->drain_told_ms >= DRAIN_TICK_MS || o->drained == 0)) {
    uint32_t spread = o->drain_timeout_ms / 2 < DRAIN_SPREAD_MS ? o->drain_timeout_ms / 2
                                                                : DRAIN_SPREAD_MS;
    uint64_t elapsed = now - o->drain_start_ms;
    uint64_t ticks = elapsed < spread ? (spread - elapsed) / DRAIN_TICK_MS + 1 : 1;
    size_t batch = (size_t)((left + ticks - 1) / ticks);
    if (batch < DRAIN_BATCH_MIN) batch = DRAIN_BATCH_MIN;
    /* Each loop tells a batch of its own; every loop's last batch having
     * found nobody (the others' answer comes a tick late) ends it. */
    size_t k = tell_loop(&a->loops[0], batch);
    o->drained += k;
    int idle = k == 0;
    for (int l = 1; l < a->nloops; l++) {
      ss_loop *lp = &a->loops[l];
      idle = idle && atomic_load(&lp->drain_idle);
      atomic_store(&lp->drain_batch, batch);
      sl_mgr_call(lp->mgr, drain_loop, lp); /* a full queue: next tick */
    }
    if (idle) o->drain_all_told_ms = now; /* nobody left to tell */
    o->drain_told_ms = now;
  }
  return 0;
}

/* ---- health ------------------------------------------------------------ */

int ss_health_route(ss_loop *lp, sl_conn *c, const char *path) {
  ss_app *a = lp->app;
  if (strcmp(path, "/healthz") != 0) return 0;
  struct ss_edge *e = a->ops.edge;
  int up = 0, ready;
  for (int i = 0; i < a->nstreams; i++) {
    ss_source_stats ss;
    ss_source_stats_get(a->streams[i].src, &ss);
    up += ss.connected != 0;
  }
  const char *why = "";
  if (atomic_load(&a->ops.draining)) why = "draining";
  else if (e && !e->synced) why = "no stream list from the origin yet";
  else if (e && up < a->nstreams) why = "upstream not connected";
  ready = !why[0];
  char body[320];
  int n = sl_json_printf(body, sizeof(body), "{%Q:%Q,%Q:%Q,%Q:%d,%Q:%d,%Q:%B}\n", "status",
                         ready ? "ok" : "unavailable", "reason", why, "streams", a->nstreams,
                         "upstreams_connected", e ? up : a->nstreams, "edge", e != NULL);
  sl_http_reply(c, ready ? 200 : 503,
                "Content-Type: application/json\r\nCache-Control: no-store\r\n", body,
                n > 0 ? (size_t)n : 0);
  return 1;
}

/* ---- QoS ----------------------------------------------------------------- */

void ss_qos_apply(ss_loop *lp, ss_stream *st, sl_conn *c) {
  ss_app *a = lp->app;
  ss_qos q = a->ops.qos;
  for (int i = 0; st && i < a->ops.nsq; i++) {
    if (strcmp(a->ops.sq[i].name, st->name) != 0) continue;
    if (a->ops.sq[i].q.dscp != SS_QOS_UNSET) q.dscp = a->ops.sq[i].q.dscp;
    if (a->ops.sq[i].q.priority != SS_QOS_UNSET) q.priority = a->ops.sq[i].q.priority;
  }
  int rc = 0;
  if (q.dscp != SS_QOS_UNSET) rc = sl_conn_sockopt(c, SL_OPT_DSCP, q.dscp);
  if (rc == 0 && q.priority != SS_QOS_UNSET) rc = sl_conn_sockopt(c, SL_OPT_PRIORITY, q.priority);
  if (rc && atomic_fetch_add(&lp->qos_logged, 1) == 0)
    sl_log(SL_LOG_WARN, "stream %s: cannot mark viewer sockets (dscp %d, priority %d): %s",
           st ? st->name : "(mux)", q.dscp, q.priority, sl_strerror(rc));
}

void ss_qos_read(ss_loop *lp, uint64_t id, int *dscp, int *priority) {
  sl_conn *c = sl_conn_find(lp->mgr, id);
  int fd = c ? sl_conn_fd(c) : -1, v = 0;
  socklen_t l = sizeof(v);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  *dscp = *priority = -1;
  if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) return;
  if (ss.ss_family == AF_INET6 ? getsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &v, &l) == 0
                               : getsockopt(fd, IPPROTO_IP, IP_TOS, &v, &l) == 0)
    *dscp = (v & 0xff) >> 2;
  l = sizeof(v);
#ifdef SO_PRIORITY
  if (getsockopt(fd, SOL_SOCKET, SO_PRIORITY, &v, &l) == 0) *priority = v;
#endif
}

/* ---- views --------------------------------------------------------------- */

void ss_ops_json(ss_app *a, ss_sbuf *b) {
  struct ss_edge *e = a->ops.edge;
  ss_sbuf_printf(b, ",\"draining\":%s", atomic_load(&a->ops.draining) ? "true" : "false");
  if (e == NULL) return;
  ss_sbuf_printf(b, ",\"edge\":{\"origin\":");
  ss_sbuf_json_str(b, a->ops.origin);
  ss_sbuf_printf(b,
                 ",\"reachable\":%s,\"synced\":%s,\"polls\":%llu,\"poll_errors\":%llu,"
                 "\"streams_added\":%llu,\"streams_removed\":%llu,\"last_error\":",
                 e->reachable ? "true" : "false", e->synced ? "true" : "false", e->polls,
                 e->poll_errors, e->added, e->removed);
  ss_sbuf_json_str(b, e->why);
  ss_sbuf_printf(b, "}");
}

/* Lag to the origin in ms from the last frame's headers, -1 when unknown. */
static long long lag_ms(const ss_source_stats *s) {
  if (s->up_unix_ms == 0 || s->up_arrival_ms == 0) return -1;
  return (long long)s->up_arrival_ms - (long long)s->up_unix_ms;
}

void ss_edge_stream_json(ss_app *a, ss_stream *st, ss_sbuf *b) {
  if (a->ops.edge == NULL || st->src == NULL) return;
  ss_source_stats s;
  ss_source_stats_get(st->src, &s);
  ss_sbuf_printf(b, ",\"upstream\":{\"url\":");
  ss_sbuf_json_str(b, st->spec);
  ss_sbuf_printf(b,
                 ",\"state\":\"%s\",\"reconnects\":%llu,\"frames\":%llu,\"errors\":%llu,"
                 "\"origin_seq\":%llu,\"gaps\":%llu,\"lag_ms\":%lld,\"last_frame_age_ms\":%lld}",
                 s.connected ? "connected" : "connecting", s.reconnects, s.frames, s.errors,
                 s.up_seq, s.up_gaps, lag_ms(&s),
                 s.up_arrival_ms ? (long long)(unix_ms() - s.up_arrival_ms) : -1LL);
}

void ss_ops_prom(ss_app *a, ss_sbuf *b) {
  ss_sbuf_printf(b, "# HELP sluice_draining 1 while draining (SIGTERM).\n"
                    "# TYPE sluice_draining gauge\nsluice_draining %d\n",
                 atomic_load(&a->ops.draining));
  struct ss_edge *e = a->ops.edge;
  if (e == NULL) return;
  ss_sbuf_printf(b,
                 "# HELP sluice_edge_origin_reachable 1 when the last poll of the origin's "
                 "stream list succeeded.\n# TYPE sluice_edge_origin_reachable gauge\n"
                 "sluice_edge_origin_reachable %d\n"
                 "# HELP sluice_edge_poll_errors_total Failed polls of the origin's stream list.\n"
                 "# TYPE sluice_edge_poll_errors_total counter\n"
                 "sluice_edge_poll_errors_total %llu\n",
                 e->reachable, e->poll_errors);
  static const char *const names[][3] = {
      {"sluice_upstream_connected", "gauge", "1 while the stream's upstream is connected."},
      {"sluice_upstream_reconnects_total", "counter", "Reconnection attempts upstream."},
      {"sluice_upstream_lag_ms", "gauge",
       "Arrival here minus publish on the origin, last frame (-1: unknown)."},
      {"sluice_upstream_gaps_total", "counter", "Frames the origin skipped for this edge."},
  };
  for (int k = 0; k < 4; k++) {
    ss_sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", names[k][0], names[k][2], names[k][0],
                   names[k][1]);
    for (int i = 0; i < a->nstreams; i++) {
      ss_source_stats s;
      ss_source_stats_get(a->streams[i].src, &s);
      long long v = k == 0   ? s.connected
                    : k == 1 ? (long long)s.reconnects
                    : k == 2 ? lag_ms(&s)
                             : (long long)s.up_gaps;
      ss_sbuf_printf(b, "%s{stream=\"", names[k][0]);
      for (const char *p = a->streams[i].name; *p; p++) {
        if (*p == '"' || *p == '\\') ss_sbuf_printf(b, "\\");
        ss_sbuf_printf(b, "%c", *p);
      }
      ss_sbuf_printf(b, "\"} %lld\n", v);
    }
  }
}
