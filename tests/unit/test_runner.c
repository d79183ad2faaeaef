/*
 * The runner's own guarantees: a test that hangs is killed from the parent
 * at its deadline, with every process it forked, and reported as a timeout;
 * an exact pattern selects one test. The runner is this very binary, run
 * again as a child on a fixture test that only misbehaves when asked to.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

/* The fixture: with SL_RUNNER_FIXTURE set, it forks a helper that sleeps,
 * writes the helper's pid to that file, blocks SIGALRM (so an alarm() in the
 * child could not end it) and waits forever. Otherwise it passes at once. */
TEST_T(runner_fixture_hang, 1) {
  const char *path = getenv("SL_RUNNER_FIXTURE");
  if (path == NULL || path[0] == '\0') return;
  pid_t helper = fork();
  CHECK(helper >= 0);
  if (helper == 0) {
    for (;;) pause();
  }
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  fprintf(f, "%d\n", (int)helper);
  fclose(f);
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGALRM);
  sigprocmask(SIG_BLOCK, &s, NULL);
  for (;;) pause();
}

TEST_T(runner_kills_hung_test_and_its_helpers, 30) {
  char dir[64], pidfile[128], out[4096];
  make_tmpdir(dir);
  snprintf(pidfile, sizeof(pidfile), "%s/helper.pid", dir);
  uint64_t t0 = test_now_ms();
  int rc = sh_capture(out, sizeof(out),
                      "SL_RUNNER_FIXTURE=%s TEST_TIMEOUT_SCALE=1 CI= /proc/%d/exe -e "
                      "runner_fixture_hang 2>&1",
                      pidfile, (int)getpid());
  uint64_t took = test_now_ms() - t0;
  CHECK_EQ(rc, 1);
  CHECK_MSG(strstr(out, "FAIL runner_fixture_hang") && strstr(out, "timeout"),
            "runner said: %s", out);
  CHECK_MSG(strstr(out, "0 passed, 1 failed"), "runner said: %s", out);
  /* The 1 s deadline, not a test-side bound: generous for a loaded box. */
  CHECK_LE(took, 20000);
  FILE *f = fopen(pidfile, "r");
  CHECK_MSG(f != NULL, "the fixture never ran: %s", out);
  int helper = 0;
  CHECK_EQ(fscanf(f, "%d", &helper), 1);
  fclose(f);
  CHECK(helper > 0);
  /* The helper was in the test's process group: it must be gone (a zombie
   * reaped by init counts as gone once kill fails with ESRCH). */
  WAIT_FOR(kill(helper, 0) != 0 && errno == ESRCH, 5000);
  test_sh("rm -rf %s", dir);
}

TEST(runner_exact_pattern_runs_one_test) {
  char out[4096];
  /* Without -e, "runner_" names every test of this file; with -e only the
   * fixture, which passes when SL_RUNNER_FIXTURE is unset. */
  int rc = sh_capture(out, sizeof(out), "SL_RUNNER_FIXTURE= /proc/%d/exe -l runner_",
                      (int)getpid());
  CHECK_EQ(rc, 0);
  CHECK(strstr(out, "runner_exact_pattern_runs_one_test") != NULL);
  unsetenv("SL_RUNNER_FIXTURE");
  rc = sh_capture(out, sizeof(out), "env -u SL_RUNNER_FIXTURE /proc/%d/exe -e runner_fixture_hang",
                  (int)getpid());
  CHECK_MSG(rc == 0, "runner said: %s", out);
  CHECK_MSG(strstr(out, "1 passed, 0 failed") != NULL, "runner said: %s", out);
}
