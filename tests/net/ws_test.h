/*
 * Helpers shared by the WebSocket integration tests (test_ws.c,
 * test_ws_interop.c, implemented in test_ws_util.c):
 *
 * - a sluice WebSocket server whose manager runs on a thread of its own.
 *   Only that thread touches the manager; it records what happened in
 *   `struct srv`, and the test reads the record after srv_stop() joined it
 *   (or, mid-test, after an atomic flag the loop thread set);
 * - a raw client socket that speaks just enough WebSocket to send frames
 *   byte for byte, masked or not;
 * - a runner for the node scripts in tests/node (the npm `ws` package).
 *
 * Dialing, WAIT_FOR, test_slowdown and fnv1a are in tests/common.h.
 */
#ifndef SL_WS_TEST_H
#define SL_WS_TEST_H

#include <stdatomic.h>
#include <pthread.h>
#include <sys/types.h>
#include <unistd.h>

#include "common.h"
#include "sluice.h"

#define SRV_MAX_CONNS 64

struct srv;
typedef void (*srv_open_fn)(struct srv *s, sl_conn *c);

struct srv {
  /* Set by srv_start, read-only afterwards. */
  sl_mgr_opts mo;
  sl_ws_opts wo;
  const char *protocols[4], *origins[4];
  srv_open_fn on_open;   /* extra work at SL_EV_WS_OPEN, on the loop thread */
  pthread_t th;
  sl_mgr *m;             /* for sl_mgr_call from the test thread only */
  int port;

  /* Shared with the test thread while it runs. */
  atomic_int ready, stop, opens, ws_closes, flag;

  /* Written by the loop thread only. */
  sl_conn *ws;                   /* the last WebSocket opened, until closed */
  sl_conn *conns[SRV_MAX_CONNS]; /* every WebSocket opened */
  int nconns;
  int upgrade_refused;           /* sl_ws_upgrade returned an error */
  int msgs, pings, pongs, timeouts, closes;
  size_t bytes[3];               /* message payload bytes by opcode */
  char last_text[256], ping_data[128], pong_data[128], protocol[64];
  int close_code;                /* the peer's close frame */
  char close_text[128];
  int close_rc;                  /* sl_ws_close for "close-me" */
  int close_reason;              /* of the last WebSocket that closed */
  uint64_t open_ms, close_ms;    /* manager clock */
  /* For the send-path tests. */
  sl_buf *shared;
  sl_timer *timer;
  int sent, refusals, send_errors, last_err, refs_queued;
  uint64_t topup_ms;             /* keep the queue full this long, */
  size_t topup_slack;            /* but for this many bytes */
  size_t max_queued, max_held;
  sl_mgr_stats mid, after;
  sl_mem_stats mem_mid;

  /* Recorded by the loop thread once every connection but the listener is
   * gone, just before it frees the manager; then the process totals. */
  sl_mgr_stats end;
  sl_mem_stats mem_after_free;
};

/* Start a server on 127.0.0.1 (ephemeral port, in s->port) that upgrades
 * GET /ws with `wo` (NULL: defaults; the arrays are copied into `s`) and
 * echoes every message; "close-me" is answered by sl_ws_close(c, 4001,
 * "bye") and "ping-me" by a ping "srv", whose pong is acknowledged with the
 * text "pong-seen srv". `mo` may be NULL. Returns once it listens. */
void srv_start(struct srv *s, const sl_mgr_opts *mo, const sl_ws_opts *wo,
               srv_open_fn on_open);
/* Stop the loop (after the connections have closed, within 3 s), free
 * the manager and join the thread. */
void srv_stop(struct srv *s);
/* Every connection closed, counters back to zero, and nothing held by the
 * library after the manager was freed. */
void srv_check_clean(const struct srv *s);
/* Wait until s->flag == v (5 s at most). */
void srv_wait_flag(struct srv *s, int v);

/* Connect and upgrade GET /ws with `extra` header lines; checks the 101
 * and its Sec-WebSocket-Accept, and reads nothing past the head. */
int raw_ws_open(int port, const char *extra, int rcvbuf);
/* Send all `n` bytes (blocking). */
void raw_send_all(int fd, const void *p, size_t n);
/* Send one frame: first byte `b0` (FIN|opcode), `n` < 65536 payload
 * bytes, masked with a fixed key when `mask` is 1. */
void raw_send_frame(int fd, int b0, const void *payload, size_t n, int mask);
/* Read exactly `n` bytes; returns n, or what came before EOF/timeout. */
long raw_read(int fd, void *buf, size_t n);
/* Read until EOF (or a reset); fails the test on a timeout. */
long raw_read_to_eof(int fd, void *buf, size_t cap);

/* A node script of tests/node running as a child, its stdout on a pipe. */
struct node {
  pid_t pid;
  int fd;
  char out[16384];
  size_t len;
};
/* Skip (or, under CI=true, fail) when node or tests/node/node_modules/ws
 * is missing. */
void node_require(void);
/* Start `node tests/node/SCRIPT ARGS...` (up to 3 args, NULL-terminated). */
void node_start(struct node *n, const char *script, const char *a1,
                const char *a2, const char *a3);
/* Read stdout up to the first newline (10 s at most) and copy that line,
 * without it, to `line`; n->out keeps everything. */
void node_first_line(struct node *n, char *line, size_t cap);
/* Read stdout to EOF, reap the child and check it exited 0. */
void node_finish(struct node *n);
/* Run a scenario of ws_client.js against ws://127.0.0.1:PORT/ws and
 * check its whole output is `want`. */
void node_client_expect(int port, const char *scenario, const char *arg,
                        const char *want);

#endif
