/*
 * The HTTP/1.1 client: one logical request (sl_http_req) that may span
 * several connections. Each redirect and each authentication retry opens a
 * fresh connection; the request state, the user's handler and its data
 * move over to it and the old connection is detached (no protocol, no
 * handler) and closed, so the application sees one head, one body and one
 * close. Reusing a keep-alive connection would save a round trip per
 * retry, but a retry happens once per stream, and a new connection keeps
 * every attempt in the same, simple state (and the request honest about
 * "Connection: close").
 *
 * Memory: the request's copies (method, headers, body, credentials, URL)
 * are allocated once per request (and per redirect for the URL). The
 * response head is parsed in place in the connection's input buffer, and
 * the body is handed to the handler from that same buffer, so a response
 * of any size holds at most recv_max bytes here.
 *
 * Timeouts: connect uses the core's connect deadline; the response head
 * and the body use the protocol deadline (sl__conn_set_deadline). The
 * connection is marked busy for its whole life, so the core's idle timer
 * never cuts a stream whose reading the application paused; the core's
 * output stall timer still guards the upload of the request.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "alloc.h"
#include "base64.h"
#include "http.h"
#include "tls.h"
#include "wbuf.h"

#define DEFAULT_MAX_REDIRECTS 5
#define DEFAULT_CONNECT_MS 10000u
#define DEFAULT_HEADER_MS 10000u
#define DEFAULT_BODY_MS 30000u
#define DEFAULT_MAX_HEAD 16384u
#define HOST_MAX 256
/* Credentials longer than this are refused at sl_http_request(). */
#define CRED_MAX 256
/* A 401 is answered at most this often per hop: once per challenge, plus
 * once more when the server flags the nonce as stale (RFC 7616 3.3). */
#define MAX_AUTH_TRIES 2

enum {
  ST_CONNECT,     /* resolving or connecting */
  ST_HEAD,        /* request sent (or being sent), waiting for the head */
  ST_FIXED,       /* body with Content-Length: `left` bytes to go */
  ST_CHUNKED,     /* chunked body */
  ST_UNTIL_CLOSE, /* body delimited by the server's close */
  ST_DONE,        /* end of body delivered */
  ST_FAILED       /* SL_EV_ERROR delivered or the connection failed */
};

enum { AUTH_NONE, AUTH_BASIC, AUTH_DIGEST };

struct sl_http_req {
  sl_mgr *mgr;
  sl_conn *conn;            /* the connection carrying the request now */
  /* Options, resolved: defaults applied, strings copied (SL_MEM_META). */
  char *method, *headers, *user, *pass;
  void *body;
  size_t body_len;
  int max_redirects;
  uint32_t connect_ms, header_ms, body_ms;
  size_t max_head;
  sl_limits limits;
  sl_tls_ctx *tls_ctx;      /* opts->tls (a reference), or NULL */
  /* Where the request goes now. */
  int tls;                  /* https:// */
  char host[HOST_MAX];
  uint16_t port;
  char *target;             /* request-target: "/path?query" */
  char *url;                /* for sl_http_req_url and messages */
  /* Progress across hops. */
  int redirects;
  int auth_tries;           /* 401s answered on this hop */
  int auth_kind;            /* AUTH_*: what the next request carries */
  sl_digest_challenge ch;   /* the Digest challenge being answered */
  unsigned long nc;         /* requests sent with ch.nonce */
  /* The exchange on the current connection. */
  int state;
  int head_req;
  unsigned long long left;  /* ST_FIXED: body bytes still to come */
  unsigned long long got;   /* body bytes delivered */
  sl_chunked chunk;
  int error_sent;
  char msg[320];            /* the SL_EV_ERROR message being delivered */
};

static int client_ev(sl_conn *c, int ev, void *ev_data);
static void client_free(sl_conn *c);
static const struct sl_proto client_proto = {"http-client", client_ev,
                                             client_free, NULL};

/* ---- small helpers -------------------------------------------------- */

static void free_str(char **s) {
  if (*s) sl__free(*s, strlen(*s) + 1, SL_MEM_META);
  *s = NULL;
}

/* Replace *dst with a copy of `len` bytes of `src` and a NUL. */
static int set_str(char **dst, const char *src, size_t len) {
  char *p = sl__alloc(len + 1, SL_MEM_META);
  if (p == NULL) return SL_ENOMEM;
  memcpy(p, src, len);
  p[len] = '\0';
  free_str(dst);
  *dst = p;
  return 0;
}

static void req_free(struct sl_http_req *r) {
  free_str(&r->method);
  free_str(&r->headers);
  free_str(&r->user);
  free_str(&r->pass);
  free_str(&r->target);
  free_str(&r->url);
  if (r->body) sl__free(r->body, r->body_len, SL_MEM_META);
  sl__tls_ctx_unref(r->tls_ctx);
  sl__free(r, sizeof(*r), SL_MEM_META);
}

static int is_v6(const char *host) { return strchr(host, ':') != NULL; }

static int is_tchar(int ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* A request-target or Location goes into the request line verbatim: no
 * space, no control character (request splitting). Bytes >= 0x80 pass:
 * servers send raw UTF-8 in Location and expect it back. */
static int clean_target(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch <= ' ' || ch == 0x7f) return 0;
  }
  return 1;
}

static int has_ctl(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < ' ' || *s == 0x7f) return 1;
  return 0;
}

/* 1 when the header lines `h` hold a field called `name`. */
static int has_header_line(const char *h, const char *name) {
  size_t nl = strlen(name);
  for (const char *p = h; *p;) {
    if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') return 1;
    const char *e = strstr(p, "\r\n");
    if (e == NULL) break;
    p = e + 2;
  }
  return 0;
}

static void fill_random_hex(char *out, size_t nbytes) {
  static const char hexd[] = "0123456789abcdef";
  unsigned char b[32];
  if (nbytes > sizeof(b)) nbytes = sizeof(b);
  if (getrandom(b, nbytes, 0) != (ssize_t)nbytes) {
    /* Only a cnonce: unpredictability helps, uniqueness is what counts. */
    static unsigned x = 2463534242u;
    x ^= (unsigned)time(NULL);
    for (size_t i = 0; i < nbytes; i++) {
      x ^= x << 13, x ^= x >> 17, x ^= x << 5;
      b[i] = (unsigned char)x;
    }
  }
  for (size_t i = 0; i < nbytes; i++) {
    out[2 * i] = hexd[b[i] >> 4];
    out[2 * i + 1] = hexd[b[i] & 15];
  }
  out[2 * nbytes] = '\0';
}

/* ---- URLs ----------------------------------------------------------- */

struct url_parts {
  int tls;                  /* https:// */
  char host[HOST_MAX];
  uint16_t port;
  const char *target;       /* into the URL; "/" when it has no path */
  size_t target_len;
  int prefix_slash;         /* the target starts with '?': add a '/' */
  int has_userinfo;
  char user[CRED_MAX], pass[CRED_MAX];
};

/* Split an http:// or https:// URL. Returns 0 or SL_EURL. */
static int split_url(const char *url, struct url_parts *u) {
  memset(u, 0, sizeof(*u));
  if (strncasecmp(url, "https://", 8) == 0) u->tls = 1;
  else if (strncasecmp(url, "http://", 7) != 0) return SL_EURL;
  const char *auth = url + 7 + u->tls, *aend = auth + strcspn(auth, "/?#");
  /* The last '@' ends the userinfo: cameras' passwords often hold a raw
   * '@' that should have been written %40. */
  const char *at = NULL;
  for (const char *p = auth; p < aend; p++)
    if (*p == '@') at = p;
  if (at) {
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    const char *ue = colon ? colon : at;
    int ul = sl__url_decode(auth, (size_t)(ue - auth), u->user, sizeof(u->user), 0);
    int pl = colon ? sl__url_decode(colon + 1, (size_t)(at - colon - 1), u->pass,
                                    sizeof(u->pass), 0)
                   : 0;
    /* %00 would cut the credential short; controls cannot be sent. */
    if (ul < 0 || pl < 0 || strlen(u->user) != (size_t)ul ||
        strlen(u->pass) != (size_t)pl || has_ctl(u->user) || has_ctl(u->pass))
      return SL_EURL;
    u->has_userinfo = 1;
    auth = at + 1;
  }
  /* The scheme gives sl__parse_url the default port. */
  char hostport[HOST_MAX + 16];
  size_t sl = u->tls ? 8 : 7, hl = (size_t)(aend - auth);
  if (hl == 0 || hl + sl + 1 > sizeof(hostport)) return SL_EURL;
  memcpy(hostport, u->tls ? "https://" : "http://", sl);
  memcpy(hostport + sl, auth, hl);
  hostport[sl + hl] = '\0';
  if (sl__parse_url(hostport, u->host, sizeof(u->host), &u->port, NULL, NULL) != 0 ||
      u->host[0] == '\0' || u->port == 0)
    return SL_EURL;
  if (*aend == '\0' || *aend == '#') {
    u->target = "/";
    u->target_len = 1;
  } else {
    u->target = aend;
    u->target_len = strcspn(aend, "#");
    u->prefix_slash = aend[0] == '?';
  }
  if (!clean_target(u->target, u->target_len)) return SL_EURL;
  return 0;
}

/* Point the request at `u`: new host, port, target and URL. On error
 * nothing changes. */
static int apply_url(struct sl_http_req *r, const struct url_parts *u) {
  char *target = NULL, *url = NULL;
  size_t tl = u->target_len + (size_t)u->prefix_slash;
  target = sl__alloc(tl + 1, SL_MEM_META);
  if (target == NULL) return SL_ENOMEM;
  if (u->prefix_slash) target[0] = '/';
  memcpy(target + u->prefix_slash, u->target, u->target_len);
  target[tl] = '\0';
  /* Exactly the string's size: free_str frees strlen + 1 bytes. */
  int v6 = is_v6(u->host);
  const char *scheme = u->tls ? "https" : "http";
  int ul = snprintf(NULL, 0, "%s://%s%s%s:%u%s", scheme, v6 ? "[" : "", u->host,
                    v6 ? "]" : "", u->port, target);
  url = ul > 0 ? sl__alloc((size_t)ul + 1, SL_MEM_META) : NULL;
  if (url == NULL) {
    sl__free(target, tl + 1, SL_MEM_META);
    return SL_ENOMEM;
  }
  snprintf(url, (size_t)ul + 1, "%s://%s%s%s:%u%s", scheme, v6 ? "[" : "", u->host,
           v6 ? "]" : "", u->port, target);
  free_str(&r->target);
  free_str(&r->url);
  r->target = target;
  r->url = url;
  snprintf(r->host, sizeof(r->host), "%s", u->host);
  r->port = u->port;
  r->tls = u->tls;
  return 0;
}

/* ---- errors --------------------------------------------------------- */

static void deliver_error(struct sl_http_req *r, sl_conn *c) {
  r->state = ST_FAILED;
  if (r->error_sent) return;
  r->error_sent = 1;
  if (c->fn) c->fn(c, SL_EV_ERROR, r->msg);
}

/* Fail the request: SL_EV_ERROR with the formatted message now, then
 * close with `reason` (SL_EV_CLOSE follows at the reap). */
static void fail(struct sl_http_req *r, sl_conn *c, int reason, int err,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void fail(struct sl_http_req *r, sl_conn *c, int reason, int err,
                 const char *fmt, ...) {
  if (sl__conn_closing(c)) return;
  if (!r->error_sent) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
  }
  deliver_error(r, c);
  if (!c->err) c->err = err;
  sl__conn_note_reason(c, reason, 1);
  sl__conn_mark_closing(c);
}

/* A message for an error the core reported (socket, resolve, connect,
 * TLS: `tls_msg` is the TLS layer's own, with OpenSSL's reason). */
static void describe_core_error(struct sl_http_req *r, sl_conn *c,
                                const char *tls_msg) {
  int e = c->err ? c->err : SL_EIO;
  const char *what = r->state == ST_CONNECT ? "cannot connect to"
                     : r->state == ST_HEAD  ? "no response from"
                                            : "body cut short by";
  if (e == SL_ETLS && tls_msg)
    snprintf(r->msg, sizeof(r->msg), "%s %s: %s", what, r->url, tls_msg);
  else if (e == SL_ERESOLVE)
    snprintf(r->msg, sizeof(r->msg), "cannot resolve host name \"%s\"", r->host);
  else
    snprintf(r->msg, sizeof(r->msg), "%s %s: %s", what, r->url, sl_strerror(e));
}

/* ---- sending -------------------------------------------------------- */

static int method_has_body(const char *m) {
  return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
}

/* The Authorization header value for the next request, into a buffer of
 * *cap bytes allocated here (or NULL when none is due). */
static int make_authorization(struct sl_http_req *r, char **out, size_t *cap) {
  *out = NULL;
  *cap = 0;
  if (r->auth_kind == AUTH_NONE || r->user == NULL) return 0;
  size_t ul = strlen(r->user), pl = r->pass ? strlen(r->pass) : 0;
  if (r->auth_kind == AUTH_BASIC) {
    /* RFC 7617: base64 of user ":" pass. */
    size_t raw_len = ul + 1 + pl;
    char raw[2 * CRED_MAX + 2];
    memcpy(raw, r->user, ul);
    raw[ul] = ':';
    if (pl) memcpy(raw + ul + 1, r->pass, pl);
    *cap = 6 + SL_BASE64_ENCODED_SIZE(raw_len);
    *out = sl__alloc(*cap, SL_MEM_META);
    if (*out == NULL) return SL_ENOMEM;
    memcpy(*out, "Basic ", 6);
    sl__base64_encode(raw, raw_len, *out + 6);
    return 0;
  }
  /* Digest: escaping may double the quoted user and uri. */
  char cnonce[33];
  fill_random_hex(cnonce, 16);
  *cap = 4 * SL_DIGEST_FIELD_MAX + 2 * ul + 2 * strlen(r->target) + 256;
  *out = sl__alloc(*cap, SL_MEM_META);
  if (*out == NULL) return SL_ENOMEM;
  r->nc++;
  if (sl__http_digest_authorization(&r->ch, r->user, r->pass ? r->pass : "",
                                    r->method, r->target, cnonce, r->nc, *out,
                                    *cap) < 0) {
    sl__free(*out, *cap, SL_MEM_META);
    *out = NULL;
    return SL_EINVAL;
  }
  return 0;
}

/* Queue the request (head and body, as one unit) on `c`. */
static int queue_request(struct sl_http_req *r, sl_conn *c) {
  char *auth;
  size_t auth_cap;
  int rc = make_authorization(r, &auth, &auth_cap);
  if (rc) return rc;
  int v6 = is_v6(r->host);
  char port[8] = "";
  if (r->port != (r->tls ? 443 : 80)) snprintf(port, sizeof(port), ":%u", r->port);
  size_t cap = strlen(r->method) + strlen(r->target) + strlen(r->host) +
               (r->headers ? strlen(r->headers) : 0) + (auth ? strlen(auth) : 0) + 256;
  char *head = sl__alloc(cap, SL_MEM_META);
  if (head == NULL) {
    if (auth) sl__free(auth, auth_cap, SL_MEM_META);
    return SL_ENOMEM;
  }
  sl__wbuf w;
  sl__wbuf_init(&w, head, cap);
  sl__wbuf_printf(&w, "%s %s HTTP/1.1\r\nHost: %s%s%s%s\r\n", r->method, r->target,
                  v6 ? "[" : "", r->host, v6 ? "]" : "", port);
  if (!r->headers || !has_header_line(r->headers, "User-Agent"))
    sl__wbuf_printf(&w, "User-Agent: sluice/%s\r\n", SL_VERSION);
  sl__wbuf_printf(&w, "Connection: close\r\n");
  if (auth) sl__wbuf_printf(&w, "Authorization: %s\r\n", auth);
  if (r->body_len || method_has_body(r->method))
    sl__wbuf_printf(&w, "Content-Length: %zu\r\n", r->body_len);
  sl__wbuf_printf(&w, "%s\r\n", r->headers ? r->headers : "");
  rc = sl__wbuf_done(&w);
  if (rc == 0) {
    sl_part parts[2] = {{head, NULL, 0, w.len}, {r->body, NULL, 0, r->body_len}};
    rc = sl_sendv(c, parts, r->body_len ? 2 : 1);
  }
  sl__free(head, cap, SL_MEM_META);
  if (auth) sl__free(auth, auth_cap, SL_MEM_META);
  return rc;
}

/* ---- connections ---------------------------------------------------- */

/* Open a connection to the request's current host and port, with the
 * client protocol, the handler and the request's limits and deadlines.
 * The caller makes it r->conn and queues the request. */
static sl_conn *open_conn(struct sl_http_req *r, sl_handler fn, void *data,
                          int *err) {
  char addr[HOST_MAX + 16];
  int v6 = is_v6(r->host);
  snprintf(addr, sizeof(addr), "%s%s%s:%u", v6 ? "[" : "", r->host, v6 ? "]" : "",
           r->port);
  /* No handler yet: SL_EV_OPEN (and an immediate connect failure) happen
   * inside sl_connect; the failure is reported at SL_EV_CLOSE instead. */
  sl_conn *c = sl_connect(r->mgr, addr, NULL, NULL, err);
  if (c == NULL) return NULL;
  sl__conn_set_proto(c, &client_proto, r);
  c->fn = fn;
  c->data = data;
  sl_limits lim = r->limits;
  int rc = 0;
  if (r->tls && !sl__conn_closing(c)) {
    /* The request waits in the queue until the handshake is done. A
     * connection that already failed reports it at its close. */
    sl_tls_ctx *ctx = r->tls_ctx ? r->tls_ctx : sl__tls_default_client(r->mgr, &rc);
    if (ctx) rc = sl_conn_tls(c, ctx, r->host);
  }
  if (rc == 0) rc = sl_conn_set_limits(c, &lim);
  if (rc == 0 && c->lim.recv_max <= r->max_head) {
    /* The head is parsed in the input buffer: it must fit, with room for
     * the byte that shows it is too long. */
    lim.recv_max = r->max_head + 1024;
    rc = sl_conn_set_limits(c, &lim);
  }
  if (rc) {
    /* Bad limits (only on the first connection: they do not change
     * between hops), or no TLS: it goes away unseen, and the caller
     * reports the error. */
    sl__conn_set_proto(c, NULL, NULL);
    c->fn = NULL;
    c->data = NULL;
    sl_conn_close_with(c, SL_CLOSE_NOW, SL_CLOSE_LOCAL);
    *err = rc;
    return NULL;
  }
  c->connect_deadline =
      r->connect_ms == UINT32_MAX ? UINT64_MAX : r->mgr->now + r->connect_ms;
  sl_conn_set_busy(c, 1);
  r->state = ST_CONNECT;
  r->got = 0;
  return c;
}

/* Move the request to a new connection (redirect or authentication
 * retry), detaching and closing `old`. */
static void next_hop(struct sl_http_req *r, sl_conn *old) {
  int err = 0;
  sl_conn *c = open_conn(r, old->fn, old->data, &err);
  if (c == NULL) {
    if (err == SL_ENOTSUP)
      fail(r, old, SL_CLOSE_ERROR, err, "cannot open %s: https is not supported "
           "(the library was built without TLS)", r->url);
    else
      fail(r, old, SL_CLOSE_ERROR, err, "cannot open a connection to %s: %s", r->url,
           sl_strerror(err));
    return;
  }
  r->conn = c;
  /* The old connection keeps no tie to the request: its close is silent. */
  sl__conn_set_proto(old, NULL, NULL);
  old->fn = NULL;
  old->data = NULL;
  sl_conn_close_with(old, SL_CLOSE_NOW, SL_CLOSE_LOCAL);
  if (sl__conn_closing(c)) return; /* reported at SL_EV_CLOSE */
  int rc = queue_request(r, c);
  if (rc)
    fail(r, c, SL_CLOSE_ERROR, rc, "cannot send the request to %s: %s", r->url,
         sl_strerror(rc));
}

/* ---- redirects ------------------------------------------------------ */

static int is_redirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 ||
         status == 308;
}

/* Follow the Location `loc` (borrowed from the response head). */
static void follow(struct sl_http_req *r, sl_conn *c, int status, sl_str loc) {
  if (r->redirects >= r->max_redirects) {
    fail(r, c, SL_CLOSE_ERROR, SL_EHTTP, "too many redirects: more than %d, last from %s",
         r->max_redirects, r->url);
    return;
  }
  if (loc.len == 0 || !clean_target(loc.ptr, loc.len)) {
    fail(r, c, SL_CLOSE_PROTOCOL, SL_EHTTP, "bad Location in a %d from %s", status, r->url);
    return;
  }
  /* Resolve against the current URL (RFC 3986 section 5.2, without
   * dot-segment removal: the server normalises its own paths). */
  size_t cap = strlen(r->url) + loc.len + 16;
  char *abs = sl__alloc(cap, SL_MEM_META);
  if (abs == NULL) {
    fail(r, c, SL_CLOSE_ERROR, SL_ENOMEM, "out of memory following a redirect");
    return;
  }
  size_t scheme = 0; /* a scheme is tchars up to ':' (no '/', '?', '#') */
  while (scheme < loc.len && is_tchar((unsigned char)loc.ptr[scheme])) scheme++;
  size_t auth_len = strlen(r->url) - strlen(r->target); /* "http://h:p" */
  if (scheme < loc.len && loc.ptr[scheme] == ':' && scheme > 0) {
    snprintf(abs, cap, "%.*s", (int)loc.len, loc.ptr); /* absolute */
  } else if (loc.len >= 2 && loc.ptr[0] == '/' && loc.ptr[1] == '/') {
    snprintf(abs, cap, "%s:%.*s", r->tls ? "https" : "http", (int)loc.len, loc.ptr);
  } else if (loc.ptr[0] == '/') {
    snprintf(abs, cap, "%.*s%.*s", (int)auth_len, r->url, (int)loc.len, loc.ptr);
  } else {
    /* "?q" keeps the path; "name" replaces the last path segment. */
    size_t keep = strcspn(r->target, "?");
    if (loc.ptr[0] != '?')
      while (keep > 0 && r->target[keep - 1] != '/') keep--;
    snprintf(abs, cap, "%.*s%.*s%.*s", (int)auth_len, r->url, (int)keep, r->target,
             (int)loc.len, loc.ptr);
  }
  struct url_parts u;
  int rc = split_url(abs, &u);
  if (rc) {
    fail(r, c, SL_CLOSE_PROTOCOL, SL_EHTTP, "bad redirect from %s to %.200s", r->url, abs);
    sl__free(abs, cap, SL_MEM_META);
    return;
  }
  /* An origin is scheme, host and port (RFC 6454). */
  int same_origin = u.tls == r->tls && strcasecmp(u.host, r->host) == 0 && u.port == r->port;
  rc = apply_url(r, &u); /* u.target points into abs */
  sl__free(abs, cap, SL_MEM_META);
  if (rc != 0) {
    fail(r, c, SL_CLOSE_ERROR, rc, "out of memory following a redirect");
    return;
  }
  if (u.has_userinfo) {
    if (set_str(&r->user, u.user, strlen(u.user)) ||
        set_str(&r->pass, u.pass, strlen(u.pass))) {
      fail(r, c, SL_CLOSE_ERROR, SL_ENOMEM, "out of memory following a redirect");
      return;
    }
    r->auth_kind = AUTH_NONE;
  } else if (!same_origin) {
    /* Never hand one origin's credentials to another. */
    free_str(&r->user);
    free_str(&r->pass);
    r->auth_kind = AUTH_NONE;
  }
  /* RFC 9110 15.4.4: 303 continues with GET (HEAD stays HEAD); 15.4.2 and
   * 15.4.3 let 301 and 302 do the same for POST, which every browser does.
   * 307 and 308 must repeat the method and the body. */
  if ((status == 303 && strcmp(r->method, "HEAD") != 0) ||
      ((status == 301 || status == 302) && strcmp(r->method, "POST") == 0)) {
    if (set_str(&r->method, "GET", 3) != 0) {
      fail(r, c, SL_CLOSE_ERROR, SL_ENOMEM, "out of memory following a redirect");
      return;
    }
    if (r->body) sl__free(r->body, r->body_len, SL_MEM_META);
    r->body = NULL;
    r->body_len = 0;
  }
  r->redirects++;
  r->auth_tries = 0;
  next_hop(r, c);
}

/* ---- authentication ------------------------------------------------- */

/* 1 when the WWW-Authenticate value `v` offers the Basic scheme. The
 * value is a list of challenges (RFC 9110 section 11.6.1): a scheme name
 * is a token at the start or after a comma that is not followed by '='
 * (that would be a parameter). Quoted strings are skipped, so a realm
 * that says "basic" is not mistaken for an offer: sending Basic to a
 * server that did not ask for it would give the password away. */
static int offers_basic(sl_str v) {
  const char *p = v.ptr, *e = v.ptr + v.len;
  int at_item = 1;
  while (p < e) {
    if (*p == '"') {
      for (p++; p < e && *p != '"'; p++)
        if (*p == '\\' && p + 1 < e) p++;
      p++;
      at_item = 0;
      continue;
    }
    if (*p == ',') {
      at_item = 1;
      p++;
      continue;
    }
    if (!is_tchar((unsigned char)*p)) {
      p++;
      continue;
    }
    const char *t = p;
    while (p < e && is_tchar((unsigned char)*p)) p++;
    const char *q = p;
    while (q < e && (*q == ' ' || *q == '\t')) q++;
    int param = q < e && *q == '=';
    if (at_item && !param && p - t == 5 && strncasecmp(t, "basic", 5) == 0) return 1;
    at_item = 0; /* what follows a scheme, a name or a value is not a scheme */
  }
  return 0;
}

/* Answer a 401 with credentials on a new connection. Returns 1 when the
 * retry started (or failed with its own error), 0 when the challenge
 * cannot or must not be answered again; r->msg then says why. */
static int answer_challenge(struct sl_http_req *r, sl_conn *c, const sl_http_msg *m) {
  sl_digest_challenge ch;
  int digest = 0, basic = 0, unsupported = 0;
  for (size_t i = 0; i < m->num_headers; i++) {
    const sl_http_header *h = &m->headers[i];
    if (h->name.len != 16 || strncasecmp(h->name.ptr, "WWW-Authenticate", 16) != 0)
      continue;
    if (!digest) {
      int d = sl__http_digest_challenge(h->value, &ch);
      if (d == 0) digest = 1;
      else if (d == -2) unsupported = 1;
    }
    if (offers_basic(h->value)) basic = 1;
  }
  if (digest) {
    /* A second Digest 401 means wrong credentials, unless the server
     * says only the nonce expired (stale=true). */
    if ((r->auth_kind == AUTH_DIGEST && !ch.stale) || r->auth_tries >= MAX_AUTH_TRIES) {
      if (ch.stale)
        snprintf(r->msg, sizeof(r->msg),
                 "authentication failed: %s still calls the nonce stale after %d answers",
                 r->url, r->auth_tries);
      else
        snprintf(r->msg, sizeof(r->msg),
                 "authentication failed: %s refused the Digest credentials of user \"%s\"",
                 r->url, r->user);
      return 0;
    }
    r->ch = ch;
    r->nc = 0;
    r->auth_kind = AUTH_DIGEST;
  } else if (basic) {
    if (r->auth_kind != AUTH_NONE) {
      snprintf(r->msg, sizeof(r->msg),
               "authentication failed: %s refused the %s credentials of user \"%s\"",
               r->url, r->auth_kind == AUTH_BASIC ? "Basic" : "Digest", r->user);
      return 0;
    }
    r->auth_kind = AUTH_BASIC;
  } else {
    snprintf(r->msg, sizeof(r->msg),
             "authentication failed: %s offers no challenge we can answer%s", r->url,
             unsupported ? " (Digest with an algorithm other than MD5, or without qop=auth)"
                         : " (neither Digest nor Basic)");
    return 0;
  }
  r->auth_tries++;
  next_hop(r, c);
  return 1;
}

/* ---- receiving ------------------------------------------------------ */

static void deliver_piece(sl_conn *c, const char *p, size_t n) {
  sl_str s = {p, n};
  if (c->fn) c->fn(c, SL_EV_HTTP_CHUNK, &s);
}

/* The body is complete: the empty piece, then close. */
static void finish(struct sl_http_req *r, sl_conn *c) {
  r->state = ST_DONE;
  sl__conn_set_deadline(c, 0);
  if (sl_conn_is_closing(c)) return;
  deliver_piece(c, "", 0);
  sl_conn_close_with(c, SL_CLOSE_NOW, SL_CLOSE_LOCAL);
}

static void arm_body_timer(struct sl_http_req *r, sl_conn *c) {
  if (r->body_ms != UINT32_MAX) sl__conn_set_deadline(c, c->mgr->now + r->body_ms);
}

/* Parse heads until the final one; returns 1 when the body does not
 * follow on this connection (waiting for more bytes, redirected, failed,
 * finished without a body). */
static int read_head(struct sl_http_req *r, sl_conn *c) {
  sl_http_limits lim = {0, r->max_head, 0};
  sl_http_msg m;
  int rc;
  lim.max_request_line = r->max_head < 8192 ? r->max_head : 8192;
  for (;;) {
    size_t len;
    const char *p = sl_conn_in(c, &len);
    rc = sl__http_parse_response(p, len, &lim, &m);
    if (rc == 0) return 1;
    if (rc < 0) {
      if (len > r->max_head)
        fail(r, c, SL_CLOSE_PROTOCOL, SL_EHTTP,
             "response head from %s is larger than max_head (%zu bytes)", r->url,
             r->max_head);
      else
        fail(r, c, SL_CLOSE_PROTOCOL, SL_EHTTP, "malformed response head from %s", r->url);
      return 1;
    }
    if (m.status >= 200) break;
    if (m.status == 101) {
      fail(r, c, SL_CLOSE_PROTOCOL, SL_EHTTP, "unexpected 101 from %s", r->url);
      return 1;
    }
    sl_conn_consume(c, (size_t)rc); /* 100 Continue, 103 Early Hints */
  }
  const sl_str *loc = sl__http_header(&m, "Location");
  if (is_redirect(m.status) && loc && r->max_redirects >= 0) {
    follow(r, c, m.status, *loc);
    return 1;
  }
  if (m.status == 401 && r->user) {
    if (answer_challenge(r, c, &m)) return 1;
    /* The 401 is shown, its body is not: the request failed. */
    sl__conn_set_deadline(c, 0);
    r->state = ST_FAILED;
    if (c->fn) c->fn(c, SL_EV_HTTP_MSG, &m);
    char why[sizeof(r->msg)];
    memcpy(why, r->msg, sizeof(why));
    fail(r, c, SL_CLOSE_ERROR, SL_EAUTH, "%s", why);
    return 1;
  }
  /* The final response. Framing: RFC 9112 section 6.3. */
  int no_body = r->head_req || m.status == 204 || m.status == 304 ||
                (!m.chunked && m.content_length == 0);
  if (no_body) r->state = ST_DONE;
  else if (m.chunked) r->state = ST_CHUNKED;
  else if (m.content_length > 0) r->state = ST_FIXED;
  else r->state = ST_UNTIL_CLOSE;
  r->left = m.content_length > 0 ? (unsigned long long)m.content_length : 0;
  sl__chunked_init(&r->chunk);
  sl__conn_set_deadline(c, 0);
  if (c->fn) c->fn(c, SL_EV_HTTP_MSG, &m);
  if (sl_conn_is_closing(c)) return 1;
  sl_conn_consume(c, (size_t)rc);
  if (no_body) {
    finish(r, c);
    return 1;
  }
  arm_body_timer(r, c);
  return 0;
}

/* Deliver the body bytes in the input buffer. All of them are delivered
 * even if the handler pauses reading: they are already here (at most
 * recv_max), and nothing would resume the delivery of what stayed. */
static void read_body(struct sl_http_req *r, sl_conn *c) {
  int any = 0;
  while (!sl_conn_is_closing(c)) {
    size_t len;
    const char *p = sl_conn_in(c, &len);
    if (len == 0) break;
    any = 1;
    if (r->state == ST_CHUNKED) {
      const char *d;
      size_t dl;
      int done;
      int n = sl__chunked_decode(&r->chunk, p, len, &d, &dl, &done);
      if (n < 0) {
        fail(r, c, SL_CLOSE_PROTOCOL, SL_EHTTP, "malformed chunked body from %s", r->url);
        return;
      }
      if (dl) {
        r->got += dl;
        deliver_piece(c, d, dl);
        if (sl_conn_is_closing(c)) return;
      }
      sl_conn_consume(c, (size_t)n);
      if (done) {
        finish(r, c);
        return;
      }
      if (n == 0) break;
    } else {
      size_t take = len;
      if (r->state == ST_FIXED && take > r->left) take = (size_t)r->left;
      r->got += take;
      deliver_piece(c, p, take);
      if (sl_conn_is_closing(c)) return;
      sl_conn_consume(c, take);
      if (r->state == ST_FIXED) {
        r->left -= take;
        if (r->left == 0) {
          finish(r, c);
          return;
        }
      }
    }
  }
  if (any && !sl_conn_is_closing(c)) arm_body_timer(r, c);
}

static void on_timeout(struct sl_http_req *r, sl_conn *c, int reason) {
  switch (r->state) {
    case ST_CONNECT:
      if (sl__conn_handshaking(c))
        fail(r, c, SL_CLOSE_TIMEOUT, SL_ETIMEDOUT, "TLS handshake with %s timed out",
             r->url);
      else
        fail(r, c, SL_CLOSE_TIMEOUT, SL_ETIMEDOUT, "connect to %s timed out after %u ms",
             r->url, r->connect_ms);
      return;
    case ST_HEAD:
      if (reason == SL_CLOSE_STALL)
        fail(r, c, SL_CLOSE_STALL, SL_ETIMEDOUT,
             "%s stopped reading the request for %u ms", r->url, c->lim.stall_ms);
      else
        fail(r, c, SL_CLOSE_TIMEOUT, SL_ETIMEDOUT, "no response head from %s within %u ms",
             r->url, r->header_ms);
      return;
    case ST_FIXED:
    case ST_CHUNKED:
    case ST_UNTIL_CLOSE:
      if (reason == SL_CLOSE_TIMEOUT && sl__conn_paused(c)) {
        /* The application holds the stream back: not the server's fault. */
        arm_body_timer(r, c);
        return;
      }
      fail(r, c, SL_CLOSE_TIMEOUT, SL_ETIMEDOUT,
           "body from %s stalled: no bytes for %u ms (%llu received)", r->url, r->body_ms,
           r->got);
      return;
    default:
      sl_conn_close_with(c, SL_CLOSE_NOW, reason);
      return;
  }
}

/* The current connection is going: end the body when the server's close
 * was its end, or say what was missing. */
static void on_close(struct sl_http_req *r, sl_conn *c) {
  if (r->state == ST_DONE || r->state == ST_FAILED || r->error_sent) return;
  if (c->close_reason == SL_CLOSE_LOCAL || c->close_reason == SL_CLOSE_SHUTDOWN) return;
  if (r->state == ST_UNTIL_CLOSE && c->close_reason == SL_CLOSE_PEER && !c->err) {
    r->state = ST_DONE;
    deliver_piece(c, "", 0);
    return;
  }
  if (c->err) {
    describe_core_error(r, c, NULL);
  } else if (r->state == ST_CONNECT || r->state == ST_HEAD) {
    c->err = SL_EHTTP;
    snprintf(r->msg, sizeof(r->msg), "%s closed the connection without a response",
             r->url);
  } else if (r->state == ST_FIXED) {
    c->err = SL_EHTTP;
    snprintf(r->msg, sizeof(r->msg),
             "%s closed the connection %llu bytes before the end of the body", r->url,
             r->left);
  } else {
    c->err = SL_EHTTP;
    snprintf(r->msg, sizeof(r->msg),
             "%s closed the connection before the end of the chunked body", r->url);
  }
  deliver_error(r, c);
}

static int client_ev(sl_conn *c, int ev, void *ev_data) {
  struct sl_http_req *r = c->pdata;
  switch (ev) {
    case SL_EV_CONNECT:
      r->state = ST_HEAD;
      if (r->header_ms != UINT32_MAX)
        sl__conn_set_deadline(c, c->mgr->now + r->header_ms);
      return 1;
    case SL_EV_READ:
      if (r->state == ST_HEAD && read_head(r, c)) return 1;
      if (r->state == ST_FIXED || r->state == ST_CHUNKED || r->state == ST_UNTIL_CLOSE)
        read_body(r, c);
      return 1;
    case SL_EV_TIMEOUT:
      on_timeout(r, c, *(int *)ev_data);
      return 1;
    case SL_EV_ERROR:
      /* From the core (socket, resolve, connect): name the peer. */
      if (!r->error_sent) describe_core_error(r, c, ev_data);
      deliver_error(r, c);
      return 1;
    case SL_EV_CLOSE:
      on_close(r, c);
      return 0;
    case SL_EV_POLL:
    case SL_EV_WAKEUP:
      return 0;
    default:
      return ev >= SL_EV_USER ? 0 : 1;
  }
}

static void client_free(sl_conn *c) {
  struct sl_http_req *r = c->pdata;
  c->pdata = NULL;
  /* A detached connection no longer owns the request. */
  if (r && r->conn == c) req_free(r);
}

/* ---- public --------------------------------------------------------- */

/* Copy and check the options into `r`. */
static int take_opts(struct sl_http_req *r, const sl_http_client_opts *o,
                     const struct url_parts *u) {
  const char *method = o->method ? o->method : "GET";
  size_t ml = strlen(method);
  if (ml == 0 || ml > 32) return SL_EINVAL;
  for (size_t i = 0; i < ml; i++)
    if (!is_tchar((unsigned char)method[i])) return SL_EINVAL;
  if (!sl__http_header_lines_ok(o->headers)) return SL_EINVAL;
  const char *user = o->user, *pass = o->pass;
  if (user == NULL && u->has_userinfo) {
    user = u->user;
    pass = u->pass;
  }
  if ((user && (strlen(user) >= CRED_MAX || has_ctl(user))) ||
      (pass && (strlen(pass) >= CRED_MAX || has_ctl(pass))))
    return SL_EINVAL;
  if (set_str(&r->method, method, ml) ||
      (o->headers && set_str(&r->headers, o->headers, strlen(o->headers))) ||
      (user && set_str(&r->user, user, strlen(user))) ||
      (user && set_str(&r->pass, pass ? pass : "", pass ? strlen(pass) : 0)))
    return SL_ENOMEM;
  if (o->body_len) {
    if (o->body == NULL) return SL_EINVAL;
    r->body = sl__alloc(o->body_len, SL_MEM_META);
    if (r->body == NULL) return SL_ENOMEM;
    memcpy(r->body, o->body, o->body_len);
    r->body_len = o->body_len;
  }
  r->head_req = strcmp(r->method, "HEAD") == 0;
  r->max_redirects = o->max_redirects == 0 ? DEFAULT_MAX_REDIRECTS
                     : o->max_redirects < 0 ? -1
                                            : o->max_redirects;
  r->connect_ms = o->connect_timeout_ms ? o->connect_timeout_ms : DEFAULT_CONNECT_MS;
  r->header_ms = o->header_timeout_ms ? o->header_timeout_ms : DEFAULT_HEADER_MS;
  r->body_ms = o->body_timeout_ms ? o->body_timeout_ms : DEFAULT_BODY_MS;
  r->max_head = o->max_head ? o->max_head : DEFAULT_MAX_HEAD;
  r->limits = o->limits;
  if (o->tls) {
    if (sl__tls_server_ok(o->tls) == 0) return SL_EINVAL; /* a server's */
    r->tls_ctx = sl__tls_ctx_ref(o->tls);
  }
  return 0;
}

sl_http_req *sl_http_request(sl_mgr *m, const char *url,
                             const sl_http_client_opts *opts, sl_handler fn,
                             void *data, int *err) {
  static const sl_http_client_opts none;
  const sl_http_client_opts *o = opts ? opts : &none;
  struct url_parts u;
  struct sl_http_req *r = NULL;
  sl_conn *c = NULL;
  int rc = url ? split_url(url, &u) : SL_EURL;
  if (rc) goto out;
  r = sl__calloc(sizeof(*r), SL_MEM_META);
  if (r == NULL) {
    rc = SL_ENOMEM;
    goto out;
  }
  r->mgr = m;
  if ((rc = take_opts(r, o, &u)) != 0 || (rc = apply_url(r, &u)) != 0) goto fail;
  c = open_conn(r, fn, data, &rc);
  if (c == NULL) goto fail;
  r->conn = c;
  /* A request that cannot be queued (over send_max) changes nothing: the
   * connection goes away unseen. */
  if (!sl__conn_closing(c) && (rc = queue_request(r, c)) != 0) goto fail;
  return r;

fail:
  if (c) {
    r->conn = NULL;
    sl__conn_set_proto(c, NULL, NULL);
    c->fn = NULL;
    c->data = NULL;
    sl_conn_close_with(c, SL_CLOSE_NOW, SL_CLOSE_LOCAL);
  }
  req_free(r);
out:
  if (err) *err = rc;
  return NULL;
}

sl_conn *sl_http_req_conn(const sl_http_req *r) { return r->conn; }

const char *sl_http_req_url(const sl_http_req *r) { return r->url; }

sl_http_req *sl_http_req_of(const sl_conn *c) {
  struct sl_http_req *r = c->proto == &client_proto ? c->pdata : NULL;
  return r && r->conn == c ? r : NULL;
}

void sl_http_req_cancel(sl_http_req *r) {
  if (r->conn) sl_conn_close_with(r->conn, SL_CLOSE_NOW, SL_CLOSE_LOCAL);
}
