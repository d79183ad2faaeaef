/*
 * A bounded text writer over a caller's buffer: requests, response heads
 * and other short texts are built with it instead of chained snprintf
 * calls, whose `n += snprintf(p + n, cap - n, ...)` shape underflows the
 * size once `n` passes the end and the next call writes past the buffer.
 *
 * Every append either fits whole or marks the writer failed; once failed
 * it appends nothing more, so a caller checks once, at the end:
 *
 *   char req[512];
 *   sl__wbuf w;
 *   sl__wbuf_init(&w, req, sizeof(req));
 *   sl__wbuf_printf(&w, "GET %s HTTP/1.1\r\n", path);
 *   sl__wbuf_add(&w, extra, extra_len);
 *   if (sl__wbuf_done(&w) != 0) return SL_EMSGSIZE;   (w.len bytes in req)
 *
 * The text is always NUL-terminated within the buffer (the NUL is not part
 * of `len`), so a buffer of `cap` bytes holds at most cap - 1 bytes.
 */
#ifndef SL_WBUF_H
#define SL_WBUF_H

#include <stddef.h>

typedef struct sl__wbuf {
  char *p;
  size_t cap, len;
  int failed;
} sl__wbuf;

void sl__wbuf_init(sl__wbuf *w, char *p, size_t cap);
/* Append formatted text, whole or not at all. */
void sl__wbuf_printf(sl__wbuf *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append `n` bytes, whole or not at all. */
void sl__wbuf_add(sl__wbuf *w, const void *s, size_t n);
/* 0 when every append fitted, else SL_EMSGSIZE. */
int sl__wbuf_done(const sl__wbuf *w);

#endif
