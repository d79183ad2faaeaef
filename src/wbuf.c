/* The bounded text writer (wbuf.h). */
#include "wbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sluice.h"

void sl__wbuf_init(sl__wbuf *w, char *p, size_t cap) {
  w->p = p;
  w->cap = cap;
  w->len = 0;
  w->failed = cap == 0;
  if (cap) p[0] = '\0';
}

void sl__wbuf_printf(sl__wbuf *w, const char *fmt, ...) {
  if (w->failed) return;
  size_t room = w->cap - w->len;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(w->p + w->len, room, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= room) {
    /* Undo the partial text: a failed append leaves nothing behind. */
    w->p[w->len] = '\0';
    w->failed = 1;
    return;
  }
  w->len += (size_t)n;
}

void sl__wbuf_add(sl__wbuf *w, const void *s, size_t n) {
  if (w->failed) return;
  if (n >= w->cap - w->len) {
    w->failed = 1;
    return;
  }
  memcpy(w->p + w->len, s, n);
  w->len += n;
  w->p[w->len] = '\0';
}

int sl__wbuf_done(const sl__wbuf *w) { return w->failed ? SL_EMSGSIZE : 0; }
