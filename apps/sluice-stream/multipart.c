/*
 * MJPEG-over-HTTP body reader; the contract is in multipart.h.
 *
 * One call walks as many states as the buffer allows, keeping `pos`, the
 * bytes of this call's buffer already used up; they are what the caller
 * drops. Whenever the reader waits for more input, what it keeps is
 * bounded: the tail of a possible delimiter (boundary + DASH_KEEP bytes),
 * part headers (SS_MP_HEAD_MAX), a body with Content-Length (max_frame),
 * or what the splitter keeps (max_frame - 1), so the caller's buffer of
 * max_frame + SS_MP_HEAD_MAX bytes never fills up.
 *
 * The splitter is handed buf + pos. That is sound because it is only ever
 * entered clean (at the start, or right after it returned a frame, when it
 * has nothing scanned) and stays in charge until it returns a frame, so
 * every later call gives it the buffer starting where it asked.
 */
#include "multipart.h"

#include <string.h>
#include <strings.h>

enum {
  P_STREAM,   /* not multipart: the splitter, forever */
  P_BOUNDARY, /* looking for a delimiter line */
  P_HEAD,     /* part headers, up to the empty line */
  P_BODY_LEN, /* a body of `left` bytes (Content-Length) */
  P_SKIP,     /* `left` bytes of a part we do not want */
  P_SPLIT,    /* a part without (usable) length: the splitter finds it */
  P_END       /* after the closing delimiter */
};

/* Dashes before a boundary kept while waiting for the rest of it. */
#define DASH_KEEP 80
/* White space or NUL after EOI tolerated inside a Content-Length body. */
#define TRAIL_MAX 8

static int is_ws(unsigned char c) { return c == ' ' || c == '\t'; }

int ss_mp_init(ss_mp *p, const char *ct, size_t len, size_t max_frame) {
  memset(p, 0, sizeof(*p));
  p->max_frame = max_frame < 4 ? 4 : max_frame;
  ss_split_init(&p->sp, p->max_frame);
  p->state = P_STREAM;
  p->bol = 1;
  if (ct == NULL) return 0;
  const char *e = ct + len;
  while (ct < e && is_ws((unsigned char)*ct)) ct++;
  if ((size_t)(e - ct) < 10 || strncasecmp(ct, "multipart/", 10) != 0) return 0;
  /* Parameters: ; name=value, value a token or a quoted string. */
  const char *q = memchr(ct, ';', (size_t)(e - ct));
  while (q && q < e) {
    q++;
    while (q < e && is_ws((unsigned char)*q)) q++;
    const char *name = q;
    while (q < e && *q != '=' && *q != ';') q++;
    size_t nl = (size_t)(q - name);
    while (nl && is_ws((unsigned char)name[nl - 1])) nl--;
    if (q == e || *q == ';') continue;
    q++; /* '=' */
    while (q < e && is_ws((unsigned char)*q)) q++;
    const char *v = q;
    size_t vl;
    if (q < e && *q == '"') {
      v = ++q;
      while (q < e && *q != '"') q++;
      vl = (size_t)(q - v);
      if (q < e) q++;
    } else {
      while (q < e && *q != ';') q++;
      vl = (size_t)(q - v);
      while (vl && is_ws((unsigned char)v[vl - 1])) vl--;
    }
    if (nl == 8 && strncasecmp(name, "boundary", 8) == 0 && vl > 0 &&
        vl <= SS_MP_BOUNDARY_MAX) {
      memcpy(p->boundary, v, vl);
      p->boundary[vl] = '\0';
      p->blen = vl;
      p->state = P_BOUNDARY;
      return 1;
    }
    q = memchr(q, ';', (size_t)(e - q));
  }
  return 0;
}

size_t ss_mp_cap(const ss_mp *p) { return p->max_frame + SS_MP_HEAD_MAX; }

unsigned long long ss_mp_garbage(const ss_mp *p) {
  return p->garbage + p->sp.garbage_bytes;
}

unsigned long long ss_mp_lost(const ss_mp *p) {
  return p->bad + p->oversized + p->sp.truncated + p->sp.corrupt +
         p->sp.oversized;
}

static void count_garbage(ss_mp *p, const unsigned char *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (b[i] != '\r' && b[i] != '\n') p->garbage++;
}

/* Look for a delimiter line in b[0, n). Returns 1 with the line at
 * [*start, *end) (*closing when it ends in "--"); 0 when there is none,
 * with *keep = the offset from which bytes must be kept (a delimiter may
 * start there). `bol`: b[0] starts a line. */
static int find_delim(const ss_mp *p, const unsigned char *b, size_t n,
                      int bol, size_t *start, size_t *end, int *closing,
                      size_t *keep) {
  size_t i = 0;
  *keep = n > p->blen + DASH_KEEP ? n - (p->blen + DASH_KEEP) : 0;
  for (;;) {
    const unsigned char *hit = memmem(b + i, n - i, p->boundary, p->blen);
    if (hit == NULL) return 0;
    size_t at = (size_t)(hit - b), d = at;
    while (d > 0 && b[d - 1] == '-') d--;
    int line = d == 0 ? bol : b[d - 1] == '\n';
    i = at + 1;
    if (at - d < 2 && !line) continue;
    size_t e = at + p->blen;
    int cl = 0;
    if (e < n && b[e] == '-') {
      if (e + 1 == n) goto wait;
      if (b[e + 1] != '-') continue;
      cl = 1;
      e += 2;
    }
    while (e < n && (is_ws(b[e]) || b[e] == '\r')) e++;
    if (e == n) goto wait;
    if (b[e] != '\n') continue;
    *start = d;
    *end = e + 1;
    *closing = cl;
    return 1;
  wait:
    /* The line is not complete yet: keep it, unless it is absurdly long
     * (white space that never ends), which no delimiter is. */
    if (n - d < SS_MP_HEAD_MAX) {
      if (d < *keep) *keep = d;
      return 0;
    }
  }
}

/* Header value `v` of `name`, if the line b[0, n) is that header. */
static int header_is(const unsigned char *b, size_t n, const char *name,
                     const unsigned char **v, size_t *vl) {
  size_t nl = strlen(name);
  if (n <= nl || b[nl] != ':' || strncasecmp((const char *)b, name, nl) != 0)
    return 0;
  size_t i = nl + 1;
  while (i < n && is_ws(b[i])) i++;
  size_t e = n;
  while (e > i && is_ws(b[e - 1])) e--;
  *v = b + i;
  *vl = e - i;
  return 1;
}

/* Part headers in b[0, n): 1 with *hend = bytes up to and including the
 * empty line, *clen (-1: none) and *image; 0 when incomplete. */
static unsigned long long header_num(const unsigned char *v, size_t vl) {
  unsigned long long x = 0;
  for (size_t k = 0; k < vl && k < 19 && v[k] >= '0' && v[k] <= '9'; k++)
    x = x * 10 + (unsigned)(v[k] - '0');
  return x;
}

static int parse_head(ss_mp *p, const unsigned char *b, size_t n, size_t *hend,
                      long long *clen, int *image) {
  size_t i = 0;
  *clen = -1;
  *image = 1;
  p->part_seq = p->part_unix_ms = 0;
  for (;;) {
    const unsigned char *lf = memchr(b + i, '\n', n - i);
    if (lf == NULL) return 0;
    size_t e = (size_t)(lf - b), le = e;
    if (le > i && b[le - 1] == '\r') le--;
    if (le == i) {
      *hend = e + 1;
      return 1;
    }
    const unsigned char *v;
    size_t vl;
    if (header_is(b + i, le - i, "Content-Length", &v, &vl)) {
      long long x = vl ? 0 : -1;
      for (size_t k = 0; k < vl && x >= 0; k++) {
        if (v[k] < '0' || v[k] > '9') x = -1;
        else if (x > (1LL << 50)) x = 1LL << 50; /* huge: oversized anyway */
        else x = x * 10 + (v[k] - '0');
      }
      *clen = x;
    } else if (header_is(b + i, le - i, "Content-Type", &v, &vl)) {
      *image = vl >= 6 && strncasecmp((const char *)v, "image/", 6) == 0;
    } else if (header_is(b + i, le - i, "X-Frame", &v, &vl)) {
      p->part_seq = header_num(v, vl);
    } else if (header_is(b + i, le - i, "X-Unix-Ms", &v, &vl)) {
      p->part_unix_ms = header_num(v, vl);
    }
    i = e + 1;
  }
}

/* Length of the JPEG in a Content-Length body b[0, n): SOI at 0, EOI at
 * the end but for up to TRAIL_MAX bytes of white space or NUL. 0: not one. */
static size_t body_jpeg(const unsigned char *b, size_t n) {
  if (n < 4 || b[0] != 0xFF || b[1] != 0xD8) return 0;
  size_t e = n;
  while (e > 4 && n - e < TRAIL_MAX &&
         (is_ws(b[e - 1]) || b[e - 1] == '\r' || b[e - 1] == '\n' || !b[e - 1]))
    e--;
  return b[e - 2] == 0xFF && b[e - 1] == 0xD9 ? e : 0;
}

int ss_mp_next(ss_mp *p, const unsigned char *buf, size_t len, ss_mp_out *out) {
  size_t pos = 0;
  int got = 0;
  out->off = out->len = 0;
  for (;;) {
    const unsigned char *b = buf + pos;
    size_t n = len - pos;
    if (p->state == P_STREAM || p->state == P_SPLIT) {
      ss_split_out so;
      got = ss_split_next(&p->sp, b, n, &so);
      if (got) {
        out->off = pos + so.off;
        out->len = so.len;
        p->frames++;
        if (p->state == P_SPLIT) p->state = P_BOUNDARY;
      }
      pos += so.consumed;
      break;
    }
    if (p->state == P_END) {
      count_garbage(p, b, n);
      pos = len;
      break;
    }
    if (p->state == P_SKIP) {
      size_t k = n < p->left ? n : (size_t)p->left;
      pos += k;
      p->left -= k;
      if (p->left) break;
      p->state = P_BOUNDARY;
      continue;
    }
    if (p->state == P_BOUNDARY) {
      size_t s, e, keep;
      int cl;
      int bol = pos ? buf[pos - 1] == '\n' : p->bol;
      if (!find_delim(p, b, n, bol, &s, &e, &cl, &keep)) {
        count_garbage(p, b, keep);
        pos += keep;
        break;
      }
      count_garbage(p, b, s);
      pos += e;
      if (cl) {
        p->closed = 1;
        p->state = P_END;
      } else {
        p->parts++;
        p->state = P_HEAD;
      }
      continue;
    }
    if (p->state == P_HEAD) {
      size_t hend;
      long long clen;
      int image;
      if (n >= 2 && b[0] == 0xFF && b[1] == 0xD8) {
        p->state = P_SPLIT; /* no headers at all: the JPEG right away */
        continue;
      }
      /* Only the first SS_MP_HEAD_MAX bytes may hold headers, however
       * much input there is, so the outcome does not depend on chunking. */
      size_t hn = n < SS_MP_HEAD_MAX ? n : SS_MP_HEAD_MAX;
      if (!parse_head(p, b, hn, &hend, &clen, &image)) {
        if (n < SS_MP_HEAD_MAX) break;
        p->bad++; /* headers that never end: look for the next part */
        p->state = P_BOUNDARY;
        continue;
      }
      pos += hend;
      if (!image) p->other++;
      if (!image && clen < 0) {
        p->state = P_BOUNDARY;
      } else if (!image || (clen >= 0 && (unsigned long long)clen > p->max_frame)) {
        if (image) p->oversized++;
        p->state = P_SKIP;
        p->left = (unsigned long long)clen;
      } else if (clen >= 0) {
        p->state = P_BODY_LEN;
        p->left = (unsigned long long)clen;
      } else {
        p->state = P_SPLIT;
      }
      continue;
    }
    /* P_BODY_LEN */
    if (n < p->left) break;
    size_t jl = body_jpeg(b, (size_t)p->left);
    if (jl == 0) {
      /* Miscounted, or not a JPEG: let the splitter find what is there. */
      if (p->left < 2 || b[0] != 0xFF || b[1] != 0xD8) p->bad++;
      p->state = P_SPLIT;
      continue;
    }
    out->off = pos;
    out->len = jl;
    pos += (size_t)p->left;
    p->frames++;
    p->state = P_BOUNDARY;
    got = 1;
    break;
  }
  if (pos) p->bol = buf[pos - 1] == '\n';
  out->consumed = pos;
  return got;
}
