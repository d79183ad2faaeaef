/*
 * RFC 6455 framing. Section numbers below refer to RFC 6455.
 *
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-------+-+-------------+-------------------------------+
 *  |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
 *  |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
 *  |N|V|V|V|       |S|             |   (if payload len==126/127)   |
 *  | |1|2|3|       |K|             |                               |
 *  +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
 *  |  Extended payload length continued, if payload len == 127     |
 *  + - - - - - - - - - - - - - - - +-------------------------------+
 *  |                               | Masking-key, if MASK set to 1 |
 *  +-------------------------------+-------------------------------+
 */
#include "ws_frame.h"

#include <string.h>

#include "base64.h"
#include "sha1.h"
#include "utf8.h"

/* Section 1.3: the GUID every server appends to the client's key. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static int is_control(int op) { return op >= 8; }

static int known_opcode(int op) {
  return (op >= SL_WS_CONT && op <= SL_WS_BINARY) ||
         (op >= SL_WS_CLOSE && op <= SL_WS_PONG);
}

int sl__ws_parse_header(const void *buf, size_t len, int require_mask,
                        unsigned long long max_payload, sl_ws_frame *out) {
  const unsigned char *p = buf;
  unsigned long long plen;
  size_t hl, extra;
  int op, masked;

  /* Byte 0 alone shows most protocol errors: check them before waiting for
   * the rest, so a peer sending garbage is cut off at once. */
  if (len < 1) return 0;
  if (p[0] & 0x70) return -SL_WS_PROTOCOL_ERROR; /* RSV1-3, section 5.2 */
  op = p[0] & 0x0f;
  if (!known_opcode(op)) return -SL_WS_PROTOCOL_ERROR;
  if (is_control(op) && !(p[0] & 0x80))
    return -SL_WS_PROTOCOL_ERROR; /* control frames are never fragmented, 5.5 */

  if (len < 2) return 0;
  masked = p[1] >> 7;
  /* Section 5.1: client-to-server frames are masked, server-to-client are
   * not, and either side closes on a violation. */
  if (masked != (require_mask != 0)) return -SL_WS_PROTOCOL_ERROR;
  plen = p[1] & 0x7f;
  extra = plen == 126 ? 2 : plen == 127 ? 8 : 0;
  hl = 2 + extra + (masked ? 4 : 0);

  if (extra == 8 && len >= 3 && (p[2] & 0x80))
    return -SL_WS_PROTOCOL_ERROR; /* 5.2: "the most significant bit MUST be 0" */
  if (len < 2 + extra) return 0;
  if (extra) {
    plen = 0;
    for (size_t i = 0; i < extra; i++) plen = plen << 8 | p[2 + i];
  }
  /* Checked on the decoded value, not the 7-bit field, because a longer
   * encoding of a small length is tolerated (see ws_frame.h). */
  if (is_control(op) && plen > SL_WS_MAX_CONTROL) return -SL_WS_PROTOCOL_ERROR;
  if (plen > max_payload) return -SL_WS_MESSAGE_TOO_BIG;

  if (len < hl) return 0;
  out->fin = p[0] >> 7;
  out->opcode = op;
  out->masked = masked;
  if (masked) memcpy(out->mask, p + 2 + extra, 4);
  else memset(out->mask, 0, 4);
  out->payload_len = plen;
  out->header_len = hl;
  return (int)hl;
}

void sl__ws_unmask(unsigned char *p, size_t n, const unsigned char mask[4],
                   unsigned long long offset) {
  /* The key, rotated to start at `offset` and repeated to 8 bytes. Built
   * byte by byte and loaded with memcpy, the word XORs the right bytes on
   * any host byte order and the loads need no alignment. */
  unsigned char k[8];
  uint64_t kw;
  size_t i = 0;
  for (int j = 0; j < 8; j++) k[j] = mask[(offset + (unsigned)j) & 3];
  memcpy(&kw, k, 8);
  for (; n - i >= 8; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    w ^= kw;
    memcpy(p + i, &w, 8);
  }
  /* i is a multiple of 8 here, so k[] is still in phase. */
  for (; i < n; i++) p[i] ^= k[i & 7];
}

size_t sl__ws_write_header(unsigned char *out, int fin, int opcode,
                           unsigned long long len, const unsigned char *mask) {
  unsigned char m = mask ? 0x80 : 0;
  size_t n = 0;
  if (!known_opcode(opcode) || (len >> 63)) return 0;
  if (is_control(opcode) && (!fin || len > SL_WS_MAX_CONTROL)) return 0;
  out[n++] = (unsigned char)((fin ? 0x80 : 0) | opcode);
  if (len < 126) {
    out[n++] = (unsigned char)(m | len);
  } else if (len <= 0xffff) {
    out[n++] = m | 126;
    out[n++] = (unsigned char)(len >> 8);
    out[n++] = (unsigned char)len;
  } else {
    out[n++] = m | 127;
    for (int s = 56; s >= 0; s -= 8) out[n++] = (unsigned char)(len >> s);
  }
  if (mask) {
    memcpy(out + n, mask, 4);
    n += 4;
  }
  return n;
}

int sl__ws_accept_key(const char *key, size_t keylen, char out[29]) {
  unsigned char nonce[16], digest[20];
  sl_sha1 c;
  /* Section 4.1: the key is a random 16-byte value, base64-encoded (always
   * 24 characters). The nonce itself is unused; the hash covers the key
   * text exactly as received. */
  if (sl__base64_decode(key, keylen, nonce, sizeof(nonce)) != 16) return -1;
  sl__sha1_init(&c);
  sl__sha1_update(&c, key, keylen);
  sl__sha1_update(&c, ws_guid, sizeof(ws_guid) - 1);
  sl__sha1_final(&c, digest);
  sl__base64_encode(digest, sizeof(digest), out);
  return 0;
}

int sl__ws_close_code_ok(int code) {
  /* Section 7.4.1 and the IANA "WebSocket Close Code Number Registry":
   * 1004 is reserved, 1005/1006/1015 must never be sent, 1012-1014 were
   * registered after the RFC (service restart, try again later, bad
   * gateway); 3000-3999 are for libraries, 4000-4999 private. */
  if (code >= 1000 && code <= 1003) return 1;
  if (code >= 1007 && code <= 1014) return 1;
  return code >= 3000 && code <= 4999;
}

int sl__ws_parse_close(const unsigned char *p, size_t n, int *code,
                       const char **reason, size_t *reason_len) {
  int c;
  if (n == 0) {
    *code = 0;
    *reason = "";
    *reason_len = 0;
    return 0;
  }
  /* Section 5.5.1: a body starts with a 2-byte code; one byte is malformed.
   * Over 125 bytes cannot come from sl__ws_parse_header, but the check is
   * cheap and keeps this function safe on its own. */
  if (n == 1 || n > SL_WS_MAX_CONTROL) return -SL_WS_PROTOCOL_ERROR;
  c = p[0] << 8 | p[1];
  if (!sl__ws_close_code_ok(c)) return -SL_WS_PROTOCOL_ERROR;
  if (!sl__utf8_valid(p + 2, n - 2)) return -SL_WS_INVALID_PAYLOAD;
  *code = c;
  *reason = (const char *)p + 2;
  *reason_len = n - 2;
  return 0;
}

void sl__ws_asm_init(sl_ws_assembler *a, unsigned long long max_message) {
  memset(a, 0, sizeof(*a));
  a->max_message = max_message;
  a->utf8 = SL_UTF8_ACCEPT;
}

int sl__ws_asm_on_frame_start(sl_ws_assembler *a, const sl_ws_frame *f) {
  int op = f->opcode;
  unsigned long long base;
  if (a->in_frame) return -SL_WS_INTERNAL_ERROR;
  if (!known_opcode(op)) return -SL_WS_PROTOCOL_ERROR;

  if (is_control(op)) {
    /* Already refused by sl__ws_parse_header; repeated so the assembler
     * holds its invariants whoever built `f`. */
    if (!f->fin || f->payload_len > SL_WS_MAX_CONTROL)
      return -SL_WS_PROTOCOL_ERROR;
  } else if (op == SL_WS_CONT) {
    if (a->msg_opcode == 0) return -SL_WS_PROTOCOL_ERROR; /* nothing to continue */
  } else if (a->msg_opcode != 0) {
    return -SL_WS_PROTOCOL_ERROR; /* 5.4: fragments may not interleave */
  }

  /* Control frames stand alone and never count toward a data message. */
  if (!is_control(op)) {
    base = op == SL_WS_CONT ? a->size : 0;
    /* Written as a subtraction so a huge payload_len cannot wrap. */
    if (f->payload_len > a->max_message || base > a->max_message - f->payload_len)
      return -SL_WS_MESSAGE_TOO_BIG;
    if (op != SL_WS_CONT) {
      a->msg_opcode = op;
      a->utf8 = SL_UTF8_ACCEPT;
    }
    a->size = base + f->payload_len;
  }
  a->frame_opcode = op;
  a->frame_fin = f->fin ? 1 : 0;
  a->left = f->payload_len;
  a->in_frame = 1;
  return 0;
}

/* The current frame's payload is text to validate. */
static int frame_is_text(const sl_ws_assembler *a) {
  return !is_control(a->frame_opcode) && a->msg_opcode == SL_WS_TEXT;
}

int sl__ws_asm_on_payload(sl_ws_assembler *a, const void *p, size_t n) {
  if (!a->in_frame || n > a->left) return -SL_WS_INTERNAL_ERROR;
  if (frame_is_text(a)) {
    uint32_t st = a->utf8; /* committed only on success */
    if (sl__utf8_feed(&st, p, n) != 0) return -SL_WS_INVALID_PAYLOAD;
    a->utf8 = st;
  }
  a->left -= n;
  return 0;
}

int sl__ws_asm_on_frame_end(sl_ws_assembler *a, int *opcode) {
  if (!a->in_frame || a->left != 0) return -SL_WS_INTERNAL_ERROR;
  if (is_control(a->frame_opcode)) {
    a->in_frame = 0;
    *opcode = a->frame_opcode;
    return 1;
  }
  if (!a->frame_fin) {
    a->in_frame = 0;
    return 0;
  }
  /* Section 8.1: the message as a whole must be valid UTF-8, so text may
   * not end inside a character even though each piece was a valid prefix. */
  if (a->msg_opcode == SL_WS_TEXT && !sl__utf8_complete(a->utf8))
    return -SL_WS_INVALID_PAYLOAD;
  *opcode = a->msg_opcode;
  a->in_frame = 0;
  a->msg_opcode = 0;
  a->size = 0;
  a->utf8 = SL_UTF8_ACCEPT;
  return 1;
}
