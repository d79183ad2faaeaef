/*
 * Test runner: runs every registered test in its own forked child with a
 * timeout, prints one line per test and ends with "N passed, N failed".
 *
 *   sluice-tests [-l | -L] [-e] [-x EXCL] [PATTERN...]
 *     -l       list the tests and exit
 *     -L       list them as "NAME TIMEOUT_S" (for the CTest registration)
 *     -e       a PATTERN must be the whole name, not a part of it
 *     -x EXCL  skip tests whose name contains EXCL (repeatable)
 *     PATTERN  run only tests whose name contains one of the patterns
 *
 * Exit status: 0 when nothing failed and something ran, 1 when a test
 * failed, 77 when every selected test skipped (CTest's SKIP_RETURN_CODE).
 *
 * The timeout is the parent's business: the child gets its own process
 * group, and at the deadline the parent kills the whole group and reports
 * "timeout". An alarm() in the child would not do: a test that blocks
 * SIGALRM, installs its own handler or sits in an uninterruptible wait is
 * not reliably ended by it, and the helpers it forked would outlive it.
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

static int matches(const char *name, char **pats, int npats, int exact) {
  if (npats == 0) return 1;
  for (int i = 0; i < npats; i++)
    if (exact ? strcmp(name, pats[i]) == 0 : strstr(name, pats[i]) != NULL) return 1;
  return 0;
}

/* Runs one test in a child of its own process group and waits for it, at
 * most `timeout_ms`. Returns the wait status, or -1 for a timeout (the group
 * has been killed and the child reaped). SIGCHLD is blocked in the parent
 * (see main), so sigtimedwait sleeps until the child ends or the deadline;
 * the grandchildren a test forks are not ours and raise no SIGCHLD here. */
static int run_child(const struct test *t, uint64_t timeout_ms, const sigset_t *chld) {
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(2);
  }
  if (pid == 0) {
    setpgid(0, 0);
    sigprocmask(SIG_UNBLOCK, chld, NULL);
    t->fn();
    fflush(stdout);
    fflush(stderr);
    exit(0);
  }
  /* Both sides set the group, so a kill at the deadline cannot race the
   * child's own setpgid. */
  setpgid(pid, pid);
  uint64_t deadline = test_now_ms() + timeout_ms;
  int st = 0;
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) {
      perror("waitpid");
      exit(2);
    }
    uint64_t now = test_now_ms();
    if (now >= deadline) {
      kill(-pid, SIGKILL);
      while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
      }
      return -1;
    }
    uint64_t left = deadline - now;
    if (left > 1000) left = 1000; /* a lost SIGCHLD costs a second at most */
    struct timespec ts = {(time_t)(left / 1000), (long)(left % 1000) * 1000000L};
    sigtimedwait(chld, NULL, &ts);
  }
  kill(-pid, SIGKILL); /* helpers the test forked */
  return st;
}

static int cmp_test(const void *a, const void *b) {
  const struct test *x = a, *y = b;
  int c = strcmp(x->file, y->file);
  return c ? c : strcmp(x->name, y->name);
}

int main(int argc, char **argv) {
  char *pats[64], *excl[64];
  int npats = 0, nexcl = 0, list = 0, exact = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-l") == 0) list = 1;
    else if (strcmp(argv[i], "-L") == 0) list = 2;
    else if (strcmp(argv[i], "-e") == 0) exact = 1;
    else if (strcmp(argv[i], "-x") == 0 && i + 1 < argc && nexcl < 64)
      excl[nexcl++] = argv[++i];
    else if (npats < 64) pats[npats++] = argv[i];
  }
  qsort(tests, (size_t)ntests, sizeof(tests[0]), cmp_test);
  double scale = 1.0;
  if (getenv("TEST_TIMEOUT_SCALE")) scale = atof(getenv("TEST_TIMEOUT_SCALE"));
  if (scale <= 0) scale = 1.0;
  signal(SIGPIPE, SIG_IGN);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);

  int passed = 0, failed = 0, skipped = 0;
  int ci = test_in_ci();
  for (int i = 0; i < ntests; i++) {
    struct test *t = &tests[i];
    if (!matches(t->name, pats, npats, exact)) continue;
    int skip = 0;
    for (int k = 0; k < nexcl; k++)
      if (strstr(t->name, excl[k])) skip = 1;
    if (skip) continue;
    if (list == 1) {
      printf("%s\n", t->name);
      continue;
    }
    if (list == 2) {
      printf("%s %d\n", t->name, (int)(t->timeout_s * scale + 0.5));
      continue;
    }
    fflush(stdout);
    uint64_t t0 = test_now_ms();
    int st = run_child(t, (uint64_t)(t->timeout_s * scale * 1000.0 + 0.5), &chld);
    uint64_t ms = test_now_ms() - t0;
    if (st == -1) {
      printf("FAIL %-48s timeout after %llu ms\n", t->name, (unsigned long long)ms);
      failed++;
    } else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
      printf("ok   %-48s %6llu ms\n", t->name, (unsigned long long)ms);
      passed++;
    } else if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
      printf("%s %-48s (skipped)\n", ci ? "FAIL" : "skip", t->name);
      if (ci) failed++;
      else skipped++;
    } else {
      if (WIFSIGNALED(st))
        printf("FAIL %-48s signal %d\n", t->name, WTERMSIG(st));
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
  if (failed) return 1;
  return passed == 0 && skipped > 0 ? 77 : 0;
}
