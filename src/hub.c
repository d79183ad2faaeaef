/*
 * Hubs: publishing (from any thread), the live-frame list and its exact
 * accounting, admission control, budget pressure and the periodic policy
 * tick. Policies are evaluated when a frame is published, when a
 * subscriber's output drains, and on the tick: never only from the write
 * path, because a stuck peer's write callback may never come.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>

#include "alloc.h"
#include "buf.h"
#include "hub.h"
#include "utf8.h"

#define TICK_MS 200
#define DEFAULT_MAX_SUBS 1000
#define DEFAULT_STALL_EVICT_MS 5000
/* H.264: the cached GOP's cap. A 2 s GOP at 8 Mbit/s is 2 MB; past 4 MiB
 * the stream's GOP is too long or too rich to hand a joining viewer at
 * once, and it waits for the next IDR instead. */
#define DEFAULT_GOP_MAX (4u << 20)

const char *sl_drop_reason_name(int reason) {
  static const char *const names[] = {
#define SL__DROP_NAME(name, str) str,
      SL_DROP_REASONS(SL__DROP_NAME)
#undef SL__DROP_NAME
  };
  if (reason < 0 || reason >= SL_DROP_NREASONS) return "?";
  return names[reason];
}

const char *sl_transport_name(int t) {
  static const char *const names[] = {"mjpeg", "ws", "chunked", "raw", "fmp4", "ws-fmp4"};
  return t >= 0 && t <= SL_TRANSPORT_WS_FMP4 ? names[t] : "?";
}

const char *sl_kind_name(int kind) {
  return kind == SL_KIND_MJPEG ? "mjpeg" : kind == SL_KIND_H264 ? "h264" : "?";
}

const char *sl_policy_name(int policy) {
  static const char *const names[] = {"inherit", "latest", "queue", "keyframe",
                                      "lossless"};
  if (policy < SL_POLICY_INHERIT || policy > SL_POLICY_LOSSLESS) return "?";
  return names[policy];
}

const char *sl_evict_reason_name(int reason) {
  static const char *const names[] = {"none", "hard_limit", "soft_limit",
                                      "slot", "budget", "hub_closed"};
  if (reason < 0 || reason > SL_EVICT_HUB) return "?";
  return names[reason];
}

/* ---- live frames ---------------------------------------------------- */

static size_t frame_bytes(const struct frame *f) {
  return sl__buf_size(f->buf) + (f->mp4 ? sl__buf_size(f->mp4) : 0);
}

/* No output queue of this manager holds the frame's buffer any more. The
 * hub's own hold is one of the buffer's queue holds when it is counted here
 * (f->counted == 0), so one hold left means none of the queues'. The
 * reference count alone cannot tell: the application may keep references
 * of its own (a pool of capture buffers, the last few frames), and the
 * record would then never be freed. */
static int buf_unused(const sl_buf *b, size_t counted) {
  if (sl_buf_refs(b) == 1) return 1;
  return counted == 0 && atomic_load(&((sl_buf *)b)->qrefs) == 1;
}

static int frame_unused(const struct frame *f) {
  return buf_unused(f->buf, f->counted) && (f->mp4 == NULL || buf_unused(f->mp4, f->mp4_counted));
}

static void frame_free(sl_mgr *m, struct frame *f) {
  sl__acct_buf_release(&m->acct, f->buf, f->counted);
  sl_buf_unref(f->buf);
  if (f->mp4) {
    sl__acct_buf_release(&m->acct, f->mp4, f->mp4_counted);
    sl_buf_unref(f->mp4);
  }
  sl__codec_unref(f->codec);
  sl__free(f, sizeof(*f), SL_MEM_META);
}

#ifdef SL_DEBUG_ASSERTS
/* Debug builds: the hub's counters equal what its lists hold, after every
 * prune (each publish, tick and leave). */
static void check_hub(const sl_hub *h) {
  size_t held = 0, n = 0, gop = 0, gopn = 0, nsubs = 0;
  for (const struct frame *f = h->live; f; f = f->next) {
    held += frame_bytes(f);
    n++;
    SL_ASSERT(f->pins >= (unsigned)(f == h->latest) + f->in_gop);
  }
  SL_ASSERT(held == h->held);
  SL_ASSERT(n == h->frames_held);
  for (const struct frame *f = h->gop_head; f; f = f->gop_next) {
    SL_ASSERT(f->in_gop);
    gop += sl_buf_len(f->buf);
    gopn++;
  }
  SL_ASSERT(gop == h->gop_bytes);
  SL_ASSERT(gopn == h->gop_frames);
  for (const struct sub *s = h->subs; s; s = s->next) {
    size_t pn = 0, pbytes = 0;
    for (const struct pend *p = s->ph; p; p = p->next) {
      pn++;
      pbytes += sl_buf_len(p->f->buf);
    }
    SL_ASSERT(pn == s->pn);
    SL_ASSERT(pbytes == s->pbytes);
    SL_ASSERT(s->burst <= s->pn);
    nsubs++;
  }
  SL_ASSERT(nsubs == h->nsubs);
}
#else
#define check_hub(h) ((void)0)
#endif

/* Free frames nobody needs any more: not latest, not in a policy queue, and
 * no output queue holds their buffer. */
static void prune(sl_hub *h) {
  struct frame **pp = &h->live;
  while (*pp) {
    struct frame *f = *pp;
    if (f->pins == 0 && frame_unused(f)) {
      *pp = f->next;
      h->held -= frame_bytes(f);
      h->frames_held--;
      frame_free(h->mgr, f);
    } else {
      pp = &f->next;
    }
  }
  check_hub(h);
}

void sl__hub_unpin(sl_hub *h, struct frame *f) {
  (void)h;
  f->pins--;
}

void sl__hub_emit(sl_hub *h, int type, const struct sub *s, int reason,
                  int evict) {
  if (h->o.on_event == NULL) return;
  sl_hub_event e = {type, s ? s->id : 0, s ? sl_conn_peer(s->c) : NULL,
                    s ? s->transport : 0, reason, evict};
  h->o.on_event(h, &e, h->o.arg);
}

void sl__hub_update_ready(sl_hub *h) {
  int full = 0;
  for (struct sub *s = h->subs; s && !full; s = s->next) full = s->full;
  if (full != h->not_ready) {
    h->not_ready = full;
    atomic_store(&h->ready_flag, !full);
    sl__hub_emit(h, full ? SL_HUB_NOT_READY : SL_HUB_READY, NULL, 0, 0);
  }
}

/* ---- publishing ----------------------------------------------------- */

static void budget_pressure(sl_hub *h);

static uint64_t wall_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* H.264: what the access unit holds decides its flags, and its parameter
 * sets the configuration. SL_EAGAIN (not an error for the publisher: the
 * buffer held only parameter sets, now in force) or SL_EPROTO (a frame
 * before any configuration: no viewer could decode it). */
static int h264_prepare(sl_hub *h, sl_buf *buf, unsigned *flags, int *has_ps) {
  struct h264_scan sc;
  sl__h264_scan(sl_buf_cdata(buf), sl_buf_len(buf), &sc);
  int rc = sl__h264_config(h, &sc);
  if (rc == SL_ENOMEM) return rc;
  if (!sc.vcl) return sc.sps && sc.pps && rc == 0 ? SL_EAGAIN : SL_EPROTO;
  if (h->codec == NULL) {
    h->no_config++;
    return SL_EPROTO;
  }
  *flags = sc.idr ? *flags | SL_FRAME_KEY : *flags & ~(unsigned)SL_FRAME_KEY;
  *has_ps = sc.sps && sc.pps;
  return 0;
}

static int publish_now(sl_hub *h, sl_buf *buf, uint64_t ts, unsigned flags,
                       uint64_t seq) {
  sl_mgr *m = h->mgr;
  int has_ps = 0;
  if (h->o.kind == SL_KIND_H264) {
    int rc = h264_prepare(h, buf, &flags, &has_ps);
    if (rc == SL_EAGAIN) return 0;
    if (rc) return rc;
  }
  struct frame *f = sl__calloc(sizeof(*f), SL_MEM_META);
  if (f == NULL) {
    h->lost++;
    return SL_ENOMEM;
  }
  f->buf = sl_buf_ref(buf);
  f->seq = h->seq = seq > h->seq ? seq : h->seq + 1;
  f->ts = ts ? ts : m->now;
  f->wall_ms = wall_ms();
  f->flags = flags;
  f->pins = 1; /* as latest */
  f->codec = sl__codec_ref(h->codec);
  f->has_ps = (unsigned)has_ps;
  if (f->codec) sl__h264_timing(h, f, h->latest);
  f->next = h->live;
  h->live = f;
  h->held += frame_bytes(f);
  h->frames_held++;
  /* The manager's held bytes include the hub's frames, once. */
  sl__acct_buf_hold(&m->acct, f->buf, &f->counted);
  h->frames_in++;
  h->bytes_in += sl_buf_len(buf);
  h->recent_bytes += sl_buf_len(buf) - h->rate_bytes[h->rate_n % HUB_RATE];
  h->rate_bytes[h->rate_n % HUB_RATE] = sl_buf_len(buf);
  h->rate[h->rate_n++ % HUB_RATE] = m->now;
  if (h->latest) h->latest->pins--;
  h->latest = f;
  if (h->o.kind == SL_KIND_H264) sl__gop_add(h, f);
  if (sl_buf_len(buf) > h->largest) {
    h->largest = sl_buf_len(buf);
    for (struct sub *s = h->subs; s; s = s->next) sl__sub_update_send_max(s);
  }
  sl__hub_follow_lowat(h);
  for (struct sub *s = h->subs, *next; s; s = next) {
    next = s->next;
    sl__sub_offer(s, f);
    sl__sub_pump(s);
  }
  sl__hub_update_ready(h);
  prune(h);
  if (h->o.budget && h->held > h->o.budget) budget_pressure(h);
  return 0;
}

static void hub_release(sl_hub *h) {
  /* Under the lock: a publisher on another thread takes the scheduled
   * call's reference (refs++) under it, possibly while the loop drops one
   * here. */
  pthread_mutex_lock(&h->lock);
  int last = --h->refs == 0;
  if (last) {
    for (unsigned i = 0; i < h->inq_n; i++) sl_buf_unref(h->inq[i].buf);
    h->inq_n = 0;
  }
  pthread_mutex_unlock(&h->lock);
  if (!last) return;
  pthread_mutex_destroy(&h->lock);
  sl__free(h->name, strlen(h->name) + 1, SL_MEM_META);
  sl__free(h, sizeof(*h), SL_MEM_META);
}

static void publish_text_now(sl_hub *h, sl_buf *msg);

/* On the loop thread: publish what other threads handed in. */
static void drain_inq(sl_mgr *m, void *arg) {
  sl_hub *h = arg;
  struct inq_item items[HUB_INQ];
  (void)m;
  pthread_mutex_lock(&h->lock);
  unsigned n = h->inq_n;
  memcpy(items, h->inq, n * sizeof(items[0]));
  h->inq_n = 0;
  h->call_pending = 0;
  pthread_mutex_unlock(&h->lock);
  for (unsigned i = 0; i < n; i++) {
    /* Out of memory here is counted in `lost`: the publisher was told 0
     * when it handed the frame in. */
    if (h->dead) {
    } else if (items[i].flags & HUB_INQ_TEXT) {
      publish_text_now(h, items[i].buf);
    } else {
      (void)publish_now(h, items[i].buf, items[i].ts, items[i].flags, items[i].seq);
    }
    sl_buf_unref(items[i].buf);
  }
  hub_release(h);
}

static void drop_inq(void *arg) { hub_release(arg); }

/* From another thread: hand `frame` to the loop through the hub's queue. */
static int queue_in(sl_hub *h, sl_buf *frame, uint64_t ts_ms, unsigned flags,
                    uint64_t seq) {
  pthread_mutex_lock(&h->lock);
  if (h->inq_n == HUB_INQ) {
    pthread_mutex_unlock(&h->lock);
    return SL_EFULL;
  }
  h->inq[h->inq_n++] = (struct inq_item){sl_buf_ref(frame), ts_ms, seq, flags};
  int schedule = !h->call_pending;
  if (schedule) {
    h->call_pending = 1;
    h->refs++; /* the scheduled call's; `refs` is changed under the lock */
  }
  pthread_mutex_unlock(&h->lock);
  if (schedule) {
    int rc = sl__mgr_call_drop(h->mgr, drain_inq, drop_inq, h);
    if (rc) {
      pthread_mutex_lock(&h->lock);
      h->call_pending = 0;
      h->refs--;
      h->inq_n--;
      sl_buf_unref(h->inq[h->inq_n].buf);
      pthread_mutex_unlock(&h->lock);
      return rc;
    }
  }
  return 0;
}

int sl__hub_publish_buf(sl_hub *h, sl_buf *b, uint64_t ts, unsigned flags,
                        int queue, uint64_t seq) {
  if (queue || !sl__on_loop_thread(h->mgr)) return queue_in(h, b, ts, flags, seq);
  if (flags & HUB_INQ_TEXT) {
    publish_text_now(h, b);
    return 0;
  }
  return publish_now(h, b, ts, flags, seq);
}

int sl__hub_inq_room(sl_hub *h) {
  pthread_mutex_lock(&h->lock);
  int room = h->inq_n < HUB_INQ;
  pthread_mutex_unlock(&h->lock);
  return room;
}

int sl_hub_publish(sl_hub *h, sl_buf *frame, uint64_t ts_ms, unsigned flags) {
  if (h == NULL || frame == NULL) return SL_EINVAL;
  flags &= ~HUB_INQ_TEXT;
  if (sl__on_loop_thread(h->mgr)) return publish_now(h, frame, ts_ms, flags, 0);
  return queue_in(h, frame, ts_ms, flags, 0);
}

/* Text messages go to the WebSocket subscribers only, each at once and
 * whole (hub_sub.c, sl__sub_send_text): they are not frames, so no frame
 * policy replaces or skips them. */
static void publish_text_now(sl_hub *h, sl_buf *msg) {
  h->texts_in++;
  for (struct sub *s = h->subs, *next; s; s = next) {
    next = s->next;
    /* A mux's subscriptions share one connection and speak docs/mux.md:
     * they are left out. */
    if (s->mux == NULL && (s->transport == SL_TRANSPORT_WS || s->transport == SL_TRANSPORT_WS_FMP4))
      sl__sub_send_text(s, msg);
  }
}

int sl_hub_publish_text(sl_hub *h, const char *text, size_t len) {
  if (h == NULL || (text == NULL && len) || !sl__utf8_valid(text, len)) return SL_EINVAL;
  sl_buf *b = sl_buf_from(text, len);
  if (b == NULL) return SL_ENOMEM;
  int rc = 0;
  if (sl__on_loop_thread(h->mgr)) publish_text_now(h, b);
  else rc = queue_in(h, b, 0, HUB_INQ_TEXT, 0);
  sl_buf_unref(b);
  return rc;
}

int sl_hub_ready(const sl_hub *h) {
  return atomic_load(&((sl_hub *)h)->ready_flag);
}

sl_buf *sl_hub_latest(sl_hub *h, uint64_t *seq, uint64_t *ts_ms) {
  if (h->latest == NULL) return NULL;
  if (seq) *seq = h->latest->seq;
  if (ts_ms) *ts_ms = h->latest->ts;
  return sl_buf_ref(h->latest->buf);
}

/* ---- budget and the tick -------------------------------------------- */

static int by_lag_desc(const void *a, const void *b) {
  uint64_t x = sl__sub_lag_ms(*(struct sub *const *)a);
  uint64_t y = sl__sub_lag_ms(*(struct sub *const *)b);
  return x < y ? 1 : x > y ? -1 : 0;
}

/* Over budget: first drop the pending frames of the furthest-behind
 * subscribers, then evict the longest-stalled ones. */
static void budget_pressure(sl_hub *h) {
  size_t n = h->nsubs, i = 0;
  if (n == 0) return;
  struct sub **v = sl__alloc(n * sizeof(*v), SL_MEM_META);
  if (v == NULL) return;
  for (struct sub *s = h->subs; s; s = s->next) v[i++] = s;
  qsort(v, n, sizeof(*v), by_lag_desc);
  for (i = 0; i < n && h->held > h->o.budget; i++) {
    if (v[i]->pn) {
      sl__sub_drop_for_budget(v[i]);
      prune(h);
    }
  }
  while (h->held > h->o.budget) {
    struct sub *worst = NULL;
    for (struct sub *s = h->subs; s; s = s->next)
      if (!sl_conn_is_closing(s->c) && sl__sub_stalled(s, 0) &&
          (worst == NULL || s->c->last_progress_ms < worst->c->last_progress_ms))
        worst = s;
    if (worst == NULL) break;
    /* Eviction releases its queue at once: prune sees what that freed, and
     * the loop stops as soon as the hub is back under budget. */
    sl__sub_evict(worst, SL_EVICT_BUDGET);
    prune(h);
  }
  sl__free(v, n * sizeof(*v), SL_MEM_META);
}

static void tick(sl_mgr *m, void *arg) {
  sl_hub *h = arg;
  (void)m;
  for (struct sub *s = h->subs, *next; s; s = next) {
    next = s->next;
    sl__sub_check(s);
    sl__sub_pump(s);
  }
  sl__hub_update_ready(h);
  prune(h);
  if (h->o.budget && h->held > h->o.budget) budget_pressure(h);
}

/* ---- lifecycle and registry ----------------------------------------- */

/* The manager's hubs: a list whose head lives in the manager's module
 * slot named by hubs_key (registered by the first sl_hub_new). */
static const char hubs_key;

static sl_hub **hubs_of(sl_mgr *m) { return (sl_hub **)sl__mgr_slot(m, &hubs_key); }

/* sl_mgr_free: every hub still there goes, before the connections. */
static void free_hubs(sl_mgr *m, void *state) {
  (void)state;
  sl_hub **head = hubs_of(m);
  while (*head) sl_hub_free(*head);
}

sl_hub *sl_hub_new(sl_mgr *m, const char *name, const sl_hub_opts *opts,
                   int *err) {
  int rc = SL_ENOMEM;
  if (name == NULL) name = "";
  if (sl_hub_find(m, name)) {
    if (err) *err = SL_EEXIST;
    return NULL;
  }
  sl_hub *h = sl__calloc(sizeof(*h), SL_MEM_META);
  if (h == NULL) goto fail;
  h->name = sl__strdup(name);
  if (h->name == NULL) goto fail_hub;
  if (opts) h->o = *opts;
  if (!h->o.max_subs) h->o.max_subs = DEFAULT_MAX_SUBS;
  if (!h->o.stall_evict_ms) h->o.stall_evict_ms = DEFAULT_STALL_EVICT_MS;
  if (!h->o.gop_max) h->o.gop_max = DEFAULT_GOP_MAX;
  if (h->o.sub.policy < SL_POLICY_INHERIT || h->o.sub.policy > SL_POLICY_LOSSLESS ||
      (h->o.kind != SL_KIND_MJPEG && h->o.kind != SL_KIND_H264)) {
    rc = SL_EINVAL;
    goto fail_name;
  }
  h->mgr = m;
  h->refs = 1;
  atomic_init(&h->ready_flag, 1);
  pthread_mutex_init(&h->lock, NULL);
  h->tick = sl_timer_add(m, TICK_MS, SL_TIMER_REPEAT, tick, h, &rc);
  if (h->tick == NULL) goto fail_lock;
  sl_hub **head = hubs_of(m);
  if (head == NULL) {
    /* The first hub of this manager: sl_mgr_free frees what is left. */
    rc = sl__mgr_on_free(m, &hubs_key, free_hubs, NULL);
    if (rc) goto fail_tick;
    head = hubs_of(m);
  }
  h->next = *head;
  *head = h;
  return h;

fail_tick:
  sl_timer_free(m, h->tick);

fail_lock:
  pthread_mutex_destroy(&h->lock);
fail_name:
  sl__free(h->name, strlen(h->name) + 1, SL_MEM_META);
fail_hub:
  sl__free(h, sizeof(*h), SL_MEM_META);
fail:
  if (err) *err = rc;
  return NULL;
}

void sl_hub_free(sl_hub *h) {
  if (h == NULL) return;
  sl_mgr *m = h->mgr;
  /* First out of its group: from here on no other thread hands it a
   * frame, so the manager may go right after. */
  sl__hub_group_leave(h);
  for (sl_hub **pp = hubs_of(m); pp && *pp; pp = &(*pp)->next)
    if (*pp == h) {
      *pp = h->next;
      break;
    }
  h->dead = 1;
  while (h->subs) {
    struct sub *s = h->subs;
    sl__sub_evict(s, SL_EVICT_HUB);
    sl__hub_remove_sub(h, s);
  }
  sl_timer_free(m, h->tick);
  if (h->latest) h->latest->pins--;
  h->latest = NULL;
  /* Frames still referenced by output queues keep their own sl_buf
   * references; the hub's are dropped now. */
  sl__gop_clear(h);
  while (h->live) {
    struct frame *f = h->live;
    h->live = f->next;
    frame_free(m, f);
  }
  sl__codec_unref(h->codec);
  h->codec = NULL;
  h->held = h->frames_held = 0;
  hub_release(h);
}

sl_hub *sl_hub_find(sl_mgr *m, const char *name) {
  sl_hub **head = hubs_of(m);
  for (sl_hub *h = head ? *head : NULL; h; h = h->next)
    if (strcmp(h->name, name) == 0) return h;
  return NULL;
}

sl_hub *sl_hub_next(sl_mgr *m, sl_hub *prev) {
  sl_hub **head = hubs_of(m);
  return prev ? prev->next : head ? *head : NULL;
}

const char *sl_hub_name(const sl_hub *h) { return h->name; }

/* ---- admission ------------------------------------------------------ */

/* Room for one more subscriber: evict the longest-stalled one when full. */
static int admit(sl_hub *h) {
  if (h->nsubs < h->o.max_subs) return 0;
  struct sub *worst = NULL;
  for (struct sub *s = h->subs; s; s = s->next)
    if (!sl_conn_is_closing(s->c) && sl__sub_stalled(s, h->o.stall_evict_ms) &&
        (worst == NULL || s->c->last_progress_ms < worst->c->last_progress_ms))
      worst = s;
  if (worst == NULL) return SL_ELIMIT;
  sl__sub_evict(worst, SL_EVICT_SLOT);
  sl__hub_remove_sub(h, worst);
  return 0;
}

/* The CORS lines for an HTTP viewer (RFC 6454 origins, Fetch standard
 * CORS): off without a list; "*" in the list answers any page with "*";
 * otherwise the request's Origin is echoed only when listed, with Vary so
 * a cache does not hand one site's answer to another. Writes "" when
 * nothing is allowed. */
static void cors_lines(const char *const *list, const sl_http_msg *m,
                       char *out, size_t cap) {
  out[0] = '\0';
  if (list == NULL) return;
  const sl_str *origin = sl_http_get_header(m, "Origin");
  for (const char *const *o = list; *o; o++) {
    if (strcmp(*o, "*") == 0) {
      snprintf(out, cap, "Access-Control-Allow-Origin: *\r\n");
      return;
    }
    if (origin && strlen(*o) == origin->len &&
        strncasecmp(*o, origin->ptr, origin->len) == 0) {
      int n = snprintf(out, cap, "Access-Control-Allow-Origin: %.*s\r\nVary: Origin\r\n",
                       (int)origin->len, origin->ptr);
      if (n < 0 || (size_t)n >= cap) out[0] = '\0';
      return;
    }
  }
  /* Listed origins only: a cache must still know the answer depends on
   * Origin, or it could serve this refusal to a listed page. */
  snprintf(out, cap, "Vary: Origin\r\n");
}

int sl_hub_attach(sl_hub *h, sl_conn *c, const sl_http_msg *m, int transport,
                  const sl_sub_opts *opts, const sl_ws_opts *ws) {
  int rc;
  char cors[320], hdr[512];
  cors_lines(opts && opts->cors_origins ? opts->cors_origins : h->o.sub.cors_origins, m,
             cors, sizeof(cors));
  if (admit(h) != 0) {
    h->refused++;
    sl_http_reply(c, 503, "Retry-After: 5\r\nContent-Type: text/plain\r\n",
                  "503 Service Unavailable: too many viewers\n", 42);
    return SL_ELIMIT;
  }
  if (h->o.kind == SL_KIND_H264 && transport == SL_TRANSPORT_MJPEG) {
    sl_http_reply(c, 406, "Content-Type: text/plain\r\n",
                  "406 Not Acceptable: this stream is H.264, not MJPEG\n", 52);
    return SL_EINVAL;
  }
  if (h->o.kind != SL_KIND_H264 &&
      (transport == SL_TRANSPORT_FMP4 || transport == SL_TRANSPORT_WS_FMP4)) {
    sl_http_reply(c, 406, "Content-Type: text/plain\r\n",
                  "406 Not Acceptable: fMP4 needs an H.264 stream\n", 47);
    return SL_EINVAL;
  }
  switch (transport) {
    case SL_TRANSPORT_MJPEG:
      snprintf(hdr, sizeof(hdr),
               "Content-Type: multipart/x-mixed-replace; boundary=sluiceframe\r\n"
               "Pragma: no-cache\r\n%sX-Accel-Buffering: no\r\n", cors);
      rc = sl_http_start(c, 200, hdr, SL_HTTP_STREAM);
      break;
    case SL_TRANSPORT_CHUNKED:
    case SL_TRANSPORT_RAW:
      snprintf(hdr, sizeof(hdr), "Content-Type: %s\r\n%s",
               h->o.kind == SL_KIND_H264 ? "video/h264"
                                         : "application/octet-stream", cors);
      rc = sl_http_start(c, 200, hdr,
                         transport == SL_TRANSPORT_RAW ? SL_HTTP_STREAM : SL_HTTP_CHUNKED);
      break;
    case SL_TRANSPORT_FMP4:
      /* sl_http_start adds Cache-Control: no-store to a stream. */
      snprintf(hdr, sizeof(hdr), "Content-Type: video/mp4\r\n%s", cors);
      rc = sl_http_start(c, 200, hdr, SL_HTTP_STREAM);
      break;
    case SL_TRANSPORT_WS:
    case SL_TRANSPORT_WS_FMP4:
      rc = sl_ws_upgrade(c, m, ws);
      break;
    default:
      rc = SL_EINVAL;
  }
  if (rc) return rc;
  if (sl_http_is_method(m, "HEAD")) return 0;
  return sl__sub_new(h, c, transport, opts, NULL, 0, NULL);
}

int sl_hub_attach_conn(sl_hub *h, sl_conn *c, int transport,
                       const sl_sub_opts *opts) {
  if (admit(h) != 0) {
    h->refused++;
    return SL_ELIMIT;
  }
  return sl__sub_new(h, c, transport, opts, NULL, 0, NULL);
}

int sl__hub_admit(sl_hub *h) {
  if (admit(h) != 0) {
    h->refused++;
    return SL_ELIMIT;
  }
  return 0;
}

void sl__hub_remove_sub(sl_hub *h, struct sub *s) {
  if (s->prev) s->prev->next = s->next;
  else h->subs = s->next;
  if (s->next) s->next->prev = s->prev;
  h->nsubs--;
  h->leaves++;
  sl__sub_drop_pending(s, -1);
  if (s->mux) {
    sl__mux_unlink(s->mux, s); /* the mux keeps the connection's tap */
  } else {
    s->c->tap = NULL;
    s->c->tap_arg = NULL;
  }
  if (s->evict) h->evictions[s->evict]++;
  sl__hub_emit(h, SL_HUB_LEAVE, s, s->c->close_reason, s->evict);
  sl__free(s, sizeof(*s), SL_MEM_META);
  sl__hub_update_ready(h);
  prune(h);
}

/* ---- statistics ----------------------------------------------------- */

void sl_hub_stats_get(sl_hub *h, sl_hub_stats *o) {
  memset(o, 0, sizeof(*o));
  prune(h);
  o->frames_in = h->frames_in;
  o->bytes_in = h->bytes_in;
  o->seq = h->seq;
  o->subs = h->nsubs;
  o->max_subs = h->o.max_subs;
  o->held = h->held;
  o->frames_held = h->frames_held;
  o->largest_frame = h->largest;
  o->joins = h->joins;
  o->leaves = h->leaves;
  memcpy(o->evictions, h->evictions, sizeof(o->evictions));
  o->refused = h->refused;
  o->lost = h->lost;
  o->kind = h->o.kind;
  o->gop_frames = h->gop_frames;
  o->gop_bytes = h->gop_bytes;
  o->gop_cuts = h->gop_cuts;
  o->resyncs = h->resyncs;
  o->codec_changes = h->codec_changes;
  o->mp4_fragments = h->mp4_built;
  o->mp4_bytes = h->mp4_bytes;
  o->texts_in = h->texts_in;
  o->texts_sent = h->texts_sent;
  o->text_drops = h->text_drops;
  o->group_lost = atomic_load(&h->glost);
  o->group_skipped = atomic_load(&h->gskipped);
  o->group_resyncs = atomic_load(&h->gresyncs);
  o->group_texts_lost = atomic_load(&h->gtexts_lost);
  o->no_config = h->no_config + h->bad_config;
  if (h->codec) {
    const sl_h264_info *in = &h->codec->info;
    snprintf(o->codec, sizeof(o->codec), "%s", in->codec);
    o->width = in->width;
    o->height = in->height;
    o->codec_fps = in->fps;
  }
  memcpy(o->drops, h->drops, sizeof(o->drops));
  o->ready = !h->not_ready;
  /* Rate over the recorded publishes of the last 2 s. */
  unsigned n = h->rate_n < HUB_RATE ? h->rate_n : HUB_RATE, k = 0;
  uint64_t newest = 0, oldest = UINT64_MAX, now = h->mgr->now, bytes = 0,
           oldest_bytes = 0;
  for (unsigned i = 0; i < n; i++) {
    uint64_t t = h->rate[i];
    if (now - t > 2000) continue;
    k++;
    bytes += h->rate_bytes[i];
    if (t < oldest) oldest_bytes = h->rate_bytes[i];
    if (t > newest) newest = t;
    if (t < oldest) oldest = t;
  }
  if (k >= 2 && newest > oldest) {
    double span = (double)(newest - oldest);
    o->fps_in = (double)(k - 1) * 1000.0 / span;
    /* The bytes after the oldest publish, over the time they took. */
    o->bitrate = (double)(bytes - oldest_bytes) * 8000.0 / span;
  }
}

size_t sl_hub_subs(sl_hub *h, sl_sub_stats *out, size_t max) {
  size_t i = 0;
  for (struct sub *s = h->subs; s; s = s->next, i++)
    if (i < max) sl__sub_stats(s, &out[i]);
  return h->nsubs;
}
