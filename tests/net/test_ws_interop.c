/*
 * WebSocket interoperability with the npm `ws` package (tests/node/), on
 * 127.0.0.1: `ws` as the client of a sluice server (running on a thread of
 * its own, see ws_test.h), and `ws` as the server of sluice's client. Each
 * node script prints what it observed; the tests compare that output as a
 * whole and check what the sluice side recorded, then that everything was
 * freed. Outside CI the tests skip when node or node_modules/ws is missing
 * (scripts/deps.sh installs both); under CI=true they fail instead.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ws_test.h"

#define SIZES_SUM (0 + 125 + 126 + 65535 + 65536 + (1 << 20))

/* ---- ws as the client ---- */

TEST_T(ws_interop_echo_every_length_form, 30) {
  node_require();
  struct srv s;
  srv_start(&s, NULL, NULL, NULL);
  /* 125/126 and 65535/65536 straddle the 7-, 16- and 64-bit length forms;
   * 1 MiB is max_message exactly, which is still accepted. */
  node_client_expect(s.port, "echo", NULL,
                     "text 0 ok\nbinary 0 ok\ntext 125 ok\nbinary 125 ok\n"
                     "text 126 ok\nbinary 126 ok\ntext 65535 ok\nbinary 65535 ok\n"
                     "text 65536 ok\nbinary 65536 ok\n"
                     "text 1048576 ok\nbinary 1048576 ok\nclose 1000 \n");
  srv_stop(&s);
  CHECK_EQ(s.msgs, 12);
  CHECK_EQ(s.bytes[SL_WS_TEXT], SIZES_SUM);
  CHECK_EQ(s.bytes[SL_WS_BINARY], SIZES_SUM);
  CHECK_EQ(s.send_errors, 0);
  CHECK_EQ(s.close_code, 1000);
  CHECK_STR(s.close_text, "done");
  CHECK_EQ(s.close_reason, SL_CLOSE_PEER);
  srv_check_clean(&s);
}

TEST_T(ws_interop_fragmented_client_messages, 30) {
  node_require();
  struct srv s;
  srv_start(&s, NULL, NULL, NULL);
  /* Four text fragments with the euro sign split between two of them,
   * then a binary message in two fragments: one message each. */
  node_client_expect(s.port, "frag", NULL,
                     "text Hello, \xe2\x82\xac fragmented\nbinary 70000 ok\nclose 1000 \n");
  srv_stop(&s);
  CHECK_EQ(s.msgs, 2);
  CHECK_EQ(s.bytes[SL_WS_TEXT], 21);
  CHECK_EQ(s.bytes[SL_WS_BINARY], 70000);
  CHECK_STR(s.last_text, "Hello, \xe2\x82\xac fragmented");
  srv_check_clean(&s);
}

TEST_T(ws_interop_pings_both_ways, 30) {
  node_require();
  struct srv s;
  srv_start(&s, NULL, NULL, NULL);
  /* ws pings "hello" and gets our automatic pong; then we ping "srv" and
   * ws answers by itself ("pong-seen" is sent when our handler sees it). */
  node_client_expect(s.port, "ping", NULL,
                     "pong hello\nping srv\ntext pong-seen srv\nclose 1000 \n");
  srv_stop(&s);
  CHECK_EQ(s.pings, 1);
  CHECK_STR(s.ping_data, "hello");
  CHECK_EQ(s.pongs, 1);
  CHECK_STR(s.pong_data, "srv");
  CHECK_EQ(s.msgs, 1);
  CHECK_STR(s.last_text, "ping-me");
  CHECK_EQ(s.send_errors, 0);
  srv_check_clean(&s);
}

TEST_T(ws_interop_server_closes_4001, 30) {
  node_require();
  struct srv s;
  srv_start(&s, NULL, NULL, NULL);
  node_client_expect(s.port, "server-close", NULL, "close 4001 bye\n");
  srv_stop(&s);
  CHECK_EQ(s.close_rc, 0);
  /* ws echoed our code and reason; we started the close. */
  CHECK_EQ(s.close_code, 4001);
  CHECK_STR(s.close_text, "bye");
  CHECK_EQ(s.close_reason, SL_CLOSE_LOCAL);
  srv_check_clean(&s);
}

TEST_T(ws_interop_client_closes_4002, 30) {
  node_require();
  struct srv s;
  srv_start(&s, NULL, NULL, NULL);
  /* We echo the code without the reason (RFC 6455 section 5.5.1). */
  node_client_expect(s.port, "client-close", NULL, "close 4002 \n");
  srv_stop(&s);
  CHECK_EQ(s.close_code, 4002);
  CHECK_STR(s.close_text, "ciao");
  CHECK_EQ(s.close_reason, SL_CLOSE_PEER);
  CHECK_EQ(s.msgs, 0);
  srv_check_clean(&s);
}

TEST_T(ws_interop_16mb_message_closed_1009, 30) {
  node_require();
  struct srv s;
  srv_start(&s, NULL, NULL, NULL);
  /* Refused from its header, before any of its 16 MiB is buffered. */
  node_client_expect(s.port, "big", NULL, "close 1009 \n");
  srv_stop(&s);
  CHECK_EQ(s.msgs, 0);
  CHECK_EQ(s.close_reason, SL_CLOSE_PROTOCOL);
  CHECK_EQ(s.end.closed_by[SL_CLOSE_PROTOCOL], 1);
  srv_check_clean(&s);
}

TEST_T(ws_interop_subprotocol_by_server_preference, 30) {
  node_require();
  static const char *const protos[] = {"chat", "superchat", NULL};
  sl_ws_opts wo = {.protocols = protos};
  struct srv s;
  srv_start(&s, NULL, &wo, NULL);
  /* The client lists superchat first; our preference order wins. */
  node_client_expect(s.port, "proto", "superchat,chat", "protocol chat\nclose 1000 \n");
  srv_stop(&s);
  CHECK_STR(s.protocol, "chat");
  srv_check_clean(&s);
}

TEST_T(ws_interop_foreign_origin_gets_403, 30) {
  node_require();
  static const char *const origins[] = {"http://app.example", NULL};
  sl_ws_opts wo = {.origins = origins};
  struct srv s;
  srv_start(&s, NULL, &wo, NULL);
  node_client_expect(s.port, "origin", "http://evil.example", "status 403\n");
  node_client_expect(s.port, "origin", "http://app.example", "open\nclose 1000\n");
  /* No Origin at all (not a browser) is refused too once a list is set. */
  int fd = test_connect(s.port, 0);
  static const char req[] = "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
  CHECK_EQ(send(fd, req, sizeof(req) - 1, 0), (long)sizeof(req) - 1);
  /* The refusal is an ordinary response: the connection stays open. */
  char resp[1024] = {0};
  size_t len = 0;
  while (len < 16 || strcmp(resp + len - 16, "\r\n403 Forbidden\n") != 0) {
    long r = recv(fd, resp + len, sizeof(resp) - 1 - len, 0);
    CHECK_MSG(r > 0, "response so far: %s", resp);
    len += (size_t)r;
  }
  CHECK_MSG(strncmp(resp, "HTTP/1.1 403 Forbidden\r\n", 24) == 0, "%s", resp);
  close(fd);
  srv_stop(&s);
  CHECK_EQ(s.upgrade_refused, 2);
  CHECK_EQ(atomic_load(&s.opens), 1);
  srv_check_clean(&s);
}

TEST_T(ws_interop_keepalive_keeps_answering_client, 30) {
  node_require();
  /* 400 ms leaves room for a loaded CI machine: a pong must come back
   * within one interval. */
  sl_ws_opts wo = {.ping_ms = 400};
  struct srv s;
  srv_start(&s, NULL, &wo, NULL);
  /* ws answers every ping by itself: open for 2 s at five intervals. */
  node_client_expect(s.port, "idle", "2000", "pings >=3\nclose 1000 \n");
  srv_stop(&s);
  CHECK(s.pongs >= 3);
  CHECK_EQ(s.close_code, 1000);
  CHECK_EQ(s.close_reason, SL_CLOSE_PEER);
  CHECK_EQ(s.end.closed_by[SL_CLOSE_TIMEOUT], 0);
  srv_check_clean(&s);
}

/* ---- ws as the server, sluice as the client ---- */

struct cli {
  int status, sends_failed, hello, bin, pong_seen, pong, closes, close_code;
  int close_reason, err, ws_close_rc, srv_close;
  char protocol[32], close_text[64], error[128];
};
static unsigned char cli_bin[70000];

static int text_is(const sl_ws_msg *wm, const char *s) {
  return wm->opcode == SL_WS_TEXT && wm->data.len == strlen(s) &&
         memcmp(wm->data.ptr, s, wm->data.len) == 0;
}

static void cli_ev(sl_conn *c, int ev, void *ev_data) {
  struct cli *k = sl_conn_data(c);
  const sl_ws_msg *wm = ev_data;
  switch (ev) {
    case SL_EV_WS_OPEN: {
      const sl_http_msg *resp = ev_data;
      const char *p = sl_ws_protocol(c);
      k->status = resp->status;
      snprintf(k->protocol, sizeof(k->protocol), "%s", p ? p : "-");
      if (k->srv_close) {
        k->sends_failed += sl_ws_send(c, SL_WS_TEXT, "close-me", 8) != 0;
        break;
      }
      /* 16-bit and 64-bit lengths on the way back; all masked. */
      k->sends_failed += sl_ws_send(c, SL_WS_TEXT, "hello", 5) != 0;
      k->sends_failed += sl_ws_send(c, SL_WS_BINARY, cli_bin, sizeof(cli_bin)) != 0;
      k->sends_failed += sl_ws_send(c, SL_WS_TEXT, "ping-me", 7) != 0;
      k->sends_failed += sl_ws_send(c, SL_WS_PING, "cli", 3) != 0;
      break;
    }
    case SL_EV_WS_MSG:
      if (text_is(wm, "hello")) k->hello++;
      else if (text_is(wm, "pong-seen srv")) k->pong_seen++;
      else if (wm->opcode == SL_WS_BINARY && wm->data.len == sizeof(cli_bin) &&
               memcmp(wm->data.ptr, cli_bin, sizeof(cli_bin)) == 0)
        k->bin++;
      break;
    case SL_EV_WS_CTL:
      if (wm->opcode == SL_WS_PONG && wm->data.len == 3 && memcmp(wm->data.ptr, "cli", 3) == 0)
        k->pong++;
      if (wm->opcode == SL_WS_CLOSE) {
        k->close_code = wm->close_code;
        snprintf(k->close_text, sizeof(k->close_text), "%.*s", (int)wm->data.len, wm->data.ptr);
      }
      break;
    case SL_EV_ERROR: snprintf(k->error, sizeof(k->error), "%s", (const char *)ev_data); break;
    case SL_EV_CLOSE:
      k->closes++;
      k->close_reason = sl_conn_close_reason(c);
      k->err = sl_conn_error(c);
      break;
  }
  /* Everything came back: close with a code of our own. */
  if (ev == SL_EV_WS_MSG || ev == SL_EV_WS_CTL)
    if (k->hello && k->bin && k->pong_seen && k->pong && sl_ws_is_open(c))
      k->ws_close_rc = sl_ws_close(c, 4003, "done");
}

static void run_client(struct cli *k, const char *want_fmt) {
  struct node n;
  char line[64], url[128], want[1024];
  for (size_t i = 0; i < sizeof(cli_bin); i++) cli_bin[i] = (unsigned char)(i * 13 + 5);
  node_start(&n, "ws_server.js", NULL, NULL, NULL);
  int port = 0;
  node_first_line(&n, line, sizeof(line));
  CHECK_MSG(sscanf(line, "port %d", &port) == 1, "ws_server.js said: %s", line);
  sl_mgr *m = sl_mgr_new(NULL, NULL);
  static const char *const protos[] = {"chat", NULL};
  sl_ws_opts wo = {.protocols = protos, .headers = "X-Test: yes\r\n"};
  snprintf(url, sizeof(url), "ws://127.0.0.1:%d/chat?room=1", port);
  int err = 0;
  sl_conn *c = sl_ws_connect(m, url, &wo, cli_ev, k, &err);
  CHECK_MSG(c != NULL, "sl_ws_connect: %s", sl_strerror(err));
  uint64_t t0 = test_now_ms();
  while (!k->closes && test_now_ms() - t0 < 10000) sl_mgr_poll(m, 10);
  CHECK_MSG(k->closes == 1, "client did not close; error: %s", k->error);
  node_finish(&n);
  snprintf(want, sizeof(want), want_fmt, port, fnv1a(cli_bin, sizeof(cli_bin)));
  CHECK_MSG(strcmp(n.out, want) == 0, "ws_server.js printed:\n%s\nwanted:\n%s", n.out, want);
  CHECK_EQ(k->status, 101);
  CHECK_STR(k->protocol, "chat");
  CHECK_EQ(k->sends_failed, 0);
  CHECK_STR(k->error, "");
  sl_mgr_stats st;
  sl_mgr_stats_get(m, &st);
  CHECK_EQ(st.conns, 0);
  CHECK_MGR_FREE_CLEAN(m);
}

TEST_T(ws_interop_client_against_ws_server, 30) {
  node_require();
  struct cli k = {0};
  /* ws fails unmasked client frames with 1002 (see the next test), so
   * every message it reports was masked. */
  run_client(&k, "port %d\nrequest /chat?room=1 protocol=chat x-test=yes\n"
                 "text hello\nbinary 70000 %08x\ntext ping-me\nping cli\n"
                 "pong srv\nclose 4003 done\n");
  CHECK_EQ(k.hello, 1);
  CHECK_EQ(k.bin, 1);
  CHECK_EQ(k.pong_seen, 1);
  CHECK_EQ(k.pong, 1);
  CHECK_EQ(k.ws_close_rc, 0);
  CHECK_EQ(k.close_code, 4003); /* ws echoed code and reason */
  CHECK_STR(k.close_text, "done");
  CHECK_EQ(k.close_reason, SL_CLOSE_LOCAL);
  CHECK_EQ(k.err, 0);
}

TEST_T(ws_interop_ws_server_closes_client_4004, 30) {
  node_require();
  struct cli k = {.srv_close = 1};
  run_client(&k, "port %d\nrequest /chat?room=1 protocol=chat x-test=yes\n"
                 "text close-me\nclose 4004 \n");
  CHECK_EQ(k.close_code, 4004);
  CHECK_STR(k.close_text, "srv-bye");
  CHECK_EQ(k.close_reason, SL_CLOSE_PEER);
}

TEST_T(ws_interop_ws_server_rejects_unmasked_frame, 30) {
  node_require();
  /* The premise of the masking check above: ws refuses an unmasked client
   * frame with 1002. */
  struct node n;
  char line[64];
  int port = 0;
  node_start(&n, "ws_server.js", NULL, NULL, NULL);
  node_first_line(&n, line, sizeof(line));
  CHECK_EQ(sscanf(line, "port %d", &port), 1);
  int fd = raw_ws_open(port, "", 0);
  raw_send_frame(fd, 0x81, "hi", 2, 0);
  unsigned char got[4];
  CHECK_EQ(raw_read(fd, got, 4), 4);
  CHECK_MEM(got, "\x88\x02\x03\xea", 4);
  close(fd);
  node_finish(&n);
  char want[256];
  snprintf(want, sizeof(want), "%s\nrequest /ws protocol=- x-test=-\n"
           "error WS_ERR_EXPECTED_MASK\nclose 1006 \n", line);
  CHECK_STR(n.out, want);
}
