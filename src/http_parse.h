/*
 * The HTTP/1.1 wire parsers (RFC 9110, RFC 9112), with no I/O and no
 * allocation: request and response heads, the chunked body decoder, and the
 * small pure helpers a server needs around them (percent-decoding, query
 * parameters, Range, turning a URI path into a safe relative file path).
 *
 * Ownership: every sl_str these functions fill points INTO the caller's
 * input buffer (never copied, never NUL-terminated) and stays valid as long
 * as that buffer does; the single exception is documented at `path` below.
 * No function reads a byte at or past buf + len, and none keeps state
 * between calls except in storage the caller passes (sl_chunked).
 *
 * Every function is pure over its arguments: any thread may call it, on its
 * own data.
 *
 * Example (a server with bytes in `in`, `n` long):
 *   sl_http_msg m;
 *   int r = sl__http_parse_request(in, n, NULL, &m);
 *   if (r == 0) wait for more;  else if (r < 0) answer -r and close;
 *   else the head is m, the body (m.content_length or m.chunked) at in + r.
 */
#ifndef SL_HTTP_PARSE_H
#define SL_HTTP_PARSE_H

#include <stddef.h>

/* sl_str, sl_http_header and sl_http_msg are public: include/sluice.h. */
#include "sluice.h"

/* Size limits for a head. A field left at 0 means "use the default". */
typedef struct sl_http_limits {
  size_t max_request_line; /* bytes of the start line without its line
                              ending; default 8192; exceeded -> 414 */
  size_t max_head;         /* start line + headers + blank line, all
                              line endings included; default 16384;
                              exceeded -> 431 */
  size_t max_headers;      /* header lines; default 64, at most
                              SL_HTTP_MAX_HEADERS; exceeded -> 431 */
} sl_http_limits;

/* ------------------------------------------------------------------ */
/* Heads                                                               */
/* ------------------------------------------------------------------ */

/* Fill `l` (caller's storage) with the defaults above. */
void sl__http_limits_default(sl_http_limits *l);

/* Parse a request head from the start of `buf` (`len` bytes, borrowed).
 * `lim` is borrowed for the call; NULL means the defaults. Stateless: call
 * it again on the whole buffer when more bytes arrive. `out` (caller's
 * storage) is overwritten on every call; its fields are meaningful only when
 * the return value is > 0, and its sl_str point into `buf`.
 *
 * Returns:
 *   > 0   the head is complete; the value is head_len (the body or the next
 *         pipelined request starts at buf + head_len);
 *   0     the bytes so far are a valid beginning: wait for more;
 *   < 0   -(the status to answer, then close):
 *     -400  malformed: bad syntax or characters (NUL and other controls in
 *           names or values, whitespace before a colon, obs-fold, a bare
 *           CR), Transfer-Encoding with Content-Length, several or invalid
 *           Content-Length, Transfer-Encoding in HTTP/1.0 or whose final
 *           coding is not chunked, chunked applied twice, an HTTP/1.1
 *           request without Host, several Host lines, an invalid Host;
 *     -414  request line longer than max_request_line;
 *     -431  head longer than max_head, or more than max_headers lines;
 *     -501  a method other than GET HEAD POST PUT DELETE OPTIONS PATCH, or
 *           a transfer coding other than chunked before the final chunked;
 *     -505  a well-formed version other than HTTP/1.0 and HTTP/1.1.
 * Errors and limits are reported as soon as the bytes that show them have
 * arrived, complete head or not (9 KB of request line without a line ending
 * gives -414 at once), so a caller need not buffer more than max_head.
 * One empty line before the request line is skipped (RFC 9112 section 2.2);
 * a bare LF ends a line like CRLF does; a bare CR is an error.
 * The request-target must be origin-form ("/p?q"), absolute-form
 * ("http://host/p?q" or "https://..."; path and query come from it) or "*"
 * (OPTIONS only). */
int sl__http_parse_request(const char *buf, size_t len,
                           const sl_http_limits *lim, sl_http_msg *out);

/* Why a request head was refused: one list gives the ids (SL_PE_*), the
 * status each one is answered with and a short reason for the error body
 * ("400 Bad Request: header line without colon"). The strings are static
 * and whole; the server words the three limit ones with the limit it used
 * ("header section over 16384 bytes"). */
#define SL_HTTP_PERRS(X)                                                    \
  X(SL_PE_NONE, 0, "no error")                                              \
  X(SL_PE_LINE, 400, "malformed request line")                              \
  X(SL_PE_VERSION, 400, "malformed HTTP version")                           \
  X(SL_PE_TARGET, 400, "malformed request target")                          \
  X(SL_PE_STAR, 400, "request target * outside OPTIONS")                    \
  X(SL_PE_BARE_CR, 400, "bare CR in the head")                              \
  X(SL_PE_NO_COLON, 400, "header line without colon")                       \
  X(SL_PE_FOLD, 400, "folded header line (obs-fold)")                       \
  X(SL_PE_NAME_WS, 400, "whitespace before a header colon")                 \
  X(SL_PE_NAME_EMPTY, 400, "empty header name")                            \
  X(SL_PE_NAME_CHAR, 400, "invalid character in a header name")             \
  X(SL_PE_VALUE_CHAR, 400, "control character in a header value")           \
  X(SL_PE_HOST, 400, "invalid Host")                                        \
  X(SL_PE_NO_HOST, 400, "HTTP/1.1 request without Host")                    \
  X(SL_PE_HOST_DUP, 400, "several Host lines")                              \
  X(SL_PE_CL, 400, "invalid Content-Length")                                \
  X(SL_PE_CL_DUP, 400, "several Content-Length lines")                      \
  X(SL_PE_TE_CL, 400, "Transfer-Encoding with Content-Length")              \
  X(SL_PE_TE_10, 400, "Transfer-Encoding in HTTP/1.0")                      \
  X(SL_PE_TE_LAST, 400, "final transfer coding is not chunked")             \
  X(SL_PE_TE_TWICE, 400, "chunked applied twice")                           \
  X(SL_PE_LINE_LONG, 414, "request line too long")                          \
  X(SL_PE_HEAD_BIG, 431, "header section too large")                        \
  X(SL_PE_TOO_MANY, 431, "too many header lines")                           \
  X(SL_PE_METHOD, 501, "method not implemented")                            \
  X(SL_PE_CODING, 501, "transfer coding not implemented")                   \
  X(SL_PE_VERSION_NS, 505, "HTTP version not supported")

enum sl_http_perr {
#define SL__PE_ENUM(id, status, text) id,
  SL_HTTP_PERRS(SL__PE_ENUM)
#undef SL__PE_ENUM
  SL_PE_COUNT
};

/* The reason text and the status of a SL_PE_* id ("no error" and 0 for an
 * id out of range). */
const char *sl__http_perr_text(int why);
int sl__http_perr_status(int why);

/* sl__http_parse_request, also telling why a head was refused: on a
 * negative return *why (when `why` is not NULL) is the SL_PE_* id whose
 * status is the one returned; otherwise SL_PE_NONE. */
int sl__http_parse_request_why(const char *buf, size_t len,
                               const sl_http_limits *lim, sl_http_msg *out,
                               int *why);

/* Parse a response head (for the HTTP client) the same way: same arguments,
 * ownership and header rules, and `lim` applies (max_request_line to the
 * status line). Returns head_len (> 0), 0 when incomplete, or -1 when
 * malformed or over a limit. The framing rules are as strict as for a
 * request: Transfer-Encoding must be exactly one "chunked" (we never offer
 * another coding) and must not come with Content-Length. With neither, the
 * body runs to the close (RFC 9112 section 6.3) unless the status has none. */
int sl__http_parse_response(const char *buf, size_t len,
                            const sl_http_limits *lim, sl_http_msg *out);

/* Case-insensitive lookup of header `name` (a NUL-terminated string,
 * borrowed) in `m`. Returns a pointer to the first matching value, inside
 * `m`, or NULL when absent. */
const sl_str *sl__http_header(const sl_http_msg *m, const char *name);

/* 1 when `h` (NUL-terminated, borrowed; NULL or "" is fine) is zero or
 * more complete header lines an application may add to a message we send:
 * each is a field name of token characters, a ':', a value without control
 * characters other than HTAB, and CRLF. No empty line (it would end the head
 * early and split the message), no bare CR or LF, nothing after the last
 * CRLF (a missing CRLF would glue the next header onto this one). 0
 * otherwise. The server's reply functions and the HTTP client share it. */
int sl__http_header_lines_ok(const char *h);

/* ------------------------------------------------------------------ */
/* Chunked bodies (RFC 9112 section 7.1)                               */
/* ------------------------------------------------------------------ */

/* Limits the decoder enforces; -1 when exceeded. */
#define SL_CHUNK_EXT_MAX 1024      /* bytes after the size, before CRLF */
#define SL_CHUNK_TRAILER_MAX 8192  /* trailer lines and final CRLF */
#define SL_CHUNK_SIZE_MAX (1ULL << 62)

/* Decoder state: caller's storage, set up by sl__chunked_init. The fields
 * other than `total` are private. */
typedef struct sl_chunked {
  int state;
  unsigned long long remaining; /* data bytes left in the current chunk */
  size_t line_len;  /* bytes of the current size line's digits or
                       extension, or of the trailer section so far */
  unsigned long long total; /* data bytes delivered so far: a caller
                               enforces its body limit with this */
} sl_chunked;

/* Start decoding a new chunked body. */
void sl__chunked_init(sl_chunked *c);

/* Decode the next part of a chunked body from `buf` (`len` bytes, borrowed;
 * `buf` may be NULL when len is 0). Resumable: the input may be split at
 * any byte, the state carries over in `c`.
 *
 * Each call consumes framing and stops right after at most ONE piece of
 * chunk data, which it reports as *data (a pointer into `buf`) and
 * *data_len (0 when the call found no data). It sets *done to 1 once the
 * last chunk, the trailer section and the final CRLF are consumed, and
 * leaves it 0 otherwise; the bytes after them (a pipelined message) are not
 * consumed.
 *
 * Returns the number of bytes consumed (the data piece included), at most
 * `len` and at most INT_MAX; 0 only when len is 0 or the body is already
 * done; or -1 on a malformed body: a size that is not hex, exceeds
 * SL_CHUNK_SIZE_MAX or has more than 64 digits (leading zeros included),
 * whitespace after the size not followed by ';', chunk data not followed
 * by CRLF, a line not ended by CRLF (a bare LF is an error here: smuggling
 * defence), a control character in an extension or trailer, an extension
 * over SL_CHUNK_EXT_MAX or a trailer section over SL_CHUNK_TRAILER_MAX.
 * After -1 every call returns -1.
 * Trailer fields are checked and skipped, never reported.
 *
 * Example:
 *   while ((n = sl__chunked_decode(&st, p, len, &d, &dl, &done)) > 0) {
 *     if (dl) deliver(d, dl);
 *     p += n; len -= n;
 *     if (done) break;
 *   }
 *   if (n < 0) fail; else if (!done) keep p..p+len (nothing: all consumed)
 *   and call again when more bytes arrive. */
int sl__chunked_decode(sl_chunked *c, const char *buf, size_t len,
                       const char **data, size_t *data_len, int *done);

/* ------------------------------------------------------------------ */
/* URLs, ranges, paths                                                 */
/* ------------------------------------------------------------------ */

/* Decode %XX escapes (and '+' to ' ' when is_form is 1, for query strings)
 * of `in` (`len` bytes, borrowed) into `out` (`outcap` bytes, caller's;
 * `out` may equal `in`: decoding never expands). Writes a NUL after the
 * result. Returns the decoded length (it may contain NUL bytes from %00),
 * SL_EINVAL for a bad escape, SL_EMSGSIZE when the result plus its NUL
 * does not fit; a failed call writes nothing. */
int sl__url_decode(const char *in, size_t len, char *out, size_t outcap,
                   int is_form);

/* Measure and check the decoding of `in` (`len` bytes, borrowed) as
 * sl__url_decode would do it, writing nothing: the decoded length, or -1
 * for a bad escape. *has_nul is set to 1 when the result holds a NUL. */
long sl__url_decoded_len(const char *in, size_t len, int is_form, int *has_nul);

/* Find the parameter `name` (NUL-terminated, borrowed) in the query string
 * `q` as sl__http_query_get does, without decoding its value: 1 with *val
 * the raw value (pointing into `q`), or 0 when absent. */
int sl__http_query_find(sl_str q, const char *name, sl_str *val);

/* Find the parameter `name` (NUL-terminated, borrowed) in the query string
 * `q` (borrowed; "a=1&b=2", a leading '?' is skipped) and decode its value,
 * form-style, into `out` with a NUL, as sl__url_decode does. Keys are
 * compared after decoding; the first match wins; "k" alone has an empty
 * value. Returns the value's length, SL_ENOENT when absent, or what
 * sl__url_decode returns for its value (SL_EINVAL, SL_EMSGSIZE). */
int sl__http_query_get(sl_str q, const char *name, char *out, size_t outcap);

/* Interpret a Range header value `v` (borrowed) for a representation of
 * `size` bytes (RFC 9110 section 14). Returns:
 *   1   one satisfiable range: *start and *end (inclusive) are set, clamped
 *       to the size; answer 206;
 *   0   ignore the header and answer 200: not "bytes", bad syntax, more
 *       than one range, or a suffix range of an empty representation;
 *  -1   unsatisfiable: answer 416 (first-pos >= size, or "-0").
 * "bytes=a-b", "bytes=a-", "bytes=-n" (the last n bytes) are understood;
 * numbers too large for 64 bits saturate. */
int sl__http_parse_range(sl_str v, unsigned long long size,
                         unsigned long long *start, unsigned long long *end);

/* Turn the raw URI path `raw` (borrowed, as in sl_http_msg.path) into a
 * relative path that is safe to open below a document root. Segments are
 * percent-decoded one by one; empty and "." segments are dropped; a
 * trailing '/' is kept (so the caller can tell a directory request). The
 * result is written to `out` with a NUL and never begins with '/'; "/"
 * gives "" (length 0).
 * Returns the length, or -1 when rejected: a ".." segment (also spelled
 * %2e%2e), a NUL, '\\' or encoded '/' (%2F) or '\\' (%5C), any control
 * character, a bad escape, or no room for the result and its NUL. Decoding
 * happens exactly once, so "%252e%252e" becomes the harmless literal name
 * "%2e%2e". */
int sl__http_clean_path(sl_str raw, char *out, size_t outcap);

/* Match the raw request path `path` (borrowed) against `pattern` (see
 * sl_http_match): segments are compared after percent-decoding, empty and
 * "." segments are skipped, and a path sl__http_clean_path would reject
 * matches nothing. Captures point into `path` (raw, still encoded). */
int sl__http_match_path(sl_str path, const char *pattern, sl_str *caps,
                        size_t ncaps);

#endif
