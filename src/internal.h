/*
 * Definitions shared by the library's modules: the manager and connection
 * structs and the sl__ helpers between loop.c, conn.c and the protocols.
 * Nothing here is public; applications see only opaque pointers.
 */
#ifndef SL_INTERNAL_H
#define SL_INTERNAL_H

#include <netinet/in.h>
#include <pthread.h>
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

/* Byte transport of a connection: NULL means the plain socket. TLS and the
 * fake connections of unit tests provide their own. writev and read return
 * bytes moved, or -1 with errno set (EAGAIN when nothing can move now); a
 * transport that fails the connection itself (sl__conn_fail) returns -1
 * with any errno. writev returns the bytes of the queue's front it is done
 * with: the queue keeps the rest, so the output queue stays the one place
 * where a connection's bytes wait. The last three are optional. */
struct sl_io {
  ssize_t (*writev)(sl_conn *c, const struct iovec *iov, int n);
  ssize_t (*read)(sl_conn *c, void *buf, size_t len);
  /* What the transport holds beyond the queue and the input buffer:
   * SL_POLL_OUT for bytes still to write to the socket (a handshake
   * flight, an alert), SL_POLL_IN for input already taken from the socket
   * that the poller can no longer signal (decrypted, not yet read). */
  int (*held)(const sl_conn *c);
  /* Drive the handshake while SL_F_HANDSHAKE is set: called instead of
   * read when the socket is readable, and when a client connects. */
  void (*handshake)(sl_conn *c);
  /* Release the transport's state; the fd is still open. */
  void (*free)(sl_conn *c);
};

enum {
  SL_F_LISTENER = 1u << 0,
  SL_F_CLIENT = 1u << 1,
  SL_F_RESOLVING = 1u << 2,
  SL_F_CONNECTING = 1u << 3,
  SL_F_CLOSING = 1u << 4,  /* freed at the next reap */
  SL_F_FLUSHING = 1u << 5, /* graceful close: drain output first */
  SL_F_RESET = 1u << 6,    /* close with RST */
  SL_F_PAUSED = 1u << 7,   /* reading paused by the application */
  SL_F_FULL = 1u << 8,     /* between FULL and DRAIN */
  SL_F_BUSY = 1u << 9,     /* idle timeout off */
  SL_F_POLL = 1u << 10,    /* wants SL_EV_POLL */
  SL_F_EOF = 1u << 11,     /* peer sent FIN */
  SL_F_DIRTY = 1u << 12,   /* on the flush list */
  SL_F_ACCEPT_WAIT = 1u << 13, /* listener paused after EMFILE */
  SL_F_FULL_PENDING = 1u << 14, /* FULL to deliver at the flush phase */
  SL_F_CLOSE_EV = 1u << 15,     /* SL_EV_CLOSE delivered */
  SL_F_HANDSHAKE = 1u << 16,    /* transport handshake in progress (TLS):
                                   no application bytes either way, the
                                   connect_deadline bounds it, and
                                   SL_EV_ACCEPT/CONNECT wait for its end */
  SL_F_IO_INPUT = 1u << 17,     /* the transport holds input: read it at
                                   the flush phase (see sl_io.held) */
  SL_F_ANNOUNCED = 1u << 18,    /* SL_EV_ACCEPT or SL_EV_CONNECT delivered */
};

struct sl_conn {
  struct sl_conn *prev, *next;   /* manager's list */
  struct sl_conn *dirty_next;    /* flush list */
  struct sl_conn *close_next;    /* closing list */
  sl_mgr *mgr;
  uint64_t id;
  int fd;
  unsigned flags;
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
  const struct sl_io *io;
  void *io_data;
  /* A listener's TLS context (a reference): its accepted connections do
   * the server handshake with it. */
  struct sl_tls_ctx *tls_ctx;
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
};

struct sl_wmsg;

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
  pthread_t loop_thread;         /* the thread in sl_mgr_poll */
  int loop_thread_set;
  uint64_t (*clock)(void);       /* tests: a fake clock */
  struct sl_hub *hubs;           /* registry of named hubs (hub.c) */
  uint32_t *per_ip;              /* connection counts by hashed IP */
  struct sl_tls_ctx *tls_client; /* default TLS client context, lazy */
  size_t tls_held;               /* TLS record buffers (in acct.held) */
};

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
/* Free a closing connection (after SL_EV_CLOSE). */
void sl__conn_free(sl_conn *c);
/* Put the connection on the closing list (idempotent). */
void sl__conn_mark_closing(sl_conn *c);
/* 1 when output waits: queued bytes, or bytes the transport holds. */
int sl__conn_has_output(const sl_conn *c);
/* Mark the connection closing with a reason and error (first one wins). */
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
/* Free every hub of the manager (hub.c). */
void sl__hubs_free(sl_mgr *m);
#define SL_DEBUG(...) \
  do { if (sl__log_enabled(SL_LOG_DEBUG)) sl_log(SL_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
