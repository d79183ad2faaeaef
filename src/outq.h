/*
 * The output queue of one connection: a singly linked list of segments,
 * each either an owned chunk (copied bytes) or a reference to a range of a
 * shared sl_buf. Flushing builds an iovec over many segments for one
 * writev; consuming the front advances an offset or frees whole segments,
 * and never moves the bytes that remain.
 *
 * Accounting (the contract of DESIGN.md):
 * - q->queued = unsent owned bytes + unsent referenced bytes; send_max,
 *   watermarks and hub limits use it.
 * - acct->held = bytes actually allocated: every owned chunk (header
 *   included) plus each shared buffer once per manager, however many
 *   segments reference it.
 */
#ifndef SL_OUTQ_H
#define SL_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "sluice.h"

/* A manager's byte accounting, shared by all of its queues. */
struct sl_acct {
  size_t held, peak;
  size_t out_owned;  /* owned chunk allocations */
  size_t out_ref;    /* shared buffers counted here */
  size_t in;         /* input buffers */
  size_t queued;     /* sum of queues' `queued` */
};

struct sl_seg;

struct sl_outq {
  struct sl_seg *head, *tail;
  size_t queued;     /* owned + referenced unsent bytes */
  size_t owned;      /* unsent owned bytes */
  size_t referenced; /* unsent referenced bytes */
  size_t nseg;
};

/* Smallest owned chunk: small writes (headers) share one chunk. */
#define SL_OUTQ_CHUNK 512

void sl__outq_init(struct sl_outq *q);

/* Upper bounds of what queueing `parts` would add: to q->queued and to
 * acct->held. Used to check send_max and the budget before queueing. */
void sl__outq_cost(const struct sl_outq *q, const struct sl_acct *acct,
                   const sl_part *parts, size_t n, size_t *queued_add,
                   size_t *held_add);

/* Queue every part, or nothing: 0 or SL_ENOMEM. Ranges must be valid. */
int sl__outq_push(struct sl_outq *q, struct sl_acct *acct,
                  const sl_part *parts, size_t n);

/* Fill up to `max` iovecs from the front; returns how many, and the bytes
 * they cover in *bytes (capped at `limit`). */
int sl__outq_iov(const struct sl_outq *q, struct iovec *iov, int max,
                 size_t limit, size_t *bytes);

/* Drop `n` sent bytes from the front (n <= q->queued). Fully sent
 * segments are freed and their buffer references dropped. */
void sl__outq_consume(struct sl_outq *q, struct sl_acct *acct, size_t n);

/* Drop everything. */
void sl__outq_clear(struct sl_outq *q, struct sl_acct *acct);

/* Count a holder of shared buffer `b` that is not a queue segment (a
 * hub's live frame): held bytes include it once per manager, like queued
 * references. Pass the same `counted` back to release. */
void sl__acct_buf_hold(struct sl_acct *acct, sl_buf *b, size_t *counted);
void sl__acct_buf_release(struct sl_acct *acct, sl_buf *b, size_t counted);

/* Add (or remove, with a negative delta) held bytes, tracking the peak. */
void sl__acct_held(struct sl_acct *acct, long long delta);

#endif
