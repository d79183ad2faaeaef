/*
 * TLS over a connection (tls.c, with OpenSSL; tls_none.c when the library
 * is built without it): the hooks the core and the protocols call. The
 * public half is the "TLS" section of sluice.h.
 */
#ifndef SL_TLS_H
#define SL_TLS_H

#include "internal.h"

/* Start the server handshake on connection `c` just accepted by a
 * listener with context `ctx`: before SL_EV_OPEN; SL_EV_ACCEPT follows the
 * handshake. Returns 0, SL_ENOMEM (the connection is then refused). */
int sl__tls_accept(struct sl_tls_ctx *ctx, sl_conn *c);
/* Take and drop a reference to a context. Any thread. */
struct sl_tls_ctx *sl__tls_ctx_ref(struct sl_tls_ctx *ctx);
void sl__tls_ctx_unref(struct sl_tls_ctx *ctx);
/* 0 when `ctx` is a server context, SL_EINVAL when it is not (or NULL),
 * SL_ENOTSUP without TLS. */
int sl__tls_server_ok(const struct sl_tls_ctx *ctx);
/* The manager's default client context (the system's CAs, verification
 * on), created on first use and freed with the manager: borrowed. NULL
 * with *err (SL_ENOTSUP without TLS, SL_ETLS, SL_ENOMEM). */
struct sl_tls_ctx *sl__tls_default_client(sl_mgr *m, int *err);
/* Drop the manager's default client context (sl_mgr_free). */
void sl__tls_mgr_fini(sl_mgr *m);

#endif
