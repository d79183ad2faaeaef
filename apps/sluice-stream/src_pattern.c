/*
 * The "testpattern" source: a producer thread renders numbered frames with
 * ss_pattern_render and publishes them on an absolute schedule.
 *
 * Frame numbers: the number drawn into frame k (its block code) is the
 * hub's own sequence number for it, so a viewer, a test or the dashboard
 * can compare what it shows with what the hub published. The first frame
 * takes the hub's next number, and a frame the hub refused (SL_EFULL) does
 * not use a number up: the next one is drawn with the same number.
 *
 * Pacing: frame k is due at start + k / fps on CLOCK_MONOTONIC, slept to
 * with an absolute deadline, so rendering time and wake-up latency never
 * accumulate into drift. When the producer falls more than one frame behind
 * (a slow encoder, a suspended machine, a lossless viewer that made it
 * wait) it skips ahead to the next due time instead of bursting the missed
 * frames out.
 */
#include <stdio.h>
#include <stdlib.h>

#include "h264enc.h"
#include "pattern.h"
#include "source_impl.h"

struct pat {
  ss_pattern *p;
  ss_h264enc *enc;        /* codec H.264: the encoder, else NULL */
  unsigned long long seq; /* number of the next frame */
  int force_idr;          /* the next frame must be an IDR */
};

static int open_pattern(ss_source *s, const char *arg, char *err,
                        size_t errlen) {
  (void)arg;
  struct pat *t = calloc(1, sizeof(*t));
  if (t == NULL) return ss__fail(err, errlen, "testpattern: out of memory");
  char perr[128] = "";
  t->p = ss_pattern_new(s->o.width, s->o.height, s->o.quality, perr,
                        sizeof(perr));
  if (t->p == NULL) {
    free(t);
    return ss__fail(err, errlen, "testpattern: %s", perr);
  }
  if (s->o.codec == SS_CODEC_H264) {
    char eerr[256] = "";
    int kbps = s->o.bitrate_kbps > 0
                   ? s->o.bitrate_kbps
                   : ss_h264enc_default_kbps(s->o.width, s->o.height, s->o.fps);
    t->enc = ss_h264enc_new(s->o.width, s->o.height, s->o.fps, kbps,
                            s->o.gop_frames, eerr, sizeof(eerr));
    if (t->enc == NULL) {
      ss_pattern_free(t->p);
      free(t);
      return ss__fail(err, errlen, "testpattern: %s", eerr);
    }
    snprintf(s->desc, sizeof(s->desc), "testpattern %dx%d @%gfps H.264 %d kbit/s",
             ss_pattern_width(t->p), ss_pattern_height(t->p), s->o.fps, kbps);
  } else {
    snprintf(s->desc, sizeof(s->desc), "testpattern %dx%d @%gfps q%d",
             ss_pattern_width(t->p), ss_pattern_height(t->p), s->o.fps,
             s->o.quality);
  }
  sl_hub_stats st;
  sl_hub_stats_get(s->hub, &st);
  t->seq = st.seq + 1;
  s->impl = t;
  return 0;
}

/* One H.264 frame: render the picture, encode it, publish the access unit.
 * A frame the hub could not take (SL_EFULL) broke the reference chain for
 * the next P-frame: the next one is forced to be an IDR. */
static int publish_h264(ss_source *s, struct pat *t) {
  const unsigned char *planes[3], *au;
  int strides[3], key;
  size_t len;
  if (ss_pattern_render_yuv(t->p, t->seq, ss__unix_ms(), planes, strides) != 0 ||
      ss_h264enc_encode(t->enc, planes, strides, t->force_idr, &au, &len, &key) != 0)
    return SL_EIO;
  int rc = ss__publish(s, au, len, 0);
  t->force_idr = rc != 0;
  return rc;
}

static void *run_pattern(void *arg) {
  ss_source *s = arg;
  struct pat *t = s->impl;
  double period = 1e9 / s->o.fps;
  if (ss__wait_ready(s)) return NULL;
  uint64_t start = ss__mono_ns();
  unsigned long long k = 0;
  for (;;) {
    if (ss__sleep_until(s, start + (uint64_t)((double)k * period))) break;
    /* A lossless viewer that is full holds the frame back (bounded by its
     * stall time, which the hub enforces). */
    if (ss__wait_ready(s)) break;
    const unsigned char *jpeg;
    size_t len;
    if (t->enc) {
      int rc = publish_h264(s, t);
      if (rc == SL_ECANCELED) break;
      if (rc == 0) t->seq++;
      if (rc == SL_EIO) {
        unsigned long long n = atomic_fetch_add(&s->errors, 1) + 1;
        if (ss__log_due(n))
          sl_log(SL_LOG_ERROR, "testpattern: H.264 encoder failed (%llu times)", n);
      }
    } else if (ss_pattern_render(t->p, t->seq, ss__unix_ms(), &jpeg, &len) != 0) {
      unsigned long long n = atomic_fetch_add(&s->errors, 1) + 1;
      if (ss__log_due(n))
        sl_log(SL_LOG_ERROR, "testpattern: JPEG encoder failed (%llu times)", n);
    } else {
      int rc = ss__publish(s, jpeg, len, 0);
      if (rc == SL_ECANCELED) break;
      if (rc == 0) t->seq++;
    }
    k = ss__next_slot(s, start, period, k + 1);
  }
  return NULL;
}

static void close_pattern(ss_source *s) {
  struct pat *t = s->impl;
  if (t == NULL) return;
  ss_h264enc_free(t->enc);
  ss_pattern_free(t->p);
  free(t);
  s->impl = NULL;
}

const struct ss_kind ss__kind_pattern = {"testpattern", open_pattern,
                                         run_pattern, NULL, close_pattern};
