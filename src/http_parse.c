/*
 * HTTP/1.1 message syntax (RFC 9112) and the semantics the framing depends
 * on (RFC 9110). Section numbers below refer to RFC 9112 unless another RFC
 * is named.
 *
 * The head parsers are stateless, like picohttpparser: each call parses the
 * whole buffer from its start, so there is no state to get wrong between
 * calls and a fuzzer can check any buffer on its own. The cost of parsing a
 * slowly arriving head again and again is bounded by max_head (16 KiB by
 * default), because the parser never looks further than that.
 *
 * Every scan compares its cursor with an end pointer before reading, and an
 * end pointer is never beyond buf + len: that is the whole over-read
 * argument, and the tests check it with a guard page after the input.
 */
#include "http_parse.h"

#include <limits.h>
#include <string.h>

/* Character classes, one table lookup per byte. */
enum {
  C_TCHAR = 1, /* token (section 5.6.2 of RFC 9110): header names, methods */
  C_VCHAR = 2, /* field-vchar: VCHAR and obs-text 0x80-0xff; also what a
                  request-target may contain (controls, SP and DEL never) */
  C_HEX = 4,
  C_HOST = 8 /* reg-name, IP-literal and port characters (RFC 3986) */
};

static const unsigned char cls[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 11, 2, 3, 11, 11, 11, 11, 10, 10, 11, 11, 10, 11, 11, 2,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 10, 10, 2, 10, 2, 2,
    2, 15, 15, 15, 15, 15, 15, 11, 11, 11, 11, 11, 11, 11, 11, 11,
    11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 10, 2, 10, 3, 11,
    3, 15, 15, 15, 15, 15, 15, 11, 11, 11, 11, 11, 11, 11, 11, 11,
    11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 2, 3, 2, 11, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

#define IS(c, k) (cls[(unsigned char)(c)] & (k))
#define IS_WS(c) ((c) == ' ' || (c) == '\t')

#define DEFAULT_MAX_REQUEST_LINE 8192
#define DEFAULT_MAX_HEAD 16384
#define DEFAULT_MAX_HEADERS 64

/* Methods are case-sensitive (RFC 9110 section 9.1); no accepted one is
 * longer than this, so a longer token is known to be unsupported before
 * its end arrives. */
#define METHOD_MAX 7

static const char slash[] = "/";

static int hexval(int c) {
  return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* Case-insensitive equality of `s` and the NUL-terminated `lit`. */
static int ieq(sl_str s, const char *lit) {
  size_t i = 0;
  for (; i < s.len; i++)
    if (lit[i] == '\0' || lower((unsigned char)s.ptr[i]) != lower((unsigned char)lit[i]))
      return 0;
  return lit[i] == '\0';
}

/* The public face of ieq (include/sluice.h). */
int sl_strcaseeq(const char *a, size_t alen, const char *b) {
  sl_str s = {a, alen};
  return a != NULL && b != NULL && ieq(s, b);
}

/* 1 when [p, e) begins with `lit`, compared case-insensitively. */
static int prefix_ieq(const char *p, const char *e, const char *lit) {
  for (; *lit; p++, lit++)
    if (p == e || lower((unsigned char)*p) != (unsigned char)*lit) return 0;
  return 1;
}

static int eq(sl_str s, const char *lit) {
  size_t n = strlen(lit);
  return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

/* Take the next non-empty element of the comma-separated list `*l` into
 * `*tok`, trimmed of OWS, and advance `*l` past it. Empty elements are
 * skipped as section 5.6.1 of RFC 9110 requires. Returns 0 at the end. */
static int next_elem(sl_str *l, sl_str *tok) {
  const char *p = l->ptr, *e = p + l->len;
  while (p < e && (IS_WS(*p) || *p == ',')) p++;
  const char *s = p;
  while (p < e && *p != ',') p++;
  const char *t = p;
  while (t > s && IS_WS(t[-1])) t--;
  tok->ptr = s;
  tok->len = (size_t)(t - s);
  l->ptr = p;
  l->len = (size_t)(e - p);
  return s < e;
}

void sl__http_limits_default(sl_http_limits *l) {
  l->max_request_line = DEFAULT_MAX_REQUEST_LINE;
  l->max_head = DEFAULT_MAX_HEAD;
  l->max_headers = DEFAULT_MAX_HEADERS;
}

static void reset_msg(sl_http_msg *m) {
  static const sl_str empty = {NULL, 0};
  m->method = m->uri = m->path = m->query = m->proto = m->reason = empty;
  m->body = empty;
  m->status = 0;
  m->version_minor = 0;
  m->num_headers = 0;
  m->head_len = 0;
  m->content_length = -1;
  m->chunked = m->keep_alive = m->expect_continue = 0;
  m->upgrade_websocket = 0;
}

/* "HTTP/" DIGIT "." DIGIT at p (section 2.3; the name is case-sensitive).
 * Returns the bytes it took (8), 0 when [p, q) ends first and !complete,
 * -SL_PE_VERSION when malformed, -SL_PE_VERSION_NS when well-formed but
 * neither 1.0 nor 1.1. */
static int version(const char *p, const char *q, int complete, sl_http_msg *m) {
  static const char pat[] = "HTTP/1.1";
  for (int i = 0; i < 8; i++) {
    if (p + i == q) return complete ? -SL_PE_VERSION : 0;
    int c = (unsigned char)p[i];
    if (i == 5 || i == 7) {
      if (c < '0' || c > '9') return -SL_PE_VERSION;
    } else if (c != pat[i]) {
      return -SL_PE_VERSION;
    }
  }
  if (p[5] != '1' || (p[7] != '0' && p[7] != '1')) return -SL_PE_VERSION_NS;
  m->version_minor = p[7] - '0';
  m->proto.ptr = p;
  m->proto.len = 8;
  return 8;
}

static int known_method(sl_str m) {
  static const char *const names[] = {"GET",    "HEAD",    "POST", "PUT",
                                      "DELETE", "OPTIONS", "PATCH"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (eq(m, names[i])) return 1;
  return 0;
}

/* Check the request line content [p, q), without its line ending (section
 * 3). `complete` is 0 when the line has not ended yet: running out of bytes
 * is then not an error. Returns 0 or -SL_PE_*. */
static int request_line(const char *p, const char *q, int complete,
                        sl_http_msg *m) {
  const char *s = p;
  while (p < q && IS(*p, C_TCHAR)) {
    if (++p - s > METHOD_MAX) return -SL_PE_METHOD;
  }
  if (p == q) return complete ? -SL_PE_LINE : 0;
  if (*p != ' ' || p == s) return -SL_PE_LINE;
  m->method.ptr = s;
  m->method.len = (size_t)(p - s);
  if (!known_method(m->method)) return -SL_PE_METHOD;

  /* Exactly one SP between the parts: section 3 allows a server to accept
   * more, but a lenient split is where request smuggling starts. */
  s = ++p;
  while (p < q && IS(*p, C_VCHAR)) p++;
  if (p == q) return complete ? -SL_PE_LINE : 0;
  if (*p != ' ' || p == s) return p == s ? -SL_PE_LINE : -SL_PE_TARGET;
  m->uri.ptr = s;
  m->uri.len = (size_t)(p - s);

  int r = version(++p, q, complete, m);
  if (r <= 0) return r;
  p += r;
  if (p != q) return -SL_PE_LINE;
  return 0;
}

/* Split the request-target (section 3.2) into path and query. Returns 0 or
 * -SL_PE_*. */
static int request_target(sl_http_msg *m) {
  const char *t = m->uri.ptr, *e = t + m->uri.len, *p = t;
  if (*t == '*' && m->uri.len == 1) {
    if (!eq(m->method, "OPTIONS")) return -SL_PE_STAR;
    m->path = m->uri;
    return 0;
  }
  if (*t != '/') {
    /* absolute-form: what proxies send, and servers MUST accept (3.2.2) */
    size_t n = prefix_ieq(t, e, "http://") ? 7 : prefix_ieq(t, e, "https://") ? 8 : 0;
    if (n == 0) return -SL_PE_TARGET;
    const char *a = t + n;
    for (p = a; p < e && *p != '/' && *p != '?'; p++)
      if (!IS(*p, C_HOST)) return -SL_PE_TARGET; /* also userinfo '@' (RFC 9110 4.2.4) */
    if (p == a) return -SL_PE_TARGET;
  }
  const char *qm = memchr(p, '?', (size_t)(e - p));
  const char *pe = qm ? qm : e;
  if (pe == p) {
    m->path.ptr = slash;
    m->path.len = 1;
  } else {
    m->path.ptr = p;
    m->path.len = (size_t)(pe - p);
  }
  if (qm) {
    m->query.ptr = qm + 1;
    m->query.len = (size_t)(e - qm - 1);
  }
  return 0;
}

/* The status line of a response (section 4); same contract as
 * request_line, but every error is -1. */
static int status_line(const char *p, const char *q, int complete,
                       sl_http_msg *m) {
  int r = version(p, q, complete, m);
  if (r < 0) return -1;
  if (r == 0) return 0;
  p += r;
  if (p == q) return complete ? -1 : 0;
  if (*p++ != ' ') return -1;
  int st = 0;
  for (int i = 0; i < 3; i++, p++) {
    if (p == q) return complete ? -1 : 0;
    if (*p < '0' || *p > '9') return -1;
    st = st * 10 + (*p - '0');
  }
  if (st < 100) return -1;
  m->status = st;
  /* The SP before an empty reason is often missing ("HTTP/1.1 200\r\n");
   * picohttpparser accepts that too. */
  if (p == q) return 0;
  if (*p++ != ' ') return -1;
  m->reason.ptr = p;
  for (; p < q; p++)
    if (!IS(*p, C_VCHAR) && !IS_WS(*p)) return -1;
  m->reason.len = (size_t)(p - m->reason.ptr);
  return 0;
}

/* Header field lines from p up to and including the empty line (section
 * 5). Returns 1 and sets *next past the empty line, 0 when [p, end) ends
 * first, -SL_PE_* on bad syntax (400) or on one line too many (431). */
static int headers(const char *p, const char *end, size_t max_headers,
                   sl_http_msg *m, const char **next) {
  for (;;) {
    if (p == end) return 0;
    if (*p == '\r' || *p == '\n') {
      if (*p == '\r') {
        if (++p == end) return 0;
        if (*p != '\n') return -SL_PE_BARE_CR;
      }
      *next = p + 1;
      return 1;
    }
    if (m->num_headers == max_headers) return -SL_PE_TOO_MANY;
    /* A line starting with SP or HTAB is obs-fold, or whitespace before the
     * first field; both are rejected (5.2, 2.2): an empty name fails here. */
    const char *s = p;
    while (p < end && IS(*p, C_TCHAR)) p++;
    if (p == end) return 0;
    if (*p != ':' || p == s) {
      if (p == s && IS_WS(*p)) return -SL_PE_FOLD;
      if (p == s && *p == ':') return -SL_PE_NAME_EMPTY;
      if (IS_WS(*p)) return -SL_PE_NAME_WS; /* "Name :" (5.1) */
      if (*p == '\r' || *p == '\n') return -SL_PE_NO_COLON;
      return -SL_PE_NAME_CHAR;
    }
    sl_http_header *h = &m->headers[m->num_headers];
    h->name.ptr = s;
    h->name.len = (size_t)(p - s);
    for (p++; p < end && IS_WS(*p); p++) {
    }
    const char *v = p, *ve = p;
    for (; p < end; p++) {
      if (IS(*p, C_VCHAR)) ve = p + 1;
      else if (!IS_WS(*p)) break;
    }
    if (p == end) return 0;
    if (*p == '\r') {
      if (++p == end) return 0;
      if (*p != '\n') return -SL_PE_BARE_CR;
    } else if (*p != '\n') {
      return -SL_PE_VALUE_CHAR; /* NUL and other controls (5.5) */
    }
    p++;
    h->value.ptr = v;
    h->value.len = (size_t)(ve - v);
    m->num_headers++;
  }
}

/* Content-Length = 1*DIGIT (RFC 9110 8.6). */
static int content_length(sl_str v, long long *out) {
  long long n = 0;
  if (v.len == 0) return -1;
  for (size_t i = 0; i < v.len; i++) {
    int c = (unsigned char)v.ptr[i];
    if (c < '0' || c > '9') return -1;
    if (n > (LLONG_MAX - (c - '0')) / 10) return -1;
    n = n * 10 + (c - '0');
  }
  *out = n;
  return 0;
}

/* The fields that decide framing and connection handling. Returns 0 or
 * -SL_PE_* (the response parser turns any error into -1). */
static int interpret(sl_http_msg *m, int is_request) {
  int ncl = 0, nhost = 0, te = 0, te_chunked = 0, te_last_chunked = 0;
  int te_other = 0, c_close = 0, c_keep = 0, c_upgrade = 0, u_ws = 0;
  sl_str list, tok;
  for (size_t i = 0; i < m->num_headers; i++) {
    sl_str n = m->headers[i].name, v = m->headers[i].value;
    switch (n.len) {
      case 4:
        if (ieq(n, "host")) {
          nhost++;
          for (size_t k = 0; k < v.len; k++)
            if (!IS(v.ptr[k], C_HOST)) return -SL_PE_HOST;
        }
        break;
      case 6:
        if (ieq(n, "expect") && ieq(v, "100-continue")) m->expect_continue = 1;
        break;
      case 7:
        if (ieq(n, "upgrade"))
          for (list = v; next_elem(&list, &tok);)
            if (ieq(tok, "websocket")) u_ws = 1;
        break;
      case 10:
        if (ieq(n, "connection")) {
          for (list = v; next_elem(&list, &tok);) {
            if (ieq(tok, "close")) c_close = 1;
            else if (ieq(tok, "keep-alive")) c_keep = 1;
            else if (ieq(tok, "upgrade")) c_upgrade = 1;
          }
        }
        break;
      case 14:
        /* Even identical repeats are refused: 8.6 of RFC 9110 allows it,
         * and two framings are what smuggling needs. */
        if (ieq(n, "content-length")) {
          if (++ncl > 1) return -SL_PE_CL_DUP;
          if (content_length(v, &m->content_length) < 0) return -SL_PE_CL;
        }
        break;
      case 17:
        if (ieq(n, "transfer-encoding")) {
          te = 1;
          for (list = v; next_elem(&list, &tok);) {
            te_last_chunked = ieq(tok, "chunked");
            if (te_last_chunked) te_chunked++;
            else te_other = 1;
          }
        }
        break;
      default:
        break;
    }
  }
  if (te) {
    /* 6.1 and 6.3: TE with CL, TE in HTTP/1.0, chunked not last or twice
     * all mean the framing cannot be trusted; a coding we do not implement
     * before the final chunked is 501. A client only ever gets "chunked"
     * (we send no TE header), so a response allows nothing else. */
    if (ncl) return -SL_PE_TE_CL;
    if (m->version_minor == 0) return -SL_PE_TE_10;
    if (!te_last_chunked) return -SL_PE_TE_LAST;
    if (te_chunked > 1) return -SL_PE_TE_TWICE;
    if (te_other) return is_request ? -SL_PE_CODING : -1;
    m->chunked = 1;
  }
  if (is_request) {
    if (nhost > 1) return -SL_PE_HOST_DUP;
    if (nhost == 0 && m->version_minor == 1) return -SL_PE_NO_HOST;
    if (m->version_minor == 0) m->expect_continue = 0; /* RFC 9110 10.1.1 */
  } else {
    m->expect_continue = 0;
  }
  m->keep_alive = m->version_minor == 1 ? !c_close : (c_keep && !c_close);
  m->upgrade_websocket = u_ws && c_upgrade;
  return 0;
}

/* The part both heads share: limits, start line, fields, framing. Errors
 * are -SL_PE_* for a request and -1 for a response. */
static int parse_head(const char *buf, size_t len, const sl_http_limits *lim,
                      sl_http_msg *m, int is_request) {
  size_t max_line = DEFAULT_MAX_REQUEST_LINE, max_head = DEFAULT_MAX_HEAD;
  size_t max_headers = DEFAULT_MAX_HEADERS;
  if (lim && lim->max_request_line) max_line = lim->max_request_line;
  if (lim && lim->max_head) max_head = lim->max_head;
  if (lim && lim->max_headers) max_headers = lim->max_headers;
  if (max_headers > SL_HTTP_MAX_HEADERS) max_headers = SL_HTTP_MAX_HEADERS;
  if (max_head > INT_MAX) max_head = INT_MAX; /* head_len is returned as int */

  reset_msg(m);
  if (len == 0) return 0;

  /* Look no further than max_head: a head that has not ended by then is
   * too large whatever follows, so running out of this window with more
   * input available is 431 rather than "need more". */
  int big = len > max_head;
  int e431 = is_request ? -SL_PE_HEAD_BIG : -1, e400 = is_request ? -SL_PE_BARE_CR : -1;
  const char *end = buf + (big ? max_head : len), *p = buf;
#define INCOMPLETE (big ? e431 : 0)

  /* 2.2: ignore at least one empty line before a request line (some
   * clients send CRLF after a POST body). */
  if (is_request && *p == '\n') {
    p++;
  } else if (is_request && *p == '\r') {
    if (p + 1 == end) return INCOMPLETE;
    if (p[1] == '\n') p += 2;
  }

  /* The start line: content limited to max_line, then CRLF or LF. */
  const char *ls = p;
  const char *cend = (size_t)(end - ls) > max_line ? ls + max_line : end;
  while (p < cend && *p != '\r' && *p != '\n') p++;
  int complete = p < end && (*p == '\r' || *p == '\n');
  int r = is_request ? request_line(ls, p, complete, m)
                     : status_line(ls, p, complete, m);
  if (r < 0) return r;
  if (!complete) {
    if (p < end) return is_request ? -SL_PE_LINE_LONG : -1; /* stopped at max_line */
    return INCOMPLETE;
  }
  if (*p == '\r') {
    if (++p == end) return INCOMPLETE;
    if (*p != '\n') return e400;
  }
  p++;
  if (is_request && (r = request_target(m)) < 0) return r;

  r = headers(p, end, max_headers, m, &p);
  if (r < 0) return is_request ? r : -1;
  if (r == 0) return INCOMPLETE;
#undef INCOMPLETE
  m->head_len = (size_t)(p - buf);
  r = interpret(m, is_request);
  if (r < 0) return is_request ? r : -1;
  return (int)m->head_len;
}

static const struct {
  int status;
  const char *text;
} perrs[SL_PE_COUNT] = {
#define PE_ROW(id, status, text) [id] = {status, text},
    SL_HTTP_PERRS(PE_ROW)
#undef PE_ROW
};

const char *sl__http_perr_text(int why) {
  return why > 0 && why < SL_PE_COUNT ? perrs[why].text : perrs[0].text;
}

int sl__http_perr_status(int why) {
  return why > 0 && why < SL_PE_COUNT ? perrs[why].status : 0;
}

int sl__http_parse_request_why(const char *buf, size_t len,
                               const sl_http_limits *lim, sl_http_msg *out,
                               int *why) {
  int r = parse_head(buf, len, lim, out, 1);
  if (why) *why = r < 0 ? -r : SL_PE_NONE;
  return r < 0 ? -sl__http_perr_status(-r) : r;
}

int sl__http_parse_request(const char *buf, size_t len,
                           const sl_http_limits *lim, sl_http_msg *out) {
  return sl__http_parse_request_why(buf, len, lim, out, NULL);
}

int sl__http_parse_response(const char *buf, size_t len,
                            const sl_http_limits *lim, sl_http_msg *out) {
  int r = parse_head(buf, len, lim, out, 0);
  return r < 0 ? -1 : r;
}

const sl_str *sl__http_header(const sl_http_msg *m, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i < m->num_headers; i++)
    if (m->headers[i].name.len == n && ieq(m->headers[i].name, name))
      return &m->headers[i].value;
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Chunked decoder (section 7.1)                                       */
/* ------------------------------------------------------------------ */

/* Leading zeros are legal in a chunk size; more than this many digits is
 * only a way to make us consume framing without progress. */
#define CHUNK_DIGITS_MAX 64

enum {
  CH_SIZE0,    /* expecting the first hex digit of a size line */
  CH_SIZE,     /* in the size: more digits, BWS, ';' or CR */
  CH_EXT_WS,   /* BWS after the size: only more BWS or ';' may follow */
  CH_EXT,      /* in chunk extensions, up to CR (their content is ignored) */
  CH_SIZE_LF,  /* CR of the size line seen */
  CH_DATA,     /* `remaining` bytes of chunk data to go */
  CH_DATA_CR,  /* the CRLF that must follow chunk data */
  CH_DATA_LF,
  CH_TR_START, /* start of a trailer line, or of the final CRLF */
  CH_TR_NAME,
  CH_TR_VALUE,
  CH_TR_LF,    /* CR of a trailer line seen */
  CH_END_LF,   /* CR of the final CRLF seen */
  CH_DONE,
  CH_ERROR
};

void sl__chunked_init(sl_chunked *c) {
  c->state = CH_SIZE0;
  c->remaining = 0;
  c->line_len = 0;
  c->total = 0;
}

int sl__chunked_decode(sl_chunked *c, const char *buf, size_t len,
                       const char **data, size_t *data_len, int *done) {
  *data = NULL;
  *data_len = 0;
  *done = c->state == CH_DONE;
  if (c->state == CH_ERROR) return -1;
  if (len == 0 || c->state == CH_DONE) return 0;
  if (len > INT_MAX) len = INT_MAX; /* the return value is an int */

  const char *p = buf, *end = buf + len;
  while (p < end) {
    int ch = (unsigned char)*p;
    switch (c->state) {
      case CH_SIZE0:
        if (!IS(ch, C_HEX)) goto fail;
        c->remaining = (unsigned long long)hexval(ch);
        c->line_len = 1;
        c->state = CH_SIZE;
        break;
      case CH_SIZE:
        if (IS(ch, C_HEX)) {
          /* Checked before the shift: at most 2^58 * 16 + 15, no wrap. */
          if (c->remaining > SL_CHUNK_SIZE_MAX >> 4 ||
              ++c->line_len > CHUNK_DIGITS_MAX)
            goto fail;
          c->remaining = c->remaining * 16 + (unsigned long long)hexval(ch);
          if (c->remaining > SL_CHUNK_SIZE_MAX) goto fail;
          break;
        }
        c->line_len = 1;
        if (IS_WS(ch)) c->state = CH_EXT_WS;
        else if (ch == ';') c->state = CH_EXT;
        else if (ch == '\r') c->state = CH_SIZE_LF;
        else goto fail;
        break;
      case CH_EXT_WS:
        if (ch == ';') c->state = CH_EXT;
        else if (!IS_WS(ch)) goto fail; /* "5 \r\n": BWS only before ';' */
        if (++c->line_len > SL_CHUNK_EXT_MAX) goto fail;
        break;
      case CH_EXT:
        if (ch == '\r') {
          c->state = CH_SIZE_LF;
          break;
        }
        if (!IS(ch, C_VCHAR) && !IS_WS(ch)) goto fail;
        if (++c->line_len > SL_CHUNK_EXT_MAX) goto fail;
        break;
      case CH_SIZE_LF:
        if (ch != '\n') goto fail;
        c->line_len = 0;
        c->state = c->remaining ? CH_DATA : CH_TR_START;
        break;
      case CH_DATA: {
        size_t n = (size_t)(end - p);
        if (c->remaining < n) n = (size_t)c->remaining;
        *data = p;
        *data_len = n;
        c->remaining -= n;
        c->total += n;
        if (c->remaining == 0) c->state = CH_DATA_CR;
        return (int)(p + n - buf);
      }
      case CH_DATA_CR:
        if (ch != '\r') goto fail;
        c->state = CH_DATA_LF;
        break;
      case CH_DATA_LF:
        if (ch != '\n') goto fail;
        c->state = CH_SIZE0;
        break;
      default:
        /* The trailer section (7.1.2): field lines, then CRLF; counted
         * against SL_CHUNK_TRAILER_MAX as a whole. */
        if (++c->line_len > SL_CHUNK_TRAILER_MAX) goto fail;
        switch (c->state) {
          case CH_TR_START:
            if (ch == '\r') c->state = CH_END_LF;
            else if (IS(ch, C_TCHAR)) c->state = CH_TR_NAME;
            else goto fail;
            break;
          case CH_TR_NAME:
            if (ch == ':') c->state = CH_TR_VALUE;
            else if (!IS(ch, C_TCHAR)) goto fail;
            break;
          case CH_TR_VALUE:
            if (ch == '\r') c->state = CH_TR_LF;
            else if (!IS(ch, C_VCHAR) && !IS_WS(ch)) goto fail;
            break;
          case CH_TR_LF:
            if (ch != '\n') goto fail;
            c->state = CH_TR_START;
            break;
          default: /* CH_END_LF */
            if (ch != '\n') goto fail;
            c->state = CH_DONE;
            *done = 1;
            return (int)(p + 1 - buf);
        }
        break;
    }
    p++;
  }
  return (int)(p - buf);
fail:
  c->state = CH_ERROR;
  return -1;
}

int sl__http_header_lines_ok(const char *h) {
  if (h == NULL) return 1;
  const char *p = h;
  while (*p) {
    const char *name = p;
    while (IS(*p, C_TCHAR)) p++;
    if (p == name || *p != ':') return 0;
    for (p++; *p != '\r'; p++)
      if (*p == '\0' || ((unsigned char)*p < ' ' && *p != '\t') || *p == 0x7f)
        return 0;
    if (p[1] != '\n') return 0;
    p += 2;
  }
  return 1;
}

/* ------------------------------------------------------------------ */
/* URLs, ranges, paths                                                 */
/* ------------------------------------------------------------------ */

/* Decode one unit at in[*i] (an escape, '+' when is_form, or a plain byte)
 * and advance *i. Returns the byte, or -1 for a bad escape. */
static int decode_unit(const char *in, size_t len, size_t *i, int is_form) {
  int c = (unsigned char)in[*i];
  if (c == '%') {
    if (len - *i < 3 || !IS(in[*i + 1], C_HEX) || !IS(in[*i + 2], C_HEX))
      return -1;
    c = hexval((unsigned char)in[*i + 1]) << 4 | hexval((unsigned char)in[*i + 2]);
    *i += 3;
    return c;
  }
  (*i)++;
  return is_form && c == '+' ? ' ' : c;
}

long sl__url_decoded_len(const char *in, size_t len, int is_form, int *has_nul) {
  size_t n = 0, i = 0;
  *has_nul = 0;
  while (i < len) {
    int c = decode_unit(in, len, &i, is_form);
    if (c < 0) return -1;
    if (c == 0) *has_nul = 1;
    n++;
  }
  return n > INT_MAX ? -1 : (long)n;
}

int sl__url_decode(const char *in, size_t len, char *out, size_t outcap,
                   int is_form) {
  /* Measure and validate first, so that a failed call writes nothing. */
  int nul;
  long m = sl__url_decoded_len(in, len, is_form, &nul);
  if (m < 0) return SL_EINVAL;
  size_t n = (size_t)m, i;
  if (n >= outcap) return SL_EMSGSIZE;
  /* In place is safe: byte n is written only after in[>= n] was read. */
  for (i = 0, n = 0; i < len;) out[n++] = (char)decode_unit(in, len, &i, is_form);
  out[n] = '\0';
  return (int)n;
}

/* 1 when the form-decoded [p, e) equals `name`; a bad escape never equals. */
static int key_is(const char *p, const char *e, const char *name) {
  size_t i = 0, len = (size_t)(e - p), k = 0;
  while (i < len) {
    int c = decode_unit(p, len, &i, 1);
    if (c < 0 || name[k] == '\0' || (unsigned char)name[k] != c) return 0;
    k++;
  }
  return name[k] == '\0';
}

int sl__http_query_find(sl_str q, const char *name, sl_str *val) {
  if (q.len == 0) return 0;
  const char *p = q.ptr, *e = q.ptr + q.len;
  if (*p == '?') p++;
  while (p < e) {
    const char *amp = memchr(p, '&', (size_t)(e - p));
    const char *se = amp ? amp : e;
    const char *eqs = memchr(p, '=', (size_t)(se - p));
    if (key_is(p, eqs ? eqs : se, name)) {
      val->ptr = eqs ? eqs + 1 : se;
      val->len = (size_t)(se - val->ptr);
      return 1;
    }
    p = se + (amp != NULL);
  }
  return 0;
}

int sl__http_query_get(sl_str q, const char *name, char *out, size_t outcap) {
  sl_str v;
  if (!sl__http_query_find(q, name, &v)) return SL_ENOENT;
  return sl__url_decode(v.ptr, v.len, out, outcap, 1);
}

/* 1*DIGIT at *p, saturating at ULLONG_MAX (a huge position is simply past
 * any size). Returns the number of digits. */
static size_t digits(const char **p, const char *e, unsigned long long *v) {
  const char *s = *p;
  *v = 0;
  for (; *p < e && **p >= '0' && **p <= '9'; (*p)++) {
    unsigned d = (unsigned)(**p - '0');
    *v = *v > (ULLONG_MAX - d) / 10 ? ULLONG_MAX : *v * 10 + d;
  }
  return (size_t)(*p - s);
}

int sl__http_parse_range(sl_str v, unsigned long long size,
                         unsigned long long *start, unsigned long long *end) {
  if (v.len == 0) return 0;
  const char *p = v.ptr, *e = v.ptr + v.len;
  while (p < e && IS_WS(*p)) p++;
  while (e > p && IS_WS(e[-1])) e--;
  sl_str unit = {p, 5};
  if (e - p < 6 || !ieq(unit, "bytes") || p[5] != '=') return 0;
  p += 6;
  while (p < e && IS_WS(*p)) p++;
  /* Several ranges would need multipart/byteranges; RFC 9110 14.2 lets a
   * server ignore the header instead. */
  for (const char *c = p; c < e; c++)
    if (*c == ',') return 0;
  unsigned long long a, b;
  size_t na = digits(&p, e, &a);
  if (p == e || *p++ != '-') return 0;
  size_t nb = digits(&p, e, &b);
  if (p != e || (na == 0 && nb == 0)) return 0;
  if (na == 0) {
    /* suffix-range (14.1.1): the last b bytes; "-0" is unsatisfiable
     * (14.1.2), and an empty representation has no byte to point at. */
    if (b == 0) return -1;
    if (size == 0) return 0;
    *start = b >= size ? 0 : size - b;
    *end = size - 1;
    return 1;
  }
  if (nb && b < a) return 0; /* invalid range-spec: ignore (14.1.1) */
  if (a >= size) return -1;
  *start = a;
  *end = nb == 0 || b >= size ? size - 1 : b;
  return 1;
}

/* Decode one path segment [p, e) into out (when not NULL). Returns its
 * decoded length, or -1 for a bad escape or a byte no file name may have
 * here; *dots tells "." (1) and ".." (2) apart from names (0). */
static long segment(const char *p, const char *e, char *out, int *dots) {
  size_t i = 0, len = (size_t)(e - p), n = 0, ndot = 0;
  while (i < len) {
    int c = decode_unit(p, len, &i, 0);
    /* %2F would smuggle a separator past the segment split, '\\' is one on
     * Windows and in many tools, NUL truncates a C path, and controls have
     * no business in a file name (log injection). */
    if (c < 0x20 || c == 0x7f || c == '/' || c == '\\') return -1;
    if (c == '.') ndot++;
    if (out) out[n] = (char)c;
    n++;
  }
  *dots = ndot == n && n <= 2 ? (int)n : 0;
  return (long)n;
}

/* One pass of sl__http_clean_path: measures when out is NULL. */
static long clean(sl_str raw, char *out) {
  const char *p = raw.ptr, *e = raw.ptr + raw.len;
  size_t n = 0;
  int dir = 0; /* the last segment seen was empty or ".": keep a '/' */
  while (p < e) {
    const char *s = p;
    while (p < e && *p != '/') p++;
    int dots = 0;
    long sl = segment(s, p, NULL, &dots);
    if (sl < 0 || dots == 2) return -1;
    dir = sl == 0 || dots == 1;
    if (!dir) {
      if (n) {
        if (out) out[n] = '/';
        n++;
      }
      if (out) segment(s, p, out + n, &dots);
      n += (size_t)sl;
    }
    if (p < e) {
      p++; /* the '/' */
      dir = 1;
    }
  }
  if (dir && n) {
    if (out) out[n] = '/';
    n++;
  }
  return (long)n;
}

int sl__http_clean_path(sl_str raw, char *out, size_t outcap) {
  long n = raw.len ? clean(raw, NULL) : 0;
  if (n < 0 || (size_t)n >= outcap || n > INT_MAX) return -1;
  if (n) clean(raw, out);
  out[n] = '\0';
  return (int)n;
}

/* ---- route matching ------------------------------------------------- */

/* The next segment of the raw path at *p (just after a '/') that names
 * something: empty and "." segments are skipped, as sl__http_clean_path
 * drops them, so a route sees the path the static server would open.
 * Returns 1 with [*s, *e) the raw segment and *p past it (and past its
 * '/', with *after set, when one follows); 0 when none is left. */
static int next_seg(const char **p, const char *pe, int *after, const char **s,
                    const char **e) {
  while (*p < pe || *after) {
    const char *a = *p, *b = a;
    while (b < pe && *b != '/') b++;
    int dots = 0;
    long n = segment(a, b, NULL, &dots);
    *after = b < pe;
    *p = b < pe ? b + 1 : pe;
    if (n > 0 && dots == 0) {
      *s = a;
      *e = b;
      return 1;
    }
    if (!*after) break;
  }
  return 0;
}

/* One pattern segment [q, qe) against one raw path segment [s, e),
 * compared after decoding; '*' takes the rest of the segment (at least one
 * byte) and must end the pattern segment. */
static int seg_match(const char *q, const char *qe, const char *s,
                     const char *e, sl_str *cap) {
  size_t i = 0, len = (size_t)(e - s);
  for (; q < qe; q++) {
    if (*q == '*') {
      if (q + 1 != qe || i == len) return 0;
      if (cap) cap->ptr = s + i, cap->len = len - i;
      return 2;
    }
    if (i == len || decode_unit(s, len, &i, 0) != (unsigned char)*q) return 0;
  }
  return i == len;
}

int sl__http_match_path(sl_str path, const char *pattern, sl_str *caps,
                        size_t ncaps) {
  const char *p = path.ptr, *pe = path.ptr + path.len, *q = pattern;
  size_t ncap = 0, nseg = 0;
  int after = 1; /* a '/' ends what was matched so far */
  if (path.len == 0 || *p != '/' || *q != '/') return 0;
  /* Unsafe paths match nothing: ".." (also %2e%2e), an encoded '/' or
   * '\\', NUL and other controls, bad escapes. sl_http_serve_dir refuses
   * the same set, so no route check can be sidestepped by a spelling the
   * file server would still resolve. */
  if (clean(path, NULL) < 0) return 0;
  p++;
  q++;
  for (;;) {
    const char *qe = q;
    while (*qe && *qe != '/') qe++;
    if (qe - q == 2 && q[0] == '*' && q[1] == '*' && *qe == '\0') {
      if (!after) return 0;
      if (ncap < ncaps) caps[ncap].ptr = p, caps[ncap].len = (size_t)(pe - p);
      return 1;
    }
    if (q == qe && *qe == '\0') {
      /* End of the pattern: nothing may be left of the path, and a
       * trailing '/' must be on both or neither. */
      const char *s, *e;
      int had = after;
      if (next_seg(&p, pe, &after, &s, &e)) return 0;
      return nseg == 0 || had == (q[-1] == '/');
    }
    const char *s, *e;
    if (!next_seg(&p, pe, &after, &s, &e)) return 0;
    int r = seg_match(q, qe, s, e, ncap < ncaps ? &caps[ncap] : NULL);
    if (r == 0) return 0;
    if (r == 2) ncap++;
    nseg++;
    q = *qe ? qe + 1 : qe;
  }
}
