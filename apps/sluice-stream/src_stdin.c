/*
 * The "-" source: an MJPEG byte stream (concatenated JPEGs, as written by
 * `ffmpeg -f mjpeg -` or gstreamer's `jpegenc ! fdsink`) read from standard
 * input, or from opts.fd, by a producer thread, cut into frames by
 * ss_split_next and published as they complete. With codec H.264 the bytes
 * are an Annex-B stream (`ffmpeg -c:v libx264 -f h264 -`, `rpicam-vid -o -`)
 * cut into access units by the library's sl_h264_reader, bounded by
 * max_frame per unit, and each unit is published as it completes.
 *
 * Memory: one buffer of max_frame bytes; the splitter guarantees that after
 * each call and drop at most max_frame - 1 bytes remain, so there is always
 * room to read more. Input is read in blocks of at most READ_BLOCK bytes:
 * after each frame the bytes behind it are moved to the front, and small
 * blocks keep that move small.
 *
 * Bad input never stops the source: garbage between frames, truncated,
 * corrupt and oversized frames are dropped and counted (stats.garbage,
 * stats.errors). End of file ends the source (logged, stats.ended); the hub
 * keeps its last frame, so viewers keep seeing it.
 *
 * A full hub queue makes the producer retry rather than skip: the pipe then
 * fills and the writer (ffmpeg) is paced by the viewers' loop, which loses
 * nothing and costs nothing.
 *
 * Stopping: the thread waits in poll() on the input and on a self-pipe;
 * ss_source_stop writes to the pipe, so a reader blocked on a silent stdin
 * wakes at once. The input descriptor is borrowed: never closed, and its
 * flags (blocking or not) are left as they are.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mjpeg_split.h"
#include "source_impl.h"

#define READ_BLOCK (64u << 10)

struct in {
  int fd;
  int wake[2];        /* self-pipe: [0] polled by the thread, [1] written */
  unsigned char *buf; /* max_frame bytes (MJPEG), READ_BLOCK (H.264) */
  size_t have;        /* bytes of the probe already in buf */
  ss_split sp;
  sl_h264_reader *rd; /* H.264 */
  ss_source *s;
  int cancelled;
  unsigned long long rd_lost;
};

/* An access unit is complete: publish it (the reader's buffer, shared). */
static void on_au(const sl_h264_au *au, void *arg) {
  struct in *t = arg;
  if (t->cancelled) return;
  if (ss__publish_buf(t->s, au->buf, SS_PUB_WAIT | SS_PUB_RETRY) == SL_ECANCELED)
    t->cancelled = 1;
}

static int open_stdin(ss_source *s, const char *arg, char *err, size_t errlen) {
  (void)arg;
  struct in *t = calloc(1, sizeof(*t));
  if (t == NULL) return ss__fail(err, errlen, "stdin: out of memory");
  t->fd = s->o.fd;
  if (fcntl(t->fd, F_GETFL) < 0) {
    free(t);
    return ss__fail(err, errlen, "stdin: descriptor %d is not open: %s",
                    s->o.fd, strerror(errno));
  }
  int h264 = s->o.codec == SS_CODEC_H264;
  size_t cap = h264 ? READ_BLOCK : s->o.max_frame;
  if (s->o.prefix_len > cap) {
    free(t);
    return ss__fail(err, errlen, "stdin: %zu probed bytes do not fit", s->o.prefix_len);
  }
  t->buf = malloc(cap);
  if (t->buf == NULL) {
    free(t);
    return ss__fail(err, errlen, "stdin: out of memory for a %zu-byte frame "
                    "buffer", cap);
  }
  if (s->o.prefix_len) memcpy(t->buf, s->o.prefix, s->o.prefix_len);
  t->have = s->o.prefix_len;
  t->s = s;
  if (h264) {
    int rc = 0;
    sl_h264_reader_opts ro = {.au_max = s->o.max_frame, .on_au = on_au, .arg = t};
    t->rd = sl_h264_reader_new(&ro, &rc);
    if (t->rd == NULL) {
      free(t->buf);
      free(t);
      return ss__fail(err, errlen, "stdin: H.264 reader: %s", sl_strerror(rc));
    }
  }
  if (pipe2(t->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    int e = errno;
    sl_h264_reader_free(t->rd);
    free(t->buf);
    free(t);
    return ss__fail(err, errlen, "stdin: pipe: %s", strerror(e));
  }
  ss_split_init(&t->sp, s->o.max_frame);
  s->impl = t;
  const char *what = h264 ? "H.264" : "MJPEG";
  if (t->fd == 0)
    snprintf(s->desc, sizeof(s->desc), "stdin (%s)", what);
  else
    snprintf(s->desc, sizeof(s->desc), "fd %d (%s)", t->fd, what);
  return 0;
}

/* Mirror the splitter's counters into the source's. */
static void sync_counters(ss_source *s, const ss_split *sp,
                          unsigned long long *lost_before) {
  unsigned long long lost = sp->truncated + sp->oversized + sp->corrupt;
  if (lost != *lost_before) {
    atomic_fetch_add(&s->errors, lost - *lost_before);
    *lost_before = lost;
  }
  atomic_store(&s->garbage, sp->garbage_bytes);
}

/* Wait for input. 1: readable (or EOF/error pending), 0: stopping. */
static int wait_input(ss_source *s, struct in *t) {
  for (;;) {
    struct pollfd p[2] = {{t->fd, POLLIN, 0}, {t->wake[0], POLLIN, 0}};
    if (ss__stopping(s)) return 0;
    int n = poll(p, 2, -1);
    if (n < 0 && errno != EINTR) return 1; /* let read() report it */
    if (p[1].revents || ss__stopping(s)) return 0;
    if (p[0].revents) return 1;
  }
}

/* Mirror the reader's counters: units dropped (too big, before the first
 * IDR, unreadable SPS) are lost frames, bytes outside units garbage. */
static void sync_reader(ss_source *s, struct in *t) {
  sl_h264_reader_stats st;
  sl_h264_reader_stats_get(t->rd, &st);
  unsigned long long lost = st.drop_nal_too_big + st.drop_au_too_big +
                            st.drop_before_key + st.drop_bad_sps;
  if (lost != t->rd_lost) {
    atomic_fetch_add(&s->errors, lost - t->rd_lost);
    t->rd_lost = lost;
  }
  atomic_store(&s->garbage, st.garbage_bytes);
}

/* Read up to `want` bytes into `dst`: > 0 bytes read, 0 to try again
 * (interrupted), -1 at the end of the input (end of file or a read error,
 * logged and counted). */
static ssize_t read_some(ss_source *s, struct in *t, unsigned char *dst, size_t want) {
  ssize_t n = read(t->fd, dst, want);
  if (n > 0) return n;
  if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
  if (n < 0) {
    atomic_fetch_add(&s->errors, 1);
    sl_log(SL_LOG_ERROR, "source %s: read failed: %s; the stream ends here",
           s->desc, strerror(errno));
  }
  return -1;
}

/* The input ended: what the splitter or reader still holds is settled
 * first, then the end is told. */
static void ended(ss_source *s) {
  sl_log(SL_LOG_WARN, "source %s: end of stream after %llu frames; "
         "viewers keep the last one", s->desc, atomic_load(&s->frames));
  atomic_store(&s->ended, 1);
}

static void *run_h264(ss_source *s, struct in *t) {
  if (ss__wait_ready(s)) return NULL;
  if (t->have) sl_h264_reader_feed(t->rd, t->buf, t->have);
  for (;;) {
    sync_reader(s, t);
    if (t->cancelled || !wait_input(s, t)) break;
    ssize_t n = read_some(s, t, t->buf, READ_BLOCK);
    if (n > 0) sl_h264_reader_feed(t->rd, t->buf, (size_t)n);
    if (n >= 0) continue;
    sl_h264_reader_flush(t->rd);
    sync_reader(s, t);
    ended(s);
    break;
  }
  return NULL;
}

static void *run_stdin(void *arg) {
  ss_source *s = arg;
  struct in *t = s->impl;
  if (t->rd) return run_h264(s, t);
  size_t cap = s->o.max_frame, have = t->have;
  unsigned long long lost = 0;
  if (ss__wait_ready(s)) return NULL;
  for (;;) {
    ss_split_out o;
    int got = ss_split_next(&t->sp, t->buf, have, &o);
    if (got &&
        ss__publish(s, t->buf + o.off, o.len, SS_PUB_WAIT | SS_PUB_RETRY) ==
            SL_ECANCELED)
      break;
    memmove(t->buf, t->buf + o.consumed, have - o.consumed);
    have -= o.consumed;
    sync_counters(s, &t->sp, &lost);
    if (got) continue;
    if (!wait_input(s, t)) break;
    size_t want = cap - have < READ_BLOCK ? cap - have : READ_BLOCK;
    ssize_t n = read_some(s, t, t->buf + have, want);
    if (n > 0) have += (size_t)n;
    if (n >= 0) continue;
    ss_split_finish(&t->sp);
    sync_counters(s, &t->sp, &lost);
    ended(s);
    break;
  }
  return NULL;
}

static void wake_stdin(ss_source *s) {
  struct in *t = s->impl;
  /* Non-blocking: if the pipe were full, the thread is awake anyway. */
  ssize_t w = write(t->wake[1], "x", 1);
  (void)w;
}

static void close_stdin(ss_source *s) {
  struct in *t = s->impl;
  if (t == NULL) return;
  close(t->wake[0]);
  close(t->wake[1]);
  sl_h264_reader_free(t->rd);
  free(t->buf);
  free(t);
  s->impl = NULL;
}

const struct ss_kind ss__kind_stdin = {"stdin", open_stdin, run_stdin,
                                       wake_stdin, close_stdin};
