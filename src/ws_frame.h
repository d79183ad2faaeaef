/*
 * The WebSocket (RFC 6455) wire codec, with no I/O and no allocation:
 * frame headers in and out, payload (un)masking, the handshake's accept
 * key, close payloads, and a message assembler that enforces the
 * fragmentation, size and UTF-8 rules across frames.
 *
 * Errors are returned as negative WebSocket close codes (-1002, -1007,
 * -1009, -1011) rather than SL_E* codes, because the one thing a caller does
 * with such an error is send that close code and fail the connection
 * (RFC 6455 section 7.1.7).
 *
 * Every function is pure over its arguments: any thread may call it, on
 * its own data.
 *
 * Example (server reading client frames from an input buffer):
 *   sl_ws_frame f;
 *   int r = sl__ws_parse_header(buf, len, 1, 1 << 20, &f);
 *   if (r > 0) { payload starts at buf + r, f.payload_len bytes, masked }
 */
#ifndef SL_WS_FRAME_H
#define SL_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* Opcodes SL_WS_CONT..SL_WS_PONG are public: include/sluice.h. */
#include "sluice.h"

/* Close codes (RFC 6455 section 7.4.1) this module returns, negated, or
 * that callers commonly send. 1005 and 1006 are never sent on the wire. */
enum {
  SL_WS_NORMAL_CLOSURE = 1000,
  SL_WS_GOING_AWAY = 1001,
  SL_WS_PROTOCOL_ERROR = 1002,
  SL_WS_UNSUPPORTED_DATA = 1003,
  SL_WS_NO_STATUS = 1005,
  SL_WS_ABNORMAL_CLOSURE = 1006,
  SL_WS_INVALID_PAYLOAD = 1007,
  SL_WS_POLICY_VIOLATION = 1008,
  SL_WS_MESSAGE_TOO_BIG = 1009,
  SL_WS_MANDATORY_EXT = 1010,
  SL_WS_INTERNAL_ERROR = 1011
};

/* The longest frame header: 2 + 8 (64-bit length) + 4 (masking key). */
#define SL_WS_MAX_HEADER 14

/* Control frames carry at most this many payload bytes (section 5.5). */
#define SL_WS_MAX_CONTROL 125

/* One parsed frame header. */
typedef struct sl_ws_frame {
  int fin;                        /* 1 on the last frame of a message */
  int opcode;                     /* SL_WS_* */
  int masked;                     /* 1 when mask[] holds the masking key */
  unsigned char mask[4];          /* masking key; zeros when not masked */
  unsigned long long payload_len; /* < 2^63 */
  size_t header_len;              /* 2..14; the payload starts here */
} sl_ws_frame;

/* Parse one frame header from the start of `buf` (`len` bytes, borrowed
 * for the call). Reads no byte at or past buf + len.
 *
 * `require_mask` is 1 for a server parsing client frames (an unmasked frame
 * is an error) and 0 for a client parsing server frames (a masked frame is
 * an error), per section 5.1. `max_payload` caps payload_len.
 *
 * Errors are reported as soon as the bytes that show them have arrived,
 * even when the header is not complete yet:
 *   -1002  RSV1-3 set (no extension is negotiated), reserved opcode, control
 *          frame with FIN clear or payload over 125, wrong masking for
 *          `require_mask`, 64-bit length with its top bit set;
 *   -1009  payload_len > max_payload.
 * A length in a longer encoding than needed (e.g. 5 in the 16-bit form) is
 * accepted: section 5.2 says "minimal" but a receiver loses nothing by
 * tolerating it.
 *
 * Returns header_len (> 0) and fills `*out` when the header is complete,
 * 0 when more bytes are needed, or a negative close code; `*out` is written
 * only on success. */
int sl__ws_parse_header(const void *buf, size_t len, int require_mask,
                        unsigned long long max_payload, sl_ws_frame *out);

/* XOR `n` bytes at `p` in place with the masking key `mask` (4 bytes,
 * borrowed). `offset` is the position of p[0] within the frame's payload,
 * so a payload may be unmasked piece by piece as it arrives; masking and
 * unmasking are the same operation (section 5.3). `p` may be NULL when n is
 * 0. */
void sl__ws_unmask(unsigned char *p, size_t n, const unsigned char mask[4],
                   unsigned long long offset);

/* Write a frame header to `out` (at least SL_WS_MAX_HEADER bytes), using
 * the shortest length encoding. `mask` is NULL for a server, or a 4-byte
 * key (borrowed; copied into the header) for a client, which then masks the
 * payload itself with sl__ws_unmask(payload, len, mask, 0).
 *
 * Returns the header length (2..14), or 0 without writing anything when the
 * frame would be invalid on the wire: a reserved opcode, len >= 2^63, or a
 * control frame with fin == 0 or len > 125. */
size_t sl__ws_write_header(unsigned char *out, int fin, int opcode,
                           unsigned long long len, const unsigned char *mask);

/* Compute Sec-WebSocket-Accept (section 4.2.2): base64(SHA-1(key + GUID)).
 * `key` (`keylen` bytes, borrowed, trimmed of surrounding whitespace by the
 * caller) must be the base64 encoding of a 16-byte nonce, as section 4.1
 * requires. Writes 28 characters and a NUL to `out`.
 * Returns 0, or -1 (nothing written) when the key is not such a nonce. */
int sl__ws_accept_key(const char *key, size_t keylen, char out[29]);

/* 1 when `code` may appear in a close frame on the wire: 1000-1003,
 * 1007-1014 (1012-1014 are registered with IANA) and 3000-4999. 1004-1006
 * and 1015 are reserved, and 0-999 and 1016-2999 unassigned. */
int sl__ws_close_code_ok(int code);

/* Parse a close frame's payload (`n` bytes at `p`, already unmasked,
 * borrowed). On success sets `*code` (0 when the payload is empty, which
 * the application sees as 1005 "no status"), and `*reason` / `*reason_len`
 * to the reason text: a pointer into `p`, or to a static "" when there is
 * none; it is not NUL-terminated.
 * Returns 0, -1002 for a 1-byte or over-125-byte payload or a code that
 * sl__ws_close_code_ok() refuses, or -1007 when the reason is not valid
 * UTF-8. The outputs are written only on success. */
int sl__ws_parse_close(const unsigned char *p, size_t n, int *code,
                       const char **reason, size_t *reason_len);

/* The message assembler: the rules that span frames (section 5.4, 5.5,
 * 8.1), for a server or a client alike. It sees every frame in order:
 * on_frame_start() with the parsed header, on_payload() with the unmasked
 * payload bytes in any number of pieces, on_frame_end() once they have all
 * been given. It stores no payload: the caller keeps the bytes itself, and
 * frees or delivers them when on_frame_end() says a message is complete.
 *
 * Control frames (close, ping, pong) may arrive between the fragments of a
 * data message and leave it open; each one is a complete message of its
 * own. The close reason is not checked here: pass a close payload to
 * sl__ws_parse_close().
 *
 * Caller's storage, no fini; fields are private. After any negative return
 * the connection must be failed with that code; the failed call changed
 * nothing.
 *
 * Example:
 *   sl__ws_asm_init(&a, 16 << 20);
 *   r = sl__ws_asm_on_frame_start(&a, &f);          0 or -code
 *   r = sl__ws_asm_on_payload(&a, bytes, n);        0 or -code, repeatedly
 *   r = sl__ws_asm_on_frame_end(&a, &op);           1: message `op` complete
 */
typedef struct sl_ws_assembler {
  unsigned long long max_message; /* cap on one data message's payload */
  unsigned long long size;        /* payload bytes announced so far for the
                                     open data message */
  unsigned long long left;        /* current frame's bytes not yet seen */
  uint32_t utf8;                  /* sl__utf8_feed() state of a TEXT message */
  int msg_opcode;                 /* SL_WS_TEXT/BINARY while a data message
                                     is open, 0 otherwise */
  int frame_opcode;               /* opcode of the current frame */
  int frame_fin;
  int in_frame;                   /* between on_frame_start and _end */
} sl_ws_assembler;

/* Set `a` idle; a data message may total at most `max_message` payload
 * bytes over all its fragments. */
void sl__ws_asm_init(sl_ws_assembler *a, unsigned long long max_message);

/* A new frame begins (`f` borrowed for the call). Returns 0, or:
 *   -1002  a continuation with no message open, a TEXT or BINARY frame
 *          while a fragmented message is open, a reserved opcode, or an
 *          invalid control frame;
 *   -1009  the message would exceed max_message (checked against the
 *          announced length, before any payload arrives);
 *   -1011  misuse: the previous frame has not ended. */
int sl__ws_asm_on_frame_start(sl_ws_assembler *a, const sl_ws_frame *f);

/* `n` more unmasked payload bytes of the current frame (borrowed; may be
 * NULL when n is 0). Text is validated as it arrives, so invalid UTF-8 is
 * refused at the first bad byte even across fragments.
 * Returns 0, -1007 for invalid UTF-8 in a TEXT message, or -1011 on misuse
 * (no frame started, or more bytes than the frame announced). */
int sl__ws_asm_on_payload(sl_ws_assembler *a, const void *p, size_t n);

/* The current frame's payload has been given in full. Returns 1 when a
 * message is complete, with its opcode in `*opcode` (TEXT or BINARY for a
 * data message, however many fragments it had; CLOSE, PING or PONG for a
 * control frame); 0 when the frame was a fragment of a message still open;
 * -1007 when a TEXT message ends inside a UTF-8 sequence; -1011 on misuse
 * (no frame started, or payload bytes still missing). */
int sl__ws_asm_on_frame_end(sl_ws_assembler *a, int *opcode);

#endif
