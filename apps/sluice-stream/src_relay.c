/*
 * Relays: "http://..." (an MJPEG-over-HTTP stream: multipart/x-mixed-replace
 * or plain concatenated JPEGs, read with multipart.h; with codec H.264, a
 * raw Annex-B stream such as another sluice-stream's /stream.h264, cut into
 * access units by sl_h264_reader) and "ws://..." (a sluice WebSocket
 * stream: one binary message per JPEG, or with codec H.264 one access unit
 * per message behind its 16-byte header), and both over TLS,
 * "https://" and "wss://" (the server verified against the system's CAs;
 * SSL_CERT_FILE names another bundle). Everything runs on the loop thread,
 * with the library's HTTP and WebSocket clients; there is no thread.
 *
 * Reconnecting: whenever the upstream connection ends (refused, timed out,
 * an error status, the body ended, the peer closed), the next attempt is
 * armed with sl_timer_add after `backoff`, which starts at 250 ms, doubles
 * with each attempt up to 10 s, and goes back to 250 ms once a frame has
 * arrived. Failures are logged on the 1st, 2nd, 4th, 8th... in a row, so a
 * long outage does not flood the log.
 *
 * Credentials: opts.user/pass, else the URL's user:pass@. The HTTP client
 * answers Basic and Digest challenges itself (and only challenges). The
 * WebSocket client has no challenge round, so a ws:// relay with
 * credentials sends them as Basic up front.
 *
 * Lossless viewers: while the hub is not ready, reading from the upstream
 * is paused (TCP pushes back on it) and a 5 ms timer resumes it when the
 * hub is ready again. The bytes already read still become frames.
 *
 * Stopping: the connection is detached (no handler, no data) before it is
 * closed, so its SL_EV_CLOSE, which comes later, finds nothing of ours.
 *
 * Memory: one buffer of max_frame + SS_MP_HEAD_MAX bytes for the HTTP body
 * (the WebSocket client assembles whole messages of at most max_frame).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "multipart.h"
#include "source_impl.h"

#define BACKOFF_MIN_MS 250u
#define BACKOFF_MAX_MS 10000u
#define RESUME_POLL_MS 5u
/* One connection carries a whole stream: let one read take up to 1 MiB, so
 * the upstream is never read slower than the loop turns while the loop is
 * busy with many viewers (an edge). */
#define RELAY_RECV_MAX (1u << 20)

struct relay {
  ss_source *s;
  int ws;                   /* ws:// (else http://) */
  char *url;                /* what we connect to */
  char *auth;               /* ws: "Authorization: Basic ...\r\n" or NULL */
  char shown[256];          /* the URL without credentials, for messages */
  sl_http_req *req;         /* http: the request in progress */
  sl_conn *wsc;             /* ws: the connection in progress */
  sl_timer *retry;          /* the next attempt, armed */
  sl_timer *resume;         /* reading paused for a lossless viewer */
  uint32_t backoff;
  unsigned long long fails; /* attempts in a row without a frame */
  int first_seq;            /* the next upstream seq starts a new run */
  char why[200];            /* the last SL_EV_ERROR message */
  /* http body */
  int body;                 /* a 200 head arrived: chunks are the stream */
  ss_mp mp;
  unsigned char *buf;
  size_t have, cap;
  unsigned long long lost0, garbage0; /* mp counters already counted */
  sl_h264_reader *rd;       /* codec H.264 over http: the unit reader */
};

/* The access unit header of a sluice WebSocket H.264 message (hub_sub.c):
 * type, flags, 2 zero bytes, seq (BE32), publish time in Unix ms (BE64). */
#define WS_AU_HEADER 16

static unsigned long long be_bits(const unsigned char *p, int n) {
  unsigned long long v = 0;
  for (int i = 0; i < n; i++) v = v << 8 | p[i];
  return v;
}

static int connect_upstream(struct relay *r, int *err);
static void lost(struct relay *r);

/* ---- URLs ----------------------------------------------------------- */

static int hexval(int c) {
  return c >= '0' && c <= '9' ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* Percent-decode `n` bytes of `p` into out (cap bytes, NUL-terminated). */
static void pct_decode(const char *p, size_t n, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 1 < cap; i++) {
    if (p[i] == '%' && i + 2 < n && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0) {
      out[o++] = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
      i += 2;
    } else {
      out[o++] = p[i];
    }
  }
  out[o] = '\0';
}

/* Split "scheme://[user[:pass]@]rest" into the URL without credentials
 * (out, cap bytes) and, when present, the decoded user and pass. */
static void strip_userinfo(const char *url, char *out, size_t cap, char *user,
                           char *pass, size_t ccap) {
  const char *auth = strstr(url, "://");
  user[0] = pass[0] = '\0';
  if (auth == NULL) {
    snprintf(out, cap, "%s", url);
    return;
  }
  auth += 3;
  size_t alen = strcspn(auth, "/?#");
  const char *at = memchr(auth, '@', alen);
  if (at == NULL) {
    snprintf(out, cap, "%s", url);
    return;
  }
  const char *colon = memchr(auth, ':', (size_t)(at - auth));
  pct_decode(auth, (size_t)((colon ? colon : at) - auth), user, ccap);
  if (colon) pct_decode(colon + 1, (size_t)(at - colon - 1), pass, ccap);
  snprintf(out, cap, "%.*s%s", (int)(auth - url), url, at + 1);
}

static void base64(const unsigned char *in, size_t n, char *out) {
  static const char t[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)in[i] << 16;
    if (i + 1 < n) v |= (unsigned)in[i + 1] << 8;
    if (i + 2 < n) v |= in[i + 2];
    out[o++] = t[v >> 18 & 63];
    out[o++] = t[v >> 12 & 63];
    out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? t[v & 63] : '=';
  }
  out[o] = '\0';
}

/* ---- frames and counters -------------------------------------------- */

static void sync_mp(struct relay *r) {
  ss_source *s = r->s;
  unsigned long long lost = ss_mp_lost(&r->mp), g = ss_mp_garbage(&r->mp);
  atomic_fetch_add(&s->errors, lost - r->lost0);
  atomic_fetch_add(&s->garbage, g - r->garbage0);
  r->lost0 = lost;
  r->garbage0 = g;
}

static sl_conn *upstream_conn(struct relay *r) {
  return r->ws ? r->wsc : r->req ? sl_http_req_conn(r->req) : NULL;
}

static void resume_check(sl_mgr *m, void *arg) {
  struct relay *r = arg;
  if (!ss__ready(r->s)) return;
  sl_timer_free(m, r->resume);
  r->resume = NULL;
  sl_conn *c = upstream_conn(r);
  if (c) sl_conn_pause_read(c, 0);
}

/* What the upstream said about the frame just received (0, 0: nothing).
 * A hole in its sequence within one connection is frames it skipped for
 * us; a new connection starts a new run (first_seq). */
static void note_upstream(struct relay *r, unsigned long long seq, unsigned long long unix_ms) {
  ss_source *s = r->s;
  if (seq == 0 && unix_ms == 0) return;
  unsigned long long prev = atomic_load(&s->up_seq);
  if (!r->first_seq && seq > prev + 1) atomic_fetch_add(&s->up_gaps, seq - prev - 1);
  r->first_seq = 0;
  atomic_store(&s->up_seq, seq);
  atomic_store(&s->up_unix_ms, unix_ms);
  atomic_store(&s->up_arrival_ms, ss__unix_ms());
}

static void publish(struct relay *r, const void *data, size_t len) {
  ss_source *s = r->s;
  if (ss__publish(s, data, len, 0) != 0) return;
  r->backoff = BACKOFF_MIN_MS;
  r->fails = 0;
  if (!ss__ready(s) && r->resume == NULL) {
    sl_conn *c = upstream_conn(r);
    r->resume = sl_timer_add(s->mgr, RESUME_POLL_MS, SL_TIMER_REPEAT,
                             resume_check, r, NULL);
    if (c && r->resume) sl_conn_pause_read(c, 1);
  }
}

static void on_au(const sl_h264_au *au, void *arg) {
  struct relay *r = arg;
  publish(r, sl_buf_cdata(au->buf), sl_buf_len(au->buf));
}

/* A new H.264 body: a reader with no state from the previous connection
 * (whose last unit may have been cut). */
static int reader_reset(struct relay *r) {
  sl_h264_reader_free(r->rd);
  int rc = 0;
  sl_h264_reader_opts ro = {.au_max = r->s->o.max_frame, .on_au = on_au, .arg = r};
  r->rd = sl_h264_reader_new(&ro, &rc);
  return rc;
}

static void sync_reader(struct relay *r) {
  sl_h264_reader_stats st;
  sl_h264_reader_stats_get(r->rd, &st);
  unsigned long long lost = st.drop_nal_too_big + st.drop_au_too_big +
                            st.drop_before_key + st.drop_bad_sps;
  atomic_fetch_add(&r->s->errors, lost - r->lost0);
  atomic_fetch_add(&r->s->garbage, st.garbage_bytes - r->garbage0);
  r->lost0 = lost;
  r->garbage0 = st.garbage_bytes;
}

/* Append body bytes and publish every frame they complete. */
static void feed(struct relay *r, const char *p, size_t n) {
  if (r->rd) {
    sl_h264_reader_feed(r->rd, p, n);
    sync_reader(r);
    return;
  }
  while (n > 0) {
    size_t k = r->cap - r->have < n ? r->cap - r->have : n;
    memcpy(r->buf + r->have, p, k);
    r->have += k;
    p += k;
    n -= k;
    for (;;) {
      ss_mp_out o;
      int got = ss_mp_next(&r->mp, r->buf, r->have, &o);
      if (got) {
        note_upstream(r, r->mp.part_seq, r->mp.part_unix_ms);
        publish(r, r->buf + o.off, o.len);
      }
      memmove(r->buf, r->buf + o.consumed, r->have - o.consumed);
      r->have -= o.consumed;
      if (!got) break;
    }
  }
  sync_mp(r);
}

/* ---- connection lifecycle ------------------------------------------- */

static void retry_now(sl_mgr *m, void *arg) {
  struct relay *r = arg;
  (void)m;
  r->retry = NULL; /* one-shot: already freed */
  atomic_fetch_add(&r->s->reconnects, 1);
  int err = 0;
  if (connect_upstream(r, &err) != 0) {
    /* Could not even start (out of connections, memory): try later. */
    snprintf(r->why, sizeof(r->why), "cannot connect: %s", sl_strerror(err));
    lost(r);
  }
}

/* The upstream connection is gone (or never came): arm the next attempt. */
static void lost(struct relay *r) {
  ss_source *s = r->s;
  atomic_store(&s->connected, 0);
  r->body = 0;
  if (r->resume) {
    sl_timer_free(s->mgr, r->resume);
    r->resume = NULL;
  }
  r->fails++;
  if (ss__log_due(r->fails))
    sl_log(SL_LOG_WARN, "relay %s: %s; reconnecting in %u ms (%llu in a row)",
           r->shown, r->why[0] ? r->why : "upstream closed", r->backoff, r->fails);
  r->why[0] = '\0';
  int err = 0;
  r->retry = sl_timer_add(s->mgr, r->backoff, 0, retry_now, r, &err);
  if (r->retry == NULL)
    sl_log(SL_LOG_ERROR, "relay %s: cannot arm the reconnect timer: %s; the relay stops",
           r->shown, sl_strerror(err));
  r->backoff = r->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff * 2;
}

static void on_http(sl_conn *c, int ev, void *ev_data) {
  struct relay *r = sl_conn_data(c);
  if (r == NULL) return;
  switch (ev) {
    case SL_EV_HTTP_MSG: {
      const sl_http_msg *m = ev_data;
      if (m->status != 200) {
        snprintf(r->why, sizeof(r->why), "upstream answered %d %.*s", m->status,
                 (int)m->reason.len, m->reason.ptr);
        atomic_fetch_add(&r->s->errors, 1);
        sl_http_req_cancel(r->req);
        return;
      }
      const sl_str *ct = sl_http_get_header(m, "Content-Type");
      int is_h264 = ct && ct->len >= 10 && strncasecmp(ct->ptr, "video/h264", 10) == 0;
      int want_h264 = r->s->o.codec == SS_CODEC_H264;
      if (is_h264 != want_h264 && (is_h264 || (ct && ct->len >= 6 &&
                                               strncasecmp(ct->ptr, "video/", 6) == 0))) {
        snprintf(r->why, sizeof(r->why), "upstream sends %.*s but this stream is %s "
                 "(an H.264 relay takes a URL ending in .h264, or --codec h264)",
                 (int)ct->len, ct->ptr, want_h264 ? "H.264" : "MJPEG");
        atomic_fetch_add(&r->s->errors, 1);
        sl_http_req_cancel(r->req);
        return;
      }
      r->have = 0;
      r->lost0 = r->garbage0 = 0;
      if (want_h264) {
        int rc = reader_reset(r);
        if (rc) {
          snprintf(r->why, sizeof(r->why), "H.264 reader: %s", sl_strerror(rc));
          sl_http_req_cancel(r->req);
          return;
        }
      } else {
        ss_mp_init(&r->mp, ct ? ct->ptr : NULL, ct ? ct->len : 0, r->s->o.max_frame);
      }
      r->body = 1;
      r->first_seq = 1;
      atomic_store(&r->s->connected, 1);
      sl_log(SL_LOG_INFO, "relay %s: connected (%s)", r->shown,
             want_h264 ? "H.264 Annex-B" : r->mp.blen ? "multipart" : "plain MJPEG stream");
      return;
    }
    case SL_EV_HTTP_CHUNK: {
      const sl_str *d = ev_data;
      if (!r->body) return;
      if (d->len == 0) {
        snprintf(r->why, sizeof(r->why), "upstream ended the stream");
        if (r->rd) {
          sl_h264_reader_flush(r->rd);
          sync_reader(r);
        } else {
          ss_split_finish(&r->mp.sp);
          sync_mp(r);
        }
        r->body = 0;
        return;
      }
      feed(r, d->ptr, d->len);
      return;
    }
    case SL_EV_ERROR:
      snprintf(r->why, sizeof(r->why), "%s", (const char *)ev_data);
      atomic_fetch_add(&r->s->errors, 1);
      return;
    case SL_EV_CLOSE:
      r->req = NULL;
      lost(r);
      return;
    default:
      return;
  }
}

static void on_ws(sl_conn *c, int ev, void *ev_data) {
  struct relay *r = sl_conn_data(c);
  if (r == NULL) return;
  switch (ev) {
    case SL_EV_WS_OPEN:
      r->first_seq = 1;
      atomic_store(&r->s->connected, 1);
      sl_log(SL_LOG_INFO, "relay %s: connected", r->shown);
      return;
    case SL_EV_WS_MSG: {
      const sl_ws_msg *m = ev_data;
      if (m->opcode != SL_WS_BINARY) return; /* text: status, not frames */
      const unsigned char *p = (const unsigned char *)m->data.ptr;
      if (r->s->o.codec == SS_CODEC_H264) {
        /* An access unit behind its header; the keyframes carry SPS/PPS. */
        if (m->data.len > WS_AU_HEADER && p[0] == 1) {
          note_upstream(r, be_bits(p + 4, 4), be_bits(p + 8, 8));
          publish(r, p + WS_AU_HEADER, m->data.len - WS_AU_HEADER);
        }
        else
          atomic_fetch_add(&r->s->errors, 1);
      } else if (m->data.len >= 4 && p[0] == 0xFF && p[1] == 0xD8) {
        publish(r, p, m->data.len);
      } else {
        atomic_fetch_add(&r->s->errors, 1);
      }
      return;
    }
    case SL_EV_ERROR:
      snprintf(r->why, sizeof(r->why), "%s", (const char *)ev_data);
      atomic_fetch_add(&r->s->errors, 1);
      return;
    case SL_EV_CLOSE:
      r->wsc = NULL;
      lost(r);
      return;
    default:
      return;
  }
}

static int connect_upstream(struct relay *r, int *err) {
  ss_source *s = r->s;
  if (r->ws) {
    sl_ws_opts wo = {.max_message = s->o.max_frame, .headers = r->auth};
    r->wsc = sl_ws_connect(s->mgr, r->url, &wo, on_ws, r, err);
    if (r->wsc) {
      sl_limits lim = {.recv_max = RELAY_RECV_MAX};
      sl_conn_set_limits(r->wsc, &lim);
    }
    return r->wsc ? 0 : -1;
  }
  sl_http_client_opts ho = {.user = s->o.user, .pass = s->o.pass,
                            .headers = s->o.codec == SS_CODEC_H264
                                           ? "Accept: video/h264, */*\r\n"
                                           : "Accept: multipart/x-mixed-replace, image/jpeg, */*\r\n",
                            .limits = {.recv_max = RELAY_RECV_MAX}};
  r->req = sl_http_request(s->mgr, r->url, &ho, on_http, r, err);
  return r->req ? 0 : -1;
}

/* ---- the kind ------------------------------------------------------- */

static void free_relay(struct relay *r) {
  sl_h264_reader_free(r->rd);
  free(r->url);
  free(r->auth);
  free(r->buf);
  free(r);
}

static int open_relay(ss_source *s, const char *url, char *err, size_t errlen) {
  char user[256], pass[256];
  struct relay *r = calloc(1, sizeof(*r));
  if (r == NULL) return ss__fail(err, errlen, "relay: out of memory");
  r->s = s;
  r->ws = strncasecmp(url, "ws", 2) == 0;
  r->backoff = BACKOFF_MIN_MS;
  strip_userinfo(url, r->shown, sizeof(r->shown), user, pass, sizeof(user));
  if (r->ws) {
    /* The WebSocket client takes no credentials: send them as Basic. */
    const char *u = s->o.user ? s->o.user : user[0] ? user : NULL;
    const char *pw = s->o.user ? (s->o.pass ? s->o.pass : "") : pass;
    r->url = strdup(r->shown);
    if (u) {
      char cred[512], b64[700];
      int n = snprintf(cred, sizeof(cred), "%s:%s", u, pw);
      if (n < 0 || (size_t)n >= sizeof(cred)) {
        ss__fail(err, errlen, "relay %s: credentials too long", r->shown);
        free_relay(r);
        return -1;
      }
      base64((const unsigned char *)cred, (size_t)n, b64);
      size_t al = strlen(b64) + 32;
      r->auth = malloc(al);
      if (r->auth) snprintf(r->auth, al, "Authorization: Basic %s\r\n", b64);
      if (r->auth == NULL) {
        free_relay(r);
        return ss__fail(err, errlen, "relay: out of memory");
      }
    }
  } else {
    /* The HTTP client reads user:pass@ itself and answers challenges. */
    r->url = strdup(url);
    /* H.264 units are assembled by the reader, bounded by max_frame. */
    r->cap = s->o.codec == SS_CODEC_H264 ? 0 : s->o.max_frame + SS_MP_HEAD_MAX;
    r->buf = r->cap ? malloc(r->cap) : NULL;
    if (r->cap && r->buf == NULL) {
      ss__fail(err, errlen, "relay: out of memory for a %zu-byte frame buffer",
               r->cap);
      free_relay(r);
      return -1;
    }
  }
  if (r->url == NULL) {
    free_relay(r);
    return ss__fail(err, errlen, "relay: out of memory");
  }
  snprintf(s->desc, sizeof(s->desc), "relay %s", r->shown);
  s->impl = r;
  int rc = 0;
  if (connect_upstream(r, &rc) != 0) {
    int ws = r->ws;
    char shown[sizeof(r->shown)];
    memcpy(shown, r->shown, sizeof(shown));
    url = shown; /* never print credentials */
    s->impl = NULL;
    free_relay(r);
    if (rc == SL_ENOTSUP)
      return ss__fail(err, errlen, "%s: %s is not supported: this sluice was built "
                      "without TLS; relay %s, or through a local TLS proxy", url,
                      ws ? "wss://" : "https://", ws ? "ws://" : "http://");
    if (rc == SL_EURL)
      return ss__fail(err, errlen, "%s: malformed URL (want http[s]://HOST[:PORT]/PATH "
                      "or ws[s]://HOST[:PORT]/PATH)", url);
    return ss__fail(err, errlen, "%s: cannot connect: %s", url, sl_strerror(rc));
  }
  return 0;
}

/* Take the connection's events away from us, then close it. */
static void detach(sl_conn *c) {
  sl_conn_set_handler(c, NULL);
  sl_conn_set_data(c, NULL);
}

static void close_relay(ss_source *s) {
  struct relay *r = s->impl;
  if (r == NULL) return;
  if (r->req) {
    detach(sl_http_req_conn(r->req));
    sl_http_req_cancel(r->req);
  }
  if (r->wsc) {
    detach(r->wsc);
    sl_conn_close(r->wsc, SL_CLOSE_NOW);
  }
  if (r->retry) sl_timer_free(s->mgr, r->retry);
  if (r->resume) sl_timer_free(s->mgr, r->resume);
  free_relay(r);
  s->impl = NULL;
}

const struct ss_kind ss__kind_relay = {"relay", open_relay, NULL, NULL,
                                       close_relay};
