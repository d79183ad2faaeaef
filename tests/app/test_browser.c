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
 *   browser_h264_viewer_decodes     `--codec h264`: the viewer page decodes the
 *                                   test pattern with WebCodecs, no decoder
 *                                   error, the block code on the canvas is the
 *                                   frame number of the access unit and close
 *                                   to the newest published; a broken keyframe
 *                                   is one counted error and it plays on from
 *                                   the next keyframe; without WebCodecs
 *                                   it says so and opens nothing; on a second
 *                                   server with both kinds the stream picker
 *                                   switches H.264 -> MJPEG -> H.264; the
 *                                   dashboard shows kind, codec and GOP
 *   browser_h264_frozen_tab         `--codec h264`: the viewer page frozen lets
 *                                   go and resumes at a keyframe; with keep=1
 *                                   frozen 60 s holding its socket, the server
 *                                   stays bounded (held within the GOP plus the
 *                                   viewer's queue) and on resume the page shows
 *                                   a fresh picture with no decoder error and no
 *                                   P-frame whose reference it did not get; a
 *                                   WebSocket client that stops reading gets a
 *                                   keyframe with the gap bit after the skip
 *   browser_grid_12_streams_one_socket
 *                                   12 streams: 12 <img> tags stop at the
 *                                   browser's 6 connections per host, /grid
 *                                   shows all 12 over one WebSocket (/mux)
 *   browser_mse_viewer_plays        `--codec h264`: the page's MSE player
 *                                   (?mode=mse) plays: currentTime and frames
 *                                   presented advance, the block code read
 *                                   from the <video> is near the newest
 *                                   published and is the frame the page maps
 *                                   the media time to, played media is
 *                                   trimmed; the buttons switch WebCodecs <->
 *                                   MSE; without WebCodecs the page plays MSE
 *                                   by itself, without both it says so
 *   browser_mse_slow_and_frozen     `--codec h264`: MSE through a proxy slower
 *                                   than the stream: the server skips it to
 *                                   keyframes and it keeps playing; frozen it
 *                                   lets go and resumes; with keep=1 frozen
 *                                   20 s the server stays bounded and the page
 *                                   resumes near live
 *   browser_grid_h264_tiles         /grid on a server with H.264 and MJPEG
 *                                   streams: every tile's block code advances
 *                                   over one WebSocket, the H.264 tiles decode
 *                                   with WebCodecs with no decoder error, the
 *                                   code drawn is the frame number and close
 *                                   to live, and a tile scrolled away and back
 *                                   resumes from a keyframe
 *
 * Missing Chromium, node or playwright-core, or (for the H.264 tests) a
 * sluice-stream built without openh264: skipped, or a failure under
 * CI=true. The tests are slow (about 4 min together, 2 x 60 s
 * of it frozen tabs), so they are
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
 * 0 read back from its log, plus more arguments (NULL-terminated
 * `extra`, may be NULL). */
static void srv_start(struct rel_srv *s, const char *const *extra) {
  rel_srv_start_info(s, extra, 10000);
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

/* The H.264 test pattern needs a sluice-stream built with openh264, or
 * skip (a failure under CI=true). */
static void need_h264(void) {
#ifndef SS_HAVE_OPENH264
  TEST_NEED(0, "sluice-stream was built without openh264 (apt-get install libopenh264-dev, reconfigure)");
#endif
}

/* The server must have shut down cleanly (`stopped`: srv_stop's answer)
 * with no library memory left. */
static void srv_check_stop(struct rel_srv *s, int stopped, const char *script) {
  CHECK_MSG(stopped == 0, "sluice-stream exited %d after %s (log %s)", stopped, script, s->log);
  CHECK_MSG(test_sh("grep -q 'library memory now 0 bytes' %s", s->log) == 0,
            "sluice-stream did not release all its memory (log %s)", s->log);
  unlink(s->log);
}

/* Run tests/browser/SCRIPT.js against a fresh server (started with the
 * NULL-terminated `extra` arguments, may be NULL); it must exit 0, and the
 * server must then shut down cleanly with no library memory left. With
 * `mixed`, a second server comes up too, passed to the script as --mixed
 * URL, with both kinds of stream: its default stream is the MJPEG pattern,
 * its stream "h264" relays the first server's /stream.h264. */
static void run_script_with(const char *script, const char *const *extra, int mixed) {
  need_browser();
  struct rel_srv s, m;
  srv_start(&s, extra);
  char relay[96], opt[64] = "";
  if (mixed) {
    snprintf(relay, sizeof(relay), "h264=http://127.0.0.1:%d/stream.h264", s.port);
    const char *margs[] = {"--stream", relay, NULL};
    srv_start(&m, margs);
    snprintf(opt, sizeof(opt), " --mixed http://127.0.0.1:%d", m.port);
  }
  fflush(stdout);
  /* The script's lines as they come (a timeout keeps what it printed),
   * and its exit status through a file (sh has no pipefail). */
  char rcf[160];
  snprintf(rcf, sizeof(rcf), "/tmp/sluice-browser-%s-%d.rc", script, s.port);
  int rc = test_sh("{ node %s/%s.js --server http://127.0.0.1:%d%s --artifacts '%s' 2>&1; echo $? >%s; }"
                   " | sed -u 's/^/  /'; exit $(cat %s 2>/dev/null || echo 99)",
                   BROWSER_DIR, script, s.port, opt, artifacts(), rcf, rcf);
  unlink(rcf);
  /* Both stopped before any check: a failed check ends the test process. */
  int mstopped = mixed ? srv_stop(&m) : 0;
  int stopped = srv_stop(&s);
  CHECK_MSG(rc == 0, "tests/browser/%s.js exited %d (server log %s)", script, rc, s.log);
  if (mixed) srv_check_stop(&m, mstopped, script);
  srv_check_stop(&s, stopped, script);
}

static void run_script(const char *script) { run_script_with(script, NULL, 0); }

TEST_T(browser_viewer_page_plays, 90) { run_script("viewer"); }

TEST_T(browser_grid_12_streams_one_socket, 120) {
  /* Twelve test patterns (default + demo1..demo11) at 10 fps. */
  static const char *const grid[] = {"--demo-streams", "11", "--fps", "10", NULL};
  run_script_with("grid", grid, 0);
}

TEST_T(browser_frozen_tab_stays_flat, 180) { run_script("frozen_tab"); }

TEST_T(browser_viewer_page_releases_in_background, 90) { run_script("hidden_viewer"); }

/* The default stream is the H.264 pattern (--codec applies to every stream
 * of a server, so the stream picker is tried on a second one, see
 * run_script_with). */
static const char *const h264_args[] = {"--codec", "h264", NULL};

TEST_T(browser_h264_viewer_decodes, 120) {
  need_h264();
  run_script_with("h264_viewer", h264_args, 1);
}

TEST_T(browser_h264_frozen_tab, 200) {
  need_h264();
  run_script_with("h264_frozen", h264_args, 0);
}

TEST_T(browser_mse_viewer_plays, 120) {
  need_h264();
  run_script_with("mse_viewer", h264_args, 0);
}

TEST_T(browser_mse_slow_and_frozen, 150) {
  need_h264();
  run_script_with("mse_slow_frozen", h264_args, 0);
}

TEST_T(browser_grid_h264_tiles, 120) {
  need_h264();
  /* default, demo1 and demo2 the H.264 pattern (--codec), jpeg the MJPEG
   * one (its spec prefix), at 15 fps: three encoders on two cores. */
  static const char *const args[] = {"--codec", "h264", "--stream", "jpeg=mjpeg:testpattern",
                                     "--demo-streams", "2", "--fps", "15", NULL};
  run_script_with("grid_h264", args, 0);
}

#else
/* Compiled out of sanitizer builds (see above). */
typedef int sl_browser_tests_compiled_out;
#endif
