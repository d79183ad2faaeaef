/*
 * The helpers every test directory shares (tests/unit, tests/net,
 * tests/app), on top of the runner macros of test.h:
 *
 *   waiting      WAIT_FOR(cond, ms), WAIT_FOR_MGR(m, cond, ms): poll a
 *                condition, never sleep a fixed time and hope
 *   fake clock   test_clock_install / test_clock_advance (files that include
 *                internal.h): timers and deadlines without wall time
 *   leaks        CHECK_MEM_CLEAN(), CHECK_MGR_FREE_CLEAN(m): the exact
 *                counters back to zero
 *   CI rule      TEST_NEED(cond, why), NEED_TOOL(name): skip outside CI,
 *                fail under CI=true
 *   sockets      test_dial, test_connect, test_send_all, test_http_get
 *   ports        servers listen on port 0 and the test reads the port back
 *                (sl_conn_local_port, test_wait_log_port for a child
 *                process); test_reserve_port for a third-party program that
 *                must be given a number
 *   processes    test_spawn, sh_capture
 *   files        make_tmpdir, write_file, read_file, fill_pattern, fnv1a
 *   inputs       test_bytes, test_bytes_put: a growable byte string
 *
 * Everything is static inline: a file includes this header and uses what it
 * needs. Memory here is the test's own (malloc), never counted by
 * sl_mem_stats.
 */
#ifndef SL_TEST_COMMON_H
#define SL_TEST_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sluice.h"
#include "test.h"

/* ---- time ------------------------------------------------------------- */

/* TEST_TIMEOUT_SCALE rounded up (1 by default): how much slower than
 * native this run is (valgrind, qemu). Every WAIT_FOR bound is stretched
 * by it, so a bound is a deadline to outlast, never a measurement. */
static inline int test_slowdown(void) {
  const char *e = getenv("TEST_TIMEOUT_SCALE");
  double v = e ? atof(e) : 1.0;
  return v > 1.0 ? (int)(v + 0.999) : 1;
}

/* Poll `cond` every millisecond until it holds; fail naming the condition
 * when it still does not after `ms` (times test_slowdown()). For a
 * condition another thread or process makes true. */
#define WAIT_FOR(cond, ms)                                                   \
  do {                                                                       \
    uint64_t wf_end_ = test_now_ms() + (uint64_t)(ms) * (uint64_t)test_slowdown(); \
    while (!(cond)) {                                                        \
      if (test_now_ms() >= wf_end_)                                          \
        sl__test_fail(__FILE__, __LINE__, "WAIT_FOR(%s) still false after %d ms", \
                      #cond, (int)(ms));                                     \
      usleep(1000);                                                          \
    }                                                                        \
  } while (0)

/* The same for a condition the manager `m` makes true: it runs
 * sl_mgr_poll(m, 5) between the checks, on the calling thread. */
#define WAIT_FOR_MGR(m, cond, ms)                                            \
  do {                                                                       \
    uint64_t wf_end_ = test_now_ms() + (uint64_t)(ms) * (uint64_t)test_slowdown(); \
    while (!(cond)) {                                                        \
      if (test_now_ms() >= wf_end_)                                          \
        sl__test_fail(__FILE__, __LINE__, "WAIT_FOR_MGR(%s) still false after %d ms", \
                      #cond, (int)(ms));                                     \
      sl_mgr_poll((m), 5);                                                   \
    }                                                                        \
  } while (0)

/* Run the manager for a few iterations without waiting on the clock: what
 * is already readable or writable is handled, timers due now fire. For
 * "nothing more happens" checks after a WAIT_FOR has seen the event. */
static inline void test_mgr_settle(sl_mgr *m) {
  for (int i = 0; i < 8; i++) sl_mgr_poll(m, 1);
}

#ifdef SL_INTERNAL_H
/* A fake clock for one manager at a time (m->clock, the internal hook):
 * time moves only when the test says so, so timer counts and deadlines are
 * exact instead of depending on the machine's load. */
static uint64_t test_fake_now;
static inline uint64_t test_fake_clock(void) { return test_fake_now; }

static inline void test_clock_install(sl_mgr *m, uint64_t start_ms) {
  test_fake_now = start_ms;
  m->clock = test_fake_clock;
  sl__mgr_tick(m);
}

/* Move the fake clock forward by `ms` in steps of at most `step_ms`, one
 * loop iteration (sl_mgr_poll(m, 0): sockets, then due timers) per step
 * and one more at the end. */
static inline void test_clock_advance(sl_mgr *m, uint64_t ms, uint64_t step_ms) {
  uint64_t end = test_fake_now + ms;
  if (step_ms == 0) step_ms = 1;
  while (test_fake_now < end) {
    uint64_t d = end - test_fake_now;
    test_fake_now += d < step_ms ? d : step_ms;
    sl_mgr_poll(m, 0);
  }
  sl_mgr_poll(m, 0);
}
#endif

/* An sl_str equals a NUL-terminated literal (parsers' zero-copy views). */
#define CHECK_SV(s, lit)                                                     \
  do {                                                                       \
    sl_str s_ = (s);                                                         \
    const char *l_ = (lit);                                                  \
    if (s_.len != strlen(l_) || (s_.len && memcmp(s_.ptr, l_, s_.len)))      \
      sl__test_fail(__FILE__, __LINE__, "CHECK_SV(%s): \"%.*s\" != \"%s\"", \
                    #s, (int)s_.len, s_.ptr ? s_.ptr : "", l_);              \
  } while (0)

/* ---- leaks ------------------------------------------------------------ */

/* Every byte the library allocated has been given back and no sl_buf is
 * alive (after the last manager was freed). */
static inline void test_check_mem_clean(const char *file, int line) {
  sl_mem_stats ms;
  sl_mem_stats_get(&ms);
  if (ms.total != 0 || ms.nbufs != 0)
    sl__test_fail(file, line,
                  "library memory not back to zero: %zu bytes (out %zu, in %zu, bufs %zu, "
                  "meta %zu), %zu live sl_buf",
                  ms.total, ms.out, ms.in, ms.bufs, ms.meta, ms.nbufs);
}
#define CHECK_MEM_CLEAN() test_check_mem_clean(__FILE__, __LINE__)

/* The manager holds no buffer and queues no byte; free it; then
 * CHECK_MEM_CLEAN. */
static inline void test_mgr_free_clean(sl_mgr *m, const char *file, int line) {
  sl_mgr_stats st;
  sl_mgr_stats_get(m, &st);
  if (st.held != 0 || st.queued != 0)
    sl__test_fail(file, line, "manager not clean before free: held %zu, queued %zu",
                  (size_t)st.held, (size_t)st.queued);
  sl_mgr_free(m);
  test_check_mem_clean(file, line);
}
#define CHECK_MGR_FREE_CLEAN(m) test_mgr_free_clean((m), __FILE__, __LINE__)

/* ---- the CI rule ------------------------------------------------------ */

/* Outside CI a missing dependency skips the test; under CI=true nothing
 * may skip, so it fails with the reason. */
#define TEST_NEED(cond, why)                                                 \
  do {                                                                       \
    if (!(cond)) {                                                           \
      if (test_in_ci())                                                      \
        sl__test_fail(__FILE__, __LINE__, "%s (CI=true: nothing may skip; run scripts/deps.sh)", \
                      (why));                                                \
      TEST_SKIP(why);                                                        \
    }                                                                        \
  } while (0)

#define NEED_TOOL(name)                                                      \
  TEST_NEED(test_sh("command -v %s >/dev/null 2>&1", name) == 0, name " is not installed")

/* ---- sockets ---------------------------------------------------------- */

/* A blocking TCP connection to ip:port (IPv4 or IPv6 literal), close-on-exec,
 * reads and writes timing out after 5 s. rcvbuf > 0 shrinks the receive
 * buffer before connect, so the window is small from the SYN on. Returns
 * the descriptor, or -1 with errno set. */
static inline int test_dial(const char *ip, int port, int rcvbuf) {
  int v6 = strchr(ip, ':') != NULL;
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  struct sockaddr_storage ss;
  socklen_t len;
  memset(&ss, 0, sizeof(ss));
  if (v6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    inet_pton(AF_INET6, ip, &a->sin6_addr);
    len = sizeof(*a);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &a->sin_addr);
    len = sizeof(*a);
  }
  if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/* test_dial to 127.0.0.1:port, failing the test when it cannot connect. */
static inline int test_connect(int port, int rcvbuf) {
  int fd = test_dial("127.0.0.1", port, rcvbuf);
  CHECK_MSG(fd >= 0, "connect 127.0.0.1:%d: %s", port, strerror(errno));
  return fd;
}

/* Send all `n` bytes; 0, or -1 when the connection failed first. */
static inline int test_send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

/* GET `path` from 127.0.0.1:port with Connection: close and read to EOF
 * (5 s at most). Returns the malloc'd response (head and body,
 * NUL-terminated; the caller frees), its status in *status and its length
 * in *len_out (both may be NULL), or NULL when the exchange failed. */
static inline char *test_http_get(int port, const char *path, int *status, size_t *len_out) {
  int fd = test_dial("127.0.0.1", port, 0);
  if (fd < 0) return NULL;
  char req[512];
  int rl = snprintf(req, sizeof(req),
                    "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
  if (rl < 0 || (size_t)rl >= sizeof(req) || test_send_all(fd, req, (size_t)rl) != 0) {
    close(fd);
    return NULL;
  }
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap + 1);
  CHECK(buf != NULL);
  uint64_t end = test_now_ms() + 5000;
  for (;;) {
    if (len == cap) {
      if (cap >= (64u << 20)) break;
      cap *= 2;
      buf = realloc(buf, cap + 1);
      CHECK(buf != NULL);
    }
    struct pollfd p = {fd, POLLIN, 0};
    int left = (int)(end - test_now_ms());
    if (left <= 0 || poll(&p, 1, left) <= 0) break;
    ssize_t r = recv(fd, buf + len, cap - len, 0);
    if (r <= 0) break;
    len += (size_t)r;
  }
  close(fd);
  buf[len] = '\0';
  int st = 0;
  if (sscanf(buf, "HTTP/1.%*d %d", &st) != 1) st = 0;
  if (status) *status = st;
  if (len_out) *len_out = len;
  if (st == 0) {
    free(buf);
    return NULL;
  }
  return buf;
}

/* ---- ports ------------------------------------------------------------ */

/* For a third-party server (nginx) that must be given a port number: a
 * loopback port bound, not listening, with SO_REUSEPORT, its descriptor in
 * *hold. While it is held, no other socket of the machine gets the port
 * (bind(0) skips it, and a plain bind to it fails), but a server run by the
 * same user that binds it with SO_REUSEPORT (nginx: `listen ... reuseport`)
 * can. Close *hold once that server listens. This closes the race of
 * "bind 0, read the port, close, hope nobody takes it". */
static inline int test_reserve_port(int *hold) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(fd >= 0);
  int one = 1;
  CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof(a);
  CHECK_EQ(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  CHECK_EQ(getsockname(fd, (struct sockaddr *)&a, &al), 0);
  *hold = fd;
  return ntohs(a.sin_port);
}

/* 1 when something accepts connections on 127.0.0.1:port. */
static inline int test_port_open(int port) {
  int fd = test_dial("127.0.0.1", port, 0);
  if (fd < 0) return 0;
  close(fd);
  return 1;
}

/* A child process that listens on port 0 and prints where: wait (up to
 * `ms`) until the file `log` holds `marker` followed by "HOST:PORT"
 * or a bare port (a URL's scheme is skipped: "serving " then
 * "https://127.0.0.1:40123/"), and return the port.
 * Fails when `pid` exits first or the deadline passes. */
static inline int test_wait_log_port(const char *log, const char *marker, pid_t pid, int ms) {
  uint64_t end = test_now_ms() + (uint64_t)ms * (uint64_t)test_slowdown();
  char buf[8192];
  for (;;) {
    int fd = open(log, O_RDONLY);
    if (fd >= 0) {
      ssize_t n = read(fd, buf, sizeof(buf) - 1);
      close(fd);
      buf[n > 0 ? n : 0] = '\0';
      const char *p = strstr(buf, marker);
      if (p) {
        p += strlen(marker);
        const char *sch = strstr(p, "://"); /* skip a scheme: "https://h:p/" */
        if (sch && sch < p + strcspn(p, " \r\n")) p = sch + 3;
        const char *e = p + strcspn(p, "/ \r\n");
        const char *colon = NULL;
        for (const char *q = p; q < e; q++)
          if (*q == ':') colon = q;
        if (colon && colon + 1 < e) return atoi(colon + 1);
        if (!colon && p < e && atoi(p) > 0) return atoi(p); /* a bare port */
      }
    }
    int st;
    if (pid > 0 && waitpid(pid, &st, WNOHANG) == pid)
      sl__test_fail(__FILE__, __LINE__, "the server exited (status %d) before it listened: %s",
                    st, buf);
    if (test_now_ms() >= end)
      sl__test_fail(__FILE__, __LINE__, "no \"%s\" in %s after %d ms: %s", marker, log, ms, buf);
    usleep(10000);
  }
}

/* ---- processes -------------------------------------------------------- */

/* fork + exec argv[0] (PATH search) with stdout and stderr appended to
 * `log`; the child gets SIGTERM when the test dies. Returns its pid. */
static inline pid_t test_spawn(const char *log, char *const argv[]) {
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execvp(argv[0], argv);
    _exit(127);
  }
  return pid;
}

/* Run a shell command and capture its stdout (NUL-terminated, truncated to
 * cap). Returns its exit status, or -1. */
static inline int sh_capture(char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int sh_capture(char *out, size_t cap, const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof(cmd), fmt, ap);
  va_end(ap);
  fflush(stdout);
  fflush(stderr);
  FILE *p = popen(cmd, "r");
  CHECK(p != NULL);
  size_t n = 0, r;
  char sink[4096];
  while ((r = fread(n + 1 < cap ? out + n : sink, 1,
                    n + 1 < cap ? cap - 1 - n : sizeof(sink), p)) > 0)
    if (n + 1 < cap) n += r;
  out[n] = '\0';
  int st = pclose(p);
  return (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

/* ---- files ------------------------------------------------------------ */

/* A fresh temporary directory, its path in `dir` (at least 64 bytes). */
static inline void make_tmpdir(char *dir) {
  strcpy(dir, "/tmp/sl-test-XXXXXX");
  CHECK(mkdtemp(dir) != NULL);
}

static inline void write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  CHECK_MSG(f != NULL, "fopen %s: %s", path, strerror(errno));
  CHECK_EQ(fwrite(data, 1, len, f), len);
  CHECK_EQ(fclose(f), 0);
}

/* The whole file, malloc'd and NUL-terminated (the caller frees), its
 * length in *len (may be NULL); NULL when it cannot be read. */
static inline char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  size_t cap = 4096, n = 0, got;
  char *p = malloc(cap);
  CHECK(p != NULL);
  while ((got = fread(p + n, 1, cap - n - 1, f)) > 0) {
    n += got;
    if (cap - n < 2) {
      p = realloc(p, cap *= 2);
      CHECK(p != NULL);
    }
  }
  fclose(f);
  p[n] = '\0';
  if (len) *len = n;
  return p;
}

/* A deterministic byte pattern both sides of a transfer can compute. */
/* A growable byte string for building test inputs; the caller frees p. */
typedef struct test_bytes {
  unsigned char *p;
  size_t n, cap;
} test_bytes;

static inline void test_bytes_put(test_bytes *b, const void *data, size_t n) {
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->n + n) cap *= 2;
    b->p = realloc(b->p, cap);
    CHECK(b->p != NULL);
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->n, data, n);
  b->n += n;
}

static inline void fill_pattern(unsigned char *p, size_t n, unsigned seed) {
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    p[i] = (unsigned char)x;
  }
}

/* The 32-bit FNV-1a hash (as tests/node/ws_server.js prints it). */
static inline uint32_t fnv1a(const void *data, size_t n) {
  const unsigned char *p = data;
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}

#endif
