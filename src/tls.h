/*
 * TLS over a connection (tls.c, with OpenSSL; tls_none.c when the library
 * is built without it): what the protocols call. The core calls TLS only
 * through the transport hooks (struct sl_io) TLS installs. The
 * public half is the "TLS" section of sluice.h.
 */
#ifndef SL_TLS_H
#define SL_TLS_H

#include "internal.h"

/* Take and drop a reference to a context. Any thread. */
struct sl_tls_ctx *sl__tls_ctx_ref(struct sl_tls_ctx *ctx);
void sl__tls_ctx_unref(struct sl_tls_ctx *ctx);
/* 0 when `ctx` is a server context, SL_EINVAL when it is not (or NULL),
 * SL_ENOTSUP without TLS. */
int sl__tls_server_ok(const struct sl_tls_ctx *ctx);
/* The manager's default client context (the system's CAs, verification
 * on), created on first use and dropped by sl_mgr_free (a module slot,
 * sl__mgr_on_free): borrowed. NULL with *err (SL_ENOTSUP without TLS,
 * SL_ETLS, SL_ENOMEM). */
struct sl_tls_ctx *sl__tls_default_client(sl_mgr *m, int *err);

#endif
