/*
 * Hub subscribers: the policy queue of each viewer, the pull rule (take the
 * next frame only when the connection's queued bytes are at or below its
 * low watermark; for latest and keyframe, only when its queue is empty),
 * the framings (multipart MJPEG, WebSocket, chunked, raw), the limits that
 * close a subscriber, and its counters.
 *
 * What a stalled subscriber holds, by construction: its kernel socket
 * buffer (the unsent part capped by TCP_NOTSENT_LOWAT), the rest of one
 * frame in its output queue (latest, keyframe; send_low + one frame for
 * queue:N and lossless), and one pending reference to a frame that every
 * other subscriber shares.
 *
 * TCP_NOTSENT_LOWAT follows the frame size. The kernel's unsent queue is
 * what keeps the link busy while the loop wakes up to write the rest of a
 * frame, so it needs about one frame: less, and a fast viewer's frame takes
 * several sendmsg (and wakeups); more, and a slow viewer sits behind the
 * extra bytes, stale frames "latest" can no longer replace. A fixed 128 KiB
 * kept a 50 KB/s reader of a small-frame stream seconds behind live. So
 * the automatic value is the average of the last HUB_RATE (64) frames,
 * clamped to 16..128 KiB (a floor costs nothing for a frame smaller than
 * it, which goes in one sendmsg anyway, and a lower one gains little: at
 * 8 KiB a slow reader of 10 KB frames was as far behind, the rest being
 * its receive buffer and the kernel's skb granularity): a slow viewer is then about two frames behind
 * (the rest of one in its output queue, about one in the kernel; plus
 * whatever its own receive buffer holds). The average, not the largest
 * frame: an H.264 IDR is many P-frames, and sizing by it would keep a slow
 * viewer several P-frames behind all the time, while an IDR larger than
 * the value costs one more sendmsg once a GOP. Setting it is a syscall per
 * viewer, so it is re-applied only when the average moved by more than a
 * quarter of the value in force (or reached a bound), never per frame. A mux sets one value for
 * its socket: the largest of its subscriptions' (hub_mux.c).
 */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "hub.h"

#define DEFAULT_QUEUE_LEN 8
#define DEFAULT_STALL_MS 300000u
#define DEFAULT_LOSSLESS_STALL_MS 60000u
#define DEFAULT_HARD_BYTES (16u << 20)
#define DEFAULT_SOFT_BYTES (4u << 20)
#define DEFAULT_SOFT_SECS 30u
#define DEFAULT_RESYNC_MS 300u
/* H.264 frames vary in size (an IDR is many P-frames), and a drop costs a
 * whole GOP: a longer queue of references and more lag before resyncing. */
#define H264_QUEUE_LEN 60u
#define H264_RESYNC_MS 1000u
/* The automatic TCP_NOTSENT_LOWAT's bounds; 128 KiB was the fixed value
 * before it followed the frame size, and is used until the first frame. */
#define LOWAT_MIN (16u * 1024)
#define LOWAT_MAX (128u * 1024)
/* send_max before the first frame tells us the frame size. */
#define INITIAL_SEND_MAX (1u << 20)
/* Room kept for framing around a frame (multipart part headers). */
#define FRAME_OVERHEAD 256u

static void tap(sl_conn *c, int ev, void *ev_data, void *arg);
static int push(struct sub *s, struct frame *f);

static size_t pick(size_t v, size_t hub, size_t builtin) {
  return v ? v : hub ? hub : builtin;
}

static void resolve(struct sub *s, const sl_sub_opts *o, const sl_sub_opts *hd) {
  sl_sub_opts z = {0};
  int h264 = s->hub->o.kind == SL_KIND_H264;
  if (o == NULL) o = &z;
  s->o.policy = o->policy != SL_POLICY_INHERIT ? o->policy : hd->policy;
  if (s->o.policy == SL_POLICY_INHERIT) s->o.policy = SL_POLICY_LATEST;
  int lossy_latest = s->o.policy == SL_POLICY_LATEST;
  /* H.264: every lossy policy skips to the next IDR (hub.h, SL_KIND_H264). */
  if (h264 && s->o.policy != SL_POLICY_LOSSLESS) s->o.policy = SL_POLICY_KEYFRAME;
  s->o.queue_len = (unsigned)pick(o->queue_len, hd->queue_len,
                                  h264 ? H264_QUEUE_LEN : DEFAULT_QUEUE_LEN);
  s->o.fps = h264 ? 0 : o->fps > 0 ? o->fps : hd->fps;
  s->o.send_max = pick(o->send_max, hd->send_max, 0);
  s->o.stall_ms = (uint32_t)pick(o->stall_ms, hd->stall_ms,
                                 s->o.policy == SL_POLICY_LOSSLESS
                                     ? DEFAULT_LOSSLESS_STALL_MS
                                     : DEFAULT_STALL_MS);
  s->o.hard_bytes = pick(o->hard_bytes, hd->hard_bytes, lossy_latest ? SIZE_MAX : DEFAULT_HARD_BYTES);
  s->o.hard_ms = (uint32_t)pick(o->hard_ms, hd->hard_ms, 0);
  s->o.soft_bytes = pick(o->soft_bytes, hd->soft_bytes, lossy_latest ? SIZE_MAX : DEFAULT_SOFT_BYTES);
  s->o.soft_secs = (uint32_t)pick(o->soft_secs, hd->soft_secs, DEFAULT_SOFT_SECS);
  s->o.resync_ms = (uint32_t)pick(o->resync_ms, hd->resync_ms,
                                  h264 ? H264_RESYNC_MS : DEFAULT_RESYNC_MS);
  s->o.notsent_lowat = pick(o->notsent_lowat, hd->notsent_lowat, 0); /* 0: automatic */
}

void sl__set_lowat(sl_conn *c, size_t *cur, size_t v) {
  if (v == *cur || sl_conn_is_closing(c)) return;
  /* 0 restores the kernel's default (tcp_notsent_lowat(): the socket's
   * value, or the sysctl when it is 0). */
  int iv = v == SL_LOWAT_KERNEL ? 0 : v > INT32_MAX ? INT32_MAX : (int)v;
  if (sl_conn_sockopt(c, SL_OPT_NOTSENT_LOWAT, iv) == 0) *cur = v;
}

size_t sl__sub_lowat(const struct sub *s) {
  if (s->o.notsent_lowat) return s->o.notsent_lowat;
  return s->hub->lowat ? s->hub->lowat : LOWAT_MAX;
}

void sl__hub_follow_lowat(sl_hub *h) {
  unsigned n = h->rate_n < HUB_RATE ? h->rate_n : HUB_RATE;
  if (n == 0) return;
  size_t v = (size_t)(h->recent_bytes / n);
  if (v < LOWAT_MIN) v = LOWAT_MIN;
  if (v > LOWAT_MAX) v = LOWAT_MAX;
  size_t cur = h->lowat;
  /* Hysteresis: a quarter either way, or a bound reached (else a step
   * could stop short of the floor or the ceiling for good). */
  int bound = v == LOWAT_MIN || v == LOWAT_MAX;
  if (v == cur || (cur && !bound && v <= cur + cur / 4 && v >= cur - cur / 4)) return;
  h->lowat = v;
  for (struct sub *s = h->subs; s; s = s->next) {
    if (s->mux) sl__mux_update_lowat(s->mux);
    else if (s->o.notsent_lowat == 0) sl__set_lowat(s->c, &s->lowat, v);
  }
}

void sl__sub_update_send_max(struct sub *s) {
  if (s->mux) {
    sl__mux_update_send_max(s->mux);
    return;
  }
  if (!s->auto_send_max) return;
  sl_limits lim = s->c->lim_set;
  size_t largest = s->hub->largest;
  lim.send_max = largest ? 2 * largest + 65536 : INITIAL_SEND_MAX;
  lim.send_high = lim.send_low = 0; /* follow send_max */
  sl_conn_set_limits(s->c, &lim);
}

void sl__viewer_socket(sl_conn *c, uint32_t stall_ms) {
  /* A live stream is never idle; dead hosts are caught by keepalive and
   * TCP_USER_TIMEOUT (a frozen tab still ACKs, so it is not cut by them);
   * the kernel's unsent queue stays small so "latest" holds end to end
   * (TCP_NOTSENT_LOWAT, set by the caller: sl__set_lowat). */
  sl_conn_set_busy(c, 1);
  sl_conn_sockopt(c, SL_OPT_NODELAY, 1);
  sl_conn_sockopt(c, SL_OPT_KEEPALIVE, 60);
  /* Since Linux 5.11, TCP_USER_TIMEOUT also ends zero-window probing: a
   * frozen tab whose kernel ACKs every probe would be dropped after it.
   * Keep it past stall_ms, so that the stall policy decides (and counts). */
  sl_conn_sockopt(c, SL_OPT_USER_TIMEOUT,
                  stall_ms < INT32_MAX - 60000 ? (int)stall_ms + 60000 : INT32_MAX);
}

int sl__sub_new(sl_hub *h, sl_conn *c, int transport, const sl_sub_opts *o,
                sl_mux *x, uint32_t xid, struct sub **out) {
  struct sub *s = sl__calloc(sizeof(*s), SL_MEM_META);
  if (s == NULL) {
    /* A mux keeps its connection: the one subscription fails. */
    if (x == NULL) sl_conn_close(c, SL_CLOSE_NOW);
    return SL_ENOMEM;
  }
  s->hub = h;
  s->c = c;
  s->id = c->id;
  s->mux = x;
  s->mux_id = xid;
  s->transport = transport;
  resolve(s, o, &h->o.sub);
  if (out) *out = s;
  if (x) goto joined; /* the mux set the connection up once, for all */
  sl_limits lim = c->lim_set;
  lim.stall_ms = s->o.stall_ms;
  lim.send_high = lim.send_low = 0;
  s->auto_send_max = s->o.send_max == 0;
  lim.send_max = s->auto_send_max
                     ? (h->largest ? 2 * h->largest + 65536 : INITIAL_SEND_MAX)
                     : s->o.send_max;
  sl_conn_set_limits(c, &lim);
  sl__viewer_socket(c, s->o.stall_ms);
  s->lowat = SL_LOWAT_KERNEL; /* what a new socket has */
  sl__set_lowat(c, &s->lowat, sl__sub_lowat(s));
joined:
  s->joined_ms = c->mgr->now;
  s->join_seq = s->done_seq = h->seq;
  s->next = h->subs;
  if (h->subs) h->subs->prev = s;
  h->subs = s;
  h->nsubs++;
  h->joins++;
  if (x == NULL) {
    c->tap = tap;
    c->tap_arg = s;
  } else {
    sl__mux_link(x, s);
  }
  sl__hub_emit(h, SL_HUB_JOIN, s, 0, 0);
  if (h->o.kind == SL_KIND_H264) {
    /* It starts at once from the cached GOP: its IDR, then every frame up
     * to the newest, a burst that does not count as lag or against the
     * queue (the lag rule counts from the join for these frames). Without
     * a cached GOP it waits for the next IDR. */
    s->resync = 1;
    for (struct frame *f = h->gop_head; f; f = f->gop_next) {
      if (push(s, f) != 0) {
        sl__sub_drop_pending(s, -1);
        s->burst = 0;
        break;
      }
      s->burst++;
      s->resync = 0;
    }
    sl__sub_pump(s);
  } else if (h->latest) {
    /* A new viewer starts with the latest frame at once. */
    sl__sub_offer(s, h->latest);
    sl__sub_pump(s);
  }
  return 0;
}

/* ---- the policy queue ----------------------------------------------- */

static void count_drop(struct sub *s, int reason) {
  s->drops[reason]++;
  s->hub->drops[reason]++;
}

static void pop_front(struct sub *s, int reason) {
  struct pend *p = s->ph;
  s->ph = p->next;
  if (s->ph == NULL) s->pt = NULL;
  s->pn--;
  if (s->burst) s->burst--; /* burst frames are the oldest pending */
  s->pbytes -= sl_buf_len(p->f->buf);
  sl__hub_unpin(s->hub, p->f);
  if (reason >= 0) count_drop(s, reason);
  sl__free(p, sizeof(*p), SL_MEM_META);
}

void sl__sub_drop_pending(struct sub *s, int reason) {
  while (s->ph) pop_front(s, reason);
}

/* A skip as the viewer sees it: counted once, until it receives a frame
 * again. A stalled viewer is found behind again at every keyframe it cannot
 * take (the one in flight stays old): that is still one gap in its stream,
 * and one resync. */
static void mark_gap(struct sub *s) {
  if (s->gap) return;
  s->gap = 1;
  s->resyncs++;
  s->hub->resyncs++;
}

/* keyframe: a subscriber is behind on any drop. The pending frames up to
 * the next keyframe depend on what was dropped: they go too, and with none
 * left it waits for the next keyframe published. Waiting is not yet a gap:
 * one is marked (and counted) when a frame is actually skipped for it, so
 * a viewer found behind whose next frame is a keyframe anyway sees none. */
static void start_resync(struct sub *s) { s->resync = 1; }

static void skip_to_key(struct sub *s) {
  if (s->o.policy != SL_POLICY_KEYFRAME && s->hub->o.kind != SL_KIND_H264) return;
  mark_gap(s);
  while (s->ph && !(s->ph->f->flags & SL_FRAME_KEY)) pop_front(s, SL_DROP_RESYNC);
  if (s->ph == NULL) start_resync(s);
}

void sl__sub_drop_for_budget(struct sub *s) {
  int dropped = 0;
  /* The latest frame (always the newest pending one) is shared by every
   * viewer that is not behind: dropping it would free nothing. */
  while (s->ph && s->ph->f != s->hub->latest) {
    pop_front(s, SL_DROP_BUDGET);
    dropped = 1;
  }
  if (dropped) skip_to_key(s);
}

static int push(struct sub *s, struct frame *f) {
  struct pend *p = sl__alloc(sizeof(*p), SL_MEM_META);
  if (p == NULL) return SL_ENOMEM;
  p->f = f;
  p->next = NULL;
  f->pins++;
  if (s->pt) s->pt->next = p;
  else s->ph = p;
  s->pt = p;
  s->pn++;
  s->pbytes += sl_buf_len(f->buf);
  return 0;
}

void sl__sub_evict(struct sub *s, int reason) {
  sl_conn *c = s->c;
  if (s->evict) return;
  s->evict = reason;
  SL_DEBUG("hub %s: evict viewer %s (conn %llu, %s): %s, %zu bytes queued", s->hub->name,
           c->peer_str, (unsigned long long)c->id, sl_transport_name(s->transport),
           sl_evict_reason_name(reason), c->outq.queued);
  if (s->mux && reason == SL_EVICT_HUB) {
    /* The stream ends, not the socket: the mux's other subscriptions go
     * on (the hub unlinks this one right after). */
    sl__sub_drop_pending(s, -1);
    return;
  }
  /* The hub goes and an MJPEG viewer has all it was sent: end the body
   * properly, the last part's CRLF then the close delimiter (RFC 2046
   * section 5.1.1), and close once that is written. */
  if (reason == SL_EVICT_HUB && s->transport == SL_TRANSPORT_MJPEG && c->outq.queued == 0) {
    static const char end[] = "\r\n--sluiceframe--\r\n";
    size_t skip = s->frames_sent ? 0 : 2;
    if (sl_send(c, end + skip, sizeof(end) - 1 - skip) == 0) {
      sl_conn_close_with(c, SL_CLOSE_FLUSH, SL_CLOSE_EVICTED);
      sl__sub_drop_pending(s, -1);
      return;
    }
  }
  /* RST: the kernel frees the socket buffers at once. */
  sl_conn_close_with(c, SL_CLOSE_RESET, SL_CLOSE_EVICTED);
  /* A reset discards the unsent output anyway: release it and the pending
   * references now, not when the connection is reaped at the end of the
   * iteration, so the frames they pinned can go at the next prune. The
   * budget (and a tick running later in the same iteration) then sees the
   * memory given back and evicts no second viewer for it. */
  sl__outq_clear(&c->outq, &c->mgr->acct);
  sl__sub_drop_pending(s, -1);
  if (s->mux) sl__mux_evicted(s->mux);
}

/* Written bytes tell which frames handed to the connection are complete. */
void sl__sub_complete(struct sub *s) {
  uint64_t written = s->c->bytes_out;
  unsigned k = 0;
  while (k < s->nfl && s->fl[k].end <= written) s->done_seq = s->fl[k++].seq;
  if (k) {
    memmove(s->fl, s->fl + k, (s->nfl - k) * sizeof(s->fl[0]));
    s->nfl -= k;
  }
}

/* Behind by the oldest frame handed or pending; for frames published
 * before the viewer joined (the frame or GOP it started with), counted
 * from the join: it could not have had them earlier. */
uint64_t sl__sub_lag_ms(const struct sub *s) {
  uint64_t now = s->hub->mgr->now, ts;
  if (s->nfl) ts = s->fl[0].ts;
  else if (s->ph) ts = s->ph->f->ts;
  else return 0;
  if (ts < s->joined_ms) ts = s->joined_ms;
  return now > ts ? now - ts : 0;
}

size_t sl__sub_lag_bytes(const struct sub *s) {
  return s->c->outq.queued + s->pbytes;
}

int sl__sub_stalled(const struct sub *s, uint64_t for_ms) {
  const sl_conn *c = s->c;
  return c->outq.queued > 0 && c->mgr->now - c->last_progress_ms >= for_ms;
}

void sl__sub_offer(struct sub *s, struct frame *f) {
  if (sl_conn_is_closing(s->c) || s->evict) return;
  if (s->o.fps > 0 && s->next_due && f->ts + 2 < s->next_due) {
    count_drop(s, SL_DROP_FPS);
    return;
  }
  switch (s->o.policy) {
    case SL_POLICY_LATEST:
      if (s->pn) pop_front(s, SL_DROP_REPLACED);
      break;
    case SL_POLICY_QUEUE:
      while (s->pn >= s->o.queue_len) pop_front(s, SL_DROP_QUEUE);
      break;
    case SL_POLICY_KEYFRAME:
      if (!s->resync && (s->pn - s->burst >= s->o.queue_len ||
                         sl__sub_lag_ms(s) > s->o.resync_ms)) {
        if (s->pn) mark_gap(s);
        sl__sub_drop_pending(s, SL_DROP_RESYNC);
        start_resync(s);
      }
      break;
    default: /* lossless: never drop */
      break;
  }
  /* Waiting for a keyframe (keyframe policy, or an H.264 viewer that has
   * not started yet or lost a frame). */
  if (s->resync) {
    if (!(f->flags & SL_FRAME_KEY)) {
      /* Skipped: a gap in what it receives (before its first frame, a
       * viewer that joined without a cached GOP has no gap yet). */
      if (s->frames_sent) mark_gap(s);
      count_drop(s, SL_DROP_RESYNC);
      return;
    }
    s->resync = 0;
  }
  if (push(s, f) != 0) return;
  if (s->o.policy == SL_POLICY_LOSSLESS && s->pn >= s->o.queue_len) s->full = 1;
  if (sl__sub_lag_bytes(s) > s->o.hard_bytes) sl__sub_evict(s, SL_EVICT_HARD);
}

/* ---- sending -------------------------------------------------------- */

static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

/* The header of a WebSocket media message: on a multiplexed connection
 * the 4-byte subscription id (docs/mux.md), then the 16 bytes of
 * docs/h264.md. Returns its length (16 or 20). */
#define WS_HDR_MAX 20
static size_t ws_header(unsigned char hdr[WS_HDR_MAX], int type, const struct sub *s,
                        const struct frame *f) {
  size_t o = 0;
  if (s->mux) {
    put_be32(hdr, s->mux_id);
    o = 4;
  }
  unsigned char *h = hdr + o;
  memset(h, 0, 16);
  h[0] = (unsigned char)type;
  h[1] = (unsigned char)(((f->flags & SL_FRAME_KEY) ? 1 : 0) | (s->gap ? 2 : 0));
  put_be32(h + 4, (uint32_t)f->seq);
  put_be32(h + 8, (uint32_t)(f->wall_ms >> 32));
  put_be32(h + 12, (uint32_t)f->wall_ms);
  return o + 16;
}

/* Type 0 (a JPEG, or an MJPEG stream's opaque frame) exists on
 * multiplexed connections only: a single-stream WebSocket sends the bare
 * picture. */
enum { WS_MSG_JPEG = 0, WS_MSG_AU = 1, WS_MSG_INIT = 2, WS_MSG_FRAGMENT = 3 };

/* The configuration text message (shared). A multiplexed subscriber's
 * names its subscription: {"type":"config","id":N, and the shared message
 * from its first member on, joined into one copied text (sl_ws_sendv takes
 * text as one part only, since it checks UTF-8 over the whole message; the
 * shared message is under 160 bytes, hub_h264.c config_msg). */
#define CONFIG_HEAD "{\"type\":\"config\","
static int send_config(struct sub *s, sl_buf *msg) {
  size_t len = sl_buf_len(msg), skip = sizeof(CONFIG_HEAD) - 1;
  if (s->mux == NULL || len < skip || memcmp(sl_buf_cdata(msg), CONFIG_HEAD, skip) != 0)
    return sl_ws_send_buf(s->c, SL_WS_TEXT, msg, 0, len);
  char t[256];
  int n = snprintf(t, sizeof(t), CONFIG_HEAD "\"id\":%lu,", (unsigned long)s->mux_id);
  if (n < 0 || (size_t)n + (len - skip) > sizeof(t)) return SL_EINVAL;
  memcpy(t + n, (const char *)sl_buf_cdata(msg) + skip, len - skip);
  return sl_ws_send(s->c, SL_WS_TEXT, t, (size_t)n + (len - skip));
}

/* fMP4: the init segment when the configuration is new to this viewer,
 * then the frame's fragment; both built once for every viewer. Over HTTP a
 * configuration change ends the response once it is written (a file gets
 * one moov; the player reconnects and reads the new one). */
static int send_fmp4(struct sub *s, struct frame *f) {
  sl_conn *c = s->c;
  sl_hub *h = s->hub;
  int ws = s->transport == SL_TRANSPORT_WS_FMP4, rc;
  if (s->codec_gen != f->codec->gen) {
    if (!ws && s->codec_gen != 0) {
      sl_conn_close(c, SL_CLOSE_FLUSH);
      return SL_ECLOSING;
    }
    sl_buf *init = sl__h264_init(h, f->codec);
    if (init == NULL) return SL_ENOMEM;
    if (ws) {
      rc = send_config(s, f->codec->msg);
      if (rc) return rc;
      unsigned char hdr[WS_HDR_MAX];
      size_t hl = ws_header(hdr, WS_MSG_INIT, s, f);
      hdr[hl - 15] = 0; /* flags */
      sl_part parts[2] = {{hdr, NULL, 0, hl}, {NULL, init, 0, sl_buf_len(init)}};
      rc = sl_ws_sendv(c, SL_WS_BINARY, parts, 2);
    } else {
      rc = sl_send_buf(c, init, 0, sl_buf_len(init));
    }
    if (rc) return rc;
    s->codec_gen = f->codec->gen;
  }
  sl_buf *frag = sl__h264_fragment(h, f);
  if (frag == NULL) return SL_ENOMEM;
  if (!ws) return sl_send_buf(c, frag, 0, sl_buf_len(frag));
  unsigned char hdr[WS_HDR_MAX];
  size_t hl = ws_header(hdr, WS_MSG_FRAGMENT, s, f);
  sl_part parts[2] = {{hdr, NULL, 0, hl}, {NULL, frag, 0, sl_buf_len(frag)}};
  return sl_ws_sendv(c, SL_WS_BINARY, parts, 2);
}

/* H.264: the access unit, behind the parameter sets when it is a keyframe
 * that lacks them in-band (shared references both). Over a WebSocket: the
 * configuration message first when it changed for this viewer, then one
 * binary message of a 16-byte header (docs/h264.md) and the unit. The
 * only per-viewer bytes are the headers. */
static int send_h264(struct sub *s, struct frame *f) {
  sl_conn *c = s->c;
  size_t len = sl_buf_len(f->buf);
  if (s->transport == SL_TRANSPORT_FMP4 || s->transport == SL_TRANSPORT_WS_FMP4)
    return send_fmp4(s, f);
  sl_buf *ps = (f->flags & SL_FRAME_KEY) && !f->has_ps ? f->codec->ps : NULL;
  size_t pslen = ps ? sl_buf_len(ps) : 0;
  int rc;
  switch (s->transport) {
    case SL_TRANSPORT_WS: {
      if (s->codec_gen != f->codec->gen) {
        rc = send_config(s, f->codec->msg);
        if (rc) return rc;
        s->codec_gen = f->codec->gen;
      }
      unsigned char hdr[WS_HDR_MAX];
      size_t hl = ws_header(hdr, WS_MSG_AU, s, f);
      sl_part parts[3] = {{hdr, NULL, 0, hl}, {NULL, ps, 0, pslen}, {NULL, f->buf, 0, len}};
      if (ps == NULL) parts[1] = parts[2];
      return sl_ws_sendv(c, SL_WS_BINARY, parts, ps ? 3 : 2);
    }
    case SL_TRANSPORT_CHUNKED:
      if (ps && (rc = sl_http_write_buf(c, ps, 0, pslen)) != 0) return rc;
      return sl_http_write_buf(c, f->buf, 0, len);
    default: {
      sl_part parts[2] = {{NULL, ps, 0, pslen}, {NULL, f->buf, 0, len}};
      return ps ? sl_sendv(c, parts, 2) : sl_send_buf(c, f->buf, 0, len);
    }
  }
}

static int send_frame(struct sub *s, struct frame *f) {
  sl_conn *c = s->c;
  size_t len = sl_buf_len(f->buf);
  if (f->codec) return send_h264(s, f);
  switch (s->transport) {
    case SL_TRANSPORT_MJPEG: {
      /* X-Unix-Ms, the publish time on the server's wall clock, is what a
       * relay downstream (an edge) measures its lag to this server with;
       * X-Timestamp-Ms is the capture time on this manager's clock.
       * The CRLF that ends the previous part opens this part's head (in
       * RFC 2046 section 5.1.1 it belongs to the delimiter anyway): one
       * owned chunk and one segment per part, not two, and a viewer idle
       * between frames holds none. The first part has none; the bytes on
       * the wire are the same. A client delimits the payload by its
       * Content-Length, or by the delimiter that the next part brings. */
      char hdr[256];
      int n = snprintf(hdr, sizeof(hdr),
                       "%s--sluiceframe\r\nContent-Type: image/jpeg\r\n"
                       "Content-Length: %zu\r\nX-Frame: %llu\r\nX-Timestamp-Ms: %llu\r\n"
                       "X-Unix-Ms: %llu\r\n\r\n",
                       s->frames_sent ? "\r\n" : "", len, (unsigned long long)f->seq,
                       (unsigned long long)f->ts, (unsigned long long)f->wall_ms);
      sl_part parts[2] = {{hdr, NULL, 0, (size_t)n}, {NULL, f->buf, 0, len}};
      return sl_sendv(c, parts, 2);
    }
    case SL_TRANSPORT_WS: {
      if (s->mux == NULL) return sl_ws_send_buf(c, SL_WS_BINARY, f->buf, 0, len);
      unsigned char hdr[WS_HDR_MAX];
      size_t hl = ws_header(hdr, WS_MSG_JPEG, s, f);
      sl_part parts[2] = {{hdr, NULL, 0, hl}, {NULL, f->buf, 0, len}};
      return sl_ws_sendv(c, SL_WS_BINARY, parts, 2);
    }
    case SL_TRANSPORT_CHUNKED:
      return sl_http_write_buf(c, f->buf, 0, len);
    default:
      return sl_send_buf(c, f->buf, 0, len);
  }
}

void sl__sub_send_text(struct sub *s, sl_buf *msg) {
  sl_conn *c = s->c;
  if (sl_conn_is_closing(c) || !sl_ws_is_open(c)) return; /* leaving */
  /* Bounded like the frames: by its send_max and the manager's budget. A
   * refusal is a counted drop; the bytes taken count in its lag (hard and
   * soft limits) like any other. */
  int rc = sl_ws_send_buf(c, SL_WS_TEXT, msg, 0, sl_buf_len(msg));
  if (rc) {
    s->text_drops++;
    s->hub->text_drops++;
    SL_DEBUG("hub %s: text message of %zu bytes to %s dropped: %s", s->hub->name,
             sl_buf_len(msg), c->peer_str, sl_err_name(rc));
    return;
  }
  s->texts_sent++;
  s->hub->texts_sent++;
}

/* Pull: the next frame goes only whole, and only once the connection is
 * down to `low`. For the live policies `low` is 0 (the queue is empty): a
 * frame queued behind the rest of the in-flight one can no longer be
 * replaced, so a viewer that stalls there would, on resuming, first get
 * that stale frame (and hold it all along). The kernel's unsent queue
 * (TCP_NOTSENT_LOWAT) keeps the link busy meanwhile, and the next frame is
 * handed in the same flush that empties the queue. */
int sl__sub_take(struct sub *s, size_t low) {
  sl_conn *c = s->c;
  while (s->ph && !sl_conn_is_closing(c)) {
    struct frame *f = s->ph->f;
    size_t need = sl_buf_len(f->buf) + FRAME_OVERHEAD;
    if (need > c->lim.send_max) {
      pop_front(s, SL_DROP_TOO_BIG);
      skip_to_key(s);
      continue;
    }
    if (c->outq.queued > low || sl_conn_room(c) < need) return -1;
    if (s->nfl == SUB_INFLIGHT) {
      /* Tiny frames on a fast queue: forget the oldest record (it only
       * feeds the lag figure). */
      memmove(s->fl, s->fl + 1, (SUB_INFLIGHT - 1) * sizeof(s->fl[0]));
      s->nfl--;
    }
    size_t before = c->outq.queued;
    int rc = send_frame(s, f);
    if (rc == SL_EBUDGET) {
      pop_front(s, SL_DROP_BUDGET);
      continue;
    }
    if (rc) return -1;
    s->gap = 0;
    size_t wire = c->outq.queued - before;
    s->fl[s->nfl].seq = f->seq;
    s->fl[s->nfl].ts = f->ts;
    s->fl[s->nfl].end = c->bytes_out + c->outq.queued;
    s->nfl++;
    s->frames_sent++;
    s->bytes_sent += wire;
    if (s->o.fps > 0) {
      /* Evenly spaced: advance on a grid, resynchronise after a gap. */
      uint64_t iv = (uint64_t)(1000.0 / s->o.fps);
      if (s->next_due && f->ts < s->next_due + iv) s->next_due += iv;
      else s->next_due = f->ts + iv;
    }
    pop_front(s, -1);
    if (s->full && s->pn < s->o.queue_len) s->full = 0;
    return 1;
  }
  return 0;
}

void sl__sub_pump(struct sub *s) {
  if (s->mux) {
    sl__mux_pump(s->mux);
    return;
  }
  int live = s->o.policy == SL_POLICY_LATEST || s->o.policy == SL_POLICY_KEYFRAME;
  sl__sub_complete(s);
  while (sl__sub_take(s, live ? 0 : s->c->lim.send_low) == 1) {
  }
}

/* The periodic evaluation: limits in time, keyframe resync, stall. */
void sl__sub_check(struct sub *s) {
  uint64_t now = s->hub->mgr->now;
  sl__sub_complete(s);
  if (now - s->rate_ms >= 1000) {
    if (s->rate_ms)
      s->fps = (double)(s->frames_sent - s->rate_frames) * 1000.0 / (double)(now - s->rate_ms);
    s->rate_ms = now;
    s->rate_frames = s->frames_sent;
  }
  if (sl_conn_is_closing(s->c)) return;
  uint64_t lag = sl__sub_lag_ms(s);
  size_t bytes = sl__sub_lag_bytes(s);
  if ((s->o.hard_ms && lag > s->o.hard_ms) || bytes > s->o.hard_bytes) {
    sl__sub_evict(s, SL_EVICT_HARD);
    return;
  }
  if (bytes > s->o.soft_bytes) {
    if (!s->soft_since) s->soft_since = now ? now : 1;
    else if (now - s->soft_since >= (uint64_t)s->o.soft_secs * 1000u) {
      sl__sub_evict(s, SL_EVICT_SOFT);
      return;
    }
  } else {
    s->soft_since = 0;
  }
  if (s->o.policy == SL_POLICY_KEYFRAME && !s->resync && s->pn &&
      lag > s->o.resync_ms) {
    mark_gap(s);
    sl__sub_drop_pending(s, SL_DROP_RESYNC);
    start_resync(s);
  }
}

static void tap(sl_conn *c, int ev, void *ev_data, void *arg) {
  struct sub *s = arg;
  (void)c;
  (void)ev_data;
  if (ev == SL_EV_WRITE || ev == SL_EV_DRAIN) {
    sl__sub_pump(s);
    if (s->o.policy == SL_POLICY_LOSSLESS) sl__hub_update_ready(s->hub);
  } else if (ev == SL_EV_CLOSE) {
    sl__hub_remove_sub(s->hub, s);
  }
}

void sl__sub_stats(const struct sub *s, sl_sub_stats *o) {
  memset(o, 0, sizeof(*o));
  o->id = s->id;
  snprintf(o->peer, sizeof(o->peer), "%s", sl_conn_peer(s->c));
  o->transport = s->transport;
  o->policy = s->o.policy;
  o->stalled = sl__sub_stalled(s, s->hub->o.stall_evict_ms);
  o->fps_cap = s->o.fps;
  o->fps = s->fps;
  o->frames_sent = s->frames_sent;
  o->bytes_sent = s->bytes_sent;
  memcpy(o->drops, s->drops, sizeof(o->drops));
  o->lag_ms = sl__sub_lag_ms(s);
  o->lag_frames = (s->nfl || s->ph) ? s->hub->seq - s->done_seq : 0;
  o->queued = s->c->outq.queued;
  o->pending = s->pn;
  o->joined_ms = s->joined_ms;
  o->last_progress_ms = s->c->last_progress_ms;
  o->send_max = s->c->lim.send_max;
  o->resyncs = s->resyncs;
  o->muxed = s->mux != NULL;
  o->mux_id = s->mux_id;
  o->texts_sent = s->texts_sent;
  o->text_drops = s->text_drops;
  size_t lw = s->mux ? sl__mux_lowat(s->mux) : s->lowat;
  o->notsent_lowat = lw == SL_LOWAT_KERNEL ? 0 : lw;
}
