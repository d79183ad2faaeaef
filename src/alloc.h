/*
 * Counted allocation. Every byte the library allocates goes through here,
 * tagged with a kind, so the process-wide counters in sl_mem_stats are exact.
 * Callers pass the size back to sl__free (like zmalloc without its header),
 * which keeps each allocation header-free.
 */
#ifndef SL_ALLOC_H
#define SL_ALLOC_H

#include <stddef.h>

enum sl_mem_kind { SL_MEM_OUT, SL_MEM_IN, SL_MEM_BUF, SL_MEM_META, SL_MEM_NKINDS };

/* Allocate `size` bytes of `kind`; NULL on failure (nothing counted). */
void *sl__alloc(size_t size, int kind);
/* Zeroed allocation. */
void *sl__calloc(size_t size, int kind);
/* Resize from `old` to `size` bytes; on failure returns NULL and `p` is
 * untouched (counters too). */
void *sl__realloc(void *p, size_t old, size_t size, int kind);
/* Free `size` bytes of `kind` (p may be NULL). */
void sl__free(void *p, size_t size, int kind);
/* Copy a NUL-terminated string (META). Free with sl__free(s, strlen+1). */
char *sl__strdup(const char *s);

#endif
