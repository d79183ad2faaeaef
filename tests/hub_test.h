/*
 * Shared by the hub tests (tests/unit/test_hub_policy.c and
 * tests/net/test_hub_net.c): an incremental parser of the multipart MJPEG
 * stream a hub writes, so a test knows exactly which frames a viewer got,
 * where each part started in the byte stream, and that every payload is the
 * frame it claims to be (the producers put a sequence number in the first
 * 8 bytes of each frame).
 *
 * Parts are delimited as a real client does: a part's payload is its
 * Content-Length bytes, complete once they are in; the CRLF that follows
 * it belongs to the next delimiter (RFC 2046 section 5.1.1), and a hub
 * sends it at the head of the next part, so it is checked then.
 *
 * The parser's memory is the test's own (malloc), never counted by
 * sl_mem_stats.
 */
#ifndef SL_HUB_TEST_H
#define SL_HUB_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "test.h"

#define MP_BOUNDARY "--sluiceframe\r\n"

struct mp_part {
  uint64_t seq;          /* X-Frame */
  uint64_t content_seq;  /* the first 8 bytes of the payload */
  uint64_t start;        /* stream offset of the part's delimiter (its
                            leading CRLF, after the first part) */
  uint64_t end;          /* stream offset after its payload */
  size_t len;            /* Content-Length */
  int complete;
};

struct mp {
  int state;             /* 0 HTTP head, 1 part head, 2 body, 3 the CRLF
                            opening the next delimiter */
  char head[1024];
  size_t hlen;
  uint64_t off;          /* stream bytes fed so far */
  uint64_t part_start;
  size_t body_left, body_got, tail_got;
  unsigned char first8[8];
  int status;            /* HTTP status when a head was expected */
  char status_line[128];
  int retry_after;       /* the head had a Retry-After header */
  struct mp_part *parts;
  size_t nparts, cap;
  size_t ncomplete;
  int error;             /* a malformed stream */
};

/* http_head: the stream starts with an HTTP response head to skip. */
static inline void mp_init(struct mp *p, int http_head) {
  memset(p, 0, sizeof(*p));
  p->state = http_head ? 0 : 1;
}

static inline void mp_fini(struct mp *p) {
  free(p->parts);
  memset(p, 0, sizeof(*p));
}

static inline uint64_t mp_get_u64(const unsigned char *b) {
  uint64_t v;
  memcpy(&v, b, 8);
  return v;
}

static inline void mp_put_u64(unsigned char *b, uint64_t v) { memcpy(b, &v, 8); }

/* A header value by name inside head[0..hlen), or NULL. */
static inline const char *mp_header(const char *head, const char *name) {
  const char *p = head;
  size_t n = strlen(name);
  while ((p = strstr(p, "\r\n")) != NULL) {
    p += 2;
    if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
      p += n + 1;
      while (*p == ' ') p++;
      return p;
    }
  }
  return NULL;
}

static inline struct mp_part *mp_last(struct mp *p) {
  return p->nparts ? &p->parts[p->nparts - 1] : NULL;
}

static inline void mp_on_head(struct mp *p) {
  p->head[p->hlen] = '\0';
  if (p->state == 0) {
    int st = 0;
    if (sscanf(p->head, "HTTP/1.%*d %d", &st) != 1) p->error = 1;
    p->status = st;
    const char *eol = strstr(p->head, "\r\n");
    size_t n = eol ? (size_t)(eol - p->head) : 0;
    if (n >= sizeof(p->status_line)) n = sizeof(p->status_line) - 1;
    memcpy(p->status_line, p->head, n);
    p->status_line[n] = '\0';
    p->retry_after = mp_header(p->head, "Retry-After") != NULL;
    /* A non-200 answer has a body we do not parse; stop here. */
    p->state = st == 200 ? 1 : 9;
    return;
  }
  /* Part head: "--sluiceframe\r\n" then headers; the first header line
   * follows the boundary line, so search from the boundary's CRLF. */
  if (strncmp(p->head, MP_BOUNDARY, strlen(MP_BOUNDARY)) != 0) {
    p->error = 1;
    p->state = 9;
    return;
  }
  const char *cl = mp_header(p->head + strlen(MP_BOUNDARY) - 2, "Content-Length");
  const char *xf = mp_header(p->head + strlen(MP_BOUNDARY) - 2, "X-Frame");
  if (cl == NULL || xf == NULL) {
    p->error = 1;
    p->state = 9;
    return;
  }
  if (p->nparts == p->cap) {
    p->cap = p->cap ? p->cap * 2 : 64;
    p->parts = realloc(p->parts, p->cap * sizeof(*p->parts));
    CHECK(p->parts != NULL);
  }
  struct mp_part *q = &p->parts[p->nparts++];
  memset(q, 0, sizeof(*q));
  q->start = p->part_start;
  q->len = (size_t)strtoull(cl, NULL, 10);
  q->seq = strtoull(xf, NULL, 10);
  p->body_left = q->len;
  p->body_got = 0;
  p->tail_got = 0;
  p->state = 2;
}

/* Feed `n` bytes of the stream. */
static inline void mp_feed(struct mp *p, const void *data, size_t n) {
  const unsigned char *b = data;
  size_t i = 0;
  while (i < n) {
    if (p->state == 9) { /* stopped: count bytes only */
      p->off += n - i;
      return;
    }
    if (p->state == 0 || p->state == 1) {
      if (p->state == 1 && p->hlen == 0 && p->nparts == 0) p->part_start = p->off;
      if (p->hlen + 1 >= sizeof(p->head)) {
        p->error = 1;
        p->state = 9;
        continue;
      }
      p->head[p->hlen++] = (char)b[i++];
      p->off++;
      if (p->hlen >= 4 && memcmp(p->head + p->hlen - 4, "\r\n\r\n", 4) == 0) {
        mp_on_head(p);
        p->hlen = 0;
      }
      continue;
    }
    if (p->state == 2) {
      size_t take = n - i < p->body_left ? n - i : p->body_left;
      for (size_t k = 0; k < take && p->body_got + k < 8; k++)
        p->first8[p->body_got + k] = b[i + k];
      p->body_got += take;
      p->body_left -= take;
      i += take;
      p->off += take;
      if (p->body_left == 0) {
        struct mp_part *q = mp_last(p);
        q->content_seq = p->body_got >= 8 ? mp_get_u64(p->first8) : 0;
        q->complete = 1;
        q->end = p->off;
        p->ncomplete++;
        p->part_start = p->off; /* the next delimiter starts here */
        p->state = 3;
      }
      continue;
    }
    /* state 3: the CRLF before the next part's boundary */
    if (b[i] != "\r\n"[p->tail_got]) p->error = 1;
    i++;
    p->off++;
    if (++p->tail_got == 2) p->state = 1;
  }
}

/* The index of the first part starting at or after `off`, or -1. */
static inline long mp_first_from(const struct mp *p, uint64_t off) {
  for (size_t i = 0; i < p->nparts; i++)
    if (p->parts[i].start >= off) return (long)i;
  return -1;
}

/* The parts are in increasing order and, with `content`, every complete
 * part carries the payload it names (its first 8 bytes are its X-Frame). */
static inline void mp_check_consistent(const struct mp *p, int content) {
  CHECK_MSG(!p->error, "malformed multipart stream at offset %llu",
            (unsigned long long)p->off);
  for (size_t i = 0; i < p->nparts; i++) {
    const struct mp_part *q = &p->parts[i];
    if (content && q->complete)
      CHECK_MSG(q->content_seq == q->seq, "part %zu: X-Frame %llu, payload %llu",
                i, (unsigned long long)q->seq, (unsigned long long)q->content_seq);
    if (i)
      CHECK_MSG(q->seq > p->parts[i - 1].seq, "part %zu: seq %llu after %llu", i,
                (unsigned long long)q->seq,
                (unsigned long long)p->parts[i - 1].seq);
  }
}

#endif
