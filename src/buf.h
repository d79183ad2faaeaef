/* Shared immutable buffers (sl_buf): one allocation, an atomic refcount, and
 * a holder slot that the accounting above (outq.c) uses to count a buffer
 * once per manager however many of its connections queue it. */
#ifndef SL_BUF_H
#define SL_BUF_H

#include <stdatomic.h>
#include <stddef.h>

#include "sluice.h"

struct sl_buf {
  atomic_uint refs;
  size_t len;  /* visible bytes */
  size_t cap;  /* allocated bytes after the header */
  /* Holder slot, opaque here: buf.c only zeroes it. The output queue
   * stores the accounting that counts this buffer once (qacct) and how
   * many of its segments reference it (qrefs); another manager queueing
   * the same buffer counts it per segment instead. It stays in the buffer
   * (not in a per-manager table) so queueing costs no lookup. */
  _Atomic(void *) qacct;
  atomic_uint qrefs;
  /* An alias (sl__buf_alias): the bytes are the parent's, which this
   * buffer keeps alive with one reference; data[] is empty. NULL for an
   * ordinary buffer. */
  sl_buf *parent;
  unsigned char data[];
};

/* Bytes the buffer occupies (header + data): what held counters add. For
 * an alias: its header plus the whole parent it keeps alive, so a manager
 * whose queues hold only the alias still counts the frame's bytes (once). */
size_t sl__buf_size(const sl_buf *b);

/* A new buffer with one reference whose bytes are those of `b` (of its
 * root, when `b` is itself an alias): it takes a reference to the root and
 * copies nothing. It has its own reference count and holder slot, so the
 * managers of several threads each count, queue and release "their" copy
 * of one frame as if it were their own buffer, and a hub can tell when its
 * own manager's queues are done with it (hub_group.c). The bytes stay
 * immutable; sl__buf_resize refuses an alias. NULL on allocation failure.
 * Any thread. */
sl_buf *sl__buf_alias(sl_buf *b);

/* Move a buffer that nobody else sees yet (one reference, never queued) to
 * an allocation of `cap` bytes, keeping the first min(len, cap) bytes; its
 * visible length becomes `cap`. Lets a producer build a frame in place and
 * grow or trim it before sharing. Returns the (possibly moved) buffer, or
 * NULL with `b` untouched. */
sl_buf *sl__buf_resize(sl_buf *b, size_t cap);

#endif
