/*
 * WebSocket (RFC 6455) over a connection: the server upgrade, a client
 * handshake, frame reading through the pure codec (ws_frame.c), message
 * assembly into one buffer bounded by max_message, automatic pongs,
 * keepalive pings, and the closing handshake. Every frame written goes
 * through sl_sendv, so WebSocket traffic obeys send_max and the budget.
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "alloc.h"
#include "base64.h"
#include "http.h"
#include "utf8.h"
#include "wbuf.h"
#include "ws_frame.h"
#include "tls.h"

#define DEFAULT_MAX_MESSAGE (1u << 20)
#define DEFAULT_PING_MS 30000u
#define DEFAULT_CLOSE_TIMEOUT_MS 5000u
#define DEFAULT_HANDSHAKE_MS 10000u

/* WS_LINGER: we failed the connection and sent our close frame; the
 * peer's bytes are read and dropped until it closes (see fail()). */
enum { WS_HANDSHAKE, WS_OPEN, WS_CLOSE_SENT, WS_LINGER, WS_DONE };

struct sl_ws {
  sl_ws_opts opts;
  int client;              /* we mask our frames, the peer must not */
  int state;
  sl_ws_assembler as;
  sl_ws_frame f;
  int in_frame;
  unsigned long long got;  /* payload bytes of the current frame seen */
  unsigned char ctl[SL_WS_MAX_CONTROL];
  size_t ctl_len;
  char *msg;               /* data message being assembled (SL_MEM_IN) */
  size_t msg_len, msg_cap;
  int ping_out;            /* a keepalive ping awaits its pong */
  int ping_late;           /* its deadline passed while it was queued */
  uint64_t ping_end;       /* c->bytes_out once that ping has been written */
  char protocol[64];
  char key[32];            /* client: our Sec-WebSocket-Key */
  char *req;               /* client: the request to send on connect */
  size_t req_len;
};

static int ws_ev(sl_conn *c, int ev, void *ev_data);
static void ws_free(sl_conn *c);
static const struct sl_proto ws_proto = {"ws", ws_ev, ws_free, NULL};

static struct sl_ws *state(const sl_conn *c) {
  return c->proto == &ws_proto ? c->pdata : NULL;
}

static void free_msg(sl_conn *c, struct sl_ws *w) {
  if (w->msg == NULL) return;
  c->mgr->acct.in -= w->msg_cap;
  sl__acct_held(&c->mgr->acct, -(long long)w->msg_cap);
  sl__free(w->msg, w->msg_cap, SL_MEM_IN);
  w->msg = NULL;
  w->msg_cap = w->msg_len = 0;
}

static void ws_free(sl_conn *c) {
  struct sl_ws *w = c->pdata;
  if (w == NULL) return;
  free_msg(c, w);
  if (w->req) sl__free(w->req, w->req_len, SL_MEM_META);
  sl__free(w, sizeof(*w), SL_MEM_META);
  c->pdata = NULL;
}

static struct sl_ws *ws_new(const sl_ws_opts *o, int client) {
  struct sl_ws *w = sl__calloc(sizeof(*w), SL_MEM_META);
  if (w == NULL) return NULL;
  if (o) w->opts = *o;
  if (!w->opts.max_message) w->opts.max_message = DEFAULT_MAX_MESSAGE;
  if (!w->opts.ping_ms) w->opts.ping_ms = DEFAULT_PING_MS;
  if (!w->opts.close_timeout_ms) w->opts.close_timeout_ms = DEFAULT_CLOSE_TIMEOUT_MS;
  if (!w->opts.handshake_timeout_ms) w->opts.handshake_timeout_ms = DEFAULT_HANDSHAKE_MS;
  w->client = client;
  sl__ws_asm_init(&w->as, w->opts.max_message);
  return w;
}

static void fill_random(void *p, size_t n) {
  if (getrandom(p, n, 0) != (ssize_t)n) {
    /* getrandom on Linux does not fail for small sizes once the pool is
     * initialised; keep a defined value anyway. */
    static unsigned x = 2463534242u;
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
      x ^= x << 13, x ^= x >> 17, x ^= x << 5;
      b[i] = (unsigned char)x;
    }
  }
}

/* ---- sending -------------------------------------------------------- */

/* Queue frames as one unit: each item is (fin, opcode, payload), the
 * payload given as parts (copied bytes or shared-buffer references). Client
 * frames are masked into a copy; server payloads are queued as given. */
struct frame_part {
  int fin, opcode;
  const sl_part *pl;
  size_t npl, len;     /* payload parts and their total length */
};

/* Payload parts of one frame; more would need a bigger sl_sendv batch. */
#define WS_MAX_PARTS 8

static int send_frames(sl_conn *c, struct sl_ws *w, const struct frame_part *fp,
                       size_t n) {
  enum { MAXF = 32 };
  unsigned char hdr[MAXF][SL_WS_MAX_HEADER];
  sl_part parts[2 * MAXF] = {{0}};
  unsigned char *masked = NULL;
  size_t total = 0, np = 0, mo = 0, nparts = 0;
  if (n > MAXF) return SL_EINVAL;
  for (size_t i = 0; i < n; i++) {
    if (fp[i].npl > WS_MAX_PARTS) return SL_EINVAL;
    nparts += fp[i].npl;
    total += fp[i].len;
  }
  if (n + nparts > 2 * MAXF) return SL_EINVAL;
  if (w->client && total) {
    masked = sl__alloc(total, SL_MEM_META);
    if (masked == NULL) return SL_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char key[4];
    if (w->client) fill_random(key, 4);
    size_t hl = sl__ws_write_header(hdr[i], fp[i].fin, fp[i].opcode, fp[i].len,
                                    w->client ? key : NULL);
    if (hl == 0) {
      if (masked) sl__free(masked, total, SL_MEM_META);
      return SL_EINVAL;
    }
    parts[np++] = (sl_part){hdr[i], NULL, 0, hl};
    size_t at = 0; /* offset in this frame's payload, for the mask */
    for (size_t j = 0; j < fp[i].npl; j++) {
      const sl_part *q = &fp[i].pl[j];
      if (q->len == 0) continue;
      if (w->client) {
        const unsigned char *src =
            q->buf ? (const unsigned char *)sl_buf_cdata(q->buf) + q->off : q->data;
        memcpy(masked + mo, src, q->len);
        sl__ws_unmask(masked + mo, q->len, key, at);
        parts[np++] = (sl_part){masked + mo, NULL, 0, q->len};
        mo += q->len;
      } else {
        parts[np++] = *q;
      }
      at += q->len;
    }
  }
  int rc = sl_sendv(c, parts, np);
  if (masked) sl__free(masked, total, SL_MEM_META);
  return rc;
}

static int check_send(const sl_conn *c, const struct sl_ws *w, int opcode,
                      const void *data, size_t len) {
  if (w == NULL || w->state != WS_OPEN) return w ? SL_ECLOSING : SL_EINVAL;
  if (opcode != SL_WS_TEXT && opcode != SL_WS_BINARY && opcode != SL_WS_PING &&
      opcode != SL_WS_PONG)
    return SL_EINVAL;
  if (opcode >= SL_WS_PING && len > SL_WS_MAX_CONTROL) return SL_EINVAL;
  if (opcode == SL_WS_TEXT && data && !sl__utf8_valid(data, len)) return SL_EINVAL;
  (void)c;
  return 0;
}

int sl_ws_send(sl_conn *c, int opcode, const void *data, size_t len) {
  struct sl_ws *w = state(c);
  int rc = check_send(c, w, opcode, data, len);
  if (rc) return rc;
  sl_part pl = {data, NULL, 0, len};
  struct frame_part fp = {1, opcode, &pl, 1, len};
  return send_frames(c, w, &fp, 1);
}

int sl_ws_send_buf(sl_conn *c, int opcode, sl_buf *b, size_t off, size_t len) {
  struct sl_ws *w = state(c);
  if (off > sl_buf_len(b) || len > sl_buf_len(b) - off) return SL_ERANGE;
  const unsigned char *p = (const unsigned char *)sl_buf_cdata(b) + off;
  int rc = check_send(c, w, opcode, p, len);
  if (rc) return rc;
  sl_part pl = {NULL, b, off, len};
  struct frame_part fp = {1, opcode, &pl, 1, len};
  return send_frames(c, w, &fp, 1);
}

int sl_ws_sendv(sl_conn *c, int opcode, const sl_part *parts, size_t n) {
  struct sl_ws *w = state(c);
  if (parts == NULL && n) return SL_EINVAL;
  if (opcode != SL_WS_BINARY) {
    /* Text must be valid UTF-8 as a whole: check it joined. */
    if (opcode != SL_WS_TEXT || n != 1 || parts[0].buf) return SL_EINVAL;
  }
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    const sl_part *q = &parts[i];
    if (q->buf && (q->off > sl_buf_len(q->buf) || q->len > sl_buf_len(q->buf) - q->off))
      return SL_ERANGE;
    if (q->len > SIZE_MAX - len) return SL_EINVAL;
    len += q->len;
  }
  int rc = check_send(c, w, opcode, n ? parts[0].data : NULL, n ? parts[0].len : 0);
  if (rc) return rc;
  struct frame_part fp = {1, opcode, parts, n, len};
  return send_frames(c, w, &fp, 1);
}

int sl_ws_send_frag(sl_conn *c, int opcode, const void *data, size_t len,
                    size_t frag) {
  struct sl_ws *w = state(c);
  int rc = check_send(c, w, opcode, data, len);
  if (rc) return rc;
  if (opcode >= SL_WS_PING || frag == 0) return SL_EINVAL;
  struct frame_part fp[32];
  sl_part pl[32];
  size_t n = len ? (len + frag - 1) / frag : 1;
  if (n > 32) return SL_EINVAL;
  for (size_t i = 0; i < n; i++) {
    size_t off = i * frag, l = len - off < frag ? len - off : frag;
    pl[i] = (sl_part){(const char *)data + off, NULL, 0, l};
    fp[i] = (struct frame_part){i == n - 1, i == 0 ? opcode : SL_WS_CONT, &pl[i], 1, l};
  }
  return send_frames(c, w, fp, n);
}

static int send_close(sl_conn *c, struct sl_ws *w, int code, const char *reason,
                      size_t rlen) {
  unsigned char p[SL_WS_MAX_CONTROL];
  size_t n = 0;
  if (code) {
    p[0] = (unsigned char)(code >> 8);
    p[1] = (unsigned char)code;
    n = 2;
    if (rlen > SL_WS_MAX_CONTROL - 2) rlen = SL_WS_MAX_CONTROL - 2;
    if (rlen) memcpy(p + 2, reason, rlen);
    n += rlen;
  }
  sl_part pl = {p, NULL, 0, n};
  struct frame_part fp = {1, SL_WS_CLOSE, &pl, 1, n};
  return send_frames(c, w, &fp, 1);
}

int sl_ws_close(sl_conn *c, int code, const char *reason) {
  struct sl_ws *w = state(c);
  size_t rlen = reason ? strlen(reason) : 0;
  if (w == NULL || w->state != WS_OPEN) return SL_ECLOSING;
  if (code && !sl__ws_close_code_ok(code)) return SL_EINVAL;
  if (rlen > SL_WS_MAX_CONTROL - 2 || (rlen && !sl__utf8_valid(reason, rlen)))
    return SL_EINVAL;
  /* A full queue must not keep us from closing: drop what is queued. */
  int rc = send_close(c, w, code, reason, rlen);
  if (rc) {
    sl_conn_close_with(c, SL_CLOSE_NOW, SL_CLOSE_LOCAL);
    return rc;
  }
  w->state = WS_CLOSE_SENT;
  sl__conn_set_deadline(c, c->mgr->now + w->opts.close_timeout_ms);
  return 0;
}

const char *sl_ws_protocol(const sl_conn *c) {
  const struct sl_ws *w = state(c);
  return w && w->protocol[0] ? w->protocol : NULL;
}

int sl_ws_is_open(const sl_conn *c) {
  const struct sl_ws *w = state(c);
  return w && w->state == WS_OPEN && !sl_conn_is_closing(c);
}

/* ---- receiving ------------------------------------------------------ */

/* The peer broke the protocol: tell it why, then close.
 *
 * The peer is often still sending (a 16 MiB message refused with 1009 from
 * its header), and closing a socket with unread input makes the kernel
 * send an RST. The peer's next write then fails with ECONNRESET, and
 * clients such as Node's `ws` drop the connection without reading the close
 * frame that is waiting in their receive buffer: they report 1006, never
 * the code we sent. So, like an HTTP server's lingering close, we send the
 * close frame, shut our side down once it is written (SL_EV_WRITE below),
 * and drop whatever the peer still sends until it closes too, for at most
 * close_timeout_ms. */
static void fail(sl_conn *c, struct sl_ws *w, int code) {
  free_msg(c, w);
  if (w->state == WS_OPEN && send_close(c, w, code, NULL, 0) == 0) {
    w->state = WS_LINGER;
    sl__conn_note_reason(c, SL_CLOSE_PROTOCOL, 0);
    sl__conn_set_deadline(c, c->mgr->now + w->opts.close_timeout_ms);
    return;
  }
  w->state = WS_DONE;
  sl_conn_close_with(c, SL_CLOSE_FLUSH, SL_CLOSE_PROTOCOL);
}

static int append_msg(sl_conn *c, struct sl_ws *w, const void *p, size_t n) {
  if (w->msg_len + n > w->msg_cap) {
    size_t cap = w->msg_cap ? w->msg_cap : 4096;
    while (cap < w->msg_len + n) cap *= 2;
    if (cap > w->opts.max_message) cap = w->opts.max_message;
    if (cap < w->msg_len + n) return -SL_WS_MESSAGE_TOO_BIG;
    sl_mgr *m = c->mgr;
    if (m->opts.budget && m->acct.held + (cap - w->msg_cap) > m->opts.budget)
      return -SL_WS_MESSAGE_TOO_BIG;
    char *q = sl__realloc(w->msg, w->msg_cap, cap, SL_MEM_IN);
    if (q == NULL) return -SL_WS_INTERNAL_ERROR;
    m->acct.in += cap - w->msg_cap;
    sl__acct_held(&m->acct, (long long)(cap - w->msg_cap));
    w->msg = q;
    w->msg_cap = cap;
  }
  memcpy(w->msg + w->msg_len, p, n);
  w->msg_len += n;
  return 0;
}

/* A data message, whole: `data` is the assembly buffer or, for a message
 * of one frame that arrived whole, the input buffer (see read_frames). */
static void deliver_data(sl_conn *c, struct sl_ws *w, int op, const char *data,
                         size_t len) {
  sl_ws_msg msg = {op, {data ? data : "", len}, 0};
  if (c->fn) c->fn(c, SL_EV_WS_MSG, &msg);
  /* No partial message is pending now: the assembly buffer goes, so a
   * viewer that once sent a message arriving in pieces does not keep it
   * for hours. Messages that arrive whole never use it. */
  free_msg(c, w);
}

static void deliver(sl_conn *c, struct sl_ws *w, int op) {
  sl_ws_msg msg = {op, {NULL, 0}, 0};
  if (op == SL_WS_TEXT || op == SL_WS_BINARY) {
    deliver_data(c, w, op, w->msg, w->msg_len);
    return;
  }
  msg.data.ptr = (const char *)w->ctl;
  msg.data.len = w->ctl_len;
  if (op == SL_WS_CLOSE) {
    const char *reason = "";
    size_t rlen = 0;
    int code = 0;
    int rc = sl__ws_parse_close(w->ctl, w->ctl_len, &code, &reason, &rlen);
    if (rc < 0) {
      fail(c, w, -rc);
      return;
    }
    msg.close_code = code ? code : SL_WS_NO_STATUS;
    msg.data.ptr = reason;
    msg.data.len = rlen;
    if (c->fn) c->fn(c, SL_EV_WS_CTL, &msg);
    if (w->state == WS_OPEN) {
      /* Echo the code (RFC 6455 section 5.5.1), then close once sent. */
      send_close(c, w, code, NULL, 0);
      w->state = WS_DONE;
      sl_conn_close_with(c, SL_CLOSE_FLUSH, SL_CLOSE_PEER);
    } else {
      w->state = WS_DONE;
      sl_conn_close_with(c, SL_CLOSE_FLUSH, SL_CLOSE_LOCAL);
    }
    return;
  }
  if (op == SL_WS_PING && w->state == WS_OPEN) {
    sl_part pl = {w->ctl, NULL, 0, w->ctl_len};
    struct frame_part fp = {1, SL_WS_PONG, &pl, 1, w->ctl_len};
    send_frames(c, w, &fp, 1); /* a full queue drops the pong: harmless */
  }
  if (op == SL_WS_PONG) w->ping_out = w->ping_late = 0;
  if (c->fn) c->fn(c, SL_EV_WS_CTL, &msg);
}

static void read_frames(sl_conn *c, struct sl_ws *w) {
  while (w->state == WS_OPEN || w->state == WS_CLOSE_SENT) {
    if (sl_conn_is_closing(c)) return;
    size_t len = c->in_len - c->in_off;
    unsigned char *p = (unsigned char *)c->in + c->in_off;
    if (!w->in_frame) {
      int rc = sl__ws_parse_header(p, len, !w->client, w->opts.max_message, &w->f);
      if (rc == 0) return;
      if (rc < 0) {
        fail(c, w, -rc);
        return;
      }
      int r2 = sl__ws_asm_on_frame_start(&w->as, &w->f);
      if (r2 < 0) {
        fail(c, w, -r2);
        return;
      }
      if (w->f.fin && (w->f.opcode == SL_WS_TEXT || w->f.opcode == SL_WS_BINARY) &&
          len - (size_t)rc >= w->f.payload_len) {
        /* A whole message of one frame (a viewer's control message, most
         * chat): unmasked in place and handed over from the input buffer,
         * consumed after the handler returns. Nothing is allocated. */
        unsigned char *pl = p + rc;
        size_t n = (size_t)w->f.payload_len;
        int op = 0;
        if (w->f.masked) sl__ws_unmask(pl, n, w->f.mask, 0);
        int r = sl__ws_asm_on_payload(&w->as, pl, n);
        if (r == 0) r = sl__ws_asm_on_frame_end(&w->as, &op);
        if (r < 0) {
          fail(c, w, -r);
          return;
        }
        SL_ASSERT(r == 1 && w->msg_len == 0);
        deliver_data(c, w, op, (const char *)pl, n);
        sl_conn_consume(c, (size_t)rc + n);
        continue;
      }
      sl_conn_consume(c, (size_t)rc);
      w->in_frame = 1;
      w->got = 0;
      w->ctl_len = 0;
    } else {
      unsigned long long want = w->f.payload_len - w->got;
      size_t n = len < want ? len : (size_t)want;
      if (n == 0) return;
      if (w->f.masked) sl__ws_unmask(p, n, w->f.mask, w->got);
      int r = sl__ws_asm_on_payload(&w->as, p, n);
      if (r == 0) {
        if (w->f.opcode >= SL_WS_CLOSE) {
          memcpy(w->ctl + w->ctl_len, p, n);
          w->ctl_len += n;
        } else {
          r = append_msg(c, w, p, n);
        }
      }
      if (r < 0) {
        fail(c, w, -r);
        return;
      }
      sl_conn_consume(c, n);
      w->got += n;
    }
    if (w->in_frame && w->got == w->f.payload_len) {
      int op = 0;
      w->in_frame = 0;
      int r = sl__ws_asm_on_frame_end(&w->as, &op);
      if (r < 0) {
        fail(c, w, -r);
        return;
      }
      if (r == 1) deliver(c, w, op);
    }
  }
}

/* ---- the client handshake ------------------------------------------- */

static void client_handshake(sl_conn *c, struct sl_ws *w) {
  size_t len;
  const char *p = sl_conn_in(c, &len);
  sl_http_limits lim;
  sl_http_msg resp;
  sl__http_limits_default(&lim);
  int rc = sl__http_parse_response(p, len, &lim, &resp);
  if (rc == 0) return;
  char accept[29];
  const sl_str *acc = rc > 0 ? sl__http_header(&resp, "Sec-WebSocket-Accept") : NULL;
  sl__ws_accept_key(w->key, strlen(w->key), accept);
  if (rc < 0 || resp.status != 101 || acc == NULL || acc->len != 28 ||
      memcmp(acc->ptr, accept, 28) != 0) {
    sl__conn_fail(c, SL_CLOSE_ERROR, SL_EWS,
                  rc > 0 && resp.status != 101 ? "WebSocket upgrade refused by server"
                                               : "bad WebSocket handshake response");
    return;
  }
  const sl_str *proto = sl__http_header(&resp, "Sec-WebSocket-Protocol");
  if (proto && proto->len < sizeof(w->protocol)) {
    memcpy(w->protocol, proto->ptr, proto->len);
    w->protocol[proto->len] = '\0';
  }
  w->state = WS_OPEN;
  if (w->opts.ping_ms != UINT32_MAX)
    sl__conn_set_deadline(c, c->mgr->now + w->opts.ping_ms);
  else
    sl__conn_set_deadline(c, 0);
  if (c->fn) c->fn(c, SL_EV_WS_OPEN, &resp);
  sl_conn_consume(c, (size_t)rc);
}

static int ws_ev(sl_conn *c, int ev, void *ev_data) {
  struct sl_ws *w = c->pdata;
  switch (ev) {
    case SL_EV_CONNECT:
      if (w->client && w->req) {
        if (sl_send(c, w->req, w->req_len) != 0)
          sl__conn_fail(c, SL_CLOSE_ERROR, SL_ENOBUFS, "cannot send handshake");
        sl__free(w->req, w->req_len, SL_MEM_META);
        w->req = NULL;
      }
      return 1; /* SL_EV_WS_OPEN is the event that matters */
    case SL_EV_READ:
      if (w->state == WS_HANDSHAKE) client_handshake(c, w);
      if (w->state == WS_OPEN || w->state == WS_CLOSE_SENT) read_frames(c, w);
      if (w->state == WS_LINGER) {
        size_t n;
        sl_conn_in(c, &n);
        sl_conn_consume(c, n);
      }
      return 1;
    case SL_EV_WRITE:
      /* Our close frame is out: FIN tells the peer we are done. */
      if (w->state == WS_LINGER && c->outq.queued == 0 && c->fd >= 0)
        shutdown(c->fd, SHUT_WR);
      if (w->ping_late && c->bytes_out >= w->ping_end) {
        w->ping_late = 0;
        if (w->state == WS_OPEN && w->ping_out)
          sl__conn_set_deadline(c, c->mgr->now + w->opts.ping_ms);
      }
      return 0;
    case SL_EV_TIMEOUT:
      if (*(int *)ev_data != SL_CLOSE_TIMEOUT) return 0;
      if (w->state == WS_OPEN && !w->ping_out && w->opts.ping_ms != UINT32_MAX) {
        struct frame_part fp = {1, SL_WS_PING, NULL, 0, 0};
        /* A ping the full queue refused cannot be answered: try again next
         * interval. A peer that reads nothing at all is the stall
         * timeout's to close. */
        if (send_frames(c, w, &fp, 1) == 0) {
          w->ping_out = 1;
          w->ping_end = c->bytes_out + c->outq.queued;
        }
        sl__conn_set_deadline(c, c->mgr->now + w->opts.ping_ms);
        return 1;
      }
      if (w->state == WS_OPEN && w->ping_out && c->bytes_out < w->ping_end) {
        /* The ping still waits in our queue behind frames for a slow
         * reader: the peer cannot have answered it. Its interval restarts
         * once it is written (SL_EV_WRITE); a peer that takes nothing at
         * all is the stall timeout's to close. */
        w->ping_late = 1;
        sl__conn_set_deadline(c, c->mgr->now + w->opts.ping_ms);
        return 1;
      }
      /* Handshake, pong, closing handshake or lingering close timed out
       * (a failed connection keeps its SL_CLOSE_PROTOCOL reason). */
      w->state = WS_DONE;
      sl_conn_close_with(c, SL_CLOSE_NOW, SL_CLOSE_TIMEOUT);
      return 1;
    default:
      return 0;
  }
}

/* ---- the server upgrade --------------------------------------------- */

static int token_in_list(sl_str list, const char *tok) {
  size_t tl = strlen(tok);
  const char *p = list.ptr, *e = list.ptr + list.len;
  while (p < e) {
    while (p < e && (*p == ' ' || *p == ',' || *p == '\t')) p++;
    const char *s = p;
    while (p < e && *p != ',') p++;
    const char *t = p;
    while (t > s && (t[-1] == ' ' || t[-1] == '\t')) t--;
    if ((size_t)(t - s) == tl && strncasecmp(s, tok, tl) == 0) return 1;
  }
  return 0;
}

int sl_ws_same_origin(const sl_http_msg *m) {
  const sl_str *origin = sl__http_header(m, "Origin");
  const sl_str *host = sl__http_header(m, "Host");
  if (origin == NULL) return 1;
  if (host == NULL) return 0;
  const char *p = origin->ptr;
  size_t n = origin->len;
  if (n > 7 && strncasecmp(p, "http://", 7) == 0) p += 7, n -= 7;
  else if (n > 8 && strncasecmp(p, "https://", 8) == 0) p += 8, n -= 8;
  else return 0;
  return n == host->len && strncasecmp(p, host->ptr, n) == 0;
}

const char *const sl_ws_any_origin[2] = {"*", NULL};

/* Browsers always send Origin, and a WebSocket is not bound by CORS: a
 * page of another site must not get a socket to our streams (cross-site
 * WebSocket hijacking). So without a list only the same origin may, and a
 * list is exact: its pages only ("*" for any), no Origin refused. */
static int origin_allowed(const sl_http_msg *m, const char *const *list) {
  if (list == NULL) return sl_ws_same_origin(m);
  const sl_str *origin = sl__http_header(m, "Origin");
  for (const char *const *o = list; *o; o++) {
    if (strcmp(*o, "*") == 0) return 1;
    if (origin && strlen(*o) == origin->len &&
        strncasecmp(*o, origin->ptr, origin->len) == 0)
      return 1;
  }
  return 0;
}

int sl_ws_upgrade(sl_conn *c, const sl_http_msg *m, const sl_ws_opts *opts) {
  const sl_str *key = sl__http_header(m, "Sec-WebSocket-Key");
  const sl_str *ver = sl__http_header(m, "Sec-WebSocket-Version");
  char accept[29];
  if (c->proto != &sl__http_proto) return SL_EINVAL;
  if (!sl_http_is_method(m, "GET") || !m->upgrade_websocket || m->version_minor != 1) {
    sl_http_reply(c, 426, "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Content-Type: text/plain\r\n", "426 Upgrade Required\n", 21);
    return SL_EWS;
  }
  if (ver == NULL || ver->len != 2 || memcmp(ver->ptr, "13", 2) != 0) {
    sl_http_reply(c, 426, "Sec-WebSocket-Version: 13\r\nContent-Type: text/plain\r\n",
                  "426 Upgrade Required\n", 21);
    return SL_EWS;
  }
  if (key == NULL || sl__ws_accept_key(key->ptr, key->len, accept) != 0) {
    sl_http_reply_status(c, 400);
    return SL_EWS;
  }
  if (!origin_allowed(m, opts ? opts->origins : NULL)) {
    sl_http_reply_status(c, 403);
    return SL_EWS;
  }
  struct sl_ws *w = ws_new(opts, 0);
  if (w == NULL) return SL_ENOMEM;
  char hdr[256];
  const sl_str *want = sl__http_header(m, "Sec-WebSocket-Protocol");
  if (want && opts && opts->protocols)
    for (const char *const *p = opts->protocols; *p && !w->protocol[0]; p++)
      if (strlen(*p) < sizeof(w->protocol) && token_in_list(*want, *p))
        snprintf(w->protocol, sizeof(w->protocol), "%s", *p);
  sl__wbuf wb;
  sl__wbuf_init(&wb, hdr, sizeof(hdr));
  sl__wbuf_printf(&wb,
                  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n", accept);
  if (w->protocol[0]) sl__wbuf_printf(&wb, "Sec-WebSocket-Protocol: %s\r\n", w->protocol);
  sl__wbuf_add(&wb, "\r\n", 2);
  int rc = sl__wbuf_done(&wb);
  if (rc == 0) rc = sl_send(c, hdr, wb.len);
  if (rc) {
    sl__free(w, sizeof(*w), SL_MEM_META);
    return rc;
  }
  /* The HTTP state goes; http.c notices the protocol change when the
   * handler returns and hands any bytes after the request to us. */
  sl_conn_set_busy(c, 0);
  sl__conn_set_proto(c, &ws_proto, w);
  w->state = WS_OPEN;
  sl__conn_set_deadline(c, w->opts.ping_ms != UINT32_MAX ? c->mgr->now + w->opts.ping_ms : 0);
  if (c->fn) c->fn(c, SL_EV_WS_OPEN, (void *)m);
  return 0;
}

sl_conn *sl_ws_connect(sl_mgr *m, const char *url, const sl_ws_opts *opts,
                       sl_handler fn, void *data, int *err) {
  char host[256];
  uint16_t port;
  const char *path;
  int tls;
  if (sl__parse_url(url, host, sizeof(host), &port, &path, &tls) != 0 ||
      (strncasecmp(url, "ws://", 5) != 0 && strncasecmp(url, "wss://", 6) != 0)) {
    if (err) *err = SL_EURL;
    return NULL;
  }
  sl_tls_ctx *ctx = NULL;
  if (tls) {
    int rc = 0;
    ctx = opts && opts->tls ? opts->tls : sl__tls_default_client(m, &rc);
    if (ctx == NULL || sl__tls_server_ok(ctx) != SL_EINVAL) {
      /* No TLS in the library, or a server context. */
      if (err) *err = ctx ? SL_EINVAL : rc;
      return NULL;
    }
  }
  struct sl_ws *w = ws_new(opts, 1);
  if (w == NULL) {
    if (err) *err = SL_ENOMEM;
    return NULL;
  }
  unsigned char nonce[16];
  fill_random(nonce, sizeof(nonce));
  sl__base64_encode(nonce, sizeof(nonce), w->key);
  char req[2048];
  int hostv6 = strchr(host, ':') != NULL;
  sl__wbuf wb;
  sl__wbuf_init(&wb, req, sizeof(req));
  sl__wbuf_printf(&wb,
                  "GET %s HTTP/1.1\r\nHost: %s%s%s:%u\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                  "Sec-WebSocket-Version: 13\r\n",
                  path, hostv6 ? "[" : "", host, hostv6 ? "]" : "", port, w->key);
  if (opts && opts->protocols && opts->protocols[0]) {
    sl__wbuf_printf(&wb, "Sec-WebSocket-Protocol: ");
    for (const char *const *p = opts->protocols; *p; p++)
      sl__wbuf_printf(&wb, "%s%s", *p, p[1] ? ", " : "");
    sl__wbuf_add(&wb, "\r\n", 2);
  }
  sl__wbuf_printf(&wb, "%s\r\n", opts && opts->headers ? opts->headers : "");
  int wrc = sl__wbuf_done(&wb);
  if (wrc || (w->req = sl__alloc(wb.len, SL_MEM_META)) == NULL) {
    sl__free(w, sizeof(*w), SL_MEM_META);
    if (err) *err = wrc ? wrc : SL_ENOMEM;
    return NULL;
  }
  memcpy(w->req, req, wb.len);
  w->req_len = wb.len;
  sl_conn *c = sl_connect(m, url, fn, data, err);
  if (c == NULL) {
    sl__free(w->req, w->req_len, SL_MEM_META);
    sl__free(w, sizeof(*w), SL_MEM_META);
    return NULL;
  }
  sl__conn_set_proto(c, &ws_proto, w);
  /* wss://: the handshake request waits in the queue until TLS is up. A
   * connection that already failed reports it at its close. */
  int rc = ctx && !sl__conn_closing(c) ? sl_conn_tls(c, ctx, host) : 0;
  if (rc) {
    c->fn = NULL;
    c->data = NULL;
    sl_conn_close_with(c, SL_CLOSE_NOW, SL_CLOSE_LOCAL);
    if (err) *err = rc;
    return NULL;
  }
  sl__conn_set_deadline(c, m->now + w->opts.handshake_timeout_ms);
  return c;
}
