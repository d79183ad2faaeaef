/*
 * Fan-out bench server: one live stream of fixed-size frames, built from
 * the library's public API only, so the frame size is exact (unlike the
 * JPEG test pattern of sluice-stream). Driven by bench/fanout.py with
 * bench/loadgen.c as the readers.
 *
 *   bench_fanout_server [--listen 127.0.0.1:0] [--size BYTES (102400)]
 *                       [--fps F (30)] [--mode hub|plain] [--policy P]
 *                       [--budget BYTES] [--max-seconds S (900)] [--demand]
 *                       [--lowat BYTES (0: automatic)] [--threads N (1)]
 *
 * --mode hub (default): a sluice hub. A producer thread publishes a frame
 *   every 1/F s with sl_hub_publish() from outside the loop (as a camera
 *   capture thread does); --fps 0 publishes one frame and then nothing
 *   (idle viewers); --demand publishes on the loop thread, once per
 *   iteration in which some viewer's queue ran dry (as fast as the
 *   readers take frames: the throughput mode). Each frame is a new sl_buf of --size bytes, published
 *   and released at once, as the header's example does (contents left
 *   uninitialised: nobody looks at them, and the producer thread should
 *   cost as little as GStreamer's fakesrc filltype=nothing). A pool that
 *   keeps its references and reuses buffers would be cheaper, but the hub
 *   then never frees its frame records (see bench/RESULTS.md, findings).
 *   Endpoints:
 *     /stream.mjpg  multipart MJPEG (X-Frame per part)    ?policy=...
 *     /stream.raw   the frames' bytes back to back (SL_TRANSPORT_RAW)
 *     /ws           one WebSocket binary message per frame
 *     /snapshot.jpg the latest frame
 *     /api/stats    JSON: rss_bytes, memory{held, peak, ...}, hub{...},
 *                   producer{...}
 * --threads N (hub mode, not with --demand): N loops on N threads, each a
 *   manager listening on the same port (sl_mgr_opts.reuseport, the kernel
 *   spreads the readers) with its own hub; the hubs form one hub group and
 *   the producer publishes each frame once, with sl_hub_group_publish.
 *   /api/stats then describes the loop that answered it ("loop": its
 *   index), whose counters only that loop's thread may read.
 * --mode plain: the machine's limit. No library: accept TCP connections
 *   and write the same frame buffer to each of them in turn with plain
 *   blocking send(), forever (readers connect with tcp://, send nothing).
 *
 * Prints "port N" on its first line of stdout; stops on SIGTERM/SIGINT
 * or after --max-seconds.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sluice.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static struct {
  const char *listen;
  size_t size;
  double fps;
  int plain;
  int policy;
  size_t budget;
  double max_seconds;
  int demand;
  size_t lowat; /* sl_sub_opts.notsent_lowat of every viewer */
  int threads;
} opt = {"127.0.0.1:0", 102400, 30, 0, SL_POLICY_LATEST, 0, 900, 0, 0, 1};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, rss = 0;
  if (f == NULL) return 0;
  if (fscanf(f, "%lu %lu", &size, &rss) != 2) rss = 0;
  fclose(f);
  return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* ---- plain mode: the loopback limit -------------------------------------- */

static int plain_main(void) {
  char host[64] = "127.0.0.1";
  int port = 0;
  const char *colon = strrchr(opt.listen, ':');
  if (colon) {
    snprintf(host, sizeof(host), "%.*s", (int)(colon - opt.listen), opt.listen);
    port = atoi(colon + 1);
  }
  struct sockaddr_in a = {0};
  socklen_t al = sizeof(a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    fprintf(stderr, "bench_fanout_server: --listen: IPv4 HOST:PORT\n");
    return 2;
  }
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 4096) != 0 ||
      getsockname(lfd, (struct sockaddr *)&a, &al) != 0) {
    perror("bench_fanout_server: listen");
    return 1;
  }
  printf("port %d\n", ntohs(a.sin_port));
  fflush(stdout);
  char *frame = malloc(opt.size);
  memset(frame, 0xab, opt.size);
  int cap = 1024, n = 0;
  int *fds = malloc(sizeof(int) * (size_t)cap);
  double t_end = now_s() + opt.max_seconds;
  unsigned long long frames = 0;
  while (!stop && now_s() < t_end) {
    for (;;) { /* accept whoever is waiting */
      int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
      if (fd < 0) break;
      if (n == cap) fds = realloc(fds, sizeof(int) * (size_t)(cap *= 2));
      fds[n++] = fd;
    }
    if (n == 0) {
      struct pollfd p = {lfd, POLLIN, 0};
      poll(&p, 1, 100);
      continue;
    }
    for (int i = 0; i < n && !stop; i++) {
      size_t off = 0;
      while (off < opt.size) {
        ssize_t w = send(fds[i], frame + off, opt.size - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
          if (stop) break;
          continue;
        }
        if (w <= 0) {
          close(fds[i]);
          fds[i--] = fds[--n];
          break;
        }
        off += (size_t)w;
      }
      frames++;
    }
  }
  for (int i = 0; i < n; i++) close(fds[i]);
  fprintf(stderr, "bench_fanout_server (plain): %llu frames written\n", frames);
  return 0;
}

/* ---- hub mode ------------------------------------------------------------ */

static sl_mgr *mgr;
static sl_hub *hub;
static atomic_ullong published, efull, skipped;

/* --threads: loop i's manager and hub; loop 0 is `mgr`/`hub`, run by the
 * main thread. `self` is the loop of the calling thread. */
#define MAX_LOOPS 16
struct loop {
  int idx;
  sl_mgr *m;
  sl_hub *h;
  pthread_t t;
};
static struct loop loops[MAX_LOOPS];
static _Thread_local struct loop *self;
static sl_hub_group *group;
static atomic_int loops_ready, loops_failed;
static int port0;

static void publish_one(void) {
  sl_buf *b = sl_buf_new(opt.size);
  if (b == NULL) {
    atomic_fetch_add(&skipped, 1);
    return;
  }
  int rc = group ? sl_hub_group_publish(group, b, 0, SL_FRAME_KEY)
                 : sl_hub_publish(hub, b, 0, SL_FRAME_KEY);
  sl_buf_unref(b);
  if (rc == 0) atomic_fetch_add(&published, 1);
  else if (rc == SL_EFULL) atomic_fetch_add(&efull, 1);
}

static void *producer_main(void *arg) {
  (void)arg;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  long long iv = (long long)(1e9 / opt.fps);
  while (!stop) {
    publish_one();
    next.tv_nsec += iv % 1000000000;
    next.tv_sec += iv / 1000000000 + next.tv_nsec / 1000000000;
    next.tv_nsec %= 1000000000;
    /* Behind by more than a frame (a stop-the-world moment): do not burst. */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double behind = (double)(now.tv_sec - next.tv_sec) + (double)(now.tv_nsec - next.tv_nsec) / 1e9;
    if (behind * 1e9 > (double)iv) next = now;
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
  }
  return NULL;
}

static void stats_json(sl_conn *c) {
  sl_mgr_stats ms;
  sl_mem_stats mem;
  sl_hub_stats hs;
  sl_mgr_stats_get(self->m, &ms);
  sl_mem_stats_get(&mem);
  sl_hub_stats_get(self->h, &hs);
  char body[2048];
  int n = snprintf(
      body, sizeof(body),
      "{\"loop\":%d,\"threads\":%d,\"rss_bytes\":%zu,\"memory\":{\"held\":%zu,\"peak\":%zu,\"out_ref\":%zu,\"out_owned\":%zu,"
      "\"in\":%zu,\"queued\":%zu,\"lib_total\":%zu,\"lib_peak\":%zu,\"lib_bufs\":%zu,\"lib_meta\":%zu,"
      "\"lib_nbufs\":%zu},\"conns\":%zu,"
      "\"hub\":{\"frames_in\":%llu,\"fps_in\":%.1f,\"subs\":%zu,\"held\":%zu,\"frames_held\":%zu,"
      "\"largest_frame\":%zu,\"joins\":%llu,\"leaves\":%llu,\"refused\":%llu,"
      "\"drops\":{\"replaced\":%llu,\"too_big\":%llu,\"budget\":%llu},"
      "\"evictions\":{\"hard\":%llu,\"soft\":%llu,\"slot\":%llu,\"budget\":%llu}},"
      "\"producer\":{\"published\":%llu,\"efull\":%llu,\"skipped\":%llu,\"frame_size\":%zu},"
      "\"closed_by\":{\"stall\":%llu,\"evicted\":%llu,\"peer\":%llu,\"error\":%llu}}",
      self->idx, opt.threads, rss_bytes(), ms.held, ms.peak, ms.out_ref, ms.out_owned, ms.in, ms.queued, mem.total, mem.peak,
      mem.bufs, mem.meta, mem.nbufs, ms.conns, (unsigned long long)hs.frames_in, hs.fps_in, hs.subs,
      hs.held, hs.frames_held, hs.largest_frame, (unsigned long long)hs.joins,
      (unsigned long long)hs.leaves, (unsigned long long)hs.refused,
      (unsigned long long)hs.drops[SL_DROP_REPLACED], (unsigned long long)hs.drops[SL_DROP_TOO_BIG],
      (unsigned long long)hs.drops[SL_DROP_BUDGET], (unsigned long long)hs.evictions[SL_EVICT_HARD],
      (unsigned long long)hs.evictions[SL_EVICT_SOFT], (unsigned long long)hs.evictions[SL_EVICT_SLOT],
      (unsigned long long)hs.evictions[SL_EVICT_BUDGET], (unsigned long long)atomic_load(&published),
      (unsigned long long)atomic_load(&efull), (unsigned long long)atomic_load(&skipped), opt.size, (unsigned long long)ms.closed_by[SL_CLOSE_STALL],
      (unsigned long long)ms.closed_by[SL_CLOSE_EVICTED], (unsigned long long)ms.closed_by[SL_CLOSE_PEER],
      (unsigned long long)ms.closed_by[SL_CLOSE_ERROR]);
  sl_http_reply(c, 200, "Content-Type: application/json\r\nCache-Control: no-store\r\n", body,
                (size_t)n);
}

/* --demand: a subscriber whose queue ran dry asks for the next frame. */
static int viewer_tag, want_frame;

static void on_http(sl_conn *c, int ev, void *ev_data) {
  if (ev == SL_EV_WRITE && sl_conn_data(c) == &viewer_tag && sl_conn_queued(c) == 0) want_frame = 1;
  if (ev != SL_EV_HTTP_MSG) return;
  const sl_http_msg *m = ev_data;
  sl_hub *lh = self->h; /* this loop's */
  sl_sub_opts so = {.policy = opt.policy, .notsent_lowat = opt.lowat};
  char v[32];
  if (sl_http_query(m, "policy", v, sizeof(v)) > 0 && strcmp(v, "lossless") == 0)
    so.policy = SL_POLICY_LOSSLESS;
  if (sl_http_match(m, "/stream.mjpg", NULL, 0)) {
    if (sl_hub_attach(lh, c, m, SL_TRANSPORT_MJPEG, &so, NULL) == 0) sl_conn_set_data(c, &viewer_tag);
    want_frame = 1;
  } else if (sl_http_match(m, "/stream.raw", NULL, 0)) {
    if (sl_hub_attach(lh, c, m, SL_TRANSPORT_RAW, &so, NULL) == 0) sl_conn_set_data(c, &viewer_tag);
    want_frame = 1;
  } else if (sl_http_match(m, "/ws", NULL, 0)) {
    sl_ws_opts wo = {.ping_ms = 20000};
    sl_hub_attach(lh, c, m, SL_TRANSPORT_WS, &so, &wo);
  } else if (sl_http_match(m, "/snapshot.jpg", NULL, 0)) {
    uint64_t seq = 0;
    sl_buf *b = sl_hub_latest(lh, &seq, NULL);
    if (b == NULL) {
      sl_http_reply_status(c, 503);
      return;
    }
    char hdr[96];
    snprintf(hdr, sizeof(hdr), "Content-Type: image/jpeg\r\nX-Frame: %llu\r\n", (unsigned long long)seq);
    if (sl_http_reply_buf(c, 200, hdr, b, 0, sl_buf_len(b)) != 0) sl_http_reply_status(c, 503);
    sl_buf_unref(b);
  } else if (sl_http_match(m, "/api/stats", NULL, 0)) {
    stats_json(c);
  } else {
    sl_http_reply_status(c, 404);
  }
}

/* Loop i > 0: its manager, hub and listener are made on its own thread
 * (the group's rule: a member joins on its loop thread), on loop 0's
 * port. */
static void *loop_main(void *arg) {
  struct loop *lp = arg;
  int err = 0;
  char url[64];
  self = lp;
  sl_mgr_opts mo = {.max_conns = 60000, .budget = opt.budget, .reuseport = 1};
  sl_hub_opts ho = {.max_subs = 60000, .sub = {.policy = opt.policy}};
  snprintf(url, sizeof(url), "127.0.0.1:%d", port0);
  lp->m = sl_mgr_new(&mo, &err);
  lp->h = lp->m ? sl_hub_new(lp->m, "bench", &ho, &err) : NULL;
  if (lp->h == NULL || sl_http_listen(lp->m, url, NULL, on_http, NULL, &err) == NULL ||
      sl_hub_group_add(group, lp->h) != 0) {
    fprintf(stderr, "bench_fanout_server: loop %d: %s\n", lp->idx, sl_strerror(err));
    atomic_fetch_add(&loops_failed, 1);
    sl_mgr_free(lp->m);
    return NULL;
  }
  atomic_fetch_add(&loops_ready, 1);
  while (!stop) sl_mgr_poll(lp->m, 200);
  sl_hub_free(lp->h);
  sl_mgr_free(lp->m);
  return NULL;
}

static int hub_main(void) {
  int err = 0;
  sl_log_set(SL_LOG_ERROR, NULL, NULL);
  sl_mgr_opts mo = {.max_conns = 60000, .budget = opt.budget, .reuseport = opt.threads > 1};
  mgr = sl_mgr_new(&mo, &err);
  if (mgr == NULL) {
    fprintf(stderr, "bench_fanout_server: sl_mgr_new: %s\n", sl_strerror(err));
    return 1;
  }
  sl_hub_opts ho = {.max_subs = 60000, .sub = {.policy = opt.policy, .notsent_lowat = opt.lowat}};
  hub = sl_hub_new(mgr, "bench", &ho, &err);
  sl_conn *l = hub ? sl_http_listen(mgr, opt.listen, NULL, on_http, NULL, &err) : NULL;
  if (l == NULL) {
    fprintf(stderr, "bench_fanout_server: %s: %s\n", opt.listen, sl_strerror(err));
    return 1;
  }
  loops[0] = (struct loop){.idx = 0, .m = mgr, .h = hub};
  self = &loops[0];
  if (opt.threads > 1) {
    port0 = sl_conn_local_port(l);
    group = sl_hub_group_new(&err);
    if (group == NULL || sl_hub_group_add(group, hub) != 0) return 1;
    for (int i = 1; i < opt.threads; i++) {
      loops[i].idx = i;
      if (pthread_create(&loops[i].t, NULL, loop_main, &loops[i]) != 0) return 1;
    }
    while (atomic_load(&loops_ready) + atomic_load(&loops_failed) < opt.threads - 1)
      sl_mgr_poll(mgr, 1);
    if (atomic_load(&loops_failed)) return 1;
  }
  printf("port %d\n", sl_conn_local_port(l));
  fflush(stdout);
  pthread_t th;
  int have_producer = opt.fps > 0 && !opt.demand;
  if (opt.demand) {
    /* Publish on the loop thread, at most once per iteration, when a
     * viewer ran dry: as fast as the readers take frames. */
    double t_end = now_s() + opt.max_seconds;
    int just = 0;
    while (!stop && now_s() < t_end) {
      /* Right after a publish, do not sleep: the flush at the start of
       * the poll may leave viewers dry at once. */
      sl_mgr_poll(mgr, just ? 0 : 200);
      just = 0;
      if (want_frame) {
        want_frame = 0;
        publish_one();
        just = 1;
      }
    }
    stop = 1;
  } else if (have_producer) {
    if (pthread_create(&th, NULL, producer_main, NULL) != 0) return 1;
  } else {
    publish_one(); /* one frame, then idle */
  }
  double t_end = now_s() + opt.max_seconds;
  while (!stop && now_s() < t_end) sl_mgr_poll(mgr, 200);
  stop = 1;
  if (have_producer) pthread_join(th, NULL);
  for (int i = 1; i < opt.threads; i++) pthread_join(loops[i].t, NULL);
  sl_hub_group_free(group);
  sl_mgr_stats ms;
  sl_mgr_stats_get(mgr, &ms);
  fprintf(stderr, "bench_fanout_server: published %llu, peak held %zu bytes\n",
          (unsigned long long)atomic_load(&published), ms.peak);
  sl_mgr_free(mgr);
  return 0;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--listen") == 0 && v) opt.listen = v, i++;
    else if (strcmp(a, "--size") == 0 && v) opt.size = strtoul(v, NULL, 10), i++;
    else if (strcmp(a, "--fps") == 0 && v) opt.fps = atof(v), i++;
    else if (strcmp(a, "--budget") == 0 && v) opt.budget = strtoul(v, NULL, 10), i++;
    else if (strcmp(a, "--max-seconds") == 0 && v) opt.max_seconds = atof(v), i++;
    else if (strcmp(a, "--mode") == 0 && v) opt.plain = strcmp(v, "plain") == 0, i++;
    else if (strcmp(a, "--demand") == 0) opt.demand = 1;
    else if (strcmp(a, "--lowat") == 0 && v) opt.lowat = strtoul(v, NULL, 10), i++;
    else if (strcmp(a, "--threads") == 0 && v) opt.threads = atoi(v), i++;
    else if (strcmp(a, "--policy") == 0 && v) {
      opt.policy = strcmp(v, "lossless") == 0 ? SL_POLICY_LOSSLESS
                   : strcmp(v, "queue") == 0  ? SL_POLICY_QUEUE
                                              : SL_POLICY_LATEST;
      i++;
    } else {
      fprintf(stderr,
              "usage: bench_fanout_server [--listen H:P] [--size B] [--fps F] [--demand] [--mode hub|plain]\n"
              "                           [--policy latest|queue|lossless] [--budget B] [--max-seconds S]\n"
              "                           [--lowat B] [--threads N]\n");
      return 2;
    }
  }
  if (opt.size < 1 || opt.size > (64u << 20) || opt.fps < 0 || opt.fps > 100000 ||
      opt.threads < 1 || opt.threads > MAX_LOOPS || (opt.threads > 1 && opt.demand)) {
    fprintf(stderr, "bench_fanout_server: bad --size, --fps or --threads (1-16, not with --demand)\n");
    return 2;
  }
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  raise_nofile();
  return opt.plain ? plain_main() : hub_main();
}
