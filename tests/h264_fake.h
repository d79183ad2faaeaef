/*
 * Hand-made H.264 access units for the hub unit tests (test_hub_h264.c,
 * test_hub_group.c), and the reader that checks what a viewer got.
 *
 * The SPS and PPS are real (libx264, baseline, 160x120 and 320x240), the
 * slices are fake: a NAL header byte (0x65 IDR, 0x41 non-IDR) then "S",
 * the hub sequence number the slice is published as (16 hex digits), its
 * own length (8 hex digits) and filler bytes 0x80. The hub reads only NAL
 * types, and a slice holds no zero byte, so the bytes a viewer got split
 * back into access units unambiguously, and a slice cut short by the end
 * of a recording is seen as incomplete.
 *
 * Decode order: every non-IDR slice of these streams references the frame
 * just before it, so a stream is decodable exactly when it starts at an IDR
 * with its parameter sets and every non-key frame follows its predecessor.
 */
#ifndef SL_TEST_H264_FAKE_H
#define SL_TEST_H264_FAKE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

/* SPS and PPS of `ffmpeg -f lavfi -i testsrc=size=160x120:rate=30
 * -pix_fmt yuv420p -c:v libx264 -profile:v baseline -bf 0 -f h264`, and the
 * SPS of the same at 320x240, 25 fps (its PPS is the same bytes). */
static const unsigned char SPS_A[] = {0x67, 0x42, 0xc0, 0x0b, 0xd9, 0x02, 0x84, 0x7e,
                                      0x5c, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40,
                                      0x00, 0x00, 0x0f, 0x03, 0xc5, 0x0a, 0x92};
static const unsigned char SPS_B[] = {0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb,
                                      0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
                                      0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80};
static const unsigned char PPS[] = {0x68, 0xcb, 0x83, 0xcb, 0x20};

enum { PS_NONE = 0, PS_A = 1, PS_B = 2 };
enum { SLICE = 2000 }; /* bytes of a fake slice */
#define SLICE_HEAD 26   /* NAL header, "S", 16 + 8 hex digits */

static inline size_t put_nal(unsigned char *o, const unsigned char *nal, size_t n) {
  memcpy(o, "\0\0\0\1", 4);
  memcpy(o + 4, nal, n);
  return 4 + n;
}

static inline size_t put_ps(unsigned char *o, int ps) {
  size_t k = 0;
  if (ps == PS_NONE) return 0;
  k += put_nal(o, ps == PS_A ? SPS_A : SPS_B, ps == PS_A ? sizeof(SPS_A) : sizeof(SPS_B));
  k += put_nal(o + k, PPS, sizeof(PPS));
  return k;
}

/* An access unit: parameter sets `ps` (PS_NONE for none), then one slice
 * (key: IDR) of `slice` bytes carrying `seq`; slice 0: parameter sets
 * only. */
static inline sl_buf *mk_au(uint64_t seq, int key, int ps, size_t slice) {
  unsigned char *o = malloc(64 + slice);
  CHECK(o != NULL);
  size_t k = put_ps(o, ps);
  if (slice) {
    CHECK(slice >= SLICE_HEAD);
    memcpy(o + k, "\0\0\0\1", 4);
    unsigned char *s = o + k + 4;
    char head[48];
    snprintf(head, sizeof(head), "%cS%016llx%08x", key ? 0x65 : 0x41,
             (unsigned long long)seq, (unsigned)slice);
    memcpy(s, head, SLICE_HEAD);
    memset(s + SLICE_HEAD, 0x80, slice - SLICE_HEAD);
    k += 4 + slice;
  }
  sl_buf *b = sl_buf_from(o, k);
  free(o);
  CHECK(b != NULL);
  return b;
}

/* ---- reading back what a viewer got --------------------------------- */

struct au_rec {
  uint64_t seq;
  int key;
  int ps;          /* PS_A / PS_B in front of it (in-band or inserted) */
  int complete;
  size_t start;    /* stream offset of its first byte */
};

struct aus {
  struct au_rec *v;
  size_t n, cap;
  int error;
  char why[160];
};

static inline void aus_fini(struct aus *a) {
  free(a->v);
  memset(a, 0, sizeof(*a));
}

static inline int ps_of(const unsigned char *nal, size_t n) {
  if (n == sizeof(SPS_A) && memcmp(nal, SPS_A, n) == 0) return PS_A;
  if (n == sizeof(SPS_B) && memcmp(nal, SPS_B, n) == 0) return PS_B;
  return -1;
}

/* Split an Annex-B byte stream into access units. Any NAL unit but these
 * tests' SPS, PPS and slices is an error; so is a slice that is not the
 * length it says, unless it is the last one (cut by the recording). */
static inline void parse_annexb(const unsigned char *p, size_t n, struct aus *a) {
  memset(a, 0, sizeof(*a));
  size_t i = 0, au_start = 0;
  int sps = 0, pps = 0;
  if (n && (n < 4 || memcmp(p, "\0\0\0\1", 4) != 0)) {
    a->error = 1;
    snprintf(a->why, sizeof(a->why), "no start code at offset 0");
    return;
  }
  while (i + 4 <= n) {
    size_t s = i + 4, e = s;
    while (e + 4 <= n && memcmp(p + e, "\0\0\0\1", 4) != 0) e++;
    if (e + 4 > n) e = n;
    const unsigned char *nal = p + s;
    size_t len = e - s;
    int type = len ? nal[0] & 0x1f : -1;
    if (!sps && !pps) au_start = i;
    if (type == 7) {
      sps = ps_of(nal, len);
      if (sps < 0 && e < n) {
        a->error = 1;
        snprintf(a->why, sizeof(a->why), "unknown SPS at %zu", i);
      }
    } else if (type == 8) {
      pps = len == sizeof(PPS) && memcmp(nal, PPS, len) == 0;
    } else if (type == 5 || type == 1) {
      if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 256;
        a->v = realloc(a->v, a->cap * sizeof(*a->v));
        CHECK(a->v != NULL);
      }
      struct au_rec *r = &a->v[a->n++];
      memset(r, 0, sizeof(*r));
      r->key = type == 5;
      r->ps = sps > 0 && pps ? sps : PS_NONE;
      r->start = au_start;
      char head[SLICE_HEAD + 1] = "";
      size_t want = 0;
      unsigned long long seq = 0;
      if (len >= SLICE_HEAD) {
        memcpy(head, nal, SLICE_HEAD);
        head[SLICE_HEAD] = '\0';
        if (sscanf(head + 1, "S%16llx%8zx", &seq, &want) != 2) want = 0;
      }
      r->seq = seq;
      r->complete = want && len == want;
      if (!r->complete && e < n) {
        a->error = 1;
        snprintf(a->why, sizeof(a->why), "slice at %zu: %zu bytes, says %zu", i, len, want);
      }
      sps = pps = 0;
    } else if (e < n || len > 0) {
      a->error = 1;
      snprintf(a->why, sizeof(a->why), "NAL type %d at %zu", type, i);
    }
    i = e;
  }
}

/* The access units a viewer got form a stream a decoder takes without an
 * error: it starts at an IDR, every IDR carries SPS and PPS, every other
 * frame follows its predecessor, and only the last may be incomplete.
 * Returns how many gaps there were (each followed by an IDR). */
static inline int check_decodable(const struct aus *a, const char *who) {
  int gaps = 0;
  CHECK_MSG(!a->error, "%s: malformed stream: %s", who, a->why);
  for (size_t i = 0; i < a->n; i++) {
    const struct au_rec *r = &a->v[i];
    CHECK_MSG(r->complete || i + 1 == a->n, "%s: frame %zu (seq %llu) incomplete", who, i,
              (unsigned long long)r->seq);
    if (r->key) {
      CHECK_MSG(r->ps != PS_NONE, "%s: IDR %llu without SPS/PPS", who,
                (unsigned long long)r->seq);
    } else {
      CHECK_MSG(r->ps == PS_NONE, "%s: P-frame %llu behind parameter sets", who,
                (unsigned long long)r->seq);
    }
    if (i == 0) {
      CHECK_MSG(r->key, "%s: starts at P-frame %llu", who, (unsigned long long)r->seq);
      continue;
    }
    uint64_t prev = a->v[i - 1].seq;
    CHECK_MSG(r->seq > prev, "%s: frame %llu after %llu", who, (unsigned long long)r->seq,
              (unsigned long long)prev);
    if (r->seq != prev + 1) {
      CHECK_MSG(r->key, "%s: P-frame %llu after %llu: its reference is missing", who,
                (unsigned long long)r->seq, (unsigned long long)prev);
      gaps++;
    }
  }
  return gaps;
}

#endif
