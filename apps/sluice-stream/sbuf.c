#include "sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ss_sbuf_init(ss_sbuf *b, size_t max) {
  memset(b, 0, sizeof(*b));
  b->max = max;
}

void ss_sbuf_free(ss_sbuf *b) {
  free(b->p);
  memset(b, 0, sizeof(*b));
}

static int reserve(ss_sbuf *b, size_t more) {
  if (b->overflow) return -1;
  if (b->len + more + 1 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + more + 1) cap *= 2;
  if (cap > b->max) cap = b->max;
  if (cap < b->len + more + 1) {
    b->overflow = 1;
    return -1;
  }
  char *p = realloc(b->p, cap);
  if (p == NULL) {
    b->overflow = 1;
    return -1;
  }
  b->p = p;
  b->cap = cap;
  return 0;
}

void ss_sbuf_printf(ss_sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || reserve(b, (size_t)n) != 0) return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void ss_sbuf_json_str(ss_sbuf *b, const char *s) {
  ss_sbuf_printf(b, "\"");
  for (; s && *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') ss_sbuf_printf(b, "\\%c", ch);
    else if (ch < 0x20) ss_sbuf_printf(b, "\\u%04x", ch);
    else ss_sbuf_printf(b, "%c", ch);
  }
  ss_sbuf_printf(b, "\"");
}
