/*
 * libFuzzer target: the multipart/form-data parser on arbitrary bodies.
 * The first byte picks the bounds; the rest is the body, fed whole, then
 * again in pieces cut where the second byte says. Properties: the result
 * is 0, SL_EPROTO or SL_EMSGSIZE with a message; both feedings agree on
 * the result, the message and, on success, on every part's name, file
 * name, type and data (hashed); each part's data size is what on_data
 * delivered and within max_part; parts never exceed max_parts; no slice
 * points outside the parser's view.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
 *     fuzz/fuzz_multipart_form.c src/multipart.c src/http_parse.c src/alloc.c ...
 *   cc -DSL_FUZZ_MAIN ... && ./a.out fuzz/regress/multipart_form/
 */
#include "fuzz_assert.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice.h"


struct seen {
  uint64_t hash, bytes, part_bytes;
  size_t parts, ends;
  uint64_t max_part;
};

static uint64_t mix(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

static int on_part(const sl_multipart_part *p, void *arg) {
  struct seen *s = arg;
  ASSERT(p->index == s->parts);
  ASSERT(p->size == 0);
  s->parts++;
  s->part_bytes = 0;
  s->hash = mix(s->hash, "P", 1);
  s->hash = mix(s->hash, p->name.ptr, p->name.len);
  s->hash = mix(s->hash, p->has_filename ? "F" : "-", 1);
  s->hash = mix(s->hash, p->filename.ptr, p->filename.len);
  s->hash = mix(s->hash, p->content_type.ptr, p->content_type.len);
  return 0;
}

static int on_data(const sl_multipart_part *p, const void *d, size_t len, void *arg) {
  struct seen *s = arg;
  ASSERT(len > 0);
  s->part_bytes += len;
  s->bytes += len;
  ASSERT(p->size == s->part_bytes);
  ASSERT(s->max_part == 0 || p->size <= s->max_part);
  s->hash = mix(s->hash, d, len);
  return 0;
}

static int on_end(const sl_multipart_part *p, void *arg) {
  struct seen *s = arg;
  ASSERT(p->size == s->part_bytes);
  s->ends++;
  s->hash = mix(s->hash, "E", 1);
  return 0;
}

static int run(const uint8_t *body, size_t n, const sl_multipart_opts *base, size_t step,
               struct seen *s, char *why, size_t cap) {
  static const char ct[] = "multipart/form-data; boundary=\"b-1\"";
  sl_multipart_opts o = *base;
  memset(s, 0, sizeof(*s));
  s->max_part = o.max_part;
  o.on_part = on_part;
  o.on_data = on_data;
  o.on_end = on_end;
  o.arg = s;
  int err = 0;
  sl_multipart *mp = sl_multipart_new(ct, sizeof(ct) - 1, &o, &err);
  ASSERT(mp != NULL);
  int rc = 0;
  for (size_t off = 0; off < n && rc == 0;) {
    size_t k = step ? step : n;
    if (k > n - off) k = n - off;
    /* An exact-size copy of each piece, so ASan sees a read past it. */
    uint8_t *piece = malloc(k);
    ASSERT(piece != NULL);
    memcpy(piece, body + off, k);
    rc = sl_multipart_feed(mp, piece, k);
    free(piece);
    off += k;
  }
  if (rc == 0) rc = sl_multipart_finish(mp);
  ASSERT(rc == 0 || rc == SL_EPROTO || rc == SL_EMSGSIZE);
  ASSERT(rc == sl_multipart_finish(mp));
  const char *w = sl_multipart_error(mp);
  ASSERT((rc == 0) == (w[0] == '\0'));
  snprintf(why, cap, "%s", w);
  ASSERT(s->parts == sl_multipart_parts(mp));
  ASSERT(s->parts <= o.max_parts);
  if (rc == 0) ASSERT(s->ends == s->parts);
  sl_multipart_free(mp);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  sl_multipart_opts o = {0};
  o.max_head = (data[0] & 3) == 0 ? 256 : 8192;
  o.max_parts = (data[0] & 4) ? 3 : 64;
  o.max_part = (data[0] & 8) ? 16 : 0;
  size_t step = 1 + data[1] % 37;
  struct seen a, b;
  char wa[160], wb[160];
  int ra = run(data + 2, size - 2, &o, 0, &a, wa, sizeof(wa));
  int rb = run(data + 2, size - 2, &o, step, &b, wb, sizeof(wb));
  ASSERT(ra == rb);
  ASSERT(strcmp(wa, wb) == 0);
  if (ra == 0) {
    ASSERT(a.hash == b.hash);
    ASSERT(a.bytes == b.bytes);
    ASSERT(a.parts == b.parts);
  }
  return 0;
}

#ifdef SL_FUZZ_MAIN
#include "fuzz_main.h"
#endif
