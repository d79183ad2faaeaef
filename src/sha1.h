/*
 * SHA-1 (FIPS 180-4), for the WebSocket handshake only.
 *
 * SHA-1 is broken for collision resistance; RFC 6455 uses it to prove that
 * the server read the client's key, not for security, and nothing else in
 * sluice may rely on it.
 *
 * Pure functions: no allocation, no global state; any thread may call them
 * on its own context.
 *
 * Example:
 *   unsigned char d[20];
 *   sl__sha1("abc", 3, d);
 */
#ifndef SL_SHA1_H
#define SL_SHA1_H

#include <stddef.h>
#include <stdint.h>

/* Incremental context: caller's storage (init, then update any number of
 * times, then final once). Fields are private. */
typedef struct sl_sha1 {
  uint32_t h[5];
  uint64_t total;            /* bytes hashed so far */
  unsigned char block[64];   /* a partial block waiting for more input */
  size_t used;               /* bytes in block, always < 64 */
} sl_sha1;

/* Reset `c` to the initial hash value. */
void sl__sha1_init(sl_sha1 *c);

/* Hash `len` bytes of `data` (borrowed for the call; may be NULL when len
 * is 0). */
void sl__sha1_update(sl_sha1 *c, const void *data, size_t len);

/* Pad, and write the 20-byte digest to `out`. `c` must be initialised again
 * before reuse. */
void sl__sha1_final(sl_sha1 *c, unsigned char out[20]);

/* One-shot digest of `len` bytes of `data` into `out`. */
void sl__sha1(const void *data, size_t len, unsigned char out[20]);

#endif
