/*
 * libFuzzer target for the MJPEG splitter (apps/sluice-stream/mjpeg_split.c).
 *
 * Input: byte 0 picks max_frame (4..1020 in steps of 8, or 64 KiB when
 * >= 128), byte 1 seeds the chunk sizes, the rest is the stream. The stream
 * is split twice, once in chunks as large as the caller buffer allows and
 * once in small pseudo-random chunks, through a caller buffer of max_frame
 * bytes as in the header's example. Both runs must give the same frames and
 * counters, every frame must run SOI..EOI within max_frame, and what the
 * caller keeps between calls must stay under max_frame. Each call sees its
 * bytes at the very end of a heap block, so ASan catches a read past them.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iapps/sluice-stream \
 *     fuzz/fuzz_mjpeg_split.c apps/sluice-stream/mjpeg_split.c -o fz
 *   ./fz fuzz/corpus/mjpeg_split -max_total_time=60
 * Replay without libFuzzer (as `make test` does for fuzz/regress/):
 *   cc -DSL_FUZZ_MAIN -Iapps/sluice-stream fuzz/fuzz_mjpeg_split.c \
 *     apps/sluice-stream/mjpeg_split.c -o replay && ./replay FILE...
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mjpeg_split.h"

#define REQUIRE(c)                                                           \
  do {                                                                       \
    if (!(c)) {                                                              \
      fprintf(stderr, "%s:%d: REQUIRE(%s) failed\n", __FILE__, __LINE__, #c); \
      abort();                                                               \
    }                                                                        \
  } while (0)

typedef struct run {
  unsigned char *frames; /* frames back to back; never more than the input */
  size_t frames_len, nframes;
  ss_split s;
} run;

/* Split `in`; chunk sizes come from `seed` (0 = as large as fits). */
static void split(run *r, const uint8_t *in, size_t n, size_t max_frame,
                  unsigned seed) {
  ss_split_init(&r->s, max_frame);
  size_t cap = r->s.max_frame;
  unsigned char *buf = malloc(cap), *edge = malloc(cap);
  r->frames = malloc(n ? n : 1);
  r->frames_len = r->nframes = 0;
  REQUIRE(buf && edge && r->frames);
  size_t have = 0, pos = 0;
  uint32_t x = seed * 2654435761u + 1;
  for (;;) {
    ss_split_out o;
    unsigned char *g = edge + cap - have;
    memcpy(g, buf, have);
    int got = ss_split_next(&r->s, g, have, &o);
    REQUIRE(o.consumed <= have);
    if (got) {
      REQUIRE(o.off + o.len == o.consumed && o.len >= 4 && o.len <= cap);
      REQUIRE(g[o.off] == 0xFF && g[o.off + 1] == 0xD8);
      REQUIRE(g[o.off + o.len - 2] == 0xFF && g[o.off + o.len - 1] == 0xD9);
      REQUIRE(r->frames_len + o.len <= n);
      memcpy(r->frames + r->frames_len, g + o.off, o.len);
      r->frames_len += o.len;
      r->nframes++;
    }
    memmove(buf, buf + o.consumed, have - o.consumed);
    have -= o.consumed;
    if (got) continue;
    REQUIRE(have < cap);
    if (pos == n) break;
    size_t take = cap - have;
    if (seed) {
      x = x * 1103515245u + 12345u;
      size_t want = (x >> 16) % 17 + 1;
      if (((x >> 8) & 7) == 0) want = (x >> 12) % 4096 + 1;
      if (take > want) take = want;
    }
    if (take > n - pos) take = n - pos;
    memcpy(buf + have, in + pos, take);
    have += take;
    pos += take;
  }
  ss_split_finish(&r->s);
  free(buf);
  free(edge);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t max_frame = data[0] < 128 ? 4 + (size_t)data[0] * 8 : 65536;
  unsigned seed = data[1] | 0x100u;
  data += 2;
  size -= 2;
  run a, b;
  split(&a, data, size, max_frame, 0);
  split(&b, data, size, max_frame, seed);
  REQUIRE(a.nframes == b.nframes && a.frames_len == b.frames_len);
  REQUIRE(a.frames_len == 0 || memcmp(a.frames, b.frames, a.frames_len) == 0);
  REQUIRE(a.s.frames == a.nframes && b.s.frames == b.nframes);
  REQUIRE(a.s.garbage_bytes == b.s.garbage_bytes);
  REQUIRE(a.s.truncated == b.s.truncated && a.s.oversized == b.s.oversized);
  REQUIRE(a.s.corrupt == b.s.corrupt);
  /* Frames and garbage are disjoint parts of the input. */
  REQUIRE(a.frames_len + a.s.garbage_bytes <= size);
  free(a.frames);
  free(b.frames);
  return 0;
}

#ifdef SL_FUZZ_MAIN
int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (f == NULL) {
      perror(argv[i]);
      return 1;
    }
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0, n;
    unsigned char chunk[65536];
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
      if (len + n > cap) {
        cap = (len + n) * 2;
        unsigned char *nb = realloc(buf, cap);
        if (nb == NULL) {
          fprintf(stderr, "%s: out of memory\n", argv[i]);
          return 1;
        }
        buf = nb;
      }
      memcpy(buf + len, chunk, n);
      len += n;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
  }
  printf("replayed %d input(s)\n", argc - 1);
  return 0;
}
#endif
