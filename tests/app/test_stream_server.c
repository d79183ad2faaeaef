/* sluice-stream end to end: the real binary on a loopback port, driven by
 * raw sockets, curl, ffmpeg and Python's Prometheus parser. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mjpeg_split.h"
#include "pattern.h"
#include "rel_harness.h"
#include "sluice.h"

/* Start the server (port 0, read back) with extra arguments
 * (NULL-terminated). */
static void srv_start(struct rel_srv *s, const char *const *extra) {
  rel_srv_start_info(s, extra, 5000);
}

/* SIGTERM and wait: exit status (or -1). */
static int srv_stop(struct rel_srv *s) { return rel_srv_stop(s, 5000); }

static int dial(int port, int rcvbuf) { return test_dial("127.0.0.1", port, rcvbuf); }
/* A number from /api/stats: the value after the first `key` (-1: none). */
static long stat_value(int port, const char *key);

/* One request, read until close or `max` bytes or timeout; returns bytes. */
static size_t fetch(int port, const char *req, char *out, size_t max, int timeout_ms) {
  int fd = dial(port, 0);
  CHECK(fd >= 0);
  CHECK_EQ(send(fd, req, strlen(req), 0), (long long)strlen(req));
  size_t n = 0;
  uint64_t end = test_now_ms() + (uint64_t)timeout_ms;
  while (n < max - 1 && test_now_ms() < end) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    ssize_t r = recv(fd, out + n, max - 1 - n, 0);
    if (r <= 0) break;
    n += (size_t)r;
  }
  out[n] = '\0';
  close(fd);
  return n;
}

static int status_of(int port, const char *path, const char *extra_hdr) {
  char req[1024], resp[4096];
  snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%sConnection: close\r\n\r\n",
           path, port, extra_hdr ? extra_hdr : "");
  fetch(port, req, resp, 400, 2000);
  int st = 0;
  sscanf(resp, "HTTP/1.1 %d", &st);
  return st;
}

static void need(const char *tool) {
  char cmd[256];
  snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
  if (test_sh("%s", cmd) != 0) {
    if (test_in_ci()) CHECK_MSG(0, "%s is missing (CI may not skip)", tool);
    TEST_SKIP(tool);
  }
}

TEST_T(stream_ffmpeg_decodes_60_frames_in_order, 60) {
  need("ffmpeg");
  struct rel_srv s;
  srv_start(&s, NULL);
  char cmd[512];
  /* Decoding without a single error ... */
  snprintf(cmd, sizeof(cmd),
           "ffmpeg -nostdin -v error -i http://127.0.0.1:%d/stream.mjpg -frames:v 60 -f null - "
           "2>/tmp/ss-ffmpeg-%d.err && test ! -s /tmp/ss-ffmpeg-%d.err", s.port, s.port, s.port);
  CHECK_EQ(test_sh("%s", cmd), 0);
  /* ... and the frames' block codes strictly increasing. */
  snprintf(cmd, sizeof(cmd),
           "ffmpeg -nostdin -v error -i http://127.0.0.1:%d/stream.mjpg -frames:v 60 -c:v copy "
           "-f mjpeg -", s.port);
  FILE *f = popen(cmd, "r");
  CHECK(f != NULL);
  static unsigned char buf[1 << 20];
  size_t have = 0;
  ss_split sp;
  ss_split_init(&sp, sizeof(buf));
  long long last = -1;
  int frames = 0;
  for (;;) {
    size_t r = fread(buf + have, 1, sizeof(buf) - have, f);
    have += r;
    ss_split_out o;
    int got;
    while ((got = ss_split_next(&sp, buf, have, &o)) >= 0) {
      if (got == 1) {
        long long code = ss_pattern_read_jpeg(buf + o.off, o.len);
        CHECK_MSG(code > last, "block code %lld after %lld", code, last);
        last = code;
        frames++;
      }
      memmove(buf, buf + o.consumed, have - o.consumed);
      have -= o.consumed;
      if (got == 0) break;
    }
    if (r == 0) break;
  }
  CHECK_EQ(pclose(f), 0);
  CHECK_EQ(frames, 60);
  CHECK_EQ(srv_stop(&s), 0);
}

TEST_T(stream_two_named_streams_and_api, 60) {
  struct rel_srv s;
  const char *args[] = {"--stream", "cam2=testpattern", "--size", "320x240", NULL};
  srv_start(&s, args);
  CHECK_EQ(status_of(s.port, "/snapshot.jpg", NULL), 200);
  CHECK_EQ(status_of(s.port, "/streams/cam2/snapshot.jpg", NULL), 200);
  CHECK_EQ(status_of(s.port, "/streams/nope/snapshot.jpg", NULL), 404);
  char resp[16384];
  char req[256];
  snprintf(req, sizeof(req), "GET /api/streams HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  fetch(s.port, req, resp, sizeof(resp), 2000);
  CHECK(strstr(resp, "\"name\":\"default\"") != NULL);
  CHECK(strstr(resp, "\"name\":\"cam2\"") != NULL);
  CHECK(strstr(resp, "/streams/cam2/stream.mjpg") != NULL);
  snprintf(req, sizeof(req), "GET /streams/cam2/stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n");
  size_t n = fetch(s.port, req, resp, sizeof(resp), 700);
  CHECK(n > 1000);
  CHECK(strstr(resp, "multipart/x-mixed-replace; boundary=sluiceframe") != NULL);
  CHECK_EQ(srv_stop(&s), 0);
}

TEST_T(stream_metrics_parse_with_prometheus_client, 60) {
  need("python3");
  if (test_sh("/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null") != 0) {
    if (test_in_ci()) CHECK_MSG(0, "python3-prometheus-client missing");
    TEST_SKIP("python3-prometheus-client");
  }
  struct rel_srv s;
  srv_start(&s, NULL);
  int fd = dial(s.port, 0); /* one viewer, so per-viewer series exist */
  const char *req = "GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n";
  send(fd, req, strlen(req), 0);
  WAIT_FOR(stat_value(s.port, "\"viewers\":") == 1 && stat_value(s.port, "\"seq\":") > 5, 10000);
  CHECK_EQ(test_sh("curl -sf http://127.0.0.1:%d/metrics | /usr/bin/python3 -c '"
                   "import sys\n"
                   "from prometheus_client.parser import text_string_to_metric_families as p\n"
                   "fams = {f.name: f for f in p(sys.stdin.read())}\n"
                   "need = [\"sluice_memory_held_bytes\", \"sluice_process_rss_bytes\", \"sluice_stream_frames\","
                   " \"sluice_stream_viewers\", \"sluice_stream_drops\", \"sluice_viewer_queued_bytes\","
                   " \"sluice_viewer_lag_ms\", \"sluice_viewer_frames_sent\", \"sluice_closed\"]\n"
                   "missing = [n for n in need if n not in fams]\n"
                   "assert not missing, missing\n"
                   "v = [s for s in fams[\"sluice_stream_viewers\"].samples if s.labels[\"stream\"] == \"default\"]\n"
                   "assert v and v[0].value == 1, v\n"
                   "f = fams[\"sluice_stream_frames\"].samples[0].value\n"
                   "assert f > 5, f\n"
                   "assert fams[\"sluice_memory_held_bytes\"].samples[0].value > 0\n"
                   "'",
                   s.port),
           0);
  close(fd);
  CHECK_EQ(srv_stop(&s), 0);
}

TEST_T(stream_token_required_everywhere, 60) {
  struct rel_srv s;
  const char *args[] = {"--token", "s3cret", "--stream", "cam2=testpattern", NULL};
  srv_start(&s, args);
  const char *paths[] = {"/stream.mjpg", "/ws", "/snapshot.jpg", "/metrics", "/api/stats",
                         "/api/streams", "/api/events", "/streams/cam2/snapshot.jpg",
                         "/streams/cam2/stream.mjpg"};
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    CHECK_MSG(status_of(s.port, paths[i], NULL) == 401, "%s without token", paths[i]);
    CHECK_MSG(status_of(s.port, paths[i], "Authorization: Bearer wrong\r\n") == 401,
              "%s with a wrong token", paths[i]);
  }
  CHECK_EQ(status_of(s.port, "/snapshot.jpg", "Authorization: Bearer s3cret\r\n"), 200);
  CHECK_EQ(status_of(s.port, "/snapshot.jpg?token=s3cret", NULL), 200);
  CHECK_EQ(status_of(s.port, "/api/stats?token=wrong", NULL), 401);
  CHECK_EQ(status_of(s.port, "/metrics?token=s3cret", NULL), 200);
  CHECK_EQ(srv_stop(&s), 0);

  const char *args2[] = {"--basic", "admin:pw", NULL};
  srv_start(&s, args2);
  CHECK_EQ(status_of(s.port, "/api/stats", NULL), 401);
  CHECK_EQ(status_of(s.port, "/", NULL), 401);
  /* admin:pw and admin:px in base64 */
  CHECK_EQ(status_of(s.port, "/api/stats", "Authorization: Basic YWRtaW46cHc=\r\n"), 200);
  CHECK_EQ(status_of(s.port, "/api/stats", "Authorization: Basic YWRtaW46cHg=\r\n"), 401);
  CHECK_EQ(srv_stop(&s), 0);
}

TEST_T(stream_lossless_only_when_allowed, 60) {
  struct rel_srv s;
  srv_start(&s, NULL);
  CHECK_EQ(status_of(s.port, "/stream.mjpg?policy=lossless", NULL), 403);
  CHECK_EQ(status_of(s.port, "/stream.mjpg?policy=bogus", NULL), 400);
  CHECK_EQ(status_of(s.port, "/stream.mjpg?fps=-1", NULL), 400);
  CHECK_EQ(srv_stop(&s), 0);
  const char *args[] = {"--allow-lossless", NULL};
  srv_start(&s, args);
  CHECK_EQ(status_of(s.port, "/stream.mjpg?policy=lossless", NULL), 200);
  CHECK_EQ(status_of(s.port, "/stream.mjpg?policy=queue:4&fps=5", NULL), 200);
  CHECK_EQ(srv_stop(&s), 0);
}

TEST_T(stream_foreign_websocket_origin_refused, 60) {
  struct rel_srv s;
  srv_start(&s, NULL);
  char hdr[512];
  const char *ws = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
  snprintf(hdr, sizeof(hdr), "%sOrigin: http://evil.example\r\n", ws);
  CHECK_EQ(status_of(s.port, "/ws", hdr), 403);
  snprintf(hdr, sizeof(hdr), "%sOrigin: http://127.0.0.1:%d\r\n", ws, s.port);
  CHECK_EQ(status_of(s.port, "/ws", hdr), 101);
  CHECK_EQ(status_of(s.port, "/ws", ws), 101); /* no Origin: not a browser */
  CHECK_EQ(srv_stop(&s), 0);
  const char *args[] = {"--allow-origin", "http://dash.example:8000", NULL};
  srv_start(&s, args);
  snprintf(hdr, sizeof(hdr), "%sOrigin: http://dash.example:8000\r\n", ws);
  CHECK_EQ(status_of(s.port, "/ws", hdr), 101);
  snprintf(hdr, sizeof(hdr), "%sOrigin: http://evil.example\r\n", ws);
  CHECK_EQ(status_of(s.port, "/ws", hdr), 403);
  CHECK_EQ(srv_stop(&s), 0);
}

/* The head of `path` fetched with `extra_hdr`, into resp. */
static void head_of(int port, const char *path, const char *extra_hdr, char *resp, size_t cap) {
  char req[1024];
  snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%sConnection: close\r\n\r\n",
           path, port, extra_hdr ? extra_hdr : "");
  CHECK(cap >= 4096);
  fetch(port, req, resp, 2000, 2000);
  char *end = strstr(resp, "\r\n\r\n");
  CHECK_MSG(end != NULL, "no head: %s", resp);
  end[2] = '\0';
}

TEST_T(stream_cors_only_for_listed_origins, 60) {
  struct rel_srv s;
  char resp[4096];
  srv_start(&s, NULL);
  /* Default: no CORS, whatever the page. */
  head_of(s.port, "/stream.mjpg", "Origin: http://dash.example:8000\r\n", resp, sizeof(resp));
  CHECK_MSG(strstr(resp, "Access-Control-Allow-Origin") == NULL, "%s", resp);
  CHECK_EQ(srv_stop(&s), 0);
  const char *args[] = {"--cors", "http://dash.example:8000,https://ops.example", NULL};
  srv_start(&s, args);
  head_of(s.port, "/stream.mjpg", "Origin: https://ops.example\r\n", resp, sizeof(resp));
  CHECK_MSG(strstr(resp, "\r\nAccess-Control-Allow-Origin: https://ops.example\r\n") != NULL,
            "%s", resp);
  CHECK(strstr(resp, "\r\nVary: Origin\r\n") != NULL);
  head_of(s.port, "/stream.mjpg", "Origin: http://evil.example\r\n", resp, sizeof(resp));
  CHECK_MSG(strstr(resp, "Access-Control-Allow-Origin") == NULL, "%s", resp);
  /* The WebSocket rule is its own: --cors does not open /ws. */
  const char *ws = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://ops.example\r\n";
  CHECK_EQ(status_of(s.port, "/ws", ws), 403);
  CHECK_EQ(srv_stop(&s), 0);
  const char *any[] = {"--cors", "*", "--allow-origin", "*", NULL};
  srv_start(&s, any);
  head_of(s.port, "/stream.mjpg", "Origin: http://evil.example\r\n", resp, sizeof(resp));
  CHECK_MSG(strstr(resp, "\r\nAccess-Control-Allow-Origin: *\r\n") != NULL, "%s", resp);
  CHECK_EQ(status_of(s.port, "/ws", ws), 101);
  CHECK_EQ(srv_stop(&s), 0);
}

/* Count multipart parts (frames) read from fd for `ms`. */
static int count_frames(int fd, int ms) {
  static char buf[1 << 16];
  int frames = 0;
  const char *pat = "--sluiceframe";
  size_t pl = strlen(pat), match = 0;
  uint64_t end = test_now_ms() + (uint64_t)ms;
  while (test_now_ms() < end) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    ssize_t r = recv(fd, buf, sizeof(buf), 0);
    if (r <= 0) break;
    for (ssize_t i = 0; i < r; i++) {
      match = buf[i] == pat[match] ? match + 1 : (buf[i] == pat[0] ? 1 : 0);
      if (match == pl) {
        frames++;
        match = 0;
      }
    }
  }
  return frames;
}

static long stat_value(int port, const char *key) {
  char req[128], resp[65536];
  snprintf(req, sizeof(req), "GET /api/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  fetch(port, req, resp, sizeof(resp), 2000);
  char *p = strstr(resp, key);
  return p ? atol(p + strlen(key)) : -1;
}

TEST_T(stream_stalled_viewer_bounded_healthy_unaffected, 90) {
  struct rel_srv s;
  const char *args[] = {"--size", "1280x720", "--quality", "90", NULL};
  srv_start(&s, args);
  const char *req = "GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n";
  /* Control: one viewer alone. */
  int ctl = dial(s.port, 0);
  send(ctl, req, strlen(req), 0);
  int control = count_frames(ctl, 4000);
  close(ctl);
  /* Then a healthy viewer beside three stalled ones, same duration. */
  int stalled[3];
  for (int i = 0; i < 3; i++) {
    stalled[i] = dial(s.port, 4096);
    send(stalled[i], req, strlen(req), 0);
  }
  int fd = dial(s.port, 0);
  send(fd, req, strlen(req), 0);
  int healthy = count_frames(fd, 4000);
  printf("  control %d frames, healthy beside 3 stalled %d frames\n", control, healthy);
  CHECK(control > 60);
  CHECK_GE(healthy * 10, control * 9);
  /* Each stalled viewer's queue is under its send_max (2 x frame + 64K),
   * and the whole library holds a bounded amount. */
  long largest = stat_value(s.port, "\"largest_frame\":");
  long held = stat_value(s.port, "\"held\":");
  long queued = stat_value(s.port, "\"queued\":");
  CHECK(largest > 0);
  printf("  largest frame %ld, library held %ld, queued %ld\n", largest, held, queued);
  CHECK_LE(queued, 3 * (2 * largest + 65536) + 2 * largest);
  CHECK_LE(held, 6 * largest + 3 * 65536 + 256 * 1024);
  for (int i = 0; i < 3; i++) close(stalled[i]);
  close(fd);
  CHECK_EQ(srv_stop(&s), 0);
}

TEST_T(stream_cli_errors_and_shutdown, 60) {
  CHECK_EQ(test_sh("%s --help >/dev/null", SS_BINARY), 0);
  CHECK_EQ(test_sh("%s --version | grep -q 'sluice-stream %s'", SS_BINARY, SL_VERSION), 0);
  CHECK_EQ(test_sh("%s --bogus 2>/dev/null", SS_BINARY), 2);
  CHECK_EQ(test_sh("%s --bogus 2>&1 | grep -q 'unknown option --bogus'", SS_BINARY), 0);
  CHECK_EQ(test_sh("%s --size 12 2>&1 | grep -q 'WIDTHxHEIGHT'", SS_BINARY), 0);
  struct rel_srv s;
  srv_start(&s, NULL);
  /* The port is taken: a clear message and a failure exit. */
  CHECK_EQ(test_sh("%s --listen 127.0.0.1:%d 2>&1 | grep -q 'already in use'", SS_BINARY, s.port), 0);
  CHECK(test_sh("%s --listen 127.0.0.1:%d >/dev/null 2>&1", SS_BINARY, s.port) != 0);
  /* A config file. */
  char cfg[128];
  snprintf(cfg, sizeof(cfg), "/tmp/ss-cfg-%d.conf", s.port);
  FILE *f = fopen(cfg, "w");
  fprintf(f, "# comment\nfps = 10\nsize 320x240\nbogus-option = 1\n");
  fclose(f);
  CHECK_EQ(test_sh("%s --config %s 2>&1 | grep -q \"unknown option 'bogus-option'\"", SS_BINARY, cfg), 0);
  unlink(cfg);
  /* A viewer connected during shutdown does not keep anything alive. */
  int fd = dial(s.port, 0);
  const char *req = "GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n";
  send(fd, req, strlen(req), 0);
  WAIT_FOR(stat_value(s.port, "\"viewers\":") == 1, 10000);
  CHECK_EQ(srv_stop(&s), 0);
  close(fd);
  CHECK_EQ(test_sh("grep -q 'library memory now 0 bytes' %s", s.log), 0);
  CHECK_EQ(test_sh("grep -q 'joined' %s && grep -q 'left' %s", s.log, s.log), 0);
}

#ifdef SS_HAVE_OPENH264
/* fMP4 viewers of one H.264 stream share one fragment per frame: with three
 * of them reading, /api/stats counts at most one fragment per published
 * frame, and the three together received about three times the fragment
 * bytes built (a muxer per viewer would count three fragments per frame). */
TEST_T(stream_mp4_one_fragment_per_frame_for_all_viewers, 60) {
  struct rel_srv s;
  const char *args[] = {"--codec", "h264", NULL};
  srv_start(&s, args);
  const char *req = "GET /stream.mp4 HTTP/1.1\r\nHost: x\r\n\r\n";
  enum { NV = 3 };
  int fd[NV];
  size_t got[NV] = {0};
  for (int i = 0; i < NV; i++) {
    fd[i] = dial(s.port, 0);
    CHECK(fd[i] >= 0);
    CHECK_EQ(send(fd[i], req, strlen(req), 0), (long long)strlen(req));
  }
  static char buf[1 << 16];
  uint64_t end = test_now_ms() + 2000;
  while (test_now_ms() < end) {
    struct pollfd p[NV];
    for (int i = 0; i < NV; i++) p[i] = (struct pollfd){fd[i], POLLIN, 0};
    if (poll(p, NV, 20) <= 0) continue;
    for (int i = 0; i < NV; i++) {
      if (!(p[i].revents & (POLLIN | POLLHUP))) continue;
      ssize_t r = recv(fd[i], buf, sizeof(buf), 0);
      CHECK(r > 0);
      got[i] += (size_t)r;
    }
  }
  for (int i = 0; i < NV; i++) close(fd[i]);
  WAIT_FOR(stat_value(s.port, "\"viewers\":") == 0, 10000);
  long frames = stat_value(s.port, "\"frames_in\":");
  long frags = stat_value(s.port, "\"mp4_fragments\":");
  long bytes = stat_value(s.port, "\"mp4_bytes\":");
  printf("  %ld frames published, %ld fragments built (%ld bytes); viewers got %zu / %zu / %zu bytes\n",
         frames, frags, bytes, got[0], got[1], got[2]);
  long loops = stat_value(s.port, "\"threads\":");
  if (loops < 1) loops = 1;
  CHECK(frags > 10);
  /* One per frame and loop (with --threads each loop builds its own). */
  CHECK_LE(frags, loops * frames);
  size_t sum = 0;
  for (int i = 0; i < NV; i++) {
    /* Each viewer: the response head and init segment (a few KB) and at most
     * every fragment built. */
    CHECK_LE(got[i], (size_t)bytes + 8192);
    sum += got[i];
  }
  /* Shared: each loop's fragments reach every viewer on it, so the viewers
   * together got more than NV - 1 times one loop's share (a muxer per
   * viewer would give about bytes in all). */
  CHECK_MSG(sum * (size_t)loops > (NV - 1) * (size_t)bytes, "viewers got %zu bytes in all, "
            "%ld built on %ld loop(s)", sum, bytes, loops);
  CHECK_EQ(srv_stop(&s), 0);
}
#endif
