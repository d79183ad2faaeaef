/*
 * sluice-stream --threads 2: two loops listening on one port, one hub per
 * stream and loop in a hub group. The kernel spreads the viewers over the
 * loops; /api/stats must count every loop's viewers exactly (also right
 * after one connects, whichever loop took it), every healthy viewer gets
 * (nearly) every frame published whatever a stalled one does, and once
 * they all leave the numbers return to the idle baseline.
 */
#include "rel_clients.h"
#include "test.h"

#define NVIEW 20

/* Viewers of loop `l` in /api/stats (-1: absent). */
static long long loop_viewers(const char *json, int l) {
  char from[32];
  snprintf(from, sizeof(from), "{\"loop\":%d,", l);
  return rel_json_num(json, from, "viewers");
}

static char *stats_body(int port) {
  int status = 0;
  char *r = test_http_get(port, "/api/stats", &status, NULL);
  if (r && status != 200) {
    free(r);
    r = NULL;
  }
  return r;
}

static int wait_viewers(int port, long long n, int ms) {
  struct rel_stats st;
  uint64_t end = test_now_ms() + (uint64_t)ms;
  do {
    if (rel_stats_get(port, &st) == 0 && st.viewers == n) return 1;
    usleep(20000);
  } while (test_now_ms() < end);
  return 0;
}

/* Open a viewer and read its response head: from then on it is attached. */
static int viewer_open(int port) {
  int fd = test_dial("127.0.0.1", port, 0);
  if (fd < 0) return -1;
  const char *req = "GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n";
  if (test_send_all(fd, req, strlen(req)) != 0) {
    close(fd);
    return -1;
  }
  char buf[512];
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, 5000) != 1 || recv(fd, buf, sizeof(buf), 0) <= 0) {
    close(fd);
    return -1;
  }
  return fd;
}

TEST_T(stream_threads_exact_stats_and_isolation, 90) {
  const int secs = rel_secs(4);
  const char *args[] = {"--threads", "2", "--fps", "15", "--log-level", "warn", NULL};
  struct rel_srv s;
  rel_srv_start(&s, args);
  /* Idle: both loops there, nobody watching. */
  char *r = stats_body(s.port);
  CHECK(r != NULL);
  CHECK_EQ(rel_json_num(r, NULL, "threads"), 2);
  CHECK_EQ(loop_viewers(r, 0), 0);
  CHECK_EQ(loop_viewers(r, 1), 0);
  free(r);
  struct rel_stats base;
  CHECK_EQ(rel_stats_get(s.port, &base), 0);

  /* Exact right after each join, whichever loop the kernel gave it to. */
  int fds[8];
  for (int i = 0; i < 8; i++) {
    fds[i] = viewer_open(s.port);
    CHECK_MSG(fds[i] >= 0, "viewer %d", i);
    struct rel_stats st;
    CHECK_EQ(rel_stats_get(s.port, &st), 0);
    CHECK_MSG(st.viewers == i + 1, "viewers %lld right after the %d. joined", st.viewers, i + 1);
  }
  for (int i = 0; i < 8; i++) close(fds[i]);
  CHECK(wait_viewers(s.port, 0, 5000));

  /* NVIEW healthy viewers and one stalled. */
  struct rel_loop L;
  rel_loop_start(&L, s.port);
  for (int i = 0; i < NVIEW; i++) CHECK(rel_add(&L, REL_HEALTHY) == i);
  CHECK(rel_add(&L, REL_STALLED) == NVIEW);
  CHECK(wait_viewers(s.port, NVIEW + 1, 5000));
  r = stats_body(s.port);
  CHECK(r != NULL);
  long long v0 = loop_viewers(r, 0), v1 = loop_viewers(r, 1);
  long long series = -1;
  free(r);
  series = rel_metric(s.port, "sluice_stream_viewers{stream=\"default\"}");
  printf("  %d viewers: loop 0 has %lld, loop 1 has %lld; /metrics says %lld\n", NVIEW + 1, v0, v1,
         series);
  CHECK_EQ(v0 + v1, NVIEW + 1);
  /* 2^-20 that the kernel's hash put them all on one loop. */
  CHECK_MSG(v0 > 0 && v1 > 0, "the viewers are not spread: %lld and %lld", v0, v1);
  CHECK_EQ(series, NVIEW + 1);

  /* Let the stalled viewer's socket fill, then measure a window. */
  usleep(1000000);
  long c0[NVIEW], c1[NVIEW];
  struct rel_stats k0, k1;
  CHECK_EQ(rel_stats_get(s.port, &k0), 0);
  for (int i = 0; i < NVIEW; i++) c0[i] = atomic_load(&L.cls[i].count);
  usleep((useconds_t)secs * 1000000u);
  for (int i = 0; i < NVIEW; i++) c1[i] = atomic_load(&L.cls[i].count);
  CHECK_EQ(rel_stats_get(s.port, &k1), 0);
  long long published = k1.seq - k0.seq;
  long hmin = 1L << 30;
  for (int i = 0; i < NVIEW; i++) {
    CHECK_MSG(c1[i] > 0, "viewer %d got no frame", i);
    if (c1[i] - c0[i] < hmin) hmin = c1[i] - c0[i];
  }
  printf("  %lld frames published in %d s; the slowest healthy viewer got %ld\n", published,
         secs, hmin);
  CHECK_MSG(published > 0, "the server published nothing");
  /* Against what was published in the same window, as the reliability
   * tests measure: a loaded machine publishes fewer frames. */
  CHECK_MSG(hmin >= 0.9 * (double)published, "a healthy viewer got %ld of %lld frames", hmin,
            published);
  CHECK_EQ(k1.viewers, NVIEW + 1);

  /* Everyone leaves: back to the baseline. */
  rel_loop_stop(&L);
  rel_loop_free(&L);
  struct rel_stats st = {0};
  uint64_t end = test_now_ms() + 10000;
  do {
    if (rel_stats_get(s.port, &st) == 0 && st.viewers == 0 && st.conns == base.conns &&
        st.frames_held == 1 && st.held - st.s_held == base.held - base.s_held)
      break;
    usleep(50000);
  } while (test_now_ms() < end);
  printf("  after: viewers %lld, connections %lld (idle %lld), held %lld (frames %lld; idle %lld, "
         "frames %lld)\n", st.viewers, st.conns, base.conns, st.held, st.s_held, base.held,
         base.s_held);
  CHECK_EQ(st.viewers, 0);
  CHECK_EQ(st.conns, base.conns);
  CHECK_EQ(st.frames_held, 1);
  CHECK_EQ(st.held - st.s_held, base.held - base.s_held);
  r = stats_body(s.port);
  CHECK(r != NULL);
  CHECK_EQ(loop_viewers(r, 0), 0);
  CHECK_EQ(loop_viewers(r, 1), 0);
  free(r);
  rel_srv_check_clean(&s, rel_srv_stop(&s, 10000));
}
