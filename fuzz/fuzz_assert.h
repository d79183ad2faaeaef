/*
 * What every fuzz target starts with: the feature macros the replay build
 * needs (it compiles without _GNU_SOURCE) and ASSERT, which aborts with the
 * broken invariant so that libFuzzer and the replay test both report it.
 * Include it first; fuzz_main.h comes last.
 */
#ifndef SL_FUZZ_ASSERT_H
#define SL_FUZZ_ASSERT_H

#if defined(SL_FUZZ_MAIN) && !defined(_GNU_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include <stdio.h>
#include <stdlib.h>

#define ASSERT(c)                                                            \
  do {                                                                       \
    if (!(c)) {                                                              \
      fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__,   \
              #c);                                                           \
      abort();                                                               \
    }                                                                        \
  } while (0)

#endif
