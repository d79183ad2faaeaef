/* Output queue of segments; see outq.h for the accounting contract. */
#include "outq.h"

#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "internal.h"

struct sl_seg {
  struct sl_seg *next;
  sl_buf *buf;       /* NULL for an owned chunk */
  size_t off;        /* first unsent byte (in data[] or in buf) */
  size_t len;        /* unsent bytes from off */
  size_t cap;        /* owned: capacity of data[] */
  size_t counted;    /* ref: bytes counted per segment (foreign buffer) */
  unsigned char data[];
};

void sl__outq_init(struct sl_outq *q) { memset(q, 0, sizeof(*q)); }

/* Debug builds: queued == owned + referenced == the unsent bytes of the
 * segments, and nseg counts them. The walk is O(segments), so it runs on
 * queues of up to 256 segments (the unit and most net tests). */
#ifdef SL_DEBUG_ASSERTS
static void check_queue(const struct sl_outq *q) {
  SL_ASSERT(q->queued == q->owned + q->referenced);
  SL_ASSERT((q->head == NULL) == (q->tail == NULL));
  if (q->nseg > 256) return;
  size_t owned = 0, referenced = 0, nseg = 0;
  for (const struct sl_seg *s = q->head; s; s = s->next, nseg++) {
    if (s->buf) referenced += s->len;
    else owned += s->len;
    SL_ASSERT(s->next != NULL || s == q->tail);
  }
  SL_ASSERT(owned == q->owned && referenced == q->referenced && nseg == q->nseg);
}
#else
#define check_queue(q) ((void)0)
#endif

void sl__acct_held(struct sl_acct *acct, long long delta) {
  acct->held = (size_t)((long long)acct->held + delta);
  if (acct->held > acct->peak) acct->peak = acct->held;
}

static size_t chunk_cap(size_t len) {
  return len < SL_OUTQ_CHUNK ? SL_OUTQ_CHUNK : len;
}

static size_t tail_room(const struct sl_outq *q) {
  const struct sl_seg *t = q->tail;
  if (t == NULL || t->buf != NULL) return 0;
  return t->cap - (t->off + t->len);
}

void sl__outq_cost(const struct sl_outq *q, const struct sl_acct *acct,
                   const sl_part *parts, size_t n, size_t *queued_add,
                   size_t *held_add) {
  size_t qa = 0, ha = 0, room = tail_room(q);
  for (size_t i = 0; i < n; i++) {
    const sl_part *p = &parts[i];
    qa += p->len;
    if (p->buf == NULL) {
      if (p->len <= room) {
        room -= p->len;
      } else {
        ha += sizeof(struct sl_seg) + chunk_cap(p->len);
        room = chunk_cap(p->len) - p->len;
      }
    } else {
      room = 0;
      if (atomic_load(&p->buf->qacct) != acct ||
          atomic_load(&p->buf->qrefs) == 0)
        ha += sl__buf_size(p->buf);
    }
  }
  *queued_add = qa;
  *held_add = ha;
}

static void link_seg(struct sl_outq *q, struct sl_seg *s) {
  s->next = NULL;
  if (q->tail) q->tail->next = s;
  else q->head = s;
  q->tail = s;
  q->nseg++;
}

/* Count one more holder of `b` in `acct`: the buffer's bytes are added the
 * first time, so a buffer is counted once per manager however many queues
 * (and hubs) hold it. A buffer already counted by another manager is
 * counted here per holder; *counted records how much, to undo it. */
static void hold(struct sl_acct *acct, sl_buf *b, size_t *counted) {
  void *expect = NULL;
  size_t size = sl__buf_size(b);
  atomic_compare_exchange_strong(&b->qacct, &expect, acct);
  if (atomic_load(&b->qacct) == acct) {
    if (atomic_fetch_add(&b->qrefs, 1) == 0) {
      acct->out_ref += size;
      sl__acct_held(acct, (long long)size);
    }
    *counted = 0;
  } else {
    *counted = size;
    acct->out_ref += size;
    sl__acct_held(acct, (long long)size);
  }
}

static void unhold(struct sl_acct *acct, sl_buf *b, size_t counted) {
  if (counted) {
    acct->out_ref -= counted;
    sl__acct_held(acct, -(long long)counted);
    return;
  }
  if (atomic_fetch_sub(&b->qrefs, 1) == 1) {
    size_t size = sl__buf_size(b);
    void *expect = acct;
    acct->out_ref -= size;
    sl__acct_held(acct, -(long long)size);
    atomic_compare_exchange_strong(&b->qacct, &expect, NULL);
  }
}

void sl__acct_buf_hold(struct sl_acct *acct, sl_buf *b, size_t *counted) {
  hold(acct, b, counted);
}

void sl__acct_buf_release(struct sl_acct *acct, sl_buf *b, size_t counted) {
  unhold(acct, b, counted);
}

static void ref_count(struct sl_acct *acct, struct sl_seg *s) {
  hold(acct, s->buf, &s->counted);
}

static void ref_uncount(struct sl_acct *acct, struct sl_seg *s) {
  unhold(acct, s->buf, s->counted);
}

static void free_seg(struct sl_acct *acct, struct sl_seg *s) {
  if (s->buf) {
    ref_uncount(acct, s);
    sl_buf_unref(s->buf);
    sl__free(s, sizeof(*s), SL_MEM_META);
  } else {
    size_t sz = sizeof(*s) + s->cap;
    acct->out_owned -= sz;
    sl__acct_held(acct, -(long long)sz);
    sl__free(s, sz, SL_MEM_OUT);
  }
}

int sl__outq_push(struct sl_outq *q, struct sl_acct *acct,
                  const sl_part *parts, size_t n) {
  /* Allocate every new segment first, so a failure leaves q untouched. */
  struct sl_seg *fresh = NULL, **fresh_tail = &fresh;
  size_t room = tail_room(q), i;
  for (i = 0; i < n; i++) {
    const sl_part *p = &parts[i];
    struct sl_seg *s;
    if (p->len == 0) continue;
    if (p->buf == NULL) {
      if (p->len <= room) {
        room -= p->len;
        continue;
      }
      size_t cap = chunk_cap(p->len);
      s = sl__alloc(sizeof(*s) + cap, SL_MEM_OUT);
      if (s) s->cap = cap;
      room = s ? cap - p->len : 0;
    } else {
      s = sl__alloc(sizeof(*s), SL_MEM_META);
      if (s) s->cap = 0;
      room = 0;
    }
    if (s == NULL) goto fail;
    s->next = NULL;
    *fresh_tail = s;
    fresh_tail = &s->next;
  }

  /* Now nothing can fail: fill the tail chunk or the next fresh segment. */
  for (i = 0; i < n; i++) {
    const sl_part *p = &parts[i];
    if (p->len == 0) continue;
    struct sl_seg *t = q->tail;
    if (p->buf == NULL && t && t->buf == NULL &&
        t->cap - (t->off + t->len) >= p->len) {
      memcpy(t->data + t->off + t->len, p->data, p->len);
      t->len += p->len;
      q->owned += p->len;
    } else {
      struct sl_seg *s = fresh;
      fresh = s->next;
      link_seg(q, s);
      s->off = 0;
      s->len = p->len;
      s->counted = 0;
      if (p->buf == NULL) {
        s->buf = NULL;
        memcpy(s->data, p->data, p->len);
        acct->out_owned += sizeof(*s) + s->cap;
        sl__acct_held(acct, (long long)(sizeof(*s) + s->cap));
        q->owned += p->len;
      } else {
        s->buf = sl_buf_ref(p->buf);
        s->off = p->off;
        ref_count(acct, s);
        q->referenced += p->len;
      }
    }
    q->queued += p->len;
    acct->queued += p->len;
  }
  check_queue(q);
  return 0;

fail:
  while (fresh) {
    struct sl_seg *s = fresh;
    fresh = s->next;
    if (s->cap) sl__free(s, sizeof(*s) + s->cap, SL_MEM_OUT);
    else sl__free(s, sizeof(*s), SL_MEM_META);
  }
  return SL_ENOMEM;
}

int sl__outq_iov(const struct sl_outq *q, struct iovec *iov, int max,
                 size_t limit, size_t *bytes) {
  int n = 0;
  size_t total = 0;
  for (const struct sl_seg *s = q->head; s && n < max && total < limit;
       s = s->next) {
    const unsigned char *base = s->buf ? (const unsigned char *)sl_buf_cdata(s->buf) : s->data;
    size_t len = s->len;
    if (len > limit - total) len = limit - total;
    iov[n].iov_base = (void *)(base + s->off);
    iov[n].iov_len = len;
    total += len;
    n++;
  }
  *bytes = total;
  return n;
}

void sl__outq_consume(struct sl_outq *q, struct sl_acct *acct, size_t n) {
  while (n > 0 && q->head) {
    struct sl_seg *s = q->head;
    size_t take = n < s->len ? n : s->len;
    s->off += take;
    s->len -= take;
    n -= take;
    q->queued -= take;
    acct->queued -= take;
    if (s->buf) q->referenced -= take;
    else q->owned -= take;
    if (s->len == 0) {
      q->head = s->next;
      if (q->head == NULL) q->tail = NULL;
      q->nseg--;
      free_seg(acct, s);
    }
  }
  SL_ASSERT(n == 0);
  check_queue(q);
}

void sl__outq_clear(struct sl_outq *q, struct sl_acct *acct) {
  while (q->head) {
    struct sl_seg *s = q->head;
    q->head = s->next;
    acct->queued -= s->len;
    free_seg(acct, s);
  }
  sl__outq_init(q);
}
