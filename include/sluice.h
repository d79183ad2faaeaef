/*
 * sluice: an embeddable, event-driven networking library for live media.
 *
 * One manager (sl_mgr) runs one event loop on one thread. Every connection
 * (sl_conn) has one handler that receives events (SL_EV_*), Mongoose-style.
 * What makes sluice different is the send path: each connection's output is
 * a bounded queue of segments, either small copied chunks or references to
 * shared, immutable, refcounted buffers (sl_buf), so one frame sent to a
 * thousand viewers is stored once, and no viewer can make the process hold
 * more than the limits the application chose.
 *
 * Conventions used throughout this header:
 * - Functions returning int return 0 (or a count) on success and a negative
 *   SL_E* code on failure. A failed call changes nothing.
 * - Constructors return NULL on failure and, when `err` is not NULL, store
 *   the SL_E* code there.
 * - Unless a comment says otherwise, every function must be called from the
 *   thread that runs the manager's loop. The exceptions are marked
 *   "any thread".
 * - Pointers handed to a handler in ev_data are valid only until the handler
 *   returns.
 * - The library never aborts the process and never raises SIGPIPE.
 *
 * Index: the sections of this header, in order, and where to start in each.
 *   Errors ............................ SL_E* codes, sl_strerror
 *   Logging ........................... sl_log_set, sl_log
 *   Memory ............................ sl_set_allocator, sl_mem_stats_get
 *   Shared buffers .................... sl_buf_new, sl_buf_ref, sl_buf_unref
 *   Events, close reasons and limits .. SL_EVENTS, the re-entrancy rules,
 *                                       sl_ev_name, sl_limits
 *   The manager ....................... sl_mgr_new, sl_mgr_poll, sl_mgr_call,
 *                                       sl_mgr_wakeup, sl_mgr_stats_get
 *   Connections: sending .............. sl_listen, sl_connect, sl_send,
 *                                       sl_send_buf, sl_sendv, sl_conn_room
 *   Connections: input, closing ....... sl_conn_in, sl_conn_close,
 *                                       sl_conn_set_limits, sl_conn_sockopt
 *   Connections: counters, iteration .. sl_conn_stats_get, sl_conn_next
 *   Timers ............................ sl_timer_add, sl_timer_free
 *   HTTP/1.1 .......................... sl_http_listen, sl_http_reply,
 *                                       sl_router_new, sl_http_serve_dir
 *   HTTP helpers ...................... sl_url_decode, sl_http_var,
 *                                       sl_http_cookie, sl_json_get
 *   multipart/form-data ............... sl_multipart_new, sl_multipart_feed
 *   TLS ............................... sl_tls_server_new, sl_conn_tls
 *   HTTP client ....................... sl_http_request
 *   WebSocket ......................... sl_ws_upgrade, sl_ws_connect, sl_ws_send
 *   Hubs .............................. sl_hub_new, sl_hub_publish,
 *                                       sl_hub_attach, sl_hub_stats_get
 *   Multiplexing ...................... sl_mux_new, sl_mux_subscribe
 *   H.264 ............................. sl_h264_reader_new, sl_h264_parse_sps
 *   Fragmented MP4 .................... sl_fmp4_init, sl_fmp4_fragment
 * docs/architecture.md has the layers, the path of a frame and the threads.
 */
#ifndef SLUICE_H
#define SLUICE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SL_STATIC_BUILD)
#define SL_API
#elif defined(__GNUC__)
#define SL_API __attribute__((visibility("default")))
#else
#define SL_API
#endif

#define SL_VERSION_MAJOR 0
#define SL_VERSION_MINOR 1
#define SL_VERSION_PATCH 0
#define SL_VERSION "0.1.0"

/* Returns SL_VERSION of the library actually linked. Any thread. */
SL_API const char *sl_version(void);

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/* One list produces the codes, their names and their messages, so the three
 * cannot drift apart. Codes equal -errno where one fits. */
#define SL_ERRORS(X)                                                        \
  X(SL_OK, 0, "success")                                                    \
  X(SL_EPERM, -1, "operation not permitted")                                \
  X(SL_ENOENT, -2, "no such file or directory")                             \
  X(SL_EINTR, -4, "interrupted")                                            \
  X(SL_EIO, -5, "input/output error")                                       \
  X(SL_EBADF, -9, "bad file descriptor")                                    \
  X(SL_EAGAIN, -11, "resource temporarily unavailable")                     \
  X(SL_ENOMEM, -12, "out of memory")                                        \
  X(SL_EACCES, -13, "permission denied")                                    \
  X(SL_EBUSY, -16, "busy")                                                  \
  X(SL_EEXIST, -17, "already exists")                                       \
  X(SL_EINVAL, -22, "invalid argument")                                     \
  X(SL_EMFILE, -24, "too many open files")                                  \
  X(SL_ENOSPC, -28, "no space left")                                        \
  X(SL_EPIPE, -32, "broken pipe")                                           \
  X(SL_ERANGE, -34, "value out of range")                                   \
  X(SL_ENAMETOOLONG, -36, "name too long")                                  \
  X(SL_ENOSYS, -38, "not implemented on this platform")                     \
  X(SL_EMSGSIZE, -90, "message too long")                                   \
  X(SL_EPROTO, -71, "protocol error")                                       \
  X(SL_ENOTSUP, -95, "operation not supported")                             \
  X(SL_EAFNOSUPPORT, -97, "address family not supported")                   \
  X(SL_EADDRINUSE, -98, "address already in use")                           \
  X(SL_EADDRNOTAVAIL, -99, "address not available")                         \
  X(SL_ENETUNREACH, -101, "network unreachable")                            \
  X(SL_ECONNABORTED, -103, "connection aborted")                            \
  X(SL_ECONNRESET, -104, "connection reset by peer")                        \
  X(SL_ENOBUFS, -105, "send limit reached: queue is at send_max")           \
  X(SL_ENOTCONN, -107, "not connected")                                     \
  X(SL_ETIMEDOUT, -110, "timed out")                                        \
  X(SL_ECONNREFUSED, -111, "connection refused")                            \
  X(SL_EHOSTUNREACH, -113, "host unreachable")                              \
  X(SL_EALREADY, -114, "already in progress")                               \
  X(SL_ECANCELED, -125, "canceled")                                         \
  X(SL_EBUDGET, -4001, "memory budget of the manager exhausted")            \
  X(SL_ECLOSING, -4002, "connection is closing")                            \
  X(SL_ELIMIT, -4003, "connection limit reached")                           \
  X(SL_ERESOLVE, -4004, "host name could not be resolved")                  \
  X(SL_EURL, -4005, "malformed URL or address")                             \
  X(SL_ETLS, -4006, "TLS error")                                            \
  X(SL_EHTTP, -4007, "HTTP protocol error")                                 \
  X(SL_EWS, -4008, "WebSocket protocol error")                              \
  X(SL_EFULL, -4009, "queue full")                                          \
  X(SL_EAUTH, -4010, "authentication failed")

enum sl_err {
#define SL__ERR_ENUM(name, val, msg) name = (val),
  SL_ERRORS(SL__ERR_ENUM)
#undef SL__ERR_ENUM
};

/* The message for an SL_E* code (or "unknown error"). Any thread. */
SL_API const char *sl_strerror(int err);
/* The symbolic name ("SL_ENOBUFS") of a code, or "SL_E?". Any thread. */
SL_API const char *sl_err_name(int err);

/* ------------------------------------------------------------------ */
/* Logging                                                             */
/* ------------------------------------------------------------------ */

enum { SL_LOG_NONE, SL_LOG_ERROR, SL_LOG_WARN, SL_LOG_INFO, SL_LOG_DEBUG };

/* A log sink: receives one formatted line (no trailing newline). */
typedef void (*sl_log_fn)(int level, const char *line, void *arg);

/* Set the process-wide log level (default SL_LOG_WARN) and, optionally, a
 * sink (NULL restores the default, which writes to stderr). Any thread, but
 * best called once at start-up. */
SL_API void sl_log_set(int level, sl_log_fn fn, void *arg);
/* Log through the library's sink, if `level` is enabled. Any thread. */
SL_API void sl_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------ */
/* Memory: allocator hooks and exact process-wide counters             */
/* ------------------------------------------------------------------ */

/* Replace the allocator used for everything the library allocates. Must be
 * called before any other sl_ call; returns SL_EBUSY afterwards. Any of the
 * three may be NULL to keep the libc one. */
SL_API int sl_set_allocator(void *(*malloc_fn)(size_t),
                            void *(*realloc_fn)(void *, size_t),
                            void (*free_fn)(void *));

/* Process-wide counters of every byte the library holds, by kind. Exact:
 * they return to zero when every manager and buffer is freed. */
typedef struct sl_mem_stats {
  size_t total;   /* all bytes the library holds now */
  size_t peak;    /* highest `total` seen */
  size_t out;     /* owned output chunks (copied sends) */
  size_t in;      /* input buffers */
  size_t bufs;    /* shared buffers (sl_buf), each counted once (a hub
                     group's per-loop aliases of a frame add only their
                     headers: the bytes are counted once) */
  size_t meta;    /* connections, segments, timers and other bookkeeping */
  size_t nbufs;   /* live sl_buf objects */
} sl_mem_stats;

/* Fill `out` with the current process-wide counters. Any thread. */
SL_API void sl_mem_stats_get(sl_mem_stats *out);
/* Start a new peak window: `peak` becomes the current `total`, and from
 * then on records the highest `total` seen since this call. For measuring
 * one phase of a program (a burst of connections, a mass disconnect)
 * exactly, without sampling. Any thread; an allocation racing with the
 * call on another thread may or may not count in the new window. */
SL_API void sl_mem_peak_reset(void);

/* ------------------------------------------------------------------ */
/* Shared buffers                                                      */
/* ------------------------------------------------------------------ */

typedef struct sl_buf sl_buf;

/* Allocate a shared buffer of `len` bytes (contents uninitialised) with one
 * reference, owned by the caller. Fill it with sl_buf_data(), then treat it
 * as immutable once it is sent or published. NULL on allocation failure.
 * Any thread.
 * Example: sl_buf *b = sl_buf_new(n); memcpy(sl_buf_data(b), src, n); */
SL_API sl_buf *sl_buf_new(size_t len);
/* sl_buf_new() plus a copy of `len` bytes from `data`. Any thread. */
SL_API sl_buf *sl_buf_from(const void *data, size_t len);
/* Writable pointer to the bytes. Write only before sharing. Any thread. */
SL_API void *sl_buf_data(sl_buf *b);
/* Read-only view of the bytes. Any thread. */
SL_API const void *sl_buf_cdata(const sl_buf *b);
/* Length in bytes. Any thread. */
SL_API size_t sl_buf_len(const sl_buf *b);
/* Shrink the visible length (not the allocation) to `len` <= current
 * length, before sharing. Returns 0 or SL_EINVAL. */
SL_API int sl_buf_truncate(sl_buf *b, size_t len);
/* Take one more reference; returns `b`. Any thread. */
SL_API sl_buf *sl_buf_ref(sl_buf *b);
/* Drop one reference; the buffer is freed when the last one goes. Any
 * thread. NULL is ignored. */
SL_API void sl_buf_unref(sl_buf *b);
/* Current reference count (for tests and statistics). Any thread. */
SL_API unsigned sl_buf_refs(const sl_buf *b);

/* ------------------------------------------------------------------ */
/* Events, close reasons and limits                                    */
/* ------------------------------------------------------------------ */

typedef struct sl_mgr sl_mgr;
typedef struct sl_conn sl_conn;
typedef struct sl_timer sl_timer;
/* A TLS context: see the "TLS" section. */
typedef struct sl_tls_ctx sl_tls_ctx;

/* A string slice: NOT NUL-terminated, borrowed from whoever gave it. */
#ifndef SL_STR_DEFINED
#define SL_STR_DEFINED
typedef struct sl_str {
  const char *ptr;
  size_t len;
} sl_str;
#endif

/* The events a handler receives, with the type of ev_data for each. One
 * list gives both the enum and sl_ev_name(). A hub reports its own events
 * (viewers joining and leaving, readiness) to sl_hub_opts.on_event, not to
 * the connections' handlers. */
#define SL_EVENTS(X)                                                        \
  X(SL_EV_ERROR, "error")     /* const char *message; SL_EV_CLOSE follows */ \
  X(SL_EV_OPEN, "open")       /* NULL: connection object created */         \
  X(SL_EV_RESOLVE, "resolve") /* NULL: host name resolved */                \
  X(SL_EV_CONNECT, "connect") /* NULL: outbound connection established */   \
  X(SL_EV_ACCEPT, "accept")   /* NULL: inbound connection accepted */       \
  X(SL_EV_READ, "read")       /* size_t *n: bytes just appended to input */ \
  X(SL_EV_WRITE, "write")     /* size_t *n: bytes the kernel accepted */    \
  X(SL_EV_FULL, "full")       /* NULL: queued bytes crossed send_high */    \
  X(SL_EV_DRAIN, "drain")     /* NULL: fell to send_low after a FULL */     \
  X(SL_EV_TIMEOUT, "timeout") /* int *reason (SL_CLOSE_IDLE/STALL/...) */   \
  X(SL_EV_CLOSE, "close")     /* NULL: last event; sl_conn_close_reason() */ \
  X(SL_EV_POLL, "poll")       /* NULL: once per sl_mgr_poll, if enabled */   \
  X(SL_EV_WAKEUP, "wakeup")   /* sl_str *msg from sl_mgr_wakeup() */         \
  X(SL_EV_HTTP_MSG, "http-msg")   /* struct sl_http_msg * (request/resp) */ \
  X(SL_EV_HTTP_CHUNK, "http-chunk") /* sl_str *data: a piece of a body */   \
  X(SL_EV_HTTP_HEADERS, "http-headers") /* sl_http_msg *: request head,  \
                                         body not read yet */           \
  X(SL_EV_WS_OPEN, "ws-open") /* struct sl_http_msg *: upgrade request */   \
  X(SL_EV_WS_MSG, "ws-msg")   /* struct sl_ws_msg *: a whole message */     \
  X(SL_EV_WS_CTL, "ws-ctl")   /* struct sl_ws_msg *: ping/pong/close */     \
  X(SL_EV_USER, "user")       /* first number free for applications */

enum sl_ev {
#define SL__EV_ENUM(name, str) name,
  SL_EVENTS(SL__EV_ENUM)
#undef SL__EV_ENUM
};

/* Re-entrancy: which events may fire inside which calls. Handlers run on
 * the loop thread only, from these places:
 *   - sl_mgr_poll: readiness (SL_EV_ACCEPT after SL_EV_OPEN for accepted
 *     connections, SL_EV_CONNECT, SL_EV_READ, SL_EV_WRITE, SL_EV_ERROR), the
 *     timer phase (SL_EV_TIMEOUT, timer callbacks), the wakeup queue
 *     (SL_EV_WAKEUP, sl_mgr_call functions), SL_EV_POLL, the flush phase
 *     (SL_EV_FULL, SL_EV_WRITE, SL_EV_DRAIN; SL_EV_READ of input a
 *     transport held), and last the reap: SL_EV_CLOSE.
 *   - sl_listen, sl_connect: SL_EV_OPEN of the new connection, inside the
 *     call; sl_connect may also deliver SL_EV_ERROR there (an address that
 *     fails at once). SL_EV_CLOSE still waits for the reap.
 *   - sl_mgr_free: SL_EV_CLOSE of every connection left.
 * Nothing else delivers an event. In particular sl_send, sl_sendv,
 * sl_send_buf, sl_printf, sl_conn_close, sl_conn_close_with,
 * sl_conn_consume, sl_conn_pause_read, sl_conn_set_limits and sl_conn_tls
 * never call a handler: sends only queue (SL_EV_FULL comes at the flush
 * phase), and closing only marks the connection, so it and its pointers
 * stay valid until the handler that closed it has returned. SL_EV_CLOSE
 * is never delivered inside another event of the same connection, and is
 * its last event. Protocol calls (sl_http_*, sl_ws_*, sl_hub_*) document
 * their own events. A handler may call any of these on any connection of
 * its manager, but never sl_mgr_poll or sl_mgr_free. Debug builds assert
 * the lifecycle this implies (src/conn.c, first comment). */

/* The name of an event ("drain"), or "?". Any thread. */
SL_API const char *sl_ev_name(int ev);

/* Why a connection closed; see sl_conn_close_reason(). */
#define SL_CLOSE_REASONS(X)                                                 \
  X(SL_CLOSE_NONE, "none")         /* still open */                          \
  X(SL_CLOSE_LOCAL, "local")       /* the application closed it */           \
  X(SL_CLOSE_PEER, "peer")         /* the peer closed (EOF) */               \
  X(SL_CLOSE_ERROR, "error")       /* socket or connect error */             \
  X(SL_CLOSE_IDLE, "idle")         /* idle_ms without traffic */             \
  X(SL_CLOSE_STALL, "stall")       /* stall_ms with output and no progress */ \
  X(SL_CLOSE_TIMEOUT, "timeout")   /* connect, header or handshake timeout */ \
  X(SL_CLOSE_PROTOCOL, "protocol") /* the peer broke the protocol */         \
  X(SL_CLOSE_LIMIT, "limit")       /* a size or lag limit was exceeded */    \
  X(SL_CLOSE_EVICTED, "evicted")   /* evicted to make room (slot/budget) */  \
  X(SL_CLOSE_SHUTDOWN, "shutdown") /* the manager was freed */

enum sl_close_reason {
#define SL__CR_ENUM(name, str) name,
  SL_CLOSE_REASONS(SL__CR_ENUM)
#undef SL__CR_ENUM
};

/* The name of a close reason ("stall"). Any thread. */
SL_API const char *sl_close_reason_name(int reason);

/* A connection's event handler. `c` is valid for the duration of the call;
 * after SL_EV_CLOSE it is freed. */
typedef void (*sl_handler)(sl_conn *c, int ev, void *ev_data);

/* Limits of one connection. In every field, 0 means "inherit": from the
 * listener for accepted connections, from the manager otherwise. */
typedef struct sl_limits {
  size_t send_max;    /* hard cap on queued bytes (4 MiB) */
  size_t send_high;   /* FULL when queued bytes rise to this (send_max/2) */
  size_t send_low;    /* DRAIN when they fall to this (send_max/8) */
  size_t recv_max;    /* input buffer cap; reading pauses there (64 KiB) */
  uint32_t idle_ms;   /* close after this long with no traffic (60 s) */
  uint32_t stall_ms;  /* close after this long with output pending and
                         zero bytes accepted by the kernel (60 s) */
  uint32_t min_rate;  /* bytes/s below which writes do not count as
                         progress against stall_ms (0: any byte counts) */
} sl_limits;

/* ------------------------------------------------------------------ */
/* The manager: options, the loop, thread hand-off, counters          */
/* ------------------------------------------------------------------ */

/* Poller backends. */
enum { SL_BACKEND_AUTO, SL_BACKEND_EPOLL, SL_BACKEND_POLL };

/* Manager options; zero-initialise and set what you need. */
typedef struct sl_mgr_opts {
  int backend;            /* SL_BACKEND_*; AUTO honours $SLUICE_BACKEND
                             ("epoll" or "poll"), else epoll on Linux */
  size_t max_conns;       /* 4096, and never above RLIMIT_NOFILE - 32 */
  size_t max_per_ip;      /* accepted connections per peer IP; 0 = off */
  size_t budget;          /* held-bytes budget; 0 = off */
  size_t wakeup_max;      /* queued cross-thread messages (1024) */
  sl_limits limits;       /* defaults for every connection */
  int reuseport;          /* 1: every listener of this manager sets
                             SO_REUSEPORT, so several managers (one per
                             thread) can each listen on the same address
                             and port, and the kernel spreads new
                             connections across them (Linux hashes the
                             peer's address and port). Each manager that
                             shares the port must set it. Port 0: listen
                             with the first manager, read the port back
                             (sl_conn_local_port) and give that number to
                             the others. Another program of the same user
                             that sets SO_REUSEPORT can join the port too
                             (the kernel then splits connections with it):
                             to refuse a taken port, bind it once without
                             the option first. SL_ENOTSUP from sl_listen
                             where the system has no SO_REUSEPORT.
                             Default 0 */
} sl_mgr_opts;

/* The preset for a small device (a 64 MB board: a few viewers, one
 * camera), docs/memory.md "Defaults for small devices" sets it beside the
 * defaults. Overwrites every field of `o` with:
 *   limits.send_max 512 KiB (default 4 MiB), recv_max 16 KiB (64 KiB),
 *   idle_ms 30 s (60 s), stall_ms 20 s (60 s); max_conns 64 (4096);
 *   max_per_ip 16 (off); budget 16 MiB (off); wakeup_max 256 (1024).
 * Adjust fields afterwards as needed, then pass `o` to sl_mgr_new. Hubs
 * have their own options (the same section gives a small sl_hub_opts:
 * max_subs, sub.stall_ms, budget). Any thread.
 * Example: sl_mgr_opts o; sl_mgr_opts_small(&o); m = sl_mgr_new(&o, &err); */
SL_API void sl_mgr_opts_small(sl_mgr_opts *o);
#define SL_SMALL_SEND_MAX (512u << 10)
#define SL_SMALL_RECV_MAX (16u << 10)
#define SL_SMALL_IDLE_MS 30000u
#define SL_SMALL_STALL_MS 20000u
#define SL_SMALL_MAX_CONNS 64u
#define SL_SMALL_MAX_PER_IP 16u
#define SL_SMALL_BUDGET (16u << 20)
#define SL_SMALL_WAKEUP_MAX 256u

/* Create a manager. `opts` may be NULL for the defaults; it is copied.
 * Returns NULL and sets *err (SL_ENOMEM, SL_EINVAL, or a system error from
 * the poller or the wakeup channel) on failure.
 * Example: sl_mgr *m = sl_mgr_new(NULL, NULL); ... sl_mgr_free(m); */
SL_API sl_mgr *sl_mgr_new(const sl_mgr_opts *opts, int *err);

/* Close every connection (each gets SL_EV_CLOSE with SL_CLOSE_SHUTDOWN),
 * stop every timer and free the manager. NULL is ignored. Must not be called
 * from inside a handler or timer callback. */
SL_API void sl_mgr_free(sl_mgr *m);

/* Run one iteration of the loop: wait up to `timeout_ms` (-1: until
 * something happens, 0: do not wait) for I/O, timers and wakeups, and
 * dispatch them. Returns the number of events dispatched, or a negative
 * SL_E* code if the poller failed (the manager stays usable). */
SL_API int sl_mgr_poll(sl_mgr *m, int timeout_ms);

/* Milliseconds of the manager's monotonic clock, cached per iteration. */
SL_API uint64_t sl_mgr_now(const sl_mgr *m);

/* The backend in use: "epoll" or "poll". */
SL_API const char *sl_mgr_backend(const sl_mgr *m);

/* Ask the manager's loop to run fn(m, arg) on its thread soon. Any thread.
 * Returns 0, SL_EFULL when wakeup_max messages are already waiting, or
 * SL_ENOMEM. `arg` is borrowed until fn runs (or until sl_mgr_free, which
 * drops pending calls without running them). */
SL_API int sl_mgr_call(sl_mgr *m, void (*fn)(sl_mgr *m, void *arg), void *arg);

/* Deliver SL_EV_WAKEUP with a copy of `data` to the connection whose
 * sl_conn_id() is `conn_id`, on the loop thread. Any thread. Returns 0,
 * SL_EFULL or SL_ENOMEM; a message for a connection that has gone is
 * dropped silently. */
SL_API int sl_mgr_wakeup(sl_mgr *m, uint64_t conn_id, const void *data,
                         size_t len);

/* Counters of one manager. Exact; all zero (but `conns` for listeners)
 * once every connection has closed. */
typedef struct sl_mgr_stats {
  size_t held;          /* bytes held: owned output + input buffers + each
                           shared buffer queued here, counted once */
  size_t peak;          /* highest `held` */
  size_t budget;        /* the budget, 0 = off */
  size_t out_owned;     /* owned output chunk bytes */
  size_t out_ref;       /* shared buffer bytes referenced by queues (once) */
  size_t in;            /* input buffer bytes */
  size_t queued;        /* sum of every connection's queued bytes */
  size_t tls;           /* TLS record buffers: ciphertext waiting for the
                           socket, at most one record per connection
                           (included in `held`) */
  size_t conns;         /* open connections, listeners included */
  uint64_t accepted;    /* connections accepted since start */
  uint64_t rejected;    /* refused by max_conns / max_per_ip / fd limit */
  uint64_t closed_by[SL_CLOSE_SHUTDOWN + 1]; /* closes by reason */
  uint64_t refused_sends; /* sends refused by send_max or the budget */
  uint64_t reads;       /* reads from connections (plain TCP: one recv
                           each), since start */
  uint64_t writes;      /* writes to connections (plain TCP: one send or
                           sendmsg each, however many segments and
                           responses it carries), since start */
} sl_mgr_stats;

/* Fill `out` with the manager's counters. */
SL_API void sl_mgr_stats_get(const sl_mgr *m, sl_mgr_stats *out);

/* Change the manager's held-bytes budget (0 = off). */
SL_API void sl_mgr_set_budget(sl_mgr *m, size_t budget);

/* ------------------------------------------------------------------ */
/* Connections: listening, connecting and sending                     */
/* ------------------------------------------------------------------ */

/* Listen on `url`: "host:port", "[v6]:port", ":port" (all IPv4 interfaces),
 * or "tcp://", "http://", "ws://" forms of those (TLS: sl_listen_tls, or
 * sl_http_listen with opts->tls). Accepted connections get
 * SL_EV_OPEN then SL_EV_ACCEPT on `fn`, with `data` as user data. Returns
 * the listening connection, or NULL with *err set (SL_EURL, SL_EADDRINUSE,
 * SL_EACCES, SL_ELIMIT, ...).
 * Example: sl_listen(m, "127.0.0.1:8080", on_event, NULL, &err); */
SL_API sl_conn *sl_listen(sl_mgr *m, const char *url, sl_handler fn,
                          void *data, int *err);

/* Connect to `url` ("host:port", "tcp://host:port", "http://host[:port]/..."
 * (port 80 when absent), "ws://..."; for TLS add sl_conn_tls() before
 * SL_EV_CONNECT). Host names are resolved off the loop
 * thread. Returns the connection at once; SL_EV_CONNECT follows on success,
 * SL_EV_ERROR then SL_EV_CLOSE on failure. NULL with *err for a malformed
 * URL or when no connection can be created. */
SL_API sl_conn *sl_connect(sl_mgr *m, const char *url, sl_handler fn,
                           void *data, int *err);

/* Copy `len` bytes into the connection's output queue. Returns 0, or:
 * SL_ENOBUFS when the queued bytes would exceed send_max, SL_EBUDGET when
 * the manager's budget would be exceeded, SL_ECLOSING when the connection is
 * closing, SL_ENOMEM. On error nothing is queued and no event fires. */
SL_API int sl_send(sl_conn *c, const void *data, size_t len);

/* printf into the output queue; same errors as sl_send(), plus SL_EINVAL
 * for a bad format. Returns 0, never a partial write. */
SL_API int sl_printf(sl_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
SL_API int sl_vprintf(sl_conn *c, const char *fmt, va_list ap);

/* Queue `len` bytes of shared buffer `b` from `off`, without copying: the
 * queue takes its own reference, dropped when those bytes are written or
 * the connection closes. Same errors as sl_send(), plus SL_ERANGE when
 * off+len is outside the buffer. The caller keeps its own reference. */
SL_API int sl_send_buf(sl_conn *c, sl_buf *b, size_t off, size_t len);

/* One piece of an atomic multi-part send: bytes to copy (buf == NULL) or a
 * range of a shared buffer (buf != NULL, data ignored). */
typedef struct sl_part {
  const void *data;
  sl_buf *buf;
  size_t off, len;
} sl_part;

/* Queue several parts as one unit: either all are queued or none (same
 * errors as sl_send). Used for a header plus a shared payload. */
SL_API int sl_sendv(sl_conn *c, const sl_part *parts, size_t n);

/* Bytes still accepted before send_max (0 when closing). */
SL_API size_t sl_conn_room(const sl_conn *c);
/* Queued bytes: owned chunk bytes + unsent referenced bytes. */
SL_API size_t sl_conn_queued(const sl_conn *c);

/* ------------------------------------------------------------------ */
/* Connections: input, closing, limits and options                    */
/* ------------------------------------------------------------------ */

/* The received bytes not yet consumed. `*len` receives their count. The
 * pointer is valid until the next sl_conn_consume or return to the loop. */
SL_API const char *sl_conn_in(const sl_conn *c, size_t *len);
/* Mark `n` bytes at the front of the input as consumed (clamped). Reading
 * resumes when the input had been full at recv_max. */
SL_API void sl_conn_consume(sl_conn *c, size_t n);
/* Stop (1) or resume (0) reading from the socket, whatever the input size. */
SL_API void sl_conn_pause_read(sl_conn *c, int paused);

/* Close the connection. SL_CLOSE_NOW drops queued output; SL_CLOSE_FLUSH
 * sends what is queued first (still bounded by stall_ms), refusing new
 * sends. SL_CLOSE_RESET closes with an RST so the kernel frees its buffers
 * at once. The connection is freed at a safe point of the loop, after its
 * handler gets SL_EV_CLOSE; calling this from a handler is safe. */
enum { SL_CLOSE_NOW = 0, SL_CLOSE_FLUSH = 1, SL_CLOSE_RESET = 2 };
SL_API void sl_conn_close(sl_conn *c, int how);
/* Like sl_conn_close(), recording `reason` (an SL_CLOSE_*) for the handler
 * and the statistics. */
SL_API void sl_conn_close_with(sl_conn *c, int how, int reason);

/* The reason set when the connection started closing (SL_CLOSE_NONE while
 * open). Valid in SL_EV_CLOSE. */
SL_API int sl_conn_close_reason(const sl_conn *c);
/* The SL_E* code of the error that closed it, or 0. */
SL_API int sl_conn_error(const sl_conn *c);

/* Set this connection's limits (0 fields inherit; see sl_limits). On a
 * listener, they become the defaults of the connections it accepts. Returns
 * SL_EINVAL when send_low > send_high > send_max. */
SL_API int sl_conn_set_limits(sl_conn *c, const sl_limits *lim);
/* The limits in force (inherited values resolved). */
SL_API void sl_conn_get_limits(const sl_conn *c, sl_limits *out);

/* Mark a long-lived exchange in progress (a streaming response): the idle
 * timeout does not apply while busy. */
SL_API void sl_conn_set_busy(sl_conn *c, int busy);
/* Deliver SL_EV_POLL to this connection once per sl_mgr_poll (off by
 * default: polling every connection each iteration is O(N) work). */
SL_API void sl_conn_set_poll(sl_conn *c, int on);

/* Socket options. Return 0 or an SL_E* code from setsockopt. */
enum {
  SL_OPT_NODELAY,        /* TCP_NODELAY, value 0/1 */
  SL_OPT_KEEPALIVE,      /* SO_KEEPALIVE with idle = value s, 3 probes
                            every value/3 s (0: off) */
  SL_OPT_USER_TIMEOUT,   /* TCP_USER_TIMEOUT, value ms */
  SL_OPT_NOTSENT_LOWAT,  /* TCP_NOTSENT_LOWAT, value bytes */
  SL_OPT_SNDBUF,         /* SO_SNDBUF, value bytes */
  SL_OPT_RCVBUF,         /* SO_RCVBUF, value bytes */
  SL_OPT_DSCP,           /* DiffServ code point, value 0..63 (AF41 = 34,
                            EF = 46, CS3 = 24): written as value << 2 into
                            IP_TOS (IPv4) or IPV6_TCLASS (IPv6, and IP_TOS
                            too for IPv4-mapped peers); the ECN bits stay
                            the kernel's. Marks every packet the socket
                            sends from then on. SL_EINVAL outside 0..63 */
  SL_OPT_PRIORITY        /* SO_PRIORITY (Linux): the queueing priority of
                            the socket's packets on the host (qdisc band,
                            VLAN PCP through egress maps), value 0..6
                            (7 and up need CAP_NET_ADMIN; SL_EINVAL);
                            SL_ENOTSUP elsewhere */
};
SL_API int sl_conn_sockopt(sl_conn *c, int opt, int value);

/* ------------------------------------------------------------------ */
/* Connections: counters, accessors and iteration                     */
/* ------------------------------------------------------------------ */

/* Per-connection counters. */
typedef struct sl_conn_stats {
  size_t queued;       /* owned + referenced unsent bytes */
  size_t owned;        /* owned chunk bytes unsent */
  size_t referenced;   /* unsent bytes of shared buffers */
  size_t segments;     /* segments in the output queue */
  size_t in;           /* unconsumed input bytes */
  uint64_t bytes_in, bytes_out;
  uint64_t opened_ms;       /* manager clock when created */
  uint64_t last_io_ms;      /* last byte either way */
  uint64_t last_progress_ms;/* last write that counted as progress */
  int full;                 /* between FULL and DRAIN */
} sl_conn_stats;
SL_API void sl_conn_stats_get(const sl_conn *c, sl_conn_stats *out);

/* Accessors. */
SL_API sl_mgr *sl_conn_mgr(const sl_conn *c);
SL_API uint64_t sl_conn_id(const sl_conn *c);       /* unique, never 0 */
SL_API int sl_conn_fd(const sl_conn *c);
SL_API void *sl_conn_data(const sl_conn *c);         /* user data */
SL_API void sl_conn_set_data(sl_conn *c, void *data);
SL_API void sl_conn_set_handler(sl_conn *c, sl_handler fn);
SL_API int sl_conn_is_listener(const sl_conn *c);
SL_API int sl_conn_is_client(const sl_conn *c);     /* made by sl_connect */
SL_API int sl_conn_is_closing(const sl_conn *c);
/* The peer's address as text ("127.0.0.1:5555", "[::1]:5555"). */
SL_API const char *sl_conn_peer(const sl_conn *c);
/* The local port (of a listener: the one bound, useful with port 0). */
SL_API int sl_conn_local_port(const sl_conn *c);
/* Look a connection up by id; NULL when gone. */
SL_API sl_conn *sl_conn_find(sl_mgr *m, uint64_t id);
/* Iterate the manager's connections, listeners and connections from
 * sl_connect included: pass NULL for the first, then the one returned
 * last; NULL at the end. Newest first. Every connection not yet freed is
 * visited, also one that is closing (sl_conn_is_closing: sends to it fail
 * with SL_ECLOSING), but not one inside its own SL_EV_CLOSE.
 * Rules while iterating, from a handler, timer or sl_mgr_call function:
 *   - closing any connection, `prev` included, is safe: a connection is
 *     freed only at the end of the loop iteration, after the handlers;
 *   - connections created meanwhile (sl_connect, sl_listen) go to the
 *     front and are not visited (accepts never run inside a handler);
 *   - do not keep a pointer past the return to the loop: keep
 *     sl_conn_id() and look it up with sl_conn_find().
 * Loop thread only; O(1) per step.
 * Example: for (sl_conn *c = sl_conn_next(m, NULL); c; c = sl_conn_next(m, c))
 *            if (sl_conn_listener(c) == api) sl_ws_send(c, SL_WS_TEXT, s, n); */
SL_API sl_conn *sl_conn_next(sl_mgr *m, sl_conn *prev);
/* The listener that accepted `c`; NULL for a listener, a connection made
 * by sl_connect, or when that listener has been freed. With sl_conn_next,
 * this iterates one listener's connections. */
SL_API sl_conn *sl_conn_listener(const sl_conn *c);

/* ------------------------------------------------------------------ */
/* Timers                                                              */
/* ------------------------------------------------------------------ */

/* Timers fire in order of due time; timers due at the same millisecond fire
 * in the order they were armed. A repeating timer is re-armed from its
 * previous due time, so it does not drift; if the loop fell more than one
 * period behind, it fires once and skips the missed periods. */
typedef void (*sl_timer_fn)(sl_mgr *m, void *arg);
enum { SL_TIMER_REPEAT = 1 };

/* Arm a timer that calls fn(m, arg) after `ms` (and every `ms` with
 * SL_TIMER_REPEAT). Returns the timer (owned by the manager; freed by
 * sl_timer_free, by the manager, or after a one-shot fires) or NULL with
 * *err = SL_ENOMEM. */
SL_API sl_timer *sl_timer_add(sl_mgr *m, uint64_t ms, int flags,
                              sl_timer_fn fn, void *arg, int *err);
/* Cancel and free a timer. Safe from inside its own callback. A one-shot
 * timer that already fired is already gone: do not free it. */
SL_API void sl_timer_free(sl_mgr *m, sl_timer *t);

/* ------------------------------------------------------------------ */
/* HTTP/1.1                                                            */
/* ------------------------------------------------------------------ */

#ifndef SL_HTTP_MSG_DEFINED
#define SL_HTTP_MSG_DEFINED
/* Compile-time cap of headers per message (the array below). */
#define SL_HTTP_MAX_HEADERS 64

typedef struct sl_http_header {
  sl_str name, value;
} sl_http_header;

/* A parsed request (server) or response head (client). Every sl_str points
 * into the connection's buffers: valid only during the event that carries
 * the message. */
typedef struct sl_http_msg {
  sl_str method;  /* request: "GET"; response: empty */
  sl_str uri;     /* request: the whole request-target as sent */
  sl_str path;    /* request: path part of the target, raw (not decoded) */
  sl_str query;   /* request: after the first '?', without it */
  sl_str proto;   /* "HTTP/1.1" or "HTTP/1.0" */
  int status;     /* response: status code; request: 0 */
  sl_str reason;  /* response: reason phrase */
  int version_minor; /* 0 or 1 */
  sl_http_header headers[SL_HTTP_MAX_HEADERS];
  size_t num_headers;
  size_t head_len;          /* bytes of start line + headers + blank line */
  long long content_length; /* -1 when absent */
  int chunked;              /* Transfer-Encoding: chunked */
  int keep_alive;           /* from the version and Connection */
  int expect_continue;      /* Expect: 100-continue */
  int upgrade_websocket;    /* Upgrade: websocket + Connection: upgrade */
  sl_str body;              /* request body (whole; bounded by max_body) */
} sl_http_msg;
#endif

/* An error the server answers by itself (see sl_http_listen), as
 * sl_http_opts.on_error sees it. Every pointer is valid only during the
 * call. */
typedef struct sl_http_error {
  int status;         /* 400, 408, 413, 414, 431, 501, 503 or 505 */
  const char *reason; /* why, NUL-terminated, at most 127 bytes: "header
                         line without colon", "body over 1048576 bytes",
                         "headers not complete in 10000 ms" */
  sl_str method;      /* the request's method and raw path (as sent, not
                         decoded) once its request line was read, else
                         empty (ptr NULL). While a body is read the path */
  sl_str path;        /* is a copy of its first 256 bytes */
} sl_http_error;

/* Replace the body of the errors the server answers by itself (JSON for
 * an API, say): the callback runs just before the library would send its
 * text reply ("413 Content Too Large: body over 1048576 bytes\n", with
 * Content-Type: text/plain) and may instead answer with sl_http_reply,
 * sl_http_replyf or sl_http_reply_buf on `c` (any status and headers; the
 * response says Connection: close and the connection closes after it,
 * SL_CLOSE_PROTOCOL, as after the default reply). Those are the only
 * calls it may make on `c` (sl_http_start and file serving fail with
 * SL_EINVAL). When it sends nothing, or its reply fails, the default
 * text goes. It runs on the loop thread, outside the connection's
 * handler, from inside sl_mgr_poll; `arg` is sl_http_opts.error_arg.
 * Example: if (e->path.len >= 5 && memcmp(e->path.ptr, "/api/", 5) == 0)
 *            sl_http_replyf(c, e->status, "Content-Type: application/json\r\n",
 *                           "{\"error\":%d,\"reason\":\"%s\"}", e->status, e->reason);
 * (the reasons hold no '"' or '\\'). */
typedef void (*sl_http_error_fn)(sl_conn *c, const sl_http_error *e,
                                 void *arg);

/* Options of an HTTP listener; zero fields take the defaults. */
typedef struct sl_http_opts {
  size_t max_request_line;   /* 8 KiB: longer gets 414 */
  size_t max_head;           /* 16 KiB of request line + headers: 431 */
  size_t max_headers;        /* 64 header lines: 431 */
  size_t max_body;           /* 1 MiB of request body: 413 */
  uint32_t header_timeout_ms;/* 10 s from accept or the previous response
                                to the end of the headers: 408 and close
                                (over TLS the handshake counts in it). It
                                stops at the end of the headers: a body
                                has the bounds below */
  uint32_t body_timeout_ms;  /* 60 s from the end of the headers to the
                                end of the body: 408 and close.
                                UINT32_MAX: no total limit (then set
                                body_min_rate). Raise it with max_body:
                                1 MiB in 60 s is 17 KB/s */
  uint32_t body_min_rate;    /* bytes/s a body must carry in each window
                                of body_rate_window_ms, the first window
                                excepted (a grace): else 408 and close.
                                0 (default): no rate check */
  uint32_t body_rate_window_ms; /* 5 s */
  sl_tls_ctx *tls;           /* a server context: serve HTTPS (and WSS);
                                the listener takes a reference. NULL:
                                plain HTTP */
  sl_http_error_fn on_error; /* NULL: the library's text bodies */
  void *error_arg;
} sl_http_opts;

/* Listen for HTTP/1.1 on `url` (see sl_listen), over TLS when opts->tls
 * is set (SL_EINVAL when it is not a server context, or when `url` says
 * https:// or wss:// and opts->tls is NULL). Each request reaches `fn`
 * as SL_EV_HTTP_MSG with a `sl_http_msg *` whose body is complete. Requests
 * on one connection are delivered one at a time, in order: the next is
 * parsed only once the current response is complete (sl_http_reply, or
 * sl_http_end after sl_http_start). Malformed or oversized requests are
 * answered by the library (400, 408, 413, 414, 431, 501, 503, 505) and
 * never reach `fn`: a text body names the status and the reason ("400 Bad
 * Request: header line without colon", "431 Request Header Fields Too
 * Large: header section over 16384 bytes", "408 Request Timeout: body not
 * complete in 60000 ms"), or the application writes its own
 * (sl_http_opts.on_error); the connection then closes. `opts` may be
 * NULL; it is copied.
 *
 * Each request first reaches `fn` as SL_EV_HTTP_HEADERS, with the same
 * `sl_http_msg *` but its body not read yet (body.len 0), before any
 * "100 Continue" is sent. The handler may ignore it (SL_EV_HTTP_MSG
 * follows as above), or:
 *   - answer at once (sl_http_reply*, sl_http_start, e.g. 401 or 413): the
 *     request is done, SL_EV_HTTP_MSG does not follow, 100 Continue is
 *     not sent and the body is not read. A request with a body then gets
 *     "Connection: close" and the connection closes after the response
 *     (the unread body leaves no way to find the next request);
 *   - set this request's body limit (sl_http_body_max; a router route's
 *     limit through sl_router_headers);
 *   - take the body as it arrives (sl_http_body_stream).
 * The message's pointers are valid only during the event, like every
 * sl_http_msg. Only these calls act on the request from the event.
 * Example: sl_http_listen(m, "127.0.0.1:8080", NULL, on_http, NULL, &err); */
SL_API sl_conn *sl_http_listen(sl_mgr *m, const char *url,
                               const sl_http_opts *opts, sl_handler fn,
                               void *data, int *err);

/* Reply with a complete response: status line, `headers` (zero or more
 * "Name: value\r\n" lines, borrowed, may be NULL), Content-Length and
 * `len` bytes of `body` (copied). To a HEAD request the body is omitted.
 * `headers` is checked first: every line a field name of token characters,
 * ':', a value without control characters (HTAB allowed) and CRLF; no
 * empty line, no bare CR or LF, nothing after the last CRLF. A missing
 * final "\r\n" would glue Content-Length onto the last value, an empty
 * line would split the response: either is SL_EINVAL, with nothing sent
 * (this holds for every function here that takes `headers`).
 * Returns 0, SL_EINVAL when no request is waiting for a response or the
 * headers are malformed, or a send error (SL_ENOBUFS, SL_EBUDGET: nothing
 * was queued; the caller may reply with something smaller, or close).
 * Example: sl_http_reply(c, 200, "Content-Type: text/plain\r\n", "hi", 2); */
SL_API int sl_http_reply(sl_conn *c, int status, const char *headers,
                         const void *body, size_t len);
/* sl_http_reply with a printf-formatted body. */
SL_API int sl_http_replyf(sl_conn *c, int status, const char *headers,
                          const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* sl_http_reply with a zero-copy body: `len` bytes of `b` from `off` (a
 * reference is taken by the queue). */
SL_API int sl_http_reply_buf(sl_conn *c, int status, const char *headers,
                             sl_buf *b, size_t off, size_t len);

/* Ways to start a response whose body is written later. */
enum {
  SL_HTTP_CHUNKED = 1, /* Transfer-Encoding: chunked; sl_http_write */
  SL_HTTP_STREAM = 2   /* no length, Connection: close; write with sl_send*
                          or sl_http_write; ends by closing. For
                          long-lived streams (multipart MJPEG). */
};

/* Send the status line and headers of a response whose body follows. The
 * connection is marked busy (no idle timeout) until sl_http_end. Returns 0
 * or an error as sl_http_reply. */
SL_API int sl_http_start(sl_conn *c, int status, const char *headers,
                         int mode);
/* Write a piece of the body started with sl_http_start (copied; as one
 * chunk in SL_HTTP_CHUNKED mode). `len` 0 is a no-op. Same errors as
 * sl_send; nothing is queued on error. */
SL_API int sl_http_write(sl_conn *c, const void *data, size_t len);
/* As sl_http_write, zero-copy from a shared buffer. */
SL_API int sl_http_write_buf(sl_conn *c, sl_buf *b, size_t off, size_t len);
/* Finish the body: the last chunk in SL_HTTP_CHUNKED mode (then the next
 * pipelined request is served), a graceful close in SL_HTTP_STREAM mode. */
SL_API int sl_http_end(sl_conn *c);

/* Set the body limit of the current request, in bytes (0: no body
 * allowed), in place of sl_http_opts.max_body. Only inside
 * SL_EV_HTTP_HEADERS; it holds for that request alone. A Content-Length
 * above it is answered 413 by the library right after the event (before
 * 100 Continue); a chunked body that grows past it, 413 when it does. A
 * buffered body (the default) is held in memory up to this limit, under
 * the manager's budget (503 when it has no room): raise it for large
 * bodies only with sl_http_body_stream, or with a budget. Returns 0, or
 * SL_EINVAL outside the headers event (or on a connection that is not an
 * HTTP server's). Loop thread. */
SL_API int sl_http_body_max(sl_conn *c, unsigned long long max);

/* Take the current request's body as it arrives (`on` 1) instead of whole
 * in SL_EV_HTTP_MSG (the default, `on` 0). Only inside SL_EV_HTTP_HEADERS.
 * The handler then gets, in order:
 *   SL_EV_HTTP_CHUNK  sl_str *: the next piece of the body, de-chunked,
 *                     pointing into the connection's input buffer (at
 *                     most recv_max bytes), valid until the handler
 *                     returns and consumed then (do not call
 *                     sl_conn_consume). Copy what you keep.
 *   SL_EV_HTTP_CHUNK  with len == 0, once: the body is complete (also for
 *                     a request without a body). The request now waits
 *                     for its response, as after SL_EV_HTTP_MSG, which is
 *                     not delivered for a streamed request.
 * The request head (method, path, headers) is NOT available during the
 * chunks: keep what you need from SL_EV_HTTP_HEADERS.
 * Memory: nothing is copied; the body costs the input buffer and no more,
 * whatever its size. Backpressure: sl_conn_pause_read(c, 1) stops reading
 * from the socket, so TCP pushes back on the client; the bytes already
 * read (at most recv_max) are still delivered in the same dispatch;
 * sl_conn_pause_read(c, 0) resumes (from a timer, another connection's
 * event, or a later chunk). While reading is paused the body bounds
 * (body_timeout_ms, body_min_rate) wait; the connection's idle_ms does
 * not (sl_conn_set_busy for a long pause).
 * The body limit (sl_http_body_max, else max_body) holds for a streamed
 * body too: raise it for large uploads. A body that breaks a bound (400
 * bad chunked framing, 408 too slow, 413 too large) is answered by the
 * library and the connection closes: the handler sees SL_EV_CLOSE without
 * the empty piece. The handler may answer before the end (say 507 when its
 * disk fills): no more pieces come, the response says Connection: close.
 * Returns 0, or SL_EINVAL outside the headers event. Loop thread.
 * Example (in SL_EV_HTTP_HEADERS): sl_http_body_max(c, 1ull << 32);
 *                                  sl_http_body_stream(c, 1); */
SL_API int sl_http_body_stream(sl_conn *c, int on);

/* Reply `status` with a short text body naming it, e.g. 404 Not Found. */
SL_API int sl_http_reply_status(sl_conn *c, int status);
/* The reason phrase of a status code ("Not Found"), or "Unknown". */
SL_API const char *sl_http_status_text(int status);

/* Look a header up, case-insensitively. NULL when absent. */
SL_API const sl_str *sl_http_get_header(const sl_http_msg *m, const char *name);
/* Decode query parameter `name` (form-style: %XX and '+') into `out`
 * (`outcap` bytes, caller's; NUL-terminated). The first match wins; "k"
 * alone has an empty value. Returns the value's length (>= 0), SL_ENOENT
 * when absent, SL_EINVAL for a bad %-escape, SL_EMSGSIZE when the value
 * and its NUL do not fit; `out` is untouched on an error. */
SL_API int sl_http_query(const sl_http_msg *m, const char *name, char *out,
                         size_t outcap);
/* 1 when the method equals `method` (e.g. "GET"), else 0. */
SL_API int sl_http_is_method(const sl_http_msg *m, const char *method);

/* Match the request path against `pattern`: literal segments, "*" for
 * exactly one segment and a trailing "**" for the rest (possibly empty).
 * The path is compared decoded ("/%61pi" matches "/api") and normalised as
 * sl_http_serve_dir resolves it (empty and "." segments skipped), so a
 * route guarding a directory cannot be sidestepped by spelling; a path
 * the file server refuses (a ".." segment, also %2e%2e, an encoded '/' or
 * '\\', NUL or another control, a bad escape) matches no pattern at all.
 * Up to `ncaps` captures (one per wildcard) are stored in `caps`, pointing
 * into the request's raw path: still percent-encoded (decode them with
 * sl_url_decode). Returns 1 on a match, else 0.
 * Example: sl_http_match(m, "/streams/ * /stream.mjpg", caps, 1) (no spaces) */
SL_API int sl_http_match(const sl_http_msg *m, const char *pattern,
                         sl_str *caps, size_t ncaps);

/* A router maps methods and path patterns (see sl_http_match) to
 * handlers. Handlers get the request and the pattern's captures. */
#define SL_ROUTE_MAX_CAPS 8
typedef void (*sl_route_fn)(sl_conn *c, const sl_http_msg *m,
                            const sl_str *caps, void *data);
typedef struct sl_router sl_router;
/* A new, empty router; NULL on allocation failure. */
SL_API sl_router *sl_router_new(void);
/* Free a router (not the data handed to its routes). NULL is ignored. */
SL_API void sl_router_free(sl_router *r);
/* Add a route: `method` ("GET"; NULL for any) and `pattern` are copied.
 * Routes are tried in the order added. Returns 0, SL_ENOMEM, or SL_EINVAL
 * for a pattern that does not start with '/'. */
SL_API int sl_router_add(sl_router *r, const char *method,
                         const char *pattern, sl_route_fn fn, void *data);
/* Options of one route; zero fields take the defaults. */
typedef struct sl_route_opts {
  unsigned long long max_body; /* body limit of requests this route gets
                                  (see sl_http_body_max); 0: the server's
                                  max_body */
} sl_route_opts;
/* sl_router_add with options (`opts` copied; NULL: the defaults). */
SL_API int sl_router_add_opts(sl_router *r, const char *method,
                              const char *pattern, sl_route_fn fn,
                              void *data, const sl_route_opts *opts);
/* Apply the options of the route that will get this request (the same
 * rule as sl_router_dispatch) from SL_EV_HTTP_HEADERS: its body limit.
 * Call it there, and sl_router_dispatch on SL_EV_HTTP_MSG; without it the
 * server's max_body holds. Returns 1 when a route matched, else 0 (nothing
 * changed). `m` is borrowed for the call. Loop thread.
 * Example: if (ev == SL_EV_HTTP_HEADERS) sl_router_headers(r, c, ev_data); */
SL_API int sl_router_headers(sl_router *r, sl_conn *c, const sl_http_msg *m);
/* Run the first route matching the request (sl_http_match: decoded path,
 * unsafe paths match none). A GET route also answers HEAD. When the path
 * matches a route but not its method, replies 405 with an Allow header
 * listing the routes' methods (HEAD beside GET). Returns 1 when the
 * request was handled (or answered 405), 0 when no route matched (the
 * caller replies, typically 404). */
SL_API int sl_router_dispatch(sl_router *r, sl_conn *c, const sl_http_msg *m);

/* 1 when the request carries "Authorization: Bearer <token>" or the query
 * parameter token=<token> matching `token` (compared in constant time). */
SL_API int sl_http_check_bearer(const sl_http_msg *m, const char *token);
/* 1 when the request carries Basic credentials equal to user/pass. */
SL_API int sl_http_check_basic(const sl_http_msg *m, const char *user,
                               const char *pass);
/* Reply 401 with a WWW-Authenticate challenge: Bearer when `realm` is
 * NULL, else Basic realm="<realm>". */
SL_API int sl_http_reply_401(sl_conn *c, const char *realm);

/* Static files. */
typedef struct sl_http_file {
  const char *path;          /* "/index.html" (request path, decoded) */
  const char *mime;          /* NULL: guessed from the extension */
  const unsigned char *data; /* borrowed for the table's lifetime */
  size_t len;
  uint64_t mtime;            /* seconds since the epoch, for Last-Modified */
} sl_http_file;

/* Serve the request from directory `root`: GET and HEAD, MIME types,
 * ETag/If-None-Match and Last-Modified/If-Modified-Since (304), a single
 * Range (206/416), index.html for directories. Paths that would leave
 * `root` (.., encoded dots or slashes, backslashes, NUL, symlinks that
 * point outside) get 403; missing files 404. Large files are read in
 * bounded pieces as the peer drains: memory held per download stays
 * under 256 KiB whatever the file size. Returns 0 when a response was
 * started, or an error as sl_http_reply. */
SL_API int sl_http_serve_dir(sl_conn *c, const sl_http_msg *m,
                             const char *root);
/* Serve the request from an in-binary table of `n` files (same rules,
 * zero-copy). Returns 0 when served, SL_ENOENT (nothing sent) when no
 * entry matches, so the caller can fall through to other routes. */
SL_API int sl_http_serve_table(sl_conn *c, const sl_http_msg *m,
                               const sl_http_file *files, size_t n);
/* A MIME type for a file name ("text/html; charset=utf-8"). */
SL_API const char *sl_http_mime(const char *name);

/* ------------------------------------------------------------------ */
/* HTTP helpers                                                        */
/* ------------------------------------------------------------------ */

/* Small pure functions a web UI needs around requests and replies: URL
 * decoding, form variables, cookies, JSON. Common rules: no allocation
 * (the caller's buffers only), no state, any thread; every input pointer
 * is borrowed for the call; input of any content and length is safe (the
 * functions are fuzzed); output buffers are always NUL-terminated when
 * they have room for at least one byte. Results are a length (>= 0) or a
 * negative SL_E* code: SL_ENOENT (absent), SL_EINVAL (malformed input),
 * SL_EMSGSIZE (does not fit in the output buffer). On an error the output
 * buffer holds "" and nothing else was written. */

/* 1 when the `alen` bytes at `a` equal the NUL-terminated `b`, ignoring
 * ASCII case (header names, tokens, "Content-Type" values), else 0. */
SL_API int sl_strcaseeq(const char *a, size_t alen, const char *b);

/* Percent-decode `len` bytes of `src` into `dst` (`dstlen` bytes, with a
 * NUL after the result); `form` 1 also turns '+' into a space (query
 * strings and form bodies). `dst` may equal `src`. Returns the decoded
 * length, SL_EINVAL for a bad escape ("%g1", a '%' near the end) or a NUL
 * in the result (%00, or a NUL byte in `src`), SL_EMSGSIZE when the
 * result and its NUL do not fit. */
SL_API int sl_url_decode(const char *src, size_t len, char *dst, size_t dstlen,
                         int form);

/* Variable `name` of a query string or an application/x-www-form-
 * urlencoded body (`buf`, `len` bytes: m->query or m->body), decoded into
 * `dst` like sl_url_decode(form = 1). Names are compared decoded; the
 * first match wins; "k" alone has an empty value. The same lookup as
 * sl_http_query, on any buffer. Returns the value's length, SL_ENOENT,
 * SL_EINVAL (bad escape or %00 in the value), SL_EMSGSIZE.
 * Example: sl_http_var(m->body.ptr, m->body.len, "ssid", ssid, sizeof ssid); */
SL_API int sl_http_var(const char *buf, size_t len, const char *name,
                       char *dst, size_t dstlen);

/* The value of cookie `name` from the request's Cookie header(s) (RFC 6265
 * section 5.4: "a=1; b=2"), copied into `dst` as sent (not decoded;
 * surrounding double quotes removed). Names are case-sensitive; the first
 * match wins. Returns its length, SL_ENOENT, SL_EMSGSIZE. */
SL_API int sl_http_cookie(const sl_http_msg *m, const char *name, char *dst,
                          size_t dstlen);

/* Attributes of a cookie to set; zero fields are left out. */
typedef struct sl_cookie_opts {
  const char *path;      /* Path=/app; NULL: none (the request's directory) */
  const char *domain;    /* Domain=example.com; NULL: this host only */
  long long max_age;     /* > 0: Max-Age=N seconds; 0: a session cookie;
                            < 0: Max-Age=0, which deletes the cookie */
  int http_only;         /* HttpOnly: no access from scripts */
  int secure;            /* Secure: HTTPS only */
  const char *same_site; /* "Strict", "Lax" or "None" (requires secure);
                            NULL: none */
} sl_cookie_opts;

/* Write one complete header line "Set-Cookie: name=value; attrs\r\n" into
 * `buf` (`len` bytes, NUL-terminated), ready for the `headers` of
 * sl_http_reply (concatenate several). `name` must be a token, `value`
 * cookie-octets (no space, '"', ',', ';', '\\' or controls: encode
 * anything else, e.g. base64url or percent-encoding), `o` may be NULL.
 * Returns the line's length, SL_EINVAL (bad name, value, path, domain or
 * same_site, or SameSite=None without secure), SL_EMSGSIZE.
 * Example: sl_http_set_cookie(h, sizeof h, "sid", tok,
 *            &(sl_cookie_opts){.path = "/", .http_only = 1, .same_site = "Lax"}); */
SL_API int sl_http_set_cookie(char *buf, size_t len, const char *name,
                              const char *value, const sl_cookie_opts *o);

/* JSON (RFC 8259). The getters validate the whole text first (bounded
 * nesting: SL_JSON_MAX_DEPTH arrays/objects; deeper is SL_EINVAL), then
 * follow `path`: "$" is the whole text, ".key" an object member (compared
 * with the key as written between its quotes; keys holding '.', '[' or
 * escapes cannot be named), "[N]" an array element. Example paths:
 * "$.camera.fps", "$.streams[2].name". */
#define SL_JSON_MAX_DEPTH 32
enum {
  SL_JSON_NULL = 1,
  SL_JSON_TRUE,
  SL_JSON_FALSE,
  SL_JSON_NUMBER,
  SL_JSON_STRING,
  SL_JSON_ARRAY,
  SL_JSON_OBJECT
};

/* Find the value at `path` in `json` (`len` bytes). Returns its type
 * (SL_JSON_*) with *val and *vlen (either may be NULL) giving its text
 * inside `json` (a string with its quotes, an object with its braces); or
 * SL_ENOENT (no such member or index), SL_EINVAL (malformed JSON, too
 * deep, or a malformed path). */
SL_API int sl_json_get(const char *json, size_t len, const char *path,
                       const char **val, size_t *vlen);
/* The number at `path` into *out. Returns 0, SL_ENOENT, SL_EINVAL (also
 * when the value is not a number), SL_ERANGE (it overflows a double). */
SL_API int sl_json_get_num(const char *json, size_t len, const char *path,
                           double *out);
/* The boolean at `path` into *out (1 or 0). Returns 0, SL_ENOENT, SL_EINVAL
 * (also when the value is not true or false). */
SL_API int sl_json_get_bool(const char *json, size_t len, const char *path,
                            int *out);
/* The string at `path`, unescaped (\uXXXX and surrogate pairs to UTF-8)
 * into `dst` with a NUL. Returns its length, SL_ENOENT, SL_EINVAL (not a
 * string, \u0000, a lone surrogate, invalid UTF-8), SL_EMSGSIZE. */
SL_API int sl_json_get_str(const char *json, size_t len, const char *path,
                           char *dst, size_t dstlen);

/* Escape `len` bytes of `src` for the inside of a JSON string (no quotes
 * added) into `dst` with a NUL: '"', '\\' and control characters are
 * escaped, other bytes copied (give UTF-8). Returns the length written or
 * SL_EMSGSIZE. */
SL_API int sl_json_escape(const char *src, size_t len, char *dst, size_t dstlen);

/* printf into `buf` (`len` bytes, NUL-terminated) with the usual
 * conversions plus, for JSON: %Q a const char * written as a quoted,
 * escaped string (NULL: null), %.*Q with an int length first; %B an int
 * written as true or false. Floating-point conversions of NaN or infinity
 * write null (JSON has no such numbers). %n is not supported. Returns the
 * length written or SL_EMSGSIZE when it does not fit, SL_EINVAL for an
 * unknown conversion (then buf holds "").
 * Example: sl_json_printf(b, sizeof b, "{%Q:%d,%Q:%Q}", "fps", 25, "name", n); */
SL_API int sl_json_printf(char *buf, size_t len, const char *fmt, ...);

/* ------------------------------------------------------------------ */
/* multipart/form-data (browser file uploads)                          */
/* ------------------------------------------------------------------ */

/* A streaming parser of multipart/form-data bodies (RFC 7578 on RFC 2046
 * section 5.1.1), for forms with <input type="file">. It is fed the body
 * in pieces of any size as they arrive (the whole m->body of an
 * SL_EV_HTTP_MSG, or each SL_EV_HTTP_CHUNK) and calls back, per part:
 * on_part once its headers are read, on_data for its bytes in pieces
 * (never copied: each piece points into what was fed, or at the
 * parser's boundary text), on_end once its closing delimiter is seen. The
 * pieces of a part's data depend on how the body was split; their
 * concatenation does not.
 *
 * Memory: one allocation at sl_multipart_new of a fixed size (the state
 * plus max_head bytes for one part's headers), whatever the body's size;
 * nothing else. The bounds: a part's header block (max_head), the number
 * of parts (max_parts), a part's size (max_part, off by default), and
 * the boundary (1 to 70 characters, RFC 2046). Each part must carry
 * "Content-Disposition: form-data; name=..." (RFC 7578 section 4.2);
 * folded header lines, bare CR or LF, and a delimiter followed by
 * anything but "--", blanks and CRLF are refused. The preamble before the
 * first delimiter and the epilogue after the last are ignored.
 *
 * Errors: any problem of the input is SL_EPROTO (SL_EMSGSIZE for a bound
 * exceeded), with a sentence from sl_multipart_error(); once failed, a
 * parser fails every later call with the same code. A parser is used from
 * one thread at a time; callbacks run inside sl_multipart_feed. */
typedef struct sl_multipart sl_multipart;

/* One part, as on_part, on_data and on_end see it. The slices point into
 * the parser's header buffer: valid until on_end of the part returns
 * (copy what you keep). Values are as sent, not decoded: browsers send
 * the file's base name in UTF-8, with '"', CR and LF as %22, %0D and %0A
 * (WHATWG HTML, "multipart/form-data encoding algorithm"). A file name
 * is a hint from the peer: never use it as a path without checking it. */
typedef struct sl_multipart_part {
  size_t index;         /* 0 for the first part */
  sl_str name;          /* the form field's name */
  sl_str filename;      /* the file's name; empty when absent */
  int has_filename;     /* 1 when a filename parameter was sent (a file
                           input left empty sends filename="") */
  sl_str content_type;  /* its Content-Type; empty when absent, which
                           means text/plain (RFC 7578 section 4.4) */
  uint64_t size;        /* data bytes delivered so far */
} sl_multipart_part;

/* Options; zero fields take the defaults. A callback returning nonzero
 * (best a negative SL_E* code) stops the parser: sl_multipart_feed
 * returns that value and the parser stays failed ("stopped by the
 * application"). Any callback may be NULL. */
typedef struct sl_multipart_opts {
  size_t max_head;   /* bytes of one part's header block, its blank line
                        included (8 KiB; at least 256) */
  size_t max_parts;  /* parts in the body (64) */
  uint64_t max_part; /* data bytes of one part; 0: no limit */
  int (*on_part)(const sl_multipart_part *p, void *arg);
  int (*on_data)(const sl_multipart_part *p, const void *data, size_t len,
                 void *arg);
  int (*on_end)(const sl_multipart_part *p, void *arg);
  void *arg;
} sl_multipart_opts;

/* Find and check the boundary of a Content-Type value (`len` bytes at
 * `ct`, e.g. the value of m's Content-Type header): the type must be
 * multipart/form-data (any case), with a boundary parameter (token or
 * quoted-string) of 1 to 70 characters from RFC 2046's bchars, not ending
 * in a space. Returns 0 with *boundary pointing into `ct`; else SL_EPROTO
 * with *why (when not NULL) saying what is wrong. Pure, any thread. */
SL_API int sl_multipart_boundary(const char *ct, size_t len, sl_str *boundary,
                                 const char **why);

/* A parser for a body whose Content-Type value is `ct` (`len` bytes,
 * copied as far as needed: the boundary). `o` may be NULL (defaults, no
 * callbacks); it is copied. NULL with *err: SL_EPROTO (Content-Type as
 * sl_multipart_boundary refuses it), SL_EINVAL (NULL `ct`, max_head below
 * 256), SL_ENOMEM. Any thread.
 * Example:
 *   const sl_str *ct = sl_http_get_header(m, "Content-Type");
 *   sl_multipart *mp = ct ? sl_multipart_new(ct->ptr, ct->len, &o, &err) : NULL;
 *   if (mp && sl_multipart_feed(mp, m->body.ptr, m->body.len) == 0 &&
 *       sl_multipart_finish(mp) == 0) ... */
SL_API sl_multipart *sl_multipart_new(const char *ct, size_t len,
                                      const sl_multipart_opts *o, int *err);
/* Feed the next `len` bytes of the body (borrowed for the call; any
 * split). Returns 0, SL_EPROTO or SL_EMSGSIZE (see sl_multipart_error),
 * or what a callback returned. Bytes after the closing delimiter are
 * ignored. */
SL_API int sl_multipart_feed(sl_multipart *mp, const void *data, size_t len);
/* The body has ended: 0 when the closing delimiter was seen, else
 * SL_EPROTO ("body ended before the closing boundary": an upload cut
 * short) or the error that failed the parser. */
SL_API int sl_multipart_finish(const sl_multipart *mp);
/* Why the parser failed ("part 2: header line without colon"), or "". */
SL_API const char *sl_multipart_error(const sl_multipart *mp);
/* Parts whose headers were read so far. */
SL_API size_t sl_multipart_parts(const sl_multipart *mp);
/* Free the parser. NULL is ignored. */
SL_API void sl_multipart_free(sl_multipart *mp);

/* ------------------------------------------------------------------ */
/* TLS                                                                 */
/* ------------------------------------------------------------------ */

/* TLS 1.2 and 1.3 over the library's connections, with OpenSSL, as an
 * optional part of the library (CMake option SL_TLS, on when OpenSSL is
 * found). In a library built without it every function here fails with
 * SL_ENOTSUP (constructors return NULL and set *err to it), and so do
 * https:// and wss:// URLs.
 *
 * A context (sl_tls_ctx) holds one role's certificate, key and trust
 * settings, server or client, and serves any number of connections. It is
 * reference-counted: listeners, connections and requests that use it keep
 * their own reference, so sl_tls_ctx_free() may come at any time after
 * the last call that takes it.
 *
 * Where TLS goes:
 *   server   sl_listen_tls(), sl_http_listen() with opts->tls (HTTPS and
 *            WSS), or sl_conn_tls() on a listener or, from SL_EV_OPEN, on
 *            a connection it accepted.
 *   client   sl_conn_tls() on a connection from sl_connect() before its
 *            SL_EV_CONNECT; https:// in sl_http_request() and wss:// in
 *            sl_ws_connect() do it themselves.
 *
 * Events: the handshake runs on the loop like any other I/O and completes
 * before the protocol (HTTP, WebSocket) or the handler sees a byte:
 *   - accepted: SL_EV_OPEN at once, SL_EV_ACCEPT when the handshake is
 *     done;
 *   - client: SL_EV_OPEN at once, SL_EV_CONNECT when the handshake is
 *     done (the TCP connect alone is not announced).
 * A handshake that fails gives SL_EV_ERROR with a message naming the peer
 * and OpenSSL's reason ("TLS handshake with 127.0.0.1:443 failed:
 * certificate verify failed: hostname mismatch"), sl_conn_error() ==
 * SL_ETLS, then SL_EV_CLOSE with reason SL_CLOSE_PROTOCOL (accepted: the
 * peer broke the protocol) or SL_CLOSE_ERROR (client). A client that just
 * closes during an accepted connection's handshake is SL_CLOSE_PEER
 * without an error (a server that does so fails the client's). A
 * handshake not done within handshake_timeout_ms (10 s; for accepted
 * connections from the accept, for clients from the TCP connect) gives
 * SL_EV_TIMEOUT and closes with SL_CLOSE_TIMEOUT: a peer that opens TCP
 * and never finishes (or never starts) its handshake costs one connection
 * for that long, no input buffer. The same errors after the handshake
 * (a bad record, an alert) close the connection the same way.
 *
 * After the handshake a TLS connection is an ordinary connection: sends
 * queue plaintext, and send_max, watermarks, recv_max, idle_ms, stall_ms
 * and min_rate apply exactly as on a plain one. Precisely:
 *   - Output. The output queue holds the plaintext and stays the one place
 *     where bytes wait. Bytes are encrypted only when they are written:
 *     one record at a time (at most 16 KiB of plaintext), straight from
 *     the queue's segments, so a shared frame is encrypted from the shared
 *     buffer and never copied per viewer (small segments, such as headers,
 *     are gathered into one record). The record's ciphertext goes to the
 *     socket at once; what the socket does not take waits in the
 *     connection's record buffer (at most one record: 16 KiB of plaintext
 *     plus its overhead, allocated only while bytes wait in it, counted in
 *     the manager's held bytes and in sl_mgr_stats.tls) and nothing more
 *     is encrypted until it has gone. The record's plaintext leaves the
 *     queue (and counts as written, and as progress against stall_ms)
 *     when the kernel has taken all of its ciphertext. So a stalled TLS
 *     peer holds at most send_max of queued bytes plus one record.
 *   - Input. Records are decrypted into the input buffer, bounded by
 *     recv_max; while it is full no record is read from the socket, and
 *     TCP pushes back on the peer. At most the rest of one record waits
 *     decrypted inside OpenSSL.
 *   - Not in the counters: OpenSSL's own per-connection state (the SSL
 *     object; its record buffers exist only while a record is being read
 *     or written, SSL_MODE_RELEASE_BUFFERS). It is a fixed amount per
 *     connection, whatever the peer does; bench_tls prints it.
 * Refused: TLS below 1.2, renegotiation, compression. Session resumption
 * uses stateless tickets only: no server-side session cache grows with
 * the number of clients. A connection that closes gracefully sends
 * close_notify if its socket takes it at once; a peer that closes without
 * one is an ordinary end of stream (HTTP framing detects truncation). */

/* Options of a context; zero-initialise and set what you need. Every
 * string is read during the call only. */
typedef struct sl_tls_opts {
  /* The certificate (PEM: the certificate, then its chain) and its
   * private key (PEM), from files... */
  const char *cert_file, *key_file;
  /* ...or from memory (NUL-terminated PEM text), when the file is NULL.
   * Required for a server; optional for a client (a client certificate,
   * sent when a server asks for one). */
  const char *cert_pem, *key_pem;
  /* CA certificates (PEM) the peer's certificate must chain to, from a
   * file or from memory. Client: NULL for both means the system's store
   * (OpenSSL's default paths; the SSL_CERT_FILE and SSL_CERT_DIR
   * environment variables override them). Server: the CAs of client
   * certificates; required by verify_client. */
  const char *ca_file, *ca_pem;
  int verify_client;     /* server: SL_TLS_VERIFY_* (NONE) */
  int insecure;          /* client: 1 accepts any server certificate and
                            name. For tests only: it defeats TLS. */
  uint32_t handshake_timeout_ms; /* 10 s */
} sl_tls_opts;

/* Client certificates, on a server context. */
enum {
  SL_TLS_VERIFY_NONE = 0,     /* not asked for */
  SL_TLS_VERIFY_OPTIONAL = 1, /* asked for; one that is sent must verify */
  SL_TLS_VERIFY_REQUIRE = 2   /* a verified certificate is required */
};

/* A server context: certificate and key (required), client-certificate
 * verification as asked. NULL with *err: SL_EINVAL (no certificate or no
 * key, verify_client without CAs, a bad value), SL_ENOENT (a file that
 * does not exist), SL_ETLS (OpenSSL refused a file or text: not PEM, the
 * key does not match the certificate, ...; sl_tls_last_error() says why),
 * SL_ENOMEM, SL_ENOTSUP (no TLS in the library). Any thread.
 * Example:
 *   sl_tls_opts o = {.cert_file = "cert.pem", .key_file = "key.pem"};
 *   sl_tls_ctx *tls = sl_tls_server_new(&o, &err); */
SL_API sl_tls_ctx *sl_tls_server_new(const sl_tls_opts *o, int *err);
/* A client context: the server's certificate is verified (against
 * ca_file/ca_pem, or the system's store) together with the host name the
 * connection expects, unless `insecure`. `o` may be NULL (the system's
 * store, no client certificate). Same errors as sl_tls_server_new. Any
 * thread. */
SL_API sl_tls_ctx *sl_tls_client_new(const sl_tls_opts *o, int *err);
/* Drop the caller's reference. The context goes when the last listener,
 * connection or request using it has gone. NULL is ignored. Any thread. */
SL_API void sl_tls_ctx_free(sl_tls_ctx *ctx);
/* Load new settings (a renewed certificate) into a context of the same
 * role: handshakes that start afterwards use them, connections already
 * open keep theirs. All or nothing: on error the context is unchanged.
 * Returns 0 or an error as sl_tls_server_new. Any thread.
 * Example (SIGHUP): if (sl_tls_reload(tls, &o)) log(sl_tls_last_error()); */
SL_API int sl_tls_reload(sl_tls_ctx *ctx, const sl_tls_opts *o);
/* Why the last sl_tls_server_new, sl_tls_client_new or sl_tls_reload of
 * this thread failed, in words (OpenSSL's reason and the file), or "".
 * Valid until the next such call on this thread. */
SL_API const char *sl_tls_last_error(void);

/* Run TLS on connection `c` with context `ctx` (a reference is taken):
 *   - a listener (server context): every connection it accepts from now
 *     on does the server handshake;
 *   - an accepted connection (server context), from its SL_EV_OPEN:
 *     SL_EV_ACCEPT waits for the handshake;
 *   - a connection from sl_connect() (client context), before its
 *     SL_EV_CONNECT (right after sl_connect() or from SL_EV_OPEN): the
 *     handshake starts when TCP connects, SL_EV_CONNECT follows it.
 *     `host` is sent as SNI and must match the server's certificate;
 *     NULL takes the host of the URL given to sl_connect (an IP address
 *     is matched against the certificate's IP addresses, without SNI).
 * Returns 0, or SL_EINVAL (the wrong role for the context, too late: the
 * connection already announced SL_EV_ACCEPT or SL_EV_CONNECT), SL_EALREADY
 * (TLS already), SL_ECLOSING, SL_ENOMEM, SL_ENOTSUP.
 * Example: c = sl_connect(m, "tcp://cam.local:443", fn, NULL, &err);
 *          sl_conn_tls(c, client_ctx, NULL); */
SL_API int sl_conn_tls(sl_conn *c, sl_tls_ctx *ctx, const char *host);
/* sl_listen() whose connections speak TLS with server context `ctx`.
 * Same errors as sl_listen, plus SL_EINVAL (not a server context) and
 * SL_ENOTSUP. */
SL_API sl_conn *sl_listen_tls(sl_mgr *m, const char *url, sl_tls_ctx *ctx,
                              sl_handler fn, void *data, int *err);
/* 1 when the connection speaks TLS (or will, once connected), else 0. */
SL_API int sl_conn_is_tls(const sl_conn *c);
/* The negotiated protocol and cipher ("TLSv1.3 TLS_AES_256_GCM_SHA384")
 * into `out` (NUL-terminated, truncated to `cap`). Returns 0, SL_EINVAL
 * (no TLS, or the handshake is not done). */
SL_API int sl_conn_tls_info(const sl_conn *c, char *out, size_t cap);
/* The subject of the peer's certificate ("/CN=viewer-7") into `out`. It
 * was verified, unless the context is insecure. Returns 0, SL_ENOENT (the
 * peer sent none), SL_EINVAL (no TLS, or the handshake is not done). */
SL_API int sl_conn_tls_peer(const sl_conn *c, char *out, size_t cap);

/* ------------------------------------------------------------------ */
/* HTTP client                                                         */
/* ------------------------------------------------------------------ */

/* One HTTP/1.1 request to an http:// URL, followed through redirects and
 * authentication challenges, with the response body streamed to the
 * handler as it arrives. It is what a relay uses to consume an MJPEG
 * stream from an IP camera or another sluice server.
 *
 * One logical request, one handle. A redirect or an authentication retry
 * opens a NEW connection (the request always sends "Connection: close"),
 * so the sl_conn carrying the request may change before the response
 * head arrives; the sl_http_req handle stays the same from
 * sl_http_request() to SL_EV_CLOSE. The handler sees only the final
 * exchange, on the connection that carries it:
 *
 *   SL_EV_HTTP_MSG    once: the final response head (struct sl_http_msg *:
 *                     status, reason, headers, content_length, chunked;
 *                     its `body` is empty). Any status, 4xx and 5xx
 *                     included, is a response, not an error.
 *   SL_EV_HTTP_CHUNK  sl_str *: the body as it arrives, de-chunked, in
 *                     pieces of at most the connection's recv_max. The
 *                     END of the body is one last SL_EV_HTTP_CHUNK with
 *                     len == 0 (a body without bytes, as for HEAD, 204
 *                     and 304, is just that event). After it the
 *                     connection closes by itself.
 *   SL_EV_ERROR       const char *: why the request failed, naming the
 *                     peer (connect refused or timed out, TLS handshake
 *                     failed with OpenSSL's reason, such as "certificate
 *                     verify failed: hostname mismatch", no response head
 *                     in time, malformed response, body stalled or cut
 *                     short, too many redirects, authentication failed).
 *                     It may come at any point, also after
 *                     SL_EV_HTTP_MSG: then the body is incomplete.
 *                     sl_conn_error() gives the code: SL_ECONNREFUSED,
 *                     SL_ERESOLVE, SL_ETIMEDOUT, SL_EHTTP, SL_EAUTH,
 *                     SL_ETLS, SL_ENOTSUP (redirect to https:// without
 *                     TLS in the library), a socket error...
 *   SL_EV_CLOSE       exactly once, last, on success or failure; the
 *                     handle is freed after it returns.
 *   SL_EV_POLL, SL_EV_WAKEUP and codes from SL_EV_USER up are passed on;
 *   OPEN, RESOLVE, CONNECT, READ, WRITE, FULL, DRAIN and TIMEOUT are the
 *   client's own business and are not delivered.
 * `sl_conn_data(c)` is the `data` given to sl_http_request().
 *
 * Backpressure: each body piece is handed over straight from the
 * connection's input buffer (at most recv_max bytes, 64 KiB by default)
 * and counted as consumed when the handler returns. Calling
 * sl_conn_pause_read(c, 1) stops reading from the socket, so TCP pushes
 * back on the server; the bytes already read (at most recv_max) are still
 * delivered in the same dispatch. sl_conn_pause_read(c, 0) resumes, for
 * instance from a timer through sl_http_req_conn(). The body timeout does
 * not run while reading is paused. Do not call sl_conn_consume() on it.
 *
 * Redirects (301, 302, 303, 307, 308 with a Location) are followed up to
 * max_redirects; a relative Location is resolved against the current URL.
 * 303, and 301/302 answering a POST, continue as GET without the body
 * (as browsers do); 307 and 308 repeat the method and the body. The
 * credentials go only to the origin (host and port) they were given for,
 * unless a Location carries its own user:pass@.
 *
 * Authentication: credentials are sent only in answer to a 401 challenge,
 * never up front, so a password never travels as Basic to a server that
 * asked for Digest. Digest (RFC 7616: MD5 or MD5-sess, qop=auth or the
 * RFC 2069 form, as IP cameras use) is preferred over Basic when both are
 * offered; the request is retried once on a new connection, twice when
 * the server says the nonce was stale. A 401 that still comes back is
 * delivered as SL_EV_HTTP_MSG (so the status and WWW-Authenticate are
 * visible), followed by SL_EV_ERROR "authentication failed" (SL_EAUTH)
 * instead of the body. Without credentials a 401 is an ordinary response.
 * Digest is over plain HTTP: it hides the password, not the stream. */
typedef struct sl_http_req sl_http_req;

/* Options of one request; zero-initialise and set what you need. Every
 * pointer is copied by sl_http_request(). Timeouts: 0 takes the default,
 * UINT32_MAX disables the timeout. */
typedef struct sl_http_client_opts {
  const char *method;         /* "GET" when NULL; a token ("POST") */
  const char *headers;        /* extra request header lines, each ending
                                 in "\r\n" ("Accept: image/jpeg\r\n"), or
                                 NULL. Host, Connection, Content-Length,
                                 Authorization are the client's; a
                                 User-Agent here replaces "sluice/x.y.z" */
  const void *body;           /* request body: `body_len` bytes, sent with
                                 Content-Length (at most send_max) */
  size_t body_len;
  const char *user, *pass;    /* credentials for Digest or Basic; NULL:
                                 the URL's user:pass@ (percent-decoded) */
  int max_redirects;          /* 0: 5; -1: follow none (the 3xx is the
                                 response) */
  uint32_t connect_timeout_ms;/* name lookup + TCP connect, per connection
                                 (10 s) */
  uint32_t header_timeout_ms; /* from connect to the end of the response
                                 head, per connection (10 s) */
  uint32_t body_timeout_ms;   /* no body byte for this long while reading
                                 is not paused: close (30 s). A stream that
                                 keeps arriving is never cut. */
  size_t max_head;            /* response head limit (16 KiB); recv_max
                                 is raised above it if needed */
  sl_limits limits;           /* limits of every connection the request
                                 opens (0 fields inherit the manager's) */
  sl_tls_ctx *tls;            /* client context for https:// (a reference
                                 is taken for the request's life); NULL:
                                 the manager's default (the system's CAs,
                                 verification on) */
} sl_http_client_opts;

/* Start `method` `url` ("http://[user:pass@]host[:port][/path][?query]",
 * or https:// with the same form, port 443 by default, verified against
 * opts->tls or the system's CAs with the URL's host as SNI and expected
 * name; a host name is resolved off the loop thread). Events go to `fn` with
 * `data` as described above. `opts` may be NULL for the defaults; it and
 * everything it points to are copied. Returns the request handle at once
 * (owned by the library, valid until SL_EV_CLOSE returns); connection
 * failures arrive later as SL_EV_ERROR and SL_EV_CLOSE. Returns NULL and
 * sets *err, with no event delivered, for: SL_EURL (not an http:// or
 * https:// URL,
 * bad host or port, a control character or space in the target),
 * SL_ENOTSUP (https:// in a library built without TLS), SL_EINVAL (a
 * method that is not a token, a server context in opts->tls, `headers`
 * that are not valid header lines (see sl_http_reply), a credential with
 * a control character, bad limits), SL_ENOBUFS (the request does not fit
 * in send_max), SL_ELIMIT (max_conns), SL_ENOMEM.
 * Loop thread only.
 * Example:
 *   sl_http_client_opts o = {.user = "admin", .pass = "secret"};
 *   sl_http_request(m, "http://cam.local/video.mjpg", &o, on_cam, NULL, &err); */
SL_API sl_http_req *sl_http_request(sl_mgr *m, const char *url,
                                    const sl_http_client_opts *opts,
                                    sl_handler fn, void *data, int *err);

/* The connection carrying the request now (it changes on a redirect or an
 * authentication retry; fixed once SL_EV_HTTP_MSG has been delivered).
 * Borrowed: valid until the handler returns or the next loop iteration.
 * Use it to pause or resume reading, or with sl_conn_id() for wakeups.
 * Loop thread only. */
SL_API sl_conn *sl_http_req_conn(const sl_http_req *r);

/* The request a connection carries, or NULL when `c` is not the current
 * connection of an sl_http_request() (a handler shared by several
 * requests can find its own this way). Loop thread only. */
SL_API sl_http_req *sl_http_req_of(const sl_conn *c);

/* The URL being requested now, after redirects, without credentials
 * ("http://host:port/path?query"). Borrowed, valid until the next redirect
 * or SL_EV_CLOSE. Loop thread only. */
SL_API const char *sl_http_req_url(const sl_http_req *r);

/* Abandon the request: its connection closes at once (reason
 * SL_CLOSE_LOCAL, no SL_EV_ERROR) and the handler gets SL_EV_CLOSE at the
 * end of the iteration. Safe from any handler. Loop thread only. */
SL_API void sl_http_req_cancel(sl_http_req *r);

/* ------------------------------------------------------------------ */
/* WebSocket (RFC 6455)                                                */
/* ------------------------------------------------------------------ */

/* Opcodes (RFC 6455 section 5.2). */
enum {
  SL_WS_CONT = 0,
  SL_WS_TEXT = 1,
  SL_WS_BINARY = 2,
  SL_WS_CLOSE = 8,
  SL_WS_PING = 9,
  SL_WS_PONG = 10
};

/* A message (SL_EV_WS_MSG) or control frame (SL_EV_WS_CTL). `data` is
 * valid only during the event. For SL_WS_CLOSE, `close_code` is the peer's
 * code (1005 when it sent none) and `data` its reason. */
typedef struct sl_ws_msg {
  int opcode;
  sl_str data;
  int close_code;
} sl_ws_msg;

/* sl_ws_opts.origins allowing pages of any site to open a socket (only
 * for streams meant to be embedded anywhere): o.origins = SL_WS_ANY_ORIGIN.
 * A static array, so any lifetime rule is met. */
extern SL_API const char *const sl_ws_any_origin[2];
#define SL_WS_ANY_ORIGIN sl_ws_any_origin

/* WebSocket options; zero fields take the defaults. */
typedef struct sl_ws_opts {
  const char *const *origins;   /* server: allowed Origin values,
                                   NULL-terminated ("http://host:port");
                                   a request from another origin, or
                                   without Origin, gets 403. An entry "*"
                                   (SL_WS_ANY_ORIGIN) allows any page.
                                   NULL (default): same origin only, see
                                   sl_ws_same_origin (no Origin header,
                                   i.e. not a browser, is allowed). Read
                                   during sl_ws_upgrade only. */
  const char *const *protocols; /* subprotocols we speak, in preference
                                   order, NULL-terminated; NULL: none */
  size_t max_message;           /* 1 MiB: bigger is closed with 1009 */
  uint32_t ping_ms;             /* keepalive ping interval (30 s); a peer
                                   that has not answered by the next ping
                                   is closed. UINT32_MAX: no pings */
  uint32_t close_timeout_ms;    /* wait for the peer's close frame (5 s) */
  uint32_t handshake_timeout_ms;/* client: until 101 arrives (10 s) */
  const char *headers;          /* client: extra request header lines */
  sl_tls_ctx *tls;              /* client: context for wss:// (NULL: the
                                   manager's default, the system's CAs) */
} sl_ws_opts;

/* Upgrade the connection of an HTTP request (from SL_EV_HTTP_MSG) to
 * WebSocket: checks the request (426/400 when it is not a valid upgrade,
 * 403 for an origin not allowed), answers 101 and delivers SL_EV_WS_OPEN
 * (ev_data: the request) before returning. Afterwards the handler gets
 * SL_EV_WS_MSG for text/binary messages and SL_EV_WS_CTL for control
 * frames; pings are answered automatically. Returns 0, or an SL_E* code
 * (SL_EWS: refused, already answered). `opts` may be NULL; it is copied
 * (the arrays it points to must stay valid for the connection's life). */
SL_API int sl_ws_upgrade(sl_conn *c, const sl_http_msg *m,
                         const sl_ws_opts *opts);
/* 1 when the request's Origin header is absent (not a browser) or names
 * the same host as its Host header (http:// or https://), else 0: the
 * rule sl_ws_upgrade applies when opts->origins is NULL. */
SL_API int sl_ws_same_origin(const sl_http_msg *m);
/* Connect to a ws:// or wss:// URL (wss: TLS with opts->tls or the
 * system's CAs, the URL's host as SNI and expected name). SL_EV_WS_OPEN
 * (ev_data: the 101 response) follows the handshake; failures give
 * SL_EV_ERROR (for TLS, OpenSSL's reason; sl_conn_error() SL_ETLS) and
 * SL_EV_CLOSE. NULL with *err: SL_EURL, SL_ENOTSUP (wss:// without TLS in
 * the library), SL_EINVAL (a server context), SL_ENOMEM, SL_ELIMIT. */
SL_API sl_conn *sl_ws_connect(sl_mgr *m, const char *url,
                              const sl_ws_opts *opts, sl_handler fn,
                              void *data, int *err);
/* Send one message (text, binary, ping or pong) of `len` bytes (copied).
 * Same errors as sl_send; SL_EINVAL for a text message that is not UTF-8
 * or a control payload over 125 bytes; SL_ECLOSING after a close. */
SL_API int sl_ws_send(sl_conn *c, int opcode, const void *data, size_t len);
/* Send one message whose payload is `len` bytes of shared buffer `b` from
 * `off`: the frame header is copied, the payload referenced (server side;
 * a client must mask, so it copies). */
SL_API int sl_ws_send_buf(sl_conn *c, int opcode, sl_buf *b, size_t off,
                          size_t len);
/* Send one message whose payload is the concatenation of `n` parts (at most
 * 8; see sl_sendv: copied bytes or shared-buffer references), queued as one
 * unit: a small per-connection prefix (a header, a subscription id) in
 * front of a frame that every connection shares. SL_WS_BINARY, or
 * SL_WS_TEXT given as one copied part (checked as UTF-8). Same errors as
 * sl_ws_send, plus SL_ERANGE for a reference past its buffer and SL_EINVAL
 * for more than 8 parts. Example:
 *   sl_part p[2] = {{hdr, NULL, 0, 16}, {NULL, frame, 0, sl_buf_len(frame)}};
 *   sl_ws_sendv(c, SL_WS_BINARY, p, 2); */
SL_API int sl_ws_sendv(sl_conn *c, int opcode, const sl_part *parts, size_t n);
/* Send one message as fragments of at most `frag` payload bytes, queued
 * as one unit (all or nothing). */
SL_API int sl_ws_send_frag(sl_conn *c, int opcode, const void *data,
                           size_t len, size_t frag);
/* Start the closing handshake with `code` and `reason` (NUL-terminated,
 * at most 123 bytes, may be NULL). The connection closes when the peer
 * answers or after close_timeout_ms. */
SL_API int sl_ws_close(sl_conn *c, int code, const char *reason);
/* The negotiated subprotocol, or NULL. */
SL_API const char *sl_ws_protocol(const sl_conn *c);
/* 1 when the connection speaks WebSocket (open, not closing). */
SL_API int sl_ws_is_open(const sl_conn *c);

/* ------------------------------------------------------------------ */
/* Hubs: live streams with zero-copy fan-out                           */
/* ------------------------------------------------------------------ */

/* A hub is one live stream: a producer publishes frames (shared buffers),
 * each subscriber (a connection plus a framing) takes the next frame only
 * when its connection has room below its low watermark, and a policy
 * decides what a subscriber that falls behind skips. A frame is stored once
 * however many subscribers send it. */
typedef struct sl_hub sl_hub;

/* Frame flags. On an H.264 hub the hub sets SL_FRAME_KEY itself from the
 * access unit (an IDR slice), whatever the publisher passed. */
enum { SL_FRAME_KEY = 1 };

/* Kinds of stream.
 * SL_KIND_MJPEG: every frame is a picture that decodes on its own (JPEG, or
 *   any opaque payload): a viewer may skip any frame.
 * SL_KIND_H264: every frame is one H.264 access unit in Annex-B (start
 *   codes). The hub reads each unit's NAL headers: an IDR slice makes it a
 *   keyframe, SPS and PPS become the stream's codec configuration (kept,
 *   parsed, and sent to each viewer before its first frame and again when
 *   they change); a buffer holding only SPS/PPS sets the configuration and
 *   is not a frame. Frames before the first configuration are refused
 *   (SL_EPROTO, counted in no_config). Skipping is only ever to an IDR: a
 *   viewer never receives a frame whose reference it did not get, and every
 *   keyframe it receives carries SPS and PPS (in-band, or sent by reference
 *   just before it). The hub keeps the GOP since the newest IDR (at most
 *   `gop_max` bytes) and starts a joining viewer from it at once.
 *   Policies on H.264: `latest`, `keyframe` and `queue:N` all mean "when
 *   behind, drop whole frames up to the next IDR" (`latest`: the newest
 *   GOP); `lossless` never drops. The fps cap does not apply (skipping a
 *   P-frame would break the picture). Defaults for H.264 viewers: a queue
 *   of 60 frame references and resync_ms 1000. */
enum { SL_KIND_MJPEG = 0, SL_KIND_H264 = 1 };
/* "mjpeg", "h264"; "?" otherwise. */
SL_API const char *sl_kind_name(int kind);

/* Slow-consumer policies. SL_POLICY_INHERIT (0, what a zeroed sl_sub_opts
 * holds) takes the hub's default, and a hub whose default is INHERIT uses
 * `latest`. Any other value is the viewer's own choice, whatever the hub's
 * default is. */
enum {
  SL_POLICY_INHERIT = 0, /* the hub's default */
  SL_POLICY_LATEST = 1,  /* hold only the newest unsent frame */
  SL_POLICY_QUEUE = 2,   /* keep up to queue_len frames, drop the oldest */
  SL_POLICY_KEYFRAME = 3,/* when behind, skip to the next keyframe */
  SL_POLICY_LOSSLESS = 4 /* never drop; the producer is told to slow down */
};
/* "inherit", "latest", "queue", "keyframe", "lossless"; "?" otherwise. */
SL_API const char *sl_policy_name(int policy);

/* Framings of a subscriber. */
enum {
  SL_TRANSPORT_MJPEG = 0, /* multipart/x-mixed-replace over HTTP */
  SL_TRANSPORT_WS = 1,    /* one WebSocket binary message per frame */
  SL_TRANSPORT_CHUNKED = 2,/* HTTP chunked, one chunk per frame */
  SL_TRANSPORT_RAW = 3,   /* the bytes only, HTTP response until close */
  SL_TRANSPORT_FMP4 = 4,  /* H.264: a live fragmented MP4 over HTTP (an
                             init segment, then one moof+mdat per frame) */
  SL_TRANSPORT_WS_FMP4 = 5 /* H.264: fMP4 over a WebSocket, for Media
                             Source Extensions (docs/h264.md) */
};
/* "mjpeg", "ws", "chunked", "raw", "fmp4", "ws-fmp4"; "?" otherwise. */
SL_API const char *sl_transport_name(int transport);

/* Reasons a frame was not sent to a subscriber, and why one was closed. */
#define SL_DROP_REASONS(X)                                              \
  X(SL_DROP_REPLACED, "replaced") /* latest: a newer frame replaced it */ \
  X(SL_DROP_QUEUE, "queue")       /* queue:N full: oldest dropped */     \
  X(SL_DROP_RESYNC, "resync")     /* keyframe: skipped to a keyframe */  \
  X(SL_DROP_FPS, "fps")           /* over the subscriber's fps cap */    \
  X(SL_DROP_TOO_BIG, "too_big")   /* larger than its send_max */         \
  X(SL_DROP_BUDGET, "budget")     /* dropped under budget pressure */

enum sl_drop_reason {
#define SL__DROP_ENUM(name, str) name,
  SL_DROP_REASONS(SL__DROP_ENUM)
#undef SL__DROP_ENUM
  SL_DROP_NREASONS
};
SL_API const char *sl_drop_reason_name(int reason);

/* Why a hub closed a subscriber (beyond the connection's own reasons). */
enum {
  SL_EVICT_NONE = 0,
  SL_EVICT_HARD,      /* hard limit exceeded */
  SL_EVICT_SOFT,      /* soft limit exceeded for soft_secs */
  SL_EVICT_SLOT,      /* stalled, evicted to admit a new viewer */
  SL_EVICT_BUDGET,    /* stalled, evicted under budget pressure */
  SL_EVICT_HUB        /* the hub was freed */
};
SL_API const char *sl_evict_reason_name(int reason);

/* Per-subscriber options; zero fields take the hub's defaults. */
typedef struct sl_sub_opts {
  int policy;            /* SL_POLICY_* */
  unsigned queue_len;    /* SL_POLICY_QUEUE: frames kept (default 8) */
  double fps;            /* frame-rate cap; 0 = none */
  size_t send_max;       /* 0: 2 x the largest frame seen + 64 KiB */
  uint32_t stall_ms;     /* 300 s (60 s for lossless) */
  size_t hard_bytes;     /* close now beyond this lag in bytes (queued +
                            pending); default off for latest, 16 MiB
                            otherwise */
  uint32_t hard_ms;      /* close now beyond this lag in ms; 0 = off */
  size_t soft_bytes;     /* close when beyond this for soft_secs; default
                            off for latest, 4 MiB otherwise */
  uint32_t soft_secs;    /* 30 */
  uint32_t resync_ms;    /* keyframe: lag that counts as behind (300) */
  size_t notsent_lowat;  /* TCP_NOTSENT_LOWAT of its socket: how many
                            bytes the kernel may hold unsent besides the
                            frame in its output queue. 0: automatic, the
                            average size of the stream's last 64 frames
                            (a GOP or more for H.264: its bitrate per
                            frame, not its keyframes) within 16..128 KiB,
                            re-applied when that average moves by more
                            than a quarter. It keeps a slow viewer about
                            two frames behind live (the rest of one frame
                            queued, one frame's worth in the kernel), and
                            a fast one writes each frame in one sendmsg (a
                            frame more than 64 KiB above it takes two).
                            Any other value is set as is (16384 puts
                            latency first at some CPU cost for big
                            frames); SL_LOWAT_KERNEL leaves the kernel's
                            default (net.ipv4.tcp_notsent_lowat, normally
                            unlimited: up to the whole send buffer). The
                            kernel checks it before each new skb, so the
                            unsent bytes may pass it by one skb (at most
                            64 KiB, or half the peer's largest window).
                            The viewer's own receive buffer holds frames
                            too, out of the server's reach. A multiplexed
                            connection (sl_mux) sets one value: the
                            largest of its subscriptions' */
  const char *const *cors_origins; /* HTTP transports (MJPEG, chunked,
                            raw): page origins allowed to read the stream
                            across sites, NULL-terminated
                            ("https://app.example:8443"). A request whose
                            Origin is listed gets
                            "Access-Control-Allow-Origin: <its origin>" and
                            "Vary: Origin"; an entry "*" answers any page
                            with "*". NULL (default): no CORS header, so
                            only same-origin pages (and non-browser
                            clients, and <img> tags, which cannot read the
                            pixels) see the stream. Read during
                            sl_hub_attach only; a hub default
                            (sl_hub_opts.sub) must stay valid for the
                            hub's life */
} sl_sub_opts;

/* sl_sub_opts.notsent_lowat: do not set TCP_NOTSENT_LOWAT. */
#define SL_LOWAT_KERNEL SIZE_MAX

/* Events a hub reports to its owner. */
enum {
  SL_HUB_JOIN,      /* a subscriber joined; `sub_id` set */
  SL_HUB_LEAVE,     /* a subscriber left; `reason`: SL_CLOSE_* of its
                       connection, `evict`: SL_EVICT_* or 0 */
  SL_HUB_NOT_READY, /* a lossless subscriber is full: slow down */
  SL_HUB_READY      /* every lossless subscriber has room again */
};
typedef struct sl_hub_event {
  int type;
  uint64_t sub_id;    /* the subscriber's connection id */
  const char *peer;   /* its address */
  int transport;
  int reason, evict;
} sl_hub_event;

typedef struct sl_hub_opts {
  int kind;              /* SL_KIND_MJPEG (0) or SL_KIND_H264 */
  size_t gop_max;        /* H.264: bytes of the cached GOP, 4 MiB; a GOP
                            past it is dropped from the cache (gop_cuts) */
  size_t max_subs;       /* 1000: then evict a stalled one, else refuse */
  size_t budget;         /* bytes the hub's frames may hold; 0 = off */
  uint32_t stall_evict_ms; /* "stalled" for eviction: 5 s */
  sl_sub_opts sub;       /* defaults for subscribers */
  void (*on_event)(sl_hub *h, const sl_hub_event *e, void *arg);
  void *arg;
} sl_hub_opts;

/* Create a hub named `name` (copied; unique in the manager, may be "") in
 * manager `m`. NULL with *err: SL_EEXIST, SL_ENOMEM, SL_EINVAL. */
SL_API sl_hub *sl_hub_new(sl_mgr *m, const char *name,
                          const sl_hub_opts *opts, int *err);
/* Close every subscriber (SL_EVICT_HUB) and free the hub. Loop thread;
 * no publisher may use it any more. */
SL_API void sl_hub_free(sl_hub *h);
/* Find a hub by name; NULL when absent. */
SL_API sl_hub *sl_hub_find(sl_mgr *m, const char *name);
/* The hub's name. */
SL_API const char *sl_hub_name(const sl_hub *h);

/* Publish a frame. The hub takes its own reference to `frame` (the caller
 * keeps and drops its own); the frame must not change afterwards. `ts_ms`
 * is the capture time on the manager clock (0: now). Any thread: from the
 * loop thread it is sent at once; from another thread it is queued (at
 * most 8 frames) and the loop is woken. Returns 0; SL_EINVAL for a NULL
 * argument; SL_EFULL when 8 frames from other threads are already waiting;
 * SL_ENOMEM when the frame could not be stored (on the loop thread; from
 * another thread the wakeup queue may also refuse it with SL_ENOMEM or
 * SL_EFULL, and a frame that then cannot be stored when the loop takes it
 * is counted in sl_hub_stats.lost). Nothing is kept on an error.
 * Example: sl_buf *b = sl_buf_from(jpg, n); sl_hub_publish(h, b, 0, 0);
 *          sl_buf_unref(b); */
SL_API int sl_hub_publish(sl_hub *h, sl_buf *frame, uint64_t ts_ms,
                          unsigned flags);
/* Send a text message (a JSON status push, say) to every WebSocket
 * subscriber of the hub (transports WS and WS_FMP4) as one WebSocket TEXT
 * message; HTTP subscribers and the subscriptions of a mux (sl_mux, which
 * has its own message format) do not get it. `len` bytes of `text` are
 * copied once into a shared buffer that every subscriber's queue
 * references. Unlike frames, text messages are never replaced, skipped or
 * delayed by the subscriber's policy or fps cap: each is queued at once,
 * whole, behind what the connection already holds, so texts arrive in the
 * order published; a frame still waiting in the viewer's policy queue
 * (for its queue to drain) goes after a text published later. The
 * bounds are the subscriber's send_max and the manager's budget: a
 * subscriber whose queue has no room for it (a stalled viewer) misses it,
 * counted in sl_sub_stats.text_drops and sl_hub_stats.text_drops (and a
 * debug log line); its bytes count in the viewer's lag like a frame's, so
 * the hub's hard and soft limits close a viewer that does not read them.
 * An H.264 viewer also gets the hub's own text message {"type":"config",
 * ...} (docs/h264.md): give yours another "type". Any thread, like
 * sl_hub_publish: from another thread it shares that queue (SL_EFULL when
 * 8 frames and texts wait; nothing was kept, retry). Returns 0, SL_EINVAL (NULL hub, or `text` not UTF-8),
 * SL_ENOMEM, SL_EFULL.
 * Example: sl_hub_publish_text(h, "{\"type\":\"status\",\"rec\":true}", 29); */
SL_API int sl_hub_publish_text(sl_hub *h, const char *text, size_t len);
/* 0 while a lossless subscriber is full (the producer should wait for
 * SL_HUB_READY), else 1. Any thread. */
SL_API int sl_hub_ready(const sl_hub *h);
/* The latest frame with a new reference (the caller unrefs), or NULL.
 * Loop thread. */
SL_API sl_buf *sl_hub_latest(sl_hub *h, uint64_t *seq, uint64_t *ts_ms);

/* Subscribe connection `c`, which has received an HTTP request `m` (for
 * MJPEG, CHUNKED and RAW the response head is sent here; for WS the
 * connection is upgraded with `ws` options). `opts` may be NULL (the hub's
 * defaults). When the hub is full and no stalled subscriber can be
 * evicted, replies 503 with Retry-After and returns SL_ELIMIT. Returns 0
 * or an SL_E* code (the request has then been answered).
 * Example: sl_hub_attach(h, c, m, SL_TRANSPORT_MJPEG, NULL, NULL); */
SL_API int sl_hub_attach(sl_hub *h, sl_conn *c, const sl_http_msg *m,
                         int transport, const sl_sub_opts *opts,
                         const sl_ws_opts *ws);
/* Attach a connection that is already set up (an open WebSocket, or a raw
 * TCP connection) without any HTTP exchange. */
SL_API int sl_hub_attach_conn(sl_hub *h, sl_conn *c, int transport,
                              const sl_sub_opts *opts);

/* Counters of one subscriber. */
typedef struct sl_sub_stats {
  uint64_t id;            /* connection id */
  char peer[64];
  int transport, policy, stalled;
  double fps_cap;
  double fps;             /* frames sent per second, measured */
  uint64_t frames_sent, bytes_sent, drops[SL_DROP_NREASONS];
  uint64_t lag_frames, lag_ms;
  size_t queued;          /* connection queued bytes */
  size_t pending;         /* frames waiting in its policy queue */
  uint64_t joined_ms, last_progress_ms;
  size_t send_max;
  uint64_t resyncs;       /* times it fell behind and skipped to a keyframe */
  int muxed;              /* 1: one subscription of a multiplexed
                             connection (sl_mux); `queued` and `send_max`
                             are then the whole connection's */
  uint32_t mux_id;        /* its subscription id there */
  uint64_t texts_sent;    /* text messages queued (sl_hub_publish_text) */
  uint64_t text_drops;    /* text messages refused: no room (send_max) or
                             over the manager's budget */
  size_t notsent_lowat;   /* TCP_NOTSENT_LOWAT in force on its socket (the
                             whole connection's when muxed); 0: the
                             kernel's default */
} sl_sub_stats;

/* Counters of a hub. */
typedef struct sl_hub_stats {
  uint64_t frames_in, bytes_in, seq;
  double fps_in;              /* publish rate over the last seconds */
  size_t subs, max_subs;
  size_t held;                /* bytes of this hub's frames still alive */
  size_t frames_held;         /* how many frames that is */
  size_t largest_frame;
  uint64_t joins, leaves, evictions[SL_EVICT_HUB + 1];
  uint64_t refused;           /* 503s */
  uint64_t lost;              /* frames that could not be stored (memory) */
  uint64_t drops[SL_DROP_NREASONS];
  int ready;
  int kind;                   /* SL_KIND_* */
  double bitrate;             /* bits/s published, over the last seconds */
  uint64_t resyncs;           /* subscribers' skips to a keyframe */
  /* H.264 */
  char codec[16];             /* RFC 6381 string ("avc1.42c01e"); "" until
                                 the first SPS */
  int width, height;          /* from the SPS */
  double codec_fps;           /* from the SPS timing info; 0 when absent */
  size_t gop_frames, gop_bytes; /* the cached GOP */
  uint64_t gop_cuts;          /* GOPs dropped from the cache for gop_max */
  uint64_t codec_changes;     /* configurations taken (1 for a steady one) */
  uint64_t no_config;         /* frames refused before a configuration, or
                                 unreadable SPS */
  uint64_t mp4_fragments;     /* fMP4 fragments built: one per frame that
                                 any fMP4 viewer took, whatever their number */
  uint64_t mp4_bytes;         /* their bytes */
  uint64_t texts_in;          /* sl_hub_publish_text messages taken */
  uint64_t texts_sent;        /* copies queued to WebSocket subscribers */
  uint64_t text_drops;        /* copies refused (see sl_sub_stats) */
  /* As a member of a hub group (sl_hub_group_*); 0 otherwise. */
  uint64_t group_lost;        /* frames of the group this hub missed: its
                                 loop was behind (inbound queue full) */
  uint64_t group_skipped;     /* H.264: frames withheld after such a loss,
                                 until the next IDR */
  uint64_t group_resyncs;     /* H.264: resumed at an IDR after a loss */
  uint64_t group_texts_lost;  /* texts of the group this hub missed */
} sl_hub_stats;

SL_API void sl_hub_stats_get(sl_hub *h, sl_hub_stats *out);
/* Copy up to `max` subscribers' counters into `out`; returns how many
 * subscribers there are (may exceed max). */
SL_API size_t sl_hub_subs(sl_hub *h, sl_sub_stats *out, size_t max);
/* Iterate hubs of a manager: pass NULL for the first. */
SL_API sl_hub *sl_hub_next(sl_mgr *m, sl_hub *prev);

/* ------------------------------------------------------------------ */
/* Hub groups: one stream, several loops on several threads            */
/* ------------------------------------------------------------------ */

/* A group joins hubs of different managers (one manager per thread, each
 * listening on the same port with sl_mgr_opts.reuseport) into one stream:
 * a frame published once to the group reaches the subscribers of every
 * member, each member's viewers being served by their own loop, with no
 * lock on any viewer's path. The frame's bytes are stored once: each
 * member gets a small alias of the caller's sl_buf (its own reference
 * count and holder slot, the same bytes), so each manager counts the frame
 * in its `held` once and frees its share when its own viewers are done,
 * while the process-wide sl_mem_stats count the bytes once. Whatever a
 * member derives from a frame (the fMP4 fragment, the codec
 * configuration, the GOP cache, the latest frame) is its own. A frame's
 * sequence number (its sl_hub_stats.seq, the `seq` of its MJPEG part and
 * WebSocket header, its fMP4 fragment's number) is the group's and the
 * same in every member; a member that joined late or was withheld frames
 * has gaps, never numbers of its own.
 *
 * Delivery. A member on the calling thread's loop gets the frame at once
 * (as sl_hub_publish on the loop thread); every other member through its
 * inbound queue (8 items, shared with its own sl_hub_publish callers),
 * then its loop is woken. A member whose queue is full (its loop is
 * behind) loses that frame: counted in its sl_hub_stats.group_lost and in
 * the group's `lost`; the others are not held back. For an H.264 group a
 * loss is a gap in that member's stream: the group then withholds every
 * frame from it (group_skipped) until the next IDR, which it hands over
 * after the current parameter sets (group_resyncs), so no viewer of that
 * loop ever gets a frame whose reference it did not get; its viewers
 * freeze on the last good picture and resume at the IDR. A producer that
 * must not lose frames (lossless subscribers) waits for
 * sl_hub_group_ready() before each publish.
 *
 * Thread rules. sl_hub_group_new, _publish, _publish_text, _ready,
 * _stats_get and _free: any thread. sl_hub_group_add and _remove: on the
 * member's loop thread, or before that loop runs. sl_hub_free (and
 * sl_mgr_free) of a member takes it out of its group first, so members
 * may be freed at any time, each by its own thread; the group itself is
 * freed by sl_hub_group_free, before or after its members (its memory
 * goes when the last of them has let it go). A hub belongs to at most
 * one group; every member has the same kind (SL_KIND_*). As with
 * sl_hub_publish, a manager takes the thread of its first sl_mgr_poll
 * for its loop thread, and before that the thread that created it: make
 * each member's manager on its own loop thread, or publish only once
 * every loop has polled. A publish from a member's loop thread runs that
 * member's viewers (and hub events) inside the call; a handler must not
 * free a member of the group from there.
 * Example: g = sl_hub_group_new(&err); for each loop i:
 *          sl_hub_group_add(g, hub[i]); ... (a capture thread:)
 *          sl_hub_group_publish(g, b, 0, 0); sl_buf_unref(b); */
typedef struct sl_hub_group sl_hub_group;

/* A new, empty group. NULL with *err (SL_ENOMEM) on failure. Any thread. */
SL_API sl_hub_group *sl_hub_group_new(int *err);
/* Let the group go: its members leave it (they and their viewers stay);
 * a publisher must not use it any more. NULL is ignored. Any thread. */
SL_API void sl_hub_group_free(sl_hub_group *g);
/* Add hub `h`. Returns 0; SL_EINVAL (NULL, or a kind other than the
 * members'), SL_EEXIST (`h` is already in a group). On `h`'s loop thread,
 * or before that loop runs. A member joins at the next frame (an H.264
 * member at the next IDR, as after a loss). */
SL_API int sl_hub_group_add(sl_hub_group *g, sl_hub *h);
/* Take `h` out of the group (its viewers stay on it). SL_ENOENT when it
 * is not a member. On `h`'s loop thread, or before that loop runs. */
SL_API int sl_hub_group_remove(sl_hub_group *g, sl_hub *h);
/* Publish `frame` to every member, as sl_hub_publish does to one hub
 * (ownership: the caller keeps its reference; the frame must not change
 * afterwards; `ts_ms` and `flags` likewise). Returns 0 when every member
 * got it or a member's loss was counted (see above); SL_EINVAL (NULL);
 * SL_ENOMEM when no member could be given it. Any thread.
 * Example: sl_hub_group_publish(g, b, 0, SL_FRAME_KEY); */
SL_API int sl_hub_group_publish(sl_hub_group *g, sl_buf *frame,
                                uint64_t ts_ms, unsigned flags);
/* sl_hub_publish_text to every member: `len` bytes of `text` are copied
 * once and shared. A member whose queue is full misses it (counted in
 * group_texts_lost). Returns 0, SL_EINVAL (NULL group, text not UTF-8),
 * SL_ENOMEM. Any thread. */
SL_API int sl_hub_group_publish_text(sl_hub_group *g, const char *text,
                                     size_t len);
/* 1 when every member is ready (sl_hub_ready) and has room in its
 * inbound queue for one more frame, else 0: a producer that waits for it
 * before publishing loses nothing. Any thread. */
SL_API int sl_hub_group_ready(sl_hub_group *g);

typedef struct sl_hub_group_stats {
  size_t members;
  uint64_t frames_in;   /* sl_hub_group_publish calls that were handed on */
  uint64_t texts_in;
  uint64_t lost;        /* member-frames lost to full queues (all members) */
  uint64_t skipped;     /* H.264: member-frames withheld until an IDR */
  uint64_t resyncs;     /* H.264: members resumed at an IDR */
  uint64_t texts_lost;
} sl_hub_group_stats;
/* Fill `out` with the group's counters. Any thread. */
SL_API void sl_hub_group_stats_get(sl_hub_group *g, sl_hub_group_stats *out);

/* ------------------------------------------------------------------ */
/* Multiplexing: many hubs' subscribers on one WebSocket               */
/* ------------------------------------------------------------------ */

/* A mux carries any number of subscriptions (of any hubs) over one open
 * WebSocket connection, so that a page showing a dozen streams needs one
 * connection, not a dozen (browsers open at most 6 HTTP/1.1 connections
 * per host). Each subscription is a hub subscriber of its own: its own
 * policy, fps cap, drops, lag, H.264 keyframe rule and counters. What they
 * share is the socket, and its bound: the connection's send_max (default
 * 2 x the largest frame of its hubs + 64 KiB) and stall rule hold for the
 * whole socket, and a stalled socket is evicted as one connection.
 *
 * Fairness: round-robin by frames. A subscription takes its next frame
 * only when the connection's queue is empty (the pull rule of the live
 * policies, for all of them here); then, in a fixed circular order
 * starting after the last one served, the first subscription with a frame
 * pending takes one frame. So a frame published for any subscription waits
 * for at most one frame of each other subscription, and over any stretch in
 * which k subscriptions always have a frame waiting, each gets 1/k of the
 * frames the socket carries, and one with a fast stream, a long queue or
 * lossless frames cannot hold back the others.
 *
 * Wire format (docs/mux.md): the client sends JSON text messages
 * {"op":"subscribe","id":N,"stream":"name","policy":"latest","fps":10,
 * "format":"jpeg"|"h264"|"fmp4"} and {"op":"unsubscribe","id":N}; the
 * server answers {"type":"subscribed",...}, {"type":"unsubscribed",...} or
 * {"type":"error","id":N,"error":"unknown stream"|"forbidden"|...}, sends
 * {"type":"config","id":N,...} before an H.264 subscription's first frame
 * (and on a change), and one binary message per frame: the 4-byte
 * big-endian subscription id, then the 16-byte header of docs/h264.md
 * (type 0 = JPEG, 1 = H.264 access unit, 2/3 = fMP4), then the frame,
 * shared by reference with every other viewer.
 *
 * Loop thread only, like every hub call. */
typedef struct sl_mux sl_mux;

typedef struct sl_mux_opts {
  unsigned max_subs;     /* subscriptions at once (32) */
  size_t max_msg;        /* longest control message (1024 bytes); longer
                            ones are answered with an error */
  size_t send_max;       /* the connection's; 0: 2 x the largest frame of
                            its hubs + 64 KiB */
  uint32_t stall_ms;     /* the connection's stall rule (300 s) */
  int allow_lossless;    /* let clients ask for "policy":"lossless" */
  sl_sub_opts sub;       /* defaults of its subscriptions, over the hubs'
                            (send_max and stall_ms are the mux's) */
  /* Map a stream name to a hub for a client's "subscribe" (NULL: by hub
   * name, sl_hub_find). `o` holds the request's options on top of `sub`;
   * the function may change them. Return 0 with *hub set, SL_ENOENT
   * ("unknown stream") or SL_EACCES ("forbidden"; any other code:
   * "refused"). `stream` is borrowed for the call. */
  int (*resolve)(sl_mux *x, const char *stream, sl_sub_opts *o, sl_hub **hub,
                 void *arg);
  void *arg;
} sl_mux_opts;

/* Make the open WebSocket `c` a multiplexed connection (`o` copied; NULL:
 * defaults). The mux belongs to the connection: it is freed with it (at
 * its SL_EV_CLOSE, before the handler sees that event; do not use it
 * afterwards). NULL with *err: SL_EINVAL (not an open WebSocket), SL_EBUSY
 * (the connection already has a hub subscriber or a mux), SL_ENOMEM.
 * Example: x = sl_mux_new(c, NULL, &err);  (right after sl_ws_upgrade) */
SL_API sl_mux *sl_mux_new(sl_conn *c, const sl_mux_opts *o, int *err);
/* The mux of connection `c`, or NULL. */
SL_API sl_mux *sl_mux_of(const sl_conn *c);
/* Subscribe hub `h` as subscription `id` with framing SL_TRANSPORT_WS
 * (JPEG frames, or H.264 access units) or SL_TRANSPORT_WS_FMP4 (H.264
 * only); `o` may be NULL (the mux's defaults). The "subscribed" message is
 * queued first. Returns 0, SL_EEXIST (`id` in use), SL_ELIMIT (max_subs
 * reached, or the hub is full), SL_EINVAL (a framing the hub's kind does
 * not offer), SL_ECLOSING, SL_ENOBUFS (no room for the message), SL_ENOMEM;
 * nothing is subscribed on an error. */
SL_API int sl_mux_subscribe(sl_mux *x, sl_hub *h, uint32_t id, int transport,
                            const sl_sub_opts *o);
/* End subscription `id`: its pending frames are dropped (frames already
 * queued on the socket still arrive: a client ignores ids it no longer
 * has) and {"type":"unsubscribed","id":N} is queued. 0 or SL_ENOENT. */
SL_API int sl_mux_unsubscribe(sl_mux *x, uint32_t id);
/* Act on one client message (a text message of docs/mux.md): subscribe,
 * unsubscribe, or an error message for anything else (bad JSON, unknown
 * op, unknown stream...). Call it from the connection's handler for
 * SL_EV_WS_MSG; the message is borrowed for the call. Returns 0 when the
 * request was carried out, else the error code that was answered. */
SL_API int sl_mux_handle(sl_mux *x, const sl_ws_msg *msg);
/* Copy up to `max` subscriptions' counters into `out`; returns how many
 * there are. */
SL_API size_t sl_mux_subs(const sl_mux *x, sl_sub_stats *out, size_t max);

/* ------------------------------------------------------------------ */
/* H.264                                                               */
/* ------------------------------------------------------------------ */

/* What a sequence parameter set (SPS, ITU-T H.264 7.3.2.1) says about the
 * stream, as far as a server needs it. */
typedef struct sl_h264_info {
  int profile_idc, constraints, level_idc; /* SPS bytes 1..3 */
  int width, height;     /* picture size after cropping, in pixels */
  double fps;            /* time_scale / (2 * num_units_in_tick) from the
                            VUI timing info when present, else 0 */
  char codec[16];        /* RFC 6381 codec string "avc1.PPCCLL", lowercase
                            hex, e.g. "avc1.42c01f" */
  int sps_id;            /* seq_parameter_set_id, 0..31 */
  int chroma_format_idc; /* 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4 */
  int bit_depth;         /* luma bit depth, 8..14 */
  int frame_mbs_only;    /* 0 when the stream may code fields (interlaced) */
  int coded_width, coded_height; /* before cropping, whole macroblocks */
} sl_h264_info;

/* Parse one SPS NAL unit: `nal` holds its header byte and payload as they
 * appear in the stream (no start code); emulation-prevention bytes are
 * skipped internally. Handles every profile (chroma_format_idc, bit depths,
 * scaling lists), frame_mbs_only = 0, cropping and the VUI up to its timing
 * info; a VUI cut short leaves fps at 0 rather than failing the SPS.
 * Returns 0 and fills `out`, or SL_EINVAL (NULL argument, not an SPS NAL
 * unit) or SL_EPROTO (truncated, or a value out of the spec's range); `out`
 * is then unspecified. `nal` is borrowed for the call. Pure, any thread.
 * Example: sl_h264_info i; if (sl_h264_parse_sps(p, n, &i) == 0)
 *            printf("%dx%d %s\n", i.width, i.height, i.codec); */
SL_API int sl_h264_parse_sps(const void *nal, size_t len, sl_h264_info *out);

/* One access unit (one coded picture with its parameter sets and SEI), as
 * handed to on_au. Every pointer is borrowed until on_au returns. */
typedef struct sl_h264_au {
  sl_buf *buf;          /* the access unit in Annex-B form, every NAL unit
                           behind a 4-byte start code; take a reference
                           (sl_buf_ref) to keep it */
  int key;              /* holds an IDR slice whose PPS and SPS are known
                           (an IDR picture referring to an unknown one is
                           handed over as not key). Such an AU always
                           carries the SPS and PPS in force in front of its
                           first slice (the reader inserts them when the
                           encoder did not repeat them), so it decodes on
                           its own */
  int config_changed;   /* SPS or PPS differ from the previous AU's (1 on
                           the first AU) */
  sl_buf *config;       /* SPS + PPS in force (the SPS and every PPS that
                           refers to it), Annex-B; the same object while
                           they are unchanged */
  const sl_h264_info *info; /* parsed from that SPS */
} sl_h264_au;

/* Options of sl_h264_reader_new(); zero fields take the defaults. */
typedef struct sl_h264_reader_opts {
  size_t nal_max;   /* largest NAL unit kept (default 4 MiB); a larger one
                       is dropped with its AU, and counted */
  size_t au_max;    /* largest access unit (default 8 MiB), parameter sets
                       inserted in front of a key AU included; a larger one
                       is dropped, and counted */
  /* Called for each complete access unit, in stream order, from inside
   * feed() or flush(). It must not call feed, flush or free on the same
   * reader. NULL counts and discards the AUs. */
  void (*on_au)(const sl_h264_au *au, void *arg);
  void *arg;
} sl_h264_reader_opts;

/* Counters of a reader, since it was created. */
typedef struct sl_h264_reader_stats {
  uint64_t bytes, nals, aus, keyframes; /* fed, NAL units seen, AUs and key
                                           AUs handed to on_au */
  uint64_t drop_nal_too_big, drop_au_too_big;
  uint64_t drop_before_key; /* AUs before the first IDR with its SPS + PPS
                               known, and after a dropped reference picture
                               until the next IDR */
  uint64_t drop_bad_sps;    /* SPS or PPS NAL units that do not parse (the
                               one in force stays) */
  uint64_t garbage_bytes;   /* bytes before the first start code, or not
                               NAL-shaped (forbidden bit set, type 0 or
                               24..31, or after a NAL ended on 00 00 00);
                               zero bytes between units are not counted */
  uint64_t drop_no_slice;   /* AUs without a slice (e.g. parameter sets at
                               the very end of the stream) */
  uint64_t drop_nomem;      /* AUs dropped for lack of memory */
} sl_h264_reader_stats;

/* An incremental Annex-B (H.264 Annex B) byte-stream reader: it finds NAL
 * units across any split of the input, groups them into access units by the
 * rules of 7.4.1.2.3 and 7.4.1.2.4 (AUD, SPS, PPS, SEI and types 14..18
 * after a slice; a slice with first_mb_in_slice 0, or whose pps id,
 * frame_num, field flags, nal_ref_idc, IDR flag, idr_pic_id or
 * pic_order_cnt_lsb differ from the picture's first slice) and hands each
 * one to on_au. An AU is handed over as soon as the first NAL unit of the
 * next one has begun: its start code, header and, for a slice, the first
 * 24 bytes of its header. Memory is bounded by au_max plus the parameter
 * sets (at most 32 SPS and 256 PPS of <= 4 KiB each); oversized units and
 * garbage are counted and skipped, and the reader resyncs on the next start
 * code. Nothing is handed over until an IDR AU whose SPS and PPS are known.
 * A reader is used from one thread at a time. */
typedef struct sl_h264_reader sl_h264_reader;

/* Create a reader; `o` is copied (NULL = defaults, AUs discarded). NULL on
 * failure with SL_ENOMEM in *err. Any thread.
 * Example: sl_h264_reader_opts o = {.on_au = on_au, .arg = hub};
 *          sl_h264_reader *r = sl_h264_reader_new(&o, NULL); */
SL_API sl_h264_reader *sl_h264_reader_new(const sl_h264_reader_opts *o,
                                          int *err);
/* Feed the next `len` bytes of the stream (any split; `data` borrowed for
 * the call); calls on_au for each AU completed by them. Returns 0, SL_EBUSY
 * when called from inside on_au (nothing read), or SL_ENOMEM when an AU had
 * to be dropped for lack of memory (the bytes were still all read). */
SL_API int sl_h264_reader_feed(sl_h264_reader *r, const void *data,
                               size_t len);
/* End of stream: completes the last NAL unit and hands over the last AU.
 * The reader may then be fed a new stream (it starts looking for a start
 * code again; the parameter sets it knows stay). Same returns as feed. */
SL_API int sl_h264_reader_flush(sl_h264_reader *r);
/* Copy the counters into `out`. */
SL_API void sl_h264_reader_stats_get(const sl_h264_reader *r,
                                     sl_h264_reader_stats *out);
/* Free the reader and everything it holds (an AU still being assembled is
 * discarded; AUs referenced by the application stay theirs). NULL is
 * ignored. */
SL_API void sl_h264_reader_free(sl_h264_reader *r);

/* ------------------------------------------------------------------ */
/* Fragmented MP4                                                      */
/* ------------------------------------------------------------------ */

/* An H.264 fragmented-MP4 muxer (ISO/IEC 14496-12 and 14496-15) for Media
 * Source Extensions players and other fMP4 readers: one init segment per
 * stream, then one fragment (moof + mdat holding exactly one access unit)
 * per frame. Both are pure functions of their arguments: they need no
 * manager, keep no state between calls and may be called from any thread.
 * A fragment's bytes depend only on its arguments, so one sl_buf serves
 * every viewer (publish it to a hub as it is). One video track (ID 1); no
 * B-frames (every composition offset is 0, so pts = dts). */

/* The init segment: ftyp (major brand iso5; iso5, iso6, avc1, mp41) and
 * moov (mvhd, one video trak whose avc1 sample entry holds an avcC built
 * from the parameter sets, empty sample tables, and mvex/trex).
 * `config` (borrowed for the call) is Annex-B H.264 (start codes of 3 or 4
 * bytes) holding at least one SPS (NAL type 7) and one PPS (type 8); other
 * NAL units are ignored, so the first keyframe's access unit will do. Every
 * distinct SPS (up to 31) and PPS (up to 255) goes into avcC, in order; the
 * first SPS gives the profile and, for the high profiles, the chroma format
 * and bit depths. `width`/`height` are the picture size in pixels (1..65535,
 * the caller's reading of the SPS); `timescale` is ticks per second of every
 * dts and duration given to sl_fmp4_fragment() (90000 is usual).
 * Returns a new buffer with one reference (the caller unrefs), or NULL with
 * *err (when err is not NULL): SL_EINVAL (no SPS or PPS, a truncated or
 * invalid SPS, a parameter set over 65535 bytes, too many of them, a size or
 * timescale out of range), SL_ENOMEM. Any thread.
 * Example: sl_buf *init = sl_fmp4_init(au, n, 1280, 720, 90000, &err); */
SL_API sl_buf *sl_fmp4_init(const void *config, size_t len, int width,
                            int height, uint32_t timescale, int *err);

/* One fragment: moof (mfhd with sequence_number `seq`; traf with tfhd
 * default-base-is-moof, tfdt baseMediaDecodeTime `dts`, trun of one sample
 * of `duration` ticks, flagged sync when `key` is nonzero) followed by an
 * mdat holding the access unit `au` (borrowed for the call) converted from
 * Annex-B to 4-byte length-prefixed NAL units. AUD, SPS, PPS and filler
 * NAL units are left out (the parameter sets live in the init segment: a
 * stream whose SPS/PPS change needs a new init segment); SEI and the rest
 * are kept. `seq` should start at 1 and grow by one per fragment; `dts`
 * may start anywhere and may jump (a skipped GOP), in the init segment's
 * timescale. Returns a new buffer with one reference (the caller unrefs),
 * or NULL with *err: SL_EINVAL (no NAL unit left in `au`), SL_EMSGSIZE (the
 * sample would not fit 32-bit box sizes, about 4 GiB), SL_ENOMEM. Any
 * thread.
 * Example: sl_buf *f = sl_fmp4_fragment(au, n, seq++, dts, 3600, key, &err);
 *          dts += 3600; */
SL_API sl_buf *sl_fmp4_fragment(const void *au, size_t len, uint32_t seq,
                                uint64_t dts, uint32_t duration, int key,
                                int *err);

#ifdef __cplusplus
}
#endif
#endif
