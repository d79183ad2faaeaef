/*
 * The test harness: every TEST() registers itself at start-up, and
 * tests/run.c runs each one in a forked child with a timeout, so a crash or
 * a hang names the test instead of taking the suite down.
 *
 * A test fails by returning through one of the CHECK macros (which print
 * file:line and the values) or by crashing; it skips with TEST_SKIP(), which
 * counts as a failure when CI=true is set (nothing may skip in CI).
 */
#ifndef SL_TEST_H
#define SL_TEST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void (*sl_test_fn)(void);

void sl__test_register(const char *name, sl_test_fn fn, const char *file,
                       int timeout_s);
void sl__test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
void sl__test_skip(const char *why) __attribute__((noreturn));

/* Copy `len` bytes so that the last one sits right before a PROT_NONE page:
 * a parser that reads one byte past its input crashes the test. The copy
 * lives until the next call (one at a time). */
const void *test_guard(const void *data, size_t len);

/* Milliseconds from a monotonic clock, for deadlines inside tests. */
uint64_t test_now_ms(void);

/* Raise RLIMIT_NOFILE to at least `n` (or as far as the hard limit allows);
 * returns the soft limit now in force. */
long test_raise_nofile(long n);

/* Run a shell command; returns its exit status, or -1. */
int test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* 1 when the environment says CI=true. */
int test_in_ci(void);

#define TEST_T(name, timeout_s)                                              \
  static void test_##name(void);                                             \
  __attribute__((constructor)) static void test_reg_##name(void) {           \
    sl__test_register(#name, test_##name, __FILE__, (timeout_s));            \
  }                                                                          \
  static void test_##name(void)

/* A test with the default timeout (60 s). */
#define TEST(name) TEST_T(name, 60)

#define TEST_SKIP(why) sl__test_skip(why)

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) sl__test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);      \
  } while (0)

#define CHECK_MSG(cond, ...)                                                 \
  do {                                                                       \
    if (!(cond)) sl__test_fail(__FILE__, __LINE__, __VA_ARGS__);             \
  } while (0)

#define CHECK_EQ(a, b)                                                       \
  do {                                                                       \
    long long va_ = (long long)(a), vb_ = (long long)(b);                    \
    if (va_ != vb_)                                                          \
      sl__test_fail(__FILE__, __LINE__, "CHECK_EQ(%s, %s): %lld != %lld",    \
                    #a, #b, va_, vb_);                                       \
  } while (0)

#define CHECK_LE(a, b)                                                       \
  do {                                                                       \
    long long va_ = (long long)(a), vb_ = (long long)(b);                    \
    if (!(va_ <= vb_))                                                       \
      sl__test_fail(__FILE__, __LINE__, "CHECK_LE(%s, %s): %lld > %lld",     \
                    #a, #b, va_, vb_);                                       \
  } while (0)

#define CHECK_GE(a, b) CHECK_LE(b, a)

#define CHECK_STR(a, b)                                                      \
  do {                                                                       \
    const char *sa_ = (a), *sb_ = (b);                                       \
    if (sa_ == NULL || sb_ == NULL || strcmp(sa_, sb_) != 0)                 \
      sl__test_fail(__FILE__, __LINE__, "CHECK_STR(%s, %s): \"%s\" != \"%s\"", \
                    #a, #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");     \
  } while (0)

/* Compare `n` bytes of memory. */
#define CHECK_MEM(a, b, n)                                                   \
  do {                                                                       \
    if (memcmp((a), (b), (n)) != 0)                                          \
      sl__test_fail(__FILE__, __LINE__, "CHECK_MEM(%s, %s, %s) differ", #a,  \
                    #b, #n);                                                 \
  } while (0)

#endif
