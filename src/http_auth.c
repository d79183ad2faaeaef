/*
 * Authorization and WWW-Authenticate (RFC 9110 section 11), Basic (RFC
 * 7617) and Digest (RFC 7616, which obsoletes RFC 2617; MD5 only).
 *
 *   credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
 *   challenge   = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
 *   auth-param  = token BWS "=" BWS ( token / quoted-string )
 *
 * A WWW-Authenticate value is a comma list of challenges whose parameters
 * are themselves comma-separated, so a challenge ends where a token is
 * followed by something other than "=": that token is the next scheme.
 */
#include "http_auth.h"

#include <limits.h>
#include <string.h>

#include "base64.h"
#include "md5.h"

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static int ieq(sl_str s, const char *lit) {
  size_t i = 0;
  for (; i < s.len; i++)
    if (lit[i] == '\0' ||
        lower((unsigned char)s.ptr[i]) != lower((unsigned char)lit[i]))
      return 0;
  return lit[i] == '\0';
}

static int is_ws(int c) { return c == ' ' || c == '\t'; }

static int is_tchar(int c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
         (c >= 'A' && c <= 'Z') || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

/* token68 characters, '=' padding aside (RFC 9110 section 11.2). */
static int is_t68(int c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
         (c >= 'A' && c <= 'Z') || (c != '\0' && strchr("-._~+/", c));
}

/* What a quoted-string may carry, escaped or not: HTAB, SP, VCHAR,
 * obs-text (RFC 9110 section 5.6.4). */
static int is_qchar(int c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static sl_str span(const char *s, const char *e) {
  sl_str r = {s, (size_t)(e - s)};
  return r;
}

/* Read a token at *p. Returns it (empty when none) and advances *p. */
static sl_str token(const char **p, const char *e) {
  const char *s = *p;
  while (*p < e && is_tchar((unsigned char)**p)) (*p)++;
  return span(s, *p);
}

/* Read the next auth-param at *p, after skipping OWS and commas.
 * Returns 1 with *name, *val (quotes stripped) set and *p past it; 0 at the
 * end of the value or at the start of the next scheme (a token not followed
 * by "="), with *p there; -1 when malformed. */
static int param(const char **pp, const char *e, sl_str *name, sl_str *val,
                 int *escaped) {
  const char *p = *pp;
  while (p < e && (is_ws((unsigned char)*p) || *p == ',')) p++;
  *pp = p;
  *name = token(&p, e);
  if (name->len == 0) return p == e ? 0 : -1;
  while (p < e && is_ws((unsigned char)*p)) p++;
  if (p == e || *p != '=') return 0;
  for (p++; p < e && is_ws((unsigned char)*p); p++) {
  }
  if (p < e && *p == '"') {
    const char *s = ++p;
    for (; p < e && *p != '"'; p++) {
      if (*p == '\\') {
        if (++p == e) return -1;
        *escaped = 1;
      }
      if (!is_qchar((unsigned char)*p)) return -1;
    }
    if (p == e) return -1;
    *val = span(s, p++);
  } else {
    *val = token(&p, e);
    if (val->len == 0) return -1;
  }
  while (p < e && is_ws((unsigned char)*p)) p++;
  if (p < e && *p != ',') return -1;
  *pp = p;
  return 1;
}

/* token68 after the scheme, to the end of the value. */
static int token68(const char *p, const char *e, sl_str *out) {
  const char *s = p;
  while (p < e && is_t68((unsigned char)*p)) p++;
  if (p == s) return -1;
  while (p < e && *p == '=') p++;
  *out = span(s, p);
  while (p < e && is_ws((unsigned char)*p)) p++;
  return p == e ? 0 : -1;
}

int sl__http_auth_parse(sl_str v, sl_http_auth *out) {
  memset(out, 0, sizeof(*out));
  if (v.len == 0) return 0; /* SL_AUTH_NONE */
  const char *p = v.ptr, *e = v.ptr + v.len;
  while (p < e && is_ws((unsigned char)*p)) p++;
  out->name = token(&p, e);
  if (out->name.len == 0) return -1;
  if (p < e && *p != ' ') return -1;
  while (p < e && *p == ' ') p++;
  if (ieq(out->name, "basic")) {
    out->scheme = SL_AUTH_BASIC;
    return token68(p, e, &out->token);
  }
  if (ieq(out->name, "bearer")) {
    out->scheme = SL_AUTH_BEARER;
    return token68(p, e, &out->token);
  }
  if (!ieq(out->name, "digest")) {
    out->scheme = SL_AUTH_OTHER;
    return 0;
  }
  out->scheme = SL_AUTH_DIGEST;
  static const char *const names[] = {"username", "realm",     "nonce",
                                      "uri",      "response",  "algorithm",
                                      "qop",      "nc",        "cnonce",
                                      "opaque"};
  sl_str *fields[] = {&out->username, &out->realm,     &out->nonce,
                      &out->uri,      &out->response,  &out->algorithm,
                      &out->qop,      &out->nc,        &out->cnonce,
                      &out->opaque};
  sl_str name, val;
  int r;
  while ((r = param(&p, e, &name, &val, &out->escaped)) == 1) {
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
      if (!ieq(name, names[i])) continue;
      /* RFC 9110 11.2: a parameter name occurs once; a second value is
       * ambiguous, and ambiguity in credentials is refused. */
      if (fields[i]->ptr) return -1;
      *fields[i] = val;
    }
  }
  if (r < 0 || p != e) return -1;
  if (!out->username.ptr || !out->realm.ptr || !out->nonce.ptr ||
      !out->uri.ptr || !out->response.ptr)
    return -1;
  return 0;
}

int sl__http_unquote(sl_str v, char *out, size_t outcap) {
  size_t n = 0;
  for (size_t i = 0; i < v.len; i++) {
    if (v.ptr[i] == '\\' && i + 1 < v.len) i++;
    if (n + 1 >= outcap) return -1;
    out[n++] = v.ptr[i];
  }
  if (outcap == 0 || n > INT_MAX) return -1;
  out[n] = '\0';
  return (int)n;
}

int sl__http_basic_decode(sl_str token, char *user, size_t ucap, char *pass,
                          size_t pcap) {
  /* 255 bytes each is more than any real credential; the budget keeps the
   * buffer on the stack. */
  unsigned char buf[512];
  int n = sl__base64_decode(token.ptr, token.len, buf, sizeof(buf));
  if (n < 0) return -1;
  const unsigned char *colon = memchr(buf, ':', (size_t)n);
  if (!colon) return -1;
  for (int i = 0; i < n; i++)
    if (buf[i] < 0x20 || buf[i] == 0x7f) return -1; /* RFC 7617 section 2 */
  size_t ul = (size_t)(colon - buf), pl = (size_t)n - ul - 1;
  if (ul >= ucap || pl >= pcap) return -1;
  memcpy(user, buf, ul);
  user[ul] = '\0';
  memcpy(pass, colon + 1, pl);
  pass[pl] = '\0';
  return 0;
}

/* Equality whose time depends on the lengths only, not on the contents. */
static int ct_eq(const char *a, size_t alen, const char *b, size_t blen) {
  unsigned char d = alen != blen;
  for (size_t i = 0; i < alen; i++)
    d |= (unsigned char)(a[i] ^ (i < blen ? b[i] : 0));
  return d == 0;
}

int sl__http_basic_check(sl_str v, const char *user, const char *pass) {
  sl_http_auth a;
  char u[256], p[256];
  if (sl__http_auth_parse(v, &a) < 0 || a.scheme != SL_AUTH_BASIC ||
      sl__http_basic_decode(a.token, u, sizeof(u), p, sizeof(p)) < 0)
    return 0;
  int ok = ct_eq(u, strlen(u), user, strlen(user));
  ok &= ct_eq(p, strlen(p), pass, strlen(pass));
  return ok;
}

int sl__http_digest_challenge(sl_str v, sl_digest_challenge *out) {
  memset(out, 0, sizeof(*out));
  if (v.len == 0) return -1;
  const char *p = v.ptr, *e = v.ptr + v.len;
  for (;;) {
    while (p < e && (is_ws((unsigned char)*p) || *p == ',')) p++;
    sl_str scheme = token(&p, e);
    if (scheme.len == 0) return -1;
    if (p < e && *p != ' ' && *p != ',') return -1;
    int digest = ieq(scheme, "digest"), r, esc = 0, seen_realm = 0;
    int seen_nonce = 0, unsupported = 0;
    sl_str name, val;
    while ((r = param(&p, e, &name, &val, &esc)) == 1) {
      if (!digest) continue;
      char *dst = NULL;
      if (ieq(name, "realm")) {
        dst = out->realm;
        seen_realm++;
      } else if (ieq(name, "nonce")) {
        dst = out->nonce;
        seen_nonce++;
      } else if (ieq(name, "opaque")) {
        dst = out->opaque;
        out->has_opaque++;
      } else if (ieq(name, "algorithm")) {
        out->has_algorithm++;
        if (ieq(val, "md5-sess")) out->sess = 1;
        else if (!ieq(val, "md5")) unsupported = 1;
      } else if (ieq(name, "qop")) {
        /* a quoted list, "auth,auth-int"; some servers leave it unquoted */
        sl_str l = val;
        unsupported |= 2;
        for (const char *q = l.ptr, *qe = l.ptr + l.len; q < qe;) {
          while (q < qe && (is_ws((unsigned char)*q) || *q == ',')) q++;
          sl_str t = token(&q, qe);
          if (ieq(t, "auth")) {
            out->qop_auth = 1;
            unsupported &= ~2;
          }
          if (t.len == 0 && q < qe) q++;
        }
      } else if (ieq(name, "stale")) {
        out->stale = ieq(val, "true");
      }
      if (dst && sl__http_unquote(val, dst, SL_DIGEST_FIELD_MAX) < 0)
        return -1;
    }
    if (r < 0) return -1;
    if (digest) {
      if (seen_realm != 1 || seen_nonce != 1 || out->has_opaque > 1 ||
          out->has_algorithm > 1)
        return -1;
      return unsupported ? -2 : 0;
    }
    if (p == e) return -1;
  }
}

/* MD5 over the parts joined by ':', as hex. */
static void md5_join(const sl_str *parts, int n, char hex[33]) {
  sl_md5 c;
  unsigned char d[16];
  sl__md5_init(&c);
  for (int i = 0; i < n; i++) {
    if (i) sl__md5_update(&c, ":", 1);
    sl__md5_update(&c, parts[i].ptr, parts[i].len);
  }
  sl__md5_final(&c, d);
  sl__md5_tohex(d, hex);
}

void sl__http_digest_response(const sl_digest_params *d, char out[33]) {
  char ha1[33], ha2[33];
  /* RFC 7616 section 3.4.2: A1 = user:realm:pass, and for -sess
   * H(user:realm:pass):nonce:cnonce. 3.4.3: A2 = method:uri (qop=auth). */
  sl_str a1[3] = {d->user, d->realm, d->pass};
  md5_join(a1, 3, ha1);
  if (d->sess) {
    sl_str s[3] = {{ha1, 32}, d->nonce, d->cnonce};
    md5_join(s, 3, ha1);
  }
  sl_str a2[2] = {d->method, d->uri};
  md5_join(a2, 2, ha2);
  /* 3.4.1: KD(H(A1), nonce:nc:cnonce:qop:H(A2)); without qop, the RFC 2069
   * form KD(H(A1), nonce:H(A2)). */
  if (d->qop.len) {
    sl_str r[6] = {{ha1, 32}, d->nonce, d->nc, d->cnonce, d->qop, {ha2, 32}};
    md5_join(r, 6, out);
  } else {
    sl_str r[3] = {{ha1, 32}, d->nonce, {ha2, 32}};
    md5_join(r, 3, out);
  }
}

/* A bounded writer: on overflow it remembers the failure and stops. */
struct w {
  char *p;
  size_t n, cap;
  int bad;
};

static void put(struct w *w, const char *s, size_t n) {
  if (w->bad || n >= w->cap - w->n) {
    w->bad = 1;
    return;
  }
  memcpy(w->p + w->n, s, n);
  w->n += n;
}

static void puts_(struct w *w, const char *s) { put(w, s, strlen(s)); }

/* name="value" with '"' and '\\' escaped; a control character cannot be
 * carried in a header at all. */
static void put_quoted(struct w *w, const char *name, const char *s) {
  puts_(w, name);
  put(w, "=\"", 2);
  for (; *s; s++) {
    if (!is_qchar((unsigned char)*s)) w->bad = 1;
    if (*s == '"' || *s == '\\') put(w, "\\", 1);
    put(w, s, 1);
  }
  put(w, "\"", 1);
}

static sl_str cs(const char *s) {
  sl_str r = {s, strlen(s)};
  return r;
}

int sl__http_digest_authorization(const sl_digest_challenge *ch,
                                  const char *user, const char *pass,
                                  const char *method, const char *uri,
                                  const char *cnonce, unsigned long nc,
                                  char *out, size_t outcap) {
  static const char hexd[] = "0123456789abcdef";
  char ncs[9], resp[33];
  for (int i = 0; i < 8; i++) ncs[i] = hexd[(nc >> (28 - 4 * i)) & 15];
  ncs[8] = '\0';
  sl_digest_params d = {cs(user), cs(ch->realm), cs(pass), cs(method),
                        cs(uri), cs(ch->nonce), cs(ch->qop_auth ? "auth" : ""),
                        cs(ncs), cs(cnonce), ch->sess};
  sl__http_digest_response(&d, resp);

  struct w w = {out, 0, outcap, outcap == 0};
  puts_(&w, "Digest ");
  put_quoted(&w, "username", user);
  put_quoted(&w, ", realm", ch->realm);
  put_quoted(&w, ", nonce", ch->nonce);
  put_quoted(&w, ", uri", uri);
  if (ch->has_algorithm) puts_(&w, ch->sess ? ", algorithm=MD5-sess" : ", algorithm=MD5");
  if (ch->qop_auth) {
    puts_(&w, ", qop=auth, nc=");
    puts_(&w, ncs);
  }
  if (ch->qop_auth || ch->sess) put_quoted(&w, ", cnonce", cnonce);
  put_quoted(&w, ", response", resp);
  if (ch->has_opaque) put_quoted(&w, ", opaque", ch->opaque);
  for (const char *s = method; *s; s++)
    if (!is_tchar((unsigned char)*s)) w.bad = 1;
  if (w.bad || w.n > INT_MAX) return -1;
  out[w.n] = '\0';
  return (int)w.n;
}

int sl__http_digest_check(const sl_http_auth *a, const char *method,
                          const char *pass) {
  char user[256], realm[256], nonce[256], uri[1024], cnonce[256], resp[33];
  if (a->scheme != SL_AUTH_DIGEST || a->response.len != 32 ||
      sl__http_unquote(a->username, user, sizeof(user)) < 0 ||
      sl__http_unquote(a->realm, realm, sizeof(realm)) < 0 ||
      sl__http_unquote(a->nonce, nonce, sizeof(nonce)) < 0 ||
      sl__http_unquote(a->uri, uri, sizeof(uri)) < 0 ||
      sl__http_unquote(a->cnonce, cnonce, sizeof(cnonce)) < 0)
    return 0;
  int sess = 0;
  if (a->algorithm.len && !ieq(a->algorithm, "md5")) {
    if (!ieq(a->algorithm, "md5-sess")) return 0;
    sess = 1;
  }
  /* qop=auth needs nc and cnonce; no qop is the RFC 2069 form, which a
   * server may refuse (the caller can require a->qop). */
  if (a->qop.len && (!ieq(a->qop, "auth") || a->nc.len != 8 || !a->cnonce.len))
    return 0;
  if (sess && !a->cnonce.len) return 0;
  sl_digest_params d = {cs(user), cs(realm), cs(pass), cs(method), cs(uri),
                        cs(nonce), a->qop, a->nc, cs(cnonce), sess};
  sl__http_digest_response(&d, resp);
  /* The client may send the hex digits in either case. */
  char got[32];
  for (int i = 0; i < 32; i++) got[i] = (char)lower((unsigned char)a->response.ptr[i]);
  return ct_eq(got, 32, resp, 32);
}
