/*
 * Incremental UTF-8 validation (RFC 3629) for WebSocket text messages,
 * which arrive in fragments split at arbitrary byte positions.
 *
 * The caller owns the state, a uint32_t set to SL_UTF8_ACCEPT (0) before the
 * first byte. Validation fails fast: sl__utf8_feed() returns -1 at the first
 * byte that cannot begin or continue a well-formed sequence (RFC 6455
 * section 8.1; Autobahn cases 6.x), so an overlong form (C0 AF), a surrogate
 * (ED A0 80), a code point past U+10FFFF (F4 90 80 80) or a stray
 * continuation byte is refused without waiting for more input.
 *
 * Pure functions, no global state: any thread may call them on its own
 * state.
 *
 * Example:
 *   uint32_t st = SL_UTF8_ACCEPT;
 *   if (sl__utf8_feed(&st, "\xce", 1) == 0 && sl__utf8_feed(&st, "\xba", 1)
 *       == 0 && sl__utf8_complete(st)) ... valid "κ"
 */
#ifndef SL_UTF8_H
#define SL_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The initial state, and the state after each complete character. */
#define SL_UTF8_ACCEPT 0u

/* Validate `n` more bytes of `p` (borrowed; may be NULL when n is 0),
 * continuing from `*state`. Returns 0 when the bytes so far are a valid
 * prefix of UTF-8, or -1 when they are not; after -1 the state stays
 * invalid and every later call returns -1 too. */
int sl__utf8_feed(uint32_t *state, const void *p, size_t n);

/* 1 when `state` sits between characters (the text so far is complete,
 * valid UTF-8), 0 when it is mid-sequence or invalid. */
int sl__utf8_complete(uint32_t state);

/* Convenience: 1 when `n` bytes of `p` are complete, valid UTF-8. */
int sl__utf8_valid(const void *p, size_t n);

#endif
