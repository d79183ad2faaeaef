/*
 * Shared by the reliability tests (test_reliability.c): the real
 * sluice-stream binary as a child process, blocking HTTP requests to its
 * API, and what /proc says about it (descriptors, CPU time, RSS).
 *
 * Every function here runs on the test's main thread; the client loop of
 * rel_clients.h runs beside it on a thread of its own.
 */
#ifndef SL_REL_HARNESS_H
#define SL_REL_HARNESS_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

/* Built with AddressSanitizer: the server binary of this build is too
 * (SS_BINARY is the build's own), so RSS means little and valgrind cannot
 * run it. */
#if defined(__SANITIZE_ADDRESS__)
#define REL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REL_ASAN 1
#endif
#endif
#ifndef REL_ASAN
#define REL_ASAN 0
#endif

/* Phase length in seconds: `dflt` in the suite, SL_SOAK_SECS (set by
 * tests/soak.sh, 60) in the long runs. */
static inline int rel_secs(int dflt) {
  const char *v = getenv("SL_SOAK_SECS");
  int n = v ? atoi(v) : 0;
  return n > 0 ? n : dflt;
}

/* A count multiplied by SL_SOAK_SCALE (1 in the suite). */
static inline long rel_scaled(long n) {
  const char *v = getenv("SL_SOAK_SCALE");
  long k = v ? atol(v) : 0;
  return k > 0 ? n * k : n;
}

/* ---- the server process ----------------------------------------------- */

struct rel_srv {
  pid_t pid;
  int port;
  char log[320];
};

/* The last `max` bytes of the server's log, for failure messages. */
static inline const char *rel_log_tail(const struct rel_srv *s, size_t max) {
  static char buf[4096];
  if (max >= sizeof(buf)) max = sizeof(buf) - 1;
  buf[0] = '\0';
  int fd = open(s->log, O_RDONLY);
  if (fd < 0) return buf;
  off_t end = lseek(fd, 0, SEEK_END);
  off_t from = end > (off_t)max ? end - (off_t)max : 0;
  ssize_t n = pread(fd, buf, max, from);
  close(fd);
  buf[n > 0 ? n : 0] = '\0';
  return buf;
}

/* Start sluice-stream on 127.0.0.1 port 0 with `extra` arguments
 * (NULL-terminated); the port it got is read back from its "serving" line
 * into s->port, so no other process can take it in between. `wrap`
 * (NULL-terminated, may be NULL) is a command that runs the binary
 * (valgrind). `nofile` > 0 sets both RLIMIT_NOFILE limits in the child
 * before exec. `ca`, when set, becomes its SSL_CERT_FILE (the CAs its relays
 * trust). stdout and stderr go to `log` (NULL: a fresh name under /tmp),
 * copied to s->log. Waits at most `start_ms` for the port. */
static inline void rel_srv_spawn(struct rel_srv *s, const char *const *wrap,
                                 const char *const *extra, long nofile, int start_ms,
                                 const char *ca, const char *log) {
  static int seq;
  if (log) snprintf(s->log, sizeof(s->log), "%s", log);
  else snprintf(s->log, sizeof(s->log), "/tmp/sluice-rel-%d-%d.log", (int)getpid(), ++seq);
  const char *argv[64];
  int n = 0;
  for (int i = 0; wrap && wrap[i] && n < 40; i++) argv[n++] = wrap[i];
  argv[n++] = SS_BINARY;
  argv[n++] = "--listen";
  argv[n++] = "127.0.0.1:0";
  for (int i = 0; extra && extra[i] && n < 62; i++) argv[n++] = extra[i];
  argv[n] = NULL;
  /* Truncated here, before the fork: the log's name can repeat (a reused
   * pid), and a child that truncated it itself could be too late for the
   * wait below, which would then read a stale ": serving" line. */
  int logfd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  CHECK(logfd >= 0);
  s->pid = fork();
  CHECK(s->pid >= 0);
  if (s->pid == 0) {
    dup2(logfd, 1);
    dup2(logfd, 2);
    if (nofile > 0) {
      struct rlimit rl = {(rlim_t)nofile, (rlim_t)nofile};
      setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (ca) setenv("SSL_CERT_FILE", ca, 1);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(logfd);
  s->port = test_wait_log_port(s->log, ": serving ", s->pid, start_ms);
  CHECK(s->port > 0);
  CHECK_MSG(test_port_open(s->port), "sluice-stream said port %d but does not answer: %s",
            s->port, rel_log_tail(s, 2000));
  usleep(200000); /* let the first frames arrive */
}

static inline void rel_srv_start_ex(struct rel_srv *s, const char *const *wrap,
                                    const char *const *extra, long nofile, int start_ms) {
  rel_srv_spawn(s, wrap, extra, nofile, start_ms, NULL, NULL);
}

static inline void rel_srv_start(struct rel_srv *s, const char *const *extra) {
  rel_srv_start_ex(s, NULL, extra, 0, 10000);
}

/* sluice-stream at --log-level info (its defaults otherwise) with up to 28
 * more arguments (`extra`, NULL-terminated, may be NULL); waits at most
 * `start_ms` for the port. */
static inline void rel_srv_start_info(struct rel_srv *s, const char *const *extra, int start_ms) {
  const char *argv[32] = {"--log-level", "info"};
  int n = 2;
  for (int i = 0; extra && extra[i] && n < 30; i++) argv[n++] = extra[i];
  argv[n] = NULL;
  rel_srv_spawn(s, NULL, argv, 0, start_ms, NULL, NULL);
}

/* SIGTERM, then wait up to `timeout_ms`: the exit status, or -1 (killed,
 * or died by a signal). */
static inline int rel_srv_stop(struct rel_srv *s, int timeout_ms) {
  int st = 0;
  kill(s->pid, SIGTERM);
  uint64_t end = test_now_ms() + (uint64_t)timeout_ms;
  while (test_now_ms() < end) {
    if (waitpid(s->pid, &st, WNOHANG) == s->pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    usleep(20000);
  }
  kill(s->pid, SIGKILL);
  waitpid(s->pid, &st, 0);
  return -1;
}

/* The whole log, malloc'd and NUL-terminated (the caller frees). */
static inline char *rel_log_read(const struct rel_srv *s) {
  FILE *f = fopen(s->log, "r");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *p = malloc((size_t)n + 1);
  size_t got = p ? fread(p, 1, (size_t)n, f) : 0;
  fclose(f);
  if (p) p[got] = '\0';
  return p;
}

/* After rel_srv_stop: a clean shutdown. Exit 0, every library byte given
 * back ("library memory now 0 bytes"), and, in a sanitizer build, no
 * report from AddressSanitizer, LeakSanitizer or UBSan in its output. */
static inline void rel_srv_check_clean(struct rel_srv *s, int status) {
  char *log = rel_log_read(s);
  CHECK(log != NULL);
  int bad = strstr(log, "ERROR: AddressSanitizer") || strstr(log, "ERROR: LeakSanitizer") ||
            strstr(log, "runtime error:");
  int zero = strstr(log, "library memory now 0 bytes") != NULL;
  if (status != 0 || bad || !zero) {
    fprintf(stderr, "  server log %s (tail):\n%s\n", s->log, rel_log_tail(s, 3000));
    free(log);
    CHECK_MSG(0, "unclean shutdown: exit %d, sanitizer report %s, memory back to 0 %s", status,
              bad ? "yes" : "no", zero ? "yes" : "no");
  }
  free(log);
  unlink(s->log);
}

/* ---- requests -------------------------------------------------------- */

/* The integer after "key": at the first occurrence past `from` (or the
 * start); -1 when absent. */
static inline long long rel_json_num(const char *json, const char *from, const char *key) {
  const char *p = json;
  if (from) {
    p = strstr(json, from);
    if (p == NULL) return -1;
  }
  char k[96];
  snprintf(k, sizeof(k), "\"%s\":", key);
  p = strstr(p, k);
  return p ? atoll(p + strlen(k)) : -1;
}

/* What /api/stats says, the numbers the tests bound. */
struct rel_stats {
  long long held, peak, lib_total, queued, conns, rss;
  long long s_held, frames_held, largest, viewers;
  long long seq;
  long long loops; /* the server's event loops (--threads): one listener each */
};

static inline int rel_stats_get(int port, struct rel_stats *st) {
  int status;
  char *r = test_http_get(port, "/api/stats", &status, NULL);
  if (r == NULL || status != 200) {
    free(r);
    return -1;
  }
  st->held = rel_json_num(r, "\"memory\":", "held");
  st->peak = rel_json_num(r, "\"memory\":", "peak");
  st->lib_total = rel_json_num(r, "\"memory\":", "lib_total");
  st->queued = rel_json_num(r, "\"memory\":", "queued");
  st->conns = rel_json_num(r, NULL, "connections");
  st->rss = rel_json_num(r, NULL, "rss_bytes");
  st->s_held = rel_json_num(r, "\"streams\":[", "held");
  st->frames_held = rel_json_num(r, "\"streams\":[", "frames_held");
  st->largest = rel_json_num(r, "\"streams\":[", "largest_frame");
  st->viewers = rel_json_num(r, "\"streams\":[", "viewers");
  st->seq = rel_json_num(r, "\"streams\":[", "seq");
  st->loops = rel_json_num(r, NULL, "threads");
  if (st->loops < 1) st->loops = 1;
  free(r);
  return 0;
}

/* The value of one Prometheus sample, e.g.
 * "sluice_closed_total{reason=\"stall\"}"; -1 when absent. */
static inline long long rel_metric(int port, const char *series) {
  int status;
  char *r = test_http_get(port, "/metrics", &status, NULL);
  if (r == NULL) return -1;
  long long v = -1;
  size_t sl = strlen(series);
  for (const char *p = r; (p = strstr(p, series)) != NULL; p += sl) {
    if ((p == r || p[-1] == '\n') && p[sl] == ' ') {
      v = atoll(p + sl + 1);
      break;
    }
  }
  free(r);
  return v;
}

/* The library's bytes by kind, from /metrics, as text for a message. */
static inline const char *rel_kinds(int port) {
  static char out[160];
  long long v[4];
  const char *k[4] = {"out", "in", "bufs", "meta"};
  for (int i = 0; i < 4; i++) {
    char series[64];
    snprintf(series, sizeof(series), "sluice_library_bytes{kind=\"%s\"}", k[i]);
    v[i] = rel_metric(port, series);
  }
  snprintf(out, sizeof(out), "out %lld, in %lld, bufs %lld, meta %lld", v[0], v[1], v[2], v[3]);
  return out;
}

/* ---- /proc ------------------------------------------------------------- */

/* Open descriptors of a process: all of them, or (below > 0) those
 * numbered under `below`, the ones RLIMIT_NOFILE counts (a descriptor
 * inherited from the test's own parent may sit above it). */
static inline int rel_fd_count_below(pid_t pid, int below) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
  DIR *d = opendir(path);
  if (d == NULL) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.' && (below <= 0 || atoi(e->d_name) < below)) n++;
  closedir(d);
  return n;
}

static inline int rel_fd_count(pid_t pid) { return rel_fd_count_below(pid, 0); }

/* utime + stime of the whole process, in clock ticks. */
static inline long long rel_cpu_ticks(pid_t pid) {
  char path[64], buf[2048];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char *p = strrchr(buf, ')');
  if (p == NULL) return -1;
  /* After the command: state (field 3) ... utime (14), stime (15). */
  long long utime = 0, stime = 0;
  int field = 2;
  for (const char *q = p + 1; *q; q++) {
    if (*q != ' ') continue;
    field++;
    if (field == 14) utime = atoll(q + 1);
    if (field == 15) {
      stime = atoll(q + 1);
      break;
    }
  }
  return utime + stime;
}

#endif
