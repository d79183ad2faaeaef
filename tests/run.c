/*
 * Test runner: runs every registered test in its own forked child with a
 * timeout, prints one line per test and ends with "N passed, N failed".
 *
 *   sluice-tests [-l] [-x EXCL] [PATTERN...]
 *     -l       list the tests and exit
 *     -x EXCL  skip tests whose name contains EXCL (repeatable)
 *     PATTERN  run only tests whose name contains one of the patterns
 *
 * TEST_TIMEOUT_SCALE (a number, default 1) stretches every timeout, for slow
 * builds such as valgrind or qemu.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

#define MAX_TESTS 1024

struct test {
  const char *name;
  const char *file;
  sl_test_fn fn;
  int timeout_s;
};

static struct test tests[MAX_TESTS];
static int ntests;

void sl__test_register(const char *name, sl_test_fn fn, const char *file,
                       int timeout_s) {
  if (ntests == MAX_TESTS) {
    fprintf(stderr, "too many tests (max %d)\n", MAX_TESTS);
    exit(2);
  }
  tests[ntests].name = name;
  tests[ntests].fn = fn;
  tests[ntests].file = file;
  tests[ntests].timeout_s = timeout_s;
  ntests++;
}

void sl__test_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "  FAIL %s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
  _exit(1);
}

void sl__test_skip(const char *why) {
  fprintf(stderr, "  SKIP: %s\n", why);
  fflush(stderr);
  _exit(77);
}

int test_in_ci(void) {
  const char *ci = getenv("CI");
  return ci != NULL && strcmp(ci, "true") == 0;
}

uint64_t test_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

long test_raise_nofile(long n) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
  if ((long)rl.rlim_cur < n) {
    rlim_t want = (rlim_t)n;
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max) want = rl.rlim_max;
    rl.rlim_cur = want;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  return (long)rl.rlim_cur;
}

int test_sh(const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof(cmd), fmt, ap);
  va_end(ap);
  int st = system(cmd);
  if (st == -1 || !WIFEXITED(st)) return -1;
  return WEXITSTATUS(st);
}

const void *test_guard(const void *data, size_t len) {
  static unsigned char *region;
  static size_t region_len;
  long page = sysconf(_SC_PAGESIZE);
  size_t body = (len + (size_t)page - 1) / (size_t)page * (size_t)page;
  if (body == 0) body = (size_t)page;
  if (region) munmap(region, region_len);
  region_len = body + (size_t)page;
  region = mmap(NULL, region_len, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (region == MAP_FAILED) {
    region = NULL;
    sl__test_fail(__FILE__, __LINE__, "mmap for guard page failed");
  }
  mprotect(region + body, (size_t)page, PROT_NONE);
  unsigned char *p = region + body - len;
  if (len) memcpy(p, data, len);
  return p;
}

static int matches(const char *name, char **pats, int npats) {
  if (npats == 0) return 1;
  for (int i = 0; i < npats; i++)
    if (strstr(name, pats[i])) return 1;
  return 0;
}

static int cmp_test(const void *a, const void *b) {
  const struct test *x = a, *y = b;
  int c = strcmp(x->file, y->file);
  return c ? c : strcmp(x->name, y->name);
}

int main(int argc, char **argv) {
  char *pats[64], *excl[64];
  int npats = 0, nexcl = 0, list = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-l") == 0) list = 1;
    else if (strcmp(argv[i], "-x") == 0 && i + 1 < argc && nexcl < 64)
      excl[nexcl++] = argv[++i];
    else if (npats < 64) pats[npats++] = argv[i];
  }
  qsort(tests, (size_t)ntests, sizeof(tests[0]), cmp_test);
  double scale = 1.0;
  if (getenv("TEST_TIMEOUT_SCALE")) scale = atof(getenv("TEST_TIMEOUT_SCALE"));
  if (scale <= 0) scale = 1.0;
  signal(SIGPIPE, SIG_IGN);

  int passed = 0, failed = 0, skipped = 0;
  int ci = test_in_ci();
  for (int i = 0; i < ntests; i++) {
    struct test *t = &tests[i];
    if (!matches(t->name, pats, npats)) continue;
    int skip = 0;
    for (int k = 0; k < nexcl; k++)
      if (strstr(t->name, excl[k])) skip = 1;
    if (skip) continue;
    if (list) {
      printf("%s\n", t->name);
      continue;
    }
    fflush(stdout);
    uint64_t t0 = test_now_ms();
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      return 2;
    }
    if (pid == 0) {
      setpgid(0, 0);
      alarm((unsigned)(t->timeout_s * scale + 0.5));
      signal(SIGALRM, SIG_DFL);
      t->fn();
      fflush(stdout);
      fflush(stderr);
      exit(0);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    kill(-pid, SIGKILL); /* helpers the test forked */
    uint64_t ms = test_now_ms() - t0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
      printf("ok   %-48s %6llu ms\n", t->name, (unsigned long long)ms);
      passed++;
    } else if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
      printf("%s %-48s (skipped)\n", ci ? "FAIL" : "skip", t->name);
      if (ci) failed++;
      else skipped++;
    } else {
      if (WIFSIGNALED(st))
        printf("FAIL %-48s signal %d%s\n", t->name, WTERMSIG(st),
               WTERMSIG(st) == SIGALRM ? " (timeout)" : "");
      else
        printf("FAIL %-48s exit %d\n", t->name, WEXITSTATUS(st));
      failed++;
    }
    fflush(stdout);
  }
  if (list) return 0;
  if (skipped)
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  else
    printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
