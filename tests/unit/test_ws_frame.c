/*
 * The WebSocket codec: the RFC 6455 section 5.7 examples byte for byte,
 * the section 1.3 handshake example, every error path of the header parser
 * (cases after Autobahn sections 2-5 and 7), incremental parsing, piecewise
 * unmasking, close payloads, and the message assembler.
 */
#include <stdlib.h>

#include "test.h"
#include "ws_frame.h"

#define NOLIMIT (~0ull)

/* Parse `len` bytes placed right before a guard page. */
static int parse(const void *b, size_t len, int require_mask,
                 unsigned long long max, sl_ws_frame *f) {
  return sl__ws_parse_header(test_guard(b, len), len, require_mask, max, f);
}

/* Checks every proper prefix of a complete header needs more bytes, and
 * the header parses the same with or without trailing payload bytes. */
static void check_incremental(const unsigned char *b, size_t total,
                              int require_mask, int hl) {
  sl_ws_frame f;
  for (size_t k = 0; k < (size_t)hl; k++)
    CHECK_MSG(parse(b, k, require_mask, NOLIMIT, &f) == 0, "prefix %zu", k);
  for (size_t k = (size_t)hl; k <= total; k++)
    CHECK_EQ(parse(b, k, require_mask, NOLIMIT, &f), hl);
}

TEST(ws_rfc_single_unmasked_text) {
  /* 5.7: a single-frame unmasked text message "Hello". */
  static const unsigned char b[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  sl_ws_frame f;
  CHECK_EQ(parse(b, sizeof(b), 0, NOLIMIT, &f), 2);
  CHECK_EQ(f.fin, 1);
  CHECK_EQ(f.opcode, SL_WS_TEXT);
  CHECK_EQ(f.masked, 0);
  CHECK_EQ(f.payload_len, 5);
  CHECK_EQ(f.header_len, 2);
  CHECK_MEM(b + 2, "Hello", 5);
  check_incremental(b, sizeof(b), 0, 2);
  /* A server refuses it: clients must mask. */
  CHECK_EQ(parse(b, sizeof(b), 1, NOLIMIT, &f), -1002);

  unsigned char h[SL_WS_MAX_HEADER];
  CHECK_EQ(sl__ws_write_header(h, 1, SL_WS_TEXT, 5, NULL), 2);
  CHECK_MEM(h, b, 2);
}

TEST(ws_rfc_single_masked_text) {
  /* 5.7: a single-frame masked text message "Hello", key 37 fa 21 3d. */
  static const unsigned char b[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f,
                                    0x9f, 0x4d, 0x51, 0x58};
  static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
  sl_ws_frame f;
  CHECK_EQ(parse(b, sizeof(b), 1, NOLIMIT, &f), 6);
  CHECK_EQ(f.fin, 1);
  CHECK_EQ(f.opcode, SL_WS_TEXT);
  CHECK_EQ(f.masked, 1);
  CHECK_MEM(f.mask, key, 4);
  CHECK_EQ(f.payload_len, 5);
  CHECK_EQ(f.header_len, 6);
  check_incremental(b, sizeof(b), 1, 6);
  CHECK_EQ(parse(b, sizeof(b), 0, NOLIMIT, &f), -1002); /* from a server */

  unsigned char p[5];
  memcpy(p, b + 6, 5);
  sl__ws_unmask(p, 5, key, 0);
  CHECK_MEM(p, "Hello", 5);

  /* The client side produces the same bytes. */
  unsigned char out[SL_WS_MAX_HEADER + 5];
  size_t hl = sl__ws_write_header(out, 1, SL_WS_TEXT, 5, key);
  CHECK_EQ(hl, 6);
  memcpy(out + hl, "Hello", 5);
  sl__ws_unmask(out + hl, 5, key, 0);
  CHECK_MEM(out, b, sizeof(b));
}

TEST(ws_rfc_fragmented_text) {
  /* 5.7: a fragmented unmasked text message, "Hel" then "lo". */
  static const unsigned char f1[] = {0x01, 0x03, 0x48, 0x65, 0x6c};
  static const unsigned char f2[] = {0x80, 0x02, 0x6c, 0x6f};
  sl_ws_frame f;
  sl_ws_assembler a;
  int op = -1;
  sl__ws_asm_init(&a, 1024);

  CHECK_EQ(parse(f1, sizeof(f1), 0, NOLIMIT, &f), 2);
  CHECK_EQ(f.fin, 0);
  CHECK_EQ(f.opcode, SL_WS_TEXT);
  CHECK_EQ(f.payload_len, 3);
  CHECK_EQ(sl__ws_asm_on_frame_start(&a, &f), 0);
  CHECK_EQ(sl__ws_asm_on_payload(&a, f1 + 2, 3), 0);
  CHECK_EQ(sl__ws_asm_on_frame_end(&a, &op), 0);

  CHECK_EQ(parse(f2, sizeof(f2), 0, NOLIMIT, &f), 2);
  CHECK_EQ(f.fin, 1);
  CHECK_EQ(f.opcode, SL_WS_CONT);
  CHECK_EQ(f.payload_len, 2);
  CHECK_EQ(sl__ws_asm_on_frame_start(&a, &f), 0);
  CHECK_EQ(sl__ws_asm_on_payload(&a, f2 + 2, 2), 0);
  CHECK_EQ(sl__ws_asm_on_frame_end(&a, &op), 1);
  CHECK_EQ(op, SL_WS_TEXT);

  unsigned char h[SL_WS_MAX_HEADER];
  CHECK_EQ(sl__ws_write_header(h, 0, SL_WS_TEXT, 3, NULL), 2);
  CHECK_MEM(h, f1, 2);
  CHECK_EQ(sl__ws_write_header(h, 1, SL_WS_CONT, 2, NULL), 2);
  CHECK_MEM(h, f2, 2);
}

TEST(ws_rfc_ping_pong) {
  /* 5.7: unmasked ping "Hello", and a masked pong in reply. */
  static const unsigned char ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c,
                                       0x6f};
  static const unsigned char pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                       0x7f, 0x9f, 0x4d, 0x51, 0x58};
  static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
  sl_ws_frame f;
  CHECK_EQ(parse(ping, sizeof(ping), 0, NOLIMIT, &f), 2);
  CHECK_EQ(f.opcode, SL_WS_PING);
  CHECK_EQ(f.fin, 1);
  CHECK_EQ(f.payload_len, 5);
  CHECK_EQ(parse(pong, sizeof(pong), 1, NOLIMIT, &f), 6);
  CHECK_EQ(f.opcode, SL_WS_PONG);
  CHECK_MEM(f.mask, key, 4);
  unsigned char p[5];
  memcpy(p, pong + 6, 5);
  sl__ws_unmask(p, 5, key, 0);
  CHECK_MEM(p, "Hello", 5);

  unsigned char h[SL_WS_MAX_HEADER];
  CHECK_EQ(sl__ws_write_header(h, 1, SL_WS_PING, 5, NULL), 2);
  CHECK_MEM(h, ping, 2);
  CHECK_EQ(sl__ws_write_header(h, 1, SL_WS_PONG, 5, key), 6);
  CHECK_MEM(h, pong, 6);
}

TEST(ws_rfc_long_binary_headers) {
  /* 5.7: 256 bytes in one unmasked binary frame: 0x82 0x7E 0x0100. */
  unsigned char *b = malloc(65536 + 10);
  sl_ws_frame f;
  unsigned char h[SL_WS_MAX_HEADER];
  CHECK(b != NULL);
  static const unsigned char h256[] = {0x82, 0x7e, 0x01, 0x00};
  memcpy(b, h256, 4);
  memset(b + 4, 0xab, 256);
  CHECK_EQ(parse(b, 4 + 256, 0, NOLIMIT, &f), 4);
  CHECK_EQ(f.opcode, SL_WS_BINARY);
  CHECK_EQ(f.payload_len, 256);
  check_incremental(b, 4 + 256, 0, 4);
  CHECK_EQ(sl__ws_write_header(h, 1, SL_WS_BINARY, 256, NULL), 4);
  CHECK_MEM(h, h256, 4);

  /* 64 KiB: 0x82 0x7F 0x0000000000010000. */
  static const unsigned char h64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0};
  memcpy(b, h64k, 10);
  memset(b + 10, 0xcd, 65536);
  CHECK_EQ(parse(b, 10 + 65536, 0, NOLIMIT, &f), 10);
  CHECK_EQ(f.payload_len, 65536);
  check_incremental(b, 20, 0, 10);
  CHECK_EQ(sl__ws_write_header(h, 1, SL_WS_BINARY, 65536, NULL), 10);
  CHECK_MEM(h, h64k, 10);
  free(b);
}

TEST(ws_rfc_handshake_accept_key) {
  /* Section 1.3. */
  char out[29];
  const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
  memset(out, 'X', sizeof(out));
  CHECK_EQ(sl__ws_accept_key(test_guard(key, 24), 24, out), 0);
  /* The value printed in RFC 6455 section 1.3 (also checked against
   * Python's hashlib). */
  CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  /* The key from the RFC's section 4.1 sample request. */
  CHECK_EQ(sl__ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", 24, out), 0);
  CHECK_STR(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

TEST(ws_accept_key_rejects) {
  static const char *bad[] = {
      "",                           /* missing */
      "dGhlIHNhbXBsZSBub25jZQ=",    /* 23 characters */
      "dGhlIHNhbXBsZSBub25jZQ== ",  /* untrimmed */
      " dGhlIHNhbXBsZSBub25jZQ==",
      "AAAAAAAAAAAAAAAAAAAA",       /* a 15-byte nonce */
      "AAAAAAAAAAAAAAAAAAAAAAA=",   /* 17 bytes */
      "AAAAAAAAAAAAAAAAAAAAAAAA",   /* 18 bytes */
      "dGhlIHNhbXBsZSBub25jZQ",     /* padding dropped */
      "dGhlIHNhbXBsZSBub25jZR==",   /* non-canonical pad bits */
      "dGhlIHNhbXBsZSBub25j*Q==",   /* outside the alphabet */
      "hello",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char out[29];
    size_t n = strlen(bad[i]);
    out[0] = 'X';
    CHECK_MSG(sl__ws_accept_key(test_guard(bad[i], n), n, out) == -1,
              "accepted \"%s\"", bad[i]);
    CHECK_EQ(out[0], 'X');
  }
}

/* Expect parse() to fail with `code` on the full input and on every prefix
 * to be either 0 (not yet known) or that same code. */
static void expect_error(const unsigned char *b, size_t len, int require_mask,
                         unsigned long long max, int code) {
  sl_ws_frame f;
  memset(&f, 0x5a, sizeof(f));
  sl_ws_frame before = f;
  int r = parse(b, len, require_mask, max, &f);
  CHECK_MSG(r == code, "got %d, want %d (first bytes %02x %02x)", r, code,
            b[0], len > 1 ? b[1] : 0);
  for (size_t k = 0; k < len; k++) {
    r = parse(b, k, require_mask, max, &f);
    CHECK_MSG(r == 0 || r == code, "prefix %zu gave %d", k, r);
  }
  CHECK_MEM(&f, &before, sizeof(f)); /* out untouched on error */
}

TEST(ws_parse_rsv_bits) {
  /* Autobahn 3.1-3.7: RSV1, RSV2, RSV3 and their combinations. */
  for (int rsv = 1; rsv < 8; rsv++) {
    unsigned char b[2] = {(unsigned char)(0x81 | rsv << 4), 0x00};
    expect_error(b, 2, 0, NOLIMIT, -1002);
    /* Known from the first byte alone. */
    sl_ws_frame f;
    CHECK_EQ(parse(b, 1, 0, NOLIMIT, &f), -1002);
  }
}

TEST(ws_parse_reserved_opcodes) {
  /* Autobahn 4.1.x and 4.2.x. */
  for (int op = 0; op < 16; op++) {
    unsigned char b[2] = {(unsigned char)(0x80 | op), 0x00};
    sl_ws_frame f;
    int reserved = (op >= 3 && op <= 7) || op >= 11;
    if (reserved) {
      expect_error(b, 2, 0, NOLIMIT, -1002);
      CHECK_EQ(parse(b, 1, 0, NOLIMIT, &f), -1002);
    } else {
      CHECK_EQ(parse(b, 2, 0, NOLIMIT, &f), 2);
      CHECK_EQ(f.opcode, op);
    }
  }
}

TEST(ws_parse_control_frame_rules) {
  sl_ws_frame f;
  /* Autobahn 5.1/5.2: fragmented ping and pong; a fragmented close. */
  static const unsigned char fping[] = {0x09, 0x00};
  static const unsigned char fpong[] = {0x0a, 0x00};
  static const unsigned char fclose[] = {0x08, 0x00};
  expect_error(fping, 2, 0, NOLIMIT, -1002);
  expect_error(fpong, 2, 0, NOLIMIT, -1002);
  expect_error(fclose, 2, 0, NOLIMIT, -1002);

  /* Autobahn 2.4/2.5: 125 bytes is the most a ping may carry. */
  static const unsigned char p125[] = {0x89, 0x7d};
  CHECK_EQ(parse(p125, 2, 0, NOLIMIT, &f), 2);
  CHECK_EQ(f.payload_len, 125);
  static const unsigned char p126[] = {0x89, 0x7e, 0x00, 0x7e};
  expect_error(p126, sizeof(p126), 0, NOLIMIT, -1002);
  static const unsigned char c126[] = {0x88, 0xfe, 0x00, 0x7e, 1, 2, 3, 4};
  expect_error(c126, sizeof(c126), 1, NOLIMIT, -1002);
  static const unsigned char p64[] = {0x89, 0x7f, 0, 0, 0, 0, 0, 0, 0x10, 0};
  expect_error(p64, sizeof(p64), 0, NOLIMIT, -1002);

  /* A small length in the 16-bit form is tolerated, even on a ping. */
  static const unsigned char p5[] = {0x89, 0x7e, 0x00, 0x05};
  CHECK_EQ(parse(p5, sizeof(p5), 0, NOLIMIT, &f), 4);
  CHECK_EQ(f.payload_len, 5);

  /* Protocol errors come before the size limit. */
  expect_error(p126, sizeof(p126), 0, 10, -1002);
  CHECK_EQ(parse(p125, 2, 0, 124, &f), -1009);
}

TEST(ws_parse_masking_rules) {
  static const unsigned char unmasked[] = {0x82, 0x03};
  static const unsigned char masked[] = {0x82, 0x83, 1, 2, 3, 4};
  expect_error(unmasked, sizeof(unmasked), 1, NOLIMIT, -1002);
  expect_error(masked, sizeof(masked), 0, NOLIMIT, -1002);
  sl_ws_frame f;
  /* Known from the second byte. */
  CHECK_EQ(parse(masked, 2, 0, NOLIMIT, &f), -1002);
  /* Any non-zero require_mask means "server". */
  CHECK_EQ(parse(masked, sizeof(masked), 7, NOLIMIT, &f), 6);
  CHECK_EQ(f.mask[0], 1);
  CHECK_EQ(f.mask[3], 4);
  CHECK_EQ(parse(unmasked, 2, 0, NOLIMIT, &f), 2);
  static const unsigned char zero[4] = {0, 0, 0, 0};
  CHECK_MEM(f.mask, zero, 4);
}

TEST(ws_parse_length_forms) {
  sl_ws_frame f;
  /* Top bit of the 64-bit length: refused as soon as byte 2 is here. */
  static const unsigned char msb[] = {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0};
  expect_error(msb, sizeof(msb), 0, NOLIMIT, -1002);
  CHECK_EQ(parse(msb, 3, 0, NOLIMIT, &f), -1002);
  /* 2^63 - 1 is the largest legal length. */
  static const unsigned char max63[] = {0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff};
  CHECK_EQ(parse(max63, sizeof(max63), 0, NOLIMIT, &f), 10);
  CHECK_EQ(f.payload_len, 0x7fffffffffffffffull);
  /* Non-minimal encodings are accepted (see ws_frame.h). */
  static const unsigned char nm16[] = {0x82, 0x7e, 0x00, 0x05};
  CHECK_EQ(parse(nm16, sizeof(nm16), 0, NOLIMIT, &f), 4);
  CHECK_EQ(f.payload_len, 5);
  static const unsigned char nm64[] = {0x82, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x05,
                                       9, 8, 7, 6};
  CHECK_EQ(parse(nm64, sizeof(nm64), 1, NOLIMIT, &f), 14);
  CHECK_EQ(f.payload_len, 5);
  CHECK_EQ(f.mask[0], 9);
  check_incremental(nm64, sizeof(nm64), 1, 14);
  /* Zero-length frame. */
  static const unsigned char empty[] = {0x82, 0x80, 1, 2, 3, 4};
  CHECK_EQ(parse(empty, sizeof(empty), 1, NOLIMIT, &f), 6);
  CHECK_EQ(f.payload_len, 0);
  /* Nothing at all. */
  CHECK_EQ(parse("", 0, 1, NOLIMIT, &f), 0);
}

TEST(ws_parse_max_payload) {
  sl_ws_frame f;
  static const unsigned char b16[] = {0x82, 0x7e, 0x01, 0x00}; /* 256 */
  CHECK_EQ(parse(b16, sizeof(b16), 0, 256, &f), 4);
  expect_error(b16, sizeof(b16), 0, 255, -1009);
  static const unsigned char b7[] = {0x81, 0x85, 1, 2, 3, 4};
  CHECK_EQ(parse(b7, sizeof(b7), 1, 5, &f), 6);
  expect_error(b7, sizeof(b7), 1, 4, -1009);
  /* Known before the masking key arrives. */
  CHECK_EQ(parse(b7, 2, 1, 4, &f), -1009);
  expect_error(b7, sizeof(b7), 1, 0, -1009);
  static const unsigned char e[] = {0x81, 0x80, 1, 2, 3, 4};
  CHECK_EQ(parse(e, sizeof(e), 1, 0, &f), 6);
  static const unsigned char b64[] = {0x82, 0x7f, 0, 0, 0, 1, 0, 0, 0, 0};
  expect_error(b64, sizeof(b64), 0, 0xffffffffull, -1009);
}

TEST(ws_parse_byte_at_a_time_all_shapes) {
  /* Every header shape (3 length forms x masked or not), fed one byte
   * more at a time, with payload bytes behind it. */
  static const unsigned long long lens[] = {0, 1, 125, 126, 65535, 65536,
                                            0x123456789aull};
  unsigned char key[4] = {0xde, 0xad, 0xbe, 0xef};
  for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
    for (int m = 0; m <= 1; m++) {
      unsigned char b[SL_WS_MAX_HEADER + 8];
      memset(b, 0x77, sizeof(b));
      size_t hl = sl__ws_write_header(b, 1, SL_WS_BINARY, lens[i],
                                      m ? key : NULL);
      CHECK(hl >= 2 && hl <= SL_WS_MAX_HEADER);
      check_incremental(b, sizeof(b), m, (int)hl);
      sl_ws_frame f;
      CHECK_EQ(parse(b, hl, m, NOLIMIT, &f), hl);
      CHECK_EQ(f.payload_len, lens[i]);
      CHECK_EQ(f.header_len, hl);
      CHECK_EQ(f.masked, m);
      if (m) CHECK_MEM(f.mask, key, 4);
      /* Out is written only when the header is complete. */
      sl_ws_frame g;
      memset(&g, 0x5a, sizeof(g));
      sl_ws_frame before = g;
      CHECK_EQ(parse(b, hl - 1, m, NOLIMIT, &g), 0);
      CHECK_MEM(&g, &before, sizeof(g));
    }
  }
}

TEST(ws_write_header_forms) {
  unsigned char h[SL_WS_MAX_HEADER];
  static const unsigned char key[4] = {1, 2, 3, 4};
  CHECK_EQ(sl__ws_write_header(h, 1, SL_WS_BINARY, 0, NULL), 2);
  CHECK_EQ(h[1], 0);
  CHECK_EQ(sl__ws_write_header(h, 1, SL_WS_BINARY, 125, NULL), 2);
  CHECK_EQ(h[1], 125);
  CHECK_EQ(sl__ws_write_header(h, 1, SL_WS_BINARY, 126, NULL), 4);
  CHECK_EQ(h[1], 126);
  CHECK_EQ(h[2], 0);
  CHECK_EQ(h[3], 126);
  CHECK_EQ(sl__ws_write_header(h, 1, SL_WS_BINARY, 65535, NULL), 4);
  CHECK_EQ(sl__ws_write_header(h, 1, SL_WS_BINARY, 65536, NULL), 10);
  CHECK_EQ(sl__ws_write_header(h, 0, SL_WS_BINARY, 0x7fffffffffffffffull,
                               key),
           14);
  static const unsigned char big[] = {0x02, 0xff, 0x7f, 0xff, 0xff, 0xff,
                                      0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4};
  CHECK_MEM(h, big, 14);
  CHECK_EQ(sl__ws_write_header(h, 1, SL_WS_CLOSE, 125, key), 6);
  CHECK_EQ(h[0], 0x88);
  CHECK_EQ(h[1], 0x80 | 125);

  /* Frames that would be invalid on the wire are not written. */
  memset(h, 0xee, sizeof(h));
  CHECK_EQ(sl__ws_write_header(h, 1, 3, 0, NULL), 0);
  CHECK_EQ(sl__ws_write_header(h, 1, 11, 0, NULL), 0);
  CHECK_EQ(sl__ws_write_header(h, 1, 16, 0, NULL), 0);
  CHECK_EQ(sl__ws_write_header(h, 1, -1, 0, NULL), 0);
  CHECK_EQ(sl__ws_write_header(h, 1, SL_WS_BINARY, 1ull << 63, NULL), 0);
  CHECK_EQ(sl__ws_write_header(h, 0, SL_WS_PING, 0, NULL), 0);
  CHECK_EQ(sl__ws_write_header(h, 1, SL_WS_PONG, 126, NULL), 0);
  CHECK_EQ(h[0], 0xee);
}

TEST(ws_write_parse_roundtrip) {
  static const int ops[] = {SL_WS_CONT, SL_WS_TEXT, SL_WS_BINARY,
                            SL_WS_CLOSE, SL_WS_PING, SL_WS_PONG};
  static const unsigned long long lens[] = {0, 7, 125, 126, 300, 65535,
                                            65536, 1ull << 40};
  unsigned char key[4] = {0x11, 0x22, 0x33, 0x44};
  for (size_t o = 0; o < 6; o++)
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++)
      for (int fin = 0; fin <= 1; fin++)
        for (int m = 0; m <= 1; m++) {
          unsigned char h[SL_WS_MAX_HEADER];
          size_t hl = sl__ws_write_header(h, fin, ops[o], lens[l],
                                          m ? key : NULL);
          int control = ops[o] >= 8;
          if (control && (!fin || lens[l] > 125)) {
            CHECK_EQ(hl, 0);
            continue;
          }
          sl_ws_frame f;
          CHECK_EQ(parse(h, hl, m, NOLIMIT, &f), hl);
          CHECK_EQ(f.fin, fin);
          CHECK_EQ(f.opcode, ops[o]);
          CHECK_EQ(f.masked, m);
          CHECK_EQ(f.payload_len, lens[l]);
        }
}

TEST(ws_unmask_piecewise_equals_whole) {
  unsigned char src[200], whole[200], piece[200];
  static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
  for (size_t i = 0; i < sizeof(src); i++)
    src[i] = (unsigned char)(i * 131 + 7);
  for (size_t n = 0; n <= sizeof(src); n += (n < 40 ? 1 : 17)) {
    /* Reference: the section 5.3 formula, j mod 4. */
    memcpy(whole, src, n);
    sl__ws_unmask(whole, n, key, 0);
    for (size_t j = 0; j < n; j++)
      CHECK_EQ(whole[j], src[j] ^ key[j % 4]);
    /* Any two cuts give the same bytes. */
    for (size_t c1 = 0; c1 <= n; c1 += 3) {
      for (size_t c2 = c1; c2 <= n; c2 += 5) {
        memcpy(piece, src, n);
        sl__ws_unmask(piece, c1, key, 0);
        sl__ws_unmask(piece + c1, c2 - c1, key, c1);
        sl__ws_unmask(piece + c2, n - c2, key, c2);
        CHECK_MEM(piece, whole, n);
      }
    }
    /* Unmasking twice restores the input. */
    sl__ws_unmask(whole, n, key, 0);
    CHECK_MEM(whole, src, n);
  }
  /* Unaligned start and a 64-bit offset past 2^32. */
  memcpy(piece, src, sizeof(src));
  sl__ws_unmask(piece + 3, 101, key, 0x100000003ull);
  for (size_t j = 0; j < 101; j++)
    CHECK_EQ(piece[3 + j], src[3 + j] ^ key[(j + 3) % 4]);
  sl__ws_unmask(NULL, 0, key, 0);
}

TEST(ws_close_payloads) {
  int code = -1;
  const char *reason = NULL;
  size_t rlen = 99;
  /* Empty: no status (the application sees 1005). */
  CHECK_EQ(sl__ws_parse_close(NULL, 0, &code, &reason, &rlen), 0);
  CHECK_EQ(code, 0);
  CHECK(reason != NULL);
  CHECK_EQ(rlen, 0);

  /* Autobahn 7.3.2: a 1-byte payload. */
  static const unsigned char one[] = {0x03};
  CHECK_EQ(sl__ws_parse_close(test_guard(one, 1), 1, &code, &reason, &rlen),
           -1002);

  static const unsigned char bye[] = {0x03, 0xe8, 'b', 'y', 'e'};
  const unsigned char *g = test_guard(bye, sizeof(bye));
  CHECK_EQ(sl__ws_parse_close(g, sizeof(bye), &code, &reason, &rlen), 0);
  CHECK_EQ(code, 1000);
  CHECK_EQ(rlen, 3);
  CHECK(reason == (const char *)g + 2);
  CHECK_MEM(reason, "bye", 3);

  /* Autobahn 7.5.1: invalid UTF-8 in the reason. */
  static const unsigned char badr[] = {0x03, 0xe8, 0xce, 0xba, 0xed, 0xa0,
                                       0x80};
  code = 42;
  CHECK_EQ(sl__ws_parse_close(test_guard(badr, sizeof(badr)), sizeof(badr),
                              &code, &reason, &rlen),
           -1007);
  CHECK_EQ(code, 42); /* outputs untouched on failure */
  static const unsigned char trunc[] = {0x03, 0xe8, 'a', 0xce};
  CHECK_EQ(sl__ws_parse_close(test_guard(trunc, 4), 4, &code, &reason, &rlen),
           -1007);

  /* Autobahn 7.3.5/7.3.6: 125 bytes is the limit. */
  unsigned char big[126];
  big[0] = 0x03, big[1] = 0xe8;
  memset(big + 2, '*', sizeof(big) - 2);
  CHECK_EQ(sl__ws_parse_close(test_guard(big, 125), 125, &code, &reason,
                              &rlen),
           0);
  CHECK_EQ(rlen, 123);
  CHECK_EQ(sl__ws_parse_close(test_guard(big, 126), 126, &code, &reason,
                              &rlen),
           -1002);
}

TEST(ws_close_codes) {
  /* Autobahn 7.7.x (valid) and 7.9.x (invalid), plus the range edges. */
  static const int ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                           1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
  static const int bad[] = {0,    1,    999,  1004, 1005, 1006, 1015, 1016,
                            1100, 2000, 2999, 5000, 6000, 65535};
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    unsigned char p[2] = {(unsigned char)(ok[i] >> 8), (unsigned char)ok[i]};
    int code = 0;
    const char *r;
    size_t rl;
    CHECK(sl__ws_close_code_ok(ok[i]));
    CHECK_EQ(sl__ws_parse_close(test_guard(p, 2), 2, &code, &r, &rl), 0);
    CHECK_EQ(code, ok[i]);
    CHECK_EQ(rl, 0);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    unsigned char p[2] = {(unsigned char)(bad[i] >> 8), (unsigned char)bad[i]};
    int code = 0;
    const char *r;
    size_t rl;
    CHECK(!sl__ws_close_code_ok(bad[i]));
    CHECK_MSG(sl__ws_parse_close(test_guard(p, 2), 2, &code, &r, &rl) == -1002,
              "code %d accepted", bad[i]);
  }
  /* Every 16-bit value agrees with sl__ws_close_code_ok(). */
  for (int c = 0; c < 65536; c++) {
    unsigned char p[2] = {(unsigned char)(c >> 8), (unsigned char)c};
    int code;
    const char *r;
    size_t rl;
    int want = sl__ws_close_code_ok(c) ? 0 : -1002;
    CHECK_EQ(sl__ws_parse_close(p, 2, &code, &r, &rl), want);
  }
}

/* A frame for the assembler tests. */
static sl_ws_frame fr(int fin, int opcode, unsigned long long len) {
  sl_ws_frame f;
  memset(&f, 0, sizeof(f));
  f.fin = fin;
  f.opcode = opcode;
  f.payload_len = len;
  f.header_len = 2;
  return f;
}

/* Start, feed `p` (len bytes) and end one frame; returns frame_end's result
 * or the first error. */
static int feed_frame(sl_ws_assembler *a, int fin, int opcode, const void *p,
                      size_t len, int *op) {
  sl_ws_frame f = fr(fin, opcode, len);
  int r = sl__ws_asm_on_frame_start(a, &f);
  if (r < 0) return r;
  r = sl__ws_asm_on_payload(a, p, len);
  if (r < 0) return r;
  return sl__ws_asm_on_frame_end(a, op);
}

TEST(ws_asm_control_between_fragments) {
  /* Autobahn 5.6/5.7: a ping inside a fragmented text message. */
  sl_ws_assembler a;
  int op = -1;
  sl__ws_asm_init(&a, 100);
  CHECK_EQ(feed_frame(&a, 0, SL_WS_TEXT, "Hel", 3, &op), 0);
  CHECK_EQ(feed_frame(&a, 1, SL_WS_PING, "p", 1, &op), 1);
  CHECK_EQ(op, SL_WS_PING);
  CHECK_EQ(feed_frame(&a, 0, SL_WS_CONT, "l", 1, &op), 0);
  CHECK_EQ(feed_frame(&a, 1, SL_WS_PONG, "", 0, &op), 1);
  CHECK_EQ(op, SL_WS_PONG);
  CHECK_EQ(feed_frame(&a, 1, SL_WS_CONT, "o", 1, &op), 1);
  CHECK_EQ(op, SL_WS_TEXT);
  /* And a close with a non-UTF-8 payload is not the assembler's business. */
  CHECK_EQ(feed_frame(&a, 1, SL_WS_CLOSE, "\x03\xe8\xff", 3, &op), 1);
  CHECK_EQ(op, SL_WS_CLOSE);
  /* The next message starts clean. */
  CHECK_EQ(feed_frame(&a, 1, SL_WS_BINARY, "\xff", 1, &op), 1);
  CHECK_EQ(op, SL_WS_BINARY);
  /* Empty fragments, including an empty final continuation (5.18-ish). */
  CHECK_EQ(feed_frame(&a, 0, SL_WS_TEXT, "", 0, &op), 0);
  CHECK_EQ(feed_frame(&a, 0, SL_WS_CONT, "", 0, &op), 0);
  CHECK_EQ(feed_frame(&a, 1, SL_WS_CONT, NULL, 0, &op), 1);
  CHECK_EQ(op, SL_WS_TEXT);
}

TEST(ws_asm_fragmentation_errors) {
  sl_ws_assembler a, before;
  int op;
  sl__ws_asm_init(&a, 100);
  /* Autobahn 5.9-5.14: continuation with nothing to continue. */
  before = a;
  CHECK_EQ(feed_frame(&a, 1, SL_WS_CONT, "x", 1, &op), -1002);
  CHECK_EQ(feed_frame(&a, 0, SL_WS_CONT, "x", 1, &op), -1002);
  CHECK_MEM(&a, &before, sizeof(a)); /* a failed call changes nothing */
  /* Autobahn 5.17-5.20: a new data frame while one is open. */
  CHECK_EQ(feed_frame(&a, 0, SL_WS_TEXT, "a", 1, &op), 0);
  before = a;
  CHECK_EQ(feed_frame(&a, 1, SL_WS_TEXT, "b", 1, &op), -1002);
  CHECK_EQ(feed_frame(&a, 0, SL_WS_BINARY, "b", 1, &op), -1002);
  CHECK_MEM(&a, &before, sizeof(a));
  CHECK_EQ(feed_frame(&a, 1, SL_WS_CONT, "c", 1, &op), 1);
  CHECK_EQ(op, SL_WS_TEXT);
  /* Reserved opcodes and invalid control frames. */
  sl_ws_frame f = fr(1, 3, 0);
  CHECK_EQ(sl__ws_asm_on_frame_start(&a, &f), -1002);
  f = fr(1, 15, 0);
  CHECK_EQ(sl__ws_asm_on_frame_start(&a, &f), -1002);
  f = fr(0, SL_WS_PING, 0);
  CHECK_EQ(sl__ws_asm_on_frame_start(&a, &f), -1002);
  f = fr(1, SL_WS_CLOSE, 126);
  CHECK_EQ(sl__ws_asm_on_frame_start(&a, &f), -1002);
}

TEST(ws_asm_message_size) {
  sl_ws_assembler a, before;
  int op;
  sl__ws_asm_init(&a, 10);
  CHECK_EQ(feed_frame(&a, 1, SL_WS_BINARY, "0123456789", 10, &op), 1);
  CHECK_EQ(feed_frame(&a, 1, SL_WS_BINARY, "0123456789a", 11, &op), -1009);
  /* Across fragments; refused at the header, before any payload. */
  CHECK_EQ(feed_frame(&a, 0, SL_WS_TEXT, "01234", 5, &op), 0);
  CHECK_EQ(feed_frame(&a, 0, SL_WS_CONT, "5678", 4, &op), 0);
  before = a;
  sl_ws_frame f = fr(1, SL_WS_CONT, 2);
  CHECK_EQ(sl__ws_asm_on_frame_start(&a, &f), -1009);
  CHECK_MEM(&a, &before, sizeof(a));
  /* A control frame does not count toward the message. */
  CHECK_EQ(feed_frame(&a, 1, SL_WS_PING, "0123456789abc", 13, &op), 1);
  CHECK_EQ(feed_frame(&a, 1, SL_WS_CONT, "9", 1, &op), 1);
  CHECK_EQ(op, SL_WS_TEXT);
  /* A length near 2^64 cannot wrap the sum. */
  sl__ws_asm_init(&a, NOLIMIT - 1);
  CHECK_EQ(feed_frame(&a, 0, SL_WS_BINARY, "ab", 2, &op), 0);
  f = fr(1, SL_WS_CONT, NOLIMIT - 3); /* total = NOLIMIT - 1: the limit */
  CHECK_EQ(sl__ws_asm_on_frame_start(&a, &f), 0);
  sl__ws_asm_init(&a, NOLIMIT - 1);
  CHECK_EQ(feed_frame(&a, 0, SL_WS_BINARY, "ab", 2, &op), 0);
  f = fr(1, SL_WS_CONT, NOLIMIT - 2); /* one past it */
  CHECK_EQ(sl__ws_asm_on_frame_start(&a, &f), -1009);
  f = fr(1, SL_WS_CONT, NOLIMIT);
  CHECK_EQ(sl__ws_asm_on_frame_start(&a, &f), -1009);
}

TEST(ws_asm_text_utf8_across_fragments) {
  sl_ws_assembler a;
  int op;
  sl__ws_asm_init(&a, 1000);
  /* Autobahn 6.2.3/6.2.4: "κ" (CE BA) split between two frames. */
  CHECK_EQ(feed_frame(&a, 0, SL_WS_TEXT, "\xce", 1, &op), 0);
  CHECK_EQ(feed_frame(&a, 1, SL_WS_CONT, "\xba", 1, &op), 1);
  CHECK_EQ(op, SL_WS_TEXT);
  /* Split inside one frame's payload too. */
  sl_ws_frame f = fr(1, SL_WS_TEXT, 4);
  CHECK_EQ(sl__ws_asm_on_frame_start(&a, &f), 0);
  CHECK_EQ(sl__ws_asm_on_payload(&a, "\xf0\x9f", 2), 0);
  CHECK_EQ(sl__ws_asm_on_payload(&a, "\x98", 1), 0);
  CHECK_EQ(sl__ws_asm_on_payload(&a, "\x80", 1), 0);
  CHECK_EQ(sl__ws_asm_on_frame_end(&a, &op), 1);

  /* Autobahn 6.4.x: fail fast in the second fragment, at the bad byte. */
  CHECK_EQ(feed_frame(&a, 0, SL_WS_TEXT, "\xce\xba\xed", 3, &op), 0);
  f = fr(1, SL_WS_CONT, 3);
  CHECK_EQ(sl__ws_asm_on_frame_start(&a, &f), 0);
  sl_ws_assembler before = a;
  CHECK_EQ(sl__ws_asm_on_payload(&a, "\xa0\x80", 2), -1007);
  CHECK_MEM(&a, &before, sizeof(a));

  /* Text ending inside a character: the last frame's end says so. */
  sl__ws_asm_init(&a, 1000);
  CHECK_EQ(feed_frame(&a, 0, SL_WS_TEXT, "ab", 2, &op), 0);
  f = fr(1, SL_WS_CONT, 1);
  CHECK_EQ(sl__ws_asm_on_frame_start(&a, &f), 0);
  CHECK_EQ(sl__ws_asm_on_payload(&a, "\xce", 1), 0);
  before = a;
  CHECK_EQ(sl__ws_asm_on_frame_end(&a, &op), -1007);
  CHECK_MEM(&a, &before, sizeof(a));

  /* Mid-character at a fragment boundary is fine, as long as it ends. */
  sl__ws_asm_init(&a, 1000);
  CHECK_EQ(feed_frame(&a, 0, SL_WS_TEXT, "\xe1", 1, &op), 0);
  CHECK_EQ(feed_frame(&a, 1, SL_WS_PING, "\xff", 1, &op), 1);
  CHECK_EQ(feed_frame(&a, 0, SL_WS_CONT, "\xbd", 1, &op), 0);
  CHECK_EQ(feed_frame(&a, 1, SL_WS_CONT, "\xb9", 1, &op), 1);
  CHECK_EQ(op, SL_WS_TEXT);

  /* Binary is never checked; invalid text in a single frame is. */
  CHECK_EQ(feed_frame(&a, 1, SL_WS_BINARY, "\xc0\xaf", 2, &op), 1);
  CHECK_EQ(feed_frame(&a, 1, SL_WS_TEXT, "\xc0\xaf", 2, &op), -1007);
}

TEST(ws_asm_misuse) {
  sl_ws_assembler a;
  int op;
  sl__ws_asm_init(&a, 100);
  CHECK_EQ(sl__ws_asm_on_payload(&a, "x", 1), -1011);   /* no frame */
  CHECK_EQ(sl__ws_asm_on_frame_end(&a, &op), -1011);
  sl_ws_frame f = fr(1, SL_WS_BINARY, 3);
  CHECK_EQ(sl__ws_asm_on_frame_start(&a, &f), 0);
  CHECK_EQ(sl__ws_asm_on_frame_start(&a, &f), -1011);   /* not ended */
  CHECK_EQ(sl__ws_asm_on_payload(&a, "abcd", 4), -1011); /* too many */
  CHECK_EQ(sl__ws_asm_on_payload(&a, "ab", 2), 0);
  CHECK_EQ(sl__ws_asm_on_frame_end(&a, &op), -1011);    /* 1 byte missing */
  CHECK_EQ(sl__ws_asm_on_payload(&a, "c", 1), 0);
  CHECK_EQ(sl__ws_asm_on_frame_end(&a, &op), 1);
  CHECK_EQ(op, SL_WS_BINARY);
}

/* A whole byte stream through parse + unmask + assemble, as a connection
 * would run it; returns the number of messages, or the first error. */
static int run_stream(const unsigned char *in, size_t len, int require_mask,
                      int *ops, int max_ops) {
  unsigned char *buf = malloc(len ? len : 1);
  sl_ws_assembler a;
  size_t pos = 0;
  int n = 0;
  if (!buf) return -1;
  memcpy(buf, in, len);
  sl__ws_asm_init(&a, 1 << 20);
  while (pos < len) {
    sl_ws_frame f;
    int r = sl__ws_parse_header(buf + pos, len - pos, require_mask, 1 << 20,
                                &f);
    if (r <= 0) {
      free(buf);
      return r < 0 ? r : n;
    }
    pos += (size_t)r;
    if (f.payload_len > len - pos) break;
    size_t pl = (size_t)f.payload_len;
    if (f.masked) sl__ws_unmask(buf + pos, pl, f.mask, 0);
    int op = 0;
    if ((r = sl__ws_asm_on_frame_start(&a, &f)) < 0 ||
        (r = sl__ws_asm_on_payload(&a, buf + pos, pl)) < 0 ||
        (r = sl__ws_asm_on_frame_end(&a, &op)) < 0) {
      free(buf);
      return r;
    }
    if (f.opcode == SL_WS_CLOSE) {
      int code, cr;
      const char *reason;
      size_t rl;
      cr = sl__ws_parse_close(buf + pos, pl, &code, &reason, &rl);
      if (cr < 0) {
        free(buf);
        return cr;
      }
    }
    if (r == 1 && n < max_ops) ops[n] = op;
    n += r == 1;
    pos += pl;
  }
  free(buf);
  return n;
}

TEST(ws_stream_rfc_examples) {
  /* The 5.7 examples back to back as a client would receive them. */
  static const unsigned char s[] = {
      0x81, 0x05, 'H',  'e',  'l',  'l',  'o',            /* text */
      0x01, 0x03, 'H',  'e',  'l',                        /* "Hel" */
      0x89, 0x05, 'H',  'e',  'l',  'l',  'o',            /* ping between */
      0x80, 0x02, 'l',  'o',                              /* "lo" */
      0x82, 0x7e, 0x00, 0x02, 0xff, 0xfe,                 /* non-minimal */
      0x88, 0x05, 0x03, 0xe8, 'b',  'y',  'e',            /* close */
  };
  int ops[8];
  CHECK_EQ(run_stream(test_guard(s, sizeof(s)), sizeof(s), 0, ops, 8), 5);
  CHECK_EQ(ops[0], SL_WS_TEXT);
  CHECK_EQ(ops[1], SL_WS_PING);
  CHECK_EQ(ops[2], SL_WS_TEXT);
  CHECK_EQ(ops[3], SL_WS_BINARY);
  CHECK_EQ(ops[4], SL_WS_CLOSE);
  /* The same stream to a server is refused at the first byte's frame. */
  CHECK_EQ(run_stream(s, sizeof(s), 1, ops, 8), -1002);

  /* A masked stream with a bad close code. */
  static const unsigned char c[] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xed};
  CHECK_EQ(run_stream(c, sizeof(c), 1, ops, 8), -1002); /* 1005 */
}
