/*
 * Connections: the lifecycle, the bounded send path, reading into a bounded
 * input buffer, watermarks, idle/stall deadlines, and closing. See
 * DESIGN.md, "Send path semantics": every rule there is implemented here.
 *
 * THE LIFECYCLE (read this first). c->state is one of enum sl_state, moved
 * only by sl__conn_set_state, which asserts each move against the table
 * `legal` below and keeps the SL_F_STATE_BITS mirror in c->flags:
 *
 *   NEW ──────────────┬─────────────┬──────────────► OPEN ──► DRAINING
 *    │ sl_connect     │ accept with  │ announce        │ close   │ output
 *    ▼                │ a handshake  │                 │ FLUSH   │ flushed
 *   RESOLVING ─► CONNECTING ─► HANDSHAKE ─► (announce) │         ▼
 *                                                      └────► CLOSING ─► CLOSED
 *   any state before CLOSING ──(close, failure, timeout)──► CLOSING
 *   NEW ──(refused at accept: never seen by the application)──► CLOSED
 *
 *   NEW         created; SL_EV_OPEN runs here. A listener stays NEW until
 *               sl_listen delivers OPEN, then is OPEN for its life.
 *   RESOLVING   sl_connect with a host name; resolve.c moves it on.
 *   CONNECTING  TCP connect in flight (loop.c on_connected moves it on).
 *   HANDSHAKE   the transport (struct sl_io.handshake) talks alone: the
 *               queue waits, connect_deadline bounds it, the transport
 *               ends it with sl__conn_announce.
 *   OPEN        announced: SL_EV_ACCEPT or SL_EV_CONNECT delivered.
 *   DRAINING    close after flush (SL_CLOSE_FLUSH, or a FIN with output
 *               queued): no more sends, no reads, CLOSING once empty.
 *   CLOSING     on m->closing; the loop frees it at the reap.
 *   CLOSED      inside sl__conn_free: SL_EV_CLOSE delivered.
 *
 * Who moves what: loop.c (accept, connect, reap), resolve.c (RESOLVING to
 * CONNECTING), the transport (HANDSHAKE to OPEN through announce), and this
 * file (everything towards CLOSED). Protocols and applications only ask:
 * sl_conn_close*, sl__conn_fail. "Announce" (the one place SL_EV_ACCEPT and
 * SL_EV_CONNECT are delivered) is sl__conn_announce; the close-reason rule
 * is sl__conn_note_reason. Which events may fire inside which calls is
 * written once in sluice.h, beside the event list.
 *
 * Invariants asserted in debug builds: legal transitions; between
 * SL_EV_FULL and SL_EV_DRAIN the balance is 0 or 1 (DRAIN only after FULL);
 * the output queue's counters add up (outq.c).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "internal.h"

void sl__call(sl_conn *c, int ev, void *ev_data) {
  if (c->tap) c->tap(c, ev, ev_data, c->tap_arg);
  if (c->proto && c->proto->ev && c->proto->ev(c, ev, ev_data)) return;
  if (c->fn) c->fn(c, ev, ev_data);
}

#ifdef SL_DEBUG_ASSERTS
void sl__assert_fail(const char *cond, const char *file, int line) {
  sl_log(SL_LOG_ERROR, "assertion failed: %s (%s:%d)", cond, file, line);
  fprintf(stderr, "sluice: assertion failed: %s (%s:%d)\n", cond, file, line);
  abort();
}
#endif

/* ---- the lifecycle --------------------------------------------------- */

#ifdef SL_DEBUG_ASSERTS
#define B(s) (1u << SL_ST_##s)
/* legal[from]: the states `from` may move to (checked in debug builds). */
static const unsigned legal[SL_ST_COUNT] = {
  [SL_ST_NEW] = B(RESOLVING) | B(CONNECTING) | B(HANDSHAKE) | B(OPEN) |
                B(DRAINING) | B(CLOSING) | B(CLOSED),
  [SL_ST_RESOLVING] = B(CONNECTING) | B(CLOSING),
  [SL_ST_CONNECTING] = B(HANDSHAKE) | B(OPEN) | B(CLOSING),
  [SL_ST_HANDSHAKE] = B(OPEN) | B(CLOSING),
  [SL_ST_OPEN] = B(DRAINING) | B(CLOSING),
  [SL_ST_DRAINING] = B(CLOSING),
  [SL_ST_CLOSING] = B(CLOSED),
  [SL_ST_CLOSED] = 0,
};
#undef B
#endif

/* The flag bits each state shows (see SL_F_STATE_BITS). */
static const unsigned state_bits[SL_ST_COUNT] = {
  [SL_ST_RESOLVING] = SL_F_RESOLVING,
  [SL_ST_CONNECTING] = SL_F_CONNECTING,
  [SL_ST_HANDSHAKE] = SL_F_HANDSHAKE,
  [SL_ST_DRAINING] = SL_F_FLUSHING,
  [SL_ST_CLOSING] = SL_F_CLOSING,
  [SL_ST_CLOSED] = SL_F_CLOSING,
};

void sl__conn_set_state(sl_conn *c, enum sl_state to) {
#ifdef SL_DEBUG_ASSERTS
  SL_ASSERT(to < SL_ST_COUNT && (legal[c->state] & (1u << to)));
#endif
  SL_ASSERT((c->flags & SL_F_STATE_BITS) == state_bits[c->state]);
  c->state = to;
  c->flags = (c->flags & ~(unsigned)SL_F_STATE_BITS) | state_bits[to];
}

void sl__conn_note_reason(sl_conn *c, int reason, int failure) {
  if (!c->close_reason || (failure && c->close_reason == SL_CLOSE_PEER))
    c->close_reason = reason;
}

void sl__conn_announce(sl_conn *c) {
  SL_ASSERT(!(c->flags & SL_F_ANNOUNCED) && !(c->flags & SL_F_LISTENER));
  /* A connection that began draining in its SL_EV_OPEN handler is still
   * announced (it is up), but stays DRAINING. */
  if (c->state != SL_ST_DRAINING) sl__conn_set_state(c, SL_ST_OPEN);
  c->flags |= SL_F_ANNOUNCED;
  /* The idle and stall clocks of bytes queued meanwhile start now. */
  c->last_io_ms = c->last_progress_ms = c->mgr->now;
  c->credit = 0;
  sl__conn_update_interest(c);
  sl__call(c, (c->flags & SL_F_CLIENT) ? SL_EV_CONNECT : SL_EV_ACCEPT, NULL);
  if (c->flags & SL_F_CLOSING) return;
  sl__conn_update_interest(c);
  if (sl__conn_has_output(c)) sl__conn_mark_dirty(c);
  sl__conn_rearm(c);
}

/* ---- the default transport: plain TCP -------------------------------- */

/* MSG_NOSIGNAL: a peer that closed never raises SIGPIPE. */
static ssize_t tcp_writev(sl_conn *c, const struct iovec *iov, int n) {
  struct msghdr mh = {0};
  mh.msg_iov = (struct iovec *)iov;
  mh.msg_iovlen = (size_t)n;
  return sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static ssize_t tcp_read(sl_conn *c, void *buf, size_t len) {
  return recv(c->fd, buf, len, MSG_DONTWAIT);
}

const struct sl_io sl__io_tcp = {.writev = tcp_writev, .read = tcp_read};

void sl__conn_set_io(sl_conn *c, const struct sl_io *io, void *io_data) {
  if (c->io && c->io->free) c->io->free(c);
  c->io = io ? io : &sl__io_tcp;
  c->io_data = io ? io_data : NULL;
}

static size_t pick(size_t v, size_t inherited) { return v ? v : inherited; }

void sl__conn_resolve_limits(sl_conn *c) {
  const sl_limits *base = &c->mgr->opts.limits;
  sl_limits lst = {0};
  if (c->listener) lst = c->listener->lim_set;
  sl_limits *l = &c->lim;
  const sl_limits *s = &c->lim_set;
  l->send_max = pick(s->send_max, pick(lst.send_max, base->send_max));
  /* Watermarks default relative to the send_max in force. */
  l->send_high = pick(s->send_high, pick(lst.send_high, l->send_max / 2));
  l->send_low = pick(s->send_low, pick(lst.send_low, l->send_max / 8));
  if (l->send_high > l->send_max) l->send_high = l->send_max;
  if (l->send_low > l->send_high) l->send_low = l->send_high;
  l->recv_max = pick(s->recv_max, pick(lst.recv_max, base->recv_max));
  l->idle_ms = (uint32_t)pick(s->idle_ms, pick(lst.idle_ms, base->idle_ms));
  l->stall_ms = (uint32_t)pick(s->stall_ms, pick(lst.stall_ms, base->stall_ms));
  l->min_rate = (uint32_t)pick(s->min_rate, pick(lst.min_rate, base->min_rate));
}

sl_conn *sl__conn_new(sl_mgr *m, int fd, sl_handler fn, void *data) {
  sl_conn *c = sl__calloc(sizeof(*c), SL_MEM_META);
  if (c == NULL) return NULL;
  c->mgr = m;
  c->fd = fd;
  c->id = ++m->next_id;
  c->fn = fn;
  c->data = data;
  c->tmo.idx = SIZE_MAX;
  c->tmo.internal = 1;
  c->io = &sl__io_tcp;
  c->opened_ms = c->last_io_ms = c->last_progress_ms = m->now;
  sl__outq_init(&c->outq);
  c->next = m->conns;
  if (m->conns) m->conns->prev = c;
  m->conns = c;
  m->nconns++;
  sl__conn_resolve_limits(c);
  return c;
}

/* Bits of SL_POLL_* the transport holds (see struct sl_io). */
static int io_held(const sl_conn *c) {
  return c->io->held ? c->io->held(c) : 0;
}

int sl__conn_has_output(const sl_conn *c) {
  return c->outq.queued || (io_held(c) & SL_POLL_OUT);
}

int sl__conn_register(sl_conn *c) {
  return c->mgr->pops->add(c->mgr->poller, c->fd, c->interest, c);
}

void sl__conn_update_interest(sl_conn *c) {
  int want = 0;
  if (c->fd < 0 || c->state >= SL_ST_CLOSING) return;
  if (c->flags & SL_F_LISTENER) {
    want = (c->flags & SL_F_ACCEPT_WAIT) ? 0 : SL_POLL_IN;
  } else if (c->state == SL_ST_CONNECTING) {
    want = SL_POLL_OUT;
  } else {
    size_t unread = c->in_len - c->in_off;
    int held = io_held(c);
    if (!(c->flags & (SL_F_PAUSED | SL_F_EOF)) && c->state != SL_ST_DRAINING &&
        unread < c->lim.recv_max) {
      want |= SL_POLL_IN;
      /* Input the transport already took from the socket: no readiness
       * event will announce it, so the flush phase reads it. */
      if ((held & SL_POLL_IN) && !(c->flags & SL_F_IO_INPUT)) {
        c->flags |= SL_F_IO_INPUT;
        sl__conn_mark_dirty(c);
      }
    }
    /* During a handshake the queue waits: only the transport writes. A
     * dirty connection is flushed at the end of this iteration, which asks
     * for writability itself if bytes remain: asking now would cost two
     * epoll_ctl calls per request (on here, off after the flush). */
    if (held & SL_POLL_OUT)
      want |= SL_POLL_OUT;
    else if (c->outq.queued && c->state != SL_ST_HANDSHAKE &&
             (!(c->flags & SL_F_DIRTY) || (c->interest & SL_POLL_OUT)))
      want |= SL_POLL_OUT;
  }
  if (want != c->interest) {
    c->interest = want;
    c->mgr->pops->mod(c->mgr->poller, c->fd, want, c);
  }
}

void sl__conn_mark_dirty(sl_conn *c) {
  if (c->flags & SL_F_DIRTY) return;
  c->flags |= SL_F_DIRTY;
  c->dirty_next = c->mgr->dirty;
  c->mgr->dirty = c;
}

/* ---- deadlines ----------------------------------------------------- */

/* Resolving, connecting or in the transport's handshake: one deadline
 * (connect_deadline) and no idle or stall clock. */
static int opening(const sl_conn *c) {
  return c->state >= SL_ST_RESOLVING && c->state <= SL_ST_HANDSHAKE;
}

/* When does this connection next need attention? Idle applies when nothing
 * is pending or in progress; stall when output is pending. Connecting and a
 * transport handshake have one deadline of their own and nothing else. */
static uint64_t next_deadline(const sl_conn *c) {
  uint64_t d = UINT64_MAX;
  if (c->flags & SL_F_LISTENER) return d;
  if (opening(c)) return c->connect_deadline;
  if (sl__conn_has_output(c) && c->lim.stall_ms)
    d = c->last_progress_ms + c->lim.stall_ms;
  else if (!(c->flags & SL_F_BUSY) && c->lim.idle_ms)
    d = c->last_io_ms + c->lim.idle_ms;
  if (c->proto_deadline && c->proto_deadline < d) d = c->proto_deadline;
  return d;
}

static void on_deadline(sl_mgr *m, void *arg) {
  sl_conn *c = arg;
  uint64_t d = next_deadline(c);
  if (c->state >= SL_ST_CLOSING) return;
  if (d > m->now) {
    if (d != UINT64_MAX) sl__timer_arm(&m->timers, &c->tmo, d);
    return;
  }
  int reason;
  int was_opening = opening(c);
  if (was_opening) reason = SL_CLOSE_TIMEOUT;
  else if (c->proto_deadline && c->proto_deadline <= m->now) reason = SL_CLOSE_TIMEOUT;
  else if (sl__conn_has_output(c)) reason = SL_CLOSE_STALL;
  else reason = SL_CLOSE_IDLE;
  if (reason == SL_CLOSE_TIMEOUT) c->proto_deadline = 0;
  if (c->state == SL_ST_DRAINING) {
    /* Already closing gracefully and still stuck: finish it now. */
    if (reason == SL_CLOSE_STALL) c->flags |= SL_F_RESET;
    sl__conn_mark_closing(c);
    return;
  }
  sl__call(c, SL_EV_TIMEOUT, &reason);
  /* Handled: the protocol closed the connection, or (keepalive pings)
   * set a new deadline of its own, which cannot extend an opening. */
  if (c->state >= SL_ST_DRAINING ||
      (reason == SL_CLOSE_TIMEOUT && !was_opening && c->proto_deadline > m->now)) {
    sl__conn_rearm(c);
    return;
  }
  /* A stalled peer is reset so the kernel frees its buffers at once. */
  if (reason == SL_CLOSE_STALL) c->flags |= SL_F_RESET;
  sl__conn_fail(c, reason, SL_ETIMEDOUT, NULL);
}

void sl__conn_set_deadline(sl_conn *c, uint64_t abs_ms) {
  c->proto_deadline = abs_ms;
  sl__conn_rearm(c);
}

void sl__conn_rearm(sl_conn *c) {
  uint64_t d = next_deadline(c);
  c->tmo.fn = on_deadline;
  c->tmo.arg = c;
  /* Lazy: only move the timer earlier. A later deadline is found when the
   * timer fires and re-arms, so progress costs no heap operation. */
  if (d == UINT64_MAX) return;
  if (c->tmo.idx == SIZE_MAX || d < c->tmo.due)
    sl__timer_arm(&c->mgr->timers, &c->tmo, d);
}

/* ---- sending ------------------------------------------------------- */

int sl_sendv(sl_conn *c, const sl_part *parts, size_t n) {
  sl_mgr *m = c->mgr;
  if (c->state >= SL_ST_DRAINING || (c->flags & SL_F_LISTENER))
    return SL_ECLOSING;
  for (size_t i = 0; i < n; i++) {
    const sl_part *p = &parts[i];
    if (p->buf && (p->off > p->buf->len || p->len > p->buf->len - p->off))
      return SL_ERANGE;
    if (!p->buf && p->len && p->data == NULL) return SL_EINVAL;
  }
  size_t qadd, hadd;
  sl__outq_cost(&c->outq, &m->acct, parts, n, &qadd, &hadd);
  if (qadd > c->lim.send_max || c->outq.queued > c->lim.send_max - qadd) {
    m->st.refused_sends++;
    SL_DEBUG("send of %zu bytes to %s refused: %zu queued, send_max %zu", qadd, c->peer_str,
             c->outq.queued, c->lim.send_max);
    return SL_ENOBUFS;
  }
  if (m->opts.budget && m->acct.held + hadd > m->opts.budget) {
    m->st.refused_sends++;
    SL_DEBUG("send of %zu bytes to %s refused: manager holds %zu, budget %zu", qadd,
             c->peer_str, m->acct.held, m->opts.budget);
    return SL_EBUDGET;
  }
  int was_empty = c->outq.queued == 0;
  int rc = sl__outq_push(&c->outq, &m->acct, parts, n);
  if (rc) return rc;
  if (qadd == 0) return 0;
  if (was_empty) {
    /* Pending output starts the stall clock. */
    c->last_progress_ms = m->now;
    c->credit = 0;
    sl__conn_rearm(c);
  }
  if (!(c->flags & SL_F_FULL) && c->outq.queued >= c->lim.send_high)
    c->flags |= SL_F_FULL | SL_F_FULL_PENDING;
  if (c->state != SL_ST_CONNECTING && c->state != SL_ST_RESOLVING)
    sl__conn_mark_dirty(c);
  return 0;
}

int sl_send(sl_conn *c, const void *data, size_t len) {
  sl_part p = {data, NULL, 0, len};
  return sl_sendv(c, &p, 1);
}

int sl_send_buf(sl_conn *c, sl_buf *b, size_t off, size_t len) {
  sl_part p = {NULL, b, off, len};
  return sl_sendv(c, &p, 1);
}

int sl_vprintf(sl_conn *c, const char *fmt, va_list ap) {
  char stack[512];
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(stack, sizeof(stack), fmt, ap2);
  va_end(ap2);
  if (n < 0) return SL_EINVAL;
  if ((size_t)n < sizeof(stack)) return sl_send(c, stack, (size_t)n);
  if ((size_t)n > c->lim.send_max) return SL_ENOBUFS;
  char *big = sl__alloc((size_t)n + 1, SL_MEM_META);
  if (big == NULL) return SL_ENOMEM;
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  int rc = sl_send(c, big, (size_t)n);
  sl__free(big, (size_t)n + 1, SL_MEM_META);
  return rc;
}

int sl_printf(sl_conn *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = sl_vprintf(c, fmt, ap);
  va_end(ap);
  return rc;
}

size_t sl_conn_room(const sl_conn *c) {
  if (c->state >= SL_ST_DRAINING) return 0;
  return c->outq.queued >= c->lim.send_max ? 0 : c->lim.send_max - c->outq.queued;
}

size_t sl_conn_queued(const sl_conn *c) { return c->outq.queued; }

/* Write as much as the transport takes now, one writev per batch of
 * segments. A transport that holds bytes of its own (a TLS handshake
 * flight) is called with an empty batch to write them. */
void sl__conn_flush(sl_conn *c) {
  sl_mgr *m = c->mgr;
  size_t total = 0;
  if (c->flags & SL_F_FULL_PENDING) {
    c->flags &= ~SL_F_FULL_PENDING;
#ifdef SL_DEBUG_ASSERTS
    c->full_balance++;
    SL_ASSERT(c->full_balance == 1);
#endif
    sl__call(c, SL_EV_FULL, NULL);
  }
  while (sl__conn_has_output(c) && c->state != SL_ST_CONNECTING &&
         c->state != SL_ST_RESOLVING && c->state < SL_ST_CLOSING) {
    struct iovec iov[SL_IOV_BATCH];
    size_t want;
    int n = sl__outq_iov(&c->outq, iov, SL_IOV_BATCH, (size_t)1 << 30, &want);
    ssize_t w = c->io->writev(c, iov, n);
    m->st.writes++;
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      sl__conn_fail(c, SL_CLOSE_ERROR, -errno, NULL);
      return;
    }
    SL_ASSERT((size_t)w <= want);
    sl__outq_consume(&c->outq, &m->acct, (size_t)w);
    total += (size_t)w;
    if ((size_t)w < want || want == 0) break; /* the socket is full */
  }
  if (total) {
    c->bytes_out += total;
    c->last_io_ms = m->now;
    /* Progress: any accepted byte, or enough bytes for min_rate. */
    c->credit += total;
    uint64_t span = m->now - c->last_progress_ms;
    if (c->lim.min_rate == 0 ||
        c->credit * 1000u >= (uint64_t)c->lim.min_rate * span) {
      c->last_progress_ms = m->now;
      c->credit = 0;
    }
    sl__call(c, SL_EV_WRITE, &total);
    if ((c->flags & SL_F_FULL) && !(c->flags & SL_F_FULL_PENDING) &&
        c->outq.queued <= c->lim.send_low) {
      c->flags &= ~SL_F_FULL;
#ifdef SL_DEBUG_ASSERTS
      c->full_balance--;
      SL_ASSERT(c->full_balance == 0);
#endif
      sl__call(c, SL_EV_DRAIN, NULL);
    }
  }
  if (c->state == SL_ST_DRAINING && !sl__conn_has_output(c))
    sl__conn_mark_closing(c);
  sl__conn_update_interest(c);
  sl__conn_rearm(c);
}

void sl__conn_on_writable(sl_conn *c) { sl__conn_flush(c); }

/* ---- reading ------------------------------------------------------- */

static int ensure_in_room(sl_conn *c) {
  sl_mgr *m = c->mgr;
  size_t unread = c->in_len - c->in_off;
  if (c->in_off && (c->in_len == c->in_cap || unread == 0)) {
    /* Compact: bounded by recv_max, and the input side only. */
    memmove(c->in, c->in + c->in_off, unread);
    c->in_len = unread;
    c->in_off = 0;
  }
  if (c->in_len < c->in_cap && !(c->flags & SL_F_IN_GROW)) return 0;
  c->flags &= ~SL_F_IN_GROW;
  size_t ncap = c->in_cap ? c->in_cap * 2 : SL_READ_STEP;
  if (ncap > c->lim.recv_max) ncap = c->lim.recv_max;
  if (ncap <= c->in_cap) return c->in_len < c->in_cap ? 0 : SL_ENOBUFS;
  char *p = sl__realloc(c->in, c->in_cap, ncap, SL_MEM_IN);
  if (p == NULL) return c->in_len < c->in_cap ? 0 : SL_ENOMEM; /* growing was optional */
  m->acct.in += ncap - c->in_cap;
  sl__acct_held(&m->acct, (long long)(ncap - c->in_cap));
  c->in = p;
  c->in_cap = ncap;
  return 0;
}

static void release_input(sl_conn *c) {
  if (c->in == NULL) return;
  if (c->flags & SL_F_IN_STACK) {
    /* Lent from on_readable's stack: nothing to free or count. */
    c->in = NULL;
    c->in_cap = c->in_len = c->in_off = 0;
    return;
  }
  c->mgr->acct.in -= c->in_cap;
  sl__acct_held(&c->mgr->acct, -(long long)c->in_cap);
  sl__free(c->in, c->in_cap, SL_MEM_IN);
  c->in = NULL;
  c->in_cap = c->in_len = c->in_off = 0;
}

/* After SL_EV_READ on the lent stack buffer: the bytes the handler left
 * unconsumed (a partial request, a frame cut by the read) move into a
 * buffer of the connection's own, counted as input like any other. The
 * stack copy cannot outlive on_readable. */
static void keep_input(sl_conn *c) {
  sl_mgr *m = c->mgr;
  const char *lent = c->in + c->in_off;
  size_t unread = c->in_len - c->in_off;
  c->flags &= ~SL_F_IN_STACK;
  c->in = NULL;
  c->in_len = c->in_off = 0;
  size_t cap = c->in_cap;
  c->in_cap = 0;
  if (unread == 0) return;
  if (cap > c->lim.recv_max) cap = c->lim.recv_max;
  if (cap < unread) cap = unread;
  char *p = sl__alloc(cap, SL_MEM_IN);
  if (p == NULL) {
    sl__conn_fail(c, SL_CLOSE_ERROR, SL_ENOMEM, "no memory for input");
    return;
  }
  memcpy(p, lent, unread);
  m->acct.in += cap;
  sl__acct_held(&m->acct, (long long)cap);
  c->in = p;
  c->in_cap = cap;
  c->in_len = unread;
}

void sl__conn_on_readable(sl_conn *c) {
  sl_mgr *m = c->mgr;
  if (c->state == SL_ST_HANDSHAKE) {
    /* No application bytes yet: no input buffer either. */
    c->io->handshake(c);
    return;
  }
  if (c->in_len - c->in_off >= c->lim.recv_max) {
    sl__conn_update_interest(c); /* full: TCP pushes back on the peer */
    return;
  }
  /* Without an input buffer (a viewer that only receives has none), read
   * into the stack first: an EOF or an error then allocates nothing, so a
   * thousand viewers leaving at once do not raise the peak by a buffer
   * each. Bytes that did come are handed to the handler from there (see
   * keep_input): a keep-alive request read whole and answered at once
   * costs no allocation and no copy. */
  char first[SL_READ_STEP];
  char *dst;
  size_t room;
  if (c->in == NULL) {
    dst = first;
    room = sizeof(first) < c->lim.recv_max ? sizeof(first) : c->lim.recv_max;
  } else {
    int rc = ensure_in_room(c);
    if (rc == SL_ENOMEM) {
      sl__conn_fail(c, SL_CLOSE_ERROR, SL_ENOMEM, "no memory for input");
      return;
    }
    room = c->in_cap - c->in_len;
    size_t unread = c->in_len - c->in_off;
    if (room > c->lim.recv_max - unread) room = c->lim.recv_max - unread;
    if (room == 0) {
      sl__conn_update_interest(c);
      return;
    }
    dst = c->in + c->in_len;
  }
  ssize_t n = c->io->read(c, dst, room);
  m->st.reads++;
  if (n > 0 && dst == first) {
    /* Lent for the SL_EV_READ call only; in_cap is what a buffer of our
     * own would have had, so the growth rule below works the same. */
    c->in = first;
    c->in_cap = sizeof(first);
    c->flags |= SL_F_IN_STACK;
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    sl__conn_fail(c, SL_CLOSE_ERROR, -errno, NULL);
    return;
  }
  if (n == 0) {
    c->flags |= SL_F_EOF;
    /* The peer finished sending (FIN). Output already queued is sent
     * first, then the connection closes: a FIN looks the same whether the
     * peer half-closed or went away, and a viewer that went away must
     * release its slot at once, not after its next failed write. */
    if (c->outq.queued && c->state < SL_ST_DRAINING) {
      sl__conn_note_reason(c, SL_CLOSE_PEER, 0);
      sl__conn_set_state(c, SL_ST_DRAINING);
      sl__conn_update_interest(c);
    } else {
      sl__conn_fail(c, SL_CLOSE_PEER, 0, NULL);
    }
    return;
  }
  /* A read that filled all the room there was: more is waiting in the
   * kernel. Without growing, a handler that consumes everything keeps the
   * buffer at its first 16 KiB, and a stream arriving faster than 16 KiB
   * per loop turn (a relay of 100 KB frames while the loop serves a
   * thousand viewers) would be read no faster than the loop turns. */
  if ((size_t)n == room && c->in_cap < c->lim.recv_max) c->flags |= SL_F_IN_GROW;
  c->in_len += (size_t)n;
  c->bytes_in += (size_t)n;
  c->last_io_ms = m->now;
  size_t got = (size_t)n;
  sl__call(c, SL_EV_READ, &got);
  if (c->flags & SL_F_IN_STACK) keep_input(c);
  if (c->state < SL_ST_CLOSING) sl__conn_update_interest(c);
}

const char *sl_conn_in(const sl_conn *c, size_t *len) {
  *len = c->in_len - c->in_off;
  return c->in ? c->in + c->in_off : "";
}

void sl_conn_consume(sl_conn *c, size_t n) {
  size_t unread = c->in_len - c->in_off;
  if (n > unread) n = unread;
  c->in_off += n;
  /* Empty: give the buffer back. A viewer sends one request and then only
   * receives, so its input buffer would otherwise sit idle for hours. */
  if (c->in_off == c->in_len) release_input(c);
  sl__conn_update_interest(c);
}

void sl_conn_pause_read(sl_conn *c, int paused) {
  if (paused) c->flags |= SL_F_PAUSED;
  else c->flags &= ~SL_F_PAUSED;
  sl__conn_update_interest(c);
}

/* ---- closing ------------------------------------------------------- */

void sl__conn_mark_closing(sl_conn *c) {
  if (c->state >= SL_ST_CLOSING) return;
  sl__conn_set_state(c, SL_ST_CLOSING);
  c->close_next = c->mgr->closing;
  c->mgr->closing = c;
}

void sl__conn_fail(sl_conn *c, int reason, int err, const char *msg) {
  if (c->state >= SL_ST_CLOSING) return;
  sl__conn_note_reason(c, reason, 1);
  if (err && !c->err) c->err = err;
  if (msg || (err && reason == SL_CLOSE_ERROR))
    sl__call(c, SL_EV_ERROR, (void *)(msg ? msg : sl_strerror(err)));
  sl__conn_mark_closing(c);
}

void sl_conn_close_with(sl_conn *c, int how, int reason) {
  if (c->state >= SL_ST_CLOSING) return;
  sl__conn_note_reason(c, reason, 0);
  /* Nothing can be flushed before the connection (and its handshake,
   * which needs reading, which draining stops) is up: close now. */
  if (how == SL_CLOSE_FLUSH && sl__conn_has_output(c) &&
      ((c->state == SL_ST_NEW && !(c->flags & SL_F_CLIENT)) ||
       c->state == SL_ST_OPEN)) {
    sl__conn_set_state(c, SL_ST_DRAINING);
    sl__conn_update_interest(c);
    sl__conn_mark_dirty(c);
    return;
  }
  if (how == SL_CLOSE_FLUSH && c->state == SL_ST_DRAINING) return;
  if (how == SL_CLOSE_RESET) c->flags |= SL_F_RESET;
  sl__conn_mark_closing(c);
}

void sl_conn_close(sl_conn *c, int how) {
  sl_conn_close_with(c, how, SL_CLOSE_LOCAL);
}

void sl__conn_set_proto(sl_conn *c, const struct sl_proto *p, void *pdata) {
  if (c->proto && c->proto->free) c->proto->free(c);
  c->proto = p;
  c->pdata = pdata;
}

/* Release everything of c; SL_EV_CLOSE was delivered (or never due). */
static void release(sl_conn *c) {
  sl_mgr *m = c->mgr;
  sl__conn_set_proto(c, NULL, NULL);
  if (c->flags & SL_F_POLL) m->npoll--;
  sl__timer_disarm(&m->timers, &c->tmo);
  if (c->flags & SL_F_DIRTY) {
    sl_conn **pp = &m->dirty;
    while (*pp && *pp != c) pp = &(*pp)->dirty_next;
    if (*pp) *pp = c->dirty_next;
  }
  if (c->fd >= 0 && c->io->shutdown && !(c->flags & SL_F_RESET)) c->io->shutdown(c);
  if (c->io->free) c->io->free(c);
  if (c->fd >= 0) {
    m->pops->del(m->poller, c->fd);
    if (c->flags & SL_F_RESET) {
      struct linger lg = {1, 0};
      setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(c->fd);
  }
  sl__ip_release(m, c);
  sl__outq_clear(&c->outq, &m->acct);
  release_input(c);
  if (c->host) sl__free(c->host, strlen(c->host) + 1, SL_MEM_META);
  if (c->prev) c->prev->next = c->next;
  else m->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  m->nconns--;
  if (c->close_reason >= 0 && c->close_reason <= SL_CLOSE_SHUTDOWN)
    m->st.closed_by[c->close_reason]++;
  /* Accepted connections of a listener that goes keep a dangling pointer
   * otherwise. */
  if (c->flags & SL_F_LISTENER)
    for (sl_conn *o = m->conns; o; o = o->next)
      if (o->listener == c) o->listener = NULL;
  sl__free(c, sizeof(*c), SL_MEM_META);
}

void sl__conn_free(sl_conn *c) {
  SL_ASSERT(c->state == SL_ST_CLOSING);
  sl__conn_note_reason(c, SL_CLOSE_LOCAL, 0);
  SL_DEBUG("close %s%s conn %llu: %s%s%s, %llu bytes in, %llu out",
           (c->flags & SL_F_LISTENER) ? "listener " : "", c->peer_str,
           (unsigned long long)c->id, sl_close_reason_name(c->close_reason),
           c->err ? ": " : "", c->err ? sl_strerror(c->err) : "",
           (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out);
  sl__conn_set_state(c, SL_ST_CLOSED);
  sl__call(c, SL_EV_CLOSE, NULL);
  release(c);
}

void sl__conn_refuse(sl_conn *c, int reason) {
  sl__conn_note_reason(c, reason, 1);
  sl__conn_set_state(c, SL_ST_CLOSED);
  release(c);
}

/* ---- options and accessors ----------------------------------------- */

int sl_conn_set_limits(sl_conn *c, const sl_limits *lim) {
  sl_limits save = c->lim_set;
  c->lim_set = *lim;
  sl_limits old = c->lim;
  sl__conn_resolve_limits(c);
  if (c->lim.send_high > c->lim.send_max || c->lim.send_low > c->lim.send_high ||
      (lim->send_high && lim->send_high > c->lim.send_max) ||
      (lim->send_low && lim->send_high && lim->send_low > lim->send_high)) {
    c->lim_set = save;
    c->lim = old;
    return SL_EINVAL;
  }
  sl__conn_update_interest(c);
  sl__conn_rearm(c);
  return 0;
}

void sl_conn_get_limits(const sl_conn *c, sl_limits *out) { *out = c->lim; }

void sl_conn_set_busy(sl_conn *c, int busy) {
  if (busy) c->flags |= SL_F_BUSY;
  else c->flags &= ~SL_F_BUSY;
  if (!busy) c->last_io_ms = c->mgr->now;
  sl__conn_rearm(c);
}

void sl_conn_set_poll(sl_conn *c, int on) {
  if (on && !(c->flags & SL_F_POLL)) c->mgr->npoll++;
  if (!on && (c->flags & SL_F_POLL)) c->mgr->npoll--;
  if (on) c->flags |= SL_F_POLL;
  else c->flags &= ~SL_F_POLL;
}

/* DSCP is the upper six bits of the IPv4 TOS byte and of the IPv6 traffic
 * class (RFC 2474); the lower two are ECN and belong to the kernel, which
 * keeps setting them whatever we write. The socket's family decides which
 * option applies; an IPv6 socket may carry IPv4-mapped peers, whose packets
 * take IP_TOS, so both are set there (the second may fail harmlessly). */
static int set_dscp(int fd, int dscp) {
  if (dscp < 0 || dscp > 63) return SL_EINVAL;
  int tos = dscp << 2;
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -errno;
  if (ss.ss_family == AF_INET6) {
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof(tos)) != 0) return -errno;
    (void)setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
    return 0;
  }
  return setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos)) == 0 ? 0 : -errno;
}

int sl_conn_sockopt(sl_conn *c, int opt, int value) {
  int rc = 0, on = value ? 1 : 0;
  if (c->fd < 0) return SL_EBADF;
  switch (opt) {
    case SL_OPT_NODELAY:
      rc = setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
      break;
    case SL_OPT_KEEPALIVE:
      rc = setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
#ifdef TCP_KEEPIDLE
      if (rc == 0 && value > 0) {
        int idle = value, intvl = value / 3 ? value / 3 : 1, cnt = 3;
        rc = setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
        if (rc == 0)
          rc = setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
        if (rc == 0)
          rc = setsockopt(c->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
      }
#endif
      break;
    case SL_OPT_USER_TIMEOUT:
#ifdef TCP_USER_TIMEOUT
      rc = setsockopt(c->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &value, sizeof(value));
#else
      return SL_ENOTSUP;
#endif
      break;
    case SL_OPT_NOTSENT_LOWAT:
#ifdef TCP_NOTSENT_LOWAT
      rc = setsockopt(c->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &value, sizeof(value));
#else
      return SL_ENOTSUP;
#endif
      break;
    case SL_OPT_SNDBUF:
      rc = setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &value, sizeof(value));
      break;
    case SL_OPT_RCVBUF:
      rc = setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &value, sizeof(value));
      break;
    case SL_OPT_DSCP:
      return set_dscp(c->fd, value);
    case SL_OPT_PRIORITY:
#ifdef SO_PRIORITY
      if (value < 0 || value > 6) return SL_EINVAL;
      rc = setsockopt(c->fd, SOL_SOCKET, SO_PRIORITY, &value, sizeof(value));
#else
      return SL_ENOTSUP;
#endif
      break;
    default:
      return SL_EINVAL;
  }
  return rc == 0 ? 0 : -errno;
}

void sl_conn_stats_get(const sl_conn *c, sl_conn_stats *o) {
  o->queued = c->outq.queued;
  o->owned = c->outq.owned;
  o->referenced = c->outq.referenced;
  o->segments = c->outq.nseg;
  o->in = c->in_len - c->in_off;
  o->bytes_in = c->bytes_in;
  o->bytes_out = c->bytes_out;
  o->opened_ms = c->opened_ms;
  o->last_io_ms = c->last_io_ms;
  o->last_progress_ms = c->last_progress_ms;
  o->full = (c->flags & SL_F_FULL) != 0;
}

sl_mgr *sl_conn_mgr(const sl_conn *c) { return c->mgr; }
uint64_t sl_conn_id(const sl_conn *c) { return c->id; }
int sl_conn_fd(const sl_conn *c) { return c->fd; }
void *sl_conn_data(const sl_conn *c) { return c->data; }
void sl_conn_set_data(sl_conn *c, void *data) { c->data = data; }
void sl_conn_set_handler(sl_conn *c, sl_handler fn) { c->fn = fn; }
int sl_conn_is_listener(const sl_conn *c) { return (c->flags & SL_F_LISTENER) != 0; }
int sl_conn_is_client(const sl_conn *c) { return (c->flags & SL_F_CLIENT) != 0; }
int sl_conn_is_closing(const sl_conn *c) { return c->state >= SL_ST_DRAINING; }
int sl_conn_close_reason(const sl_conn *c) { return c->close_reason; }
int sl_conn_error(const sl_conn *c) { return c->err; }
const char *sl_conn_peer(const sl_conn *c) { return c->peer_str; }

int sl_conn_local_port(const sl_conn *c) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (c->fd < 0 || getsockname(c->fd, (struct sockaddr *)&ss, &len) != 0) return -1;
  if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return -1;
}
