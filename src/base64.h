/*
 * Base64 with the standard alphabet and '=' padding (RFC 4648 section 4),
 * as the WebSocket handshake and HTTP Basic auth use it.
 *
 * Pure functions: no allocation, no global state; any thread may call them.
 *
 * Example:
 *   char b[SL_BASE64_ENCODED_SIZE(3)];
 *   sl__base64_encode("foo", 3, b);        -> "Zm9v", returns 4
 */
#ifndef SL_BASE64_H
#define SL_BASE64_H

#include <stddef.h>

/* Bytes `out` needs to encode `len` input bytes, the NUL included. */
#define SL_BASE64_ENCODED_SIZE(len) (4 * (((len) + 2) / 3) + 1)

/* Encode `len` bytes of `in` (borrowed; may be NULL when len is 0) into
 * `out`, which must hold SL_BASE64_ENCODED_SIZE(len) bytes. Writes a
 * NUL-terminated string and returns its length (without the NUL). */
size_t sl__base64_encode(const void *in, size_t len, char *out);

/* Decode `len` characters of `in` (borrowed; need not be NUL-terminated)
 * into `out`, which holds `outcap` bytes (may be NULL when outcap is 0).
 *
 * Strict, as RFC 4648 section 3.3 and 3.5 permit: `len` must be a multiple
 * of 4, only the last quantum may carry "=" or "==", no whitespace or line
 * breaks, and the unused bits before the padding must be zero (so each byte
 * string has exactly one accepted encoding).
 *
 * Returns the number of bytes written, or -1 when the input is invalid, the
 * result does not fit in `outcap` or in an int; on -1 nothing is written. */
int sl__base64_decode(const char *in, size_t len, void *out, size_t outcap);

#endif
