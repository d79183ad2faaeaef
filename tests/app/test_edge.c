/*
 * Past one box (docs/scale-out.md), on loopback: an origin, two edges
 * (sluice-stream --edge) and Debian's haproxy with contrib/haproxy.cfg
 * (its addresses substituted), 200 viewers through HAProxy; then an edge
 * killed, the origin restarted, stalled viewers on an edge. And the DSCP
 * marking of viewer sockets, read off the packets the client receives.
 *
 * Bounds are derived from the relay's backoff (250 ms doubling to 10 s,
 * src_relay.c) and HAProxy's checks (contrib: inter 1s fall 2), with
 * generous slack: the machine is shared; times are printed, not asserted
 * tightly.
 */
#include <netinet/in.h>
#include <netinet/ip.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rel_clients.h"
#include "rel_harness.h"
#include "sluice.h"
#include "test.h"

#define say(...) (printf(__VA_ARGS__), fflush(stdout))

#define BACKOFF_MAX_MS 10000 /* src_relay.c */
#define NVIEW 200

static void sleep_ms(int ms) { usleep((useconds_t)ms * 1000u); }

/* The number after "key": inside the stream object named `stream` of
 * /api/stats (-1 when absent). */
static long long stream_num(int port, const char *stream, const char *key) {
  int status;
  char *r = test_http_get(port, "/api/stats", &status, NULL);
  if (r == NULL || status != 200) {
    free(r);
    return -1;
  }
  char from[96];
  snprintf(from, sizeof(from), "{\"name\":\"%s\"", stream);
  long long v = rel_json_num(r, from, key);
  free(r);
  return v;
}

/* 1 when the stream's upstream (edge) says "connected". */
static int upstream_connected(int port, const char *stream) {
  int status;
  char *r = test_http_get(port, "/api/stats", &status, NULL);
  if (r == NULL) return 0;
  char from[96];
  snprintf(from, sizeof(from), "{\"name\":\"%s\"", stream);
  const char *p = strstr(r, from);
  p = p ? strstr(p, "\"upstream\":") : NULL;
  int ok = p && strncmp(strstr(p, "\"state\":") + 8, "\"connected\"", 11) == 0;
  free(r);
  return ok;
}

static int healthz(int port) {
  int status = 0;
  char *r = test_http_get(port, "/healthz", &status, NULL);
  free(r);
  return status;
}

/* Wait until both of an edge's streams are connected upstream and /healthz
 * says 200; the time it took in ms, or -1. */
static long wait_edge_ready(int port, int ms) {
  uint64_t t0 = test_now_ms();
  while (test_now_ms() - t0 < (uint64_t)ms) {
    if (upstream_connected(port, "default") && upstream_connected(port, "h") &&
        healthz(port) == 200)
      return (long)(test_now_ms() - t0);
    sleep_ms(50);
  }
  return -1;
}

/* contrib/haproxy.cfg with the test's addresses: the frontend on `hp`, the
 * two edges, no chroot or user (the test is not root's daemon), maxconn
 * within the test's descriptor limit. */
static void write_haproxy_cfg(const char *path, int hp, int e1, int e2) {
  size_t len;
  char *src = read_file(SL_SOURCE_DIR "/contrib/haproxy.cfg", &len);
  CHECK_MSG(src != NULL, "cannot read contrib/haproxy.cfg");
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  int subs = 0;
  for (char *line = strtok(src, "\n"); line; line = strtok(NULL, "\n")) {
    if (strstr(line, "chroot ") || strstr(line, "user haproxy") ||
        strstr(line, "group haproxy") || strstr(line, "10.0.0.13:"))
      continue;
    char *p;
    if (line[strspn(line, " \t")] == '#') {
      fprintf(f, "%s\n", line);
    } else if (strstr(line, "maxconn 200000")) {
      fprintf(f, "    maxconn 4000\n"); /* production's needs a raised RLIMIT_NOFILE */
    } else if ((p = strstr(line, "bind :80")) != NULL) {
      fprintf(f, "%.*sbind 127.0.0.1:%d\n", (int)(p - line), line, hp);
      subs++;
    } else if ((p = strstr(line, "10.0.0.11:8080")) != NULL) {
      fprintf(f, "%.*s127.0.0.1:%d%s\n", (int)(p - line), line, e1, p + 14);
      subs++;
    } else if ((p = strstr(line, "10.0.0.12:8080")) != NULL) {
      fprintf(f, "%.*s127.0.0.1:%d%s\n", (int)(p - line), line, e2, p + 14);
      subs++;
    } else {
      fprintf(f, "%s\n", line);
    }
  }
  fclose(f);
  free(src);
  CHECK_MSG(subs == 3, "contrib/haproxy.cfg: %d of the 3 addresses found to substitute", subs);
}

/* Frames of healthy clients in slots [from, to) that are still open. */
static long frames_of(struct rel_loop *L, int from, int to, int *open) {
  long s = 0;
  *open = 0;
  for (int i = from; i < to; i++) {
    if (L->cls[i].state != REL_OPEN) continue;
    (*open)++;
    s += atomic_load(&L->cls[i].count);
  }
  return s;
}

/* Until `ms` pass: 1 when every open client in [from, to) got at least
 * `more` frames beyond `base` (a snapshot of counts), and how long it took. */
static long wait_all_frames(struct rel_loop *L, int from, int to, const long *base, long more,
                            int ms) {
  uint64_t t0 = test_now_ms();
  while (test_now_ms() - t0 < (uint64_t)ms) {
    int ok = 1;
    for (int i = from; i < to && ok; i++)
      if (L->cls[i].state == REL_OPEN && atomic_load(&L->cls[i].count) < base[i - from] + more)
        ok = 0;
    if (ok) return (long)(test_now_ms() - t0);
    sleep_ms(20);
  }
  return -1;
}

struct topo {
  struct rel_srv prod, origin, e1, e2;
  pid_t hap;
  int hp;
  char hcfg[128], hlog[128];
};

static void start_origin(struct topo *t, int port) {
  char listen[32], src[96];
  snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
  snprintf(src, sizeof(src), "h=http://127.0.0.1:%d/stream.h264", t->prod.port);
  /* The default stream: the MJPEG test pattern; "h": H.264, relayed from
   * a --codec h264 test pattern (one codec per process). */
  const char *args[] = {"--listen", listen, "--stream", src, "--fps", "10", "--size", "160x120",
                        "--stall-ms", "3000", "--log-level", "warn", NULL};
  rel_srv_start(&t->origin, args);
}

static void start_edge(struct topo *t, struct rel_srv *e, int port) {
  char listen[32], origin[64];
  snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
  snprintf(origin, sizeof(origin), "http://127.0.0.1:%d", t->origin.port);
  const char *args[] = {"--listen", listen, "--edge", origin, "--edge-poll", "500",
                        "--max-viewers", "1000", "--stall-ms", "3000", "--log-level", "info",
                        NULL};
  rel_srv_start(e, args);
}

TEST_T(edge_haproxy_two_edges_failover_origin_restart_stalled, 240) {
  NEED_TOOL("haproxy");
  long nofile = test_raise_nofile(8192);
  CHECK(nofile >= 2 * NVIEW + 400);
  struct topo t;
  memset(&t, 0, sizeof(t));
  const char *pargs[] = {"--codec", "h264", "--size", "160x120", "--fps", "10", "--gop", "10",
                         "--log-level", "warn", NULL};
  rel_srv_start(&t.prod, pargs);
  start_origin(&t, 0);
  int oport = t.origin.port;
  start_edge(&t, &t.e1, 0);
  start_edge(&t, &t.e2, 0);
  long r1 = wait_edge_ready(t.e1.port, 15000), r2 = wait_edge_ready(t.e2.port, 15000);
  CHECK_MSG(r1 >= 0 && r2 >= 0, "edges not ready: %ld %ld\n%s", r1, r2, rel_log_tail(&t.e1, 1500));
  say("  origin :%d (default MJPEG, h H.264), edges :%d :%d ready in %ld / %ld ms\n", oport,
      t.e1.port, t.e2.port, r1, r2);

  int hold;
  t.hp = test_reserve_port(&hold);
  close(hold);
  snprintf(t.hcfg, sizeof(t.hcfg), "/tmp/sluice-edge-haproxy-%d.cfg", (int)getpid());
  snprintf(t.hlog, sizeof(t.hlog), "/tmp/sluice-edge-haproxy-%d.log", (int)getpid());
  write_haproxy_cfg(t.hcfg, t.hp, t.e1.port, t.e2.port);
  char check[512];
  int crc = sh_capture(check, sizeof(check), "haproxy -c -f %s 2>&1", t.hcfg);
  CHECK_MSG(crc == 0, "haproxy -c: %s", check);
  char *hargv[] = {"haproxy", "-db", "-f", t.hcfg, NULL};
  unlink(t.hlog);
  t.hap = test_spawn(t.hlog, hargv);
  WAIT_FOR(test_port_open(t.hp), 5000);
  /* Both servers up in HAProxy's eyes (rise 2 x inter 1s): HAProxy shows
   * no state this test reads, so this one is a fixed wait. */
  sleep_ms(2500);

  /* ---- 200 viewers through HAProxy, spread over both edges ---------- */
  struct rel_loop L;
  rel_loop_start(&L, t.hp);
  for (int i = 0; i < NVIEW; i++) {
    CHECK_MSG(rel_add(&L, REL_HEALTHY) == i, "viewer %d", i);
    if (i % 20 == 19) sleep_ms(20);
  }
  long long v1 = 0, v2 = 0;
  uint64_t until = test_now_ms() + 10000;
  do {
    sleep_ms(200);
    v1 = stream_num(t.e1.port, "default", "viewers");
    v2 = stream_num(t.e2.port, "default", "viewers");
  } while (v1 + v2 < NVIEW && test_now_ms() < until);
  say("  %d viewers through haproxy: edge1 %lld, edge2 %lld\n", NVIEW, v1, v2);
  CHECK_EQ(v1 + v2, NVIEW);
  /* leastconn: neither edge gets (nearly) all of them. */
  CHECK_MSG(v1 >= NVIEW / 4 && v2 >= NVIEW / 4, "unbalanced: %lld / %lld", v1, v2);
  /* The origin: exactly one upstream per stream per edge. */
  long long od = stream_num(oport, "default", "viewers"), oh = stream_num(oport, "h", "viewers");
  say("  origin viewers: default %lld, h %lld (one per stream per edge)\n", od, oh);
  CHECK_EQ(od, 2);
  CHECK_EQ(oh, 2);
  long base[NVIEW];
  for (int i = 0; i < NVIEW; i++) base[i] = atomic_load(&L.cls[i].count);
  long got = wait_all_frames(&L, 0, NVIEW, base, 10, 10000);
  CHECK_MSG(got >= 0, "not every viewer got 10 frames through haproxy in 10 s");
  say("  every viewer got 10 more frames in %ld ms\n", got);
  long long lag = stream_num(t.e1.port, "default", "lag_ms");
  long long hlag = stream_num(t.e1.port, "h", "lag_ms");
  say("  edge1 lag to origin: MJPEG %lld ms, H.264 %lld ms\n", lag, hlag);
  CHECK(lag >= 0 && hlag >= 0);

  /* ---- kill edge1: its viewers reconnect through haproxy to edge2 ---- */
  uint64_t tk = test_now_ms();
  kill(t.e1.pid, SIGKILL);
  waitpid(t.e1.pid, NULL, 0);
  int gone = 0;
  until = tk + 20000;
  while (test_now_ms() < until) {
    gone = (int)atomic_load(&L.closed[REL_HEALTHY]);
    if (gone >= v1) break;
    sleep_ms(10);
  }
  CHECK_MSG(gone == v1, "%d viewers saw edge1 die, it had %lld", gone, v1);
  say("  edge1 killed: its %d viewers saw their stream end within %llu ms\n", gone,
      (unsigned long long)(test_now_ms() - tk));
  /* A player reconnects at once, through the balancer. */
  int from = atomic_load(&L.n);
  for (int i = 0; i < gone; i++) CHECK(rel_add(&L, REL_HEALTHY) >= 0);
  int to = atomic_load(&L.n);
  long zero[NVIEW] = {0};
  /* Bound: the relay's longest backoff (edge2 is connected already, so in
   * fact it is HAProxy's redispatch), doubled, as slack on a busy box. */
  long back = wait_all_frames(&L, from, to, zero, 5, 2 * BACKOFF_MAX_MS);
  CHECK_MSG(back >= 0, "reconnected viewers got no live frames within %d ms", 2 * BACKOFF_MAX_MS);
  say("  edge1 killed: %d viewers reconnected through haproxy and had 5 frames each %llu ms "
      "after the kill\n", gone, (unsigned long long)(test_now_ms() - tk));
  long long n2 = stream_num(t.e2.port, "default", "viewers");
  CHECK_EQ(n2, NVIEW);
  CHECK_EQ(stream_num(oport, "default", "viewers"), 1);

  /* ---- restart the origin: edge2 keeps its viewers, frames resume ---- */
  int open0;
  long f0 = frames_of(&L, 0, to, &open0);
  uint64_t tr = test_now_ms();
  kill(t.origin.pid, SIGKILL);
  waitpid(t.origin.pid, NULL, 0);
  WAIT_FOR(!upstream_connected(t.e2.port, "default") && healthz(t.e2.port) == 503, 5000);
  start_origin(&t, oport);
  long long seq_h0 = stream_num(t.e2.port, "h", "seq");
  long back2 = wait_edge_ready(t.e2.port, 1500 + 2 * BACKOFF_MAX_MS);
  CHECK_MSG(back2 >= 0, "edge2 did not recover from the origin restart:\n%s",
            rel_log_tail(&t.e2, 1500));
  long snap[2 * NVIEW];
  for (int i = 0; i < to; i++) snap[i] = atomic_load(&L.cls[i].count);
  long resumed = -1;
  until = test_now_ms() + 2 * BACKOFF_MAX_MS;
  while (test_now_ms() < until && resumed < 0) {
    int ok = 1;
    for (int i = 0; i < to && ok; i++)
      if (L.cls[i].state == REL_OPEN && atomic_load(&L.cls[i].count) < snap[i] + 5) ok = 0;
    if (ok) resumed = (long)(test_now_ms() - tr);
    else sleep_ms(20);
  }
  int open1;
  long f1 = frames_of(&L, 0, to, &open1);
  say("  origin killed and restarted 1.5 s later: edge2's upstreams connected %ld ms after the "
      "restart; %d viewers kept their connections (%d before), each had 5 new frames %ld ms "
      "after the kill (%ld frames in all)\n", back2, open1, open0, resumed, f1 - f0);
  CHECK_EQ(open1, open0);
  CHECK_MSG(resumed >= 0, "viewers got no frames after the origin restart");
  CHECK_GE(stream_num(t.e2.port, "h", "seq"), seq_h0 + 5);
  CHECK_GE(stream_num(t.e2.port, "default", "reconnects"), 1);
  CHECK_EQ(stream_num(oport, "default", "viewers"), 1);
  CHECK_EQ(stream_num(oport, "h", "viewers"), 1);

  /* ---- stalled viewers: on edge2 and on the origin, the same rules ---- */
  const int nst = 100;
  long long stall_e0 = rel_metric(t.e2.port, "sluice_closed_total{reason=\"stall\"}");
  long long stall_o0 = rel_metric(oport, "sluice_closed_total{reason=\"stall\"}");
  L.port = t.e2.port;
  for (int i = 0; i < nst; i++) CHECK(rel_add(&L, REL_STALLED) >= 0);
  L.port = oport;
  for (int i = 0; i < nst; i++) CHECK(rel_add(&L, REL_STALLED) >= 0);
  sleep_ms(1500); /* window: the stalled viewers' queues fill before the bound is read */
  struct rel_stats se, so;
  CHECK_EQ(rel_stats_get(t.e2.port, &se), 0);
  CHECK_EQ(rel_stats_get(oport, &so), 0);
  /* Each viewer pins at most one frame in flight besides the latest. */
  say("  %d stalled on edge2: %lld viewers, frames_held %lld, held %.1f KiB; on the origin: "
      "%lld viewers, frames_held %lld, held %.1f KiB\n", nst, se.viewers, se.frames_held,
      se.held / 1024.0, so.viewers, so.frames_held, so.held / 1024.0);
  CHECK_LE(se.frames_held, 2 + se.viewers);
  CHECK_LE(se.s_held, (2 + se.viewers) * (se.largest + 256));
  until = test_now_ms() + 3000 + 10000;
  long long ce = 0, co = 0;
  while (test_now_ms() < until) {
    ce = rel_metric(t.e2.port, "sluice_closed_total{reason=\"stall\"}") - stall_e0;
    co = rel_metric(oport, "sluice_closed_total{reason=\"stall\"}") - stall_o0;
    if (ce >= nst && co >= nst) break;
    sleep_ms(200);
  }
  say("  closed for stalling (--stall-ms 3000 on both): edge2 %lld, origin %lld of %d each\n", ce,
      co, nst);
  CHECK_EQ(ce, nst);
  CHECK_EQ(co, nst);
  CHECK_EQ(stream_num(t.e2.port, "default", "viewers"), NVIEW);
  CHECK_EQ(stream_num(oport, "default", "viewers"), 1);

  /* ---- drain edge2 under SIGTERM: viewers told, exit clean ---------- */
  long closed0 = atomic_load(&L.closed[REL_HEALTHY]);
  uint64_t td = test_now_ms();
  int st = rel_srv_stop(&t.e2, 35000);
  uint64_t exited = test_now_ms() - td;
  /* HAProxy passes each end on to its client: give it a moment. */
  long told = 0;
  until = test_now_ms() + 5000;
  while ((told = atomic_load(&L.closed[REL_HEALTHY]) - closed0) < NVIEW && test_now_ms() < until)
    sleep_ms(20);
  char *elog = rel_log_read(&t.e2);
  const char *dl = elog ? strstr(elog, "drained: ") : NULL;
  say("  edge2 SIGTERM: exited in %llu ms; its log: \"%.*s\"; %ld viewers saw their stream "
      "end\n", (unsigned long long)exited, dl ? (int)strcspn(dl, "\n") : 0, dl ? dl : "", told);
  CHECK_MSG(dl && atol(dl + 9) == NVIEW, "edge2 did not drain its %d viewers", NVIEW);
  free(elog);
  CHECK_EQ(told, NVIEW);
  rel_srv_check_clean(&t.e2, st);
  rel_loop_stop(&L);
  rel_loop_free(&L);
  kill(t.hap, SIGTERM);
  waitpid(t.hap, NULL, 0);
  rel_srv_check_clean(&t.origin, rel_srv_stop(&t.origin, 10000));
  rel_srv_check_clean(&t.prod, rel_srv_stop(&t.prod, 10000));
  unlink(t.hcfg);
  unlink(t.hlog);
}

/* ---- streams come and go on the origin -------------------------------- */

TEST_T(edge_follows_origin_streams_and_health, 90) {
  /* An origin with two streams, replaced by one with another set. */
  struct rel_srv o, e;
  const char *oargs[] = {"--stream", "a=testpattern", "--stream", "b=testpattern", "--fps", "10",
                         "--size", "160x120", "--log-level", "warn", NULL};
  rel_srv_start(&o, oargs);
  int oport = o.port;
  char origin[64];
  snprintf(origin, sizeof(origin), "http://127.0.0.1:%d", oport);
  const char *eargs[] = {"--edge", origin, "--edge-poll", "300", "--log-level", "info", NULL};
  rel_srv_start(&e, eargs);
  uint64_t until = test_now_ms() + 10000;
  while (test_now_ms() < until && !(upstream_connected(e.port, "a") &&
                                     upstream_connected(e.port, "b") &&
                                     upstream_connected(e.port, "default")))
    sleep_ms(50);
  CHECK(upstream_connected(e.port, "b"));
  CHECK_EQ(healthz(e.port), 200);
  /* A viewer of b through the edge. */
  int fd = test_dial("127.0.0.1", e.port, 0);
  CHECK(fd >= 0);
  const char *req = "GET /streams/b/stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n";
  CHECK_EQ(test_send_all(fd, req, strlen(req)), 0);
  char buf[4096];
  CHECK(recv(fd, buf, sizeof(buf), 0) > 0);

  /* The origin restarts with a and c: b goes (its viewer is closed), c
   * comes; while the origin is down nothing is removed. */
  rel_srv_check_clean(&o, rel_srv_stop(&o, 10000));
  WAIT_FOR(healthz(e.port) == 503, 5000);
  sleep_ms(1000); /* window: a second with the origin down removes nothing */
  CHECK(stream_num(e.port, "b", "viewers") == 1);
  char listen[32];
  snprintf(listen, sizeof(listen), "127.0.0.1:%d", oport);
  const char *o2args[] = {"--listen", listen, "--stream", "a=testpattern", "--stream",
                          "c=testpattern", "--fps", "10", "--size", "160x120", "--log-level",
                          "warn", NULL};
  rel_srv_start(&o, o2args);
  until = test_now_ms() + 15000;
  while (test_now_ms() < until && !upstream_connected(e.port, "c")) sleep_ms(50);
  CHECK(upstream_connected(e.port, "c"));
  CHECK_EQ(stream_num(e.port, "b", "viewers"), -1);
  /* b's viewer: the response ended (EOF), not a hang. */
  ssize_t r;
  uint64_t t0 = test_now_ms();
  while ((r = recv(fd, buf, sizeof(buf), 0)) > 0 && test_now_ms() - t0 < 10000) {
  }
  CHECK(r <= 0);
  close(fd);
  until = test_now_ms() + 15000;
  while (test_now_ms() < until && healthz(e.port) != 200) sleep_ms(50);
  CHECK_EQ(healthz(e.port), 200);
  char *log = rel_log_read(&e);
  CHECK(log && strstr(log, "edge: stream b was removed on the origin"));
  free(log);
  rel_srv_check_clean(&e, rel_srv_stop(&e, 10000));
  rel_srv_check_clean(&o, rel_srv_stop(&o, 10000));
}

/* ---- DSCP on the wire ---------------------------------------------------- */

/* rel_srv_spawn for a server on [::1] only (rel_srv_spawn probes
 * 127.0.0.1): `args` carry the --listen. */
static void spawn_v6(struct rel_srv *s, const char *const *args) {
  snprintf(s->log, sizeof(s->log), "/tmp/sluice-edge-v6-%d.log", (int)getpid());
  const char *argv[40];
  int n = 0;
  argv[n++] = SS_BINARY;
  for (int i = 0; args[i] && n < 38; i++) argv[n++] = args[i];
  argv[n] = NULL;
  unlink(s->log);
  s->pid = test_spawn(s->log, (char *const *)argv);
  s->port = test_wait_log_port(s->log, ": serving ", s->pid, 10000);
  CHECK(s->port > 0);
}

/* A viewer of `path` on [::1]:port. */
static int ipv6_viewer(int port, const char *path) {
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(fd >= 0);
  int on = 1;
  /* Linux keeps the traffic class of the last segment received for a TCP
   * socket that asked for it, and hands it over as an IPV6_TCLASS cmsg
   * through IPV6_2292PKTOPTIONS (net/ipv6/ipv6_sockglue.c). */
  CHECK_EQ(setsockopt(fd, IPPROTO_IPV6, IPV6_RECVTCLASS, &on, sizeof(on)), 0);
  struct sockaddr_in6 sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin6_family = AF_INET6;
  sa.sin6_port = htons((uint16_t)port);
  sa.sin6_addr = in6addr_loopback;
  CHECK_EQ(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  char req[256];
  snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
  CHECK_EQ(test_send_all(fd, req, strlen(req)), 0);
  return fd;
}

/* The traffic class of the last IPv6 packet the viewer received, or -1. */
static int received_tclass(int fd) {
  char buf[8192];
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (recv(fd, buf, sizeof(buf), 0) <= 0) return -1;
  unsigned char cbuf[512];
  socklen_t cl = sizeof(cbuf);
  if (getsockopt(fd, IPPROTO_IPV6, IPV6_2292PKTOPTIONS, cbuf, &cl) != 0) return -1;
  struct msghdr mh;
  memset(&mh, 0, sizeof(mh));
  mh.msg_control = cbuf;
  mh.msg_controllen = cl;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS) {
      int v;
      memcpy(&v, CMSG_DATA(c), sizeof(v));
      return v;
    }
  return -1;
}

/* IPv4: the server's own socket for our connection `fd`, duplicated into
 * this process with pidfd_getfd(2) (the server is our child, which ptrace
 * rules allow), then getsockopt(IP_TOS) on it. -1 when not found. */
static int server_side_tos(pid_t pid, int fd) {
  struct sockaddr_in me;
  socklen_t ml = sizeof(me);
  CHECK_EQ(getsockname(fd, (struct sockaddr *)&me, &ml), 0);
  int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pfd < 0) return -1;
  int tos = -1;
  for (int n = 3; n < 256 && tos < 0; n++) {
    int d = (int)syscall(SYS_pidfd_getfd, pfd, n, 0);
    if (d < 0) continue;
    struct sockaddr_in peer;
    socklen_t pl = sizeof(peer);
    if (getpeername(d, (struct sockaddr *)&peer, &pl) == 0 && peer.sin_family == AF_INET &&
        peer.sin_port == me.sin_port) {
      int v = 0;
      socklen_t vl = sizeof(v);
      if (getsockopt(d, IPPROTO_IP, IP_TOS, &v, &vl) == 0) tos = v;
    }
    close(d);
  }
  close(pfd);
  return tos;
}

TEST_T(edge_dscp_marks_viewer_packets, 60) {
  /* IPv6: read off the packets the viewer receives. */
  struct rel_srv s6;
  const char *args6[] = {"--listen", "[::1]:0", "--dscp", "AF41", "--stream", "cam=testpattern",
                         "--stream-qos", "cam=EF:5", "--fps", "10", "--size", "160x120",
                         "--log-level", "warn", NULL};
  spawn_v6(&s6, args6);
  int f_def = ipv6_viewer(s6.port, "/stream.mjpg");
  int f_cam = ipv6_viewer(s6.port, "/streams/cam/stream.mjpg");
  int api = ipv6_viewer(s6.port, "/api/streams");
  int t_def = received_tclass(f_def), t_cam = received_tclass(f_cam), t_api = received_tclass(api);
  say("  IPv6 traffic class received: default stream 0x%02x (DSCP %d), cam 0x%02x (DSCP %d), "
      "an API answer 0x%02x\n", t_def, t_def >> 2, t_cam, t_cam >> 2, t_api);
  /* The ECN bits (the low two) are the kernel's. */
  CHECK_EQ(t_def & 0xfc, 34 << 2); /* AF41 */
  CHECK_EQ(t_cam & 0xfc, 46 << 2); /* EF, --stream-qos */
  CHECK_EQ(t_api & 0xfc, 0);       /* not a viewer: unmarked */
  close(f_def);
  close(f_cam);
  close(api);
  rel_srv_check_clean(&s6, rel_srv_stop(&s6, 10000));

  /* IPv4: the server's socket, and /api/stats per viewer. */
  struct rel_srv s;
  const char *args[] = {"--dscp", "CS3", "--priority", "3", "--stream", "cam=testpattern",
                        "--stream-qos", "cam=EF:5", "--fps", "10", "--size", "160x120",
                        "--log-level", "warn", NULL};
  rel_srv_start(&s, args);
  int fd = test_dial("127.0.0.1", s.port, 0), fc = test_dial("127.0.0.1", s.port, 0);
  CHECK(fd >= 0 && fc >= 0);
  const char *req = "GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n";
  const char *reqc = "GET /streams/cam/stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n";
  CHECK_EQ(test_send_all(fd, req, strlen(req)), 0);
  CHECK_EQ(test_send_all(fc, reqc, strlen(reqc)), 0);
  char buf[4096];
  CHECK(recv(fd, buf, sizeof(buf), 0) > 0);
  CHECK(recv(fc, buf, sizeof(buf), 0) > 0);
  int tos = server_side_tos(s.pid, fd), tosc = server_side_tos(s.pid, fc);
  TEST_NEED(tos >= 0, "pidfd_getfd on the server's socket refused (ptrace rules)");
  say("  IPv4 server sockets: IP_TOS 0x%02x (CS3), cam 0x%02x (EF)\n", tos, tosc);
  CHECK_EQ(tos & 0xfc, 24 << 2);
  CHECK_EQ(tosc & 0xfc, 46 << 2);
  CHECK_EQ(stream_num(s.port, "default", "dscp"), 24);
  CHECK_EQ(stream_num(s.port, "default", "priority"), 3);
  CHECK_EQ(stream_num(s.port, "cam", "dscp"), 46);
  CHECK_EQ(stream_num(s.port, "cam", "priority"), 5);
  close(fd);
  close(fc);
  rel_srv_check_clean(&s, rel_srv_stop(&s, 10000));
}
