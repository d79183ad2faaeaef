/* The HTTP/1.1 protocol state of a connection, shared by the server
 * (http.c), static files (http_static.c) and WebSocket upgrades (ws.c). */
#ifndef SL_HTTP_H
#define SL_HTTP_H

#include "http_auth.h"
#include "http_parse.h"
#include "internal.h"

/* The request cycle's states; see the first comment of http.c. */
enum sl_http_state {
  SL_HS_HEAD,     /* waiting for a request head (between requests) */
  SL_HS_HEADERS,  /* inside the handler's SL_EV_HTTP_HEADERS */
  SL_HS_BODY,     /* head parsed, its body being collected */
  SL_HS_BODY_STREAM, /* the body handed to the handler as it arrives */
  SL_HS_REQUEST,  /* request delivered, no response started yet */
  SL_HS_RESPONSE, /* response head sent, its body being written */
  SL_HS_UPGRADED, /* another protocol took over inside the handler */
  SL_HS_CLOSE,    /* no further request: the connection closes */
  SL_HS_COUNT
};

/* The request being served: its parsed head (some 2.2 KiB, most of a
 * connection's HTTP state) and what on_error reports of it while its body
 * is read. Allocated when a head arrives; released once a streamed
 * response (SL_HTTP_STREAM, SL_HTTP_CHUNKED) is under way and the handler
 * has returned, so a stream viewer keeps only struct sl_http. */
struct sl_http_rq {
  sl_http_msg msg;
  /* While a body is read the head has left the input buffer, so the
   * request's method and the start of its path are kept here. */
  char err_method[8], err_path[256];
  size_t err_mlen, err_plen;
};

struct sl_http {
  sl_http_opts opts;
  sl_http_limits lim;
  struct sl_http_rq *rq; /* NULL: no request parsed, or released (above) */
  enum sl_http_state state; /* moved only by set_state (http.c) */
  int in_handler;         /* inside a handler call made by http.c */
  int mode;               /* SL_HS_RESPONSE: SL_HTTP_CHUNKED, SL_HTTP_STREAM
                             or SL__HTTP_FIXED; else 0 (or STREAM after
                             its end) */
  int keep_alive, version_minor, head_req;
  int last_status;
  /* Request body: head copy + body, bounded by body_max. */
  int body_pending;       /* the request has a body not read to its end */
  int body_stream;        /* the handler takes the body as it arrives */
  int body_chunked;       /* SL_HS_BODY*: chunked, else Content-Length */
  unsigned long long body_max; /* this request's limit (opts.max_body) */
  unsigned long long body_got; /* streamed: body bytes delivered */
  unsigned long long body_left;
  sl_chunked chunk;
  char *body;
  size_t body_len, body_cap, head_len;
  /* Body bounds (see next_body_check in http.c): the total deadline (0:
   * none), bytes read since the head, and the count at the last check. */
  uint64_t body_deadline;
  unsigned long long body_rx, rate_mark;
  int rate_grace;
  uint64_t requests, errors;
  /* Errors the library answers (fail_request): inside on_error the
   * application may reply once, and nothing else. */
  int error_reply;
  /* A body source (static files): refilled as the peer drains. */
  void (*source_fill)(sl_conn *c, void *src);
  void (*source_free)(sl_conn *c, void *src);
  void *source;
};

extern const struct sl_proto sl__http_proto;

/* Give a connection the HTTP server protocol (accepted connections get it
 * from their listener). */
struct sl_http *sl__http_attach(sl_conn *c, const sl_http_opts *o);
/* Install a body source: fill(c, src) runs after each write and drain until
 * it clears itself with sl__http_set_source(c, NULL, NULL, NULL); free_fn
 * runs when it is replaced or the connection goes. */
void sl__http_set_source(sl_conn *c, void (*fill)(sl_conn *, void *),
                         void (*free_fn)(sl_conn *, void *), void *src);
/* Internal response mode: a body of known length written by a source. */
#define SL__HTTP_FIXED 3
/* Send a head with Content-Length `len`; the body follows from a source,
 * which calls sl__http_finish when it has queued all of it. */
int sl__http_start_fixed(sl_conn *c, int status, const char *headers,
                         unsigned long long len);
void sl__http_finish(sl_conn *c);
/* 1 when the current request is a HEAD. */
int sl__http_head_request(sl_conn *c);

#endif
