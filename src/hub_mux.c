/*
 * Multiplexed connections: many hubs' subscribers on one WebSocket
 * (docs/mux.md). Each subscription is an ordinary hub subscriber (hub_sub.c:
 * its policy queue, fps cap, keyframe rule, limits and counters) whose
 * `mux` is set; what the mux adds is the connection's set-up (limits,
 * socket options, the tap), the control protocol, and the scheduler.
 *
 * The scheduler is round-robin by frames over `v`, in subscription order:
 * a subscription takes its next frame only when the connection's queue is
 * empty, and the first one with a frame pending after the last one served
 * takes it. So a
 * subscription with a fast stream or a full queue waits for its turn like
 * the others, and the socket holds at most one frame in flight in user
 * space whatever the number of subscriptions (the kernel's unsent queue,
 * capped by TCP_NOTSENT_LOWAT, keeps the link busy meanwhile).
 *
 * TCP_NOTSENT_LOWAT is the socket's, so one value serves every
 * subscription: the largest they ask for (each one's own, or its hub's
 * automatic value, hub_sub.c). With it every frame of any of its streams
 * still goes in one sendmsg for a fast client, the cost the automatic
 * value exists to avoid; the sum would only add latency, since a slow
 * client already waits a round of the scheduler, one frame per
 * subscription, and the kernel then holds about one largest frame more.
 * Until the first subscription the kernel's default holds (only control
 * answers go out).
 */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "hub.h"

#define DEFAULT_MAX_SUBS 32u
#define DEFAULT_MAX_MSG 1024u
#define DEFAULT_STALL_MS 300000u
#define INITIAL_SEND_MAX (1u << 20)
#define NAME_MAX_LEN 128

struct sl_mux {
  sl_conn *c;
  sl_mux_opts o;
  struct sub **v;       /* its subscriptions, in the order they came */
  unsigned n;
  unsigned turn;        /* index in v of the next to be served */
  size_t lowat;         /* TCP_NOTSENT_LOWAT set (SL_LOWAT_KERNEL: none) */
  int closing;          /* inside the connection's SL_EV_CLOSE */
};

static void mux_tap(sl_conn *c, int ev, void *ev_data, void *arg);

sl_mux *sl_mux_of(const sl_conn *c) {
  return c && c->tap == mux_tap ? c->tap_arg : NULL;
}

void sl__mux_update_send_max(sl_mux *x) {
  if (x->o.send_max) return;
  size_t largest = 0;
  for (unsigned i = 0; i < x->n; i++)
    if (x->v[i]->hub->largest > largest) largest = x->v[i]->hub->largest;
  sl_limits lim = x->c->lim_set;
  lim.send_max = largest ? 2 * largest + 65536 : INITIAL_SEND_MAX;
  lim.send_high = lim.send_low = 0; /* follow send_max */
  sl_conn_set_limits(x->c, &lim);
}

void sl__mux_update_lowat(sl_mux *x) {
  if (x->n == 0) return; /* keep it for the next subscription */
  size_t v = 0;
  for (unsigned i = 0; i < x->n; i++) {
    size_t w = sl__sub_lowat(x->v[i]);
    if (w > v) v = w;
  }
  sl__set_lowat(x->c, &x->lowat, v);
}

size_t sl__mux_lowat(const sl_mux *x) { return x->lowat; }

sl_mux *sl_mux_new(sl_conn *c, const sl_mux_opts *o, int *err) {
  int rc = SL_EINVAL;
  sl_mux *x = NULL;
  if (c == NULL || !sl_ws_is_open(c)) goto fail;
  rc = SL_EBUSY;
  if (c->tap) goto fail;
  rc = SL_ENOMEM;
  x = sl__calloc(sizeof(*x), SL_MEM_META);
  if (x == NULL) goto fail;
  if (o) x->o = *o;
  if (!x->o.max_subs) x->o.max_subs = DEFAULT_MAX_SUBS;
  if (!x->o.max_msg) x->o.max_msg = DEFAULT_MAX_MSG;
  if (!x->o.stall_ms) x->o.stall_ms = DEFAULT_STALL_MS;
  x->v = sl__alloc(x->o.max_subs * sizeof(*x->v), SL_MEM_META);
  if (x->v == NULL) goto fail;
  x->c = c;
  /* The set-up a single viewer's connection gets (hub_sub.c, sl__sub_new),
   * once for every subscription. */
  sl_limits lim = c->lim_set;
  lim.stall_ms = x->o.stall_ms;
  lim.send_max = x->o.send_max ? x->o.send_max : INITIAL_SEND_MAX;
  lim.send_high = lim.send_low = 0;
  sl_conn_set_limits(c, &lim);
  sl__viewer_socket(c, x->o.stall_ms);
  x->lowat = SL_LOWAT_KERNEL;
  c->tap = mux_tap;
  c->tap_arg = x;
  return x;

fail:
  if (x) sl__free(x, sizeof(*x), SL_MEM_META);
  if (err) *err = rc;
  return NULL;
}

static void mux_free(sl_mux *x) {
  sl__free(x->v, x->o.max_subs * sizeof(*x->v), SL_MEM_META);
  sl__free(x, sizeof(*x), SL_MEM_META);
}

static struct sub *find(const sl_mux *x, uint32_t id, unsigned *at) {
  for (unsigned i = 0; i < x->n; i++)
    if (x->v[i]->mux_id == id) {
      if (at) *at = i;
      return x->v[i];
    }
  return NULL;
}

/* ---- the scheduler ---------------------------------------------------- */

void sl__mux_pump(sl_mux *x) {
  if (x->n == 0 || sl_conn_is_closing(x->c)) return;
  for (unsigned i = 0; i < x->n; i++) sl__sub_complete(x->v[i]);
  /* From the one after the last served, the first with a frame takes it.
   * A subscription with nothing pending does not move the turn: had it
   * moved past it, a frame published for it a moment later would wait for
   * the whole round behind the subscriptions that always have one. */
  for (;;) {
    unsigned k = 0;
    for (; k < x->n; k++) {
      unsigned i = (x->turn + k) % x->n;
      int r = sl__sub_take(x->v[i], 0);
      if (r < 0) return; /* the queue is not empty: nobody may take */
      if (r > 0) {
        x->turn = (i + 1) % x->n;
        break;
      }
    }
    if (k == x->n) return; /* nothing pending anywhere */
  }
}

void sl__mux_evicted(sl_mux *x) {
  for (unsigned i = 0; i < x->n; i++) sl__sub_drop_pending(x->v[i], -1);
}

/* ---- messages to the client ------------------------------------------- */

static void send_text(sl_mux *x, const char *t, int n) {
  /* Best effort: a control answer that finds no room (a socket at its
   * send_max) is dropped, like a frame would be. */
  if (n > 0 && !sl_conn_is_closing(x->c)) (void)sl_ws_send(x->c, SL_WS_TEXT, t, (size_t)n);
}

/* id < 0: the request named no usable id (null in the answer). */
static int send_error(sl_mux *x, int64_t id, const char *stream, const char *why, int rc) {
  char t[320];
  int n;
  if (id < 0)
    n = sl_json_printf(t, sizeof(t), "{%Q:%Q,%Q:null,%Q:%Q}", "type", "error", "id", "error", why);
  else if (stream)
    n = sl_json_printf(t, sizeof(t), "{%Q:%Q,%Q:%u,%Q:%Q,%Q:%Q}", "type", "error", "id",
                       (unsigned)id, "stream", stream, "error", why);
  else
    n = sl_json_printf(t, sizeof(t), "{%Q:%Q,%Q:%u,%Q:%Q}", "type", "error", "id", (unsigned)id,
                       "error", why);
  send_text(x, t, n);
  return rc;
}

void sl__mux_unlink(sl_mux *x, struct sub *s) {
  unsigned i;
  if (find(x, s->mux_id, &i) != s) return;
  memmove(x->v + i, x->v + i + 1, (x->n - i - 1) * sizeof(*x->v));
  x->n--;
  /* The turn stays with the subscription that had it. */
  if (x->turn > i) x->turn--;
  if (x->turn >= x->n) x->turn = 0;
  if (x->closing) return;
  char t[160];
  int n = sl_json_printf(t, sizeof(t), "{%Q:%Q,%Q:%u,%Q:%Q}", "type", "unsubscribed", "id",
                         (unsigned)s->mux_id, "reason",
                         s->evict ? sl_evict_reason_name(s->evict) : "unsubscribed");
  send_text(x, t, n);
  sl__mux_update_send_max(x);
  sl__mux_update_lowat(x);
}

/* ---- the API ---------------------------------------------------------- */

static const char *format_name(int kind, int transport) {
  if (kind != SL_KIND_H264) return "jpeg";
  return transport == SL_TRANSPORT_WS_FMP4 ? "fmp4" : "h264";
}

int sl_mux_subscribe(sl_mux *x, sl_hub *h, uint32_t id, int transport,
                     const sl_sub_opts *o) {
  if (x == NULL || h == NULL) return SL_EINVAL;
  if (sl_conn_is_closing(x->c)) return SL_ECLOSING;
  if (find(x, id, NULL)) return SL_EEXIST;
  if (x->n == x->o.max_subs) return SL_ELIMIT;
  if (transport != SL_TRANSPORT_WS &&
      !(transport == SL_TRANSPORT_WS_FMP4 && h->o.kind == SL_KIND_H264))
    return SL_EINVAL;
  sl_sub_opts so = o ? *o : x->o.sub;
  so.send_max = 0;
  so.stall_ms = x->o.stall_ms;
  so.cors_origins = NULL;
  /* The answer goes before any frame of the subscription. */
  char t[320];
  int n = sl_json_printf(t, sizeof(t), "{%Q:%Q,%Q:%u,%Q:%Q,%Q:%Q,%Q:%Q}", "type", "subscribed",
                         "id", (unsigned)id, "stream", sl_hub_name(h), "kind",
                         sl_kind_name(h->o.kind), "format", format_name(h->o.kind, transport));
  if (n < 0) return SL_EINVAL;
  int rc = sl__hub_admit(h);
  if (rc) return rc;
  rc = sl_ws_send(x->c, SL_WS_TEXT, t, (size_t)n);
  if (rc) return rc;
  rc = sl__sub_new(h, x->c, transport, &so, x, id, NULL);
  /* Out of memory after the answer was queued: the error that follows it
   * tells the client (sl_mux_handle). */
  return rc;
}

void sl__mux_link(sl_mux *x, struct sub *s) {
  x->v[x->n++] = s; /* room checked by sl_mux_subscribe */
  sl__mux_update_send_max(x);
  sl__mux_update_lowat(x);
}

int sl_mux_unsubscribe(sl_mux *x, uint32_t id) {
  struct sub *s = find(x, id, NULL);
  if (s == NULL) return SL_ENOENT;
  sl__hub_remove_sub(s->hub, s);
  return 0;
}

size_t sl_mux_subs(const sl_mux *x, sl_sub_stats *out, size_t max) {
  for (unsigned i = 0; i < x->n && i < max; i++) sl__sub_stats(x->v[i], &out[i]);
  return x->n;
}

/* ---- the control protocol --------------------------------------------- */

static int parse_policy(const char *p, sl_sub_opts *o) {
  if (strcmp(p, "latest") == 0) o->policy = SL_POLICY_LATEST;
  else if (strcmp(p, "keyframe") == 0) o->policy = SL_POLICY_KEYFRAME;
  else if (strcmp(p, "lossless") == 0) o->policy = SL_POLICY_LOSSLESS;
  else if (strcmp(p, "queue") == 0) o->policy = SL_POLICY_QUEUE;
  else if (strncmp(p, "queue:", 6) == 0) {
    unsigned n = 0;
    const char *d = p + 6;
    if (!*d) return SL_EINVAL;
    for (; *d; d++) {
      if (*d < '0' || *d > '9' || n > 64) return SL_EINVAL;
      n = n * 10 + (unsigned)(*d - '0');
    }
    if (n < 1 || n > 64) return SL_EINVAL;
    o->policy = SL_POLICY_QUEUE;
    o->queue_len = n;
  } else {
    return SL_EINVAL;
  }
  return 0;
}

static int do_subscribe(sl_mux *x, const char *j, size_t len, uint32_t id) {
  char stream[NAME_MAX_LEN], v[32];
  int rc = sl_json_get_str(j, len, "$.stream", stream, sizeof(stream));
  if (rc <= 0) return send_error(x, id, NULL, "bad stream", SL_EINVAL);
  sl_sub_opts o = x->o.sub;
  rc = sl_json_get_str(j, len, "$.policy", v, sizeof(v));
  if (rc != SL_ENOENT && (rc < 0 || parse_policy(v, &o) != 0))
    return send_error(x, id, stream, "bad policy", SL_EINVAL);
  if (o.policy == SL_POLICY_LOSSLESS && !x->o.allow_lossless)
    return send_error(x, id, stream, "forbidden", SL_EACCES);
  double fps;
  rc = sl_json_get_num(j, len, "$.fps", &fps);
  if (rc == 0 && fps >= 0 && fps <= 1000) o.fps = fps;
  else if (rc != SL_ENOENT) return send_error(x, id, stream, "bad fps", SL_EINVAL);
  int want = -1; /* the stream's own format */
  rc = sl_json_get_str(j, len, "$.format", v, sizeof(v));
  if (rc >= 0) {
    if (strcmp(v, "jpeg") == 0) want = SL_KIND_MJPEG;
    else if (strcmp(v, "h264") == 0) want = SL_KIND_H264;
    else if (strcmp(v, "fmp4") == 0) want = SL_TRANSPORT_WS_FMP4 + 16;
    else return send_error(x, id, stream, "bad format", SL_EINVAL);
  } else if (rc != SL_ENOENT) {
    return send_error(x, id, stream, "bad format", SL_EINVAL);
  }
  if (find(x, id, NULL)) return send_error(x, id, stream, "id in use", SL_EEXIST);
  if (x->n == x->o.max_subs)
    return send_error(x, id, stream, "too many subscriptions", SL_ELIMIT);
  sl_hub *h = NULL;
  rc = x->o.resolve ? x->o.resolve(x, stream, &o, &h, x->o.arg)
                    : ((h = sl_hub_find(x->c->mgr, stream)) ? 0 : SL_ENOENT);
  if (rc == 0 && h == NULL) rc = SL_ENOENT;
  if (rc == SL_ENOENT) return send_error(x, id, stream, "unknown stream", rc);
  if (rc == SL_EACCES || rc == SL_EPERM) return send_error(x, id, stream, "forbidden", rc);
  if (rc) return send_error(x, id, stream, "refused", rc);
  int kind = h->o.kind, transport = SL_TRANSPORT_WS;
  if (want == SL_TRANSPORT_WS_FMP4 + 16) {
    if (kind != SL_KIND_H264) return send_error(x, id, stream, "format not offered", SL_EINVAL);
    transport = SL_TRANSPORT_WS_FMP4;
  } else if (want >= 0 && want != kind) {
    return send_error(x, id, stream, "format not offered", SL_EINVAL);
  }
  rc = sl_mux_subscribe(x, h, id, transport, &o);
  if (rc == SL_ELIMIT) return send_error(x, id, stream, "stream full", rc);
  if (rc) return send_error(x, id, stream, sl_strerror(rc), rc);
  return 0;
}

int sl_mux_handle(sl_mux *x, const sl_ws_msg *msg) {
  const char *j = msg->data.ptr;
  size_t len = msg->data.len;
  char op[32];
  double d;
  if (msg->opcode != SL_WS_TEXT) return send_error(x, -1, NULL, "text messages only", SL_EINVAL);
  if (len > x->o.max_msg) return send_error(x, -1, NULL, "message too large", SL_EMSGSIZE);
  if (sl_json_get(j, len, "$", NULL, NULL) != SL_JSON_OBJECT)
    return send_error(x, -1, NULL, "bad json", SL_EINVAL);
  int rc = sl_json_get_num(j, len, "$.id", &d);
  /* Ids are uint32 and whole: 2.5, -1 or 1e10 name no subscription. */
  if (rc != 0 || !(d >= 0 && d <= 4294967295.0) || d != (double)(uint32_t)d)
    return send_error(x, -1, NULL, "bad id", SL_EINVAL);
  uint32_t id = (uint32_t)d;
  if (sl_json_get_str(j, len, "$.op", op, sizeof(op)) < 0)
    return send_error(x, id, NULL, "bad op", SL_EINVAL);
  if (strcmp(op, "subscribe") == 0) return do_subscribe(x, j, len, id);
  if (strcmp(op, "unsubscribe") == 0) {
    rc = sl_mux_unsubscribe(x, id);
    return rc ? send_error(x, id, NULL, "unknown id", rc) : 0;
  }
  return send_error(x, id, NULL, "unknown op", SL_EINVAL);
}

/* ---- the connection --------------------------------------------------- */

static void mux_tap(sl_conn *c, int ev, void *ev_data, void *arg) {
  sl_mux *x = arg;
  (void)ev_data;
  if (ev == SL_EV_WRITE || ev == SL_EV_DRAIN) {
    sl__mux_pump(x);
    for (unsigned i = 0; i < x->n; i++)
      if (x->v[i]->o.policy == SL_POLICY_LOSSLESS) sl__hub_update_ready(x->v[i]->hub);
  } else if (ev == SL_EV_CLOSE) {
    /* The socket goes as one: every subscription leaves its hub now. */
    x->closing = 1;
    while (x->n) sl__hub_remove_sub(x->v[x->n - 1]->hub, x->v[x->n - 1]);
    c->tap = NULL;
    c->tap_arg = NULL;
    mux_free(x);
  }
}
