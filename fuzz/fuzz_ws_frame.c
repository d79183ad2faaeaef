/*
 * libFuzzer target for the WebSocket codec. The input is a raw byte stream
 * as it would arrive on a socket (the seeds in fuzz/corpus/ws_frame/ are
 * real frame sequences). It is run through sl__ws_parse_header,
 * sl__ws_unmask and the message assembler as a server and as a client, with
 * a generous and a tight size limit, checking invariants:
 *
 *   - a complete header lies within the input, is 2..14 bytes, and obeys
 *     every rule the parser promises (masking side, control frame limits,
 *     max_payload); every shorter prefix needs more bytes, and an error is
 *     never preceded by a different one on a prefix;
 *   - sl__ws_write_header re-encodes the header to one that parses back the
 *     same and is never longer;
 *   - unmasking in pieces equals unmasking whole, and twice is a no-op;
 *   - the assembler's UTF-8 verdicts, piece by piece, agree with a plain
 *     decoder written from RFC 3629 in this file;
 *   - close payloads parse within bounds.
 * The input is also tried as a base64 string, an accept key and UTF-8 text.
 *
 * Build and run (clang):
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -fno-sanitize-recover=all -Isrc fuzz/fuzz_ws_frame.c src/sha1.c \
 *     src/base64.c src/utf8.c src/ws_frame.c -o fuzz_ws_frame
 *   ./fuzz_ws_frame -max_total_time=60 WORKDIR fuzz/corpus/ws_frame
 * Replay without libFuzzer (any compiler): add -DSL_FUZZ_MAIN, drop
 * -fsanitize=fuzzer, and pass files or directories (e.g.
 * fuzz/regress/ws_frame) as arguments.
 */
#if defined(SL_FUZZ_MAIN) && !defined(_GNU_SOURCE)
#define _POSIX_C_SOURCE 200809L /* opendir, stat */
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "sha1.h"
#include "utf8.h"
#include "ws_frame.h"

/* A broken invariant is a finding: abort so libFuzzer saves the input. */
#define FUZZ_CHECK(cond)                                                     \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__,   \
              #cond);                                                        \
      abort();                                                               \
    }                                                                        \
  } while (0)

/* Reference UTF-8 check, independent of src/utf8.c: can `s` (n bytes) be
 * the start of valid UTF-8? With `complete`, must it also end between
 * characters? Decodes each sequence by the RFC 3629 section 3 rules; a
 * truncated last sequence is a valid prefix when some completion of it is
 * a Unicode scalar value in its shortest form. */
static int ref_utf8(const unsigned char *s, size_t n, int complete) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    size_t len, have;
    unsigned long lo, hi, min;
    if (c < 0x80) {
      i++;
      continue;
    }
    if ((c & 0xe0) == 0xc0) len = 2, lo = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0) len = 3, lo = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0) len = 4, lo = c & 0x07, min = 0x10000;
    else return 0;
    have = n - i < len ? n - i : len;
    for (size_t k = 1; k < have; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return 0;
      lo = lo << 6 | (s[i + k] & 0x3f);
    }
    if (have < len && complete) return 0;
    /* The code points this sequence can still become: [lo, hi]. */
    hi = lo;
    for (size_t k = have; k < len; k++) {
      lo = lo << 6;
      hi = hi << 6 | 0x3f;
    }
    if (lo < min) lo = min;
    if (hi > 0x10ffff) hi = 0x10ffff;
    if (lo > hi) return 0;
    if (lo >= 0xd800 && hi <= 0xdfff) return 0; /* only surrogates left */
    i += have;
  }
  return 1;
}

/* Bytes of the data message being assembled, for the reference check.
 * Bounded by the assembler's max_message, itself <= MSG_CAP. */
#define MSG_CAP (1u << 16)
static unsigned char msg[MSG_CAP];
static size_t msg_len;

static void check_header(const unsigned char *p, size_t avail, int r,
                         const sl_ws_frame *f, int require_mask,
                         unsigned long long max_payload) {
  sl_ws_frame g;
  /* Prefixes: 0 (more needed) or the same error, never anything else. */
  size_t upto = avail < SL_WS_MAX_HEADER ? avail : SL_WS_MAX_HEADER;
  if (r > 0 && (size_t)r < upto) upto = (size_t)r;
  for (size_t k = 0; k < upto; k++) {
    int rk = sl__ws_parse_header(p, k, require_mask, max_payload, &g);
    FUZZ_CHECK(rk == 0 || (r < 0 && rk == r));
  }
  if (r <= 0) {
    FUZZ_CHECK(r == 0 || r == -SL_WS_PROTOCOL_ERROR ||
               r == -SL_WS_MESSAGE_TOO_BIG);
    if (r == 0) FUZZ_CHECK(avail < SL_WS_MAX_HEADER);
    return;
  }
  FUZZ_CHECK(r >= 2 && r <= SL_WS_MAX_HEADER);
  FUZZ_CHECK((size_t)r <= avail);
  FUZZ_CHECK(f->header_len == (size_t)r);
  FUZZ_CHECK(f->masked == (require_mask != 0));
  FUZZ_CHECK(f->fin == 0 || f->fin == 1);
  FUZZ_CHECK(f->opcode <= SL_WS_BINARY ||
             (f->opcode >= SL_WS_CLOSE && f->opcode <= SL_WS_PONG));
  FUZZ_CHECK(f->opcode < 8 || (f->fin && f->payload_len <= 125));
  FUZZ_CHECK(f->payload_len <= max_payload);
  FUZZ_CHECK(!(f->payload_len >> 63));

  /* Re-encode: shortest form, same fields. */
  unsigned char h[SL_WS_MAX_HEADER];
  size_t hl = sl__ws_write_header(h, f->fin, f->opcode, f->payload_len,
                                  f->masked ? f->mask : NULL);
  FUZZ_CHECK(hl >= 2 && hl <= (size_t)r);
  FUZZ_CHECK(sl__ws_parse_header(h, hl, require_mask, max_payload, &g) ==
             (int)hl);
  FUZZ_CHECK(g.fin == f->fin && g.opcode == f->opcode &&
             g.masked == f->masked && g.payload_len == f->payload_len &&
             memcmp(g.mask, f->mask, 4) == 0);
}

/* Unmask `n` bytes at `p` in pieces of a size derived from `seed`, and
 * check the result against a whole unmask and the RFC formula. */
static void unmask_checked(unsigned char *p, size_t n, const sl_ws_frame *f,
                           unsigned seed) {
  unsigned char *whole = malloc(n ? n : 1);
  FUZZ_CHECK(whole != NULL);
  if (n) memcpy(whole, p, n);
  sl__ws_unmask(whole, n, f->mask, 0);
  for (size_t j = 0; j < n && j < 64; j++)
    FUZZ_CHECK(whole[j] == (p[j] ^ f->mask[j % 4]));
  size_t step = seed % 23 + 1;
  for (size_t off = 0; off < n;) {
    size_t k = n - off < step ? n - off : step;
    sl__ws_unmask(p + off, k, f->mask, off);
    off += k;
    step = step * 5 % 23 + 1;
  }
  FUZZ_CHECK(n == 0 || memcmp(p, whole, n) == 0);
  sl__ws_unmask(whole, n, f->mask, 0);
  sl__ws_unmask(whole, n, f->mask, 0);
  FUZZ_CHECK(n == 0 || memcmp(p, whole, n) == 0);
  free(whole);
}

/* Feed `n` payload bytes to the assembler in pieces; when `text`, compare
 * each UTF-8 verdict with the reference. Returns 0, or the assembler's
 * error. */
static int feed(sl_ws_assembler *a, int text, const unsigned char *p,
                size_t n, unsigned seed) {
  size_t step = seed % 7 + 1;
  for (size_t off = 0; off < n;) {
    size_t k = n - off < step ? n - off : step;
    int r = sl__ws_asm_on_payload(a, p + off, k);
    if (text) {
      FUZZ_CHECK(msg_len + k <= MSG_CAP);
      memcpy(msg + msg_len, p + off, k);
      FUZZ_CHECK((r == 0) == ref_utf8(msg, msg_len + k, 0));
      msg_len += k;
    }
    if (r < 0) {
      FUZZ_CHECK(r == -SL_WS_INVALID_PAYLOAD && text);
      return r;
    }
    FUZZ_CHECK(r == 0);
    off += k;
    step = step * 3 % 7 + 1;
  }
  return 0;
}

static void check_close(const unsigned char *p, size_t n) {
  int code = -1;
  const char *reason = NULL;
  size_t rl = 0;
  int r = sl__ws_parse_close(p, n, &code, &reason, &rl);
  if (r < 0) {
    FUZZ_CHECK(r == -SL_WS_PROTOCOL_ERROR || r == -SL_WS_INVALID_PAYLOAD);
    FUZZ_CHECK(code == -1 && reason == NULL); /* outputs untouched */
    if (r == -SL_WS_INVALID_PAYLOAD) FUZZ_CHECK(!ref_utf8(p + 2, n - 2, 1));
    return;
  }
  FUZZ_CHECK(reason != NULL);
  if (n == 0) {
    FUZZ_CHECK(code == 0 && rl == 0);
    return;
  }
  FUZZ_CHECK(sl__ws_close_code_ok(code));
  FUZZ_CHECK(rl == n - 2 && reason == (const char *)p + 2);
  FUZZ_CHECK(ref_utf8(p + 2, n - 2, 1));
}

/* One pass over the stream, as one side of a connection would read it. */
static void run_stream(const uint8_t *data, size_t size, int require_mask,
                       unsigned long long max_payload,
                       unsigned long long max_message) {
  unsigned char *buf = malloc(size ? size : 1);
  sl_ws_assembler a;
  size_t pos = 0;
  unsigned nframe = 0;
  int open_op = 0; /* the data message in progress, tracked here so the
                      assembler's verdicts are checked, not trusted */
  unsigned long long open_size = 0; /* its announced payload so far */
  FUZZ_CHECK(buf != NULL);
  if (size) memcpy(buf, data, size);
  sl__ws_asm_init(&a, max_message);
  msg_len = 0;

  while (pos < size) {
    sl_ws_frame f;
    int r = sl__ws_parse_header(buf + pos, size - pos, require_mask,
                                max_payload, &f);
    check_header(buf + pos, size - pos, r, &f, require_mask, max_payload);
    if (r <= 0) break;
    pos += (size_t)r;
    nframe++;

    size_t avail = size - pos;
    size_t n = f.payload_len < avail ? (size_t)f.payload_len : avail;
    unsigned char *p = buf + pos;
    unmask_checked(p, n, &f, nframe + (unsigned)n);

    r = sl__ws_asm_on_frame_start(&a, &f);
    if (r < 0) {
      FUZZ_CHECK(r == -SL_WS_PROTOCOL_ERROR || r == -SL_WS_MESSAGE_TOO_BIG);
      if (r == -SL_WS_PROTOCOL_ERROR)
        FUZZ_CHECK(f.opcode < 8 && (f.opcode == SL_WS_CONT) != (open_op != 0));
      if (r == -SL_WS_MESSAGE_TOO_BIG)
        FUZZ_CHECK(f.opcode < 8 &&
                   (f.opcode == SL_WS_CONT ? open_size : 0) + f.payload_len >
                       max_message);
      break;
    }
    FUZZ_CHECK(f.opcode >= 8 || (f.opcode == SL_WS_CONT) == (open_op != 0));
    if (f.opcode == SL_WS_TEXT || f.opcode == SL_WS_BINARY) {
      open_op = f.opcode;
      open_size = 0;
      msg_len = 0;
    }
    if (f.opcode < 8) {
      open_size += f.payload_len; /* < 2^62 + max_message: no wrap */
      FUZZ_CHECK(open_size <= max_message);
    }
    if (feed(&a, f.opcode < 8 && open_op == SL_WS_TEXT, p, n, nframe) < 0)
      break;
    if (n < f.payload_len) break; /* the stream ends inside this frame */

    int op = -1;
    r = sl__ws_asm_on_frame_end(&a, &op);
    if (r < 0) {
      FUZZ_CHECK(r == -SL_WS_INVALID_PAYLOAD && f.opcode < 8 && f.fin &&
                 open_op == SL_WS_TEXT);
      FUZZ_CHECK(!ref_utf8(msg, msg_len, 1));
      break;
    }
    if (r == 1) {
      FUZZ_CHECK(f.fin);
      FUZZ_CHECK(op == (f.opcode >= 8 ? f.opcode : open_op));
      if (op == SL_WS_TEXT) FUZZ_CHECK(ref_utf8(msg, msg_len, 1));
      if (op == SL_WS_CLOSE) check_close(p, n);
      if (op < 8) {
        open_op = 0;
        open_size = 0;
        msg_len = 0;
      }
    } else {
      FUZZ_CHECK(r == 0 && !f.fin && f.opcode < 8);
    }
    pos += n;
  }
  free(buf);
}

/* The input as a base64 string, a handshake key and UTF-8 text. */
static void run_text(const uint8_t *data, size_t size) {
  static unsigned char dec[3072];
  static char enc[SL_BASE64_ENCODED_SIZE(sizeof(dec))];
  if (size <= 4096) {
    int n = sl__base64_decode((const char *)data, size, dec, sizeof(dec));
    if (n >= 0) {
      /* Strict decoding: the only accepted encoding is the canonical one. */
      size_t k = sl__base64_encode(dec, (size_t)n, enc);
      FUZZ_CHECK(k == size && memcmp(enc, data, size) == 0);
    }
  }
  if (size <= sizeof(dec)) {
    unsigned char back[sizeof(dec)];
    size_t k = sl__base64_encode(data, size, enc);
    FUZZ_CHECK(k == 4 * ((size + 2) / 3) && strlen(enc) == k);
    FUZZ_CHECK(sl__base64_decode(enc, k, back, sizeof(back)) == (int)size);
    FUZZ_CHECK(size == 0 || memcmp(back, data, size) == 0);
  }
  if (size >= 16) {
    /* A random input is almost never a well-formed key, so also build one
     * from the first 16 bytes; and hash the input in two pieces. */
    char key[SL_BASE64_ENCODED_SIZE(16)], acc[29];
    unsigned char d1[20], d2[20];
    sl_sha1 c;
    FUZZ_CHECK(sl__base64_encode(data, 16, key) == 24);
    FUZZ_CHECK(sl__ws_accept_key(key, 24, acc) == 0);
    FUZZ_CHECK(strlen(acc) == 28 && sl__base64_decode(acc, 28, d1, 20) == 20);
    sl__sha1(data, size, d1);
    sl__sha1_init(&c);
    sl__sha1_update(&c, data, data[1] % size);
    sl__sha1_update(&c, data + data[1] % size, size - data[1] % size);
    sl__sha1_final(&c, d2);
    FUZZ_CHECK(memcmp(d1, d2, 20) == 0);
  }
  if (size <= 64) {
    char acc[29];
    unsigned char nonce[16], d[20];
    if (sl__ws_accept_key((const char *)data, size, acc) == 0) {
      FUZZ_CHECK(size == 24 &&
                 sl__base64_decode((const char *)data, size, nonce, 16) == 16);
      FUZZ_CHECK(strlen(acc) == 28 &&
                 sl__base64_decode(acc, 28, d, sizeof(d)) == 20);
    }
  }
  int v = sl__utf8_valid(data, size);
  FUZZ_CHECK(v == ref_utf8(data, size, 1));
  uint32_t st = SL_UTF8_ACCEPT;
  size_t cut = size ? data[0] % (size + 1) : 0;
  int r1 = sl__utf8_feed(&st, data, cut);
  int r2 = sl__utf8_feed(&st, data + cut, size - cut);
  FUZZ_CHECK((r1 == 0) == ref_utf8(data, cut, 0));
  FUZZ_CHECK((r1 == 0 && r2 == 0 && sl__utf8_complete(st)) == v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  for (int require_mask = 0; require_mask <= 1; require_mask++) {
    run_stream(data, size, require_mask, 1ull << 62, MSG_CAP);
    run_stream(data, size, require_mask, 100, 200);
  }
  run_text(data, size);
  return 0;
}

#ifdef SL_FUZZ_MAIN
#include <dirent.h>
#include <sys/stat.h>

static int replay_file(const char *path) {
  FILE *fp = fopen(path, "rb");
  unsigned char *b = NULL;
  size_t n = 0, cap = 0;
  if (!fp) {
    perror(path);
    return 1;
  }
  for (;;) {
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 4096;
      unsigned char *nb = realloc(b, ncap);
      if (!nb) {
        free(b);
        fclose(fp);
        return 1;
      }
      b = nb, cap = ncap;
    }
    size_t got = fread(b + n, 1, cap - n, fp);
    if (got == 0) break;
    n += got;
  }
  fclose(fp);
  LLVMFuzzerTestOneInput(b, n);
  free(b);
  printf("ok %s (%zu bytes)\n", path, n);
  return 0;
}

/* Replay each file named, or every non-hidden file in each directory
 * named, then exit 0; a broken invariant aborts. */
int main(int argc, char **argv) {
  int bad = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      perror(argv[i]);
      bad = 1;
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      bad |= replay_file(argv[i]);
      continue;
    }
    DIR *d = opendir(argv[i]);
    struct dirent *e;
    if (!d) {
      perror(argv[i]);
      bad = 1;
      continue;
    }
    while ((e = readdir(d)) != NULL) {
      char path[4096];
      if (e->d_name[0] == '.') continue;
      snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
      bad |= replay_file(path);
    }
    closedir(d);
  }
  return bad;
}
#endif
