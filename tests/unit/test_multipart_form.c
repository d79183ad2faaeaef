/*
 * The multipart/form-data parser (sl_multipart_*): what browsers and curl
 * send, fed whole, byte at a time, and in every two-piece split (each piece
 * against a guard page), which must all give the same parts and bytes; the
 * Content-Type's boundary rules; hostile input (missing or malformed
 * headers, a boundary inside the data, bounds exceeded, a body cut short);
 * and the exact counters back to zero.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "sluice.h"
#include "test.h"

/* What the callbacks saw, as text: one line per event. */
struct rec {
  char log[8192];
  size_t n;
  int stop_at_data; /* on_data returns SL_ECANCELED at this piece (1-based) */
  int datas;
};

static void add(struct rec *r, const char *s, size_t len) {
  if (r->n + len >= sizeof(r->log)) len = sizeof(r->log) - 1 - r->n;
  memcpy(r->log + r->n, s, len);
  r->n += len;
  r->log[r->n] = '\0';
}

static int on_part(const sl_multipart_part *p, void *arg) {
  struct rec *r = arg;
  char line[512];
  int n = snprintf(line, sizeof(line), "[%zu name=%.*s file%s=%.*s type=%.*s]", p->index,
                   (int)p->name.len, p->name.ptr, p->has_filename ? "" : "(none)",
                   (int)p->filename.len, p->filename.ptr, (int)p->content_type.len,
                   p->content_type.ptr);
  add(r, line, (size_t)n);
  return 0;
}

static int on_data(const sl_multipart_part *p, const void *d, size_t len, void *arg) {
  struct rec *r = arg;
  (void)p;
  CHECK(len > 0);
  if (++r->datas == r->stop_at_data) return SL_ECANCELED;
  add(r, d, len);
  return 0;
}

static int on_end(const sl_multipart_part *p, void *arg) {
  struct rec *r = arg;
  char line[64];
  int n = snprintf(line, sizeof(line), "[end %zu size=%llu]", p->index,
                   (unsigned long long)p->size);
  add(r, line, (size_t)n);
  return 0;
}

static sl_multipart *mk(const char *ct, struct rec *r, const sl_multipart_opts *base) {
  sl_multipart_opts o = {0};
  if (base) o = *base;
  o.on_part = on_part;
  o.on_data = on_data;
  o.on_end = on_end;
  o.arg = r;
  int err = 0;
  sl_multipart *mp = sl_multipart_new(ct, strlen(ct), &o, &err);
  CHECK_MSG(mp != NULL, "sl_multipart_new: %s", sl_err_name(err));
  return mp;
}

/* Feed `body` in pieces: `step` 0 = whole, 1 = byte at a time, else one cut
 * at `cut`. Returns the first nonzero feed result, else finish's. */
static int run(const char *ct, const char *body, size_t len, int step, size_t cut,
               struct rec *r, const sl_multipart_opts *o, char *why, size_t whycap) {
  memset(r, 0, sizeof(*r));
  sl_multipart *mp = mk(ct, r, o);
  int rc = 0;
  if (step == 0) {
    rc = sl_multipart_feed(mp, test_guard(body, len), len);
  } else if (step == 1) {
    for (size_t i = 0; i < len && rc == 0; i++) rc = sl_multipart_feed(mp, test_guard(body + i, 1), 1);
  } else {
    rc = sl_multipart_feed(mp, test_guard(body, cut), cut);
    if (rc == 0) rc = sl_multipart_feed(mp, test_guard(body + cut, len - cut), len - cut);
  }
  if (rc == 0) rc = sl_multipart_finish(mp);
  if (why) snprintf(why, whycap, "%s", sl_multipart_error(mp));
  sl_multipart_free(mp);
  return rc;
}

/* Every split gives the same result as the whole and, when it succeeds,
 * the same record (on an error, how much data came before it depends on
 * the split). */
static int all_splits(const char *ct, const char *body, const sl_multipart_opts *o,
                      struct rec *whole, char *why, size_t whycap) {
  size_t len = strlen(body);
  struct rec r;
  char w2[128];
  int rc = run(ct, body, len, 0, 0, whole, o, why, whycap);
  CHECK_EQ(run(ct, body, len, 1, 0, &r, o, w2, sizeof(w2)), rc);
  if (rc == 0) CHECK_STR(r.log, whole->log);
  CHECK_STR(w2, why);
  for (size_t cut = 0; cut <= len; cut++) {
    CHECK_EQ(run(ct, body, len, 2, cut, &r, o, w2, sizeof(w2)), rc);
    if (rc == 0) CHECK_STR(r.log, whole->log);
    CHECK_STR(w2, why);
  }
  return rc;
}

#define CT "multipart/form-data; boundary=XyZ"

TEST(multipart_form_browser_body) {
  /* As Chromium sends a form with a text field, a file and an empty file
   * input; the file holds CR, LF and a near-delimiter "\r\n--XyZ" prefix. */
  static const char ct[] = "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW";
  static const char body[] =
      "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n"
      "Content-Disposition: form-data; name=\"title\"\r\n"
      "\r\n"
      "My camera\r\n"
      "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n"
      "Content-Disposition: form-data; name=\"fw\"; filename=\"fw %22v2%22.bin\"\r\n"
      "Content-Type: application/octet-stream\r\n"
      "\r\n"
      "\x01\r\n\r\n--\r\n------WebKitFormBoundary7MA4YWxkTrZu0gX\r\r\n\x02\r\n"
      "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n"
      "Content-Disposition: form-data; name=\"extra\"; filename=\"\"\r\n"
      "Content-Type: application/octet-stream\r\n"
      "\r\n"
      "\r\n"
      "------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n";
  struct rec r;
  char why[128];
  CHECK_EQ(all_splits(ct, body, NULL, &r, why, sizeof(why)), 0);
  CHECK_STR(r.log,
            "[0 name=title file(none)= type=]My camera[end 0 size=9]"
            "[1 name=fw file=fw %22v2%22.bin type=application/octet-stream]"
            "\x01\r\n\r\n--\r\n------WebKitFormBoundary7MA4YWxkTrZu0gX\r\r\n\x02[end 1 size=52]"
            "[2 name=extra file= type=application/octet-stream][end 2 size=0]");
  CHECK_STR(why, "");
  CHECK_MEM_CLEAN();
}

TEST(multipart_form_framing_variants) {
  struct rec r;
  char why[128];
  /* A preamble, a delimiter with transport padding, an epilogue, a part
   * whose data is empty, and a body starting with CRLF. */
  CHECK_EQ(all_splits(CT,
                      "This is a preamble --XyZ not at a line start\r\n"
                      "--XyZ \t\r\ncontent-disposition: FORM-DATA;name=a ; x=\"y\"\r\n\r\n"
                      "1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n"
                      "\r\n--XyZ--epilogue\r\n--XyZ\r\ngarbage",
                      NULL, &r, why, sizeof(why)), 0);
  CHECK_STR(r.log, "[0 name=a file(none)= type=]1[end 0 size=1][1 name=b file(none)= type=][end 1 size=0]");
  CHECK_EQ(all_splits(CT, "\r\n--XyZ\r\nContent-Disposition: form-data; name=q\r\n\r\nv\r\n--XyZ--",
                      NULL, &r, why, sizeof(why)), 0);
  CHECK_STR(r.log, "[0 name=q file(none)= type=]v[end 0 size=1]");
  /* No parts at all: only the closing delimiter. */
  CHECK_EQ(all_splits(CT, "--XyZ--\r\n", NULL, &r, why, sizeof(why)), 0);
  CHECK_STR(r.log, "");
  CHECK_MEM_CLEAN();
}

TEST(multipart_form_content_type) {
  sl_str b;
  const char *why = NULL;
  static const struct { const char *ct, *boundary; } ok[] = {
      {"multipart/form-data; boundary=abc", "abc"},
      {"Multipart/Form-Data;boundary=\"a b:c?=()+_,-./'\"", "a b:c?=()+_,-./'"},
      {"multipart/form-data; charset=utf-8; BOUNDARY=z;", "z"},
      {"multipart/form-data; boundary=0123456789012345678901234567890123456789012345678901234567890123456789",
       "0123456789012345678901234567890123456789012345678901234567890123456789"},
  };
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    CHECK_EQ(sl_multipart_boundary(ok[i].ct, strlen(ok[i].ct), &b, &why), 0);
    CHECK_EQ(b.len, strlen(ok[i].boundary));
    CHECK_MEM(b.ptr, ok[i].boundary, b.len);
  }
  static const char *const bad[] = {
      "",
      "text/plain; boundary=abc",
      "multipart/mixed; boundary=abc",
      "multipart/form-data",
      "multipart/form-data; boundary=",
      "multipart/form-data; boundary=\"\"",
      "multipart/form-data; boundary=\"abc",
      "multipart/form-data; boundary=\"ends in space \"",
      "multipart/form-data; boundary=a\"b",
      "multipart/form-data; boundary=\"a\\b\"",
      "multipart/form-data; boundary=a; boundary=b",
      "multipart/form-data; boundary=01234567890123456789012345678901234567890123456789012345678901234567890",
      "multipart/form-data boundary=abc",
      "multipart/form-data; =abc",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    why = NULL;
    CHECK_MSG(sl_multipart_boundary(bad[i], strlen(bad[i]), &b, &why) == SL_EPROTO, "accepted: %s", bad[i]);
    CHECK(why != NULL && why[0] != '\0');
    int err = 0;
    CHECK(sl_multipart_new(bad[i], strlen(bad[i]), NULL, &err) == NULL);
    CHECK_EQ(err, SL_EPROTO);
  }
  CHECK_EQ(sl_multipart_boundary("text/html", 9, &b, &why), SL_EPROTO);
  CHECK_STR(why, "Content-Type is not multipart/form-data");
  int err = 0;
  sl_multipart_opts o = {.max_head = 100};
  CHECK(sl_multipart_new(CT, strlen(CT), &o, &err) == NULL);
  CHECK_EQ(err, SL_EINVAL);
  CHECK_MEM_CLEAN();
}

TEST(multipart_form_hostile) {
  static const struct { const char *body, *why; int rc; } cases[] = {
      {"--XyZ\r\n\r\ndata\r\n--XyZ--", "part 0: no Content-Disposition header", SL_EPROTO},
      {"--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--", "part 0: no Content-Disposition header", SL_EPROTO},
      {"--XyZ\r\nContent-Disposition: attachment; name=a\r\n\r\n", "part 0: Content-Disposition is not form-data", SL_EPROTO},
      {"--XyZ\r\nContent-Disposition: form-data\r\n\r\n", "part 0: no name in Content-Disposition", SL_EPROTO},
      {"--XyZ\r\nContent-Disposition: form-data; name=\"a\r\n\r\n", "part 0: malformed Content-Disposition", SL_EPROTO},
      {"--XyZ\r\nContent-Disposition: form-data; name=a; name=b\r\n\r\n", "part 0: repeated Content-Disposition parameter", SL_EPROTO},
      {"--XyZ\r\nContent-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=b\r\n\r\n",
       "part 0: two Content-Disposition headers", SL_EPROTO},
      {"--XyZ\r\nContent-Disposition: form-data; name=a\r\nno colon\r\n\r\n", "part 0: header line without colon", SL_EPROTO},
      {"--XyZ\r\nContent-Disposition: form-data;\r\n name=a\r\n\r\n", "part 0: folded header line", SL_EPROTO},
      {"--XyZ\r\nContent-Disposition: form-data; name=a\nX: y\r\n\r\n", "part 0: bare CR or LF in headers", SL_EPROTO},
      {"--XyZ\r\nBad Name: 1\r\nContent-Disposition: form-data; name=a\r\n\r\n", "part 0: invalid header name", SL_EPROTO},
      {"--XyZ\r\nX: a\x01\r\nContent-Disposition: form-data; name=a\r\n\r\n", "part 0: control character in a header", SL_EPROTO},
      {"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nab\r\n--XyZX\r\n", "a delimiter followed by other text (boundary in the data?)", SL_EPROTO},
      {"--XyZ-\r\n", "a delimiter followed by a single '-'", SL_EPROTO},
      {"--XyZ \tx\r\n", "a delimiter followed by other text", SL_EPROTO},
      {"--XyZ\r\r\n", "a delimiter line without CRLF", SL_EPROTO},
      {"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nunfinished", "body ended before the closing boundary", SL_EPROTO},
      {"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nunfinished\r\n--Xy", "body ended before the closing boundary", SL_EPROTO},
      {"no delimiter at all", "body ended before the closing boundary", SL_EPROTO},
      {"", "body ended before the closing boundary", SL_EPROTO},
  };
  struct rec r;
  char why[128];
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int rc = all_splits(CT, cases[i].body, NULL, &r, why, sizeof(why));
    CHECK_MSG(rc == cases[i].rc, "case %zu: %s", i, sl_err_name(rc));
    CHECK_STR(why, cases[i].why);
  }
  CHECK_MEM_CLEAN();
}

TEST(multipart_form_bounds) {
  struct rec r;
  char why[128], body[4096];
  /* Headers one byte over max_head, and exactly at it. */
  sl_multipart_opts o = {.max_head = 256};
  const char *pre = "--XyZ\r\nContent-Disposition: form-data; name=a\r\nX: ";
  size_t fixed = strlen(pre) - strlen("--XyZ\r\n") + 4; /* + "\r\n\r\n" */
  char pad[300];
  memset(pad, 'p', sizeof(pad));
  snprintf(body, sizeof(body), "%s%.*s\r\n\r\nv\r\n--XyZ--", pre, (int)(256 - fixed), pad);
  CHECK_EQ(all_splits(CT, body, &o, &r, why, sizeof(why)), 0);
  snprintf(body, sizeof(body), "%s%.*s\r\n\r\nv\r\n--XyZ--", pre, (int)(257 - fixed), pad);
  CHECK_EQ(all_splits(CT, body, &o, &r, why, sizeof(why)), SL_EMSGSIZE);
  CHECK_STR(why, "part 0: headers longer than 256 bytes");
  /* Parts: max_parts exactly, then one more. */
  o = (sl_multipart_opts){.max_parts = 3};
  body[0] = '\0';
  for (int i = 0; i < 4; i++)
    strcat(body, "--XyZ\r\nContent-Disposition: form-data; name=n\r\n\r\nv\r\n");
  strcat(body, "--XyZ--");
  CHECK_EQ(all_splits(CT, body, &o, &r, why, sizeof(why)), SL_EMSGSIZE);
  CHECK_STR(why, "more than 3 parts");
  o.max_parts = 4;
  CHECK_EQ(all_splits(CT, body, &o, &r, why, sizeof(why)), 0);
  /* A part's size: max_part exactly (also when the last bytes are a
   * partial delimiter handed on), then one more. */
  o = (sl_multipart_opts){.max_part = 5};
  CHECK_EQ(all_splits(CT, "--XyZ\r\nContent-Disposition: form-data; name=f\r\n\r\n12\r\n-\r\n--XyZ--", &o, &r,
                      why, sizeof(why)), 0);
  CHECK_EQ(all_splits(CT, "--XyZ\r\nContent-Disposition: form-data; name=f\r\n\r\n123456\r\n--XyZ--", &o, &r,
                      why, sizeof(why)), SL_EMSGSIZE);
  CHECK_STR(why, "part 0: larger than max_part");
  /* A callback's error stops the parser and sticks. */
  sl_multipart *mp = mk(CT, &r, NULL);
  memset(&r, 0, sizeof(r));
  r.stop_at_data = 1;
  const char *b2 = "--XyZ\r\nContent-Disposition: form-data; name=f\r\n\r\nabc";
  CHECK_EQ(sl_multipart_feed(mp, b2, strlen(b2)), SL_ECANCELED);
  CHECK_EQ(sl_multipart_feed(mp, "x", 1), SL_ECANCELED);
  CHECK_EQ(sl_multipart_finish(mp), SL_ECANCELED);
  CHECK_STR(sl_multipart_error(mp), "part 0: stopped by the application");
  CHECK_EQ(sl_multipart_parts(mp), 1);
  sl_multipart_free(mp);
  sl_multipart_free(NULL);
  CHECK_MEM_CLEAN();
}

/* A large random file in random pieces: bytes out equal bytes in, memory
 * held stays one fixed block. */
struct cmp {
  const unsigned char *file;
  size_t off;
  int bad;
};

static int cmp_data(const sl_multipart_part *p, const void *d, size_t len, void *arg) {
  struct cmp *st = arg;
  (void)p;
  if (memcmp(st->file + st->off, d, len) != 0) st->bad = 1;
  st->off += len;
  return 0;
}

TEST(multipart_form_large_random) {
  size_t n = 1u << 20;
  unsigned char *file = malloc(n);
  CHECK(file != NULL);
  uint32_t x = 12345;
  /* Mostly CR, LF, '-' and boundary letters, so that partial delimiters
   * are common; never the whole delimiter (checked below). */
  static const unsigned char alpha[] = "\r\n-XyZ\r\n--Xy";
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    file[i] = (x >> 16) % 3 ? alpha[(x >> 8) % 12] : (unsigned char)(x >> 24);
  }
  for (unsigned char *q; (q = memmem(file, n, "\r\n--XyZ", 7)) != NULL;) q[6] = 'z';
  const char *head = "--XyZ\r\nContent-Disposition: form-data; name=f; filename=r.bin\r\n\r\n";
  const char *tail = "\r\n--XyZ--\r\n";
  size_t hl = strlen(head), tl = strlen(tail), total = hl + n + tl;
  unsigned char *body = malloc(total);
  CHECK(body != NULL);
  memcpy(body, head, hl);
  memcpy(body + hl, file, n);
  memcpy(body + hl + n, tail, tl);
  sl_mem_stats before, during;
  sl_mem_stats_get(&before);
  struct cmp st = {file, 0, 0};
  sl_multipart_opts o = {.on_data = cmp_data, .arg = &st};
  int err = 0;
  sl_multipart *mp = sl_multipart_new(CT, strlen(CT), &o, &err);
  CHECK(mp != NULL);
  sl_mem_stats_get(&during);
  size_t held = during.total;
  CHECK_LE(held - before.total, 8192 + 1024);
  for (size_t off = 0; off < total;) {
    x = x * 1103515245u + 12345u;
    size_t k = 1 + (x >> 8) % 9000;
    if (k > total - off) k = total - off;
    CHECK_EQ(sl_multipart_feed(mp, test_guard(body + off, k), k), 0);
    off += k;
    sl_mem_stats_get(&during);
    CHECK_EQ(during.total, held);
  }
  CHECK_EQ(sl_multipart_finish(mp), 0);
  CHECK_EQ(st.off, n);
  CHECK_EQ(st.bad, 0);
  sl_multipart_free(mp);
  sl_mem_stats_get(&during);
  CHECK_EQ(during.total, before.total);
  free(body);
  free(file);
  CHECK_MEM_CLEAN();
}
