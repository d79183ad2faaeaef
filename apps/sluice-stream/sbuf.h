/* A bounded, growing text buffer for JSON and Prometheus output. Appends
 * past `max` set an overflow flag instead of growing: output is bounded
 * whatever the number of viewers. */
#ifndef SS_SBUF_H
#define SS_SBUF_H

#include <stddef.h>

typedef struct ss_sbuf {
  char *p;
  size_t len, cap, max;
  int overflow;
} ss_sbuf;

void ss_sbuf_init(ss_sbuf *b, size_t max);
void ss_sbuf_free(ss_sbuf *b);
void ss_sbuf_printf(ss_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal (quotes and escapes included). */
void ss_sbuf_json_str(ss_sbuf *b, const char *s);

#endif
