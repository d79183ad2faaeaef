/*
 * A streaming multipart/form-data parser (RFC 7578, framing of RFC 2046
 * section 5.1.1). It holds no byte of part data: data is handed to on_data
 * straight from the caller's pieces, so its memory is one fixed block (the
 * state and one part's header buffer) whatever the body's size.
 *
 * The delimiter search needs no look-back buffer either. The delimiter is
 * CRLF "--" boundary, and a boundary cannot hold CR (RFC 2046 bchars), so
 * CR appears in it only first: when a partial match fails, no suffix of
 * the bytes matched so far can begin another match, and those bytes are
 * exactly the delimiter's own first k bytes. They are handed on as data
 * from the parser's copy of the delimiter, and the byte that broke the
 * match is examined afresh. The first delimiter of a body may come
 * without the CRLF before it (it opens the body): the parser starts as if
 * that CRLF had just been seen, in the preamble, whose bytes are dropped.
 */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "internal.h"

#define DEFAULT_MAX_HEAD 8192u
#define MIN_MAX_HEAD 256u
#define DEFAULT_MAX_PARTS 64u
#define MAX_BOUNDARY 70 /* RFC 2046 section 5.1.1 */

enum {
  MP_PREAMBLE, /* before the first delimiter: bytes dropped */
  MP_AFTER,    /* a delimiter just ended: "--", padding, CRLF */
  MP_HEAD,     /* a part's header block */
  MP_DATA,     /* a part's data, up to the next delimiter */
  MP_EPILOGUE, /* after the closing delimiter: bytes dropped */
  MP_FAILED
};

/* What follows a delimiter (MP_AFTER). */
enum { MP_AF_START, MP_AF_DASH, MP_AF_PAD, MP_AF_CR };

struct sl_multipart {
  sl_multipart_opts o;
  int state, after;
  int err;
  size_t dlen, k;          /* delimiter length; bytes of it matched */
  size_t nparts;
  size_t hlen;
  sl_multipart_part part;
  size_t size;             /* of this allocation */
  char dlm[4 + MAX_BOUNDARY];
  char why[128];
  char head[];             /* o.max_head bytes */
};

static int fail(sl_multipart *mp, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(sl_multipart *mp, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(mp->why, sizeof(mp->why), fmt, ap);
  va_end(ap);
  mp->state = MP_FAILED;
  mp->err = err;
  return err;
}

/* ---- Content-Type ---------------------------------------------------- */

static int is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_bchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != 0 && strchr("'()+_,-./:=? ", c) != NULL);
}

static size_t skip_ows(const char *s, size_t i, size_t n) {
  while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
  return i;
}

static size_t token_end(const char *s, size_t i, size_t n) {
  while (i < n && is_tchar((unsigned char)s[i])) i++;
  return i;
}

/* One parameter value at s[*i]: a token or a quoted-string (taken as
 * sent, up to the next '"': browsers escape '"' as %22 and send '\' as it
 * is, so backslashes are not escapes here). Returns 0 or -1. */
static int param_value(const char *s, size_t *i, size_t n, sl_str *out) {
  size_t j = *i;
  if (j < n && s[j] == '"') {
    const char *q = memchr(s + j + 1, '"', n - j - 1);
    if (q == NULL) return -1;
    out->ptr = s + j + 1;
    out->len = (size_t)(q - out->ptr);
    *i = (size_t)(q - s) + 1;
    return 0;
  }
  size_t e = token_end(s, j, n);
  if (e == j) return -1;
  out->ptr = s + j;
  out->len = e - j;
  *i = e;
  return 0;
}

int sl_multipart_boundary(const char *ct, size_t len, sl_str *boundary,
                          const char **why) {
  const char *msg = NULL;
  sl_str b = {NULL, 0};
  size_t i = 0;
  if (ct == NULL || boundary == NULL) {
    if (why) *why = "no Content-Type";
    return ct == NULL ? SL_EPROTO : SL_EINVAL;
  }
  i = skip_ows(ct, i, len);
  size_t t = i;
  i = token_end(ct, i, len);
  if (i < len && ct[i] == '/') i = token_end(ct, i + 1, len);
  if (!sl_strcaseeq(ct + t, i - t, "multipart/form-data")) {
    msg = "Content-Type is not multipart/form-data";
    goto fail;
  }
  for (;;) {
    i = skip_ows(ct, i, len);
    if (i == len) break;
    if (ct[i] != ';') {
      msg = "malformed Content-Type parameters";
      goto fail;
    }
    i = skip_ows(ct, i + 1, len);
    if (i == len) break; /* a trailing ';' is harmless */
    size_t ns = i;
    i = token_end(ct, i, len);
    size_t ne = i;
    sl_str v;
    if (ne == ns || i >= len || ct[i] != '=' || (i++, param_value(ct, &i, len, &v)) != 0) {
      msg = "malformed Content-Type parameters";
      goto fail;
    }
    if (!sl_strcaseeq(ct + ns, ne - ns, "boundary")) continue;
    if (b.ptr) {
      msg = "two boundary parameters";
      goto fail;
    }
    b = v;
  }
  if (b.ptr == NULL) {
    msg = "no boundary in Content-Type";
    goto fail;
  }
  if (b.len < 1 || b.len > MAX_BOUNDARY || b.ptr[b.len - 1] == ' ') {
    msg = "boundary must have 1 to 70 characters and not end in a space";
    goto fail;
  }
  for (size_t j = 0; j < b.len; j++)
    if (!is_bchar((unsigned char)b.ptr[j])) {
      msg = "invalid character in boundary";
      goto fail;
    }
  *boundary = b;
  if (why) *why = "";
  return 0;
fail:
  if (why) *why = msg;
  return SL_EPROTO;
}

/* ---- lifecycle ------------------------------------------------------- */

sl_multipart *sl_multipart_new(const char *ct, size_t len,
                               const sl_multipart_opts *o, int *err) {
  sl_multipart_opts opts = {0};
  sl_str b;
  int rc = SL_EINVAL;
  if (o) opts = *o;
  if (!opts.max_head) opts.max_head = DEFAULT_MAX_HEAD;
  if (!opts.max_parts) opts.max_parts = DEFAULT_MAX_PARTS;
  if (ct == NULL || opts.max_head < MIN_MAX_HEAD || opts.max_head > SIZE_MAX / 2) goto fail;
  rc = sl_multipart_boundary(ct, len, &b, NULL);
  if (rc) goto fail;
  size_t size = sizeof(sl_multipart) + opts.max_head;
  sl_multipart *mp = sl__calloc(size, SL_MEM_META);
  if (mp == NULL) {
    rc = SL_ENOMEM;
    goto fail;
  }
  mp->o = opts;
  mp->size = size;
  memcpy(mp->dlm, "\r\n--", 4);
  memcpy(mp->dlm + 4, b.ptr, b.len);
  mp->dlen = 4 + b.len;
  mp->state = MP_PREAMBLE;
  mp->k = 2; /* the body's start stands for the CRLF before a delimiter */
  return mp;
fail:
  if (err) *err = rc;
  return NULL;
}

void sl_multipart_free(sl_multipart *mp) {
  if (mp) sl__free(mp, mp->size, SL_MEM_META);
}

int sl_multipart_finish(const sl_multipart *mp) {
  if (mp->state == MP_FAILED) return mp->err;
  return mp->state == MP_EPILOGUE ? 0 : SL_EPROTO;
}

const char *sl_multipart_error(const sl_multipart *mp) {
  if (mp->state == MP_FAILED) return mp->why;
  if (mp->state != MP_EPILOGUE) return "body ended before the closing boundary";
  return "";
}

size_t sl_multipart_parts(const sl_multipart *mp) { return mp->nparts; }

/* ---- part headers ---------------------------------------------------- */

/* Content-Disposition: form-data *( OWS ";" OWS param ) (RFC 7578 4.2,
 * RFC 6266 4.1). filename* is ignored, as RFC 7578 4.2 asks. */
static int disposition(sl_multipart *mp, const char *v, size_t n) {
  sl_multipart_part *p = &mp->part;
  size_t i = token_end(v, 0, n);
  int have_name = 0;
  if (!sl_strcaseeq(v, i, "form-data"))
    return fail(mp, SL_EPROTO, "part %zu: Content-Disposition is not form-data", p->index);
  for (;;) {
    i = skip_ows(v, i, n);
    if (i == n) break;
    if (v[i] != ';') goto bad;
    i = skip_ows(v, i + 1, n);
    if (i == n) break;
    size_t ns = i;
    i = token_end(v, i, n);
    size_t ne = i;
    sl_str val;
    if (ne == ns || i >= n || v[i] != '=') goto bad;
    i = skip_ows(v, i + 1, n);
    if (param_value(v, &i, n, &val) != 0) goto bad;
    if (sl_strcaseeq(v + ns, ne - ns, "name")) {
      if (have_name) goto dup;
      have_name = 1;
      p->name = val;
    } else if (sl_strcaseeq(v + ns, ne - ns, "filename")) {
      if (p->has_filename) goto dup;
      p->has_filename = 1;
      p->filename = val;
    }
  }
  if (!have_name)
    return fail(mp, SL_EPROTO, "part %zu: no name in Content-Disposition", p->index);
  return 0;
bad:
  return fail(mp, SL_EPROTO, "part %zu: malformed Content-Disposition", p->index);
dup:
  return fail(mp, SL_EPROTO, "part %zu: repeated Content-Disposition parameter", p->index);
}

/* The header block head[0, hlen), which ends in CRLF CRLF. */
static int parse_head(sl_multipart *mp) {
  sl_multipart_part *p = &mp->part;
  const char *h = mp->head;
  size_t end = mp->hlen - 2, i = 0;
  int have_cd = 0, have_ct = 0;
  while (i < end) {
    const char *crlf = NULL;
    for (size_t j = i; j + 1 < mp->hlen; j++) {
      if (h[j] == '\r' && h[j + 1] == '\n') {
        crlf = h + j;
        break;
      }
      if (h[j] == '\r' || h[j] == '\n')
        return fail(mp, SL_EPROTO, "part %zu: bare CR or LF in headers", p->index);
    }
    size_t le = (size_t)(crlf - h); /* a CRLF always ends the block */
    /* obs-fold (RFC 9112 5.2) is refused, also on the line after this. */
    if (h[i] == ' ' || h[i] == '\t' || (le + 2 < end && (h[le + 2] == ' ' || h[le + 2] == '\t')))
      return fail(mp, SL_EPROTO, "part %zu: folded header line", p->index);
    const char *colon = memchr(h + i, ':', le - i);
    if (colon == NULL)
      return fail(mp, SL_EPROTO, "part %zu: header line without colon", p->index);
    size_t ne = (size_t)(colon - h);
    if (ne == i || token_end(h, i, ne) != ne)
      return fail(mp, SL_EPROTO, "part %zu: invalid header name", p->index);
    size_t vs = skip_ows(h, ne + 1, le), ve = le;
    while (ve > vs && (h[ve - 1] == ' ' || h[ve - 1] == '\t')) ve--;
    for (size_t j = vs; j < ve; j++) {
      unsigned char c = (unsigned char)h[j];
      if ((c < 0x20 && c != '\t') || c == 0x7f)
        return fail(mp, SL_EPROTO, "part %zu: control character in a header", p->index);
    }
    if (sl_strcaseeq(h + i, ne - i, "Content-Disposition")) {
      if (have_cd++) return fail(mp, SL_EPROTO, "part %zu: two Content-Disposition headers", p->index);
      if (disposition(mp, h + vs, ve - vs)) return mp->err;
    } else if (sl_strcaseeq(h + i, ne - i, "Content-Type")) {
      if (have_ct++) return fail(mp, SL_EPROTO, "part %zu: two Content-Type headers", p->index);
      p->content_type.ptr = h + vs;
      p->content_type.len = ve - vs;
    }
    i = le + 2;
  }
  if (!have_cd)
    return fail(mp, SL_EPROTO, "part %zu: no Content-Disposition header", p->index);
  return 0;
}

/* ---- the body -------------------------------------------------------- */

static int emit(sl_multipart *mp, const char *d, size_t n) {
  sl_multipart_part *p = &mp->part;
  if (mp->o.max_part && n > mp->o.max_part - p->size)
    return fail(mp, SL_EMSGSIZE, "part %zu: larger than max_part", p->index);
  p->size += n;
  if (mp->o.on_data) {
    int rc = mp->o.on_data(p, d, n, mp->o.arg);
    if (rc) return fail(mp, rc, "part %zu: stopped by the application", p->index);
  }
  return 0;
}

/* Past a delimiter: the closing "--", or blanks then CRLF and a new
 * part. */
static int after_delimiter(sl_multipart *mp, unsigned char c) {
  switch (mp->after) {
    case MP_AF_START:
      if (c == '-') mp->after = MP_AF_DASH;
      else if (c == ' ' || c == '\t') mp->after = MP_AF_PAD;
      else if (c == '\r') mp->after = MP_AF_CR;
      else return fail(mp, SL_EPROTO, "a delimiter followed by other text (boundary in the data?)");
      return 0;
    case MP_AF_DASH:
      if (c != '-') return fail(mp, SL_EPROTO, "a delimiter followed by a single '-'");
      mp->state = MP_EPILOGUE;
      return 0;
    case MP_AF_PAD:
      if (c == '\r') mp->after = MP_AF_CR;
      else if (c != ' ' && c != '\t') return fail(mp, SL_EPROTO, "a delimiter followed by other text");
      return 0;
    default: /* MP_AF_CR */
      if (c != '\n') return fail(mp, SL_EPROTO, "a delimiter line without CRLF");
      if (mp->nparts == mp->o.max_parts)
        return fail(mp, SL_EMSGSIZE, "more than %zu parts", mp->o.max_parts);
      memset(&mp->part, 0, sizeof(mp->part));
      mp->part.index = mp->nparts;
      mp->hlen = 0;
      mp->state = MP_HEAD;
      return 0;
  }
}

static int head_byte(sl_multipart *mp, char c) {
  if (mp->hlen == mp->o.max_head)
    return fail(mp, SL_EMSGSIZE, "part %zu: headers longer than %zu bytes", mp->part.index,
                mp->o.max_head);
  mp->head[mp->hlen++] = c;
  if (c != '\n') return 0;
  if (mp->hlen == 2 && mp->head[0] == '\r')
    return fail(mp, SL_EPROTO, "part %zu: no Content-Disposition header", mp->part.index);
  if (mp->hlen < 4 || memcmp(mp->head + mp->hlen - 4, "\r\n\r\n", 4) != 0) return 0;
  if (parse_head(mp)) return mp->err;
  mp->nparts++;
  mp->state = MP_DATA;
  mp->k = 0;
  if (mp->o.on_part) {
    int rc = mp->o.on_part(&mp->part, mp->o.arg);
    if (rc) return fail(mp, rc, "part %zu: stopped by the application", mp->part.index);
  }
  return 0;
}

/* Preamble or data: look for the delimiter. Returns the bytes used. */
static size_t scan(sl_multipart *mp, const char *d, size_t n) {
  int data = mp->state == MP_DATA;
  size_t i = 0;
  while (i < n) {
    if (mp->k == 0) {
      const char *cr = memchr(d + i, '\r', n - i);
      size_t run = cr ? (size_t)(cr - (d + i)) : n - i;
      if (run && data && emit(mp, d + i, run)) return i;
      i += run;
      if (cr == NULL) break;
      mp->k = 1;
      i++;
      continue;
    }
    if (d[i] == mp->dlm[mp->k]) {
      i++;
      if (++mp->k < mp->dlen) continue;
      mp->k = 0;
      mp->state = MP_AFTER;
      mp->after = MP_AF_START;
      if (data && mp->o.on_end) {
        int rc = mp->o.on_end(&mp->part, mp->o.arg);
        if (rc) fail(mp, rc, "part %zu: stopped by the application", mp->part.index);
      }
      return i;
    }
    /* No match: the bytes matched were the delimiter's first k. */
    size_t k = mp->k;
    mp->k = 0;
    if (data && emit(mp, mp->dlm, k)) return i;
  }
  return i;
}

int sl_multipart_feed(sl_multipart *mp, const void *data, size_t len) {
  const char *d = data;
  size_t i = 0;
  if (mp == NULL || (data == NULL && len)) return SL_EINVAL;
  while (i < len) {
    switch (mp->state) {
      case MP_FAILED:
        return mp->err;
      case MP_EPILOGUE:
        return 0;
      case MP_PREAMBLE:
      case MP_DATA:
        i += scan(mp, d + i, len - i);
        break;
      case MP_AFTER:
        after_delimiter(mp, (unsigned char)d[i++]);
        break;
      default: /* MP_HEAD */
        head_byte(mp, d[i++]);
        break;
    }
  }
  return mp->state == MP_FAILED ? mp->err : 0;
}
