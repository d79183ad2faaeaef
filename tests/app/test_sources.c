/*
 * Frame sources of sluice-stream, end to end: each test runs a manager on
 * the test thread (sl_mgr_poll in a loop), feeds a hub from a source and
 * checks what the hub received by counts and by the block codes drawn into
 * the frames, then frees everything and checks the library holds nothing.
 *
 *   testpattern  rate, block code == hub seq, pausing for a full lossless
 *                viewer
 *   dir:         files in name order, looping; clear errors
 *   - (stdin)    real ffmpeg and gstreamer output through a pipe, the same
 *                with garbage and truncated frames between, stop while
 *                blocked in a read
 *   relay        http:// (multipart, plain, chunked, Basic auth) and ws://
 *                from a sluice server in the same manager, including an
 *                upstream that goes away for a second and comes back
 *
 * ffmpeg and gst-launch-1.0 come from scripts/deps.sh; without them the
 * tests skip, which fails under CI=true.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mjpeg_split.h"
#include "pattern.h"
#include "sluice.h"
#include "source.h"
#include "test.h"

/* Poll the manager until `cond` holds; fail if `ms` pass first. */
#define WAIT_FOR(m, cond, ms)                                                \
  do {                                                                       \
    uint64_t dl_ = test_now_ms() + (ms);                                     \
    while (!(cond) && test_now_ms() < dl_) sl_mgr_poll((m), 10);             \
    CHECK_MSG((cond), "timed out after %d ms waiting for %s", (int)(ms),     \
              #cond);                                                        \
  } while (0)

static void pump_for(sl_mgr *m, uint64_t ms) {
  uint64_t dl = test_now_ms() + ms;
  while (test_now_ms() < dl) sl_mgr_poll(m, 10);
}

static sl_mgr *mgr_new(void) {
  int err = 0;
  sl_mgr *m = sl_mgr_new(NULL, &err);
  CHECK_MSG(m != NULL, "sl_mgr_new: %s", sl_strerror(err));
  sl_mgr_poll(m, 0);
  return m;
}

static sl_hub *hub_new(sl_mgr *m, const char *name, const sl_hub_opts *o) {
  int err = 0;
  sl_hub *h = sl_hub_new(m, name, o, &err);
  CHECK_MSG(h != NULL, "sl_hub_new: %s", sl_strerror(err));
  return h;
}

static ss_source *start(const char *spec, sl_mgr *m, sl_hub *h,
                        const ss_source_opts *o) {
  char err[256] = "";
  ss_source *s = ss_source_start(spec, m, h, o, err, sizeof(err));
  CHECK_MSG(s != NULL, "ss_source_start(%s): %s", spec, err);
  return s;
}

static uint64_t frames_in(sl_hub *h) {
  sl_hub_stats st;
  sl_hub_stats_get(h, &st);
  return st.frames_in;
}

static ss_source_stats stats(const ss_source *s) {
  ss_source_stats st;
  ss_source_stats_get(s, &st);
  return st;
}

/* The block code of the hub's latest frame (-1: none), and its seq. */
static long long latest_code(sl_hub *h, uint64_t *seq) {
  uint64_t q = 0;
  sl_buf *b = sl_hub_latest(h, &q, NULL);
  if (seq) *seq = q;
  if (b == NULL) return -1;
  long long code = ss_pattern_read_jpeg(sl_buf_cdata(b), sl_buf_len(b));
  sl_buf_unref(b);
  return code;
}

static void check_clean(void) {
  sl_mem_stats ms;
  sl_mem_stats_get(&ms);
  CHECK_EQ(ms.total, 0);
  CHECK_EQ(ms.nbufs, 0);
}

static int have_tool(const char *tool) {
  return test_sh("command -v %s >/dev/null 2>&1", tool) == 0;
}

/* ---- testpattern ---------------------------------------------------- */

TEST_T(source_testpattern_rate_and_block_code, 30) {
  sl_mgr *m = mgr_new();
  sl_hub *h = hub_new(m, "tp", NULL);
  ss_source_opts o = {.width = 320, .height = 240, .fps = 30, .quality = 60};
  ss_source *s = start("testpattern", m, h, &o);
  CHECK(strstr(ss_source_describe(s), "testpattern 320x240") != NULL);
  WAIT_FOR(m, frames_in(h) >= 1, 5000);
  uint64_t n0 = frames_in(h), k0 = stats(s).skipped;
  pump_for(m, 1000);
  uint64_t n = frames_in(h) - n0, k = stats(s).skipped - k0;
  /* The schedule: 30 slots a second, each published or skipped. On a
   * loaded machine the producer may wake more than a frame late and skip
   * ahead (by design: no bursts), so publishing alone may fall below 20. */
  CHECK_MSG(n + k >= 20 && n + k <= 40 && n >= (k ? 10 : 20),
            "%llu frames published and %llu skipped in 1 s at 30 fps",
            (unsigned long long)n, (unsigned long long)k);
  uint64_t seq;
  long long code = latest_code(h, &seq);
  CHECK_EQ(code, (long long)(seq & 0xFFFFFFFFu));
  CHECK(stats(s).connected);
  ss_source_stop(s);
  sl_mgr_poll(m, 0); /* frames the thread queued reach the hub */
  sl_hub_stats hs;
  sl_hub_stats_get(h, &hs);
  /* After the stop nothing more comes: the last frame carries the last
   * number, which is the count of frames published. */
  code = latest_code(h, &seq);
  CHECK_EQ(code, (long long)seq);
  CHECK_EQ(seq, hs.frames_in);
  sl_hub_free(h);
  sl_mgr_free(m);
  check_clean();
}

/* A lossless viewer that stops reading makes the hub "not ready": the
 * producer must then hold its frames back, and resume when it leaves. */
struct lossless {
  sl_hub *h;
  int attached;
};

static void lossless_http(sl_conn *c, int ev, void *ev_data) {
  struct lossless *t = sl_conn_data(c);
  if (ev != SL_EV_HTTP_MSG) return;
  sl_sub_opts so = {.policy = SL_POLICY_LOSSLESS, .queue_len = 2};
  CHECK_EQ(sl_hub_attach(t->h, c, ev_data, SL_TRANSPORT_MJPEG, &so, NULL), 0);
  sl_conn_sockopt(c, SL_OPT_SNDBUF, 16384);
  t->attached = 1;
}

static int raw_connect(int port, int rcvbuf) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(fd >= 0);
  if (rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_EQ(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  return fd;
}

TEST_T(source_testpattern_waits_while_hub_not_ready, 60) {
  sl_mgr *m = mgr_new();
  sl_hub *h = hub_new(m, "tp", NULL);
  struct lossless t = {h, 0};
  int err = 0;
  sl_conn *l = sl_http_listen(m, "127.0.0.1:0", NULL, lossless_http, &t, &err);
  CHECK_MSG(l != NULL, "sl_http_listen: %s", sl_strerror(err));
  /* Big, noisy frames fill the socket buffers within a few frames. */
  ss_source_opts o = {.width = 1280, .height = 720, .fps = 60, .quality = 100};
  ss_source *s = start("testpattern", m, h, &o);
  int fd = raw_connect(sl_conn_local_port(l), 4096);
  const char req[] = "GET /s HTTP/1.1\r\nHost: x\r\n\r\n";
  CHECK_EQ(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
  WAIT_FOR(m, t.attached, 5000);
  WAIT_FOR(m, !sl_hub_ready(h), 20000);
  /* Not ready: what was in flight lands, then nothing more. */
  pump_for(m, 100);
  uint64_t held = frames_in(h);
  pump_for(m, 500);
  CHECK_EQ(sl_hub_ready(h), 0);
  CHECK_EQ(frames_in(h), held);
  /* The viewer goes: the producer carries on. */
  close(fd);
  WAIT_FOR(m, frames_in(h) >= held + 5, 5000);
  CHECK_EQ(stats(s).errors, 0);
  ss_source_stop(s);
  sl_hub_free(h);
  sl_mgr_free(m);
  check_clean();
}

/* ---- dir: ----------------------------------------------------------- */

static void write_file(const char *dir, const char *name, const void *p,
                       size_t n) {
  char path[512];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  CHECK_MSG(f != NULL, "fopen %s: %s", path, strerror(errno));
  CHECK_EQ(fwrite(p, 1, n, f), n);
  CHECK_EQ(fclose(f), 0);
}

TEST_T(source_dir_in_order_and_looping, 30) {
  char dir[] = "/tmp/sl-src-dir-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char err[128];
  ss_pattern *p = ss_pattern_new(320, 240, 70, err, sizeof(err));
  CHECK(p != NULL);
  static const char *const names[] = {"c.jpg", "a.jpg", "b.JPEG"};
  static const long long codes[] = {103, 101, 102}; /* by name: a, b, c */
  for (int i = 0; i < 3; i++) {
    const unsigned char *j;
    size_t n;
    CHECK_EQ(ss_pattern_render(p, (unsigned long long)codes[i], 0, &j, &n), 0);
    write_file(dir, names[i], j, n);
  }
  ss_pattern_free(p);
  write_file(dir, "notes.txt", "hello", 5);
  write_file(dir, "broken.jpg", "\xff\xd8\xff garbage", 12);

  sl_mgr *m = mgr_new();
  sl_hub *h = hub_new(m, "dir", NULL);
  ss_source_opts o = {.fps = 20};
  char spec[64];
  snprintf(spec, sizeof(spec), "dir:%s", dir);
  ss_source *s = start(spec, m, h, &o);
  CHECK(strstr(ss_source_describe(s), "(3 files)") != NULL);
  /* Watch every frame the loop sees: its hub seq tells how many files
   * were published since the last look, so each code is predictable. */
  uint64_t last = 0;
  int seen = 0;
  uint64_t dl = test_now_ms() + 10000;
  while (last < 8 && test_now_ms() < dl) {
    sl_mgr_poll(m, 5);
    uint64_t seq;
    long long code = latest_code(h, &seq);
    if (seq == last) continue;
    CHECK_EQ(code, 101 + (long long)((seq - 1) % 3));
    last = seq;
    seen++;
  }
  CHECK_GE(last, 8); /* looped twice and more */
  CHECK_GE(seen, 4);
  CHECK_EQ(stats(s).errors, 0);
  ss_source_stop(s);
  sl_hub_free(h);

  /* A folder without a valid JPEG, and no folder at all: clear errors. */
  sl_hub *h2 = hub_new(m, "dir2", NULL);
  char e[256] = "";
  CHECK_EQ(test_sh("rm -f %s/*.jpg %s/*.JPEG", dir, dir), 0);
  write_file(dir, "broken.jpg", "\xff\xd8\xff garbage", 12);
  CHECK(ss_source_start(spec, m, h2, &o, e, sizeof(e)) == NULL);
  CHECK_MSG(strstr(e, "no valid JPEG") && strstr(e, "no JPEG end"), "%s", e);
  snprintf(spec, sizeof(spec), "dir:%s/nope", dir);
  CHECK(ss_source_start(spec, m, h2, &o, e, sizeof(e)) == NULL);
  CHECK_MSG(strstr(e, "cannot list") != NULL, "%s", e);
  CHECK(ss_source_start("bogus", m, h2, &o, e, sizeof(e)) == NULL);
  CHECK_MSG(strstr(e, "unknown source") != NULL, "%s", e);
  CHECK_EQ(test_sh("rm -rf %s", dir), 0);
  sl_hub_free(h2);
  sl_mgr_free(m);
  check_clean();
}

/* ---- stdin ---------------------------------------------------------- */

/* Run `cmd` with its stdout on a pipe; returns the read end. */
static int spawn_reader(const char *cmd, pid_t *pid) {
  int p[2];
  CHECK_EQ(pipe(p), 0);
  *pid = fork();
  CHECK(*pid >= 0);
  if (*pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  return p[0];
}

static void run_stdin_tool(const char *tool, const char *cmd) {
  if (!have_tool(tool)) TEST_SKIP("tool not installed (scripts/deps.sh)");
  pid_t pid;
  int fd = spawn_reader(cmd, &pid);
  sl_mgr *m = mgr_new();
  sl_hub *h = hub_new(m, "in", NULL);
  ss_source_opts o = {.fd = fd};
  ss_source *s = start("-", m, h, &o);
  WAIT_FOR(m, stats(s).ended && frames_in(h) == stats(s).frames, 60000);
  int st = 0;
  CHECK_EQ(waitpid(pid, &st, 0), pid);
  CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed", tool);
  ss_source_stats ss = stats(s);
  CHECK_EQ(ss.frames, 30);
  CHECK_EQ(ss.errors, 0);
  CHECK_EQ(ss.garbage, 0);
  CHECK_EQ(frames_in(h), 30);
  ss_source_stop(s);
  close(fd);
  sl_hub_free(h);
  sl_mgr_free(m);
  check_clean();
}

TEST_T(source_stdin_ffmpeg_mjpeg, 90) {
  run_stdin_tool("ffmpeg",
                 "exec ffmpeg -hide_banner -loglevel error -f lavfi "
                 "-i testsrc=size=320x240:rate=30 -frames:v 30 -f mjpeg -");
}

TEST_T(source_stdin_gstreamer_jpegenc, 90) {
  run_stdin_tool("gst-launch-1.0",
                 "exec gst-launch-1.0 -q videotestsrc num-buffers=30 ! "
                 "jpegenc ! fdsink fd=1");
}

/* Read all of a command's output. */
static unsigned char *slurp(const char *cmd, size_t *len) {
  pid_t pid;
  int fd = spawn_reader(cmd, &pid);
  size_t cap = 1 << 20, n = 0;
  unsigned char *b = malloc(cap);
  CHECK(b != NULL);
  for (;;) {
    if (n == cap) {
      b = realloc(b, cap *= 2);
      CHECK(b != NULL);
    }
    ssize_t r = read(fd, b + n, cap - n);
    if (r <= 0) break;
    n += (size_t)r;
  }
  close(fd);
  int st;
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  *len = n;
  return b;
}

static unsigned long long lcg(unsigned long long *x) {
  *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
  return *x >> 33;
}

/* Write `n` bytes in pieces of random size (1..3000). */
static void write_pieces(int fd, const unsigned char *p, size_t n,
                         unsigned long long *rnd) {
  while (n) {
    size_t k = 1 + lcg(rnd) % 3000;
    if (k > n) k = n;
    ssize_t w = write(fd, p, k);
    if (w <= 0) _exit(1);
    p += w;
    n -= (size_t)w;
  }
}

TEST_T(source_stdin_garbage_and_truncated_frames, 90) {
  if (!have_tool("ffmpeg")) TEST_SKIP("ffmpeg not installed (scripts/deps.sh)");
  size_t len;
  unsigned char *all = slurp("exec ffmpeg -hide_banner -loglevel error -f lavfi "
                             "-i testsrc=size=320x240:rate=30 -frames:v 30 -f mjpeg -",
                             &len);
  /* Where the 30 frames are. */
  size_t off[30], flen[30], nf = 0;
  ss_split sp;
  ss_split_init(&sp, 1 << 20);
  size_t base = 0;
  for (;;) {
    ss_split_out so;
    int got = ss_split_next(&sp, all + base, len - base, &so);
    if (got) {
      CHECK(nf < 30);
      off[nf] = base + so.off;
      flen[nf++] = so.len;
    }
    base += so.consumed;
    if (!got) break;
  }
  CHECK_EQ(nf, 30);
  /* Garbage (never FF, so never a marker) before every frame and at the
   * end, and a frame cut in half before every 7th. */
  unsigned long long rnd = 42, garbage = 0, cut = 0;
  size_t slen = 0;
  unsigned char *stream = malloc(2 * len + 31 * 700);
  CHECK(stream != NULL);
  for (size_t i = 0; i <= 30; i++) {
    size_t g = lcg(&rnd) % 700;
    for (size_t k = 0; k < g; k++) stream[slen++] = (unsigned char)(lcg(&rnd) % 255);
    garbage += g;
    if (i == 30) break;
    if (i % 7 == 3) {
      memcpy(stream + slen, all + off[i], flen[i] / 2);
      slen += flen[i] / 2;
      cut++;
    }
    memcpy(stream + slen, all + off[i], flen[i]);
    slen += flen[i];
  }
  int p[2];
  CHECK_EQ(pipe(p), 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    write_pieces(p[1], stream, slen, &rnd);
    _exit(0);
  }
  close(p[1]);
  sl_mgr *m = mgr_new();
  sl_hub *h = hub_new(m, "in", NULL);
  ss_source_opts o = {.fd = p[0], .max_frame = 256 << 10};
  ss_source *s = start("-", m, h, &o);
  WAIT_FOR(m, stats(s).ended && frames_in(h) == stats(s).frames, 60000);
  ss_source_stats st = stats(s);
  CHECK_EQ(st.frames, 30);
  CHECK_EQ(st.errors, cut);
  CHECK_EQ(st.garbage, garbage);
  /* The last frame published is the last frame written, byte for byte. */
  sl_buf *b = sl_hub_latest(h, NULL, NULL);
  CHECK(b != NULL);
  CHECK_EQ(sl_buf_len(b), flen[29]);
  CHECK_MEM(sl_buf_cdata(b), all + off[29], flen[29]);
  sl_buf_unref(b);
  waitpid(pid, NULL, 0);
  ss_source_stop(s);
  close(p[0]);
  free(all);
  free(stream);
  sl_hub_free(h);
  sl_mgr_free(m);
  check_clean();
}

TEST_T(source_stdin_stop_while_blocked_in_read, 20) {
  int p[2];
  CHECK_EQ(pipe(p), 0);
  sl_mgr *m = mgr_new();
  sl_hub *h = hub_new(m, "in", NULL);
  ss_source_opts o = {.fd = p[0]};
  ss_source *s = start("-", m, h, &o);
  CHECK_EQ(write(p[1], "\xff\xd8\xff", 3), 3); /* a frame begins... */
  pump_for(m, 200);                             /* ...and nothing more */
  CHECK_EQ(stats(s).frames, 0);
  CHECK_EQ(stats(s).ended, 0);
  uint64_t t0 = test_now_ms();
  ss_source_stop(s); /* must not wait for input: the test would time out */
  CHECK_LE(test_now_ms() - t0, 5000);
  /* The descriptor was borrowed: still open. */
  CHECK(fcntl(p[0], F_GETFL) >= 0);
  close(p[0]);
  close(p[1]);
  /* A closed descriptor is a start-up error. */
  char e[256];
  CHECK(ss_source_start("-", m, h, &o, e, sizeof(e)) == NULL);
  CHECK_MSG(strstr(e, "not open") != NULL, "%s", e);
  sl_hub_free(h);
  sl_mgr_free(m);
  check_clean();
}

/* ---- relays --------------------------------------------------------- */

/* An upstream sluice server in the same manager: a hub fed by a test
 * pattern, served to whoever asks in the chosen framing. */
struct upstream {
  sl_mgr *m;
  int transport;
  int auth;          /* require Basic user:secret */
  int port;          /* 0: pick one, then keep it across restarts */
  sl_conn *l;
  sl_hub *h;
  ss_source *src;
  ss_source_opts po; /* the pattern's options; zero: 320x240 */
  int requests, refused;
};

static void up_http(sl_conn *c, int ev, void *ev_data) {
  struct upstream *u = sl_conn_data(c);
  if (ev != SL_EV_HTTP_MSG) return;
  const sl_http_msg *m = ev_data;
  u->requests++;
  if (u->auth && !sl_http_check_basic(m, "user", "s3cret:x")) {
    u->refused++;
    sl_http_reply_401(c, "camera");
    return;
  }
  if (u->transport == SL_TRANSPORT_WS) {
    /* Upgrade first, then attach the open WebSocket: sl_hub_attach(WS)
     * reads the request after the upgrade has freed it (hub.c, reported). */
    CHECK_EQ(sl_ws_upgrade(c, m, NULL), 0);
    CHECK_EQ(sl_hub_attach_conn(u->h, c, SL_TRANSPORT_WS, NULL), 0);
    return;
  }
  CHECK_EQ(sl_hub_attach(u->h, c, m, u->transport, NULL, NULL), 0);
}

static void up_start(struct upstream *u) {
  char url[64];
  int err = 0;
  snprintf(url, sizeof(url), "127.0.0.1:%d", u->port);
  u->l = sl_http_listen(u->m, url, NULL, up_http, u, &err);
  CHECK_MSG(u->l != NULL, "sl_http_listen(%s): %s", url, sl_strerror(err));
  u->port = sl_conn_local_port(u->l);
  u->h = hub_new(u->m, "up", NULL);
  ss_source_opts o = {.width = 320, .height = 240, .fps = 30, .quality = 60};
  u->src = start("testpattern", u->m, u->h, u->po.width ? &u->po : &o);
}

static void up_stop(struct upstream *u) {
  ss_source_stop(u->src);
  sl_hub_free(u->h); /* closes the relay's connection */
  sl_conn_close(u->l, SL_CLOSE_NOW);
  u->src = NULL;
  u->h = NULL;
  u->l = NULL;
}

/* Watch the relayed hub until `more` new frames have arrived: every frame
 * the loop lets us see carries a higher block code than the one before. */
static void watch_increasing(sl_mgr *m, sl_hub *h, uint64_t more) {
  uint64_t seq0 = 0, last_seq = 0;
  long long last_code = -1;
  latest_code(h, &seq0);
  last_seq = seq0;
  uint64_t dl = test_now_ms() + 20000;
  while (last_seq < seq0 + more && test_now_ms() < dl) {
    sl_mgr_poll(m, 5);
    uint64_t seq;
    long long code = latest_code(h, &seq);
    if (seq == last_seq) continue;
    CHECK_MSG(code > last_code, "relayed frame %llu: code %lld after %lld",
              (unsigned long long)seq, code, last_code);
    last_code = code;
    last_seq = seq;
  }
  CHECK_MSG(last_seq >= seq0 + more, "only %llu frames relayed",
            (unsigned long long)(last_seq - seq0));
}

static void run_relay(int transport, const char *scheme, const char *cred,
                      int restart) {
  sl_mgr *m = mgr_new();
  struct upstream u = {.m = m, .transport = transport, .auth = cred != NULL};
  up_start(&u);
  sl_hub *down = hub_new(m, "down", NULL);
  char url[128];
  snprintf(url, sizeof(url), "%s://%s127.0.0.1:%d/stream", scheme,
           cred ? cred : "", u.port);
  ss_source *r = start(url, m, down, NULL);
  /* Credentials never show. */
  CHECK(strstr(ss_source_describe(r), "s3cret") == NULL);
  CHECK(strstr(ss_source_describe(r), "relay ") != NULL);
  watch_increasing(m, down, 10);
  CHECK(stats(r).connected);
  CHECK_EQ(stats(r).reconnects, 0);
  /* HTTP: one challenge, answered; WebSocket: Basic sent up front. */
  if (cred) CHECK_EQ(u.refused, transport == SL_TRANSPORT_WS ? 0 : 1);

  if (restart) {
    up_stop(&u);
    WAIT_FOR(m, !stats(r).connected, 5000);
    pump_for(m, 1000);
    up_start(&u); /* same port */
    watch_increasing(m, down, 10);
    CHECK(stats(r).connected);
    CHECK_GE(stats(r).reconnects, 1);
  }
  ss_source_stats st = stats(r);
  /* Upstream failures count as errors: the cut, then refused attempts. */
  if (restart) CHECK(st.errors >= 1 && st.errors <= st.reconnects + 1);
  else CHECK_EQ(st.errors, 0);
  CHECK_EQ(st.garbage, 0);
  CHECK_EQ(st.frames, frames_in(down));
  ss_source_stop(r);
  up_stop(&u);
  sl_hub_free(down);
  sl_mgr_free(m);
  check_clean();
}

TEST_T(source_relay_http_multipart_reconnects, 60) {
  run_relay(SL_TRANSPORT_MJPEG, "http", NULL, 1);
}

TEST_T(source_relay_ws_reconnects, 60) {
  run_relay(SL_TRANSPORT_WS, "ws", NULL, 1);
}

TEST_T(source_relay_http_plain_stream, 30) {
  run_relay(SL_TRANSPORT_RAW, "http", NULL, 0);
}

TEST_T(source_relay_http_chunked_stream, 30) {
  run_relay(SL_TRANSPORT_CHUNKED, "http", NULL, 0);
}

TEST_T(source_relay_http_basic_auth_from_url, 30) {
  run_relay(SL_TRANSPORT_MJPEG, "http", "user:s3cret%3Ax@", 0);
}

TEST_T(source_relay_ws_basic_auth_from_url, 30) {
  /* The WebSocket client sends the credentials up front. */
  run_relay(SL_TRANSPORT_WS, "ws", "user:s3cret%3Ax@", 0);
}

TEST_T(source_relay_errors, 30) {
  sl_mgr *m = mgr_new();
  sl_hub *h = hub_new(m, "down", NULL);
  char e[256];
#ifndef SL_HAVE_TLS
  /* With TLS they are relays like the others (tests/app/test_stream_tls.c). */
  CHECK(ss_source_start("https://127.0.0.1:1/x", m, h, NULL, e, sizeof(e)) == NULL);
  CHECK_MSG(strstr(e, "built without TLS") != NULL, "%s", e);
  CHECK(ss_source_start("wss://127.0.0.1:1/x", m, h, NULL, e, sizeof(e)) == NULL);
  CHECK_MSG(strstr(e, "built without TLS") != NULL, "%s", e);
#endif
  CHECK(ss_source_start("http://", m, h, NULL, e, sizeof(e)) == NULL);
  CHECK_MSG(strstr(e, "malformed URL") != NULL, "%s", e);
  /* Nobody listening: the relay keeps trying, with growing pauses. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof(a);
  CHECK_EQ(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  CHECK_EQ(getsockname(fd, (struct sockaddr *)&a, &al), 0);
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/", ntohs(a.sin_port));
  ss_source *r = start(url, m, h, NULL);
  pump_for(m, 1000);
  /* 250 + 500 ms: two retries within the second, not ten. */
  ss_source_stats st = stats(r);
  CHECK_GE(st.reconnects, 1);
  CHECK_LE(st.reconnects, 3);
  CHECK_GE(st.errors, st.reconnects);
  CHECK_EQ(st.connected, 0);
  ss_source_stop(r);
  close(fd);
  sl_hub_free(h);
  sl_mgr_free(m);
  check_clean();
}

/* A full lossless viewer of the relayed hub pauses reading from upstream;
 * its leaving resumes it. */
TEST_T(source_relay_pauses_for_lossless_viewer, 60) {
  sl_mgr *m = mgr_new();
  struct upstream u = {.m = m, .transport = SL_TRANSPORT_MJPEG,
                       .po = {.width = 1280, .height = 720, .fps = 60, .quality = 100}};
  up_start(&u);
  sl_hub *down = hub_new(m, "down", NULL);
  struct lossless t = {down, 0};
  int err = 0;
  sl_conn *l = sl_http_listen(m, "127.0.0.1:0", NULL, lossless_http, &t, &err);
  CHECK(l != NULL);
  char url[64];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/", u.port);
  ss_source *r = start(url, m, down, NULL);
  WAIT_FOR(m, frames_in(down) >= 1, 5000);
  int fd = raw_connect(sl_conn_local_port(l), 4096);
  const char req[] = "GET /s HTTP/1.1\r\nHost: x\r\n\r\n";
  CHECK_EQ(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
  WAIT_FOR(m, !sl_hub_ready(down), 20000);
  pump_for(m, 200); /* what was already read still becomes frames */
  uint64_t held = frames_in(down);
  pump_for(m, 500);
  CHECK_EQ(sl_hub_ready(down), 0);
  CHECK_EQ(frames_in(down), held);
  CHECK(stats(r).connected);
  close(fd);
  WAIT_FOR(m, frames_in(down) >= held + 5, 5000);
  CHECK_EQ(stats(r).reconnects, 0);
  ss_source_stop(r);
  up_stop(&u);
  sl_hub_free(down);
  sl_mgr_free(m);
  check_clean();
}

/* Which codec a stream gets: the spec's prefix, then what the source says
 * (a relay URL's extension, a folder of JPEGs), then --codec. */
TEST(source_codec_precedence) {
  unsigned char buf[64];
  struct { const char *spec; int global, want; } t[] = {
      {"testpattern", SS_CODEC_AUTO, SS_CODEC_MJPEG},
      {"testpattern", SS_CODEC_H264, SS_CODEC_H264},
      {"h264:testpattern", SS_CODEC_AUTO, SS_CODEC_H264},
      {"mjpeg:testpattern", SS_CODEC_H264, SS_CODEC_MJPEG},
      {"http://127.0.0.1:1/stream.mjpg", SS_CODEC_H264, SS_CODEC_MJPEG},
      {"http://127.0.0.1:1/stream.h264?token=x", SS_CODEC_AUTO, SS_CODEC_H264},
      {"http://127.0.0.1:1/live", SS_CODEC_AUTO, SS_CODEC_MJPEG},
      {"http://127.0.0.1:1/live", SS_CODEC_H264, SS_CODEC_H264},
      {"ws://127.0.0.1:1/ws", SS_CODEC_AUTO, SS_CODEC_MJPEG},
      {"ws://127.0.0.1:1/ws", SS_CODEC_H264, SS_CODEC_H264},
      {"dir:/srv/frames", SS_CODEC_H264, SS_CODEC_MJPEG},
  };
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    ss_source_opts o = {.codec = t[i].global};
    CHECK_MSG(ss_source_codec(t[i].spec, &o, 0, buf, sizeof(buf)) == t[i].want,
              "%s with --codec %d", t[i].spec, t[i].global);
    CHECK_EQ(o.codec, t[i].want);
  }
}
