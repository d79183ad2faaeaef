/*
 * Hub internals shared by hub.c (frames, policies, admission, budget) and
 * hub_sub.c (subscribers: transports, sending, counters).
 *
 * Ownership: the hub holds one reference to each live frame's sl_buf. A
 * frame is live while it is the latest, waits in a subscriber's policy
 * queue (`pins`), or is still referenced by an output queue (its sl_buf has
 * more than the hub's reference). prune() frees the others, so `held` is
 * exactly the bytes of distinct frames still alive, counted once.
 */
#ifndef SL_HUB_H
#define SL_HUB_H

#include "internal.h"

struct codec;

struct frame {
  struct frame *next;   /* hub's live list */
  struct frame *gop_next; /* H.264: the GOP cache, oldest first */
  sl_buf *buf;
  uint64_t seq, ts;
  uint64_t wall_ms;     /* publish time, Unix ms (for viewers' latency) */
  unsigned flags;
  unsigned pins;        /* latest + policy-queue entries + GOP cache */
  size_t counted;       /* for sl__acct_buf_release */
  struct codec *codec;  /* H.264: the configuration it was published under */
  sl_buf *mp4;          /* H.264: its fMP4 fragment, built at the first
                           fMP4 viewer's need and shared by all */
  size_t mp4_counted;   /* for sl__acct_buf_release */
  uint64_t dts;         /* fMP4 decode time, 90 kHz, from the hub's start */
  uint32_t dur;         /* fMP4 sample duration, 90 kHz */
  unsigned in_gop : 1;
  unsigned has_ps : 1;  /* H.264: carries SPS and PPS in-band */
};

/* H.264 codec configuration (hub_h264.c). Loop thread only. */
struct codec {
  int refs;             /* the hub (while current) + each frame */
  uint64_t gen;         /* 1, 2, ... per hub */
  sl_buf *ps;           /* SPS + PPS, Annex-B */
  sl_buf *msg;          /* the WebSocket config message (JSON text) */
  sl_buf *init;         /* fMP4 init segment, built at the first need */
  sl_h264_info info;
};

/* What one access unit holds. */
#define H264_MAX_PS 8
struct h264_scan {
  int vcl, idr, sps, pps;
  unsigned nps;
  struct { const unsigned char *p; size_t len; } ps[H264_MAX_PS];
};

struct pend {           /* one entry of a subscriber's policy queue */
  struct pend *next;
  struct frame *f;
};

/* Frames handed to the connection whose bytes are not all written yet. */
#define SUB_INFLIGHT 8

struct sub {
  struct sub *next, *prev;
  sl_hub *hub;
  sl_conn *c;
  uint64_t id;
  /* Multiplexed (hub_mux.c): the connection belongs to `mux`, which owns
   * its tap, its limits and the turn of each of its subscriptions; every
   * message this subscriber sends names `mux_id`. NULL: it owns `c`. */
  sl_mux *mux;
  uint32_t mux_id;
  int transport;
  sl_sub_opts o;            /* resolved */
  int auto_send_max;        /* send_max follows the largest frame */
  size_t lowat;             /* TCP_NOTSENT_LOWAT set on its own socket
                               (SL_LOWAT_KERNEL: none); a mux's is the mux's */
  struct pend *ph, *pt;     /* policy queue, oldest first */
  size_t pn, pbytes;
  uint64_t next_due;        /* fps cap: earliest timestamp eligible */
  int resync;               /* keyframe: waiting for a keyframe */
  int full;                 /* lossless: queue at queue_len */
  /* `end`: the connection's byte offset (bytes_out + queued) just after
   * the frame: it is complete once bytes_out reaches it. Absolute, so that
   * other writers on the connection (a mux's other subscriptions) do not
   * shift it. */
  struct { uint64_t seq, ts, end; } fl[SUB_INFLIGHT];
  unsigned nfl;
  uint64_t done_seq, join_seq;
  unsigned burst;           /* H.264: GOP frames handed at join, pending */
  int gap;                  /* frames were skipped before the next one */
  uint64_t codec_gen;       /* configuration last sent (WebSocket) */
  uint64_t resyncs;
  uint64_t texts_sent, text_drops; /* sl_hub_publish_text */
  uint64_t frames_sent, bytes_sent, drops[SL_DROP_NREASONS];
  uint64_t joined_ms, soft_since;
  uint64_t rate_frames, rate_ms;  /* for the measured fps */
  double fps;
  int evict;
};

struct inq_item {
  sl_buf *buf;
  uint64_t ts, seq;
  unsigned flags;
};

#define HUB_INQ 8
#define HUB_RATE 64

struct sl_hub {
  struct sl_hub *next;      /* manager registry */
  sl_mgr *mgr;
  char *name;
  sl_hub_opts o;
  struct sub *subs;
  size_t nsubs;
  struct frame *live;       /* every live frame, newest first */
  struct frame *latest;
  size_t held, frames_held, largest;
  uint64_t seq, frames_in, bytes_in;
  uint64_t rate[HUB_RATE];  /* publish times, for fps_in */
  unsigned rate_n;
  uint64_t joins, leaves, evictions[SL_EVICT_HUB + 1], refused;
  uint64_t lost;            /* frames that could not be stored (memory) */
  uint64_t rate_bytes[HUB_RATE]; /* bytes of those publishes, for bitrate */
  uint64_t recent_bytes;    /* their sum (the automatic TCP_NOTSENT_LOWAT) */
  size_t lowat;             /* the automatic TCP_NOTSENT_LOWAT in force for
                               its viewers; 0 before the first frame */
  /* H.264 */
  struct codec *codec;      /* in force; NULL until the first SPS + PPS */
  uint64_t codec_gen, codec_changes, bad_config, no_config;
  struct frame *gop_head, *gop_tail;
  size_t gop_frames, gop_bytes;
  uint64_t gop_cuts, resyncs;
  uint64_t ts0;             /* timestamp of the first frame (fMP4 time 0) */
  uint64_t mp4_built, mp4_bytes; /* fragments built (once per frame) */
  uint64_t mp4_failed;      /* fragments that could not be built */
  uint64_t drops[SL_DROP_NREASONS];
  int not_ready;            /* a lossless subscriber is full */
  sl_timer *tick;
  /* Frames published from other threads, waiting for the loop. */
  pthread_mutex_t lock;
  struct inq_item inq[HUB_INQ];
  unsigned inq_n;
  int call_pending;
  int refs;                 /* the manager + a pending cross-thread call */
  int dead;
  _Atomic int ready_flag;
  uint64_t texts_in, texts_sent, text_drops; /* sl_hub_publish_text */
  /* Group membership (hub_group.c). `group` is set by sl_hub_group_add and
   * cleared only by this hub's sl_hub_free, on the loop thread; `gnext`,
   * `gmember` and `ggap` belong to the group's lock. The counters are
   * written by whichever thread publishes to the group and read here. */
  sl_hub_group *group;
  struct sl_hub *gnext;     /* the group's member list */
  int gmember;              /* still in the group's list */
  int ggap;                 /* H.264: a frame was lost for this hub; the
                               group withholds frames until the next IDR */
  _Atomic uint64_t glost, gskipped, gresyncs, gtexts_lost;
};

/* In inq_item.flags: a text message (sl_hub_publish_text), not a frame. */
#define HUB_INQ_TEXT (1u << 31)

/* hub_h264.c */
void sl__h264_scan(const void *au, size_t len, struct h264_scan *out);
/* Take the parameter sets of `sc` as the configuration in force when they
 * differ from it. 0, SL_EPROTO (unreadable SPS, counted), SL_ENOMEM. */
int sl__h264_config(sl_hub *h, const struct h264_scan *sc);
struct codec *sl__codec_ref(struct codec *k);
void sl__codec_unref(struct codec *k);
void sl__gop_add(sl_hub *h, struct frame *f);
/* The frame's fMP4 fragment and its configuration's init segment, built
 * once; NULL when they cannot be (memory, counted in mp4_failed). */
sl_buf *sl__h264_fragment(sl_hub *h, struct frame *f);
sl_buf *sl__h264_init(sl_hub *h, struct codec *k);
/* Set the frame's fMP4 decode time and duration; `prev` is the previous
 * frame (the hub's latest before it) or NULL. */
void sl__h264_timing(sl_hub *h, struct frame *f, const struct frame *prev);
void sl__gop_clear(sl_hub *h);
/* hub_sub.c */
/* What a viewer's connection gets once: busy (a live stream is never
 * idle), TCP_NODELAY, keepalive, TCP_USER_TIMEOUT past `stall_ms`
 * (TCP_NOTSENT_LOWAT follows the frame size: sl__set_lowat). */
void sl__viewer_socket(sl_conn *c, uint32_t stall_ms);
/* Set TCP_NOTSENT_LOWAT `v` (SL_LOWAT_KERNEL: the kernel's default) on
 * `c` when it differs from *cur, which it updates. */
void sl__set_lowat(sl_conn *c, size_t *cur, size_t v);
/* The TCP_NOTSENT_LOWAT `s` asks for: its own value, or its hub's
 * automatic one. */
size_t sl__sub_lowat(const struct sub *s);
/* After a publish: follow the stream's frame size (hub.c keeps the sum of
 * the last HUB_RATE frames); re-applies the automatic value to the
 * viewers that use it when it moved by more than a quarter. */
void sl__hub_follow_lowat(sl_hub *h);
/* `x` NULL: the subscriber owns `c`; else it joins mux `x` as `xid`.
 * *out (may be NULL) is the new subscriber. */
int sl__sub_new(sl_hub *h, sl_conn *c, int transport, const sl_sub_opts *o,
                sl_mux *x, uint32_t xid, struct sub **out);
void sl__sub_offer(struct sub *s, struct frame *f);
/* Hand frames while the pull rule allows (a mux subscriber: the mux's
 * scheduler decides, sl__mux_pump). */
void sl__sub_pump(struct sub *s);
/* Hand at most one frame when the connection's queue is at or below
 * `low`: 1 handed, 0 nothing to hand, -1 no room (the turn is kept). */
int sl__sub_take(struct sub *s, size_t low);
/* Account written bytes to the frames handed (lag, done_seq). */
void sl__sub_complete(struct sub *s);
void sl__sub_check(struct sub *s);
void sl__sub_drop_pending(struct sub *s, int reason);
/* Budget pressure: drop the pending frames but the shared latest. */
void sl__sub_drop_for_budget(struct sub *s);
void sl__sub_evict(struct sub *s, int reason);
void sl__sub_update_send_max(struct sub *s);
int sl__sub_stalled(const struct sub *s, uint64_t for_ms);
uint64_t sl__sub_lag_ms(const struct sub *s);
size_t sl__sub_lag_bytes(const struct sub *s);
void sl__sub_stats(const struct sub *s, sl_sub_stats *out);
/* Queue text message `msg` (a reference is taken) to a WebSocket
 * subscriber at once, outside its policy queue; counts a drop when its
 * connection refuses it. */
void sl__sub_send_text(struct sub *s, sl_buf *msg);
/* hub.c */
/* Publish `b` (a frame, or a text message when `flags` has HUB_INQ_TEXT)
 * as sl_hub_publish does: at once on the loop thread, else (or always,
 * with `queue`) through the inbound queue (SL_EFULL when full). A
 * reference is taken. `seq`: the frame's number in its group, so that
 * every member numbers a frame alike (a member that joined late or
 * skipped frames has gaps instead of numbers of its own); 0: the hub's
 * next. */
int sl__hub_publish_buf(sl_hub *h, sl_buf *b, uint64_t ts, unsigned flags,
                        int queue, uint64_t seq);
/* Room in the inbound queue for one more item. Any thread. */
int sl__hub_inq_room(sl_hub *h);
/* hub_group.c: sl_hub_free takes the hub out of its group first, so no
 * publisher of another thread touches it afterwards. */
void sl__hub_group_leave(sl_hub *h);
/* hub_h264.c: the Annex-B bytes of the parameter sets of `sc`. */
sl_buf *sl__h264_ps_bytes(const struct h264_scan *sc);
void sl__hub_unpin(sl_hub *h, struct frame *f);
void sl__hub_emit(sl_hub *h, int type, const struct sub *s, int reason, int evict);
void sl__hub_update_ready(sl_hub *h);
void sl__hub_remove_sub(sl_hub *h, struct sub *s);
/* Room for one more subscriber (evicting a stalled one if need be), or
 * SL_ELIMIT (counted in `refused`). */
int sl__hub_admit(sl_hub *h);
/* hub_mux.c */
void sl__mux_pump(sl_mux *x);
/* A subscriber of `x` is evicted for a stalled or oversized connection:
 * the socket goes as one, every subscription's pending frames now. */
void sl__mux_evicted(sl_mux *x);
/* The hub lets `s` go (unsubscribe, hub freed, connection closed). */
void sl__mux_unlink(sl_mux *x, struct sub *s);
void sl__mux_update_send_max(sl_mux *x);
/* Set the connection's TCP_NOTSENT_LOWAT from its subscriptions'. */
void sl__mux_update_lowat(sl_mux *x);
/* The value in force there (SL_LOWAT_KERNEL: none set). */
size_t sl__mux_lowat(const sl_mux *x);
/* A new subscriber of `x`, before its first frame is offered. */
void sl__mux_link(sl_mux *x, struct sub *s);

#endif
