/*
 * MD5 (RFC 1321), for HTTP Digest authentication (RFC 7616 / RFC 2617) only.
 *
 * MD5 is broken for collision resistance. Digest auth uses it because the
 * deployed base of cameras, NVRs and RTSP/HTTP gear speaks nothing else;
 * nothing else in sluice may rely on it.
 *
 * Pure functions: no allocation, no global state; any thread may call them
 * on its own context.
 *
 * Example:
 *   char hex[33];
 *   sl__md5_hex("abc", 3, hex);   -> "900150983cd24fb0d6963f7d28e17f72"
 */
#ifndef SL_MD5_H
#define SL_MD5_H

#include <stddef.h>
#include <stdint.h>

/* Incremental context: caller's storage (init, then update any number of
 * times, then final once). Fields are private. */
typedef struct sl_md5 {
  uint32_t h[4];
  uint64_t total;          /* bytes hashed so far */
  unsigned char block[64]; /* a partial block waiting for more input */
  size_t used;             /* bytes in block, always < 64 */
} sl_md5;

/* Reset `c` to the initial chaining values (RFC 1321 section 3.3). */
void sl__md5_init(sl_md5 *c);

/* Hash `len` bytes of `data` (borrowed for the call; may be NULL when len
 * is 0). */
void sl__md5_update(sl_md5 *c, const void *data, size_t len);

/* Pad, and write the 16-byte digest to `out`. `c` must be initialised again
 * before reuse. */
void sl__md5_final(sl_md5 *c, unsigned char out[16]);

/* One-shot digest of `len` bytes of `data` into `out`. */
void sl__md5(const void *data, size_t len, unsigned char out[16]);

/* One-shot digest written as 32 lowercase hex digits plus a NUL into `hex`,
 * the form Digest authentication hashes and sends. */
void sl__md5_hex(const void *data, size_t len, char hex[33]);

/* Write the 16 bytes of `d` as 32 lowercase hex digits plus a NUL. */
void sl__md5_tohex(const unsigned char d[16], char hex[33]);

#endif
