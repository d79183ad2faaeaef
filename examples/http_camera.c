/* A camera's web server, the whole of it: a page, a JSON API with a POST
 * body, a firmware-style upload (multipart/form-data, streamed and
 * checksummed, never held whole), MJPEG from a capture thread, a WebSocket
 * that echoes and gets a status push every second, Basic auth on every
 * request, and a bound on everything (connections, buffers, bodies,
 * viewers, stalled clients). The "sensor" is one pre-encoded 32x24 JPEG
 * whose comment segment carries the frame number: no codec library.
 *   ./http_camera [127.0.0.1:8000]   (user admin, password $CAMERA_PASSWORD
 *   or "secret"), then open http://admin:secret@127.0.0.1:8000/ */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice.h"

#define JSON "Content-Type: application/json\r\n"
#define UPLOAD_MAX (8u << 20) /* the biggest file we take */

static const char page[] =
    "<!doctype html><title>camera</title><h1>camera</h1>\n"
    "<img src=/stream.mjpg width=320><pre id=st></pre>\n"
    "<form method=post action=/api/upload enctype=multipart/form-data>\n"
    "<input type=file name=fw><button>upload</button></form>\n"
    "<script>const ws = new WebSocket(`ws://${location.host}/ws`);\n"
    "ws.onmessage = (e) => { st.textContent = e.data; };</script>\n";

/* The JPEG after its SOI marker; each frame is SOI, a comment, this. */
static const char jpeg_tail[] =
    "\xff\xdb\x00\x43\x00\x08\x3e\x3e\x49\x3e\x49\x55\x55\x55\x55\x55\x55\x64\x5d\x64\x68"
    "\x68\x68\x64\x64\x64\x64\x68\x68\x68\x70\x70\x70\x83\x83\x83\x70\x70\x70\x68\x68\x70"
    "\x70\x7c\x7c\x83\x83\x8f\x93\x8f\x87\x87\x83\x87\x93\x93\x9b\x9b\x9b\xba\xba\xb2\xb2"
    "\xd9\xd9\xe0\xff\xff\xff\xff\xc4\x00\x4d\x00\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x00\x00\x06\x01\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x00\x05\x06\x10\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\x00\x00\x00\x11\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    "\x00\xff\xc0\x00\x11\x08\x00\x18\x00\x20\x03\x01\x22\x00\x02\x11\x00\x03\x11\x00\xff"
    "\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00\x97\x01\xa8\x41\x00\x00\x00\x00"
    "\x07\xff\xd9";

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static sl_hub *camera, *status;            /* frames; status texts */
static atomic_int fps = 10, quality = 80;  /* settings, read by the thread */
static char name[33] = "front door";      /* settings, loop thread only */
static atomic_ullong frames;
static const char *password;

/* The capture thread: builds a frame and hands it to the hub, which fans it
 * out to every viewer without copying, skipping frames for slow ones. */
static void *capture(void *arg) {
  (void)arg;
  while (!stop) {
    /* A higher quality, a bigger frame, as with a real encoder: the
     * comment is padded to 600 bytes per point (at most 60000). */
    size_t pad = (size_t)atomic_load(&quality) * 600, com = 16 + pad;
    sl_buf *b = sl_buf_new(4 + com + sizeof(jpeg_tail) - 1);
    if (b != NULL) {
      char *p = sl_buf_data(b);
      memcpy(p, "\xff\xd8\xff\xfe", 4); /* SOI, then a comment segment */
      p[4] = (char)(com >> 8), p[5] = (char)(com & 0xff);
      snprintf(p + 6, 15, "frame %08llu", (frames + 1) % 100000000ull);
      memset(p + 20, ' ', pad);
      memcpy(p + 20 + pad, jpeg_tail, sizeof(jpeg_tail) - 1);
      if (sl_hub_publish(camera, b, 0, 0) == 0) frames++;
      sl_buf_unref(b); /* the hub holds its own reference */
    }
    long ns = 1000000000L / atomic_load(&fps);
    nanosleep(&(struct timespec){ns / 1000000000L, ns % 1000000000L}, NULL);
  }
  return NULL;
}

/* The status: frames captured, viewers, bytes the library holds. */
static int status_json(sl_mgr *m, char *out, size_t len) {
  sl_hub_stats hs;
  sl_mgr_stats ms;
  sl_hub_stats_get(camera, &hs);
  sl_mgr_stats_get(m, &ms);
  return sl_json_printf(out, len, "{%Q:%Q,%Q:%llu,%Q:%zu,%Q:%zu}", "type", "status", "frames",
                        (unsigned long long)frames, "viewers", hs.subs, "held", ms.held);
}

/* Once a second, on the loop thread: the status to every WebSocket. */
static void push_status(sl_mgr *m, void *arg) {
  char msg[160];
  int n = status_json(m, msg, sizeof(msg));
  (void)arg;
  if (n > 0) sl_hub_publish_text(status, msg, (size_t)n);
}

static void get_settings(sl_conn *c) {
  char out[128];
  int n = sl_json_printf(out, sizeof(out), "{%Q:%d,%Q:%d,%Q:%Q}", "fps", atomic_load(&fps),
                         "quality", atomic_load(&quality), "name", name);
  sl_http_reply(c, 200, JSON, out, n > 0 ? (size_t)n : 0);
}

/* {"fps":15,"quality":70,"name":"porch"}: any subset, each one checked. */
static void post_settings(sl_conn *c, const sl_http_msg *m) {
  const char *b = m->body.ptr, *why = NULL;
  size_t len = m->body.len;
  double f = atomic_load(&fps), q = atomic_load(&quality);
  char nm[sizeof(name)];
  int rn = sl_json_get_str(b, len, "$.name", nm, sizeof(nm));
  int rf = sl_json_get_num(b, len, "$.fps", &f), rq = sl_json_get_num(b, len, "$.quality", &q);
  int t = sl_json_get(b, len, "$", NULL, NULL);
  if (t != SL_JSON_OBJECT) why = t < 0 ? "malformed JSON" : "body is not a JSON object";
  else if ((rf && rf != SL_ENOENT) || f < 1 || f > 30) why = "fps: a number from 1 to 30";
  else if ((rq && rq != SL_ENOENT) || q < 1 || q > 100) why = "quality: a number from 1 to 100";
  else if (rn < 0 && rn != SL_ENOENT) why = "name: a string of at most 32 bytes";
  if (why) {
    sl_http_replyf(c, 400, JSON, "{\"error\":400,\"reason\":\"%s\"}", why);
    return;
  }
  atomic_store(&fps, (int)f);
  atomic_store(&quality, (int)q);
  if (rn >= 0) memcpy(name, nm, sizeof(nm));
  get_settings(c);
}

/* An upload in progress: the parser and what we learn from the parts. */
struct upload {
  sl_multipart *mp;
  uint32_t sum; /* FNV-1a of the file's bytes */
  uint64_t bytes;
  char file[64];
};

static int on_part(const sl_multipart_part *p, void *arg) {
  struct upload *u = arg;
  if (!p->has_filename) return 0;
  snprintf(u->file, sizeof(u->file), "%.*s", (int)p->filename.len, p->filename.ptr);
  return 0;
}

static int on_data(const sl_multipart_part *p, const void *data, size_t len, void *arg) {
  struct upload *u = arg;
  const unsigned char *d = data;
  if (!p->has_filename) return 0; /* a plain field */
  for (size_t i = 0; i < len; i++) u->sum = (u->sum ^ d[i]) * 16777619u;
  u->bytes += len;
  return 0;
}

static void upload_free(sl_conn *c) {
  struct upload *u = sl_conn_data(c);
  if (u == NULL) return;
  sl_multipart_free(u->mp);
  free(u);
  sl_conn_set_data(c, NULL);
}

/* From the headers event: stream the body into a multipart parser. */
static void upload_start(sl_conn *c, const sl_http_msg *m) {
  const sl_str *ct = sl_http_get_header(m, "Content-Type");
  struct upload *u = calloc(1, sizeof(*u));
  sl_multipart_opts o = {.max_parts = 4, .on_part = on_part, .on_data = on_data, .arg = u};
  int err = SL_ENOMEM;
  if (u) u->sum = 2166136261u;
  if (u && ct) u->mp = sl_multipart_new(ct->ptr, ct->len, &o, &err);
  if (u == NULL || u->mp == NULL) {
    free(u);
    sl_http_replyf(c, 400, JSON, "{\"error\":400,\"reason\":\"%s\"}",
                   err == SL_ENOMEM ? "out of memory" : "not multipart/form-data");
    return;
  }
  sl_conn_set_data(c, u);
  sl_http_body_max(c, UPLOAD_MAX);
  sl_http_body_stream(c, 1);
}

/* Each piece of the body; the empty one ends it. */
static void upload_chunk(sl_conn *c, const sl_str *s) {
  struct upload *u = sl_conn_data(c);
  char out[256];
  int rc = s->len ? sl_multipart_feed(u->mp, s->ptr, s->len) : sl_multipart_finish(u->mp);
  if (rc == 0 && s->len) return;
  if (rc) sl_json_printf(out, sizeof(out), "{%Q:400,%Q:%Q}", "error", "reason",
                         sl_multipart_error(u->mp));
  else sl_json_printf(out, sizeof(out), "{%Q:%Q,%Q:%llu,%Q:\"%08x\"}", "file", u->file,
                      "bytes", (unsigned long long)u->bytes, "fnv1a", u->sum);
  sl_http_reply(c, rc ? 400 : 200, JSON, out, strlen(out));
  upload_free(c);
}

static void on_http(sl_conn *c, int ev, void *ev_data) {
  sl_http_msg *m = ev_data;
  if (ev == SL_EV_HTTP_HEADERS) { /* before any body byte is read */
    if (!sl_http_check_basic(m, "admin", password)) sl_http_reply_401(c, "camera");
    else if (sl_http_match(m, "/api/upload", NULL, 0) && sl_http_is_method(m, "POST"))
      upload_start(c, m);
  } else if (ev == SL_EV_HTTP_CHUNK) {
    upload_chunk(c, ev_data);
  } else if (ev == SL_EV_CLOSE) {
    upload_free(c); /* an upload cut short */
  } else if (ev == SL_EV_WS_MSG) {
    const sl_ws_msg *w = ev_data;
    sl_ws_send(c, w->opcode, w->data.ptr, w->data.len); /* echo */
  } else if (ev == SL_EV_HTTP_MSG) {
    if (sl_http_match(m, "/", NULL, 0))
      sl_http_reply(c, 200, "Content-Type: text/html\r\n", page, sizeof(page) - 1);
    else if (sl_http_match(m, "/api/settings", NULL, 0) && sl_http_is_method(m, "POST"))
      post_settings(c, m);
    else if (sl_http_match(m, "/api/settings", NULL, 0))
      get_settings(c);
    else if (sl_http_match(m, "/api/status", NULL, 0)) {
      char out[160];
      int n = status_json(sl_conn_mgr(c), out, sizeof(out));
      sl_http_reply(c, 200, JSON, out, n > 0 ? (size_t)n : 0);
    }
    else if (sl_http_match(m, "/stream.mjpg", NULL, 0))
      sl_hub_attach(camera, c, m, SL_TRANSPORT_MJPEG, NULL, NULL);
    else if (sl_http_match(m, "/ws", NULL, 0))
      sl_hub_attach(status, c, m, SL_TRANSPORT_WS, NULL, NULL);
    else
      sl_http_reply_status(c, 404);
  }
}

/* The errors the library answers itself (400, 408, 413, ...): JSON under
 * /api/, its plain text elsewhere. */
static void on_error(sl_conn *c, const sl_http_error *e, void *arg) {
  (void)arg;
  if (e->path.len >= 5 && memcmp(e->path.ptr, "/api/", 5) == 0)
    sl_http_replyf(c, e->status, JSON, "{\"error\":%d,\"reason\":\"%s\"}", e->status, e->reason);
}

int main(int argc, char **argv) {
  const char *addr = argc > 1 ? argv[1] : "127.0.0.1:8000";
  password = getenv("CAMERA_PASSWORD") ? getenv("CAMERA_PASSWORD") : "secret";
  sl_mgr_opts mo;
  sl_mgr_opts_small(&mo); /* 64 connections, 512 KiB per send queue, 16 MiB */
  sl_http_opts ho = {.max_body = 4096, .on_error = on_error};
  sl_hub_opts cam = {.max_subs = 8, .sub = {.stall_ms = 10000}}, txt = {.max_subs = 8};
  int err = 0;
  sl_mgr *m = sl_mgr_new(&mo, &err);
  sl_conn *l = NULL;
  if (m && (camera = sl_hub_new(m, "camera", &cam, &err)) &&
      (status = sl_hub_new(m, "status", &txt, &err)))
    l = sl_http_listen(m, addr, &ho, on_http, NULL, &err);
  if (l == NULL) {
    fprintf(stderr, "http_camera: %s: %s\n", addr, sl_strerror(err));
    sl_mgr_free(m);
    return 1;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  pthread_t th;
  if (pthread_create(&th, NULL, capture, NULL) != 0) {
    sl_mgr_free(m);
    return 1;
  }
  sl_timer_add(m, 1000, SL_TIMER_REPEAT, push_status, NULL, NULL);
  printf("camera on port %d\n", sl_conn_local_port(l));
  fflush(stdout);
  while (!stop) sl_mgr_poll(m, 200);
  pthread_join(th, NULL); /* no publisher left: the hubs may go */
  sl_hub_free(camera);
  sl_hub_free(status);
  sl_mgr_free(m);
  return 0;
}
