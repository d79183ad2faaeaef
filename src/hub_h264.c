/*
 * The H.264 side of a hub: what a published access unit holds (keyframe,
 * parameter sets), the stream's codec configuration, and the GOP cache.
 *
 * Codec configuration: every SPS and PPS seen in an access unit (or in a
 * buffer holding only parameter sets) make up the configuration in force,
 * kept as Annex-B bytes (`ps`, sent by reference to a viewer whose keyframe
 * lacks them in-band) and as the JSON text message that WebSocket viewers
 * get before the first frame it applies to (`msg`). Each frame points at the
 * configuration it was published under; a change makes a new record with
 * the next generation number, so a subscriber compares numbers, never
 * pointers that could be reused.
 *
 * GOP cache: the frames from the newest IDR on, oldest first, each pinned
 * once, so that a joining viewer starts at once from that IDR instead of
 * waiting up to a GOP. The cache holds at most `gop_max` bytes: a GOP that
 * grows past it is dropped whole (counted in gop_cuts), and viewers joining
 * until the next IDR wait for it.
 */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "h264.h"
#include "hub.h"

/* ---- access units ---------------------------------------------------- */

void sl__h264_scan(const void *au, size_t len, struct h264_scan *out) {
  const unsigned char *p = au, *nal;
  size_t pos = 0, n;
  memset(out, 0, sizeof(*out));
  while (sl__h264_next_nal(p, len, &pos, &nal, &n)) {
    if (n == 0) continue;
    int type = nal[0] & 0x1f;
    if (type >= 1 && type <= 5) out->vcl = 1;
    if (type == 5) out->idr = 1;
    if ((type == 7 || type == 8) && out->nps < H264_MAX_PS) {
      out->ps[out->nps].p = nal;
      out->ps[out->nps].len = n;
      out->nps++;
      if (type == 7) out->sps = 1;
      else out->pps = 1;
    }
  }
}

/* ---- codec configuration -------------------------------------------- */

static void codec_free(struct codec *k) {
  sl_buf_unref(k->ps);
  sl_buf_unref(k->msg);
  if (k->init) sl_buf_unref(k->init);
  sl__free(k, sizeof(*k), SL_MEM_META);
}

struct codec *sl__codec_ref(struct codec *k) {
  if (k) k->refs++;
  return k;
}

void sl__codec_unref(struct codec *k) {
  if (k && --k->refs == 0) codec_free(k);
}

/* The Annex-B bytes of the parameter sets, each behind a 4-byte start
 * code, in the order they came. */
sl_buf *sl__h264_ps_bytes(const struct h264_scan *sc) {
  size_t n = 0;
  for (unsigned i = 0; i < sc->nps; i++) n += 4 + sc->ps[i].len;
  sl_buf *b = sl_buf_new(n);
  if (b == NULL) return NULL;
  unsigned char *o = sl_buf_data(b);
  for (unsigned i = 0; i < sc->nps; i++) {
    memcpy(o, "\0\0\0\1", 4);
    memcpy(o + 4, sc->ps[i].p, sc->ps[i].len);
    o += 4 + sc->ps[i].len;
  }
  return b;
}

static sl_buf *config_msg(const sl_h264_info *in) {
  char t[160];
  int n = snprintf(t, sizeof(t),
                   "{\"type\":\"config\",\"codec\":\"%s\",\"width\":%d,\"height\":%d,"
                   "\"fps\":%.3f}",
                   in->codec, in->width, in->height, in->fps);
  if (n < 0 || (size_t)n >= sizeof(t)) return NULL;
  return sl_buf_from(t, (size_t)n);
}

int sl__h264_config(sl_hub *h, const struct h264_scan *sc) {
  if (!sc->sps || !sc->pps) return 0;
  size_t n = 0;
  for (unsigned i = 0; i < sc->nps; i++) n += 4 + sc->ps[i].len;
  /* Unchanged parameter sets (encoders repeat them before every IDR). */
  if (h->codec && sl_buf_len(h->codec->ps) == n) {
    const unsigned char *o = sl_buf_cdata(h->codec->ps);
    unsigned i = 0;
    for (; i < sc->nps; i++) {
      if (memcmp(o + 4, sc->ps[i].p, sc->ps[i].len) != 0) break;
      o += 4 + sc->ps[i].len;
    }
    if (i == sc->nps) return 0;
  }
  sl_h264_info info;
  int rc = SL_EPROTO;
  for (unsigned i = 0; i < sc->nps; i++)
    if ((sc->ps[i].p[0] & 0x1f) == 7) {
      rc = sl_h264_parse_sps(sc->ps[i].p, sc->ps[i].len, &info);
      break;
    }
  if (rc) {
    h->bad_config++;
    return rc;
  }
  struct codec *k = sl__calloc(sizeof(*k), SL_MEM_META);
  if (k == NULL) return SL_ENOMEM;
  k->ps = sl__h264_ps_bytes(sc);
  k->msg = config_msg(&info);
  if (k->ps == NULL || k->msg == NULL) {
    if (k->ps) sl_buf_unref(k->ps);
    if (k->msg) sl_buf_unref(k->msg);
    sl__free(k, sizeof(*k), SL_MEM_META);
    return SL_ENOMEM;
  }
  k->info = info;
  k->refs = 1;
  k->gen = ++h->codec_gen;
  sl__codec_unref(h->codec);
  h->codec = k;
  h->codec_changes++;
  return 0;
}

/* ---- the GOP cache --------------------------------------------------- */

void sl__gop_clear(sl_hub *h) {
  for (struct frame *f = h->gop_head, *next; f; f = next) {
    next = f->gop_next;
    f->gop_next = NULL;
    f->in_gop = 0;
    sl__hub_unpin(h, f);
  }
  h->gop_head = h->gop_tail = NULL;
  h->gop_frames = 0;
  h->gop_bytes = 0;
}

void sl__gop_add(sl_hub *h, struct frame *f) {
  size_t len = sl_buf_len(f->buf);
  if (f->flags & SL_FRAME_KEY) {
    sl__gop_clear(h);
  } else if (h->gop_head == NULL) {
    return; /* no IDR cached (none yet, or the GOP was cut) */
  }
  if (h->gop_bytes + len > h->o.gop_max) {
    /* Past the cap: a partial GOP could not start a viewer either. */
    sl__gop_clear(h);
    h->gop_cuts++;
    return;
  }
  f->pins++;
  f->in_gop = 1;
  if (h->gop_tail) h->gop_tail->gop_next = f;
  else h->gop_head = f;
  h->gop_tail = f;
  h->gop_frames++;
  h->gop_bytes += len;
}

/* ---- fragmented MP4 --------------------------------------------------- */

/* The fMP4 timescale: 90 kHz, as RTP and MPEG-TS use for video. */
#define MP4_TIMESCALE 90000u

sl_buf *sl__h264_init(sl_hub *h, struct codec *k) {
  if (k->init == NULL) {
    int err = 0;
    k->init = sl_fmp4_init(sl_buf_cdata(k->ps), sl_buf_len(k->ps), k->info.width,
                           k->info.height, MP4_TIMESCALE, &err);
    if (k->init == NULL) h->mp4_failed++;
  }
  return k->init;
}

sl_buf *sl__h264_fragment(sl_hub *h, struct frame *f) {
  if (f->mp4 == NULL) {
    int err = 0;
    f->mp4 = sl_fmp4_fragment(sl_buf_cdata(f->buf), sl_buf_len(f->buf), (uint32_t)f->seq,
                              f->dts, f->dur, (f->flags & SL_FRAME_KEY) != 0, &err);
    if (f->mp4 == NULL) {
      h->mp4_failed++;
      return NULL;
    }
    /* Held once, like the frame itself, however many viewers send it. */
    h->held += sl__buf_size(f->mp4);
    h->mp4_built++;
    h->mp4_bytes += sl_buf_len(f->mp4);
    sl__acct_buf_hold(&h->mgr->acct, f->mp4, &f->mp4_counted);
  }
  return f->mp4;
}

/* The nominal frame interval in 90 kHz ticks: the SPS's frame rate, else
 * the mean interval of the recent publishes (the hub's rate ring), else
 * 30 fps. */
static uint32_t nominal_dur(const sl_hub *h) {
  double fps = h->codec && h->codec->info.fps > 0 ? h->codec->info.fps : 0;
  unsigned n = h->rate_n < HUB_RATE ? h->rate_n : HUB_RATE;
  if (!(fps > 0) && n >= 16) { /* a start-up burst is no rate */
    uint64_t newest = 0, oldest = UINT64_MAX;
    for (unsigned i = 0; i < n; i++) {
      if (h->rate[i] > newest) newest = h->rate[i];
      if (h->rate[i] < oldest) oldest = h->rate[i];
    }
    if (newest > oldest) fps = (double)(n - 1) * 1000.0 / (double)(newest - oldest);
  }
  if (!(fps >= 1 && fps <= 240)) fps = 30;
  return (uint32_t)((double)MP4_TIMESCALE / fps + 0.5);
}

/* Decode time and duration. Players (Media Source Extensions) treat a
 * decode-time step of more than twice the previous frame's duration as a
 * discontinuity and drop frames up to the next keyframe, so publish jitter
 * must not reach the timeline: each frame follows the previous one by its
 * nominal duration, and the timeline goes back to the frame's real time
 * (from the hub's first frame) only when the two drift more than half a
 * second apart (the source paused, or its rate changed). */
void sl__h264_timing(sl_hub *h, struct frame *f, const struct frame *prev) {
  if (h->frames_in == 0) h->ts0 = f->ts;
  uint64_t real = (f->ts - h->ts0) * (MP4_TIMESCALE / 1000u);
  f->dur = nominal_dur(h);
  f->dts = real;
  if (prev && prev->codec) {
    uint64_t grid = prev->dts + prev->dur;
    uint64_t drift = real > grid ? real - grid : grid - real;
    if (drift <= MP4_TIMESCALE / 2) f->dts = grid;
    else if (f->dts <= prev->dts) f->dts = prev->dts + 1;
  }
}
