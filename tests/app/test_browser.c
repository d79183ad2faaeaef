/* sluice-stream in a real browser: Debian's Chromium, headless, driven by
 * playwright-core over the DevTools protocol (the scripts in tests/browser/, npm
 * packages pinned in tests/node). Each test starts the real binary with its
 * default settings on a free loopback port and runs one script against it:
 *
 *   browser_viewer_page_plays       the viewer page (/) plays over MJPEG and
 *                                   WebSocket: the block code it shows advances
 *   browser_frozen_tab_stays_flat   acceptance scenario 2: a bare <img> page of
 *                                   another origin frozen for 60 s; memory, RSS
 *                                   and the kernel send queue stay flat, the
 *                                   dashboard shows it stalled (screenshot in
 *                                   the artifacts directory), and on resume the
 *                                   frame shown is within 5 frames of live
 *   browser_viewer_page_releases_in_background
 *                                   the viewer page lets its stream go when
 *                                   frozen (at once) or hidden (after 3 s), and
 *                                   plays again when shown
 *   browser_grid_12_streams_one_socket
 *                                   12 streams: 12 <img> tags stop at the
 *                                   browser's 6 connections per host, /grid
 *                                   shows all 12 over one WebSocket (/mux)
 *
 * Missing Chromium, node or playwright-core: skipped, or a failure under
 * CI=true. The tests are slow (about 80 s together, 62 s of it the frozen tab), so they are
 * compiled out of sanitizer builds (make test's ASan build), which would add
 * nothing to what they check. Artifacts go to $SLUICE_ARTIFACTS, by default
 * build/artifacts/ in the source tree. */
#include "test.h"

#if defined(__SANITIZE_ADDRESS__)
#define SL_BROWSER_TESTS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SL_BROWSER_TESTS 0
#endif
#endif
#ifndef SL_BROWSER_TESTS
#define SL_BROWSER_TESTS 1
#endif

#if SL_BROWSER_TESTS

#include "rel_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define BROWSER_DIR SL_SOURCE_DIR "/tests/browser"
#define PLAYWRIGHT SL_SOURCE_DIR "/tests/node/node_modules/playwright-core/package.json"

/* sluice-stream with its defaults (640x480, 30 fps test pattern), on port
 * 0 read back from its log. */
static void srv_start(struct rel_srv *s) {
  const char *argv[] = {"--log-level", "info", NULL};
  rel_srv_spawn(s, NULL, argv, 0, 10000, NULL, NULL);
}

/* Twelve test patterns at 10 fps (default + demo1..demo11) for the grid. */
static void srv_start_grid(struct rel_srv *s) {
  const char *argv[] = {"--log-level", "info", "--demo-streams", "11", "--fps", "10",
                        NULL};
  rel_srv_spawn(s, NULL, argv, 0, 10000, NULL, NULL);
}

/* SIGTERM and wait: exit status (or -1). */
static int srv_stop(struct rel_srv *s) { return rel_srv_stop(s, 5000); }

static const char *chromium(void) {
  const char *c = getenv("SLUICE_CHROMIUM");
  return c && *c ? c : "/usr/bin/chromium";
}

/* Chromium, node and playwright-core, or skip (a failure under CI=true). */
static void need_browser(void) {
  char why[256] = "";
  if (access(chromium(), X_OK) != 0)
    snprintf(why, sizeof(why), "%s is missing (apt-get install chromium)", chromium());
  else if (test_sh("command -v node >/dev/null 2>&1") != 0)
    snprintf(why, sizeof(why), "node is missing (apt-get install nodejs npm)");
  else if (access(PLAYWRIGHT, R_OK) != 0)
    snprintf(why, sizeof(why), "playwright-core is missing: (cd tests/node && npm install)");
  TEST_NEED(why[0] == '\0', why);
}

static const char *artifacts(void) {
  const char *d = getenv("SLUICE_ARTIFACTS");
  return d && *d ? d : SL_SOURCE_DIR "/build/artifacts";
}

/* Run tests/browser/SCRIPT.js against a fresh server; it must exit 0, and
 * the server must then shut down cleanly with no library memory left. */
static void run_script_with(const char *script, void (*start)(struct rel_srv *)) {
  need_browser();
  struct rel_srv s;
  start(&s);
  fflush(stdout);
  /* The script's lines as they come (a timeout keeps what it printed),
   * and its exit status through a file (sh has no pipefail). */
  char rcf[160];
  snprintf(rcf, sizeof(rcf), "/tmp/sluice-browser-%s-%d.rc", script, s.port);
  int rc = test_sh("{ node %s/%s.js --server http://127.0.0.1:%d --artifacts '%s' 2>&1; echo $? >%s; }"
                   " | sed -u 's/^/  /'; exit $(cat %s 2>/dev/null || echo 99)",
                   BROWSER_DIR, script, s.port, artifacts(), rcf, rcf);
  unlink(rcf);
  int stopped = srv_stop(&s);
  CHECK_MSG(rc == 0, "tests/browser/%s.js exited %d (server log %s)", script, rc, s.log);
  CHECK_MSG(stopped == 0, "sluice-stream exited %d after %s (log %s)", stopped, script, s.log);
  CHECK_MSG(test_sh("grep -q 'library memory now 0 bytes' %s", s.log) == 0,
            "sluice-stream did not release all its memory (log %s)", s.log);
  unlink(s.log);
}

static void run_script(const char *script) { run_script_with(script, srv_start); }

TEST_T(browser_viewer_page_plays, 90) { run_script("viewer"); }

TEST_T(browser_grid_12_streams_one_socket, 120) { run_script_with("grid", srv_start_grid); }

TEST_T(browser_frozen_tab_stays_flat, 180) { run_script("frozen_tab"); }

TEST_T(browser_viewer_page_releases_in_background, 90) { run_script("hidden_viewer"); }

#else
/* Compiled out of sanitizer builds (see above). */
typedef int sl_browser_tests_compiled_out;
#endif
