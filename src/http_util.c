/*
 * Helpers for web applications around the HTTP server: URL decoding, form
 * variables, cookies (RFC 6265) and a small JSON toolkit (RFC 8259). All
 * are pure functions over the caller's buffers: no allocation, no state,
 * bounded work (linear in the input; JSON nesting capped at
 * SL_JSON_MAX_DEPTH so hostile input cannot exhaust the stack). Decoding
 * and query lookup are the parsers' own (http_parse.c), not copies.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"
#include "utf8.h"

static void clear(char *dst, size_t dstlen) {
  if (dst && dstlen) dst[0] = '\0';
}

/* ---- URLs and forms ------------------------------------------------- */

int sl_url_decode(const char *src, size_t len, char *dst, size_t dstlen,
                  int form) {
  int nul = 0;
  long n = src || len == 0 ? sl__url_decoded_len(src, len, form != 0, &nul) : -1;
  int rc = n < 0 || nul ? SL_EINVAL : (size_t)n >= dstlen || dst == NULL ? SL_EMSGSIZE : 0;
  if (rc) {
    clear(dst, dstlen);
    return rc;
  }
  return sl__url_decode(src, len, dst, dstlen, form != 0);
}

int sl_http_var(const char *buf, size_t len, const char *name, char *dst,
                size_t dstlen) {
  sl_str q = {buf, buf ? len : 0}, v;
  if (name == NULL || !sl__http_query_find(q, name, &v)) {
    clear(dst, dstlen);
    return SL_ENOENT;
  }
  return sl_url_decode(v.ptr, v.len, dst, dstlen, 1);
}

/* ---- cookies -------------------------------------------------------- */

/* token (RFC 9110 section 5.6.2) */
static int is_tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* cookie-octet (RFC 6265 section 4.1.1) */
static int is_cookie_octet(unsigned char c) {
  return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a) ||
         (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

static int copy_out(const char *p, size_t n, char *dst, size_t dstlen) {
  if (dst == NULL || n >= dstlen || n > INT32_MAX) {
    clear(dst, dstlen);
    return SL_EMSGSIZE;
  }
  memcpy(dst, p, n);
  dst[n] = '\0';
  return (int)n;
}

int sl_http_cookie(const sl_http_msg *m, const char *name, char *dst,
                   size_t dstlen) {
  size_t nl = name ? strlen(name) : 0;
  for (size_t h = 0; m && nl && h < m->num_headers; h++) {
    const sl_http_header *hd = &m->headers[h];
    if (!sl_strcaseeq(hd->name.ptr, hd->name.len, "Cookie")) continue;
    const char *p = hd->value.ptr, *e = p + hd->value.len;
    while (p < e) {
      while (p < e && (*p == ' ' || *p == '\t' || *p == ';')) p++;
      const char *pair = p;
      while (p < e && *p != ';') p++;
      const char *pe = p, *eq = memchr(pair, '=', (size_t)(pe - pair));
      if (eq == NULL) continue;
      const char *ne = eq;
      while (ne > pair && (ne[-1] == ' ' || ne[-1] == '\t')) ne--;
      if ((size_t)(ne - pair) != nl || memcmp(pair, name, nl) != 0) continue;
      const char *v = eq + 1;
      while (v < pe && (*v == ' ' || *v == '\t')) v++;
      while (pe > v && (pe[-1] == ' ' || pe[-1] == '\t')) pe--;
      if (pe - v >= 2 && *v == '"' && pe[-1] == '"') v++, pe--;
      return copy_out(v, (size_t)(pe - v), dst, dstlen);
    }
  }
  clear(dst, dstlen);
  return SL_ENOENT;
}

/* An attribute value (Path, Domain): any CHAR but controls and ';'
 * (RFC 6265 section 4.1.1, av-octet). */
static int av_ok(const char *s) {
  if (*s == '\0') return 0;
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f || *s == ';') return 0;
  return 1;
}

int sl_http_set_cookie(char *buf, size_t len, const char *name,
                       const char *value, const sl_cookie_opts *o) {
  static const sl_cookie_opts none;
  if (o == NULL) o = &none;
  int bad = name == NULL || value == NULL || *name == '\0';
  for (const char *p = name; !bad && *p; p++) bad = !is_tchar((unsigned char)*p);
  for (const char *p = value; !bad && *p; p++) bad = !is_cookie_octet((unsigned char)*p);
  if (!bad && o->path) bad = !av_ok(o->path);
  if (!bad && o->domain) bad = !av_ok(o->domain);
  const char *ss = NULL;
  if (!bad && o->same_site) {
    static const char *const v[] = {"Strict", "Lax", "None"};
    for (size_t i = 0; i < 3 && !ss; i++)
      if (sl_strcaseeq(o->same_site, strlen(o->same_site), v[i])) ss = v[i];
    /* Browsers drop SameSite=None cookies that are not Secure. */
    bad = ss == NULL || (ss == v[2] && !o->secure);
  }
  if (bad) {
    clear(buf, len);
    return SL_EINVAL;
  }
  char age[40] = "";
  if (o->max_age)
    snprintf(age, sizeof(age), "; Max-Age=%lld", o->max_age < 0 ? 0 : o->max_age);
  int n = buf ? snprintf(buf, len, "Set-Cookie: %s=%s%s%s%s%s%s%s%s%s\r\n", name, value,
                         o->path ? "; Path=" : "", o->path ? o->path : "",
                         o->domain ? "; Domain=" : "", o->domain ? o->domain : "", age,
                         o->http_only ? "; HttpOnly" : "", o->secure ? "; Secure" : "",
                         ss ? (ss[0] == 'S' ? "; SameSite=Strict"
                               : ss[0] == 'L' ? "; SameSite=Lax" : "; SameSite=None")
                            : "")
              : -1;
  if (n < 0 || (size_t)n >= len) {
    clear(buf, len);
    return SL_EMSGSIZE;
  }
  return n;
}

/* ---- JSON: validation and paths ------------------------------------- */

struct jp {
  const char *s;
  size_t n, i;
};

static void ws(struct jp *p) {
  while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                         p->s[p->i] == '\r'))
    p->i++;
}

static int hex4(const char *s, unsigned *out) {
  unsigned v = 0;
  for (int k = 0; k < 4; k++) {
    int c = (unsigned char)s[k], d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') d = (c | 0x20) - 'a' + 10;
    else return -1;
    v = v << 4 | (unsigned)d;
  }
  *out = v;
  return 0;
}

/* A string at p->i (its opening quote): advance past the closing one. */
static int skip_string(struct jp *p) {
  p->i++;
  while (p->i < p->n) {
    unsigned char c = (unsigned char)p->s[p->i];
    if (c == '"') {
      p->i++;
      return SL_JSON_STRING;
    }
    if (c < 0x20) return SL_EINVAL;
    if (c == '\\') {
      if (p->i + 1 >= p->n) return SL_EINVAL;
      char e = p->s[p->i + 1];
      unsigned u;
      if (e == 'u') {
        if (p->n - p->i < 6 || hex4(p->s + p->i + 2, &u)) return SL_EINVAL;
        p->i += 6;
        continue;
      }
      if (!strchr("\"\\/bfnrt", e) || e == '\0') return SL_EINVAL;
      p->i += 2;
      continue;
    }
    p->i++;
  }
  return SL_EINVAL;
}

static int digits1(struct jp *p) {
  size_t s = p->i;
  while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
  return p->i > s;
}

/* number = [ "-" ] int [ frac ] [ exp ] (RFC 8259 section 6) */
static int skip_number(struct jp *p) {
  if (p->s[p->i] == '-') p->i++;
  if (p->i < p->n && p->s[p->i] == '0') p->i++;
  else if (!digits1(p)) return SL_EINVAL;
  if (p->i < p->n && p->s[p->i] == '.') {
    p->i++;
    if (!digits1(p)) return SL_EINVAL;
  }
  if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
    p->i++;
    if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
    if (!digits1(p)) return SL_EINVAL;
  }
  return SL_JSON_NUMBER;
}

static int skip_lit(struct jp *p, const char *lit, int type) {
  size_t l = strlen(lit);
  if (p->n - p->i < l || memcmp(p->s + p->i, lit, l) != 0) return SL_EINVAL;
  p->i += l;
  return type;
}

/* Validate and skip one value at p->i (after white space). Recursion is
 * bounded by `depth`. Returns its type or SL_EINVAL. */
static int skip_value(struct jp *p, int depth) {
  ws(p);
  if (p->i >= p->n) return SL_EINVAL;
  char c = p->s[p->i];
  if (c == '"') return skip_string(p);
  if (c == '-' || (c >= '0' && c <= '9')) return skip_number(p);
  if (c == 't') return skip_lit(p, "true", SL_JSON_TRUE);
  if (c == 'f') return skip_lit(p, "false", SL_JSON_FALSE);
  if (c == 'n') return skip_lit(p, "null", SL_JSON_NULL);
  if (c != '[' && c != '{') return SL_EINVAL;
  if (depth >= SL_JSON_MAX_DEPTH) return SL_EINVAL;
  char close = c == '[' ? ']' : '}';
  p->i++;
  ws(p);
  if (p->i < p->n && p->s[p->i] == close) {
    p->i++;
    return c == '[' ? SL_JSON_ARRAY : SL_JSON_OBJECT;
  }
  for (;;) {
    if (c == '{') {
      ws(p);
      if (p->i >= p->n || p->s[p->i] != '"' || skip_string(p) < 0) return SL_EINVAL;
      ws(p);
      if (p->i >= p->n || p->s[p->i] != ':') return SL_EINVAL;
      p->i++;
    }
    if (skip_value(p, depth + 1) < 0) return SL_EINVAL;
    ws(p);
    if (p->i >= p->n) return SL_EINVAL;
    if (p->s[p->i] == close) {
      p->i++;
      return c == '[' ? SL_JSON_ARRAY : SL_JSON_OBJECT;
    }
    if (p->s[p->i] != ',') return SL_EINVAL;
    p->i++;
  }
}

/* In a valid container at p->i, move to member `key` ([k, k + kl)) or
 * element `idx` (key NULL). Returns 1 found (p->i at the value), 0 not. */
static int find_in(struct jp *p, const char *key, size_t kl, unsigned long idx) {
  char open = p->s[p->i];
  if ((key && open != '{') || (!key && open != '[')) return 0;
  p->i++;
  for (unsigned long n = 0;; n++) {
    ws(p);
    if (p->s[p->i] == ']' || p->s[p->i] == '}') return 0;
    int hit;
    if (key) {
      size_t ks = p->i + 1;
      skip_string(p);
      hit = p->i - 1 - ks == kl && memcmp(p->s + ks, key, kl) == 0;
      ws(p);
      p->i++; /* ':' */
    } else {
      hit = n == idx;
    }
    ws(p);
    if (hit) return 1;
    skip_value(p, 0);
    ws(p);
    if (p->s[p->i] == ',') p->i++;
  }
}

int sl_json_get(const char *json, size_t len, const char *path,
                const char **val, size_t *vlen) {
  struct jp p = {json, json ? len : 0, 0};
  if (path == NULL || path[0] != '$') return SL_EINVAL;
  /* Validate everything once; afterwards navigation cannot fail on
   * syntax and needs no depth bound of its own (skip_value(p, 0) on a
   * valid text never goes deeper than the validation did). */
  int type = skip_value(&p, 0);
  if (type < 0) return SL_EINVAL;
  ws(&p);
  if (p.i != p.n) return SL_EINVAL;
  p.i = 0;
  ws(&p);
  const char *q = path + 1;
  int missing = 0;
  while (*q) {
    const char *key = NULL;
    size_t kl = 0;
    unsigned long idx = 0;
    if (*q == '.') {
      key = ++q;
      while (*q && *q != '.' && *q != '[') q++;
      kl = (size_t)(q - key);
      if (kl == 0) return SL_EINVAL;
    } else if (*q == '[') {
      q++;
      if (*q < '0' || *q > '9') return SL_EINVAL;
      char *end;
      errno = 0;
      idx = strtoul(q, &end, 10);
      if (errno || *end != ']') return SL_EINVAL;
      q = end + 1;
    } else {
      return SL_EINVAL;
    }
    /* Go on parsing the path after a miss: a malformed path is EINVAL
     * whatever the document holds. */
    if (!missing && !find_in(&p, key, kl, idx)) missing = 1;
  }
  if (missing) return SL_ENOENT;
  size_t start = p.i;
  type = skip_value(&p, 0);
  if (val) *val = json + start;
  if (vlen) *vlen = p.i - start;
  return type;
}

int sl_json_get_num(const char *json, size_t len, const char *path, double *out) {
  const char *v;
  size_t n;
  int t = sl_json_get(json, len, path, &v, &n);
  if (t < 0) return t;
  if (t != SL_JSON_NUMBER) return SL_EINVAL;
  /* strtod needs a terminated copy; a JSON number of more than 400
   * characters is either overflowing or padding with zeros. */
  char tmp[400];
  if (n >= sizeof(tmp)) return SL_ERANGE;
  memcpy(tmp, v, n);
  tmp[n] = '\0';
  errno = 0;
  double d = strtod(tmp, NULL);
  if (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL)) return SL_ERANGE;
  *out = d;
  return 0;
}

int sl_json_get_bool(const char *json, size_t len, const char *path, int *out) {
  int t = sl_json_get(json, len, path, NULL, NULL);
  if (t < 0) return t;
  if (t != SL_JSON_TRUE && t != SL_JSON_FALSE) return SL_EINVAL;
  *out = t == SL_JSON_TRUE;
  return 0;
}

/* Append the UTF-8 form of code point `u` at dst + *n (room checked). */
static int put_utf8(unsigned u, char *dst, size_t dstlen, size_t *n) {
  unsigned char b[4];
  size_t k;
  if (u < 0x80) b[0] = (unsigned char)u, k = 1;
  else if (u < 0x800) b[0] = (unsigned char)(0xc0 | u >> 6), b[1] = (unsigned char)(0x80 | (u & 0x3f)), k = 2;
  else if (u < 0x10000)
    b[0] = (unsigned char)(0xe0 | u >> 12), b[1] = (unsigned char)(0x80 | ((u >> 6) & 0x3f)),
    b[2] = (unsigned char)(0x80 | (u & 0x3f)), k = 3;
  else
    b[0] = (unsigned char)(0xf0 | u >> 18), b[1] = (unsigned char)(0x80 | ((u >> 12) & 0x3f)),
    b[2] = (unsigned char)(0x80 | ((u >> 6) & 0x3f)), b[3] = (unsigned char)(0x80 | (u & 0x3f)),
    k = 4;
  if (dstlen - *n <= k) return SL_EMSGSIZE;
  memcpy(dst + *n, b, k);
  *n += k;
  return 0;
}

int sl_json_get_str(const char *json, size_t len, const char *path, char *dst,
                    size_t dstlen) {
  const char *v;
  size_t vl;
  int t = sl_json_get(json, len, path, &v, &vl);
  int rc = t < 0 ? t : t != SL_JSON_STRING ? SL_EINVAL : dst == NULL || dstlen == 0 ? SL_EMSGSIZE : 0;
  size_t n = 0;
  /* The text is valid: every escape is complete, the quotes are there. */
  for (size_t i = 1; rc == 0 && i + 1 < vl;) {
    char c = v[i];
    if (c != '\\') {
      if (dstlen - n <= 1) rc = SL_EMSGSIZE;
      else dst[n++] = c, i++;
      continue;
    }
    char e = v[i + 1];
    if (e != 'u') {
      static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
      if (dstlen - n <= 1) rc = SL_EMSGSIZE;
      else dst[n++] = to[strchr(from, e) - from];
      i += 2;
      continue;
    }
    unsigned u = 0, lo = 0;
    hex4(v + i + 2, &u);
    i += 6;
    if (u >= 0xd800 && u <= 0xdbff) {
      /* A high surrogate must be followed by an escaped low one. */
      if (i + 6 < vl && v[i] == '\\' && v[i + 1] == 'u' && hex4(v + i + 2, &lo) == 0 &&
          lo >= 0xdc00 && lo <= 0xdfff) {
        u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
        i += 6;
      } else {
        rc = SL_EINVAL;
        break;
      }
    } else if ((u >= 0xdc00 && u <= 0xdfff) || u == 0) {
      rc = SL_EINVAL; /* a lone low surrogate; a NUL would cut the C string */
      break;
    }
    rc = put_utf8(u, dst, dstlen, &n);
  }
  if (rc == 0 && !sl__utf8_valid(dst, n)) rc = SL_EINVAL;
  if (rc) {
    clear(dst, dstlen);
    return rc;
  }
  dst[n] = '\0';
  return (int)n;
}

/* ---- JSON output ---------------------------------------------------- */

/* Escaped length of src, and the escaping itself when out is not NULL. */
static size_t escape(const char *src, size_t len, char *out) {
  static const char hexd[] = "0123456789abcdef";
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)src[i];
    char two = c == '"' ? '"' : c == '\\' ? '\\' : c == '\n' ? 'n' : c == '\r' ? 'r'
             : c == '\t' ? 't' : c == '\b' ? 'b' : c == '\f' ? 'f' : 0;
    if (two) {
      if (out) out[n] = '\\', out[n + 1] = two;
      n += 2;
    } else if (c < 0x20 || c == 0x7f) {
      if (out) memcpy(out + n, "\\u00", 4), out[n + 4] = hexd[c >> 4], out[n + 5] = hexd[c & 15];
      n += 6;
    } else {
      if (out) out[n] = (char)c;
      n++;
    }
  }
  return n;
}

int sl_json_escape(const char *src, size_t len, char *dst, size_t dstlen) {
  size_t n = src ? escape(src, len, NULL) : 0;
  if (dst == NULL || n >= dstlen || n > INT32_MAX) {
    clear(dst, dstlen);
    return SL_EMSGSIZE;
  }
  if (n) escape(src, len, dst);
  dst[n] = '\0';
  return (int)n;
}

struct out {
  char *buf;
  size_t cap, n;
  int err;
};

static void put(struct out *o, const char *s, size_t n) {
  if (o->err) return;
  if (o->cap - o->n <= n) {
    o->err = SL_EMSGSIZE;
    return;
  }
  memcpy(o->buf + o->n, s, n);
  o->n += n;
}

static void put_quoted(struct out *o, const char *s, size_t n) {
  if (s == NULL) {
    put(o, "null", 4);
    return;
  }
  size_t el = escape(s, n, NULL);
  if (o->err || o->cap - o->n <= el + 2) {
    o->err = SL_EMSGSIZE;
    return;
  }
  o->buf[o->n++] = '"';
  escape(s, n, o->buf + o->n);
  o->n += el;
  o->buf[o->n++] = '"';
}

/* One standard conversion `spec` (a complete "%...c" without '*'), its
 * argument taken from `ap` by type. Returns 0 or SL_EINVAL. */
static int convert(struct out *o, const char *spec, const char *lenmod, char conv,
                   va_list *ap) {
  char tmp[512];
  int n;
  int l = (int)strlen(lenmod);
  switch (conv) {
    case 'd': case 'i': case 'u': case 'x': case 'X': case 'o': case 'c':
      if (l == 0 || strcmp(lenmod, "h") == 0 || strcmp(lenmod, "hh") == 0)
        n = snprintf(tmp, sizeof(tmp), spec, va_arg(*ap, int));
      else if (strcmp(lenmod, "l") == 0) n = snprintf(tmp, sizeof(tmp), spec, va_arg(*ap, long));
      else if (strcmp(lenmod, "ll") == 0)
        n = snprintf(tmp, sizeof(tmp), spec, va_arg(*ap, long long));
      else if (strcmp(lenmod, "z") == 0) n = snprintf(tmp, sizeof(tmp), spec, va_arg(*ap, size_t));
      else if (strcmp(lenmod, "j") == 0) n = snprintf(tmp, sizeof(tmp), spec, va_arg(*ap, intmax_t));
      else if (strcmp(lenmod, "t") == 0)
        n = snprintf(tmp, sizeof(tmp), spec, va_arg(*ap, ptrdiff_t));
      else return SL_EINVAL;
      break;
    case 'f': case 'F': case 'e': case 'E': case 'g': case 'G': {
      if (l) return SL_EINVAL;
      double d = va_arg(*ap, double);
      if (!isfinite(d)) {
        put(o, "null", 4);
        return 0;
      }
      n = snprintf(tmp, sizeof(tmp), spec, d);
      break;
    }
    case 's': {
      if (l) return SL_EINVAL;
      const char *s = va_arg(*ap, const char *);
      /* A raw fragment (nested JSON the caller built): copied as is. */
      if (strcmp(spec, "%s") == 0) {
        put(o, s ? s : "null", s ? strlen(s) : 4);
        return 0;
      }
      n = snprintf(tmp, sizeof(tmp), spec, s ? s : "null");
      break;
    }
    case 'p':
      n = snprintf(tmp, sizeof(tmp), spec, va_arg(*ap, void *));
      break;
    default:
      return SL_EINVAL;
  }
  if (n < 0) return SL_EINVAL;
  if ((size_t)n >= sizeof(tmp)) {
    o->err = SL_EMSGSIZE; /* a width beyond any sensible JSON field */
    return 0;
  }
  put(o, tmp, (size_t)n);
  return 0;
}

static int vjson(char *buf, size_t len, const char *fmt, va_list *ap) {
  struct out o = {buf, len, 0, buf == NULL || len == 0 ? SL_EMSGSIZE : 0};
  for (const char *f = fmt; *f && !o.err;) {
    if (*f != '%') {
      const char *e = strchr(f, '%');
      size_t n = e ? (size_t)(e - f) : strlen(f);
      put(&o, f, n);
      f += n;
      continue;
    }
    if (f[1] == '%') {
      put(&o, "%", 1);
      f += 2;
      continue;
    }
    /* %[flags][width][.prec][length]conv; '*' widths are resolved into the
     * spec so convert() sees a fixed one. */
    char spec[64], lenmod[3] = "";
    size_t sn = 0;
    int prec = -1;
    spec[sn++] = *f++;
    while (*f && strchr("-+ #0", *f) && sn < 20) spec[sn++] = *f++;
    if (*f == '*') {
      sn += (size_t)snprintf(spec + sn, sizeof(spec) - sn, "%d", va_arg(*ap, int));
      f++;
    } else {
      while (*f >= '0' && *f <= '9' && sn < 40) spec[sn++] = *f++;
    }
    if (*f == '.') {
      spec[sn++] = *f++;
      if (*f == '*') {
        prec = va_arg(*ap, int);
        sn += (size_t)snprintf(spec + sn, sizeof(spec) - sn, "%d", prec < 0 ? 0 : prec);
        f++;
      } else {
        prec = 0;
        while (*f >= '0' && *f <= '9' && sn < 56) prec = prec * 10 + (*f - '0'), spec[sn++] = *f++;
      }
    }
    size_t ln = 0;
    while (*f && strchr("hljzt", *f) && ln < 2) lenmod[ln++] = *f, spec[sn++] = *f++;
    lenmod[ln] = '\0';
    char conv = *f;
    if (conv == '\0' || sn >= sizeof(spec) - 2) {
      o.err = SL_EINVAL;
      break;
    }
    f++;
    spec[sn++] = conv;
    spec[sn] = '\0';
    if (conv == 'Q') {
      if (ln) {
        o.err = SL_EINVAL;
        break;
      }
      const char *s = va_arg(*ap, const char *);
      size_t n = s == NULL ? 0 : prec >= 0 ? strnlen(s, (size_t)prec) : strlen(s);
      put_quoted(&o, s, n);
    } else if (conv == 'B') {
      int b = va_arg(*ap, int);
      put(&o, b ? "true" : "false", b ? 4 : 5);
    } else if (convert(&o, spec, lenmod, conv, ap) != 0) {
      o.err = SL_EINVAL;
    }
  }
  if (o.err) {
    clear(buf, len);
    return o.err;
  }
  buf[o.n] = '\0';
  return (int)o.n;
}

int sl_json_printf(char *buf, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vjson(buf, len, fmt ? fmt : "", &ap);
  va_end(ap);
  return n;
}
