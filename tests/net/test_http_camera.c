/* examples/http_camera.c end to end: the example binary as a child process
 * on port 0 (read back from its "camera on port N" line), driven by curl
 * and raw sockets: Basic auth on every endpoint (401 before any body is
 * read), the page, the JSON API (GET, POST, bad JSON and out-of-range
 * values answered 400 with the reason, an oversized JSON body 413 as JSON
 * from on_error), a multipart upload from curl -F checksummed by the
 * server as it streams, an oversized upload refused with 413, MJPEG frames
 * that decode, the WebSocket echo and status push (with the library's own
 * client), and a stalled MJPEG viewer that does not make the server hold
 * more while megabytes are published past it. It exits 0 on SIGTERM. */
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "common.h"
#include "sluice.h"
#include "test.h"

#define CURL "curl --http1.1 --noproxy '*' -sS --max-time 20 "
#define AUTH "-u admin:pw-for-test "
#define BASIC "Authorization: Basic YWRtaW46cHctZm9yLXRlc3Q=\r\n" /* admin:pw-for-test */

struct cam {
  pid_t pid;
  int port;
  char log[128];
};

static void cam_start(struct cam *k) {
  char *argv[] = {(char *)SL_CAMERA_BIN, (char *)"127.0.0.1:0", NULL};
  snprintf(k->log, sizeof(k->log), "/tmp/sl-camera-%d.log", (int)getpid());
  unlink(k->log);
  setenv("CAMERA_PASSWORD", "pw-for-test", 1);
  k->pid = test_spawn(k->log, argv);
  k->port = test_wait_log_port(k->log, "camera on port ", k->pid, 5000);
}

static int cam_stop(struct cam *k) {
  int st = -1;
  kill(k->pid, SIGTERM);
  for (int i = 0; i < 500 && waitpid(k->pid, &st, WNOHANG) == 0; i++) usleep(10000);
  unlink(k->log);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* `curl ... -w '\n%{http_code}'`: the body, then the status on its own
 * line; split them. Returns the status. */
static int curl_status(char *out, size_t cap, const char *args, int port, const char *path) {
  CHECK_EQ(sh_capture(out, cap, CURL "-w '\\n%%{http_code}' %s http://127.0.0.1:%d%s", args, port,
                      path), 0);
  char *nl = strrchr(out, '\n');
  CHECK(nl != NULL);
  *nl = '\0';
  return atoi(nl + 1);
}

static long long json_num(const char *json, const char *path) {
  double v = -1;
  CHECK_MSG(sl_json_get_num(json, strlen(json), path, &v) == 0, "%s in %s", path, json);
  return (long long)v;
}

static long long status_held(int port, long long *frames) {
  char out[512];
  CHECK_EQ(curl_status(out, sizeof(out), AUTH, port, "/api/status"), 200);
  if (frames) *frames = json_num(out, "$.frames");
  return json_num(out, "$.held");
}

TEST_T(http_camera_example_endpoints, 90) {
  NEED_TOOL("curl");
  struct cam k;
  char out[8192], dir[64], path[128], want[256], args[512];
  cam_start(&k);
  int p = k.port;

  /* Auth first: every endpoint, before any body. */
  CHECK_EQ(curl_status(out, sizeof(out), "", p, "/"), 401);
  CHECK_EQ(curl_status(out, sizeof(out), "-u admin:wrong", p, "/api/settings"), 401);
  CHECK_EQ(curl_status(out, sizeof(out), "-F fw=@/dev/null", p, "/api/upload"), 401);
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "-o /dev/null -D - http://127.0.0.1:%d/stream.mjpg", p), 0);
  CHECK(strstr(out, "401") && strstr(out, "WWW-Authenticate: Basic realm=\"camera\""));

  /* The page and a 404. */
  CHECK_EQ(curl_status(out, sizeof(out), AUTH, p, "/"), 200);
  CHECK(strstr(out, "<img src=/stream.mjpg") != NULL);
  CHECK_EQ(curl_status(out, sizeof(out), AUTH, p, "/nope"), 404);

  /* The JSON API. */
  CHECK_EQ(curl_status(out, sizeof(out), AUTH, p, "/api/settings"), 200);
  CHECK_STR(out, "{\"fps\":10,\"quality\":80,\"name\":\"front door\"}");
  CHECK_EQ(curl_status(out, sizeof(out), AUTH "-d '{\"fps\":30,\"quality\":100,\"name\":\"porch \\\"2\\\"\"}'",
                       p, "/api/settings"), 200);
  CHECK_STR(out, "{\"fps\":30,\"quality\":100,\"name\":\"porch \\\"2\\\"\"}");
  CHECK_EQ(curl_status(out, sizeof(out), AUTH, p, "/api/settings"), 200);
  CHECK_STR(out, "{\"fps\":30,\"quality\":100,\"name\":\"porch \\\"2\\\"\"}");
  CHECK_EQ(curl_status(out, sizeof(out), AUTH "-d '{\"fps\":'", p, "/api/settings"), 400);
  CHECK_STR(out, "{\"error\":400,\"reason\":\"malformed JSON\"}");
  CHECK_EQ(curl_status(out, sizeof(out), AUTH "-d '[1]'", p, "/api/settings"), 400);
  CHECK_STR(out, "{\"error\":400,\"reason\":\"body is not a JSON object\"}");
  CHECK_EQ(curl_status(out, sizeof(out), AUTH "-d '{\"fps\":99}'", p, "/api/settings"), 400);
  CHECK_STR(out, "{\"error\":400,\"reason\":\"fps: a number from 1 to 30\"}");
  CHECK_EQ(curl_status(out, sizeof(out), AUTH "-d '{\"name\":\"012345678901234567890123456789xyz\"}'",
                       p, "/api/settings"), 400);
  CHECK_STR(out, "{\"error\":400,\"reason\":\"name: a string of at most 32 bytes\"}");
  /* Over the 4 KiB JSON limit: the library's 413, as JSON by on_error. */
  make_tmpdir(dir);
  snprintf(path, sizeof(path), "%s/big.json", dir);
  static char filler[5000];
  memset(filler, ' ', sizeof(filler));
  write_file(path, filler, sizeof(filler));
  snprintf(args, sizeof(args), AUTH "--data-binary @%s", path);
  CHECK_EQ(curl_status(out, sizeof(out), args, p, "/api/settings"), 413);
  CHECK_STR(out, "{\"error\":413,\"reason\":\"body over 4096 bytes\"}");

  /* An upload from a browser-style form, checksummed as it streams. */
  size_t n = 3u << 20;
  unsigned char *data = malloc(n);
  CHECK(data != NULL);
  fill_pattern(data, n, 11);
  for (size_t i = 0; i + 4 < n; i += 4093) memcpy(data + i, "\r\n--", 4);
  snprintf(path, sizeof(path), "%s/fw.bin", dir);
  write_file(path, data, n);
  snprintf(args, sizeof(args), AUTH "-F 'note=spring update' -F 'fw=@%s'", path);
  CHECK_EQ(curl_status(out, sizeof(out), args, p, "/api/upload"), 200);
  snprintf(want, sizeof(want), "{\"file\":\"fw.bin\",\"bytes\":%zu,\"fnv1a\":\"%08x\"}", n,
           fnv1a(data, n));
  CHECK_STR(out, want);
  free(data);
  /* Not multipart; a form cut short; over the 8 MiB upload limit. */
  CHECK_EQ(curl_status(out, sizeof(out), AUTH "-d a=1", p, "/api/upload"), 400);
  CHECK_STR(out, "{\"error\":400,\"reason\":\"not multipart/form-data\"}");
  CHECK_EQ(curl_status(out, sizeof(out),
                       AUTH "-H 'Content-Type: multipart/form-data; boundary=zz' "
                            "--data-binary $'--zz\\r\\nContent-Disposition: form-data; name=a\\r\\n\\r\\nv'",
                       p, "/api/upload"), 400);
  CHECK_STR(out, "{\"error\":400,\"reason\":\"body ended before the closing boundary\"}");
  snprintf(path, sizeof(path), "%s/huge.bin", dir);
  CHECK_EQ(test_sh("head -c 9000000 /dev/zero > %s", path), 0);
  snprintf(args, sizeof(args), AUTH "-F 'fw=@%s'", path);
  CHECK_EQ(curl_status(out, sizeof(out), args, p, "/api/upload"), 413);
  CHECK_STR(out, "{\"error\":413,\"reason\":\"body over 8388608 bytes\"}");

  /* MJPEG: a second of it decodes as JPEG parts with our frame comment. */
  snprintf(path, sizeof(path), "%s/s.mjpg", dir);
  sh_capture(out, sizeof(out), CURL AUTH "--max-time 1 -o %s http://127.0.0.1:%d/stream.mjpg 2>/dev/null",
             path, p);
  size_t len = 0;
  char *mj = read_file(path, &len);
  CHECK(mj != NULL && len > 0);
  CHECK(memmem(mj, len, "Content-Type: image/jpeg", 24) != NULL);
  CHECK(memmem(mj, len, "\xff\xd8\xff\xfe", 4) != NULL && memmem(mj, len, "frame ", 6) != NULL);
  CHECK(memmem(mj, len, "\xff\xd9", 2) != NULL);
  free(mj);
  test_sh("rm -rf %s", dir);
  CHECK_EQ(cam_stop(&k), 0);
}

/* The WebSocket, with the library's client: an echo, then a status push. */
static int ws_echoed, ws_status;

static void on_ws(sl_conn *c, int ev, void *ev_data) {
  if (ev == SL_EV_WS_OPEN) CHECK_EQ(sl_ws_send(c, SL_WS_TEXT, "hello camera", 12), 0);
  if (ev != SL_EV_WS_MSG) return;
  const sl_ws_msg *w = ev_data;
  if (w->data.len == 12 && memcmp(w->data.ptr, "hello camera", 12) == 0) ws_echoed++;
  char type[16];
  if (sl_json_get_str(w->data.ptr, w->data.len, "$.type", type, sizeof(type)) > 0 &&
      strcmp(type, "status") == 0) {
    double f;
    CHECK_EQ(sl_json_get_num(w->data.ptr, w->data.len, "$.frames", &f), 0);
    ws_status++;
  }
}

TEST_T(http_camera_example_websocket, 60) {
  struct cam k;
  cam_start(&k);
  char url[64];
  snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws", k.port);
  sl_ws_opts wo = {.headers = BASIC};
  int err = 0;
  sl_mgr *m = sl_mgr_new(NULL, &err);
  CHECK(m != NULL);
  sl_conn *c = sl_ws_connect(m, url, &wo, on_ws, NULL, &err);
  CHECK(c != NULL);
  WAIT_FOR_MGR(m, ws_echoed == 1 && ws_status >= 1, 5000);
  sl_conn_close(c, SL_CLOSE_NOW);
  sl_mgr_stats st;
  WAIT_FOR_MGR(m, (sl_mgr_stats_get(m, &st), st.conns == 0), 5000);
  CHECK_MGR_FREE_CLEAN(m);
  CHECK_EQ(cam_stop(&k), 0);
}

/* A viewer that stops reading: the hub skips frames for it (latest
 * policy) and its queue stays at its send_max, so what the server holds
 * does not grow while many times that is published past it. */
TEST_T(http_camera_example_stalled_viewer_bounded, 60) {
  NEED_TOOL("curl");
  struct cam k;
  char out[512];
  cam_start(&k);
  int p = k.port;
  /* Big frames, fast: about 60 KB at 30 fps. */
  CHECK_EQ(curl_status(out, sizeof(out), AUTH "-d '{\"fps\":30,\"quality\":100}'", p,
                       "/api/settings"), 200);
  int fd = test_dial("127.0.0.1", p, 4096);
  CHECK(fd >= 0);
  char req[256];
  int rl = snprintf(req, sizeof(req), "GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n" BASIC "\r\n");
  CHECK_EQ(test_send_all(fd, req, (size_t)rl), 0);
  char first[64];
  CHECK(recv(fd, first, sizeof(first), 0) > 0); /* it is a viewer; now it stops reading */
  long long f0, f1, held, peak = 0;
  status_held(p, &f0);
  /* Sample for 4 s: 30 fps of 60 KB is some 7 MB past the viewer. */
  for (int i = 0; i < 20; i++) {
    usleep(200000);
    held = status_held(p, &f1);
    if (held > peak) peak = held;
  }
  long long published = (f1 - f0) * 60000;
  fprintf(stderr, "  stalled viewer: %lld frames (%lld bytes) published, server held at most %lld bytes\n",
           f1 - f0, published, peak);
  CHECK_GE(f1 - f0, 40);                 /* the capture thread was never held back */
  CHECK_LE(peak, 1024 * 1024);           /* the viewer's send_max and a frame or two */
  CHECK_GE(published, 2 * 1024 * 1024);  /* well beyond what was held */
  /* The viewer is still there (stall_ms is 10 s) and still counted. */
  CHECK_EQ(sh_capture(out, sizeof(out), CURL AUTH "http://127.0.0.1:%d/api/status", p), 0);
  CHECK_EQ(json_num(out, "$.viewers"), 1);
  close(fd);
  CHECK_EQ(cam_stop(&k), 0);
}
