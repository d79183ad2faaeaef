/* The two-file build (scripts/amalgamate.py): generated into a temporary
 * directory, examples/echo_server.c built against it with one cc line and
 * run, sluice.c compiled by the second compiler too, warning-free, and its
 * object exporting the public API only. scripts/ci-amalgamation.sh does
 * the same with build/amalgamation, plus the TLS variant. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rel_harness.h"
#include "test.h"

#define say(...) (printf(__VA_ARGS__), fflush(stdout))

TEST_T(amalgamation_two_files_one_cc_line_echo_no_internal_symbols, 120) {
  char dir[128];
  snprintf(dir, sizeof(dir), "/tmp/sl-amal-test-%d", (int)getpid());
  CHECK_EQ(test_sh("python3 %s/scripts/amalgamate.py --out %s >/dev/null", SL_SOURCE_DIR, dir), 0);
  /* The one line a user types (with the warnings on, so that it proves
   * the build warning-free as well). */
  uint64_t t0 = test_now_ms();
  CHECK_EQ(test_sh("cd %s && cc -O2 -Wall -Wextra -Werror -I %s examples/echo_server.c "
                   "%s/sluice.c -lpthread -o %s/echo",
                   SL_SOURCE_DIR, dir, dir, dir),
           0);
  uint64_t built = test_now_ms() - t0;
  /* The other compiler, pedantic, for the object's symbols. */
  const char *other = test_sh("cc --version 2>/dev/null | grep -q clang") == 0 ? "gcc" : "clang";
  if (test_sh("command -v %s >/dev/null", other) != 0) {
    if (test_in_ci()) CHECK_MSG(0, "%s is missing (CI may not skip)", other);
    other = "cc";
  }
  CHECK_EQ(test_sh("%s -std=c11 -O1 -Wall -Wextra -Wpedantic -Wshadow -Werror -I %s -c "
                   "%s/sluice.c -o %s/sluice.o",
                   other, dir, dir, dir),
           0);
  CHECK_EQ(
      test_sh("nm -g --defined-only %s/sluice.o | awk '{print $NF}' | grep -q '^sl_version$'", dir),
      0);
  int internal = test_sh(
      "nm -g --defined-only %s/sluice.o | awk '{print $NF}' | grep -v '^sl_' | grep -q .",
      dir);
  int sl__ = test_sh("nm -g --defined-only %s/sluice.o | awk '{print $NF}' | grep -q '^sl__'", dir);
  say("  amalgamation: cc one-line build %llu ms; %s -Wpedantic -Wshadow -Werror clean; exported "
      "non-sl_ symbols: %s, sl__ symbols: %s\n",
      (unsigned long long)built, other, internal == 0 ? "yes" : "none", sl__ == 0 ? "yes" : "none");
  CHECK(internal != 0);
  CHECK(sl__ != 0);

  /* It echoes. */
  char path[160], log[192];
  snprintf(path, sizeof(path), "%s/echo", dir);
  snprintf(log, sizeof(log), "%s/echo.log", dir);
  /* Port 0: the example prints the port it got. */
  char *eargv[] = {path, "127.0.0.1:0", NULL};
  pid_t pid = test_spawn(log, eargv);
  int port = test_wait_log_port(log, "echoing on port ", pid, 10000);
  int fd = test_dial("127.0.0.1", port, 0);
  CHECK(fd >= 0);
  static char msg[20000], got[20000];
  for (size_t i = 0; i < sizeof(msg); i++) msg[i] = (char)('a' + i % 26);
  CHECK_EQ(test_send_all(fd, msg, sizeof(msg)), 0);
  size_t n = 0;
  uint64_t end = test_now_ms() + 5000;
  while (n < sizeof(got) && test_now_ms() < end) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t r = recv(fd, got + n, sizeof(got) - n, 0);
    if (r <= 0) break;
    n += (size_t)r;
  }
  close(fd);
  kill(pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
  say("  amalgamated echo_server echoed %zu of %zu bytes; exit %d\n", n, sizeof(msg),
      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  CHECK_EQ(n, sizeof(msg));
  CHECK_MEM(got, msg, sizeof(msg));
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  test_sh("rm -rf %s", dir);
}
