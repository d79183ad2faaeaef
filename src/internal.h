/*
 * Definitions shared by the library's modules: the manager and connection
 * structs and the sl__ helpers between loop.c, conn.c and the protocols.
 * Nothing here is public; applications see only opaque pointers.
 */
#ifndef SL_INTERNAL_H
#define SL_INTERNAL_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "outq.h"
#include "poller.h"
#include "sluice.h"
#include "timer.h"

#define SL_DEFAULT_SEND_MAX (4u << 20)
#define SL_DEFAULT_RECV_MAX (64u << 10)
#define SL_DEFAULT_IDLE_MS 60000u
#define SL_DEFAULT_STALL_MS 60000u
#define SL_DEFAULT_MAX_CONNS 4096u
#define SL_DEFAULT_WAKEUP_MAX 1024u
#define SL_CONNECT_TIMEOUT_MS 10000u
/* Bytes read per recv() when the input buffer must grow. */
#define SL_READ_STEP 16384u
/* At most this many iovecs per writev (IOV_MAX is 1024 on Linux). */
#define SL_IOV_BATCH 64

/* Protocol layer hooks: a protocol (HTTP, WebSocket, hub transport) sees
 * every event before the user handler, Mongoose's pfn. `ev` returns 1 to
 * swallow the event (the user handler does not see it). */
struct sl_proto {
  const char *name;
  int (*ev)(sl_conn *c, int ev, void *ev_data);
  /* Called once when the connection is freed or the protocol replaced. */
  void (*free)(sl_conn *c);
  /* On a listener: set up the protocol of a connection it just accepted,
   * before SL_EV_OPEN. Returns 0 or an SL_E* code (the connection is then
   * refused). */
  int (*accept)(sl_conn *listener, sl_conn *c);
};

/* Transport hooks: the byte pipe under a connection, below the protocol
 * (struct sl_proto) and above the socket. Every connection has one: plain
 * TCP (sl__io_tcp) unless a module installs its own with sl__conn_set_io
 * (TLS; the fake connections of unit tests). The core calls only these
 * hooks to move bytes, so it knows nothing of what a transport is.
 *
 *   writev    write from the front of the output queue; returns the bytes
 *             of the queue it is done with (the queue keeps the rest, so
 *             the output queue stays the one place where bytes wait), or
 *             -1 with errno (EAGAIN: nothing can move now).
 *   read      read into the input buffer: bytes, 0 at the end, or -1 with
 *             errno. A transport that fails the connection itself
 *             (sl__conn_fail) returns -1 with any errno.
 *   held      optional: what the transport holds beyond the queue and the
 *             input buffer. SL_POLL_OUT for bytes still to write (a
 *             handshake flight, an alert), SL_POLL_IN for input already
 *             taken from the socket that the poller can no longer signal.
 *   handshake optional: the transport has a handshake. A client enters
 *             SL_ST_HANDSHAKE when its TCP connect completes (loop.c), a
 *             server-side connection when the transport is attached (the
 *             transport moves it); the core calls this whenever the socket
 *             is readable, and the transport ends the handshake with
 *             sl__conn_announce.
 *   shutdown  optional: the goodbye on the wire (TLS close_notify), once,
 *             just before the fd closes; not called on a reset.
 *   free      optional: release the transport's state; the fd is open.
 *   accept    optional, on a listener: give connection `c`, just
 *             accepted, its transport (before SL_EV_OPEN). 0, or an SL_E*
 *             code and the connection is refused.
 * All hooks run on the loop thread. */
struct sl_io {
  ssize_t (*writev)(sl_conn *c, const struct iovec *iov, int n);
  ssize_t (*read)(sl_conn *c, void *buf, size_t len);
  int (*held)(const sl_conn *c);
  void (*handshake)(sl_conn *c);
  void (*shutdown)(sl_conn *c);
  void (*free)(sl_conn *c);
  int (*accept)(sl_conn *listener, sl_conn *c);
};

/* The default transport: sendmsg/recv on the socket. */
extern const struct sl_io sl__io_tcp;

/* The connection lifecycle (conn.c explains it; sl__conn_set_state is the
 * only writer of c->state). */
enum sl_state {
  SL_ST_NEW,        /* created, not announced: SL_EV_OPEN runs here */
  SL_ST_RESOLVING,  /* client: the host name is being looked up */
  SL_ST_CONNECTING, /* client: TCP connect in progress */
  SL_ST_HANDSHAKE,  /* the transport's handshake (TLS) */
  SL_ST_OPEN,       /* announced (SL_EV_ACCEPT/CONNECT), or a listener */
  SL_ST_DRAINING,   /* closing after the output is flushed */
  SL_ST_CLOSING,    /* on the closing list: freed at the next reap */
  SL_ST_CLOSED,     /* SL_EV_CLOSE delivered, being freed */
  SL_ST_COUNT
};

/* Connection flags. The first group mirrors c->state so modules can test
 * set membership with one AND (`flags & (SL_F_CLOSING | SL_F_FLUSHING)`):
 * sl__conn_set_state writes them, nothing else may. The others are
 * independent conditions of an open connection. */
enum {
  SL_F_RESOLVING = 1u << 0,  /* state RESOLVING */
  SL_F_CONNECTING = 1u << 1, /* state CONNECTING */
  SL_F_HANDSHAKE = 1u << 2,  /* state HANDSHAKE: no application bytes
                                either way, connect_deadline bounds it */
  SL_F_FLUSHING = 1u << 3,   /* state DRAINING */
  SL_F_CLOSING = 1u << 4,    /* state CLOSING or CLOSED */
  SL_F_STATE_BITS = 0x1fu,

  SL_F_LISTENER = 1u << 5,
  SL_F_CLIENT = 1u << 6,
  SL_F_ANNOUNCED = 1u << 7,  /* SL_EV_ACCEPT/CONNECT delivered (set by
                                sl__conn_announce only) */
  SL_F_RESET = 1u << 8,      /* close with RST */
  SL_F_PAUSED = 1u << 9,     /* reading paused by the application */
  SL_F_FULL = 1u << 10,      /* between FULL and DRAIN */
  SL_F_FULL_PENDING = 1u << 11, /* FULL to deliver at the flush phase */
  SL_F_BUSY = 1u << 12,      /* idle timeout off */
  SL_F_POLL = 1u << 13,      /* wants SL_EV_POLL */
  SL_F_EOF = 1u << 14,       /* peer sent FIN */
  SL_F_DIRTY = 1u << 15,     /* on the flush list */
  SL_F_ACCEPT_WAIT = 1u << 16, /* listener paused after EMFILE */
  SL_F_IO_INPUT = 1u << 17,  /* the transport holds input: read it at the
                                flush phase (see sl_io.held) */
  SL_F_IN_GROW = 1u << 18,   /* the last read filled the input buffer:
                                double it (up to recv_max) at the next */
  SL_F_IN_STACK = 1u << 19,  /* c->in is on_readable's stack buffer, lent
                                for the SL_EV_READ call (conn.c) */
};

struct sl_conn {
  struct sl_conn *prev, *next;   /* manager's list */
  struct sl_conn *dirty_next;    /* flush list */
  struct sl_conn *close_next;    /* closing list */
  sl_mgr *mgr;
  uint64_t id;
  int fd;
  unsigned flags;
  enum sl_state state;
  int interest;                  /* SL_POLL_* registered now */
  int close_reason;
  int err;
  sl_handler fn;
  void *data;
  const struct sl_proto *proto;
  void *pdata;                   /* protocol state */
  /* An observer that sees every event before the protocol (the hub watches
   * its subscribers' WRITE, DRAIN and CLOSE this way). */
  void (*tap)(sl_conn *c, int ev, void *ev_data, void *arg);
  void *tap_arg;
  const struct sl_io *io;        /* never NULL (sl__io_tcp) */
  void *io_data;                 /* the transport's state */
  struct sl_conn *listener;      /* accepted by (may be gone: use id) */

  sl_limits lim;                 /* resolved limits (no zeros) */
  sl_limits lim_set;             /* as set (zeros inherit) */
  struct sl_outq outq;
  char *in;                      /* input buffer */
  size_t in_len, in_off, in_cap; /* bytes [in_off, in_len) unconsumed */

  struct sl_timer tmo;           /* idle/stall/connect deadline, lazy */
  uint64_t opened_ms, last_io_ms, last_progress_ms, connect_deadline;
  uint64_t proto_deadline;       /* protocol timeout (HTTP header...), 0 off */
  uint64_t credit;               /* bytes written since last progress */
  uint64_t bytes_in, bytes_out;
  struct sockaddr_storage peer;
  socklen_t peer_len;
  uint32_t ip_hash;              /* bucket in the per-IP table */
  char peer_str[64];
  char *host;                    /* sl_connect: host to resolve */
  uint16_t port;
#ifdef SL_DEBUG_ASSERTS
  int full_balance;              /* SL_EV_FULL delivered minus SL_EV_DRAIN */
#endif
};

/* What the layers above the core (transport, protocols, hubs) may ask of a
 * connection's lifecycle. The lifecycle has one owner, conn.c: these answer
 * from c->state where the state is the truth, so no module above reads the
 * SL_F_ bits (scripts/check-layers.sh fails on any SL_F_ name in a
 * protocol or hub file). "Closing or draining", the point after which sends
 * fail, is the public sl_conn_is_closing. */
/* 1 once the connection is on the closing list (CLOSING or CLOSED): it is
 * freed at the next reap, and nothing it does reaches the peer any more. */
static inline int sl__conn_closing(const sl_conn *c) { return c->state >= SL_ST_CLOSING; }
/* 1 while the transport's handshake (TLS) runs. */
static inline int sl__conn_handshaking(const sl_conn *c) { return c->state == SL_ST_HANDSHAKE; }
/* 1 once the peer has sent its FIN (no more input will come). */
static inline int sl__conn_peer_eof(const sl_conn *c) { return (c->flags & SL_F_EOF) != 0; }
/* 1 while the application holds reading back (sl_conn_pause_read). */
static inline int sl__conn_paused(const sl_conn *c) { return (c->flags & SL_F_PAUSED) != 0; }

struct sl_wmsg;
struct sl_mod;

struct sl_mgr {
  sl_mgr_opts opts;
  const struct sl_poller_ops *pops;
  struct sl_poller *poller;
  struct sl_conn *conns;
  struct sl_conn *dirty;         /* connections with output to flush */
  struct sl_conn *closing;       /* connections to free at the reap */
  size_t npoll;                  /* connections wanting SL_EV_POLL */
  size_t nconns;
  uint64_t next_id;
  uint64_t now;
  struct sl_timers timers;
  struct sl_acct acct;
  sl_mgr_stats st;               /* counters not kept in acct */
  int in_poll;
  int spare_fd;                  /* for the EMFILE trick */

  /* Cross-thread wakeup channel (wakeup.c). */
  int wfd[2];                    /* eventfd in [0] ([1] == [0]) or a pipe */
  pthread_mutex_t wlock;
  struct sl_wmsg *whead, *wtail;
  size_t wcount;
  int wsignalled;

  struct sl_resolver *resolver;  /* started on first name lookup */
  /* The thread in sl_mgr_poll. Atomic: a publisher of another thread (a
   * hub group fanning out to every loop) reads it while the loop's first
   * sl_mgr_poll on a new thread may be writing it. */
  _Atomic pthread_t loop_thread;
  int loop_thread_set;
  uint64_t (*clock)(void);       /* tests: a fake clock */
  uint32_t *per_ip;              /* connection counts by hashed IP */
  size_t io_held;                /* bytes transports hold (in acct.held) */
  struct sl_mod *mods;           /* modules' state (sl__mgr_on_free) */
};

/* ---- module hooks on the manager ----
 * A module above the core (hubs, TLS) that keeps state per manager
 * registers it once with a cleanup callback; sl_mgr_free runs the
 * callbacks, newest first, before it closes the connections (the
 * connections' own SL_EV_CLOSE still runs after). `key` is the address of
 * a static object of the module: it names the slot without the core
 * knowing the module. Loop thread only. */

/* Register `state` under `key` with `fn` to run at sl_mgr_free. 0, or
 * SL_ENOMEM (nothing registered), or SL_EALREADY when `key` has a slot. */
int sl__mgr_on_free(sl_mgr *m, const void *key,
                    void (*fn)(sl_mgr *m, void *state), void *state);
/* The state slot registered under `key` (the callback may rewrite it), or
 * NULL when none. */
void **sl__mgr_slot(sl_mgr *m, const void *key);

/* Debug assertions: compiled into Debug, sanitizer and TSan builds
 * (CMake defines SL_DEBUG_ASSERTS), nothing in release. A failed one
 * logs the condition and its place, then aborts: it marks a bug in the
 * library, never bad input. */
#ifdef SL_DEBUG_ASSERTS
void sl__assert_fail(const char *cond, const char *file, int line);
#define SL_ASSERT(cond) \
  do { if (!(cond)) sl__assert_fail(#cond, __FILE__, __LINE__); } while (0)
#else
/* Type-checked but never evaluated. */
#define SL_ASSERT(cond) do { (void)sizeof(cond); } while (0)
#endif

/* Deliver an event: protocol first, then the user handler. */
void sl__call(sl_conn *c, int ev, void *ev_data);
/* Allocate and link a connection for fd (which may be -1). */
sl_conn *sl__conn_new(sl_mgr *m, int fd, sl_handler fn, void *data);
/* Register the fd with the poller using c->interest. */
int sl__conn_register(sl_conn *c);
/* Recompute the poller interest from the state and apply it. */
void sl__conn_update_interest(sl_conn *c);
/* Put c on the flush list. */
void sl__conn_mark_dirty(sl_conn *c);
/* Resolve c->lim from c->lim_set, the listener's and the manager's. */
void sl__conn_resolve_limits(sl_conn *c);
/* (Re)compute the connection's next deadline and arm its timer. */
void sl__conn_rearm(sl_conn *c);
/* I/O readiness handlers (conn.c). */
void sl__conn_on_readable(sl_conn *c);
void sl__conn_on_writable(sl_conn *c);
/* Flush as much output as the socket takes now; deliver WRITE/DRAIN. */
void sl__conn_flush(sl_conn *c);
/* Free a closing connection (delivers SL_EV_CLOSE first). */
void sl__conn_free(sl_conn *c);
/* Free a connection the application never saw (refused at accept, a
 * listener that failed to register): no SL_EV_CLOSE. */
void sl__conn_refuse(sl_conn *c, int reason);
/* Move c to state `to` (asserts the transition is legal). The one writer
 * of c->state and of the SL_F_STATE_BITS. */
void sl__conn_set_state(sl_conn *c, enum sl_state to);
/* The connection is up (accepted, connected, handshake done): move to
 * OPEN, deliver SL_EV_ACCEPT (server side) or SL_EV_CONNECT (client) once,
 * then flush what was queued meanwhile and start the idle clock. */
void sl__conn_announce(sl_conn *c);
/* Put the connection on the closing list (idempotent). */
void sl__conn_mark_closing(sl_conn *c);
/* Record why the connection closes. The rule: the first reason wins,
 * except that SL_CLOSE_PEER (a FIN) yields to a failure noted after it
 * (`failure` 1), so a reset after a FIN reads as the error. */
void sl__conn_note_reason(sl_conn *c, int reason, int failure);
/* Install transport `io` with its state (the previous one's is freed). */
void sl__conn_set_io(sl_conn *c, const struct sl_io *io, void *io_data);
/* 1 when output waits: queued bytes, or bytes the transport holds. */
int sl__conn_has_output(const sl_conn *c);
/* Fail the connection: note the reason as a failure (see
 * sl__conn_note_reason) and the error (first one wins), deliver SL_EV_ERROR
 * with `msg` (or the error's text) when there is a message or a
 * SL_CLOSE_ERROR error, and mark it closing. No-op when already closing. */
void sl__conn_fail(sl_conn *c, int reason, int err, const char *msg);
/* Start a non-blocking connect to a resolved address. */
void sl__conn_start_connect(sl_conn *c, const struct sockaddr *sa,
                            socklen_t len);
/* Set (abs_ms > 0) or clear (0) the protocol deadline: when it passes,
 * the protocol gets SL_EV_TIMEOUT with SL_CLOSE_TIMEOUT and the connection
 * closes unless the protocol already started closing it. */
void sl__conn_set_deadline(sl_conn *c, uint64_t abs_ms);
/* Install a protocol on a connection (frees the previous one's state). */
void sl__conn_set_proto(sl_conn *c, const struct sl_proto *p, void *pdata);
/* Per-IP accounting. */
int sl__ip_acquire(sl_mgr *m, sl_conn *c);
void sl__ip_release(sl_mgr *m, sl_conn *c);
/* Format a sockaddr as "ip:port" / "[ip]:port". */
void sl__addr_str(const struct sockaddr *sa, char *out, size_t outlen);

/* Parse an address or URL (addr.c). host receives the host (without
 * brackets), port the port (default_port when absent; scheme defaults
 * apply), path the rest (may be NULL). 0 or SL_EURL. */
int sl__parse_url(const char *url, char *host, size_t hostlen, uint16_t *port,
                  const char **path, int *tls);
/* Convert a literal IP and port to a sockaddr: 0, or SL_EURL when host is
 * not a literal address. "" and "*" mean any IPv4 address. */
int sl__literal_addr(const char *host, uint16_t port,
                     struct sockaddr_storage *ss, socklen_t *len);

/* Wakeup channel (wakeup.c). */
int sl__wakeup_open(sl_mgr *m);
void sl__wakeup_close(sl_mgr *m);
/* Drain the fd and run every queued message. */
int sl__wakeup_dispatch(sl_mgr *m);
/* Queue a call with a destructor that runs instead when it is dropped. Any
 * thread. */
int sl__mgr_call_drop(sl_mgr *m, void (*fn)(sl_mgr *, void *),
                      void (*drop)(void *), void *arg);

/* Resolver (resolve.c): look host up off-thread; on completion the loop
 * calls sl__conn_start_connect or fails the connection. */
int sl__resolve_start(sl_mgr *m, sl_conn *c);
void sl__resolver_stop(sl_mgr *m);

int sl__log_enabled(int level);
/* 1 when called on the manager's loop thread (or before it first polled). */
int sl__on_loop_thread(const sl_mgr *m);
/* Refresh m->now from the clock. */
void sl__mgr_tick(sl_mgr *m);
/* The process-wide log level (log.c). */
extern int sl__log_level;
/* A debug line: when the level is below debug, one load and compare, and
 * the arguments are not evaluated. */
#define SL_DEBUG(...) \
  do { if (sl__log_level >= SL_LOG_DEBUG) sl_log(SL_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
