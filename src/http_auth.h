/*
 * HTTP authentication helpers (RFC 9110 section 11), pure and without
 * allocation: read an Authorization header (Basic, Bearer, Digest), check a
 * Basic credential, read a Digest challenge from WWW-Authenticate and answer
 * it as a client (RFC 7616, RFC 2617; MD5 and MD5-sess, qop=auth or the old
 * RFC 2069 form), and check a Digest answer as a server.
 *
 * Nonces, cnonces and their lifetimes are the caller's: these functions
 * have no clock, no random source and no memory between calls.
 *
 * Every function is pure over its arguments: any thread may call it, on its
 * own data.
 *
 * Example (client, after a 401):
 *   sl_digest_challenge ch;
 *   if (sl__http_digest_challenge(*www_auth, &ch) == 0)
 *     sl__http_digest_authorization(&ch, "user", "pw", "GET", "/x",
 *                                   cnonce, 1, hdr, sizeof(hdr));
 */
#ifndef SL_HTTP_AUTH_H
#define SL_HTTP_AUTH_H

#include <stddef.h>

#include "http_parse.h"

/* Schemes sl__http_auth_parse tells apart. */
enum {
  SL_AUTH_NONE,   /* empty header value */
  SL_AUTH_BASIC,  /* RFC 7617 */
  SL_AUTH_BEARER, /* RFC 6750 */
  SL_AUTH_DIGEST, /* RFC 7616 */
  SL_AUTH_OTHER   /* any other, well-formed scheme */
};

/* A parsed Authorization (or Proxy-Authorization) value. Every sl_str
 * points into the parsed value (borrowed: valid as long as it is). A quoted
 * value is given without its quotes but with any backslash escapes left in
 * place; `escaped` is 1 when one was seen (sl__http_unquote removes them). */
typedef struct sl_http_auth {
  int scheme;  /* SL_AUTH_* */
  sl_str name; /* the scheme as sent ("Basic") */
  sl_str token; /* Basic: the base64 user-pass; Bearer: the token */
  /* Digest parameters (RFC 7616 section 3.4); empty when absent. */
  sl_str username, realm, nonce, uri, response, algorithm, qop, nc, cnonce,
      opaque;
  int escaped;
} sl_http_auth;

/* Parse an Authorization header value `v` (borrowed) into `out` (caller's
 * storage, overwritten). Scheme names are case-insensitive. Basic and
 * Bearer need a token68 (RFC 9110 section 11.2); Digest needs auth-params
 * with no repeated name, and username, realm, nonce, uri and response.
 * Returns 0, or -1 when malformed (then `out` is unspecified). */
int sl__http_auth_parse(sl_str v, sl_http_auth *out);

/* Copy the quoted-string content `v` (borrowed, without its quotes, as in
 * sl_http_auth) to `out` with backslash escapes removed, plus a NUL.
 * Returns the length, or -1 when it does not fit in `outcap` bytes. */
int sl__http_unquote(sl_str v, char *out, size_t outcap);

/* Decode a Basic token (RFC 7617: base64 of "user:password") into `user`
 * and `pass` (caller's buffers of ucap and pcap bytes, NUL-terminated).
 * Returns 0, or -1 when the base64 is invalid (strict RFC 4648, padding
 * required), there is no ':', a control character is present, the decoded
 * credentials exceed 511 bytes, or a part does not fit. */
int sl__http_basic_decode(sl_str token, char *user, size_t ucap, char *pass,
                          size_t pcap);

/* 1 when the Authorization value `v` (borrowed) is Basic with exactly
 * `user` and `pass` (NUL-terminated, borrowed), else 0. The time taken does
 * not depend on where a wrong credential first differs. */
int sl__http_basic_check(sl_str v, const char *user, const char *pass);

/* Sizes of the challenge fields a client keeps, NUL included. */
#define SL_DIGEST_FIELD_MAX 256

/* A Digest challenge, copied out of the header and unquoted, so the
 * header's buffer may go away. Caller's storage. */
typedef struct sl_digest_challenge {
  char realm[SL_DIGEST_FIELD_MAX];
  char nonce[SL_DIGEST_FIELD_MAX];
  char opaque[SL_DIGEST_FIELD_MAX];
  int has_opaque;    /* echo opaque back */
  int has_algorithm; /* the server named the algorithm: echo it back */
  int sess;          /* algorithm=MD5-sess */
  int qop_auth;      /* qop offered "auth"; 0 = RFC 2069 form, no qop */
  int stale;         /* stale=true: retry with the new nonce, same user */
} sl_digest_challenge;

/* Find the Digest challenge in a WWW-Authenticate (or Proxy-Authenticate)
 * value `v` (borrowed; it may hold several challenges, e.g. "Basic
 * realm=..., Digest realm=...") and fill `out`.
 * Returns 0; -1 when there is no well-formed Digest challenge with realm
 * and nonce, or a field is longer than SL_DIGEST_FIELD_MAX - 1; -2 when the
 * challenge needs what we lack: an algorithm other than MD5 and MD5-sess
 * (SHA-256, ...; look at the next WWW-Authenticate line), or a qop list
 * without "auth". */
int sl__http_digest_challenge(sl_str v, sl_digest_challenge *out);

/* The inputs of one Digest computation, all borrowed, unquoted. */
typedef struct sl_digest_params {
  sl_str user, realm, pass, method, uri, nonce;
  sl_str qop;    /* "auth", or empty for the RFC 2069 form */
  sl_str nc;     /* 8 hex digits, e.g. "00000001" (with qop only) */
  sl_str cnonce; /* with qop or MD5-sess */
  int sess;      /* MD5-sess */
} sl_digest_params;

/* Compute the Digest "response" value (RFC 7616 section 3.4.1, MD5) as 32
 * lowercase hex digits and a NUL into `out`. */
void sl__http_digest_response(const sl_digest_params *d, char out[33]);

/* Write the value of the Authorization header answering challenge `ch` for
 * `user`, `pass`, `method`, `uri` (the request-target as sent), with client
 * nonce `cnonce` and nonce count `nc` (1 for the first request with this
 * nonce) into `out` (`outcap` bytes), NUL-terminated. All strings are
 * NUL-terminated and borrowed; the caller picks cnonce (random, no '"').
 * Returns the length, or -1 when it does not fit or an argument holds a
 * control character (it could not be sent in a header). */
int sl__http_digest_authorization(const sl_digest_challenge *ch,
                                  const char *user, const char *pass,
                                  const char *method, const char *uri,
                                  const char *cnonce, unsigned long nc,
                                  char *out, size_t outcap);

/* Server side: 1 when the Digest credentials `a` (from sl__http_auth_parse)
 * carry the right response for `method` and the password `pass` (borrowed),
 * else 0. It checks the arithmetic only: the caller must check that
 * a->realm is its realm, a->nonce one it issued and still fresh, a->nc not
 * replayed, and a->uri the request-target. Credentials whose username,
 * realm, nonce or cnonce exceed 255 bytes, or uri 1023, are refused (0).
 * The comparison takes the same time wherever the response differs. */
int sl__http_digest_check(const sl_http_auth *a, const char *method,
                          const char *pass);

#endif
