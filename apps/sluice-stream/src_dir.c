/*
 * The "dir:PATH" source: the JPEG files of a folder (listed once, at start,
 * by ss_jpeg_dir_open), published in name order at opts.fps, in a loop, by a
 * producer thread. Each file is read again when its turn comes (it may have
 * changed, or gone: then it is skipped, counted and logged), into one
 * buffer of max_frame bytes, and copied into a new sl_buf.
 *
 * Pacing is the same absolute schedule as the test pattern's (see
 * src_pattern.c): no drift, and no burst after a stall.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jpeg_dir.h"
#include "source_impl.h"

struct dir {
  ss_jpeg_dir *d;
  unsigned char *buf; /* max_frame bytes, reused for every file */
  char path[256];
};

static void describe_skips(const ss_jpeg_dir_skips *k, char *out, size_t n) {
  static const char *const names[] = {"too many", "larger than max_frame",
                                      "too small", "no JPEG start (SOI)",
                                      "no JPEG end (EOI)", "unreadable"};
  unsigned long v[] = {k->too_many, k->too_big,  k->too_small,
                       k->bad_soi,  k->bad_eoi, k->unreadable};
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < 6; i++) {
    if (v[i] == 0) continue;
    int w = snprintf(out + used, n - used, "%s%lu %s", used ? ", " : "", v[i],
                     names[i]);
    if (w < 0 || (size_t)w >= n - used) break;
    used += (size_t)w;
  }
}

static int open_dir(ss_source *s, const char *path, char *err, size_t errlen) {
  if (path[0] == '\0')
    return ss__fail(err, errlen, "dir: give a folder, as in dir:/srv/frames");
  int rc = 0;
  ss_jpeg_dir *d = ss_jpeg_dir_open(path, s->o.max_frame, &rc);
  if (d == NULL)
    return ss__fail(err, errlen, "dir:%s: cannot list the folder: %s", path,
                    strerror(-rc));
  if (ss_jpeg_dir_count(d) == 0) {
    char why[256];
    describe_skips(ss_jpeg_dir_skipped(d), why, sizeof(why));
    ss_jpeg_dir_close(d);
    return ss__fail(err, errlen,
                    "dir:%s: no valid JPEG file (*.jpg or *.jpeg, at most "
                    "%zu bytes) in the folder%s%s%s", path, s->o.max_frame,
                    why[0] ? " (skipped: " : "", why, why[0] ? ")" : "");
  }
  struct dir *t = calloc(1, sizeof(*t));
  unsigned char *buf = malloc(s->o.max_frame);
  if (t == NULL || buf == NULL) {
    free(t);
    free(buf);
    ss_jpeg_dir_close(d);
    return ss__fail(err, errlen, "dir:%s: out of memory for a %zu-byte frame "
                    "buffer", path, s->o.max_frame);
  }
  t->d = d;
  t->buf = buf;
  snprintf(t->path, sizeof(t->path), "%s", path);
  s->impl = t;
  snprintf(s->desc, sizeof(s->desc), "dir:%s (%zu files) @%gfps", path,
           ss_jpeg_dir_count(d), s->o.fps);
  return 0;
}

static void *run_dir(void *arg) {
  ss_source *s = arg;
  struct dir *t = s->impl;
  size_t n = ss_jpeg_dir_count(t->d), i = 0;
  double period = 1e9 / s->o.fps;
  if (ss__wait_ready(s)) return NULL;
  uint64_t start = ss__mono_ns();
  unsigned long long k = 0;
  for (;;) {
    if (ss__sleep_until(s, start + (uint64_t)((double)k * period))) break;
    if (ss__wait_ready(s)) break;
    size_t len;
    int rc = ss_jpeg_dir_load(t->d, i, t->buf, s->o.max_frame, &len);
    if (rc != 0) {
      unsigned long long e = atomic_fetch_add(&s->errors, 1) + 1;
      if (ss__log_due(e))
        sl_log(SL_LOG_WARN, "dir:%s: skipping %s: %s (%llu errors so far)",
               t->path, ss_jpeg_dir_name(t->d, i), strerror(-rc), e);
    } else if (ss__publish(s, t->buf, len, 0) == SL_ECANCELED) {
      break;
    }
    i = (i + 1) % n;
    k = ss__next_slot(s, start, period, k + 1);
  }
  return NULL;
}

static void close_dir(ss_source *s) {
  struct dir *t = s->impl;
  if (t == NULL) return;
  ss_jpeg_dir_close(t->d);
  free(t->buf);
  free(t);
  s->impl = NULL;
}

const struct ss_kind ss__kind_dir = {"dir", open_dir, run_dir, NULL,
                                     close_dir};
