/*
 * WebSocket integration tests on 127.0.0.1. A sluice server runs its
 * manager on a thread of its own (only that thread touches it; the test
 * reads what it recorded after joining it), and the peers are raw sockets
 * driven from the test thread: protocol errors byte for byte (and the
 * lingering close after them), a stalled reader, fifty clients sharing one
 * buffer, and keepalive pings against a silent peer and a full queue. The interoperability tests with the npm `ws` package are in
 * test_ws_interop.c; the helpers of both are in test_ws_util.c.
 */
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ws_test.h"

/* ---- protocol errors from a raw client ---- */

TEST_T(ws_raw_echo_then_bad_utf8_is_closed_1007, 30) {
  struct srv s;
  srv_start(&s, NULL, NULL, NULL);
  int fd = raw_ws_open(s.port, "", 0);
  /* A valid masked frame first: the framing of this test is right. */
  raw_send_frame(fd, 0x81, "hi \xe2\x82\xac", 6, 1);
  unsigned char got[64];
  CHECK_EQ(raw_read(fd, got, 8), 8);
  CHECK_MEM(got, "\x81\x06hi \xe2\x82\xac", 8);
  /* "\xc3\x28": a lead byte followed by a non-continuation byte. */
  raw_send_frame(fd, 0x81, "ok \xc3\x28", 5, 1);
  CHECK_EQ(raw_read_to_eof(fd, got, sizeof(got)), 4);
  CHECK_MEM(got, "\x88\x02\x03\xef", 4); /* close 1007, then EOF */
  close(fd);
  srv_stop(&s);
  CHECK_EQ(s.msgs, 1);
  CHECK_STR(s.last_text, "hi \xe2\x82\xac");
  CHECK_EQ(s.closes, 1);
  CHECK_EQ(s.close_reason, SL_CLOSE_PROTOCOL);
  CHECK_EQ(s.end.closed_by[SL_CLOSE_PROTOCOL], 1);
  srv_check_clean(&s);
}

TEST_T(ws_raw_unmasked_client_frame_is_closed_1002, 30) {
  struct srv s;
  srv_start(&s, NULL, NULL, NULL);
  int fd = raw_ws_open(s.port, "", 0);
  raw_send_frame(fd, 0x82, "\x01\x02\x03", 3, 1);
  unsigned char got[64];
  CHECK_EQ(raw_read(fd, got, 5), 5);
  CHECK_MEM(got, "\x82\x03\x01\x02\x03", 5);
  /* The same frame without a mask: a server must fail it (5.1). */
  raw_send_frame(fd, 0x82, "\x01\x02\x03", 3, 0);
  CHECK_EQ(raw_read_to_eof(fd, got, sizeof(got)), 4);
  CHECK_MEM(got, "\x88\x02\x03\xea", 4); /* close 1002, then EOF */
  close(fd);
  srv_stop(&s);
  CHECK_EQ(s.msgs, 1);
  CHECK_EQ(s.close_reason, SL_CLOSE_PROTOCOL);
  srv_check_clean(&s);
}

TEST_T(ws_raw_oversized_frame_gets_1009_and_a_clean_close, 30) {
  struct srv s;
  srv_start(&s, NULL, NULL, NULL);
  int fd = raw_ws_open(s.port, "", 0);
  /* A masked binary frame announcing 16 MiB (max_message is 1 MiB), and
   * the first 256 KiB of its payload. */
  static const unsigned char hdr[14] = {0x82, 0xff, 0, 0, 0, 0, 0x01, 0, 0, 0, 1, 2, 3, 4};
  static unsigned char junk[256 * 1024];
  raw_send_all(fd, hdr, sizeof(hdr));
  raw_send_all(fd, junk, sizeof(junk));
  /* Close 1009, then a FIN (recv returns 0), not a reset that could
   * destroy the close frame before we read it. */
  unsigned char got[4];
  CHECK_EQ(raw_read(fd, got, 4), 4);
  CHECK_MEM(got, "\x88\x02\x03\xf1", 4);
  CHECK_EQ(recv(fd, got, 1, 0), 0);
  /* The server still drains what we send until we close too. */
  raw_send_all(fd, junk, sizeof(junk));
  CHECK_EQ(atomic_load(&s.ws_closes), 0);
  close(fd);
  WAIT_FOR(atomic_load(&s.ws_closes) != 0, 5000);
  srv_stop(&s);
  CHECK_EQ(s.msgs, 0);
  CHECK_EQ(s.closes, 1);
  CHECK_EQ(s.close_reason, SL_CLOSE_PROTOCOL);
  /* Well before close_timeout_ms (5 s): our close ended the linger. */
  CHECK_LE(s.close_ms - s.open_ms, 4000);
  srv_check_clean(&s);
}

/* ---- a stalled reader: bounded, then closed for stalling ---- */

enum { STALL_SEND_MAX = 512 * 1024, STALL_MSG = 64 * 1024, STALL_HDR = 10 };

static void stall_tick(sl_mgr *m, void *arg) {
  struct srv *s = arg;
  if (s->ws == NULL) return;
  /* Check the room first, as a live-video sender does: a frame that does
   * not fit is skipped, not queued and not an error. */
  if (sl_conn_room(s->ws) < STALL_MSG + STALL_HDR) {
    s->refusals++;
  } else {
    int rc = sl_ws_send_buf(s->ws, SL_WS_BINARY, s->shared, 0, STALL_MSG);
    if (rc) s->send_errors++, s->last_err = rc;
    else s->sent++;
  }
  size_t q = sl_conn_queued(s->ws);
  if (q > s->max_queued) s->max_queued = q;
  sl_mgr_stats st;
  sl_mgr_stats_get(m, &st);
  if (st.held > s->max_held) s->max_held = st.held;
}

static void stall_open(struct srv *s, sl_conn *c) {
  /* A small kernel send buffer, so the queue (not the kernel) absorbs the
   * backlog within a few ticks. */
  CHECK_EQ(sl_conn_sockopt(c, SL_OPT_SNDBUF, 32 * 1024), 0);
  s->shared = sl_buf_new(STALL_MSG);
  memset(sl_buf_data(s->shared), 0x5a, STALL_MSG);
  s->timer = sl_timer_add(sl_conn_mgr(c), 33, SL_TIMER_REPEAT, stall_tick, s, NULL);
  CHECK(s->timer != NULL);
}

static void run_stalled(int backend) {
  struct srv s;
  /* Under valgrind the 30 Hz sender needs longer to reach the cap. */
  uint32_t stall_ms = 500u * (uint32_t)test_slowdown();
  sl_mgr_opts o = {.backend = backend,
                   .limits = {.send_max = STALL_SEND_MAX, .stall_ms = stall_ms}};
  srv_start(&s, &o, NULL, stall_open);
  int fd = raw_ws_open(s.port, "", 4096);
  /* Never read again. Wait for the stall to close the connection. */
  WAIT_FOR(atomic_load(&s.ws_closes) != 0, 4 * stall_ms + 5000);
  srv_stop(&s);
  close(fd);
  CHECK_EQ(s.close_reason, SL_CLOSE_STALL);
  CHECK_EQ(s.end.closed_by[SL_CLOSE_STALL], 1);
  CHECK_EQ(s.timeouts, 1); /* the handler saw SL_EV_TIMEOUT first */
  CHECK_EQ(s.send_errors, 0);
  CHECK(s.refusals > 0);
  CHECK(s.sent >= STALL_SEND_MAX / (STALL_MSG + STALL_HDR));
  /* The hard cap holds, and the queue did fill up to it. */
  CHECK_LE(s.max_queued, STALL_SEND_MAX);
  CHECK_GE(s.max_queued, STALL_SEND_MAX - (STALL_MSG + STALL_HDR));
  /* Held: the one shared buffer (counted once however many frames refer
   * to it), one small owned chunk per frame header, and the input buffer
   * that read the upgrade request. Never the queued bytes themselves. */
  CHECK_LE(s.max_held, STALL_MSG + STALL_SEND_MAX / STALL_MSG * 1024 + 16384);
  srv_check_clean(&s);
}

TEST_T(ws_stalled_peer_bounded_then_closed_epoll, 30) { run_stalled(SL_BACKEND_EPOLL); }
TEST_T(ws_stalled_peer_bounded_then_closed_poll, 30) { run_stalled(SL_BACKEND_POLL); }

/* ---- one buffer sent to fifty clients is held once ---- */

enum { FAN_CLIENTS = 50, FAN_LEN = 100000 };

static void fan_send(sl_mgr *m, void *arg) {
  struct srv *s = arg;
  s->shared = sl_buf_new(FAN_LEN);
  unsigned char *p = sl_buf_data(s->shared);
  for (size_t i = 0; i < FAN_LEN; i++) p[i] = (unsigned char)(i * 7 + 3);
  for (int i = 0; i < s->nconns; i++) {
    int rc = sl_ws_send_buf(s->conns[i], SL_WS_BINARY, s->shared, 0, FAN_LEN);
    if (rc) s->send_errors++, s->last_err = rc;
  }
  /* Still queued: nothing is written before the loop's flush phase. */
  sl_mgr_stats_get(m, &s->mid);
  sl_mem_stats_get(&s->mem_mid);
  s->refs_queued = sl_buf_refs(s->shared);
  sl_buf_unref(s->shared); /* the queues keep it alive */
  s->shared = NULL;
  atomic_store(&s->flag, 1);
}

static void fan_after(sl_mgr *m, void *arg) {
  struct srv *s = arg;
  sl_mgr_stats_get(m, &s->after);
  atomic_store(&s->flag, 2);
}

TEST_T(ws_shared_buffer_to_50_clients_is_held_once, 30) {
  struct srv s;
  srv_start(&s, NULL, NULL, NULL);
  int fds[FAN_CLIENTS];
  for (int i = 0; i < FAN_CLIENTS; i++) fds[i] = raw_ws_open(s.port, "", 0);
  WAIT_FOR(atomic_load(&s.opens) >= FAN_CLIENTS, 10000);
  CHECK_EQ(sl_mgr_call(s.m, fan_send, &s), 0);
  srv_wait_flag(&s, 1);
  CHECK_EQ(s.send_errors, 0);
  /* 50 queues refer to it; the manager counts its bytes once. */
  CHECK_EQ(s.refs_queued, FAN_CLIENTS + 1);
  CHECK_EQ(s.mem_mid.nbufs, 1);
  CHECK_EQ(s.mid.out_ref, s.mem_mid.bufs); /* its allocation, header included */
  CHECK(s.mid.out_ref >= FAN_LEN && s.mid.out_ref < FAN_LEN + 64);
  CHECK_EQ(s.mid.queued, FAN_CLIENTS * (FAN_LEN + STALL_HDR));
  CHECK_LE(s.mid.out_owned, FAN_CLIENTS * 1024); /* the 10-byte headers */
  CHECK_EQ(s.mid.held, s.mid.out_ref + s.mid.out_owned + s.mid.in);
  /* Every client gets the whole frame: 127 + a 64-bit length, no mask. */
  static unsigned char got[FAN_LEN + STALL_HDR];
  for (int i = 0; i < FAN_CLIENTS; i++) {
    CHECK_EQ(raw_read(fds[i], got, sizeof(got)), sizeof(got));
    CHECK_MEM(got, "\x82\x7f\0\0\0\0\0\x01\x86\xa0", STALL_HDR);
    for (size_t k = 0; k < FAN_LEN; k++)
      CHECK_MSG(got[STALL_HDR + k] == (unsigned char)(k * 7 + 3), "client %d byte %zu", i, k);
  }
  CHECK_EQ(sl_mgr_call(s.m, fan_after, &s), 0);
  srv_wait_flag(&s, 2);
  CHECK_EQ(s.after.out_ref, 0);
  CHECK_EQ(s.after.queued, 0);
  for (int i = 0; i < FAN_CLIENTS; i++) close(fds[i]);
  srv_stop(&s);
  CHECK_EQ(s.closes, FAN_CLIENTS);
  CHECK_EQ(s.end.closed_by[SL_CLOSE_PEER], FAN_CLIENTS);
  srv_check_clean(&s);
}

/* ---- keepalive: a peer that never answers pings is closed ---- */

TEST_T(ws_keepalive_closes_silent_peer, 30) {
  struct srv s;
  sl_ws_opts wo = {.ping_ms = 200};
  srv_start(&s, NULL, &wo, NULL);
  int fd = raw_ws_open(s.port, "", 0);
  unsigned char got[64];
  /* One empty ping, no close frame, then the connection goes. */
  CHECK_EQ(raw_read_to_eof(fd, got, sizeof(got)), 2);
  CHECK_MEM(got, "\x89\x00", 2);
  close(fd);
  srv_stop(&s);
  CHECK_EQ(s.close_reason, SL_CLOSE_TIMEOUT);
  CHECK_EQ(s.pongs, 0);
  /* The ping goes out one interval after the upgrade and the connection
   * closes one interval after that, never earlier. */
  CHECK_GE(s.close_ms - s.open_ms, 400);
  srv_check_clean(&s);
}

/* ---- keepalive and a full queue ---- */

static void topup_tick(sl_mgr *m, void *arg) {
  static const unsigned char zeros[65536];
  struct srv *s = arg;
  size_t r;
  /* Keep the queue at send_max - topup_slack for topup_ms: with no slack
   * no ping fits, with some a ping waits behind all the rest. */
  if (s->ws == NULL || sl_mgr_now(m) - s->open_ms > s->topup_ms) return;
  while ((r = sl_conn_room(s->ws)) >= 2 + s->topup_slack) {
    r -= s->topup_slack;
    /* Fill exactly: a 2-byte header below 126, a 4-byte one below 64 KiB
     * (128 and 129 fit neither form: send 100 first). */
    size_t n = r - 2 < 126 ? r - 2 : r - 4 < 126 ? 100 : r - 4 < 65536 ? r - 4 : 65535;
    if (sl_ws_send(s->ws, SL_WS_BINARY, zeros, n) != 0) break;
    s->sent++;
  }
}

static void topup_open(struct srv *s, sl_conn *c) {
  if (s->topup_ms == 0) s->topup_ms = 500;
  CHECK_EQ(sl_conn_sockopt(c, SL_OPT_SNDBUF, 8192), 0);
  topup_tick(sl_conn_mgr(c), s);
  s->timer = sl_timer_add(sl_conn_mgr(c), 10, SL_TIMER_REPEAT, topup_tick, s, NULL);
  CHECK(s->timer != NULL);
}

static void topup_open_always(struct srv *s, sl_conn *c) {
  s->topup_ms = UINT64_MAX;
  s->topup_slack = 1024;
  topup_open(s, c);
}

/* Read frames until `until_ms`, answering each ping with its pong, at
 * about `rate` bytes/s of binary payload (0: as fast as they come);
 * returns the pings answered. */
static int answer_pings(int fd, uint64_t until_ms, unsigned rate) {
  int pings = 0;
  while (test_now_ms() < until_ms) {
    struct pollfd pf = {fd, POLLIN, 0};
    if (poll(&pf, 1, 20) != 1) continue;
    unsigned char h[10], payload[125];
    CHECK_EQ(raw_read(fd, h, 2), 2);
    CHECK_EQ(h[1] & 0x80, 0); /* a server never masks */
    unsigned long long len = h[1] & 0x7f;
    if (len == 126) {
      CHECK_EQ(raw_read(fd, h + 2, 2), 2);
      len = (unsigned long long)h[2] << 8 | h[3];
    }
    CHECK(len != 127); /* topup_tick sends frames under 64 KiB */
    if ((h[0] & 0x0f) == SL_WS_PING) {
      CHECK_EQ(raw_read(fd, payload, (size_t)len), (long)len);
      raw_send_frame(fd, 0x80 | SL_WS_PONG, payload, (size_t)len, 1);
      pings++;
      continue;
    }
    CHECK_EQ(h[0], 0x80 | SL_WS_BINARY);
    static unsigned char skip[65536];
    CHECK_EQ(raw_read(fd, skip, (size_t)len), (long)len);
    if (rate) usleep((useconds_t)(len * 1000000u / rate));
  }
  return pings;
}

TEST_T(ws_keepalive_retries_ping_refused_by_full_queue, 30) {
  struct srv s;
  sl_mgr_opts o = {.limits = {.send_max = 64 * 1024}};
  sl_ws_opts wo = {.ping_ms = 200};
  srv_start(&s, &o, &wo, topup_open);
  int fd = raw_ws_open(s.port, "", 4096);
  uint64_t t0 = test_now_ms();
  /* Read nothing for 600 ms: the pings due at 200 and 400 ms find the
   * queue full. Then read everything and answer the pings that come. (A
   * window the test defines, not a wait for a condition.) */
  usleep(600 * 1000);
  int pings = answer_pings(fd, t0 + 1400, 0);
  CHECK_EQ(atomic_load(&s.ws_closes), 0);
  /* Half-close and drain, so no ping in flight turns our close into a
   * reset. */
  shutdown(fd, SHUT_WR);
  unsigned char rest[64];
  raw_read_to_eof(fd, rest, sizeof(rest));
  close(fd);
  srv_stop(&s);
  CHECK(s.sent > 0);
  CHECK(pings >= 2);
  CHECK_EQ(s.pongs, pings);
  CHECK_EQ(s.close_reason, SL_CLOSE_PEER);
  srv_check_clean(&s);
}

TEST_T(ws_keepalive_waits_for_ping_queued_behind_slow_reader, 30) {
  struct srv s;
  sl_mgr_opts o = {.limits = {.send_max = 256 * 1024}};
  sl_ws_opts wo = {.ping_ms = 200};
  srv_start(&s, &o, &wo, topup_open_always);
  int fd = raw_ws_open(s.port, "", 4096);
  uint64_t t0 = test_now_ms();
  /* 800 KB/s drains the 255 KiB ahead of each ping in about 320 ms: every
   * ping sits in the queue longer than an interval, yet the peer answers
   * each one as soon as it arrives (pings at about 200, 720, 1240 and
   * 1760 ms). */
  int pings = answer_pings(fd, t0 + 2000, 800 * 1000);
  CHECK_EQ(atomic_load(&s.ws_closes), 0);
  shutdown(fd, SHUT_WR);
  static unsigned char rest[256 * 1024 + 65536];
  raw_read_to_eof(fd, rest, sizeof(rest));
  close(fd);
  srv_stop(&s);
  CHECK(pings >= 2);
  CHECK_EQ(s.pongs, pings);
  CHECK_EQ(s.close_reason, SL_CLOSE_PEER);
  srv_check_clean(&s);
}
