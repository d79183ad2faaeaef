/*
 * The HTTP side of sluice-stream: routes for each stream (the default one
 * at the root, every stream under /streams/NAME/), the API, the metrics,
 * the Server-Sent Events feed of the dashboard, and the embedded pages.
 * Every endpoint but the pages asks for the token or the Basic credentials
 * when they are configured.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "app.h"

extern const sl_http_file ss_web_files[];
extern const size_t ss_web_nfiles;

#define SSE_SEND_MAX (1u << 20)

static int authorized(ss_app *a, sl_conn *c, const sl_http_msg *m) {
  if (a->basic_user[0]) {
    if (sl_http_check_basic(m, a->basic_user, a->basic_pass)) return 1;
    sl_http_reply_401(c, "sluice-stream");
    return 0;
  }
  if (a->token[0]) {
    if (sl_http_check_bearer(m, a->token)) return 1;
    sl_http_reply_401(c, NULL);
    return 0;
  }
  return 1;
}

/* Parse ?fps=, ?policy= and ?lowat= into viewer options. Returns 0, or an
 * HTTP status to answer. */
static int viewer_opts(ss_app *a, const sl_http_msg *m, sl_sub_opts *o) {
  char v[64];
  *o = a->sub;
  if (sl_http_query(m, "fps", v, sizeof(v)) > 0) {
    char *e;
    double fps = strtod(v, &e);
    if (*e || !(fps >= 0 && fps <= 1000)) return 400;
    o->fps = fps;
  }
  if (sl_http_query(m, "lowat", v, sizeof(v)) > 0) {
    /* TCP_NOTSENT_LOWAT of this viewer's socket: bounded, since the
     * kernel memory it lets one viewer pin is the server's. */
    char *e;
    unsigned long n = strtoul(v, &e, 10);
    if (*e || v[0] == '-' || n < 4096 || n > (1ul << 20)) return 400;
    o->notsent_lowat = n;
  }
  if (sl_http_query(m, "policy", v, sizeof(v)) > 0) {
    if (strcmp(v, "latest") == 0) {
      o->policy = SL_POLICY_LATEST;
    } else if (strcmp(v, "keyframe") == 0) {
      o->policy = SL_POLICY_KEYFRAME;
    } else if (strcmp(v, "lossless") == 0) {
      if (!a->allow_lossless) return 403;
      o->policy = SL_POLICY_LOSSLESS;
    } else if (strncmp(v, "queue:", 6) == 0) {
      char *e;
      long n = strtol(v + 6, &e, 10);
      if (*e || n < 1 || n > 64) return 400;
      o->policy = SL_POLICY_QUEUE;
      o->queue_len = (unsigned)n;
    } else if (strcmp(v, "queue") == 0) {
      o->policy = SL_POLICY_QUEUE;
    } else {
      return 400;
    }
  }
  return 0;
}

/* The WebSocket options of every viewer socket. Without an allow-list the
 * library's default holds: only pages of this server (or non-browser
 * clients) may open one. */
static sl_ws_opts viewer_ws(const ss_app *a) {
  sl_ws_opts ws = {0};
  if (a->any_origin) ws.origins = SL_WS_ANY_ORIGIN;
  else if (a->origins[0]) ws.origins = a->origins;
  ws.ping_ms = 20000;
  return ws;
}

/* Stream `st` (index i) on loop lp: this loop's own hub of it. */
static void serve_stream(ss_loop *lp, int i, sl_conn *c, const sl_http_msg *m,
                         const char *rest) {
  ss_app *a = lp->app;
  ss_stream *st = &a->streams[i];
  sl_hub *hub = ss_loop_hub(lp, i);
  sl_sub_opts o;
  int transport;
  sl_hub_stats hs;
  sl_hub_stats_get(hub, &hs);
  int h264 = hs.kind == SL_KIND_H264;
  if (h264 && (strcmp(rest, "snapshot.jpg") == 0 || strcmp(rest, "stream.mjpg") == 0)) {
    sl_http_reply(c, 406, "Content-Type: text/plain\r\n",
                  "406 Not Acceptable: this stream is H.264: use stream.h264 or ws\n", 64);
    return;
  }
  if (strcmp(rest, "snapshot.jpg") == 0) {
    uint64_t seq = 0, ts = 0;
    sl_buf *b = sl_hub_latest(hub, &seq, &ts);
    if (b == NULL) {
      sl_http_reply(c, 503, "Retry-After: 1\r\nContent-Type: text/plain\r\n",
                    "503 no frame yet\n", 17);
      return;
    }
    char hdr[160];
    snprintf(hdr, sizeof(hdr), "Content-Type: image/jpeg\r\nCache-Control: no-store\r\nX-Frame: %llu\r\n",
             (unsigned long long)seq);
    if (sl_http_reply_buf(c, 200, hdr, b, 0, sl_buf_len(b)) != 0) sl_http_reply_status(c, 503);
    sl_buf_unref(b);
    return;
  }
  if (strcmp(rest, "stream.mjpg") == 0) transport = SL_TRANSPORT_MJPEG;
  else if (strcmp(rest, "ws") == 0) transport = SL_TRANSPORT_WS;
  else if (strcmp(rest, "stream.bin") == 0) transport = SL_TRANSPORT_CHUNKED;
  else if (h264 && strcmp(rest, "stream.h264") == 0) transport = SL_TRANSPORT_RAW;
  else if (h264 && strcmp(rest, "stream.mp4") == 0) transport = SL_TRANSPORT_FMP4;
  else {
    sl_http_reply_status(c, 404);
    return;
  }
  int status = viewer_opts(a, m, &o);
  if (status) {
    sl_http_reply_status(c, status);
    return;
  }
  /* The WebSocket of an H.264 stream carries access units for WebCodecs,
   * or with ?format=fmp4 fMP4 for Media Source Extensions. */
  char fmt[16];
  int frc = sl_http_query(m, "format", fmt, sizeof(fmt));
  if (frc >= 0) {
    if (transport != SL_TRANSPORT_WS || !h264 ||
        (strcmp(fmt, "fmp4") != 0 && strcmp(fmt, "h264") != 0)) {
      sl_http_reply(c, 400, "Content-Type: text/plain\r\n",
                    "400 Bad Request: format is h264 or fmp4, on an H.264 stream's ws\n", 65);
      return;
    }
    if (strcmp(fmt, "fmp4") == 0) transport = SL_TRANSPORT_WS_FMP4;
  } else if (frc != SL_ENOENT) {
    sl_http_reply_status(c, 400);
    return;
  }
  /* With several loops each hub caps its own viewers at --max-viewers;
   * the stream's cap is kept here, on the count of every loop (the hub's
   * eviction of a stalled viewer when full then works within a loop). */
  if (a->nloops > 1 && atomic_load(&st->viewers) >= a->max_viewers) {
    sl_http_reply(c, 503, "Retry-After: 5\r\nContent-Type: text/plain\r\n",
                  "503 too many viewers\n", 21);
    return;
  }
  sl_ws_opts ws = viewer_ws(a);
  if (sl_hub_attach(hub, c, m, transport, &o, &ws) == 0) ss_qos_apply(lp, st, c);
}

/* /mux: a client's "subscribe" names a stream of this server. */
static int mux_resolve(sl_mux *x, const char *name, sl_sub_opts *o, sl_hub **hub,
                       void *arg) {
  ss_loop *lp = arg;
  ss_app *a = lp->app;
  (void)x, (void)o;
  for (int i = 0; i < a->nstreams; i++)
    if (strcmp(a->streams[i].name, name) == 0) {
      *hub = ss_loop_hub(lp, i);
      return 0;
    }
  return SL_ENOENT;
}

/* /mux: many streams over one WebSocket (docs/mux.md), with the same
 * authentication and origin rules as /ws. */
static void serve_mux(ss_loop *lp, sl_conn *c, const sl_http_msg *m) {
  ss_app *a = lp->app;
  sl_ws_opts ws = viewer_ws(a);
  /* Control messages are small: past the mux's max_msg (1 KiB) one is
   * answered with an error, past 64 KiB the socket closes (1009). */
  ws.max_message = 65536;
  if (sl_ws_upgrade(c, m, &ws) != 0) return;
  sl_mux_opts mo = {.allow_lossless = a->allow_lossless, .sub = a->sub,
                    .stall_ms = a->sub.stall_ms, .resolve = mux_resolve, .arg = lp};
  mo.sub.cors_origins = NULL;
  if (sl_mux_new(c, &mo, NULL) == NULL) sl_conn_close(c, SL_CLOSE_NOW);
  else ss_qos_apply(lp, NULL, c); /* many streams: the global marks */
}

static void on_sse_close(ss_loop *lp, sl_conn *c) {
  for (int i = 0; i < lp->nsse; i++)
    if (lp->sse[i] == c) lp->sse[i] = lp->sse[--lp->nsse];
}

/* Once a second: one JSON snapshot (of every loop), one shared buffer,
 * every SSE client of this loop. */
static void sse_tick(sl_mgr *m, void *arg) {
  ss_loop *lp = arg;
  (void)m;
  if (lp->nsse == 0) return;
  ss_view_request(lp, NULL, SS_VIEW_SSE);
}

static void on_http(sl_conn *c, int ev, void *ev_data) {
  ss_loop *lp = sl_conn_data(c);
  ss_app *a = lp->app;
  if (ev == SL_EV_CLOSE) {
    on_sse_close(lp, c);
    return;
  }
  if (ev == SL_EV_WS_MSG) {
    sl_mux *x = sl_mux_of(c);
    if (x) sl_mux_handle(x, ev_data);
    return;
  }
  if (ev != SL_EV_HTTP_MSG) return;
  const sl_http_msg *m = ev_data;
  char path[512];
  if (m->path.len >= sizeof(path)) {
    sl_http_reply_status(c, 414);
    return;
  }
  memcpy(path, m->path.ptr, m->path.len);
  path[m->path.len] = '\0';
  if (ss_health_route(lp, c, path)) return; /* edge.c: for balancers, no auth */

  /* Pages: public unless Basic auth protects everything. */
  if (strcmp(path, "/") == 0 || strcmp(path, "/dashboard") == 0 || strcmp(path, "/grid") == 0 ||
      strncmp(path, "/static/", 8) == 0 || strstr(path, ".html") || strstr(path, ".js") ||
      strstr(path, ".css")) {
    if (a->basic_user[0] && !authorized(a, c, m)) return;
    sl_http_msg alias;
    const sl_http_msg *pm = m;
    if (strcmp(path, "/dashboard") == 0 || strcmp(path, "/grid") == 0) {
      alias = *m;
      alias.path.ptr = path[1] == 'd' ? "/dashboard.html" : "/grid.html";
      alias.path.len = strlen(alias.path.ptr);
      pm = &alias;
    }
    if (sl_http_serve_table(c, pm, ss_web_files, ss_web_nfiles) == SL_ENOENT)
      sl_http_reply_status(c, 404);
    return;
  }
  if (!authorized(a, c, m)) return;
  if (strcmp(path, "/mux") == 0) {
    serve_mux(lp, c, m);
    return;
  }
  if (strcmp(path, "/api/stats") == 0 || strcmp(path, "/api/streams") == 0 ||
      strcmp(path, "/metrics") == 0) {
    ss_view_request(lp, c,
                    path[1] == 'm' ? SS_VIEW_METRICS
                    : path[5] == 's' && path[6] == 't' && path[7] == 'a' ? SS_VIEW_STATS
                                                                        : SS_VIEW_STREAMS);
    return;
  }
  if (strcmp(path, "/api/events") == 0) {
    if (lp->nsse == (int)(sizeof(lp->sse) / sizeof(lp->sse[0]))) {
      sl_http_reply(c, 503, "Retry-After: 5\r\n", NULL, 0);
      return;
    }
    if (sl_http_start(c, 200, "Content-Type: text/event-stream\r\nCache-Control: no-store\r\n",
                      SL_HTTP_STREAM) != 0)
      return;
    sl_limits lim = {.send_max = SSE_SEND_MAX};
    sl_conn_set_limits(c, &lim);
    sl_send(c, "retry: 1000\n\n", 13);
    lp->sse[lp->nsse++] = c;
    return;
  }
  if (a->nstreams == 0) { /* an edge before the origin's list arrived */
    sl_http_reply(c, 503, "Retry-After: 2\r\nContent-Type: text/plain\r\n",
                  "503 no stream yet\n", 18);
    return;
  }
  if (strncmp(path, "/streams/", 9) == 0) {
    const char *name = path + 9, *slash = strchr(name, '/');
    if (slash == NULL) {
      sl_http_reply_status(c, 404);
      return;
    }
    for (int i = 0; i < a->nstreams; i++) {
      ss_stream *st = &a->streams[i];
      if (strlen(st->name) == (size_t)(slash - name) &&
          strncmp(st->name, name, (size_t)(slash - name)) == 0) {
        serve_stream(lp, i, c, m, slash + 1);
        return;
      }
    }
    sl_http_reply_status(c, 404);
    return;
  }
  serve_stream(lp, 0, c, m, path + 1);
}

/* 1 when something already listens on `listen` (HOST:PORT, [V6]:PORT).
 * Several loops share their port with SO_REUSEPORT, and so could another
 * program of the same user that sets it too: the kernel would then split
 * the connections between the two without a word. A plain bind first
 * (SO_REUSEADDR, as the listener's, so TIME_WAIT does not count) sees any
 * listener there. 0 for port 0 or an address it cannot read: sl_listen
 * then says what is wrong. */
static int port_taken(const char *listen) {
  const char *colon = strrchr(listen, ':');
  if (colon == NULL || atoi(colon + 1) <= 0) return 0;
  char host[256];
  size_t hl = (size_t)(colon - listen);
  if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']') listen++, hl -= 2;
  if (hl == 0 || hl >= sizeof(host)) return 0;
  memcpy(host, listen, hl);
  host[hl] = '\0';
  if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
  struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                           .ai_socktype = SOCK_STREAM}, *ai = NULL;
  if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || ai == NULL) return 0;
  int taken = 0, on = 1;
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (ai->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    taken = bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno == EADDRINUSE;
    close(fd);
  }
  freeaddrinfo(ai);
  return taken;
}

int ss_server_start(ss_app *a, ss_loop *lp, char *err, size_t errlen) {
  int rc = 0;
  sl_http_opts ho = {.tls = a->tls}; /* every endpoint over HTTPS/WSS */
  char url[sizeof(a->listen) + 8];
  snprintf(url, sizeof(url), "%s", a->listen);
  if (lp->idx > 0) {
    /* Port 0 picked a port for loop 0; the others join it there. */
    const char *colon = strrchr(a->listen, ':');
    snprintf(url, sizeof(url), "%.*s:%d", colon ? (int)(colon - a->listen) : 0, a->listen,
             sl_conn_local_port(a->loops[0].listener));
  }
  if (lp->idx == 0 && a->nloops > 1 && port_taken(url)) rc = SL_EADDRINUSE;
  else lp->listener = sl_http_listen(lp->mgr, url, &ho, on_http, lp, &rc);
  if (lp->listener == NULL) {
    if (rc == SL_EADDRINUSE)
      snprintf(err, errlen,
               "%s is already in use: stop the program using it, or pick another "
               "address with --listen (e.g. --listen 127.0.0.1:8081)", url);
    else if (rc == SL_EURL)
      snprintf(err, errlen, "--listen %s: not an address; use HOST:PORT, e.g. 127.0.0.1:8080",
               a->listen);
    else
      snprintf(err, errlen, "cannot listen on %s: %s", url, sl_strerror(rc));
    return rc;
  }
  lp->sse_timer = sl_timer_add(lp->mgr, 1000, SL_TIMER_REPEAT, sse_tick, lp, &rc);
  return lp->sse_timer ? 0 : rc;
}

void ss_server_stop(ss_loop *lp) {
  if (lp->sse_timer) sl_timer_free(lp->mgr, lp->sse_timer);
  lp->sse_timer = NULL;
}
