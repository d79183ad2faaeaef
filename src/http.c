/*
 * The HTTP/1.1 server protocol on top of a connection: request parsing with
 * limits, bodies (Content-Length and chunked) into one bounded buffer, the
 * header timeout, pipelining in order, and the reply helpers. Every byte
 * written goes through sl_sendv, so every response obeys send_max and the
 * budget.
 *
 * THE REQUEST CYCLE (read this first). h->state is one of enum
 * sl_http_state (http.h), moved only by set_state, which asserts each move
 * against the table `legal` below in debug builds:
 *
 *     ┌──────────── response complete, keep-alive ◄───────────────────┐
 *     ▼                                                               │
 *   HEAD ─head─► HEADERS ─body─► BODY ────body complete──► REQUEST ─► RESPONSE
 *     │            │  │  └─body, streamed─► BODY_STREAM ─end─►▲  start   │
 *     │            │  └─────no body (dispatch)────────────────┘          │
 *     │            └─answered in the event──► HEAD, RESPONSE or CLOSE    │
 *     ├─bad head, 408─► CLOSE ◄─400/408/413 from BODY, BODY_STREAM       │
 *     │                   ▲                                              │
 *     │                   └─response complete, no keep-alive, a peer ────┘
 *     │                     FIN, a body left unread, a SL_HTTP_STREAM end
 *     └─idle keep-alive timeout: closed (CLOSE)
 *   HEAD, HEADERS, BODY_STREAM, REQUEST, RESPONSE ──another protocol
 *   inside the handler──► UPGRADED
 *
 *   HEAD      between requests: the input is parsed for the next head
 *             (bounded by header_timeout_ms, armed once the previous
 *             response has left; 408 for a partial head, silent close for
 *             an idle connection).
 *   HEADERS   inside SL_EV_HTTP_HEADERS, the head in the input buffer, no
 *             byte of the body read and no 100 Continue sent. The handler
 *             may answer (then no SL_EV_HTTP_MSG), set the body limit
 *             (body_max), or ask for the body as it arrives (body_stream).
 *             On return: 413 when Content-Length passes the limit, else
 *             100 Continue if asked, then BODY or BODY_STREAM; without a
 *             body, straight to REQUEST.
 *   BODY      the head is copied into h->body and re-parsed there once the
 *             body (Content-Length or chunked, body_chunked says which)
 *             is complete; bounded by body_max (413), body_timeout_ms and
 *             body_min_rate (408).
 *   BODY_STREAM  each piece goes to the handler (SL_EV_HTTP_CHUNK) from
 *             the input buffer as it arrives, nothing copied; same bounds;
 *             a response may begin here. The empty piece at the end is
 *             delivered in REQUEST.
 *   REQUEST   SL_EV_HTTP_MSG (or the empty piece) delivered or being
 *             delivered; no response yet. sl_http_reply* completes it,
 *             sl_http_start and sl__http_start_fixed move to RESPONSE.
 *   RESPONSE  head sent, body written by the application (h->mode says
 *             how) or by a source (static files); ends with sl_http_end
 *             or sl__http_finish. A HEAD request's streamed response ends
 *             at its head. A streamed response (SL_HTTP_STREAM or
 *             SL_HTTP_CHUNKED: a hub's viewers) releases the parsed
 *             request (h->rq, and a collected body) once the handler has
 *             returned (at once when started outside it): nothing reads
 *             the request in RESPONSE, and a viewer that stays for hours
 *             keeps only struct sl_http. HEAD allocates it again for the
 *             next head (want_request).
 *   UPGRADED  sl_ws_upgrade replaced the protocol inside the handler
 *             (http_free ran there); the request it was handed stays
 *             valid until it returns, then call_handler frees h and
 *             hand_over gives the bytes after the head to the new
 *             protocol. Terminal.
 *   CLOSE     an error answered by the library, the last response of a
 *             non-persistent connection, or the end of a SL_HTTP_STREAM
 *             body: nothing more is read; the connection flushes and goes.
 *             Terminal.
 * A response may begin in HEADERS, BODY_STREAM and REQUEST (can_respond);
 * begun before the body was read to its end (body_pending), it says
 * Connection: close and the connection ends with it (persists).
 *
 * Events in: SL_EV_READ (serve_more parses, collects and streams),
 * SL_EV_WRITE and SL_EV_DRAIN (sources refill; HEAD arms the next header
 * timeout once the output is empty; pipelined requests held back by a
 * full queue resume), SL_EV_TIMEOUT (HEAD: 408 or idle close; BODY and
 * BODY_STREAM: the body bounds, put off while the application pauses
 * reading), and the application's calls (sl_http_reply*, sl_http_start,
 * sl_http_end, sl_http_body_max, sl_http_body_stream).
 *
 * Re-entrancy. The handler runs inside call_handler, with h->in_handler
 * set: SL_EV_HTTP_HEADERS, SL_EV_HTTP_MSG and SL_EV_HTTP_CHUNK, all from
 * serve_more, which runs from SL_EV_READ and SL_EV_WRITE/DRAIN (and from
 * response_done outside the handler when the output is already empty).
 * From there the handler may reply (to HEAD: serve_more's own loop then
 * goes on with a pipelined request, response_done does not recurse), start
 * a response, upgrade (UPGRADED: h must outlive the call), or close the
 * connection (serve_more stops on the connection's CLOSING or DRAINING).
 * Outside the handler (a timer, another connection's event) a response
 * that completes resumes reading only from the next SL_EV_WRITE, never
 * inside the caller's own call: the caller may still hold the connection
 * (see response_done). The library itself never calls the handler from
 * sl_http_reply*, sl_http_start, sl_http_write*, sl_http_end or the
 * sl_http_body_* calls.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "alloc.h"
#include "http.h"
#include "tls.h"

#define DEFAULT_MAX_BODY (1u << 20)
#define DEFAULT_HEADER_TIMEOUT_MS 10000u
#define DEFAULT_BODY_TIMEOUT_MS 60000u
#define DEFAULT_BODY_RATE_WINDOW_MS 5000u

static int http_ev(sl_conn *c, int ev, void *ev_data);
static void http_free(sl_conn *c);
static int http_accept(sl_conn *l, sl_conn *c);

const struct sl_proto sl__http_proto = {"http", http_ev, http_free, NULL};
static const struct sl_proto http_listener_proto = {"http-listener", NULL,
                                                    http_free, http_accept};

const char *sl_http_status_text(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

/* ---- state ---------------------------------------------------------- */

static struct sl_http *state(sl_conn *c) {
  return (c->proto == &sl__http_proto) ? c->pdata : NULL;
}

#ifdef SL_DEBUG_ASSERTS
#define B(s) (1u << SL_HS_##s)
/* legal[from]: the states `from` may move to (checked in debug builds). */
static const unsigned legal[SL_HS_COUNT] = {
  [SL_HS_HEAD] = B(HEADERS) | B(UPGRADED) | B(CLOSE),
  [SL_HS_HEADERS] = B(HEAD) | B(BODY) | B(BODY_STREAM) | B(REQUEST) |
                    B(RESPONSE) | B(UPGRADED) | B(CLOSE),
  [SL_HS_BODY] = B(REQUEST) | B(CLOSE),
  [SL_HS_BODY_STREAM] = B(REQUEST) | B(RESPONSE) | B(UPGRADED) | B(CLOSE),
  [SL_HS_REQUEST] = B(HEAD) | B(RESPONSE) | B(UPGRADED) | B(CLOSE),
  [SL_HS_RESPONSE] = B(HEAD) | B(UPGRADED) | B(CLOSE),
  [SL_HS_UPGRADED] = 0,
  [SL_HS_CLOSE] = 0,
};
#undef B
#endif

/* The one transition function. UPGRADED happens only inside the handler
 * (the request it holds must outlive the call). */
static void set_state(struct sl_http *h, enum sl_http_state to) {
#ifdef SL_DEBUG_ASSERTS
  SL_ASSERT(to < SL_HS_COUNT && (legal[h->state] & (1u << to)));
#endif
  SL_ASSERT(to != SL_HS_UPGRADED || h->in_handler);
  h->state = to;
}

static void release_body(sl_conn *c, struct sl_http *h) {
  if (h->body == NULL) return;
  c->mgr->acct.in -= h->body_cap;
  sl__acct_held(&c->mgr->acct, -(long long)h->body_cap);
  sl__free(h->body, h->body_cap, SL_MEM_IN);
  h->body = NULL;
  h->body_cap = h->body_len = 0;
}

/* The request state for a head about to be parsed: kept across the
 * requests of a persistent connection, allocated again after a streamed
 * response dropped it. NULL when there is no memory for it. */
static struct sl_http_rq *want_request(struct sl_http *h) {
  if (h->rq == NULL) h->rq = sl__calloc(sizeof(*h->rq), SL_MEM_META);
  return h->rq;
}

/* Drop the request (and the body its pointers may reach into). Only where
 * nobody holds them: outside the handler, or after it returned. */
static void release_request(sl_conn *c, struct sl_http *h) {
  release_body(c, h);
  sl__free(h->rq, sizeof(*h->rq), SL_MEM_META);
  h->rq = NULL;
}

/* A response that lasts (a stream viewer's) needs nothing of its request
 * once its head is out and the handler returned: release it. A chunked
 * one that ends on a persistent connection parses the next head into a
 * fresh one. */
static void maybe_release_request(sl_conn *c, struct sl_http *h) {
  if (h->state == SL_HS_RESPONSE && !h->in_handler &&
      (h->mode == SL_HTTP_STREAM || h->mode == SL_HTTP_CHUNKED))
    release_request(c, h);
}

static void http_free(sl_conn *c) {
  struct sl_http *h = c->pdata;
  if (h == NULL) return;
  if (h->source_free) h->source_free(c, h->source);
  h->source_free = NULL;
  c->pdata = NULL;
  /* Replaced by another protocol (a WebSocket upgrade) from inside the
   * handler: the request it was handed (h->rq->msg, and the body behind it)
   * stays valid until the handler returns; call_handler frees it then. */
  if (h->in_handler) {
    set_state(h, SL_HS_UPGRADED);
    return;
  }
  release_request(c, h);
  sl__free(h, sizeof(*h), SL_MEM_META);
}

static void arm_header_timeout(sl_conn *c, struct sl_http *h) {
  sl__conn_set_deadline(c, c->mgr->now + h->opts.header_timeout_ms);
}

/* The body's own bounds, from the end of the headers: the header timeout
 * ends there, so a slow upload is not cut by a limit meant for slowloris
 * heads, yet a body that stops, or trickles below body_min_rate, still
 * ends in 408. One deadline serves both: the nearer of the total limit and
 * the next window's check. The check runs every window even without a
 * rate, so a pause of the application's (put_off) is seen at that grain. */
static void next_body_check(sl_conn *c, struct sl_http *h) {
  uint64_t d = h->body_deadline;
  uint64_t r = c->mgr->now + h->opts.body_rate_window_ms;
  if (d == 0 || r < d) d = r;
  sl__conn_set_deadline(c, d);
}

static void arm_body_timeout(sl_conn *c, struct sl_http *h) {
  h->body_deadline = h->opts.body_timeout_ms == UINT32_MAX
                         ? 0 : c->mgr->now + h->opts.body_timeout_ms;
  h->body_rx = 0;
  h->rate_mark = 0;
  h->rate_grace = 1;
  next_body_check(c, h);
}

/* A body deadline passed: 1 when the body broke its total limit, 2 when
 * its rate (answer 408), else 0. */
static int body_too_slow(sl_conn *c, struct sl_http *h) {
  if (h->body_deadline && c->mgr->now >= h->body_deadline) return 1;
  /* The first window is a grace (connection setup, a client that reads
   * the file it uploads); each later one must carry its share. */
  unsigned long long want =
      (unsigned long long)h->opts.body_min_rate * h->opts.body_rate_window_ms / 1000;
  if (h->opts.body_min_rate && !h->rate_grace && h->body_rx - h->rate_mark < want)
    return 2;
  h->rate_grace = 0;
  h->rate_mark = h->body_rx;
  next_body_check(c, h);
  return 0;
}

/* A body check found the application holding reading back: not the
 * client's fault. The total limit moves by the window just paused, and
 * the next window is a grace again. */
static void put_off(sl_conn *c, struct sl_http *h) {
  if (h->body_deadline) h->body_deadline += h->opts.body_rate_window_ms;
  h->rate_grace = 1;
  h->rate_mark = h->body_rx;
  next_body_check(c, h);
}

struct sl_http *sl__http_attach(sl_conn *c, const sl_http_opts *o) {
  struct sl_http *h = sl__calloc(sizeof(*h), SL_MEM_META);
  if (h == NULL) return NULL;
  if (o) h->opts = *o;
  sl_http_limits d;
  sl__http_limits_default(&d);
  if (!h->opts.max_request_line) h->opts.max_request_line = d.max_request_line;
  if (!h->opts.max_head) h->opts.max_head = d.max_head;
  if (!h->opts.max_headers || h->opts.max_headers > SL_HTTP_MAX_HEADERS)
    h->opts.max_headers = d.max_headers;
  if (!h->opts.max_body) h->opts.max_body = DEFAULT_MAX_BODY;
  if (!h->opts.header_timeout_ms)
    h->opts.header_timeout_ms = DEFAULT_HEADER_TIMEOUT_MS;
  if (!h->opts.body_timeout_ms) h->opts.body_timeout_ms = DEFAULT_BODY_TIMEOUT_MS;
  if (!h->opts.body_rate_window_ms)
    h->opts.body_rate_window_ms = DEFAULT_BODY_RATE_WINDOW_MS;
  h->lim.max_request_line = h->opts.max_request_line;
  h->lim.max_head = h->opts.max_head;
  h->lim.max_headers = h->opts.max_headers;
  sl__conn_set_proto(c, &sl__http_proto, h);
  return h;
}

static int http_accept(sl_conn *l, sl_conn *c) {
  struct sl_http *lh = l->pdata;
  struct sl_http *h = sl__http_attach(c, &lh->opts);
  if (h == NULL) return SL_ENOMEM;
  arm_header_timeout(c, h);
  return 0;
}

sl_conn *sl_http_listen(sl_mgr *m, const char *url, const sl_http_opts *opts,
                        sl_handler fn, void *data, int *err) {
  sl_tls_ctx *tls = opts ? opts->tls : NULL;
  int rc = tls ? sl__tls_server_ok(tls) : 0;
  /* An https:// address without a context would serve plain HTTP there. */
  if (rc == 0 && !tls && url &&
      (strncasecmp(url, "https://", 8) == 0 || strncasecmp(url, "wss://", 6) == 0))
    rc = SL_EINVAL;
  if (rc) {
    if (err) *err = rc;
    return NULL;
  }
  sl_conn *l = tls ? sl_listen_tls(m, url, tls, fn, data, err)
                   : sl_listen(m, url, fn, data, err);
  if (l == NULL) return NULL;
  struct sl_http *h = sl__calloc(sizeof(*h), SL_MEM_META);
  if (h == NULL) {
    if (err) *err = SL_ENOMEM;
    sl_conn_close(l, SL_CLOSE_NOW);
    return NULL;
  }
  if (opts) h->opts = *opts;
  sl__conn_set_proto(l, &http_listener_proto, h);
  return l;
}

/* ---- writing responses ---------------------------------------------- */

/* The Date header line ("Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n", always
 * 37 bytes), formatted again only when the second changes: time() is a
 * vDSO read of the kernel's cached seconds, no system call. */
static const char *date_header(size_t *len) {
  /* Per thread: each manager may run on a thread of its own. */
  static _Thread_local time_t last;
  static _Thread_local char cached[64];
  static _Thread_local size_t cached_len;
  time_t now = time(NULL);
  if (now != last || cached_len == 0) {
    struct tm tm;
    gmtime_r(&now, &tm);
    cached_len = strftime(cached, sizeof(cached), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    last = now;
  }
  *len = cached_len;
  return cached;
}

/* The connection carries another request after this response. Not when
 * the response comes before the request's body was read to its end: the
 * rest of that body is never read, so nothing could find where the next
 * request starts. */
static int persists(const struct sl_http *h) { return h->keep_alive && !h->body_pending; }

/* A response may begin: in the headers event, while a body streams to the
 * handler, or once the request is delivered. */
static int can_respond(const struct sl_http *h) {
  return h->state == SL_HS_REQUEST || h->state == SL_HS_HEADERS ||
         h->state == SL_HS_BODY_STREAM;
}

/* A response with a body to come: not from on_error, whose reply must be
 * whole before fail_request returns. */
static int can_start(const struct sl_http *h) { return can_respond(h) && !h->error_reply; }

/* Appends for format_head: a head is assembled with copies, not
 * snprintf, which cost half of the library's instructions per small
 * response (callgrind, bench_http_server under wrk). Each returns NULL when
 * the bytes do not fit, and passes NULL on. */
static char *put(char *p, const char *end, const char *s, size_t n) {
  if (p == NULL || n > (size_t)(end - p)) return NULL;
  memcpy(p, s, n);
  return p + n;
}

static char *put_str(char *p, const char *end, const char *s) {
  return s ? put(p, end, s, strlen(s)) : p;
}

static char *put_uint(char *p, const char *end, unsigned long long v) {
  char digits[24];
  size_t n = sizeof(digits);
  do {
    digits[--n] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  return put(p, end, digits + n, sizeof(digits) - n);
}

/* Format the status line and the headers the library owns. `body_len` < 0
 * means no Content-Length. Returns the length, or -1 when it does not fit
 * in `cap`. */
static int format_head(struct sl_http *h, char *out, size_t cap, int status,
                       const char *headers, long long body_len,
                       const char *extra) {
  static const char server[] = "\r\nServer: sluice\r\n";
  static const char clen[] = "Content-Length: ";
  const char *end = out + (cap < INT_MAX ? cap : INT_MAX);
  size_t dlen;
  const char *date = date_header(&dlen);
  char *p = put(out, end, "HTTP/1.1 ", 9);
  /* Status codes are three digits (sl_http_reply's contract); anything
   * else is written as given, as snprintf's %d did. */
  if (status < 0) p = put(p, end, "-", 1);
  p = put_uint(p, end, status < 0 ? 0ull - (unsigned long long)(long long)status
                                  : (unsigned long long)status);
  p = put(p, end, " ", 1);
  p = put_str(p, end, sl_http_status_text(status));
  p = put(p, end, server, sizeof(server) - 1);
  p = put(p, end, date, dlen);
  p = put_str(p, end, headers);
  p = put_str(p, end, extra);
  if (body_len >= 0) {
    p = put(p, end, clen, sizeof(clen) - 1);
    p = put_uint(p, end, (unsigned long long)body_len);
    p = put(p, end, "\r\n", 2);
  }
  /* HTTP/1.1 persists by default; an HTTP/1.0 client that asked for
   * keep-alive must be told it was granted, or it waits for our close
   * (RFC 9112 section 9.3 and appendix C.2.2). */
  p = put_str(p, end, !persists(h) ? "Connection: close\r\n"
                      : h->version_minor == 0 ? "Connection: keep-alive\r\n" : "");
  p = put(p, end, "\r\n", 2);
  /* Like snprintf's bound, one byte stays free for callers that log the
   * head as a string. */
  if (p == NULL || p == end) return -1;
  return (int)(p - out);
}

static void serve_more(sl_conn *c);

/* The response is complete: go on with the next request, or close. */
static void response_done(sl_conn *c, struct sl_http *h) {
  h->mode = 0;
  sl_conn_set_busy(c, 0);
  release_body(c, h);
  /* After the peer's FIN no further request can come. */
  if (!persists(h) || sl__conn_peer_eof(c)) {
    set_state(h, SL_HS_CLOSE);
    /* An error answered by on_error closes as the default reply does. */
    sl_conn_close_with(c, SL_CLOSE_FLUSH,
                       h->error_reply ? SL_CLOSE_PROTOCOL : SL_CLOSE_LOCAL);
    return;
  }
  set_state(h, SL_HS_HEAD);
  /* The next request's header timeout starts once this response is
   * written (http_ev arms it on the write that empties the queue): a slow
   * reader of a large response is bounded by stall_ms, and must not be cut
   * off by a timeout meant for the next request. */
  if (sl_conn_queued(c) == 0) arm_header_timeout(c, h);
  /* The next pipelined request is served from http_ev on the write of
   * this response (inside the handler, serve_more's own loop goes on), not
   * from here: a caller outside the handler (a timer) may still be using
   * the connection, e.g. writing to a HEAD response that completed at its
   * head, and must not find the next request's response in its place. A
   * response always queues bytes, so that write comes; the check is a
   * safety net. */
  if (!h->in_handler && sl_conn_queued(c) == 0) serve_more(c);
}

static int reply_parts(sl_conn *c, int status, const char *headers,
                       const void *body, sl_buf *b, size_t off, size_t len) {
  struct sl_http *h = state(c);
  char head[2048];
  if (h == NULL || !(can_respond(h) || h->error_reply)) return SL_EINVAL;
  if (!sl__http_header_lines_ok(headers)) return SL_EINVAL;
  int hl = format_head(h, head, sizeof(head), status, headers,
                       (status == 204 || status == 304 || status < 200) ? -1
                                                                         : (long long)len,
                       NULL);
  if (hl < 0) return SL_EMSGSIZE;
  if (h->head_req || status == 204 || status == 304) len = 0;
  sl_part parts[2] = {{head, NULL, 0, (size_t)hl}, {body, b, off, len}};
  int rc = sl_sendv(c, parts, len ? 2 : 1);
  if (rc) return rc;
  h->last_status = status;
  response_done(c, h);
  return 0;
}

int sl_http_reply(sl_conn *c, int status, const char *headers,
                  const void *body, size_t len) {
  return reply_parts(c, status, headers, body, NULL, 0, len);
}

int sl_http_reply_buf(sl_conn *c, int status, const char *headers, sl_buf *b,
                      size_t off, size_t len) {
  if (off > sl_buf_len(b) || len > sl_buf_len(b) - off) return SL_ERANGE;
  return reply_parts(c, status, headers, NULL, b, off, len);
}

int sl_http_replyf(sl_conn *c, int status, const char *headers,
                   const char *fmt, ...) {
  char stack[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(stack, sizeof(stack), fmt, ap);
  va_end(ap);
  if (n < 0) return SL_EINVAL;
  if ((size_t)n < sizeof(stack)) return sl_http_reply(c, status, headers, stack, (size_t)n);
  char *big = sl__alloc((size_t)n + 1, SL_MEM_META);
  if (big == NULL) return SL_ENOMEM;
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  int rc = sl_http_reply(c, status, headers, big, (size_t)n);
  sl__free(big, (size_t)n + 1, SL_MEM_META);
  return rc;
}

int sl_http_reply_status(sl_conn *c, int status) {
  char body[96];
  int n = snprintf(body, sizeof(body), "%d %s\n", status, sl_http_status_text(status));
  return sl_http_reply(c, status, "Content-Type: text/plain\r\n", body, (size_t)n);
}

int sl_http_reply_401(sl_conn *c, const char *realm) {
  char hdr[256];
  if (realm) {
    /* The realm is ours, but keep it from breaking the quoted string. */
    if (strpbrk(realm, "\"\\\r\n")) return SL_EINVAL;
    snprintf(hdr, sizeof(hdr),
             "WWW-Authenticate: Basic realm=\"%s\", charset=\"UTF-8\"\r\n"
             "Content-Type: text/plain\r\n", realm);
  } else {
    snprintf(hdr, sizeof(hdr), "WWW-Authenticate: Bearer\r\nContent-Type: text/plain\r\n");
  }
  return sl_http_reply(c, 401, hdr, "401 Unauthorized\n", 17);
}

int sl_http_start(sl_conn *c, int status, const char *headers, int mode) {
  struct sl_http *h = state(c);
  char head[2048];
  if (h == NULL || !can_start(h)) return SL_EINVAL;
  if (!sl__http_header_lines_ok(headers)) return SL_EINVAL;
  if (mode != SL_HTTP_CHUNKED && mode != SL_HTTP_STREAM) return SL_EINVAL;
  if (mode == SL_HTTP_STREAM) h->keep_alive = 0;
  /* HTTP/1.0 clients cannot read chunked: stream until close instead. */
  if (mode == SL_HTTP_CHUNKED && h->version_minor == 0) {
    mode = SL_HTTP_STREAM;
    h->keep_alive = 0;
  }
  int hl = format_head(h, head, sizeof(head), status, headers, -1,
                       mode == SL_HTTP_CHUNKED ? "Transfer-Encoding: chunked\r\n"
                                               : "Cache-Control: no-store\r\n");
  if (hl < 0) return SL_EMSGSIZE;
  int rc = sl_send(c, head, (size_t)hl);
  if (rc) return rc;
  h->last_status = status;
  sl_conn_set_busy(c, 1);
  if (h->head_req) {
    /* A HEAD response has no body: it is complete already. */
    response_done(c, h);
    return 0;
  }
  h->mode = mode;
  set_state(h, SL_HS_RESPONSE);
  maybe_release_request(c, h);
  return 0;
}

static int write_body(sl_conn *c, const void *data, sl_buf *b, size_t off,
                      size_t len) {
  struct sl_http *h = state(c);
  if (h == NULL) return sl_sendv(c, (sl_part[]){{data, b, off, len}}, 1);
  if (h->state != SL_HS_RESPONSE) return h->head_req ? 0 : SL_EINVAL;
  if (len == 0) return 0;
  if (h->mode == SL_HTTP_STREAM) {
    sl_part p = {data, b, off, len};
    return sl_sendv(c, &p, 1);
  }
  char size[24];
  int n = snprintf(size, sizeof(size), "%zx\r\n", len);
  sl_part parts[3] = {{size, NULL, 0, (size_t)n}, {data, b, off, len},
                      {"\r\n", NULL, 0, 2}};
  return sl_sendv(c, parts, 3);
}

int sl_http_write(sl_conn *c, const void *data, size_t len) {
  return write_body(c, data, NULL, 0, len);
}

int sl_http_write_buf(sl_conn *c, sl_buf *b, size_t off, size_t len) {
  if (off > sl_buf_len(b) || len > sl_buf_len(b) - off) return SL_ERANGE;
  return write_body(c, NULL, b, off, len);
}

int sl_http_end(sl_conn *c) {
  struct sl_http *h = state(c);
  /* No body started (mode 0): nothing to end. In particular after
   * sl_http_start for a HEAD request, which completes at once and may have
   * let the next pipelined request in: ending that one would mark it
   * answered with nothing sent. */
  if (h == NULL || h->state != SL_HS_RESPONSE) return SL_EINVAL;
  if (h->mode == SL_HTTP_CHUNKED) {
    /* Room is always kept for the terminator: it is 5 bytes, and a refusal
     * here would leave the client waiting forever. */
    int rc = sl_send(c, "0\r\n\r\n", 5);
    if (rc) {
      sl_conn_close(c, SL_CLOSE_NOW);
      return rc;
    }
  } else if (h->mode == SL_HTTP_STREAM) {
    set_state(h, SL_HS_CLOSE);
    sl_conn_close(c, SL_CLOSE_FLUSH);
    return 0;
  }
  response_done(c, h);
  return 0;
}

/* ---- reading requests ----------------------------------------------- */

/* The request fail_request is about, for on_error: in HEAD and HEADERS
 * h->rq->msg is fresh and points into the input, which still holds the head;
 * while a body is read, the copy start_request kept. */
static void error_target(const struct sl_http *h, sl_http_error *e) {
  const struct sl_http_rq *rq = h->rq;
  if (rq == NULL) {
    /* No head parsed (no memory for one): nothing to name. */
    e->method = e->path = (sl_str){NULL, 0};
  } else if (h->state == SL_HS_BODY || h->state == SL_HS_BODY_STREAM) {
    e->method = (sl_str){rq->err_method, rq->err_mlen};
    e->path = (sl_str){rq->err_path, rq->err_plen};
  } else {
    e->method = rq->msg.method;
    e->path = rq->msg.path;
  }
  if (e->method.len == 0) e->method.ptr = NULL;
  if (e->path.len == 0) e->path = (sl_str){NULL, 0};
}

/* Answer an error the library detects itself, and stop reading. The
 * reason (printf-style, at most 127 bytes, no allocation) goes in the
 * text body after the status ("400 Bad Request: header line without
 * colon"), or to on_error, which may write a reply of its own. */
static void fail_request(sl_conn *c, struct sl_http *h, int status,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void fail_request(sl_conn *c, struct sl_http *h, int status,
                         const char *fmt, ...) {
  char reason[128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof(reason), fmt, ap);
  va_end(ap);
  h->keep_alive = 0;
  h->last_status = status;
  h->errors++;
  sl__conn_set_deadline(c, 0);
  /* Only a HEAD request's own error omits the body; in HEAD state that
   * flag is still the previous request's. */
  if (h->state == SL_HS_HEAD) h->head_req = 0;
  SL_DEBUG("http %s: %d %s: %s", c->peer_str, status, sl_http_status_text(status), reason);
  if (h->opts.on_error) {
    sl_http_error e = {status, reason, {NULL, 0}, {NULL, 0}};
    error_target(h, &e);
    h->error_reply = 1;
    h->opts.on_error(c, &e, h->opts.error_arg);
    h->error_reply = 0;
    /* Replied (response_done moved to CLOSE and closed), or closed. */
    if (h->state == SL_HS_CLOSE || sl__conn_closing(c)) {
      if (h->state != SL_HS_CLOSE) set_state(h, SL_HS_CLOSE);
      return;
    }
  }
  char body[192];
  int n = snprintf(body, sizeof(body), "%d %s: %s\n", status,
                   sl_http_status_text(status), reason);
  char head[512];
  int hl = format_head(h, head, sizeof(head), status, "Content-Type: text/plain\r\n",
                       n, NULL);
  sl_part parts[2] = {{head, NULL, 0, (size_t)hl}, {body, NULL, 0, (size_t)n}};
  set_state(h, SL_HS_CLOSE);
  if (hl < 0 || sl_sendv(c, parts, 2) != 0) {
    sl_conn_close_with(c, SL_CLOSE_NOW, SL_CLOSE_PROTOCOL);
    return;
  }
  sl_conn_close_with(c, SL_CLOSE_FLUSH, SL_CLOSE_PROTOCOL);
}

/* A refused head: its reason, with the limit for the three limits. */
static void fail_head(sl_conn *c, struct sl_http *h, int status, int why) {
  switch (why) {
    case SL_PE_LINE_LONG:
      fail_request(c, h, status, "request line over %zu bytes", h->opts.max_request_line);
      break;
    case SL_PE_HEAD_BIG:
      fail_request(c, h, status, "header section over %zu bytes", h->opts.max_head);
      break;
    case SL_PE_TOO_MANY:
      fail_request(c, h, status, "more than %zu header lines", h->opts.max_headers);
      break;
    default:
      fail_request(c, h, status, "%s", sl__http_perr_text(why));
      break;
  }
}

static void fail_too_large(sl_conn *c, struct sl_http *h) {
  fail_request(c, h, 413, "body over %llu bytes", h->body_max);
}

/* ensure_body failed: too large for the limit is the client's fault; no
 * memory or budget for it is ours. */
static void fail_store(sl_conn *c, struct sl_http *h, int er) {
  if (er == SL_EMSGSIZE) fail_too_large(c, h);
  else fail_request(c, h, 503, "%s", er == SL_EBUDGET ? "memory budget full"
                                                      : "no memory for the body");
}

/* Grow the request buffer to hold `need` bytes. It holds the head copy
 * (h->head_len, set before the first call) and then the body, so its bound
 * is head_len + body_max: a body of exactly body_max fits. */
static int ensure_body(sl_conn *c, struct sl_http *h, size_t need) {
  if (need <= h->body_cap) return 0;
  size_t max = h->body_max > SIZE_MAX - h->head_len ? SIZE_MAX
                                                     : h->head_len + (size_t)h->body_max;
  size_t cap = h->body_cap ? h->body_cap : 4096;
  while (cap < need && cap <= SIZE_MAX / 2) cap *= 2;
  if (cap > max) cap = max;
  if (cap < need) return SL_EMSGSIZE;
  sl_mgr *m = c->mgr;
  if (m->opts.budget && m->acct.held + (cap - h->body_cap) > m->opts.budget)
    return SL_EBUDGET;
  char *p = sl__realloc(h->body, h->body_cap, cap, SL_MEM_IN);
  if (p == NULL) return SL_ENOMEM;
  m->acct.in += cap - h->body_cap;
  sl__acct_held(&m->acct, (long long)(cap - h->body_cap));
  h->body = p;
  h->body_cap = cap;
  return 0;
}

/* Call the handler with one of this machine's events. Returns 1 when
 * another protocol took the connection inside it (WebSocket): `h` is freed
 * then, and the caller hands the input over. */
static int call_handler(sl_conn *c, struct sl_http *h, int ev, void *data) {
  h->in_handler = 1;
  if (c->fn) c->fn(c, ev, data);
  if (c->proto != &sl__http_proto || c->pdata != h) {
    SL_ASSERT(h->state == SL_HS_UPGRADED);
    release_request(c, h);
    sl__free(h, sizeof(*h), SL_MEM_META);
    return 1;
  }
  h->in_handler = 0;
  maybe_release_request(c, h);
  return 0;
}

/* Deliver the request: SL_EV_HTTP_MSG with h->rq->msg (pointers into the input
 * buffer or into h->body), or the empty SL_EV_HTTP_CHUNK that ends a
 * streamed body. */
static int dispatch(sl_conn *c, struct sl_http *h, int ev, void *data) {
  set_state(h, SL_HS_REQUEST);
  h->requests++;
  sl__conn_set_deadline(c, 0);
  return call_handler(c, h, ev, data);
}

/* After an upgrade: drop the request head and give the new protocol any
 * bytes the client sent after it. */
static void hand_over(sl_conn *c, size_t head) {
  size_t len;
  sl_conn_consume(c, head);
  sl_conn_in(c, &len);
  if (len && c->proto && c->proto->ev && !sl__conn_closing(c))
    c->proto->ev(c, SL_EV_READ, &len);
}

static int gone(const sl_conn *c) { return sl_conn_is_closing(c); }

/* A head of `head` bytes at `p` (the input) is parsed into h->rq->msg: the
 * headers event, then the body or the request. Returns 1 when serve_more
 * must stop (h may be gone), 0 to go on by h->state. */
static int start_request(sl_conn *c, struct sl_http *h, const char *p, size_t head) {
  static sl_str end = {"", 0};
  struct sl_http_rq *rq = h->rq; /* serve_more made it */
  sl_http_msg *msg = &rq->msg;
  h->keep_alive = msg->keep_alive;
  h->version_minor = msg->version_minor;
  h->head_req = sl_http_is_method(msg, "HEAD");
  h->body_pending = msg->content_length > 0 || msg->chunked;
  h->body_stream = 0;
  h->body_max = h->opts.max_body;
  h->body_got = 0;
  msg->body.ptr = p + head;
  msg->body.len = 0;
  /* The header timeout ends with the head, also for a response the
   * handler starts from the headers event. */
  sl__conn_set_deadline(c, 0);
  set_state(h, SL_HS_HEADERS);
  if (call_handler(c, h, SL_EV_HTTP_HEADERS, msg)) {
    hand_over(c, head);
    return 1;
  }
  if (h->state != SL_HS_HEADERS || gone(c)) {
    /* Answered (or closed) from the headers event: no SL_EV_HTTP_MSG, no
     * 100 Continue, no body read. With a body pending the response said
     * Connection: close (see can_respond). */
    if (!sl__conn_closing(c)) sl_conn_consume(c, head);
    return 0;
  }
  if (!h->body_pending) {
    int up = h->body_stream ? dispatch(c, h, SL_EV_HTTP_CHUNK, &end)
                            : dispatch(c, h, SL_EV_HTTP_MSG, msg);
    if (up) {
      hand_over(c, head);
      return 1;
    }
    /* The head lives in the input buffer: consume it only now. */
    if (!sl__conn_closing(c)) sl_conn_consume(c, head);
    return 0;
  }
  if (!msg->chunked && (unsigned long long)msg->content_length > h->body_max) {
    fail_too_large(c, h);
    return 1;
  }
  /* The head leaves the input below: keep what on_error reports. */
  rq->err_mlen = msg->method.len < sizeof(rq->err_method) ? msg->method.len : 0;
  memcpy(rq->err_method, msg->method.ptr, rq->err_mlen);
  rq->err_plen = msg->path.len < sizeof(rq->err_path) ? msg->path.len : sizeof(rq->err_path);
  memcpy(rq->err_path, msg->path.ptr, rq->err_plen);
  if (h->body_stream) {
    /* The head goes now: the handler copied what it needs from it. */
    sl_conn_consume(c, head);
    set_state(h, SL_HS_BODY_STREAM);
  } else {
    /* Copy the head, re-parse it there so its pointers stay valid, and
     * collect the body behind it. */
    h->head_len = head;
    int er = ensure_body(c, h, head + (msg->chunked ? 0 : (size_t)msg->content_length));
    if (er != 0) {
      fail_store(c, h, er);
      return 1;
    }
    memcpy(h->body, p, head);
    h->body_len = head;
    sl_conn_consume(c, head);
    set_state(h, SL_HS_BODY);
  }
  h->body_chunked = msg->chunked;
  arm_body_timeout(c, h);
  h->body_left = msg->chunked ? 0 : (unsigned long long)msg->content_length;
  sl__chunked_init(&h->chunk);
  /* Only now, when the handler has not refused the request. */
  if (msg->expect_continue) sl_send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
  return 0;
}

/* SL_HS_BODY: collect `len` input bytes at `p` into h->body; at the end,
 * deliver the request. Returns as start_request. */
static int collect_body(sl_conn *c, struct sl_http *h, const char *p, size_t len) {
  if (!h->body_chunked) {
    size_t take = len < h->body_left ? len : (size_t)h->body_left;
    memcpy(h->body + h->body_len, p, take);
    h->body_len += take;
    h->body_left -= take;
    h->body_rx += take;
    sl_conn_consume(c, take);
    if (h->body_left) return 1;
  } else {
    size_t used = 0;
    int done = 0;
    while (used < len && !done) {
      const char *d;
      size_t dl;
      int n = sl__chunked_decode(&h->chunk, p + used, len - used, &d, &dl, &done);
      if (n < 0) {
        fail_request(c, h, 400, "malformed chunked body");
        return 1;
      }
      if (n == 0) break;
      if (dl) {
        int er = h->body_len - h->head_len + dl > h->body_max
                     ? SL_EMSGSIZE
                     : ensure_body(c, h, h->body_len + dl);
        if (er != 0) {
          fail_store(c, h, er);
          return 1;
        }
        memcpy(h->body + h->body_len, d, dl);
        h->body_len += dl;
      }
      used += (size_t)n;
    }
    sl_conn_consume(c, used);
    h->body_rx += used;
    if (!done) return 1;
  }
  /* Body complete: re-parse the head from our copy and deliver. */
  h->body_pending = 0;
  sl_http_msg *msg = &h->rq->msg;
  if (sl__http_parse_request(h->body, h->head_len, &h->lim, msg) <= 0) {
    fail_request(c, h, 400, "malformed request head");
    return 1;
  }
  h->keep_alive = msg->keep_alive;
  msg->body.ptr = h->body + h->head_len;
  msg->body.len = h->body_len - h->head_len;
  if (dispatch(c, h, SL_EV_HTTP_MSG, msg)) {
    hand_over(c, 0);
    return 1;
  }
  return 0;
}

/* SL_HS_BODY_STREAM: hand the handler each piece of the body straight from
 * the input buffer, consumed when it returns; at the end, the empty piece.
 * Nothing is copied, so the body costs the input buffer (recv_max) and no
 * more; sl_conn_pause_read holds the socket back. Returns as
 * start_request. */
static int stream_body(sl_conn *c, struct sl_http *h, const char *p, size_t len) {
  static sl_str end = {"", 0};
  size_t used = 0;
  int done = 0;
  if (!h->body_chunked) {
    size_t take = len < h->body_left ? len : (size_t)h->body_left;
    sl_str s = {p, take};
    h->body_left -= take;
    h->body_rx += take;
    h->body_got += take;
    if (call_handler(c, h, SL_EV_HTTP_CHUNK, &s)) {
      hand_over(c, take);
      return 1;
    }
    sl_conn_consume(c, take);
    if (h->state != SL_HS_BODY_STREAM || gone(c)) return 0;
    if (h->body_left) return 1;
  } else {
    while (used < len && !done) {
      const char *d;
      size_t dl;
      int n = sl__chunked_decode(&h->chunk, p + used, len - used, &d, &dl, &done);
      if (n < 0) {
        fail_request(c, h, 400, "malformed chunked body");
        return 1;
      }
      if (n == 0) break;
      used += (size_t)n;
      if (dl == 0) continue;
      if (dl > h->body_max - h->body_got) {
        fail_too_large(c, h);
        return 1;
      }
      h->body_got += dl;
      sl_str s = {d, dl};
      if (call_handler(c, h, SL_EV_HTTP_CHUNK, &s)) {
        hand_over(c, used);
        return 1;
      }
      if (h->state != SL_HS_BODY_STREAM || gone(c)) {
        if (!sl__conn_closing(c)) sl_conn_consume(c, used);
        return 0;
      }
    }
    sl_conn_consume(c, used);
    h->body_rx += used;
    if (!done) return 1;
  }
  h->body_pending = 0;
  if (dispatch(c, h, SL_EV_HTTP_CHUNK, &end)) {
    hand_over(c, 0);
    return 1;
  }
  return 0;
}

/* Parse and dispatch as many complete requests as the input holds, while
 * no response is outstanding; collect or stream their bodies. */
static void serve_more(sl_conn *c) {
  struct sl_http *h = state(c);
  while (h && (h->state == SL_HS_HEAD || h->state == SL_HS_BODY ||
               h->state == SL_HS_BODY_STREAM) && !gone(c)) {
    size_t len;
    const char *p = sl_conn_in(c, &len);
    if (len == 0) return;
    if (h->state == SL_HS_BODY) {
      if (collect_body(c, h, p, len)) return;
      continue;
    }
    if (h->state == SL_HS_BODY_STREAM) {
      if (stream_body(c, h, p, len)) return;
      continue;
    }
    /* A pipelining client that does not read its responses must not
     * make us queue up to send_max and then refuse them: the next
     * request waits until the output falls below send_high (http_ev
     * resumes on each write); meanwhile the input fills to recv_max and
     * TCP pushes back. */
    if (sl_conn_queued(c) >= c->lim.send_high) return;
    if (want_request(h) == NULL) {
      fail_request(c, h, 503, "no memory for the request");
      return;
    }
    int why;
    int rc = sl__http_parse_request_why(p, len, &h->lim, &h->rq->msg, &why);
    if (rc == 0) return;
    if (rc < 0) {
      fail_head(c, h, -rc, why);
      return;
    }
    if (start_request(c, h, p, (size_t)rc)) return;
  }
}

static int http_ev(sl_conn *c, int ev, void *ev_data) {
  struct sl_http *h = c->pdata;
  (void)ev_data;
  switch (ev) {
    case SL_EV_READ:
      if (h->state == SL_HS_UPGRADED) return 0;
      if (c->fn) c->fn(c, SL_EV_READ, ev_data);
      serve_more(c);
      return 1;
    case SL_EV_WRITE:
    case SL_EV_DRAIN:
      if (h->source_fill && !sl__conn_closing(c)) h->source_fill(c, h->source);
      /* Between requests, the last response just left: the header
       * timeout starts now (see response_done). Only in HEAD: a body
       * has bounds of its own, which may be none at all. */
      if (h->state == SL_HS_HEAD && h->keep_alive &&
          c->proto_deadline == 0 && sl_conn_queued(c) == 0 &&
          !sl_conn_is_closing(c))
        arm_header_timeout(c, h);
      /* Pipelined requests held back by a full output queue. */
      if (sl_conn_queued(c) < c->lim.send_high) serve_more(c);
      return 0;
    case SL_EV_TIMEOUT:
      if (*(int *)ev_data != SL_CLOSE_TIMEOUT) return 0;
      if (h->state == SL_HS_BODY || h->state == SL_HS_BODY_STREAM) {
        int slow = sl__conn_paused(c) ? (put_off(c, h), 0) : body_too_slow(c, h);
        if (slow == 1)
          fail_request(c, h, 408, "body not complete in %u ms", h->opts.body_timeout_ms);
        else if (slow == 2)
          fail_request(c, h, 408, "body under %u bytes/s", h->opts.body_min_rate);
        return 1;
      }
      if (h->state == SL_HS_HEAD) {
        size_t len;
        const char *p = sl_conn_in(c, &len);
        /* Part of a request arrived but not its end: 408. An idle
         * keep-alive connection is simply closed. */
        if (len) {
          /* Parse what came, for on_error's path: h->rq may still hold
           * the previous request (a pipelined head held back). */
          if (want_request(h))
            sl__http_parse_request(p, len, &h->lim, &h->rq->msg);
          fail_request(c, h, 408, "headers not complete in %u ms",
                       h->opts.header_timeout_ms);
        } else {
          set_state(h, SL_HS_CLOSE);
          sl_conn_close_with(c, SL_CLOSE_NOW, SL_CLOSE_TIMEOUT);
        }
        return 1;
      }
      return 0;
    default:
      return 0;
  }
}

/* ---- message helpers ------------------------------------------------ */

const sl_str *sl_http_get_header(const sl_http_msg *m, const char *name) {
  return sl__http_header(m, name);
}

int sl_http_query(const sl_http_msg *m, const char *name, char *out,
                  size_t outcap) {
  return sl__http_query_get(m->query, name, out, outcap);
}

int sl_http_is_method(const sl_http_msg *m, const char *method) {
  size_t n = strlen(method);
  return m->method.len == n && memcmp(m->method.ptr, method, n) == 0;
}

int sl_http_match(const sl_http_msg *m, const char *pattern, sl_str *caps,
                  size_t ncaps) {
  return sl__http_match_path(m->path, pattern, caps, ncaps);
}

/* Constant-time comparison of a secret; length is not hidden. */
static int same_secret(const char *a, size_t alen, const char *b) {
  size_t blen = strlen(b);
  unsigned char d = alen != blen;
  for (size_t i = 0; i < alen && i < blen; i++) d |= (unsigned char)(a[i] ^ b[i]);
  return d == 0;
}

int sl_http_check_bearer(const sl_http_msg *m, const char *token) {
  const sl_str *v = sl_http_get_header(m, "Authorization");
  if (v) {
    sl_http_auth a;
    if (sl__http_auth_parse(*v, &a) == 0 && a.scheme == SL_AUTH_BEARER &&
        same_secret(a.token.ptr, a.token.len, token))
      return 1;
  }
  char q[256];
  int n = sl_http_query(m, "token", q, sizeof(q));
  return n >= 0 && same_secret(q, (size_t)n, token);
}

int sl_http_check_basic(const sl_http_msg *m, const char *user,
                        const char *pass) {
  const sl_str *v = sl_http_get_header(m, "Authorization");
  return v && sl__http_basic_check(*v, user, pass) == 1;
}

/* ---- helpers for other modules -------------------------------------- */

int sl__http_start_fixed(sl_conn *c, int status, const char *headers,
                         unsigned long long len) {
  struct sl_http *h = state(c);
  char head[2048];
  if (h == NULL || !can_start(h)) return SL_EINVAL;
  if (!sl__http_header_lines_ok(headers)) return SL_EINVAL;
  int hl = format_head(h, head, sizeof(head), status, headers, (long long)len, NULL);
  if (hl < 0) return SL_EMSGSIZE;
  int rc = sl_send(c, head, (size_t)hl);
  if (rc) return rc;
  h->last_status = status;
  h->mode = SL__HTTP_FIXED;
  set_state(h, SL_HS_RESPONSE);
  sl_conn_set_busy(c, 1);
  return 0;
}

void sl__http_finish(sl_conn *c) {
  struct sl_http *h = state(c);
  if (h && (h->state == SL_HS_REQUEST || h->state == SL_HS_RESPONSE))
    response_done(c, h);
}

void sl__http_set_source(sl_conn *c, void (*fill)(sl_conn *, void *),
                         void (*free_fn)(sl_conn *, void *), void *src) {
  struct sl_http *h = state(c);
  if (h == NULL) return;
  if (h->source_free) h->source_free(c, h->source);
  h->source_fill = fill;
  h->source_free = free_fn;
  h->source = src;
}

int sl__http_head_request(sl_conn *c) {
  struct sl_http *h = state(c);
  return h ? h->head_req : 0;
}

/* ---- uploads: calls from the headers event -------------------------- */

int sl_http_body_max(sl_conn *c, unsigned long long max) {
  struct sl_http *h = state(c);
  if (h == NULL || h->state != SL_HS_HEADERS) return SL_EINVAL;
  h->body_max = max;
  return 0;
}

int sl_http_body_stream(sl_conn *c, int on) {
  struct sl_http *h = state(c);
  if (h == NULL || h->state != SL_HS_HEADERS) return SL_EINVAL;
  h->body_stream = on != 0;
  return 0;
}
