/*
 * Frame sources: picking the kind from the spec, the options' defaults, the
 * producer thread's lifecycle, and what every kind shares (publishing with
 * backpressure, pacing, counters). The kinds live in src_*.c.
 *
 * Why the producer waits for a "gate" timer before its first publish:
 * sl_hub_publish decides between "publish now" and "queue for the loop" by
 * asking whether it runs on the loop thread, and the manager only learns
 * which thread that is at its first sl_mgr_poll. A producer that published
 * before then would be taken for the loop thread and touch the hub
 * unlocked. A one-shot 0 ms timer fires inside sl_mgr_poll, so once it has
 * fired the manager knows its thread.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "source_impl.h"

#define DEFAULT_WIDTH 640
#define DEFAULT_HEIGHT 480
#define DEFAULT_FPS 30.0
#define DEFAULT_QUALITY 80
#define DEFAULT_MAX_FRAME (8u << 20)
#define MAX_FPS 1000.0
#define READY_POLL_NS 5000000ull  /* hub not ready: look again every 5 ms */
#define FULL_RETRY_NS 2000000ull  /* SL_EFULL with SS_PUB_RETRY: 2 ms */
#define SLEEP_SLICE_NS 20000000ull /* a sleeping producer checks stop */

/* ---- small shared helpers ------------------------------------------- */

uint64_t ss__mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t ss__unix_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

int ss__fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

int ss__log_due(unsigned long long n) { return n && (n & (n - 1)) == 0; }

int ss__stopping(ss_source *s) { return atomic_load(&s->stop); }

int ss__sleep_until(ss_source *s, uint64_t deadline_ns) {
  for (;;) {
    if (ss__stopping(s)) return -1;
    uint64_t now = ss__mono_ns();
    if (now >= deadline_ns) return 0;
    uint64_t until = deadline_ns - now > SLEEP_SLICE_NS ? now + SLEEP_SLICE_NS
                                                       : deadline_ns;
    struct timespec ts = {(time_t)(until / 1000000000ull),
                          (long)(until % 1000000000ull)};
    /* EINTR just goes round again; the deadline is absolute. */
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
  }
}

int ss__ready(ss_source *s) {
  return s->o.group ? sl_hub_group_ready(s->o.group) : sl_hub_ready(s->hub);
}

int ss__wait_ready(ss_source *s) {
  while (!atomic_load(&s->live) || !ss__ready(s))
    if (ss__sleep_until(s, ss__mono_ns() + READY_POLL_NS)) return -1;
  return ss__stopping(s) ? -1 : 0;
}

unsigned long long ss__next_slot(ss_source *s, uint64_t start, double period,
                                 unsigned long long k) {
  uint64_t now = ss__mono_ns();
  double late = (double)now - ((double)start + (double)k * period);
  if (late <= period) return k;
  unsigned long long next = (unsigned long long)(((double)now - (double)start) / period) + 1;
  atomic_fetch_add(&s->skipped, next - k);
  return next;
}

int ss__publish(ss_source *s, const void *data, size_t len, int flags) {
  if ((flags & SS_PUB_WAIT) && ss__wait_ready(s)) return SL_ECANCELED;
  sl_buf *b = sl_buf_from(data, len);
  if (b == NULL) {
    atomic_fetch_add(&s->errors, 1);
    return SL_ENOMEM;
  }
  int rc = ss__publish_buf(s, b, flags & ~SS_PUB_WAIT);
  sl_buf_unref(b);
  return rc;
}

int ss__publish_buf(ss_source *s, sl_buf *b, int flags) {
  size_t len = sl_buf_len(b);
  if ((flags & SS_PUB_WAIT) && ss__wait_ready(s)) return SL_ECANCELED;
  int rc;
  /* A group has no SL_EFULL to retry on: a producer that pushes back
   * waits until every loop has room instead. */
  while (s->o.group && (flags & SS_PUB_RETRY) && !sl_hub_group_ready(s->o.group))
    if (ss__sleep_until(s, ss__mono_ns() + FULL_RETRY_NS)) return SL_ECANCELED;
  /* A group never answers SL_EFULL: a loop without room loses the frame
   * (its hub's group_lost; an H.264 member resyncs at the next IDR). */
  while ((rc = s->o.group ? sl_hub_group_publish(s->o.group, b, 0, SL_FRAME_KEY)
                          : sl_hub_publish(s->hub, b, 0, SL_FRAME_KEY)) == SL_EFULL &&
         (flags & SS_PUB_RETRY)) {
    if (ss__sleep_until(s, ss__mono_ns() + FULL_RETRY_NS)) {
      rc = SL_ECANCELED;
      break;
    }
  }
  if (rc == 0) {
    atomic_fetch_add(&s->frames, 1);
    atomic_fetch_add(&s->bytes, len);
  } else if (rc == SL_EFULL) {
    atomic_fetch_add(&s->skipped, 1);
  } else if (rc != SL_ECANCELED) {
    atomic_fetch_add(&s->errors, 1);
  }
  return rc;
}

/* ---- lifecycle ------------------------------------------------------ */

static void *thread_main(void *arg) {
  ss_source *s = arg;
  atomic_store(&s->connected, 1);
  s->kind->run(s);
  atomic_store(&s->connected, 0);
  return NULL;
}

static void gate_fired(sl_mgr *m, void *arg) {
  ss_source *s = arg;
  (void)m;
  s->gate = NULL; /* a one-shot timer is freed by the manager once fired */
  atomic_store(&s->live, 1);
}

static const struct ss_kind *pick(const char *spec, const char **arg) {
  static const struct {
    const char *prefix;
    const struct ss_kind *kind;
    int keep; /* hand the whole spec to open */
  } table[] = {
      {"testpattern", &ss__kind_pattern, 1}, {"dir:", &ss__kind_dir, 0},
      {"http://", &ss__kind_relay, 1},       {"https://", &ss__kind_relay, 1},
      {"ws://", &ss__kind_relay, 1},         {"wss://", &ss__kind_relay, 1},
  };
  if (spec == NULL || spec[0] == '\0') spec = "testpattern";
  *arg = spec;
  if (strcmp(spec, "-") == 0) return &ss__kind_stdin;
  for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
    size_t n = strlen(table[i].prefix);
    if (strncasecmp(spec, table[i].prefix, n) != 0) continue;
    if (table[i].kind == &ss__kind_pattern && spec[n] != '\0') continue;
    *arg = table[i].keep ? spec : spec + n;
    return table[i].kind;
  }
  return NULL;
}

static void free_source(ss_source *s) {
  free((char *)s->o.user);
  free((char *)s->o.pass);
  free(s);
}

static char *dup_or_null(const char *p, int *oom) {
  if (p == NULL) return NULL;
  char *d = strdup(p);
  if (d == NULL) *oom = 1;
  return d;
}

/* H.264 Annex-B starts with a start code; a JPEG with FF D8; multipart
 * with text. */
static int sniff(const unsigned char *p, size_t n) {
  size_t i = 0;
  while (i < n && p[i] == 0) i++;
  return i >= 2 && i < n && p[i] == 1 ? SS_CODEC_H264 : SS_CODEC_MJPEG;
}

/* A spec may start with the codec of its stream: "h264:-",
 * "mjpeg:http://...". Returns the rest, and sets *codec when present. */
static const char *codec_prefix(const char *spec, int *codec) {
  if (spec && strncasecmp(spec, "h264:", 5) == 0) {
    *codec = SS_CODEC_H264;
    return spec + 5;
  }
  if (spec && strncasecmp(spec, "mjpeg:", 6) == 0) {
    *codec = SS_CODEC_MJPEG;
    return spec + 6;
  }
  return spec;
}

/* What a relay URL's path says: ".h264" raw H.264, ".mjpg"/".mjpeg" MJPEG;
 * SS_CODEC_AUTO when it says nothing. */
static int url_codec(const char *url) {
  size_t n = strcspn(url, "?#");
  if (n >= 5 && strncasecmp(url + n - 5, ".h264", 5) == 0) return SS_CODEC_H264;
  if ((n >= 5 && strncasecmp(url + n - 5, ".mjpg", 5) == 0) ||
      (n >= 6 && strncasecmp(url + n - 6, ".mjpeg", 6) == 0))
    return SS_CODEC_MJPEG;
  return SS_CODEC_AUTO;
}

/* Which codec wins: the spec's prefix, then what the source itself says
 * (a relay's URL; a folder holds JPEGs), then --codec, then for stdin its
 * first bytes. */
int ss_source_codec(const char *spec, ss_source_opts *o, int probe_ms,
                    unsigned char *buf, size_t cap) {
  const char *arg;
  int forced = SS_CODEC_AUTO;
  spec = codec_prefix(spec, &forced);
  const struct ss_kind *kind = pick(spec, &arg);
  if (forced != SS_CODEC_AUTO) return o->codec = forced;
  if (kind == &ss__kind_dir) return o->codec = SS_CODEC_MJPEG;
  if (kind == &ss__kind_relay && url_codec(arg) != SS_CODEC_AUTO)
    return o->codec = url_codec(arg);
  if (o->codec != SS_CODEC_AUTO) return o->codec;
  /* A WebSocket relay says nothing: MJPEG unless --codec h264. */
  o->codec = SS_CODEC_MJPEG;
  if (kind == &ss__kind_stdin && cap >= 4) {
    /* Enough bytes to tell: a start code, or anything else. */
    size_t have = 0;
    uint64_t end = ss__mono_ns() + (uint64_t)probe_ms * 1000000u;
    int fd = o->fd > 0 ? o->fd : 0;
    while (have < 8) {
      uint64_t now = ss__mono_ns();
      if (now >= end) break;
      struct pollfd p = {fd, POLLIN, 0};
      int r = poll(&p, 1, (int)((end - now) / 1000000u) + 1);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      ssize_t k = read(fd, buf + have, cap - have);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) break;
      have += (size_t)k;
    }
    if (have) o->codec = sniff(buf, have);
    o->prefix = buf;
    o->prefix_len = have;
  }
  return o->codec;
}

ss_source *ss_source_start(const char *spec, sl_mgr *m, sl_hub *h,
                           const ss_source_opts *o, char *err, size_t errlen) {
  int forced = SS_CODEC_AUTO;
  spec = codec_prefix(spec, &forced);
  const char *arg;
  const struct ss_kind *kind = pick(spec, &arg);
  if (err && errlen) err[0] = '\0';
  if (m == NULL || h == NULL) {
    ss__fail(err, errlen, "source: no manager or hub");
    return NULL;
  }
  if (kind == NULL) {
    ss__fail(err, errlen,
             "unknown source \"%s\": use testpattern, dir:PATH, - (stdin), "
             "http://HOST:PORT/PATH or ws://HOST:PORT/PATH", spec);
    return NULL;
  }
  ss_source *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    ss__fail(err, errlen, "source: out of memory");
    return NULL;
  }
  s->kind = kind;
  s->mgr = m;
  s->hub = h;
  if (o) s->o = *o;
  if (forced != SS_CODEC_AUTO) s->o.codec = forced;
  int oom = 0;
  s->o.user = dup_or_null(s->o.user, &oom);
  s->o.pass = dup_or_null(s->o.pass, &oom);
  if (oom) {
    free_source(s);
    ss__fail(err, errlen, "source: out of memory");
    return NULL;
  }
  if (s->o.width <= 0) s->o.width = DEFAULT_WIDTH;
  if (s->o.height <= 0) s->o.height = DEFAULT_HEIGHT;
  if (!(s->o.fps > 0)) s->o.fps = DEFAULT_FPS;
  if (s->o.quality <= 0) s->o.quality = DEFAULT_QUALITY;
  if (s->o.max_frame == 0) s->o.max_frame = DEFAULT_MAX_FRAME;
  if (s->o.fd < 0) s->o.fd = 0;
  if (s->o.fps > MAX_FPS) {
    ss__fail(err, errlen, "fps %g is too high (at most %g)", s->o.fps, MAX_FPS);
    free_source(s);
    return NULL;
  }
  if (kind->open(s, arg, err, errlen) != 0) {
    free_source(s);
    return NULL;
  }
  if (kind->run == NULL) return s;

  int rc = 0;
  s->gate = sl_timer_add(m, 0, 0, gate_fired, s, &rc);
  if (s->gate == NULL) {
    ss__fail(err, errlen, "%s: cannot arm a timer: %s", kind->name,
             sl_strerror(rc));
    goto fail;
  }
  /* The producer takes no signals: they belong to the loop's thread. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = pthread_create(&s->thread, NULL, thread_main, s);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    ss__fail(err, errlen, "%s: cannot start a thread: %s", kind->name,
             strerror(rc));
    goto fail;
  }
  s->threaded = 1;
  return s;

fail:
  if (s->gate) sl_timer_free(m, s->gate);
  kind->close(s);
  free_source(s);
  return NULL;
}

void ss_source_stop(ss_source *s) {
  if (s == NULL) return;
  atomic_store(&s->stop, 1);
  if (s->threaded) {
    if (s->kind->wake) s->kind->wake(s);
    pthread_join(s->thread, NULL);
  }
  if (s->gate) sl_timer_free(s->mgr, s->gate);
  s->kind->close(s);
  free_source(s);
}

const char *ss_source_describe(const ss_source *s) {
  return s ? s->desc : "";
}

int ss_source_codec_of(const ss_source *s) {
  return s && s->o.codec == SS_CODEC_H264 ? SS_CODEC_H264 : SS_CODEC_MJPEG;
}

void ss_source_stats_get(const ss_source *s, ss_source_stats *out) {
  memset(out, 0, sizeof(*out));
  if (s == NULL) return;
  ss_source *w = (ss_source *)s; /* atomics are read through a non-const */
  out->frames = atomic_load(&w->frames);
  out->bytes = atomic_load(&w->bytes);
  out->errors = atomic_load(&w->errors);
  out->reconnects = atomic_load(&w->reconnects);
  out->skipped = atomic_load(&w->skipped);
  out->garbage = atomic_load(&w->garbage);
  out->connected = atomic_load(&w->connected);
  out->ended = atomic_load(&w->ended);
  out->up_seq = atomic_load(&w->up_seq);
  out->up_unix_ms = atomic_load(&w->up_unix_ms);
  out->up_arrival_ms = atomic_load(&w->up_arrival_ms);
  out->up_gaps = atomic_load(&w->up_gaps);
}
