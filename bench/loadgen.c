/*
 * loadgen: a load generator for live-video servers (sluice-stream, the
 * bench servers, or any multipart-MJPEG / WebSocket / raw TCP server), on
 * loopback only. One process, epoll, thousands of connections, bounded in
 * count and in time: it stops by itself after --duration.
 *
 * Classes of connections (each optional):
 *   --healthy N        MJPEG viewers that read as fast as they can. Each
 *                      multipart part is parsed (Content-Length, X-Frame):
 *                      frames counted, the gap between part starts and the
 *                      lag in frames (newest X-Frame seen by any viewer
 *                      minus this part's X-Frame) recorded.
 *   --stalled N        viewers with a tiny SO_RCVBUF that send the request
 *                      and never read (only a close by the server is seen).
 *   --slow N:KBPS      viewers that read at most KBPS KB/s each.
 *   --freeze N:SECS[:AT] viewers that stop reading for SECS seconds, AT
 *                      seconds (default 2) into the measurement, then
 *                      read again; reported: lag of the first part started
 *                      after the resume, and the time and bytes until the
 *                      first fresh part (lag <= 1).
 *   --ws N             WebSocket viewers (handshake, binary messages
 *                      counted, pings answered); with --ws-paths P1,P2,...
 *                      viewer i opens path i mod the number of paths (so
 *                      one run can spread N viewers over many streams).
 *   --mux N            clients of a multiplexed WebSocket (--mux-path,
 *                      /mux; docs/mux.md): after the handshake each sends
 *                      one subscribe message per name of --mux-streams
 *                      a,b,c (ids 1, 2, ...; --mux-format adds "format"),
 *                      then counts the binary media messages of each
 *                      subscription id; reported: subscriptions confirmed
 *                      ("subscribed"), error messages, and frames per
 *                      subscription (mean / min, and how many got none).
 *   --slowloris N      clients that send a request head one byte every
 *                      --slowloris-interval seconds (2) and never finish
 *                      it; reported: how many the server closed, when, and
 *                      whether it answered 408.
 *   --churn RATE       connect / request the stream / read the first part
 *                      / close cycles, RATE per second (at most 64 at once);
 *                      reported: cycles, refusals, time to first frame.
 *   --flood N          keep-alive connections sending GET --flood-path
 *                      (/snapshot.jpg) back to back; responses/s, latency.
 *   --raw N            readers that only count bytes, as fast as possible
 *                      (throughput sinks): with --raw-url tcp://H:P
 *                      nothing is sent, with http://H:P/PATH a GET first.
 *   --raw-count KIND   raw readers also count frames, their gaps and their
 *                      bytes: KIND h264 (Annex-B: a picture starts at a
 *                      slice NAL unit whose first_mb_in_slice is 0) or mp4
 *                      (fragmented MP4: one moof box per frame); with an
 *                      http:// URL the response must be a 200.
 * Churn, flood and slowloris run on a second thread with its own epoll,
 * so a flood does not delay the viewers' reads in this process.
 *
 * Phases: connect everything (retrying refused connects until the server
 * listens, at most --connect-timeout s; viewers count as connected once
 * their response head came, raw readers once their first byte came),
 * --warmup s, then the measurement window of --duration s. Only the
 * window is counted.
 *
 * Server side (optional): --server-pid PID reads the server's CPU time
 * (/proc/PID/stat) and RSS (/proc/PID/status) at the window edges;
 * --stats-url http://H:P/api/stats fetches that JSON before connecting, at
 * the window start and end; --sample-ms MS samples both periodically from
 * a third thread (for memory-growth curves).
 *
 * Output: a table on stdout; with --json one JSON object on stdout (and
 * the table on stderr). Percentiles come from log histograms with 16
 * sub-buckets per power of two (values within about 0.8 %).
 *
 * Build: the `loadgen` target of CMake (cmake/extra.cmake builds every
 * bench file with a main()), or cc -O2 -pthread bench/loadgen.c -o loadgen
 * Example:
 *   loadgen --url http://127.0.0.1:8080/stream.mjpg --healthy 100 \
 *     --stalled 500 --slow 10:50 --freeze 5:3 --ws 20 --slowloris 500 \
 *     --churn 1000 --flood 4 --duration 20 --json
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers ------------------------------------------------------ */

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "loadgen: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(2);
}

static void *xcalloc(size_t n, size_t sz) {
  void *p = calloc(n, sz);
  if (p == NULL && n && sz) die("out of memory");
  return p;
}

/* ---- histograms: 64 sub-buckets per power of two ---------------------- */

#define HSUB 64 /* 2^HBITS */
#define HBITS 6
#define HN (HSUB * 36)

static int hidx(uint64_t v) {
  if (v < HSUB) return (int)v;
  int e = 63 - __builtin_clzll(v);
  int i = (e - HBITS + 1) * HSUB + (int)((v >> (e - HBITS)) & (HSUB - 1));
  return i < HN ? i : HN - 1;
}

static double hval(int i) {
  if (i < HSUB) return i;
  int e = i / HSUB + HBITS - 1, sub = i % HSUB;
  double low = (double)((uint64_t)(HSUB + sub) << (e - HBITS));
  return low + (double)((uint64_t)1 << (e - HBITS)) / 2.0;
}

static void hadd(uint32_t *h, uint64_t v) { h[hidx(v)]++; }

static uint64_t hcount(const uint32_t *h) {
  uint64_t n = 0;
  for (int i = 0; i < HN; i++) n += h[i];
  return n;
}

/* The rank (1..n) of quantile q: ceil(q * n), at least 1 (no libm). */
static uint64_t qrank(double q, uint64_t n) {
  double x = q * (double)n;
  uint64_t r = (uint64_t)x;
  if ((double)r < x) r++;
  return r ? r : 1;
}

/* The value at quantile q (0..1), or -1 when empty. */
static double hq(const uint32_t *h, double q) {
  uint64_t n = hcount(h);
  if (n == 0) return -1;
  uint64_t rank = qrank(q, n), acc = 0;
  for (int i = 0; i < HN; i++) {
    acc += h[i];
    if (acc >= rank) return hval(i);
  }
  return hval(HN - 1);
}

static double hmax(const uint32_t *h) {
  for (int i = HN - 1; i >= 0; i--)
    if (h[i]) return hval(i);
  return -1;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* ---- targets ---------------------------------------------------------- */

struct target {
  struct sockaddr_storage sa;
  socklen_t salen;
  char host[96];  /* for the Host header */
  char path[512];
  int http;       /* 0: tcp:// (send nothing) */
};

static int is_loopback(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
  }
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    return IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
  }
  return 0;
}

/* http://HOST:PORT/PATH, ws://..., tcp://HOST:PORT. Loopback only. */
static void parse_url(const char *url, struct target *t) {
  const char *p = url;
  memset(t, 0, sizeof(*t));
  if (strncmp(p, "http://", 7) == 0) p += 7, t->http = 1;
  else if (strncmp(p, "ws://", 5) == 0) p += 5, t->http = 1;
  else if (strncmp(p, "tcp://", 6) == 0) p += 6, t->http = 0;
  else die("%s: use http://HOST:PORT/PATH or tcp://HOST:PORT", url);
  char host[64];
  const char *hend, *port;
  if (*p == '[') {
    hend = strchr(p, ']');
    if (!hend) die("%s: bad IPv6 address", url);
    snprintf(host, sizeof(host), "%.*s", (int)(hend - p - 1), p + 1);
    port = hend + 1;
  } else {
    hend = p + strcspn(p, ":/");
    snprintf(host, sizeof(host), "%.*s", (int)(hend - p), p);
    port = hend;
  }
  int portno = 80;
  const char *rest = port;
  if (*port == ':') {
    char *e;
    long v = strtol(port + 1, &e, 10);
    if (e == port + 1 || v <= 0 || v > 65535) die("%s: bad port", url);
    portno = (int)v;
    rest = e;
  }
  snprintf(t->path, sizeof(t->path), "%s", *rest ? rest : "/");
  if (strcmp(host, "localhost") == 0) snprintf(host, sizeof(host), "127.0.0.1");
  struct sockaddr_in *a4 = (struct sockaddr_in *)&t->sa;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&t->sa;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)portno);
    t->salen = sizeof(*a4);
  } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)portno);
    t->salen = sizeof(*a6);
  } else {
    die("%s: the host must be a loopback address literal (127.0.0.1, ::1) or localhost", url);
  }
  if (!is_loopback(&t->sa))
    die("refusing %s: not a loopback address (this tool only loads loopback servers)", host);
  if (t->sa.ss_family == AF_INET6) snprintf(t->host, sizeof(t->host), "[%s]:%d", host, portno);
  else snprintf(t->host, sizeof(t->host), "%s:%d", host, portno);
}

/* ---- configuration ------------------------------------------------------ */

#define MUX_MAX 32 /* subscriptions per mux client: sluice's default limit */

enum { C_HEALTHY, C_STALLED, C_SLOW, C_FREEZE, C_WS, C_SLOWLORIS, C_CHURN, C_FLOOD, C_RAW, C_MUX, C_N };
static const char *cls_name[C_N] = {"healthy", "stalled", "slow",  "freeze", "ws",
                                    "slowloris", "churn", "flood", "raw",    "mux"};

static struct {
  struct target stream, ws, flood, churn, raw, stats, mux;
  struct target *ws_paths; /* --ws-paths: viewer i opens ws_paths[i % nws_paths] */
  int nws_paths;
  char mux_streams[MUX_MAX][128]; /* --mux-streams: subscription i+1 is stream i */
  int nmux_streams;
  const char *mux_format;
  int have_stats;
  int n[C_N];
  double slow_kbps;
  double freeze_s, freeze_at;
  double churn_rate;
  double slowloris_interval;
  double duration, warmup, connect_timeout;
  int json;
  int server_pid;
  int sample_ms;
  int stall_rcvbuf;
  int inflight;
  double connect_rate;
  int raw_count; /* RC_* */
} cfg = {.inflight = 200, .slow_kbps = 50, .freeze_s = 3, .freeze_at = 2, .slowloris_interval = 2,
         .duration = 10, .warmup = 1, .connect_timeout = 20, .stall_rcvbuf = 4096};

/* What raw readers count besides bytes (--raw-count). */
enum { RC_NONE, RC_H264, RC_MP4 };

/* ---- connections ------------------------------------------------------- */

enum {
  ST_IDLE,       /* not started (or waiting for a retry) */
  ST_CONNECTING,
  ST_HEAD,       /* reading the response head */
  ST_STREAM,     /* multipart parts */
  ST_WS,         /* WebSocket frames */
  ST_RAW,        /* counting bytes */
  ST_STALLED,    /* never reading */
  ST_SLOWLORIS,  /* trickling a head */
  ST_BODY,       /* flood: reading a response body */
  ST_DONE
};

#define HBUF 2048
#define MUX_CAP 64 /* payload bytes a mux client looks at per message */

struct conn {
  int fd, cls, state, idx;
  int kidx; /* index within its class */
  uint64_t t_connect, retry_at;
  int retries;
  /* parsing */
  char hbuf[HBUF];
  size_t hlen;
  uint64_t body_left;
  uint64_t rx_total;       /* bytes received since connect */
  uint64_t part_start_ns, part_start_off, last_part_ns;
  int in_part_hdr;
  /* WebSocket */
  int ws_need, ws_op, ws_fin;
  /* mux: the start of the current message, and frames per subscription */
  unsigned char mcap[MUX_CAP];
  size_t mcap_len, mcap_want;
  uint64_t *sub_frames; /* [MUX_MAX], in the window; index = id - 1 */
  /* results */
  uint64_t frames, bytes;  /* in the window */
  uint32_t *gaps;          /* gap histogram (us), per viewer */
  int ok, closed, err, status;
  uint64_t closed_ns;
  /* slow */
  double tokens;
  /* freeze */
  int frozen, resumed, waiting_fresh, parts_after;
  uint64_t resume_ns, resume_off;
  double first_lag, first_ms, fresh_ms, fresh_kb;
  int stale_parts, rcvbuf;
  /* slowloris */
  uint64_t next_trickle;
  int trickled;
  /* flood */
  uint64_t req_ns;
  /* raw frame counting (--raw-count) */
  int rc_body;             /* past the HTTP response head */
  uint32_t rc_sc;          /* h264: the last bytes, for start codes */
  int rc_st;               /* h264: 1 NAL header next, 2 slice header next */
  unsigned char rc_box[16];
  int rc_boxn;             /* mp4: box header bytes gathered */
  uint64_t rc_skip;        /* mp4: box payload bytes left */
};

struct cls_stats {
  uint64_t frames, bytes, errors, closed, refused, connected, ok;
  uint32_t lag[1024];
  uint32_t lat[HN];   /* churn: time to first frame; flood: latency;
                         slowloris: time to close */
  uint64_t cycles, responses, got408;
  uint64_t subscribed, sub_errors; /* mux: "subscribed" and "error" messages */
};

static struct cls_stats cs[C_N];
static uint64_t newest_frame;   /* highest X-Frame seen (main thread) */
static atomic_int measuring, stop_all;
static uint64_t win_start_ns, win_end_ns;

struct th {
  int ep;
  char *rbuf;
  size_t rcap;
  uint64_t now;
  struct conn **pending; /* to connect, in order */
  int npending, next_pending, inflight;
};

static struct conn *conns_main;
static int nconns_main;

static void ep_set(struct th *t, struct conn *c, uint32_t ev, int op) {
  struct epoll_event e = {.events = ev, .data.ptr = c};
  if (epoll_ctl(t->ep, op, c->fd, &e) != 0 && op != EPOLL_CTL_DEL)
    die("epoll_ctl: %s", strerror(errno));
}

static const struct target *target_of(const struct conn *c) {
  switch (c->cls) {
    case C_WS: return cfg.nws_paths ? &cfg.ws_paths[c->kidx % cfg.nws_paths] : &cfg.ws;
    case C_MUX: return &cfg.mux;
    case C_FLOOD: return &cfg.flood;
    case C_CHURN: return &cfg.churn;
    case C_RAW: return &cfg.raw;
    default: return &cfg.stream;
  }
}

static void conn_close(struct th *t, struct conn *c, int by_server) {
  if (c->fd >= 0) {
    epoll_ctl(t->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
  }
  if (c->state == ST_CONNECTING) t->inflight--;
  if (by_server && !c->closed) {
    c->closed = 1;
    c->closed_ns = t->now;
    cs[c->cls].closed++;
  }
  c->state = ST_DONE;
}

static void conn_error(struct th *t, struct conn *c) {
  if (!c->err) {
    c->err = 1;
    cs[c->cls].errors++;
  }
  conn_close(t, c, 0);
}

static int send_all(int fd, const char *s, size_t n) {
  while (n) {
    ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1; /* EAGAIN on a fresh socket with a small request: treat as error */
    }
    s += w;
    n -= (size_t)w;
  }
  return 0;
}

static int send_request(struct conn *c) {
  const struct target *tg = target_of(c);
  char req[1024];
  int n;
  if (!tg->http) return 0;
  if (c->cls == C_WS || c->cls == C_MUX)
    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 tg->path, tg->host);
  else if (c->cls == C_SLOWLORIS)
    n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nX-Slow: ", tg->path, tg->host);
  else
    n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-loadgen\r\n\r\n",
                 tg->path, tg->host);
  return send_all(c->fd, req, (size_t)n);
}

static void start_connect(struct th *t, struct conn *c) {
  const struct target *tg = target_of(c);
  c->fd = socket(tg->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    c->state = ST_DONE;
    if (!c->err) c->err = 1, cs[c->cls].errors++;
    return;
  }
  if (c->cls == C_STALLED) {
    int v = cfg.stall_rcvbuf;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
  }
  if (c->cls == C_CHURN || c->cls == C_FLOOD) {
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  c->t_connect = t->now;
  c->state = ST_CONNECTING;
  t->inflight++;
  int rc = connect(c->fd, (const struct sockaddr *)&tg->sa, tg->salen);
  if (rc != 0 && errno != EINPROGRESS) {
    int e = errno;
    conn_close(t, c, 0);
    c->state = ST_DONE;
    if (!c->err) c->err = 1, cs[c->cls].errors++;
    (void)e;
    return;
  }
  ep_set(t, c, EPOLLOUT, EPOLL_CTL_ADD);
}

static uint64_t connect_deadline_ns;

static void on_connected(struct th *t, struct conn *c) {
  int se = 0;
  socklen_t sl = sizeof(se);
  getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &se, &sl);
  if (se) {
    conn_close(t, c, 0);
    if (se == ECONNREFUSED && t->now < connect_deadline_ns && c->cls != C_CHURN) {
      c->state = ST_IDLE; /* the server may still be starting: retry */
      c->retry_at = t->now + 50000000u;
      c->retries++;
      return;
    }
    c->state = ST_DONE;
    if (!c->err) c->err = 1, cs[c->cls].errors++;
    return;
  }
  t->inflight--;
  cs[c->cls].connected++;
  if (send_request(c) != 0) {
    c->state = ST_CONNECTING; /* so conn_close's bookkeeping matches */
    t->inflight++;
    conn_error(t, c);
    return;
  }
  switch (c->cls) {
    case C_STALLED:
      c->state = ST_STALLED;
      c->ok = 1;
      cs[c->cls].ok++;
      ep_set(t, c, EPOLLRDHUP, EPOLL_CTL_MOD);
      break;
    case C_SLOW:
      c->state = ST_HEAD;
      ep_set(t, c, EPOLLRDHUP, EPOLL_CTL_MOD); /* read from the tick */
      break;
    case C_SLOWLORIS:
      c->state = ST_SLOWLORIS;
      c->ok = 1;
      cs[c->cls].ok++;
      c->next_trickle = t->now + (uint64_t)(cfg.slowloris_interval * 1e9);
      ep_set(t, c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
      break;
    case C_RAW:
      c->state = ST_RAW;
      c->ok = 1;
      cs[c->cls].ok++;
      ep_set(t, c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
      break;
    default:
      c->state = ST_HEAD;
      c->req_ns = t->now;
      ep_set(t, c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
  }
}

/* ---- parsing ------------------------------------------------------------ */

/* Case-insensitive header lookup in a head; value as a number or -1. */
static long long head_num(const char *h, size_t n, const char *name) {
  size_t nl = strlen(name);
  for (size_t i = 0; i + nl + 1 < n; i++) {
    if ((i == 0 || h[i - 1] == '\n') && strncasecmp(h + i, name, nl) == 0 && h[i + nl] == ':') {
      const char *v = h + i + nl + 1;
      while (*v == ' ') v++;
      return strtoll(v, NULL, 10);
    }
  }
  return -1;
}

static void on_part(struct th *t, struct conn *c, long long frame_no) {
  uint64_t now = c->part_start_ns;
  int m = atomic_load_explicit(&measuring, memory_order_relaxed);
  long long lag = -1;
  if (frame_no >= 0 && c->cls != C_CHURN) {
    if ((uint64_t)frame_no > newest_frame) newest_frame = (uint64_t)frame_no;
    lag = (long long)(newest_frame - (uint64_t)frame_no);
  }
  if (c->cls == C_FREEZE && c->resumed && c->waiting_fresh) {
    double ms = (double)(now - c->resume_ns) / 1e6;
    if (c->parts_after++ == 0) {
      c->first_lag = (double)lag;
      c->first_ms = ms;
    }
    if (lag >= 0 && lag <= 1) {
      c->fresh_ms = ms;
      c->fresh_kb = (double)(c->part_start_off - c->resume_off) / 1024.0;
      c->stale_parts = c->parts_after - 1;
      c->waiting_fresh = 0;
    }
  } else if (m && lag >= 0) {
    cs[c->cls].lag[lag > 1023 ? 1023 : lag]++;
  }
  if (m) {
    c->frames++;
    cs[c->cls].frames++;
    if (c->last_part_ns && c->gaps && !(c->cls == C_FREEZE && c->frozen))
      hadd(c->gaps, (now - c->last_part_ns) / 1000u);
  }
  c->last_part_ns = now;
  (void)t;
}

/* A frame seen by a raw reader (--raw-count): counted like a part. */
static void raw_frame(struct th *t, struct conn *c) {
  c->part_start_ns = t->now;
  on_part(t, c, -1);
}

/* Frame counting for raw readers, across arbitrary read boundaries. An
 * http reader first skips its response head, which must be a 200 (a 503
 * from a full stream would otherwise count as bytes delivered). */
static void raw_count(struct th *t, struct conn *c, const char *d, size_t n) {
  const unsigned char *p = (const unsigned char *)d;
  if (!c->rc_body && cfg.raw.http) {
    while (n && c->hlen < HBUF - 1) {
      c->hbuf[c->hlen++] = (char)*p++;
      n--;
      if (c->hlen >= 4 && memcmp(c->hbuf + c->hlen - 4, "\r\n\r\n", 4) == 0) break;
    }
    if (c->hlen >= 4 && memcmp(c->hbuf + c->hlen - 4, "\r\n\r\n", 4) == 0) {
      c->hbuf[c->hlen] = 0;
      int status = 0;
      if (sscanf(c->hbuf, "HTTP/1.%*d %d", &status) != 1 || status != 200) {
        c->status = status;
        conn_error(t, c);
        return;
      }
      c->rc_body = 1;
    } else if (c->hlen >= HBUF - 1) {
      conn_error(t, c);
      return;
    } else {
      return;
    }
  }
  c->rc_body = 1;
  if (cfg.raw_count == RC_H264) {
    for (size_t i = 0; i < n; i++) {
      unsigned b = p[i];
      if (c->rc_st == 1) {
        unsigned type = b & 0x1f;
        c->rc_st = (type == 1 || type == 5) ? 2 : 0;
      } else if (c->rc_st == 2) {
        /* first_mb_in_slice is ue(v): 0 codes as a single 1 bit. */
        if (b & 0x80) raw_frame(t, c);
        c->rc_st = 0;
      }
      c->rc_sc = (c->rc_sc << 8) | b;
      if ((c->rc_sc & 0xffffff) == 0x000001) c->rc_st = 1;
    }
    return;
  }
  while (n) {
    if (c->rc_skip) {
      size_t take = n < c->rc_skip ? n : (size_t)c->rc_skip;
      c->rc_skip -= take;
      p += take;
      n -= take;
      continue;
    }
    c->rc_box[c->rc_boxn++] = *p++;
    n--;
    if (c->rc_boxn < 8) continue;
    uint64_t size = (uint64_t)c->rc_box[0] << 24 | (uint64_t)c->rc_box[1] << 16 |
                    (uint64_t)c->rc_box[2] << 8 | c->rc_box[3];
    int hdr = 8;
    if (size == 1) { /* 64-bit largesize after the type */
      if (c->rc_boxn < 16) continue;
      size = 0;
      for (int i = 8; i < 16; i++) size = size << 8 | c->rc_box[i];
      hdr = 16;
    }
    if (size < (uint64_t)hdr) { /* size 0 (to the end) or garbage: a live stream has neither */
      conn_error(t, c);
      return;
    }
    if (memcmp(c->rc_box + 4, "moof", 4) == 0) raw_frame(t, c);
    c->rc_skip = size - (uint64_t)hdr;
    c->rc_boxn = 0;
  }
}

/* Multipart parts: a head "--boundary ... \r\n\r\n", Content-Length bytes,
 * CRLF. Returns -1 on a protocol error. */
static int feed_stream(struct th *t, struct conn *c, const char *d, size_t n, long long *first) {
  while (n) {
    if (c->body_left) {
      size_t take = n < c->body_left ? n : (size_t)c->body_left;
      c->body_left -= take;
      d += take;
      n -= take;
      continue;
    }
    if (!c->in_part_hdr) {
      while (n && (*d == '\r' || *d == '\n')) d++, n--;
      if (!n) break;
      c->in_part_hdr = 1;
      c->hlen = 0;
      c->part_start_ns = t->now;
      c->part_start_off = c->rx_total - n;
    }
    size_t room = HBUF - 1 - c->hlen, take = n < room ? n : room;
    size_t old = c->hlen;
    memcpy(c->hbuf + c->hlen, d, take);
    c->hlen += take;
    c->hbuf[c->hlen] = 0;
    char *end = memmem(c->hbuf + (old > 3 ? old - 3 : 0), c->hlen - (old > 3 ? old - 3 : 0), "\r\n\r\n", 4);
    if (end == NULL) {
      if (c->hlen >= HBUF - 1) return -1;
      d += take;
      n -= take;
      continue;
    }
    size_t hl = (size_t)(end - c->hbuf) + 4, used = hl - old;
    d += used;
    n -= used;
    if (c->hbuf[0] != '-' || c->hbuf[1] != '-') return -1;
    long long cl = head_num(c->hbuf, hl, "Content-Length");
    long long fno = head_num(c->hbuf, hl, "X-Frame");
    if (cl < 0) return -1;
    c->body_left = (uint64_t)cl;
    c->in_part_hdr = 0;
    c->hlen = 0;
    on_part(t, c, fno);
    if (first && *first < 0) *first = fno < 0 ? 0 : fno;
  }
  return 0;
}

static void ws_pong(struct conn *c, const char *p, size_t n) {
  char f[2 + 4 + 125];
  f[0] = (char)0x8A;
  f[1] = (char)(0x80 | n);
  memset(f + 2, 0, 4); /* mask key 0: the payload goes as is */
  memcpy(f + 6, p, n);
  send_all(c->fd, f, 6 + n);
}

/* A mux client's message, from its first MUX_CAP bytes: a binary media
 * message counts for the subscription its id names (docs/mux.md: bytes 0-3,
 * big-endian), a text one is a control message. */
static void mux_message(struct th *t, struct conn *c) {
  const unsigned char *m = c->mcap;
  if (c->ws_op == 2) {
    if (c->mcap_len < 4) return;
    uint32_t id = (uint32_t)m[0] << 24 | (uint32_t)m[1] << 16 | (uint32_t)m[2] << 8 | m[3];
    if (id >= 1 && id <= (uint32_t)cfg.nmux_streams) {
      if (atomic_load_explicit(&measuring, memory_order_relaxed)) c->sub_frames[id - 1]++;
      on_part(t, c, -1);
    }
    return;
  }
  if (memmem(m, c->mcap_len, "\"type\":\"subscribed\"", 19)) cs[C_MUX].subscribed++;
  else if (memmem(m, c->mcap_len, "\"type\":\"error\"", 14)) cs[C_MUX].sub_errors++;
}

/* One masked text frame (mask key 0, so the payload goes as is). */
static int ws_send_text(struct conn *c, const char *p, size_t n) {
  char f[8 + 1024];
  size_t h = 0;
  if (n > 1024) return -1;
  f[h++] = (char)0x81;
  if (n < 126) {
    f[h++] = (char)(0x80 | n);
  } else {
    f[h++] = (char)(0x80 | 126);
    f[h++] = (char)(n >> 8);
    f[h++] = (char)(n & 0xff);
  }
  memset(f + h, 0, 4);
  h += 4;
  memcpy(f + h, p, n);
  return send_all(c->fd, f, h + n);
}

/* A mux client after its handshake: one subscription per --mux-streams name. */
static int mux_subscribe(struct conn *c) {
  for (int i = 0; i < cfg.nmux_streams; i++) {
    char m[512];
    int k = snprintf(m, sizeof(m), "{\"op\":\"subscribe\",\"id\":%d,\"stream\":\"%s\"%s%s%s}", i + 1,
                     cfg.mux_streams[i], cfg.mux_format ? ",\"format\":\"" : "",
                     cfg.mux_format ? cfg.mux_format : "", cfg.mux_format ? "\"" : "");
    if (ws_send_text(c, m, (size_t)k) != 0) return -1;
  }
  return 0;
}

/* WebSocket frames from the server (unmasked). */
static int feed_ws(struct th *t, struct conn *c, const char *d, size_t n) {
  while (n) {
    if (c->body_left && c->ws_op < 8) {
      size_t take = n < c->body_left ? n : (size_t)c->body_left;
      if (c->mcap_len < c->mcap_want) { /* mux: the message's first bytes */
        size_t k = c->mcap_want - c->mcap_len;
        if (k > take) k = take;
        memcpy(c->mcap + c->mcap_len, d, k);
        c->mcap_len += k;
        if (c->mcap_len == c->mcap_want) mux_message(t, c);
      }
      c->body_left -= take;
      d += take;
      n -= take;
      continue;
    }
    if (c->body_left) { /* control payload: keep it */
      size_t take = n < c->body_left ? n : (size_t)c->body_left;
      memcpy(c->hbuf + c->hlen, d, take);
      c->hlen += take;
      c->body_left -= take;
      d += take;
      n -= take;
      if (c->body_left == 0) {
        if (c->ws_op == 9) ws_pong(c, c->hbuf + c->ws_need, c->hlen - (size_t)c->ws_need);
        if (c->ws_op == 8) return -2;
        c->hlen = 0;
      }
      continue;
    }
    if (c->hlen == 0) {
      c->part_start_ns = t->now;
      c->part_start_off = c->rx_total - n;
    }
    c->hbuf[c->hlen++] = *d++;
    n--;
    if (c->hlen < 2) continue;
    unsigned char b0 = (unsigned char)c->hbuf[0], b1 = (unsigned char)c->hbuf[1];
    int len7 = b1 & 0x7f, need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((b1 & 0x80) ? 4 : 0);
    if ((int)c->hlen < need) continue;
    uint64_t plen = (uint64_t)len7;
    const unsigned char *x = (const unsigned char *)c->hbuf + 2;
    if (len7 == 126) plen = ((uint64_t)x[0] << 8) | x[1];
    if (len7 == 127) {
      plen = 0;
      for (int i = 0; i < 8; i++) plen = (plen << 8) | x[i];
    }
    c->ws_op = b0 & 0x0f;
    c->ws_fin = (b0 & 0x80) != 0;
    c->ws_need = need;
    if (c->ws_op >= 8) {
      if (plen > 125) return -1;
      if (plen == 0) {
        if (c->ws_op == 9) ws_pong(c, "", 0);
        if (c->ws_op == 8) return -2;
        c->hlen = 0;
      }
      c->body_left = plen;
      continue;
    }
    c->body_left = plen;
    c->hlen = 0;
    if (c->cls == C_MUX) {
      /* Continuation frames (opcode 0) are not looked at: sluice sends
       * each message as one frame. */
      c->mcap_len = 0;
      c->mcap_want = c->ws_op == 1 || c->ws_op == 2 ? (plen < MUX_CAP ? (size_t)plen : MUX_CAP) : 0;
      if (c->mcap_want == 0 && (c->ws_op == 1 || c->ws_op == 2)) mux_message(t, c);
    } else if (c->ws_op == 1 || c->ws_op == 2) {
      on_part(t, c, -1); /* a new message */
    }
  }
  return 0;
}

/* Response head; on 200/101 switch to the body state. -1: error. */
static int feed_head(struct th *t, struct conn *c, const char **d, size_t *n) {
  size_t room = HBUF - 1 - c->hlen, take = *n < room ? *n : room, old = c->hlen;
  memcpy(c->hbuf + c->hlen, *d, take);
  c->hlen += take;
  c->hbuf[c->hlen] = 0;
  char *end = memmem(c->hbuf + (old > 3 ? old - 3 : 0), c->hlen - (old > 3 ? old - 3 : 0), "\r\n\r\n", 4);
  if (end == NULL) {
    *d += take;
    *n -= take;
    return c->hlen >= HBUF - 1 ? -1 : 0;
  }
  size_t hl = (size_t)(end - c->hbuf) + 4, used = hl - old;
  *d += used;
  *n -= used;
  int status = 0;
  if (sscanf(c->hbuf, "HTTP/1.%*d %d", &status) != 1) return -1;
  c->status = status;
  c->hlen = 0;
  if (c->cls == C_FLOOD) {
    long long cl = head_num(c->hbuf, hl, "Content-Length");
    if (status != 200 || cl < 0) return -1;
    c->body_left = (uint64_t)cl;
    c->state = ST_BODY;
    return 1;
  }
  if (c->cls == C_WS || c->cls == C_MUX) {
    if (status != 101) return status == 503 ? -3 : -1;
    c->state = ST_WS;
    if (c->cls == C_MUX && mux_subscribe(c) != 0) return -1;
  } else {
    if (status != 200) return status == 503 ? -3 : -1;
    c->state = ST_STREAM;
  }
  if (!c->ok) {
    c->ok = 1;
    cs[c->cls].ok++;
  }
  (void)t;
  return 1;
}

static void flood_next(struct th *t, struct conn *c) {
  if (atomic_load(&stop_all)) return;
  const struct target *tg = &cfg.flood;
  char req[600];
  int k = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", tg->path, tg->host);
  c->req_ns = t->now;
  c->state = ST_HEAD;
  if (send_all(c->fd, req, (size_t)k) != 0) conn_error(t, c);
}

/* Consume received bytes according to the state. */
static void feed(struct th *t, struct conn *c, const char *d, size_t n) {
  int m = atomic_load_explicit(&measuring, memory_order_relaxed);
  c->rx_total += n;
  if (m) {
    c->bytes += n;
    cs[c->cls].bytes += n;
  }
  while (n && c->fd >= 0) {
    switch (c->state) {
      case ST_RAW:
        if (cfg.raw_count != RC_NONE) raw_count(t, c, d, n);
        return;
      case ST_SLOWLORIS: {
        /* The server answered (408 expected) */
        if (c->hlen == 0 && n >= 12 && strncmp(d, "HTTP/1.", 7) == 0) {
          c->status = atoi(d + 9);
          if (c->status == 408) cs[c->cls].got408++;
        }
        c->hlen = 1;
        return;
      }
      case ST_HEAD: {
        int rc = feed_head(t, c, &d, &n);
        if (rc == -3) {
          cs[c->cls].refused++;
          if (c->cls == C_CHURN) cs[c->cls].cycles++;
          conn_close(t, c, 0);
          return;
        }
        if (rc < 0) {
          conn_error(t, c);
          return;
        }
        if (c->state == ST_BODY && c->body_left == 0) goto body_done;
        break;
      }
      case ST_BODY: {
        size_t take = n < c->body_left ? n : (size_t)c->body_left;
        c->body_left -= take;
        d += take;
        n -= take;
        if (c->body_left == 0) {
        body_done:
          if (!c->ok) c->ok = 1, cs[C_FLOOD].ok++;
          if (atomic_load(&measuring)) {
            cs[C_FLOOD].responses++;
            hadd(cs[C_FLOOD].lat, (t->now - c->req_ns) / 1000u);
          }
          flood_next(t, c);
        }
        break;
      }
      case ST_STREAM: {
        long long first = -1;
        if (feed_stream(t, c, d, n, c->cls == C_CHURN ? &first : NULL) != 0) {
          conn_error(t, c);
          return;
        }
        if (c->cls == C_CHURN && first >= 0) {
          if (atomic_load(&measuring)) {
            cs[C_CHURN].cycles++;
            hadd(cs[C_CHURN].lat, (t->now - c->t_connect) / 1000u);
          }
          conn_close(t, c, 0);
        }
        return;
      }
      case ST_WS: {
        int rc = feed_ws(t, c, d, n);
        if (rc == -2) {
          conn_close(t, c, 1);
          return;
        }
        if (rc < 0) conn_error(t, c);
        return;
      }
      default:
        return;
    }
  }
}

/* Read once from c (at most `max` bytes). Returns bytes, 0 at EOF, -1. */
static ssize_t read_some(struct th *t, struct conn *c, size_t max) {
  if (max > t->rcap) max = t->rcap;
  ssize_t r = recv(c->fd, t->rbuf, max, MSG_DONTWAIT);
  if (r > 0) {
    feed(t, c, t->rbuf, (size_t)r);
    return r;
  }
  if (r == 0) {
    conn_close(t, c, 1);
    return 0;
  }
  if (errno == EAGAIN || errno == EINTR) return -1;
  conn_close(t, c, 1); /* ECONNRESET: closed by the server */
  return 0;
}

static void handle(struct th *t, struct conn *c, uint32_t ev) {
  if (c->state == ST_CONNECTING) {
    on_connected(t, c);
    return;
  }
  if (c->fd < 0) return;
  if (c->state == ST_STALLED || (c->cls == C_SLOW) || (c->cls == C_FREEZE && c->frozen)) {
    /* Registered for hang-ups only. */
    if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) conn_close(t, c, 1);
    return;
  }
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) read_some(t, c, t->rcap);
}

/* ---- server probes ------------------------------------------------------ */

static long long proc_ticks(int pid) {
  char path[64], buf[2048];
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  unsigned long long ut = 0, st = 0;
  /* after ')': state ppid pgrp session tty tpgid flags minflt cminflt
   * majflt cmajflt utime stime */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return -1;
  return (long long)(ut + st);
}

static long proc_status_kb(int pid, const char *key) {
  char path[64], line[256];
  snprintf(path, sizeof(path), "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long v = -1;
  size_t kl = strlen(key);
  while (fgets(line, sizeof(line), f))
    if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
      v = strtol(line + kl + 1, NULL, 10);
      break;
    }
  fclose(f);
  return v;
}

/* GET the stats URL (blocking, 2 s at most); the JSON body or NULL. */
static char *fetch_stats(void) {
  if (!cfg.have_stats) return NULL;
  const struct target *tg = &cfg.stats;
  int fd = socket(tg->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return NULL;
  struct timeval tv = {2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  char *out = NULL;
  if (connect(fd, (const struct sockaddr *)&tg->sa, tg->salen) == 0) {
    char req[700];
    int k = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     tg->path, tg->host);
    if (send_all(fd, req, (size_t)k) == 0) {
      size_t cap = 1 << 16, len = 0;
      char *buf = malloc(cap);
      for (;;) {
        if (len + 4096 > cap) {
          if (cap >= (16u << 20)) break;
          cap *= 2;
          buf = realloc(buf, cap);
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r <= 0) break;
        len += (size_t)r;
      }
      buf[len] = 0;
      char *body = strstr(buf, "\r\n\r\n");
      if (body && body[4] == '{') out = strdup(body + 4);
      free(buf);
    }
  }
  close(fd);
  return out;
}

struct sample {
  double t_s;
  long long ticks;
  long rss_kb;
  char *stats;
};
static struct sample *samples;
static int nsamples, cap_samples;
static pthread_mutex_t samples_lock = PTHREAD_MUTEX_INITIALIZER;

static void take_sample(struct sample *s, uint64_t base_ns) {
  s->t_s = base_ns ? (double)(mono_ns() - base_ns) / 1e9 : 0;
  s->ticks = cfg.server_pid ? proc_ticks(cfg.server_pid) : -1;
  s->rss_kb = cfg.server_pid ? proc_status_kb(cfg.server_pid, "VmRSS") : -1;
  s->stats = fetch_stats();
}

static void *sampler_main(void *arg) {
  (void)arg;
  while (!atomic_load(&measuring) && !atomic_load(&stop_all)) usleep(10000);
  uint64_t base = win_start_ns, next = base;
  while (!atomic_load(&stop_all)) {
    uint64_t now = mono_ns();
    if (now < next) {
      usleep(5000);
      continue;
    }
    if (!atomic_load(&measuring)) break;
    struct sample s;
    take_sample(&s, base);
    pthread_mutex_lock(&samples_lock);
    if (nsamples == cap_samples) {
      cap_samples = cap_samples ? cap_samples * 2 : 64;
      samples = realloc(samples, (size_t)cap_samples * sizeof(*samples));
    }
    samples[nsamples++] = s;
    pthread_mutex_unlock(&samples_lock);
    next += (uint64_t)cfg.sample_ms * 1000000u;
  }
  return NULL;
}

/* ---- the attack thread: slowloris, churn, flood ----------------------- */

static struct conn *att_conns;
static int natt;
#define CHURN_SLOTS 64

static void *attack_main(void *arg) {
  struct th *t = arg;
  struct epoll_event evs[256];
  double churn_tokens = 0;
  uint64_t last = mono_ns();
  struct conn *sl = att_conns, *fl = att_conns + cfg.n[C_SLOWLORIS],
              *ch = fl + cfg.n[C_FLOOD];
  int flood_started = 0;
  while (!atomic_load(&stop_all)) {
    t->now = mono_ns();
    /* Slowloris connects at start, a few per pass. */
    while (t->next_pending < t->npending && t->inflight < 200) {
      struct conn *c = t->pending[t->next_pending++];
      start_connect(t, c);
    }
    int m = atomic_load(&measuring);
    if (m && !flood_started) {
      flood_started = 1;
      for (int i = 0; i < cfg.n[C_FLOOD]; i++) start_connect(t, &fl[i]);
    }
    /* Retries of refused connects. */
    for (int i = 0; i < natt; i++) {
      struct conn *c = &att_conns[i];
      if (c->state == ST_IDLE && c->retry_at && t->now >= c->retry_at && c->cls != C_CHURN) {
        c->retry_at = 0;
        start_connect(t, c);
      }
    }
    /* Churn: RATE cycles per second, at most CHURN_SLOTS at once. */
    double dt = (double)(t->now - last) / 1e9;
    last = t->now;
    if (m && cfg.churn_rate > 0) {
      churn_tokens += dt * cfg.churn_rate;
      if (churn_tokens > CHURN_SLOTS) churn_tokens = CHURN_SLOTS;
      for (int i = 0; i < CHURN_SLOTS && churn_tokens >= 1; i++) {
        struct conn *c = &ch[i];
        if (c->state != ST_DONE && c->state != ST_IDLE) {
          /* A cycle stuck for 5 s counts as an error. */
          if (t->now - c->t_connect > 5000000000u) conn_error(t, c);
          continue;
        }
        memset(c, 0, sizeof(*c));
        c->fd = -1;
        c->cls = C_CHURN;
        churn_tokens -= 1;
        start_connect(t, c);
      }
    }
    /* Slowloris trickle. */
    for (int i = 0; i < cfg.n[C_SLOWLORIS]; i++) {
      struct conn *c = &sl[i];
      if (c->state == ST_SLOWLORIS && t->now >= c->next_trickle) {
        if (send(c->fd, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) c->trickled++;
        c->next_trickle = t->now + (uint64_t)(cfg.slowloris_interval * 1e9);
      }
    }
    int n = epoll_wait(t->ep, evs, 256, 5);
    t->now = mono_ns();
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      uint32_t e = evs[i].events;
      if (c->state == ST_CONNECTING) {
        on_connected(t, c); /* a flood connection sent its first GET there */
        continue;
      }
      if (c->fd < 0) continue;
      if (c->state == ST_SLOWLORIS) {
        char b[512];
        ssize_t r = recv(c->fd, b, sizeof(b), MSG_DONTWAIT);
        if (r > 0) {
          feed(t, c, b, (size_t)r);
          continue;
        }
        if (r < 0 && errno == EAGAIN) continue;
        hadd(cs[C_SLOWLORIS].lat, (t->now - c->t_connect) / 1000u);
        conn_close(t, c, 1);
        continue;
      }
      if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        int was_closed = c->closed;
        read_some(t, c, t->rcap);
        if (c->cls == C_CHURN && c->closed && !was_closed && c->state == ST_DONE && !c->err) {
          /* The server closed a cycle before its first frame. */
          c->err = 1;
          cs[C_CHURN].errors++;
        }
      }
    }
  }
  for (int i = 0; i < natt; i++)
    if (att_conns[i].fd >= 0) close(att_conns[i].fd);
  return NULL;
}

/* ---- reporting ---------------------------------------------------------- */

struct cls_report {
  int count;
  double fps_mean, fps_min, fps_max;
  double gap_p50, gap_p99, gap_max, gap_p99_reader_med, gap_p99_reader_max;
  double lag_p50, lag_p99, lag_max;
  double mbps, mbps_reader_min, mbps_reader_med, mbps_reader_max;
};

static double lag_q(const uint32_t *h, double q) {
  uint64_t n = 0, acc = 0;
  for (int i = 0; i < 1024; i++) n += h[i];
  if (!n) return -1;
  uint64_t rank = qrank(q, n);
  for (int i = 0; i < 1024; i++) {
    acc += h[i];
    if (acc >= rank) return i;
  }
  return 1023;
}

static void report_cls(int k, struct conn *list, int n, double win, struct cls_report *r) {
  memset(r, 0, sizeof(*r));
  r->count = cfg.n[k];
  uint32_t *pool = xcalloc(HN, sizeof(uint32_t));
  double *p99s = xcalloc((size_t)n + 1, sizeof(double)), *fps = xcalloc((size_t)n + 1, sizeof(double)),
         *mb = xcalloc((size_t)n + 1, sizeof(double));
  int np = 0, nf = 0;
  for (int i = 0; i < n; i++) {
    struct conn *c = &list[i];
    if (c->cls != k) continue;
    if (c->gaps) {
      for (int j = 0; j < HN; j++) pool[j] += c->gaps[j];
      if (hcount(c->gaps) >= 5) p99s[np++] = hq(c->gaps, 0.99) / 1000.0;
    }
    fps[nf] = (double)c->frames / win;
    mb[nf] = (double)c->bytes / win / 1e6;
    nf++;
  }
  if (nf) {
    qsort(fps, (size_t)nf, sizeof(double), cmp_double);
    qsort(mb, (size_t)nf, sizeof(double), cmp_double);
    double s = 0;
    for (int i = 0; i < nf; i++) s += fps[i];
    r->fps_mean = s / nf;
    r->fps_min = fps[0];
    r->fps_max = fps[nf - 1];
    r->mbps_reader_min = mb[0];
    r->mbps_reader_med = mb[nf / 2];
    r->mbps_reader_max = mb[nf - 1];
  }
  if (np) {
    qsort(p99s, (size_t)np, sizeof(double), cmp_double);
    r->gap_p99_reader_med = p99s[np / 2];
    r->gap_p99_reader_max = p99s[np - 1];
  } else {
    r->gap_p99_reader_med = r->gap_p99_reader_max = -1;
  }
  r->gap_p50 = hq(pool, 0.5) / 1000.0;
  r->gap_p99 = hq(pool, 0.99) / 1000.0;
  r->gap_max = hmax(pool) / 1000.0;
  if (r->gap_p50 < 0) r->gap_p50 = r->gap_p99 = r->gap_max = -1;
  r->lag_p50 = lag_q(cs[k].lag, 0.5);
  r->lag_p99 = lag_q(cs[k].lag, 0.99);
  r->lag_max = -1;
  for (int i = 1023; i >= 0; i--)
    if (cs[k].lag[i]) {
      r->lag_max = i;
      break;
    }
  r->mbps = (double)cs[k].bytes / win / 1e6;
  free(pool);
  free(p99s);
  free(fps);
  free(mb);
}

static void jnum(FILE *f, const char *k, double v, int last) {
  if (v < 0 || v != v) fprintf(f, "\"%s\":null%s", k, last ? "" : ",");
  else fprintf(f, "\"%s\":%.6g%s", k, v, last ? "" : ",");
}

static void jsample(FILE *f, const char *name, const struct sample *s) {
  fprintf(f, "\"%s\":{\"t_s\":%.3f,\"cpu_ticks\":%lld,\"rss_kb\":%ld,\"stats\":%s}", name, s->t_s,
          s->ticks, s->rss_kb, s->stats ? s->stats : "null");
}

/* ---- main --------------------------------------------------------------- */

static void usage(void) {
  printf(
      "Usage: loadgen --url http://127.0.0.1:PORT/stream.mjpg [CLASSES] [OPTIONS]\n"
      "Classes: --healthy N --stalled N --slow N:KBPS --freeze N:SECS[:AT] --ws N\n"
      "         --slowloris N --churn RATE --flood N --raw N --mux N\n"
      "Options: --duration S (10) --warmup S (1) --connect-timeout S (20)\n"
      "         --ws-path P (/ws) --flood-path P (/snapshot.jpg) --churn-path P (stream path)\n"
      "         --ws-paths P1,P2,... (ws viewer i opens path i mod the count)\n"
      "         --mux-path P (/mux) --mux-streams A,B,... (default) --mux-format F\n"
      "         --raw-url URL (tcp://H:P: send nothing; http://: GET first; default --url)\n"
      "         --raw-count h264|mp4 (raw readers count frames: Annex-B pictures or moof boxes)\n"
      "         --slowloris-interval S (2) --stall-rcvbuf BYTES (4096)\n"
      "         --connect-inflight N (200: connects in progress at once; a server with a\n"
      "           short listen backlog, such as GStreamer's 5, needs a few)\n"
      "         --connect-rate N (connects per second; 0: no pacing)\n"
      "         --server-pid PID --stats-url URL --sample-ms MS --json\n"
      "Loopback addresses only. Stops by itself after warmup + duration.\n");
}

static int parse_pair(const char *v, int *n, double *x, double *y) {
  char *e;
  long a = strtol(v, &e, 10);
  if (e == v || a < 0) return -1;
  *n = (int)a;
  if (*e != ':') return 0;
  *x = strtod(e + 1, &e);
  if (*e == ':' && y) *y = strtod(e + 1, &e);
  return *e ? -1 : 0;
}

int main(int argc, char **argv) {
  const char *url = NULL, *ws_path = "/ws", *ws_paths = NULL, *mux_path = "/mux", *mux_streams = "default", *flood_path = "/snapshot.jpg", *churn_path = NULL,
             *raw_url = NULL, *stats_url = NULL;
  enum { O_HEALTHY = 300, O_STALLED, O_SLOW, O_FREEZE, O_WS, O_SLOWLORIS, O_CHURN, O_FLOOD, O_RAW,
         O_DURATION, O_WARMUP, O_CTO, O_WSPATH, O_FLOODPATH, O_CHURNPATH, O_RAWURL, O_SLINT,
         O_PID, O_STATS, O_SAMPLE, O_JSON, O_RCVBUF, O_INFLIGHT, O_CRATE, O_RCOUNT, O_MUX, O_WSPATHS,
         O_MUXPATH, O_MUXSTREAMS, O_MUXFORMAT };
  static const struct option lo[] = {
      {"url", 1, 0, 'u'}, {"healthy", 1, 0, O_HEALTHY}, {"stalled", 1, 0, O_STALLED},
      {"slow", 1, 0, O_SLOW}, {"freeze", 1, 0, O_FREEZE}, {"ws", 1, 0, O_WS},
      {"slowloris", 1, 0, O_SLOWLORIS}, {"churn", 1, 0, O_CHURN}, {"flood", 1, 0, O_FLOOD},
      {"raw", 1, 0, O_RAW}, {"duration", 1, 0, O_DURATION}, {"warmup", 1, 0, O_WARMUP},
      {"connect-timeout", 1, 0, O_CTO}, {"ws-path", 1, 0, O_WSPATH},
      {"flood-path", 1, 0, O_FLOODPATH}, {"churn-path", 1, 0, O_CHURNPATH},
      {"raw-url", 1, 0, O_RAWURL}, {"slowloris-interval", 1, 0, O_SLINT},
      {"server-pid", 1, 0, O_PID}, {"stats-url", 1, 0, O_STATS}, {"sample-ms", 1, 0, O_SAMPLE},
      {"json", 0, 0, O_JSON}, {"stall-rcvbuf", 1, 0, O_RCVBUF},
      {"connect-inflight", 1, 0, O_INFLIGHT}, {"connect-rate", 1, 0, O_CRATE},
      {"raw-count", 1, 0, O_RCOUNT}, {"mux", 1, 0, O_MUX}, {"ws-paths", 1, 0, O_WSPATHS},
      {"mux-path", 1, 0, O_MUXPATH}, {"mux-streams", 1, 0, O_MUXSTREAMS},
      {"mux-format", 1, 0, O_MUXFORMAT}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
  int o;
  double dummy;
  while ((o = getopt_long(argc, argv, "u:h", lo, NULL)) != -1) {
    switch (o) {
      case 'u': url = optarg; break;
      case O_HEALTHY: cfg.n[C_HEALTHY] = atoi(optarg); break;
      case O_STALLED: cfg.n[C_STALLED] = atoi(optarg); break;
      case O_SLOW:
        if (parse_pair(optarg, &cfg.n[C_SLOW], &cfg.slow_kbps, NULL)) die("--slow N:KBPS");
        break;
      case O_FREEZE:
        if (parse_pair(optarg, &cfg.n[C_FREEZE], &cfg.freeze_s, &cfg.freeze_at)) die("--freeze N:SECS[:AT]");
        break;
      case O_WS: cfg.n[C_WS] = atoi(optarg); break;
      case O_SLOWLORIS: cfg.n[C_SLOWLORIS] = atoi(optarg); break;
      case O_CHURN: cfg.churn_rate = atof(optarg); cfg.n[C_CHURN] = cfg.churn_rate > 0 ? CHURN_SLOTS : 0; break;
      case O_FLOOD: cfg.n[C_FLOOD] = atoi(optarg); break;
      case O_RAW: cfg.n[C_RAW] = atoi(optarg); break;
      case O_DURATION: cfg.duration = atof(optarg); break;
      case O_WARMUP: cfg.warmup = atof(optarg); break;
      case O_CTO: cfg.connect_timeout = atof(optarg); break;
      case O_WSPATH: ws_path = optarg; break;
      case O_FLOODPATH: flood_path = optarg; break;
      case O_CHURNPATH: churn_path = optarg; break;
      case O_RAWURL: raw_url = optarg; break;
      case O_SLINT: cfg.slowloris_interval = atof(optarg); break;
      case O_PID: cfg.server_pid = atoi(optarg); break;
      case O_STATS: stats_url = optarg; break;
      case O_SAMPLE: cfg.sample_ms = atoi(optarg); break;
      case O_JSON: cfg.json = 1; break;
      case O_RCVBUF: cfg.stall_rcvbuf = atoi(optarg); break;
      case O_INFLIGHT: cfg.inflight = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
      case O_CRATE: cfg.connect_rate = atof(optarg); break;
      case O_RCOUNT:
        if (strcmp(optarg, "h264") == 0) cfg.raw_count = RC_H264;
        else if (strcmp(optarg, "mp4") == 0) cfg.raw_count = RC_MP4;
        else die("--raw-count: h264 or mp4");
        break;
      case O_MUX: cfg.n[C_MUX] = atoi(optarg); break;
      case O_WSPATHS: ws_paths = optarg; break;
      case O_MUXPATH: mux_path = optarg; break;
      case O_MUXSTREAMS: mux_streams = optarg; break;
      case O_MUXFORMAT: cfg.mux_format = optarg; break;
      case 'h': usage(); return 0;
      default: usage(); return 2;
    }
  }
  (void)dummy;
  if (!url && !raw_url) die("--url is required (try --help)");
  if (cfg.duration <= 0 || cfg.duration > 3600) die("--duration: 0 < S <= 3600");
  if (cfg.warmup < 0 || cfg.warmup > 600) die("--warmup: 0..600");
  if (cfg.slowloris_interval <= 0) die("--slowloris-interval must be > 0");
  for (int k = 0; k < C_N; k++)
    if (cfg.n[k] < 0 || cfg.n[k] > 60000) die("--%s: 0..60000", cls_name[k]);
  if (cfg.n[C_FREEZE] && cfg.freeze_at + cfg.freeze_s >= cfg.duration)
    die("--freeze: AT + SECS must end inside --duration");
  if (cfg.churn_rate < 0 || cfg.churn_rate > 100000) die("--churn: 0..100000 per second");

  parse_url(url ? url : raw_url, &cfg.stream);
  char u[1200];
  const char *base = url ? url : raw_url;
  /* Other paths on the same host:port. */
  const char *hp = strstr(base, "://") + 3, *slash = strchr(hp, '/');
  int hplen = slash ? (int)(slash - hp) : (int)strlen(hp);
  snprintf(u, sizeof(u), "http://%.*s%s", hplen, hp, ws_path);
  parse_url(u, &cfg.ws);
  snprintf(u, sizeof(u), "http://%.*s%s", hplen, hp, flood_path);
  parse_url(u, &cfg.flood);
  snprintf(u, sizeof(u), "http://%.*s%s", hplen, hp, churn_path ? churn_path : cfg.stream.path);
  parse_url(u, &cfg.churn);
  parse_url(raw_url ? raw_url : base, &cfg.raw);
  snprintf(u, sizeof(u), "http://%.*s%s", hplen, hp, mux_path);
  parse_url(u, &cfg.mux);
  if (ws_paths) { /* comma-separated paths on the same host:port */
    int cnt = 1;
    for (const char *q = ws_paths; *q; q++) cnt += *q == ',';
    cfg.ws_paths = xcalloc((size_t)cnt, sizeof(struct target));
    for (const char *q = ws_paths; *q;) {
      size_t l = strcspn(q, ",");
      if (l) {
        snprintf(u, sizeof(u), "http://%.*s%.*s", hplen, hp, (int)l, q);
        parse_url(u, &cfg.ws_paths[cfg.nws_paths++]);
      }
      q += l + (q[l] == ',');
    }
  }
  for (const char *q = mux_streams; *q;) {
    size_t l = strcspn(q, ",");
    if (l) {
      if (cfg.nmux_streams == MUX_MAX) die("--mux-streams: at most %d", MUX_MAX);
      if (l >= sizeof(cfg.mux_streams[0]) || memchr(q, '"', l) || memchr(q, '\\', l))
        die("--mux-streams: bad name %.*s", (int)l, q);
      snprintf(cfg.mux_streams[cfg.nmux_streams++], sizeof(cfg.mux_streams[0]), "%.*s", (int)l, q);
    }
    q += l + (q[l] == ',');
  }
  if (cfg.mux_format && (strlen(cfg.mux_format) > 16 || strpbrk(cfg.mux_format, "\"\\")))
    die("--mux-format: a short plain word");
  if (stats_url) {
    parse_url(stats_url, &cfg.stats);
    cfg.have_stats = 1;
  }

  /* File descriptors: raise the soft limit to the hard one. */
  int total = 0;
  for (int k = 0; k < C_N; k++) total += cfg.n[k];
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)total + 64 > rl.rlim_cur)
      die("%d connections need more file descriptors than RLIMIT_NOFILE (%llu) allows", total,
          (unsigned long long)rl.rlim_cur);
  }
  signal(SIGPIPE, SIG_IGN);

  /* Main-thread connections, in class order. */
  int main_cls[] = {C_HEALTHY, C_RAW, C_WS, C_MUX, C_SLOW, C_FREEZE, C_STALLED};
  for (size_t i = 0; i < sizeof(main_cls) / sizeof(main_cls[0]); i++) nconns_main += cfg.n[main_cls[i]];
  conns_main = xcalloc((size_t)nconns_main + 1, sizeof(struct conn));
  struct th tm = {0};
  tm.ep = epoll_create1(EPOLL_CLOEXEC);
  tm.rcap = 256 * 1024;
  tm.rbuf = malloc(tm.rcap);
  tm.pending = xcalloc((size_t)nconns_main + 1, sizeof(struct conn *));
  int idx = 0;
  for (size_t i = 0; i < sizeof(main_cls) / sizeof(main_cls[0]); i++)
    for (int j = 0; j < cfg.n[main_cls[i]]; j++) {
      struct conn *c = &conns_main[idx];
      c->fd = -1;
      c->cls = main_cls[i];
      c->idx = idx;
      c->kidx = j;
      if (c->cls == C_MUX) c->sub_frames = xcalloc(MUX_MAX, sizeof(uint64_t));
      if (c->cls == C_HEALTHY || c->cls == C_SLOW || c->cls == C_FREEZE || c->cls == C_WS ||
          (c->cls == C_RAW && cfg.raw_count != RC_NONE))
        c->gaps = xcalloc(HN, sizeof(uint32_t));
      tm.pending[tm.npending++] = c;
      idx++;
    }
  /* Attack thread: slowloris, flood, churn slots. */
  natt = cfg.n[C_SLOWLORIS] + cfg.n[C_FLOOD] + cfg.n[C_CHURN];
  att_conns = xcalloc((size_t)natt + 1, sizeof(struct conn));
  struct th ta = {0};
  ta.ep = epoll_create1(EPOLL_CLOEXEC);
  ta.rcap = 256 * 1024;
  ta.rbuf = malloc(ta.rcap);
  ta.pending = xcalloc((size_t)cfg.n[C_SLOWLORIS] + 1, sizeof(struct conn *));
  for (int i = 0; i < natt; i++) {
    struct conn *c = &att_conns[i];
    c->fd = -1;
    c->cls = i < cfg.n[C_SLOWLORIS] ? C_SLOWLORIS : i < cfg.n[C_SLOWLORIS] + cfg.n[C_FLOOD] ? C_FLOOD : C_CHURN;
    c->state = c->cls == C_CHURN ? ST_DONE : ST_IDLE;
    if (c->cls == C_SLOWLORIS) ta.pending[ta.npending++] = c;
  }

  uint64_t t0 = mono_ns();
  connect_deadline_ns = t0 + (uint64_t)(cfg.connect_timeout * 1e9);
  struct sample s_before = {0}, s_start = {0}, s_end = {0};
  take_sample(&s_before, 0);

  pthread_t att, smp;
  int have_att = natt > 0, have_smp = cfg.sample_ms > 0 && (cfg.server_pid || cfg.have_stats);
  if (have_att && pthread_create(&att, NULL, attack_main, &ta) != 0) die("pthread_create");
  if (have_smp && pthread_create(&smp, NULL, sampler_main, NULL) != 0) die("pthread_create");

  struct epoll_event evs[512];
  uint64_t last_slow = t0, connected_at = 0, freeze_start = 0;
  int phase = 0; /* 0 connecting, 1 warmup, 2 measuring */
  int said_connected = 0;
  double connect_tokens = 0;
  uint64_t last_tok = t0;
  double connect_s = 0;
  for (;;) {
    tm.now = mono_ns();
    if (cfg.connect_rate > 0) { /* paced: a server with a short listen backlog */
      connect_tokens += (double)(tm.now - last_tok) / 1e9 * cfg.connect_rate;
      if (connect_tokens > 4) connect_tokens = 4;
    } else {
      connect_tokens = 1e9;
    }
    last_tok = tm.now;
    while (tm.next_pending < tm.npending && tm.inflight < cfg.inflight && connect_tokens >= 1) {
      connect_tokens -= 1;
      start_connect(&tm, tm.pending[tm.next_pending++]);
    }
    for (int i = 0; i < nconns_main; i++) {
      struct conn *c = &conns_main[i];
      if (c->state == ST_IDLE && c->retry_at && tm.now >= c->retry_at && tm.inflight < cfg.inflight) {
        c->retry_at = 0;
        start_connect(&tm, c);
      }
    }
    if (phase == 0 && !said_connected && tm.next_pending == tm.npending && tm.inflight == 0) {
      /* Every TCP connect is done (the others failed): a driver that
       * holds the stream back until the readers are in waits for this. */
      said_connected = 1;
      fprintf(stderr, "loadgen: connected\n");
      fflush(stderr);
    }
    if (phase == 0) {
      int settled = tm.next_pending == tm.npending;
      for (int i = 0; settled && i < nconns_main; i++) {
        struct conn *c = &conns_main[i];
        if (c->state == ST_CONNECTING || (c->state == ST_IDLE) ||
            (c->state == ST_HEAD && c->cls != C_SLOW) || (c->state == ST_RAW && c->rx_total == 0))
          settled = 0;
      }
      if (settled || tm.now >= connect_deadline_ns) {
        phase = 1;
        connected_at = tm.now;
        connect_s = (double)(tm.now - t0) / 1e9;
      }
    }
    if (phase == 1 && tm.now >= connected_at + (uint64_t)(cfg.warmup * 1e9)) {
      take_sample(&s_start, 0);
      tm.now = mono_ns();
      win_start_ns = tm.now;
      win_end_ns = tm.now + (uint64_t)(cfg.duration * 1e9);
      s_start.t_s = 0;
      atomic_store(&measuring, 1);
      phase = 2;
    }
    if (phase == 2 && tm.now >= win_end_ns) break;
    /* Slow readers: read their allowance every 20 ms. */
    if (tm.now - last_slow >= 20000000u) {
      double dt = (double)(tm.now - last_slow) / 1e9;
      last_slow = tm.now;
      for (int i = 0; i < nconns_main; i++) {
        struct conn *c = &conns_main[i];
        if (c->cls != C_SLOW || c->fd < 0 || c->state == ST_CONNECTING) continue;
        c->tokens += dt * cfg.slow_kbps * 1024.0;
        if (c->tokens > cfg.slow_kbps * 1024.0) c->tokens = cfg.slow_kbps * 1024.0; /* 1 s burst */
        while (c->tokens >= 1 && c->fd >= 0) {
          ssize_t r = read_some(&tm, c, (size_t)c->tokens);
          if (r <= 0) break;
          c->tokens -= (double)r;
        }
      }
    }
    /* Freeze and resume. */
    if (phase == 2 && cfg.n[C_FREEZE]) {
      if (!freeze_start && tm.now >= win_start_ns + (uint64_t)(cfg.freeze_at * 1e9)) {
        freeze_start = tm.now;
        for (int i = 0; i < nconns_main; i++) {
          struct conn *c = &conns_main[i];
          if (c->cls != C_FREEZE || c->fd < 0) continue;
          c->frozen = 1;
          ep_set(&tm, c, EPOLLRDHUP, EPOLL_CTL_MOD);
        }
      } else if (freeze_start && tm.now >= freeze_start + (uint64_t)(cfg.freeze_s * 1e9)) {
        for (int i = 0; i < nconns_main; i++) {
          struct conn *c = &conns_main[i];
          if (c->cls != C_FREEZE || c->fd < 0 || !c->frozen) continue;
          c->frozen = 0;
          c->resumed = 1;
          c->waiting_fresh = 1;
          c->resume_ns = tm.now;
          c->resume_off = c->rx_total;
          c->last_part_ns = 0; /* the frozen span is not a frame gap */
          c->first_lag = c->first_ms = c->fresh_ms = c->fresh_kb = -1;
          socklen_t rl2 = sizeof(c->rcvbuf);
          getsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &c->rcvbuf, &rl2);
          ep_set(&tm, c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
        }
      }
    }
    int n = epoll_wait(tm.ep, evs, 512, 5);
    tm.now = mono_ns();
    for (int i = 0; i < n; i++) handle(&tm, evs[i].data.ptr, evs[i].events);
    if (tm.now > connect_deadline_ns + (uint64_t)((cfg.warmup + cfg.duration + 5) * 1e9)) break;
  }
  double win = (double)(mono_ns() - win_start_ns) / 1e9;
  atomic_store(&measuring, 0);
  atomic_store(&stop_all, 1);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  take_sample(&s_end, win_start_ns);
  if (have_att) pthread_join(att, NULL);
  if (have_smp) pthread_join(smp, NULL);

  /* ---- results ---- */
  struct cls_report rep[C_N];
  for (int k = 0; k < C_N; k++) {
    if (k == C_SLOWLORIS || k == C_FLOOD || k == C_CHURN) report_cls(k, att_conns, natt, win, &rep[k]);
    else report_cls(k, conns_main, nconns_main, win, &rep[k]);
  }
  double srv_cpu = -1;
  if (s_start.ticks >= 0 && s_end.ticks >= 0)
    srv_cpu = (double)(s_end.ticks - s_start.ticks) / (double)sysconf(_SC_CLK_TCK) / win * 100.0;
  double lg_cpu = ((double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                   ru.ru_stime.tv_usec / 1e6) / ((double)(mono_ns() - t0) / 1e9) * 100.0;
  /* Freeze summary. */
  double fr_first_lag_max = -1, fr_fresh_ms_max = -1, fr_fresh_kb_max = -1;
  int fr_stale_max = 0, fr_never = 0, fr_rcvbuf_max = 0;
  for (int i = 0; i < nconns_main; i++) {
    struct conn *c = &conns_main[i];
    if (c->cls != C_FREEZE || !c->resumed) continue;
    if (c->first_lag > fr_first_lag_max) fr_first_lag_max = c->first_lag;
    if (c->rcvbuf > fr_rcvbuf_max) fr_rcvbuf_max = c->rcvbuf;
    if (c->waiting_fresh) {
      fr_never++;
      continue;
    }
    if (c->fresh_ms > fr_fresh_ms_max) fr_fresh_ms_max = c->fresh_ms;
    if (c->fresh_kb > fr_fresh_kb_max) fr_fresh_kb_max = c->fresh_kb;
    if (c->stale_parts > fr_stale_max) fr_stale_max = c->stale_parts;
  }

  /* Mux: frames per subscription (connections x --mux-streams). */
  double mx_mean = 0, mx_min = -1, mx_max = -1;
  int mx_subs = 0, mx_none = 0;
  for (int i = 0; i < nconns_main; i++) {
    struct conn *c = &conns_main[i];
    if (c->cls != C_MUX) continue;
    for (int j = 0; j < cfg.nmux_streams; j++) {
      double f = (double)c->sub_frames[j] / win;
      mx_mean += f;
      if (mx_min < 0 || f < mx_min) mx_min = f;
      if (f > mx_max) mx_max = f;
      mx_none += c->sub_frames[j] == 0;
      mx_subs++;
    }
  }
  if (mx_subs) mx_mean /= mx_subs;

  FILE *tf = cfg.json ? stderr : stdout;
  fprintf(tf, "loadgen: %s, window %.1f s (connect %.1f s, warmup %.1f s)", cfg.stream.host, win, connect_s,
          cfg.warmup);
  if (srv_cpu >= 0) fprintf(tf, ", server CPU %.0f%%", srv_cpu);
  if (s_end.rss_kb >= 0) fprintf(tf, ", server RSS %.1f MB", s_end.rss_kb / 1024.0);
  fprintf(tf, ", loadgen CPU %.0f%%\n", lg_cpu);
  fprintf(tf, "%-9s %6s %6s %6s %6s %9s %14s %16s %8s %9s\n", "class", "conns", "ok", "closed", "errors",
          "frames", "fps/conn mean/min", "gap p50/p99 ms", "lag p99", "MB/s");
  for (int k = 0; k < C_N; k++) {
    if (!cfg.n[k]) continue;
    struct cls_report *r = &rep[k];
    int shown = k == C_CHURN ? (int)cs[k].cycles : cfg.n[k];
    char fps[32] = "-", gap[32] = "-", lag[16] = "-";
    if (cs[k].frames) snprintf(fps, sizeof(fps), "%.1f/%.1f", r->fps_mean, r->fps_min);
    if (r->gap_p50 >= 0) snprintf(gap, sizeof(gap), "%.1f/%.1f", r->gap_p50, r->gap_p99);
    if (r->lag_p99 >= 0) snprintf(lag, sizeof(lag), "%.0f", r->lag_p99);
    fprintf(tf, "%-9s %6d %6llu %6llu %6llu %9llu %17s %16s %8s %9.1f\n", cls_name[k], shown,
            (unsigned long long)cs[k].ok, (unsigned long long)cs[k].closed, (unsigned long long)cs[k].errors,
            (unsigned long long)cs[k].frames, fps, gap, lag, r->mbps);
  }
  if (cfg.n[C_FREEZE])
    fprintf(tf, "freeze: after a %.1f s freeze, first part lag <= %.0f frames; fresh part after <= %.0f ms, "
                "%.0f KB, %d stale parts (all from the viewer's own SO_RCVBUF, <= %d KB, when fresh comes at "
                "once); %d never fresh\n",
            cfg.freeze_s, fr_first_lag_max, fr_fresh_ms_max, fr_fresh_kb_max, fr_stale_max, fr_rcvbuf_max / 1024,
            fr_never);
  if (cfg.n[C_SLOWLORIS])
    fprintf(tf, "slowloris: %llu of %d closed by the server (%llu with 408), close after p50 %.1f s / max %.1f s\n",
            (unsigned long long)cs[C_SLOWLORIS].closed, cfg.n[C_SLOWLORIS],
            (unsigned long long)cs[C_SLOWLORIS].got408, hq(cs[C_SLOWLORIS].lat, 0.5) / 1e6,
            hmax(cs[C_SLOWLORIS].lat) / 1e6);
  if (cfg.churn_rate > 0)
    fprintf(tf, "churn: %llu cycles (%.0f/s), %llu refused, %llu errors, first frame p50 %.1f ms p99 %.1f ms\n",
            (unsigned long long)cs[C_CHURN].cycles, cs[C_CHURN].cycles / win,
            (unsigned long long)cs[C_CHURN].refused, (unsigned long long)cs[C_CHURN].errors,
            hq(cs[C_CHURN].lat, 0.5) / 1e3, hq(cs[C_CHURN].lat, 0.99) / 1e3);
  if (cfg.n[C_FLOOD])
    fprintf(tf, "flood: %llu responses (%.0f/s), %llu errors, latency p50 %.2f ms p99 %.2f ms\n",
            (unsigned long long)cs[C_FLOOD].responses, cs[C_FLOOD].responses / win,
            (unsigned long long)cs[C_FLOOD].errors, hq(cs[C_FLOOD].lat, 0.5) / 1e3,
            hq(cs[C_FLOOD].lat, 0.99) / 1e3);
  if (cfg.n[C_MUX])
    fprintf(tf, "mux: %d subscriptions (%d per client), %llu confirmed, %llu errors; fps per subscription "
                "mean %.1f / min %.1f / max %.1f; %d got no frame\n",
            mx_subs, cfg.nmux_streams, (unsigned long long)cs[C_MUX].subscribed,
            (unsigned long long)cs[C_MUX].sub_errors, mx_mean, mx_min, mx_max, mx_none);
  if (cfg.n[C_RAW])
    fprintf(tf, "raw: %.1f MB/s total; per reader min %.2f / median %.2f / max %.2f MB/s\n", rep[C_RAW].mbps,
            rep[C_RAW].mbps_reader_min, rep[C_RAW].mbps_reader_med, rep[C_RAW].mbps_reader_max);

  if (cfg.json) {
    FILE *f = stdout;
    fprintf(f, "{\"target\":\"%s\",\"window_s\":%.3f,\"connect_s\":%.3f,\"warmup_s\":%.3f,", cfg.stream.host, win,
            connect_s, cfg.warmup);
    jnum(f, "loadgen_cpu_pct", lg_cpu, 0);
    fprintf(f, "\"classes\":{");
    int first = 1;
    for (int k = 0; k < C_N; k++) {
      if (!cfg.n[k]) continue;
      struct cls_report *r = &rep[k];
      fprintf(f, "%s\"%s\":{\"count\":%d,\"connected\":%llu,\"ok\":%llu,\"closed\":%llu,\"errors\":%llu,"
                 "\"refused\":%llu,\"frames\":%llu,\"bytes\":%llu,",
              first ? "" : ",", cls_name[k], cfg.n[k], (unsigned long long)cs[k].connected,
              (unsigned long long)cs[k].ok, (unsigned long long)cs[k].closed, (unsigned long long)cs[k].errors,
              (unsigned long long)cs[k].refused, (unsigned long long)cs[k].frames,
              (unsigned long long)cs[k].bytes);
      first = 0;
      jnum(f, "mb_per_s", r->mbps, 0);
      jnum(f, "fps_per_conn_mean", r->fps_mean, 0);
      jnum(f, "fps_per_conn_min", r->fps_min, 0);
      jnum(f, "fps_per_conn_max", r->fps_max, 0);
      jnum(f, "gap_p50_ms", r->gap_p50, 0);
      jnum(f, "gap_p99_ms", r->gap_p99, 0);
      jnum(f, "gap_max_ms", r->gap_max, 0);
      jnum(f, "gap_p99_per_reader_median_ms", r->gap_p99_reader_med, 0);
      jnum(f, "gap_p99_per_reader_max_ms", r->gap_p99_reader_max, 0);
      jnum(f, "lag_frames_p50", r->lag_p50, 0);
      jnum(f, "lag_frames_p99", r->lag_p99, 0);
      jnum(f, "lag_frames_max", r->lag_max, 0);
      jnum(f, "mb_per_s_reader_min", r->mbps_reader_min, 0);
      jnum(f, "mb_per_s_reader_median", r->mbps_reader_med, 0);
      jnum(f, "mb_per_s_reader_max", r->mbps_reader_max, 0);
      if (k == C_FREEZE) {
        jnum(f, "freeze_s", cfg.freeze_s, 0);
        jnum(f, "resume_first_lag_frames_max", fr_first_lag_max, 0);
        jnum(f, "resume_fresh_ms_max", fr_fresh_ms_max, 0);
        jnum(f, "resume_fresh_kb_max", fr_fresh_kb_max, 0);
        fprintf(f, "\"resume_stale_parts_max\":%d,\"resume_never_fresh\":%d,\"rcvbuf_kb_max\":%d,",
                fr_stale_max, fr_never, fr_rcvbuf_max / 1024);
      }
      if (k == C_SLOWLORIS) {
        fprintf(f, "\"got_408\":%llu,", (unsigned long long)cs[k].got408);
        jnum(f, "close_after_p50_s", hq(cs[k].lat, 0.5) / 1e6, 0);
        jnum(f, "close_after_max_s", hmax(cs[k].lat) / 1e6, 0);
      }
      if (k == C_CHURN) {
        fprintf(f, "\"cycles\":%llu,", (unsigned long long)cs[k].cycles);
        jnum(f, "cycles_per_s", cs[k].cycles / win, 0);
        jnum(f, "first_frame_p50_ms", hq(cs[k].lat, 0.5) / 1e3, 0);
        jnum(f, "first_frame_p99_ms", hq(cs[k].lat, 0.99) / 1e3, 0);
      }
      if (k == C_MUX) {
        fprintf(f, "\"subs\":%d,\"subs_per_conn\":%d,\"subscribed\":%llu,\"sub_errors\":%llu,"
                   "\"subs_without_frames\":%d,",
                mx_subs, cfg.nmux_streams, (unsigned long long)cs[k].subscribed,
                (unsigned long long)cs[k].sub_errors, mx_none);
        jnum(f, "fps_per_sub_mean", mx_mean, 0);
        jnum(f, "fps_per_sub_min", mx_min, 0);
        jnum(f, "fps_per_sub_max", mx_max, 0);
      }
      if (k == C_FLOOD) {
        fprintf(f, "\"responses\":%llu,", (unsigned long long)cs[k].responses);
        jnum(f, "responses_per_s", cs[k].responses / win, 0);
        jnum(f, "latency_p50_ms", hq(cs[k].lat, 0.5) / 1e3, 0);
        jnum(f, "latency_p99_ms", hq(cs[k].lat, 0.99) / 1e3, 0);
      }
      fprintf(f, "\"slow_kbps\":%g}", k == C_SLOW ? cfg.slow_kbps : 0);
    }
    fprintf(f, "},\"server\":{\"pid\":%d,", cfg.server_pid);
    jnum(f, "cpu_pct", srv_cpu, 0);
    if (cfg.server_pid) fprintf(f, "\"hwm_kb\":%ld,", proc_status_kb(cfg.server_pid, "VmHWM"));
    jsample(f, "before", &s_before);
    fprintf(f, ",");
    jsample(f, "start", &s_start);
    fprintf(f, ",");
    jsample(f, "end", &s_end);
    fprintf(f, ",\"samples\":[");
    for (int i = 0; i < nsamples; i++) {
      fprintf(f, "%s{\"t_s\":%.3f,\"cpu_ticks\":%lld,\"rss_kb\":%ld,\"stats\":%s}", i ? "," : "", samples[i].t_s,
              samples[i].ticks, samples[i].rss_kb, samples[i].stats ? samples[i].stats : "null");
    }
    fprintf(f, "]}}\n");
  }
  return 0;
}
