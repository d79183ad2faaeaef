/* Shared buffers. Immutable once shared; the last unref frees, exactly once
 * (the atomic decrement makes that so across threads). */
#include "buf.h"

#include <string.h>

#include "alloc.h"

size_t sl__buf_size(const sl_buf *b) {
  return sizeof(*b) + b->cap + (b->parent ? sl__buf_size(b->parent) : 0);
}

sl_buf *sl_buf_new(size_t len) {
  if (len > (size_t)-1 - sizeof(sl_buf)) return NULL;
  sl_buf *b = sl__alloc(sizeof(*b) + len, SL_MEM_BUF);
  if (b == NULL) return NULL;
  atomic_init(&b->refs, 1);
  b->len = len;
  b->cap = len;
  atomic_init(&b->qacct, NULL);
  atomic_init(&b->qrefs, 0);
  b->parent = NULL;
  return b;
}

sl_buf *sl__buf_alias(sl_buf *b) {
  sl_buf *root = b->parent ? b->parent : b;
  sl_buf *a = sl_buf_new(0);
  if (a == NULL) return NULL;
  a->parent = sl_buf_ref(root);
  a->len = b->len;
  return a;
}

sl_buf *sl_buf_from(const void *data, size_t len) {
  sl_buf *b = sl_buf_new(len);
  if (b && len) memcpy(b->data, data, len);
  return b;
}

sl_buf *sl__buf_resize(sl_buf *b, size_t cap) {
  if (b->parent) return NULL;
  if (cap > (size_t)-1 - sizeof(sl_buf)) return NULL;
  sl_buf *nb = sl__realloc(b, sizeof(*b) + b->cap, sizeof(*b) + cap,
                           SL_MEM_BUF);
  if (nb == NULL) return NULL;
  nb->cap = cap;
  nb->len = cap;
  return nb;
}

void *sl_buf_data(sl_buf *b) { return b->parent ? b->parent->data : b->data; }
const void *sl_buf_cdata(const sl_buf *b) {
  return b->parent ? b->parent->data : b->data;
}
size_t sl_buf_len(const sl_buf *b) { return b->len; }

int sl_buf_truncate(sl_buf *b, size_t len) {
  if (len > b->len) return SL_EINVAL;
  b->len = len;
  return 0;
}

sl_buf *sl_buf_ref(sl_buf *b) {
  atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
  return b;
}

void sl_buf_unref(sl_buf *b) {
  if (b == NULL) return;
  /* Release on the decrement, acquire before freeing: every write made by
   * any holder happens-before the free. */
  if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
    sl_buf *parent = b->parent;
    sl__free(b, sizeof(*b) + b->cap, SL_MEM_BUF);
    sl_buf_unref(parent);
  }
}

unsigned sl_buf_refs(const sl_buf *b) {
  return atomic_load_explicit(&((sl_buf *)b)->refs, memory_order_relaxed);
}
