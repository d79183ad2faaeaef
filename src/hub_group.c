/*
 * Hub groups: one stream fanned out to hubs of several managers, each run
 * by its own thread (include/sluice.h, "Hub groups").
 *
 * Locks, in the only order they are ever taken: the group's `lock`, then
 * a member's inbound-queue lock (inside sl__hub_publish_buf), then that
 * member's manager's wakeup lock. Nothing here holds the group's lock
 * while a hub runs viewers or handlers: the member on the caller's own
 * loop is published to after the lock is dropped, since its handlers may
 * call back into the group.
 *
 * Lifetime. The group's memory has one reference for its owner and one
 * per hub that joined it (h->group), counted under `lock`. A member's
 * sl_hub_free leaves the list under the lock before anything else, so a
 * publisher that holds the lock only ever sees live hubs, whose managers
 * are alive too. sl_hub_group_free empties the list but the memory stays
 * until each former member's free has dropped its reference.
 *
 * H.264 gaps. A member that misses a frame would hand its viewers frames
 * that reference the missing one. The group keeps, per member and under
 * its lock, `ggap`: once set, frames for that member are withheld until
 * the next IDR, which goes after the current parameter sets (kept here as
 * Annex-B, `ps`), since a lost buffer may have carried a new
 * configuration. A member added to a running H.264 group starts the same
 * way.
 */
#include <stdatomic.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "hub.h"
#include "utf8.h"

struct sl_hub_group {
  pthread_mutex_t lock;
  int refs;               /* the owner + each hub whose `group` is this */
  int owner;              /* sl_hub_group_free not called yet */
  int kind;               /* of the members; -1 before the first */
  sl_hub *members;
  size_t nmembers;
  sl_buf *ps;             /* H.264: the parameter sets in force */
  uint64_t frames_in, texts_in, lost, skipped, resyncs, texts_lost;
  uint64_t seq;           /* the last frame's number, the same in every member */
};

/* Under g->lock; returns 1 when the caller must free the group. */
static int group_unref_locked(sl_hub_group *g) { return --g->refs == 0; }

static void group_destroy(sl_hub_group *g) {
  sl_buf_unref(g->ps);
  pthread_mutex_destroy(&g->lock);
  sl__free(g, sizeof(*g), SL_MEM_META);
}

sl_hub_group *sl_hub_group_new(int *err) {
  sl_hub_group *g = sl__calloc(sizeof(*g), SL_MEM_META);
  if (g == NULL) {
    if (err) *err = SL_ENOMEM;
    return NULL;
  }
  pthread_mutex_init(&g->lock, NULL);
  g->refs = 1;
  g->owner = 1;
  g->kind = -1;
  return g;
}

/* Under g->lock. */
static void unlink_member(sl_hub_group *g, sl_hub *h) {
  for (sl_hub **pp = &g->members; *pp; pp = &(*pp)->gnext)
    if (*pp == h) {
      *pp = h->gnext;
      break;
    }
  h->gnext = NULL;
  h->gmember = 0;
  g->nmembers--;
  if (g->nmembers == 0) g->kind = -1;
}

void sl_hub_group_free(sl_hub_group *g) {
  if (g == NULL) return;
  pthread_mutex_lock(&g->lock);
  while (g->members) unlink_member(g, g->members);
  g->owner = 0;
  int last = group_unref_locked(g);
  pthread_mutex_unlock(&g->lock);
  if (last) group_destroy(g);
}

int sl_hub_group_add(sl_hub_group *g, sl_hub *h) {
  if (g == NULL || h == NULL) return SL_EINVAL;
  if (h->group) return SL_EEXIST;
  pthread_mutex_lock(&g->lock);
  if (!g->owner || (g->kind >= 0 && g->kind != h->o.kind)) {
    pthread_mutex_unlock(&g->lock);
    return SL_EINVAL;
  }
  g->kind = h->o.kind;
  /* Numbers go on from the larger of the two histories. */
  if (h->seq > g->seq) g->seq = h->seq;
  h->seq = g->seq;
  h->gnext = g->members;
  g->members = h;
  g->nmembers++;
  h->gmember = 1;
  h->ggap = h->o.kind == SL_KIND_H264;
  g->refs++;
  h->group = g;
  pthread_mutex_unlock(&g->lock);
  return 0;
}

/* Take `h` out and let go of its group: sl_hub_group_remove, and
 * sl_hub_free (where the group may already be gone from its owner). */
static int leave(sl_hub *h) {
  sl_hub_group *g = h->group;
  if (g == NULL) return SL_ENOENT;
  pthread_mutex_lock(&g->lock);
  if (h->gmember) unlink_member(g, h);
  h->group = NULL;
  int last = group_unref_locked(g);
  pthread_mutex_unlock(&g->lock);
  if (last) group_destroy(g);
  return 0;
}

int sl_hub_group_remove(sl_hub_group *g, sl_hub *h) {
  if (g == NULL || h == NULL || h->group != g) return SL_ENOENT;
  return leave(h);
}

void sl__hub_group_leave(sl_hub *h) { (void)leave(h); }

/* What one member gets for one frame, decided under the group's lock. */
enum { SEND_SKIP, SEND_FRAME, SEND_PS_FRAME };

/* H.264: the parameter sets the frame carries become the group's, so a
 * member resuming after a loss gets the configuration in force. Under the
 * lock; out of memory keeps the previous ones (the member's hub then
 * refuses frames it cannot decode, as for any stream). */
static void take_ps(sl_hub_group *g, const struct h264_scan *sc) {
  sl_buf *ps = sl__h264_ps_bytes(sc);
  if (ps == NULL) return;
  if (g->ps && sl_buf_len(g->ps) == sl_buf_len(ps) &&
      memcmp(sl_buf_cdata(g->ps), sl_buf_cdata(ps), sl_buf_len(ps)) == 0) {
    sl_buf_unref(ps);
    return;
  }
  sl_buf_unref(g->ps);
  g->ps = ps;
}

static int decide(sl_hub_group *g, sl_hub *h, const struct h264_scan *sc) {
  if (!h->ggap) return SEND_FRAME;
  if (!sc->idr) {
    g->skipped++;
    atomic_fetch_add(&h->gskipped, 1);
    return SEND_SKIP;
  }
  return sc->sps && sc->pps ? SEND_FRAME : SEND_PS_FRAME;
}

/* Hand `frame` (an alias made here) to `h`; `ps` first when asked. 0 or
 * the error of the hand-off that failed. `queue`: through the inbound
 * queue even on the member's own loop thread. */
static int deliver(sl_hub *h, int what, sl_buf *ps, sl_buf *frame,
                   uint64_t ts, unsigned flags, int queue, uint64_t seq) {
  int rc = 0;
  if (what == SEND_PS_FRAME && ps) {
    sl_buf *a = sl__buf_alias(ps);
    if (a == NULL) return SL_ENOMEM;
    rc = sl__hub_publish_buf(h, a, 0, 0, queue, 0); /* no picture: no number */
    sl_buf_unref(a);
    if (rc) return rc;
  }
  sl_buf *a = sl__buf_alias(frame);
  if (a == NULL) return SL_ENOMEM;
  rc = sl__hub_publish_buf(h, a, ts, flags, queue, seq);
  sl_buf_unref(a);
  return rc;
}

/* Under the lock: the outcome of a hand-off to `h`. Only a full queue or
 * no memory is a loss; SL_EPROTO/SL_EAGAIN from a member on the caller's
 * loop (a frame before any configuration, parameter sets only) are the
 * stream's own business, as with sl_hub_publish. */
static int lost_rc(int rc) { return rc == SL_EFULL || rc == SL_ENOMEM; }

static void account(sl_hub_group *g, sl_hub *h, int what, int rc, int h264,
                    int idr) {
  if (lost_rc(rc)) {
    g->lost++;
    atomic_fetch_add(&h->glost, 1);
    if (h264) h->ggap = 1;
  } else if (what != SEND_SKIP && h->ggap && idr) {
    h->ggap = 0;
    g->resyncs++;
    atomic_fetch_add(&h->gresyncs, 1);
  }
}

/* Members on the caller's own loop are published to after the lock is
 * dropped (their handlers may call back into the group); past this many,
 * through their inbound queue like the others. Several happen only before
 * the loops start, when one thread made every manager. */
#define LOCAL_MAX 8

struct local {
  sl_hub *h;
  int what;
};


int sl_hub_group_publish(sl_hub_group *g, sl_buf *frame, uint64_t ts_ms,
                         unsigned flags) {
  if (g == NULL || frame == NULL) return SL_EINVAL;
  struct h264_scan sc;
  struct local loc[LOCAL_MAX];
  unsigned nloc = 0;
  memset(&sc, 0, sizeof(sc));
  flags &= ~HUB_INQ_TEXT;
  pthread_mutex_lock(&g->lock);
  int h264 = g->kind == SL_KIND_H264;
  if (h264) {
    sl__h264_scan(sl_buf_cdata(frame), sl_buf_len(frame), &sc);
    if (sc.sps && sc.pps) take_ps(g, &sc);
  } else {
    sc.idr = 1; /* every MJPEG frame stands alone */
  }
  g->frames_in++;
  /* A buffer of parameter sets only is no picture: members number none. */
  uint64_t seq = !h264 || sc.vcl ? ++g->seq : 0;
  int delivered = 0, tried = 0;
  for (sl_hub *h = g->members; h; h = h->gnext) {
    int what = decide(g, h, &sc);
    if (what == SEND_SKIP) continue;
    tried++;
    if (nloc < LOCAL_MAX && sl__on_loop_thread(h->mgr)) {
      /* Assume it goes through; undone below if it does not. */
      loc[nloc++] = (struct local){h, what};
      account(g, h, what, 0, h264, sc.idr);
      continue;
    }
    int rc = deliver(h, what, g->ps, frame, ts_ms, flags, 1, seq);
    account(g, h, what, rc, h264, sc.idr);
    if (!lost_rc(rc)) delivered++;
  }
  sl_buf *ps = nloc && g->ps ? sl_buf_ref(g->ps) : NULL;
  pthread_mutex_unlock(&g->lock);
  /* Only this thread may free these hubs (they are its loop's), so each
   * is still alive here; a handler run by one of them may have taken
   * another out of the group, which the re-check under the lock sees. */
  for (unsigned i = 0; i < nloc; i++) {
    int rc = deliver(loc[i].h, loc[i].what, ps, frame, ts_ms, flags, 0, seq);
    if (!lost_rc(rc)) {
      delivered++;
      continue;
    }
    pthread_mutex_lock(&g->lock);
    if (loc[i].h->gmember) {
      g->lost++;
      atomic_fetch_add(&loc[i].h->glost, 1);
      if (h264) loc[i].h->ggap = 1;
    }
    pthread_mutex_unlock(&g->lock);
  }
  sl_buf_unref(ps);
  return tried && !delivered ? SL_ENOMEM : 0;
}

int sl_hub_group_publish_text(sl_hub_group *g, const char *text, size_t len) {
  if (g == NULL || (text == NULL && len) || !sl__utf8_valid(text, len)) return SL_EINVAL;
  sl_buf *b = sl_buf_from(text, len);
  if (b == NULL) return SL_ENOMEM;
  sl_hub *loc[LOCAL_MAX];
  unsigned nloc = 0;
  pthread_mutex_lock(&g->lock);
  g->texts_in++;
  for (sl_hub *h = g->members; h; h = h->gnext) {
    if (nloc < LOCAL_MAX && sl__on_loop_thread(h->mgr)) {
      loc[nloc++] = h;
      continue;
    }
    sl_buf *a = sl__buf_alias(b);
    int rc = a ? sl__hub_publish_buf(h, a, 0, HUB_INQ_TEXT, 1, 0) : SL_ENOMEM;
    sl_buf_unref(a);
    if (rc) {
      g->texts_lost++;
      atomic_fetch_add(&h->gtexts_lost, 1);
    }
  }
  pthread_mutex_unlock(&g->lock);
  for (unsigned i = 0; i < nloc; i++) {
    sl_buf *a = sl__buf_alias(b);
    if (a) (void)sl__hub_publish_buf(loc[i], a, 0, HUB_INQ_TEXT, 0, 0);
    sl_buf_unref(a);
  }
  sl_buf_unref(b);
  return 0;
}

int sl_hub_group_ready(sl_hub_group *g) {
  if (g == NULL) return 0;
  int ready = 1;
  pthread_mutex_lock(&g->lock);
  for (sl_hub *h = g->members; h && ready; h = h->gnext)
    ready = sl_hub_ready(h) && sl__hub_inq_room(h);
  pthread_mutex_unlock(&g->lock);
  return ready;
}

void sl_hub_group_stats_get(sl_hub_group *g, sl_hub_group_stats *o) {
  memset(o, 0, sizeof(*o));
  if (g == NULL) return;
  pthread_mutex_lock(&g->lock);
  o->members = g->nmembers;
  o->frames_in = g->frames_in;
  o->texts_in = g->texts_in;
  o->lost = g->lost;
  o->skipped = g->skipped;
  o->resyncs = g->resyncs;
  o->texts_lost = g->texts_lost;
  pthread_mutex_unlock(&g->lock);
}
