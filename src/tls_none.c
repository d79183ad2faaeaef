/*
 * The TLS API of a library built without OpenSSL (CMake SL_TLS=OFF):
 * every call fails with SL_ENOTSUP, so programs link and run unchanged
 * and learn at run time that TLS is not there. No listener or connection
 * can get a TLS context or transport.
 */
#include "tls.h"

sl_tls_ctx *sl_tls_server_new(const sl_tls_opts *o, int *err) {
  (void)o;
  if (err) *err = SL_ENOTSUP;
  return NULL;
}

sl_tls_ctx *sl_tls_client_new(const sl_tls_opts *o, int *err) {
  (void)o;
  if (err) *err = SL_ENOTSUP;
  return NULL;
}

void sl_tls_ctx_free(sl_tls_ctx *ctx) { (void)ctx; }

int sl_tls_reload(sl_tls_ctx *ctx, const sl_tls_opts *o) {
  (void)ctx, (void)o;
  return SL_ENOTSUP;
}

const char *sl_tls_last_error(void) {
  return "TLS is not built into this library (configure with OpenSSL and -DSL_TLS=ON)";
}

int sl_conn_tls(sl_conn *c, sl_tls_ctx *ctx, const char *host) {
  (void)c, (void)ctx, (void)host;
  return SL_ENOTSUP;
}

sl_conn *sl_listen_tls(sl_mgr *m, const char *url, sl_tls_ctx *ctx, sl_handler fn,
                       void *data, int *err) {
  (void)m, (void)url, (void)ctx, (void)fn, (void)data;
  if (err) *err = SL_ENOTSUP;
  return NULL;
}

int sl_conn_is_tls(const sl_conn *c) {
  (void)c;
  return 0;
}

int sl_conn_tls_info(const sl_conn *c, char *out, size_t cap) {
  (void)c, (void)out, (void)cap;
  return SL_ENOTSUP;
}

int sl_conn_tls_peer(const sl_conn *c, char *out, size_t cap) {
  (void)c, (void)out, (void)cap;
  return SL_ENOTSUP;
}

struct sl_tls_ctx *sl__tls_ctx_ref(struct sl_tls_ctx *ctx) { return ctx; }

void sl__tls_ctx_unref(struct sl_tls_ctx *ctx) { (void)ctx; }

int sl__tls_server_ok(const struct sl_tls_ctx *ctx) {
  (void)ctx;
  return SL_ENOTSUP;
}

struct sl_tls_ctx *sl__tls_default_client(sl_mgr *m, int *err) {
  (void)m;
  if (err) *err = SL_ENOTSUP;
  return NULL;
}
