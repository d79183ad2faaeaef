/*
 * libFuzzer target: the chunked body decoder, fed the same bytes whole and
 * in pieces (sizes drawn from the first input byte). Both must agree on
 * the data, the bytes consumed, done and error, which is the property a
 * connection reading from a socket relies on.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Isrc fuzz/fuzz_chunked.c \
 *     src/http_parse.c
 *   cc -DSL_FUZZ_MAIN -Isrc ... && ./a.out fuzz/regress/chunked/
 */
#include "fuzz_assert.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"


struct result {
  long long data; /* data bytes, or -1 on error */
  size_t consumed;
  int done;
  unsigned sum; /* a hash of the data, in order */
};

/* Each piece gets its own exact-size copy, so ASan catches a read past
 * the piece even when the whole input continues after it. */
static void run(const char *p, size_t n, const uint8_t *steps, size_t nsteps,
                struct result *res) {
  sl_chunked st;
  sl__chunked_init(&st);
  memset(res, 0, sizeof(*res));
  for (size_t off = 0, k = 0; off < n && !res->done; k++) {
    size_t piece = nsteps ? (size_t)steps[k % nsteps] % 17 + 1 : n - off;
    if (piece > n - off) piece = n - off;
    char *copy = malloc(piece);
    ASSERT(copy != NULL);
    memcpy(copy, p + off, piece);
    const char *q = copy, *data;
    size_t len = piece, dl;
    int r, done = 0;
    while ((r = sl__chunked_decode(&st, q, len, &data, &dl, &done)) > 0) {
      ASSERT((size_t)r <= len);
      ASSERT(dl == 0 || (data >= q && data + dl <= q + r));
      for (size_t i = 0; i < dl; i++)
        res->sum = res->sum * 31 + (unsigned char)data[i];
      res->data += (long long)dl;
      q += r;
      len -= (size_t)r;
      res->consumed += (size_t)r;
      if (done) break;
    }
    free(copy);
    if (r < 0) {
      res->data = -1;
      /* an error sticks */
      ASSERT(sl__chunked_decode(&st, "0\r\n\r\n", 5, &data, &dl, &done) == -1);
      return;
    }
    ASSERT(done || len == 0);
    res->done = done;
    if (done) {
      ASSERT(sl__chunked_decode(&st, "x", 1, &data, &dl, &done) == 0 && done);
    }
    off += piece;
  }
  ASSERT(res->done || res->consumed == n);
  ASSERT(st.total == (unsigned long long)res->data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t nsteps = data[0] & 7;
  if (nsteps > size - 1) nsteps = size - 1;
  const uint8_t *steps = data + 1;
  const char *body = (const char *)data + 1 + nsteps;
  size_t n = size - 1 - nsteps;
  struct result whole, split, bytes;
  static const uint8_t one = 0;
  run(body, n, NULL, 0, &whole);
  run(body, n, steps, nsteps, &split);
  run(body, n, &one, 1, &bytes);
  ASSERT(whole.data == split.data && whole.data == bytes.data);
  if (whole.data >= 0) {
    ASSERT(whole.consumed == split.consumed && whole.consumed == bytes.consumed);
    ASSERT(whole.done == split.done && whole.done == bytes.done);
    ASSERT(whole.sum == split.sum && whole.sum == bytes.sum);
  }
  return 0;
}

#ifdef SL_FUZZ_MAIN
#include "fuzz_main.h"
#endif
