/*
 * TLS over a connection, with OpenSSL. The connection keeps its socket and
 * its output queue; TLS is a transport (struct sl_io) between them:
 *
 *   writes   tls_writev takes at most one record's worth of plaintext
 *            (SL_TLS_RECORD, 16 KiB) from the front of the queue's iovecs,
 *            SSL_write encrypts it into the connection's record buffer
 *            (`rec`, through a BIO of ours that only appends), and the
 *            ciphertext goes to the socket at once. When the socket takes
 *            all of it, the record's plaintext is reported written and the
 *            next record follows; when it does not, the rest waits in `rec`
 *            and nothing more is encrypted until it has gone. The queue
 *            consumes a record's plaintext only then, so queued bytes stay
 *            exact, and a stalled peer holds send_max plus one record.
 *   reads    SSL_read straight into the input buffer, record by record,
 *            through the same BIO, which recv()s from the socket only what
 *            OpenSSL asks for (no read-ahead): what the input buffer has
 *            no room for stays in the kernel, and TCP pushes back.
 *
 * OpenSSL never holds bytes that wait: SSL_write always completes into
 * `rec` (the BIO never refuses), and SSL_read leaves at most the rest of
 * one decrypted record, which sl_io.held reports so the core reads it even
 * though the poller will not signal it.
 *
 * The handshake runs in state SL_ST_HANDSHAKE: the core calls
 * tls_handshake when the socket is readable (and when a client connects),
 * bounds it by connect_deadline, and keeps the queue waiting; completion
 * announces the connection (sl__conn_announce: SL_EV_ACCEPT or
 * SL_EV_CONNECT).
 *
 * The hooks: tls_io is the transport of a TLS connection; a TLS listener
 * has tls_listen_io, whose accept hook gives each accepted connection
 * tls_io and whose io_data is the listener's context (a reference). The
 * manager's default client context is a module slot (sl__mgr_on_free).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "alloc.h"
#include "tls.h"

/* Plaintext per record: the TLS maximum (RFC 8446 section 5.1). */
#define SL_TLS_RECORD 16384u
/* The record buffer's usual size: one record and its overhead (header,
 * explicit nonce, tag or MAC and padding: under 512 bytes with any
 * cipher OpenSSL allows at TLS 1.2+). It grows only for a handshake
 * flight larger than that (a long certificate chain). */
#define SL_TLS_REC_CAP (SL_TLS_RECORD + 512u)
/* Segments shorter than this are gathered into one record (headers, chunk
 * sizes); longer ones are encrypted where they are. */
#define SL_TLS_GATHER 2048u
#define DEFAULT_HANDSHAKE_MS 10000u

struct sl_tls_ctx {
  atomic_uint refs;
  int server;
  int insecure;
  pthread_mutex_t lock;     /* guards ssl and handshake_ms (reload) */
  SSL_CTX *ssl;
  uint32_t handshake_ms;
};

/* The TLS state of one connection (its io_data). */
struct sl_tls {
  SSL *ssl;
  struct sl_tls_ctx *ctx;   /* a reference */
  int server;
  int started;              /* handshake deadline armed */
  int done;                 /* handshake complete */
  int failed;               /* a fatal error: no close_notify */
  int eof;                  /* recv() returned 0 */
  int read_again;           /* SSL_read stopped early with something to say */
  int sys_errno;            /* errno of the last failed recv() */
  unsigned char *rec;       /* ciphertext for the socket: [rec_off, rec_len) */
  size_t rec_off, rec_len, rec_cap;
  size_t rec_plain;         /* queue bytes the record in `rec` carries */
  char host[256];           /* client: the name asked for ("": the URL's) */
};

static _Thread_local char last_error[512];

const char *sl_tls_last_error(void) { return last_error; }

/* OpenSSL's reason for error `e`, in words. */
static const char *reason_of(unsigned long e, char *buf, size_t cap) {
  const char *r = ERR_reason_error_string(e);
  if (r) return r;
  ERR_error_string_n(e, buf, cap);
  return buf;
}

/* last_error = what + detail + the first and the last reasons OpenSSL
 * queued ("no start line (PEM lib)"), then the queue is cleared. */
static void set_error(const char *what, const char *detail) {
  char b1[100], b2[100], reason[208] = "";
  unsigned long first = ERR_peek_error(), last = ERR_peek_last_error();
  if (first) {
    const char *r1 = reason_of(first, b1, sizeof(b1)), *r2 = reason_of(last, b2, sizeof(b2));
    if (last == first || strcmp(r1, r2) == 0) snprintf(reason, sizeof(reason), "%s", r1);
    else snprintf(reason, sizeof(reason), "%s (%s)", r1, r2);
  }
  snprintf(last_error, sizeof(last_error), "%s%s%s%s%s", what, detail ? " " : "",
           detail ? detail : "", reason[0] ? ": " : "", reason);
  ERR_clear_error();
}

/* ---- accounting of the record buffer ------------------------------ */

static void rec_account(sl_conn *c, long long delta) {
  c->mgr->io_held += (size_t)delta; /* wraps back on release */
  sl__acct_held(&c->mgr->acct, delta);
}

/* Make room for `len` more bytes. 0 or SL_ENOMEM. */
static int rec_reserve(sl_conn *c, struct sl_tls *t, size_t len) {
  if (t->rec_len + len <= t->rec_cap) return 0;
  if (t->rec_off) {
    /* Only an alert or a ticket appended behind a partly sent record gets
     * here: a few hundred bytes move, once. */
    memmove(t->rec, t->rec + t->rec_off, t->rec_len - t->rec_off);
    t->rec_len -= t->rec_off;
    t->rec_off = 0;
    if (t->rec_len + len <= t->rec_cap) return 0;
  }
  size_t cap = t->rec_len + len;
  if (cap < SL_TLS_REC_CAP) cap = SL_TLS_REC_CAP;
  unsigned char *p = sl__realloc(t->rec, t->rec_cap, cap, SL_MEM_OUT);
  if (p == NULL) return SL_ENOMEM;
  rec_account(c, (long long)(cap - t->rec_cap));
  t->rec = p;
  t->rec_cap = cap;
  return 0;
}

static void rec_release(sl_conn *c, struct sl_tls *t) {
  if (t->rec == NULL) return;
  rec_account(c, -(long long)t->rec_cap);
  sl__free(t->rec, t->rec_cap, SL_MEM_OUT);
  t->rec = NULL;
  t->rec_cap = t->rec_len = t->rec_off = 0;
}

/* Write what `rec` holds; what the socket does not take stays. Returns 0,
 * or -1 with errno set on a socket error. */
static int rec_send(sl_conn *c, struct sl_tls *t) {
  while (t->rec_off < t->rec_len) {
    ssize_t w = send(c->fd, t->rec + t->rec_off, t->rec_len - t->rec_off,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return -1;
    }
    t->rec_off += (size_t)w;
  }
  t->rec_off = t->rec_len = 0;
  return 0;
}

/* ---- the BIO between OpenSSL and the connection ------------------- */

static int bio_write(BIO *b, const char *data, int len) {
  sl_conn *c = BIO_get_data(b);
  struct sl_tls *t = c->io_data;
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  if (rec_reserve(c, t, (size_t)len) != 0) return -1;
  memcpy(t->rec + t->rec_len, data, (size_t)len);
  t->rec_len += (size_t)len;
  return len;
}

static int bio_read(BIO *b, char *buf, int len) {
  sl_conn *c = BIO_get_data(b);
  struct sl_tls *t = c->io_data;
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  ssize_t n = recv(c->fd, buf, (size_t)len, MSG_DONTWAIT);
  if (n > 0) return (int)n;
  if (n == 0) {
    t->eof = 1;
    return 0;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
    BIO_set_retry_read(b);
    return -1;
  }
  t->sys_errno = errno;
  return -1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b, (void)num, (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/* Made once per process and kept: OpenSSL's own globals live as long. */
static void bio_method_init(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sluice");
  if (m == NULL) return;
  BIO_meth_set_write(m, bio_write);
  BIO_meth_set_read(m, bio_read);
  BIO_meth_set_ctrl(m, bio_ctrl);
  BIO_meth_set_create(m, bio_create);
  bio_method = m;
}

/* ---- contexts ------------------------------------------------------- */

static int file_error(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    snprintf(last_error, sizeof(last_error), "%s: %s", path, strerror(errno));
    ERR_clear_error();
    return errno == ENOENT ? SL_ENOENT : errno == EACCES ? SL_EACCES : SL_ETLS;
  }
  return 0;
}

/* A certificate and its chain from PEM text. */
static int use_cert_pem(SSL_CTX *ctx, const char *pem) {
  int rc = SL_ETLS;
  X509 *x = NULL, *ca;
  BIO *b = BIO_new_mem_buf(pem, -1);
  if (b == NULL || (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL ||
      SSL_CTX_use_certificate(ctx, x) != 1) {
    set_error("certificate", "(cert_pem)");
    goto out;
  }
  while ((ca = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
    if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
      X509_free(ca);
      set_error("certificate chain", "(cert_pem)");
      goto out;
    }
  }
  ERR_clear_error(); /* the end of the text */
  rc = 0;
out:
  BIO_free(b);
  X509_free(x);
  return rc;
}

/* 1 when the last error says the key is not the certificate's. */
static int mismatch(void) {
  return ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
}

static int use_key_pem(SSL_CTX *ctx, const char *pem) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  EVP_PKEY *pk = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
  int ok = pk && SSL_CTX_use_PrivateKey(ctx, pk) == 1;
  EVP_PKEY_free(pk);
  BIO_free(b);
  if (ok) return 0;
  set_error(mismatch() ? "the private key does not match the certificate:" : "private key",
            "(key_pem)");
  return SL_ETLS;
}

static int load_ca_pem(SSL_CTX *ctx, const char *pem, int server) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  X509_STORE *st = SSL_CTX_get_cert_store(ctx);
  X509 *x;
  int n = 0;
  if (b == NULL) return SL_ENOMEM;
  while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
    int ok = X509_STORE_add_cert(st, x) == 1 &&
             (!server || SSL_CTX_add_client_CA(ctx, x) == 1);
    X509_free(x);
    if (!ok) {
      BIO_free(b);
      set_error("CA certificate", "(ca_pem)");
      return SL_ETLS;
    }
    n++;
  }
  BIO_free(b);
  if (n == 0) {
    set_error("CA certificates", "(ca_pem): none found");
    return SL_ETLS;
  }
  ERR_clear_error();
  return 0;
}

/* A new SSL_CTX for `server` from `o`. NULL with *err. */
static SSL_CTX *build(int server, const sl_tls_opts *o, int *err) {
  int rc = SL_ETLS;
  last_error[0] = '\0';
  ERR_clear_error();
  int has_cert = o->cert_file || o->cert_pem, has_key = o->key_file || o->key_pem;
  if ((server && (!has_cert || !has_key)) || has_cert != has_key) {
    snprintf(last_error, sizeof(last_error), "%s",
             "a certificate needs its key, and a server needs both");
    *err = SL_EINVAL;
    return NULL;
  }
  if (o->verify_client < SL_TLS_VERIFY_NONE || o->verify_client > SL_TLS_VERIFY_REQUIRE ||
      (server && o->verify_client && !o->ca_file && !o->ca_pem)) {
    snprintf(last_error, sizeof(last_error), "%s",
             "verify_client needs ca_file or ca_pem");
    *err = SL_EINVAL;
    return NULL;
  }
  const char *files[] = {o->cert_file, o->key_file, o->ca_file};
  for (size_t i = 0; i < 3; i++)
    if (files[i] && (rc = file_error(files[i])) != 0) {
      *err = rc;
      return NULL;
    }
  rc = SL_ETLS;
  SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (ctx == NULL) {
    set_error("SSL_CTX_new", NULL);
    *err = SL_ENOMEM;
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_IGNORE_UNEXPECTED_EOF |
                               (server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
  /* OpenSSL frees its record buffers between records. */
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  /* Resumption by stateless tickets only: a session cache would grow
   * with the number of clients. */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (has_cert) {
    if (o->cert_file) {
      if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
        set_error("certificate", o->cert_file);
        goto fail;
      }
    } else if ((rc = use_cert_pem(ctx, o->cert_pem)) != 0) {
      goto fail;
    }
    rc = SL_ETLS;
    if (o->key_file) {
      if (SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1) {
        set_error(mismatch() ? "the private key does not match the certificate:"
                             : "private key", o->key_file);
        goto fail;
      }
    } else if ((rc = use_key_pem(ctx, o->key_pem)) != 0) {
      goto fail;
    }
    rc = SL_ETLS;
    if (SSL_CTX_check_private_key(ctx) != 1) {
      set_error("the private key does not match the certificate", NULL);
      goto fail;
    }
  }
  rc = SL_ETLS;
  if (server) {
    if (o->verify_client) {
      if (o->ca_file) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca_file);
        if (names == NULL || SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
          sk_X509_NAME_pop_free(names, X509_NAME_free);
          set_error("CA certificates", o->ca_file);
          goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
      }
      if (o->ca_pem && (rc = load_ca_pem(ctx, o->ca_pem, 1)) != 0) goto fail;
      SSL_CTX_set_verify(ctx,
                         SSL_VERIFY_PEER | (o->verify_client == SL_TLS_VERIFY_REQUIRE
                                                ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                                : 0),
                         NULL);
    }
  } else {
    if (o->ca_file) {
      if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
        set_error("CA certificates", o->ca_file);
        goto fail;
      }
    } else if (!o->ca_pem) {
      if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        set_error("the system's CA store", NULL);
        goto fail;
      }
    }
    if (o->ca_pem && (rc = load_ca_pem(ctx, o->ca_pem, 0)) != 0) goto fail;
    SSL_CTX_set_verify(ctx, o->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
  }
  ERR_clear_error();
  return ctx;

fail:
  SSL_CTX_free(ctx);
  *err = rc;
  return NULL;
}

static sl_tls_ctx *ctx_new(int server, const sl_tls_opts *o, int *err) {
  static const sl_tls_opts none;
  int rc = 0;
  if (o == NULL) o = &none;
  pthread_once(&bio_once, bio_method_init);
  if (bio_method == NULL) {
    if (err) *err = SL_ENOMEM;
    return NULL;
  }
  SSL_CTX *ssl = build(server, o, &rc);
  if (ssl == NULL) {
    if (err) *err = rc;
    return NULL;
  }
  sl_tls_ctx *ctx = sl__calloc(sizeof(*ctx), SL_MEM_META);
  if (ctx == NULL) {
    SSL_CTX_free(ssl);
    if (err) *err = SL_ENOMEM;
    return NULL;
  }
  atomic_init(&ctx->refs, 1);
  ctx->server = server;
  ctx->insecure = !server && o->insecure;
  pthread_mutex_init(&ctx->lock, NULL);
  ctx->ssl = ssl;
  ctx->handshake_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms : DEFAULT_HANDSHAKE_MS;
  return ctx;
}

sl_tls_ctx *sl_tls_server_new(const sl_tls_opts *o, int *err) {
  return ctx_new(1, o, err);
}

sl_tls_ctx *sl_tls_client_new(const sl_tls_opts *o, int *err) {
  return ctx_new(0, o, err);
}

struct sl_tls_ctx *sl__tls_ctx_ref(struct sl_tls_ctx *ctx) {
  atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
  return ctx;
}

void sl__tls_ctx_unref(struct sl_tls_ctx *ctx) {
  if (ctx == NULL || atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) != 1)
    return;
  SSL_CTX_free(ctx->ssl);
  pthread_mutex_destroy(&ctx->lock);
  sl__free(ctx, sizeof(*ctx), SL_MEM_META);
}

void sl_tls_ctx_free(sl_tls_ctx *ctx) { sl__tls_ctx_unref(ctx); }

int sl_tls_reload(sl_tls_ctx *ctx, const sl_tls_opts *o) {
  static const sl_tls_opts none;
  int rc = 0;
  if (ctx == NULL) return SL_EINVAL;
  if (o == NULL) o = &none;
  SSL_CTX *ssl = build(ctx->server, o, &rc);
  if (ssl == NULL) return rc;
  pthread_mutex_lock(&ctx->lock);
  SSL_CTX *old = ctx->ssl;
  ctx->ssl = ssl;
  ctx->insecure = !ctx->server && o->insecure;
  ctx->handshake_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms : DEFAULT_HANDSHAKE_MS;
  pthread_mutex_unlock(&ctx->lock);
  /* Connections open on the old settings hold their own reference. */
  SSL_CTX_free(old);
  return 0;
}

int sl__tls_server_ok(const struct sl_tls_ctx *ctx) {
  return ctx && ctx->server ? 0 : SL_EINVAL;
}

/* Names the manager's slot of the default client context. */
static const char default_client_key;

static void drop_default_client(sl_mgr *m, void *ctx) {
  (void)m;
  sl__tls_ctx_unref(ctx);
}

struct sl_tls_ctx *sl__tls_default_client(sl_mgr *m, int *err) {
  void **slot = sl__mgr_slot(m, &default_client_key);
  if (slot) return *slot;
  struct sl_tls_ctx *ctx = sl_tls_client_new(NULL, err);
  if (ctx == NULL) return NULL;
  int rc = sl__mgr_on_free(m, &default_client_key, drop_default_client, ctx);
  if (rc) {
    sl__tls_ctx_unref(ctx);
    if (err) *err = rc;
    return NULL;
  }
  return ctx;
}

/* ---- failing -------------------------------------------------------- */

/* OpenSSL's reason for the failure `ssl_err` of the last call. */
static void describe(sl_conn *c, struct sl_tls *t, int ssl_err, char *out, size_t cap) {
  unsigned long e = ERR_peek_last_error();
  long vr = SSL_get_verify_result(t->ssl);
  if (ssl_err == SSL_ERROR_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
      vr != X509_V_OK) {
    snprintf(out, cap, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
  } else if (e) {
    const char *r = ERR_reason_error_string(e);
    if (r) snprintf(out, cap, "%s", r);
    else ERR_error_string_n(e, out, cap);
  } else if (t->sys_errno) {
    snprintf(out, cap, "%s", strerror(t->sys_errno));
  } else if (t->eof) {
    snprintf(out, cap, "the peer closed the connection");
  } else {
    snprintf(out, cap, "SSL error %d", ssl_err);
  }
  (void)c;
}

/* A fatal TLS error: SL_EV_ERROR with the reason, SL_ETLS, then close. */
static void fail(sl_conn *c, struct sl_tls *t, int ssl_err, const char *what) {
  char why[200], msg[320];
  t->failed = 1;
  if (sl__conn_closing(c)) {
    ERR_clear_error();
    return;
  }
  unsigned long e = ERR_peek_last_error();
  int left = t->eof && (ssl_err != SSL_ERROR_SSL ||
                        ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING);
  describe(c, t, ssl_err, why, sizeof(why));
  ERR_clear_error();
  /* The alert OpenSSL wrote tells the peer why: one try to send it. */
  rec_send(c, t);
  if (!t->done && t->server && left) {
    /* A client that left during the handshake: nothing to report. */
    sl__conn_fail(c, SL_CLOSE_PEER, 0, NULL);
    return;
  }
  snprintf(msg, sizeof(msg), "TLS %s with %s failed: %s", what, c->peer_str, why);
  SL_DEBUG("%s", msg);
  sl__conn_fail(c, t->server ? SL_CLOSE_PROTOCOL : SL_CLOSE_ERROR, SL_ETLS, msg);
}

/* ---- the transport -------------------------------------------------- */

static void handshake_step(sl_conn *c, struct sl_tls *t) {
  ERR_clear_error();
  int r = SSL_do_handshake(t->ssl);
  int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
  if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
    fail(c, t, e, "handshake");
    return;
  }
  if (rec_send(c, t) != 0) {
    sl__conn_fail(c, SL_CLOSE_ERROR, -errno, NULL);
    return;
  }
  if (t->rec_len == 0) rec_release(c, t);
  if (e != SSL_ERROR_NONE) {
    sl__conn_update_interest(c);
    return;
  }
  t->done = 1;
  SL_DEBUG("TLS with %s: %s %s", c->peer_str, SSL_get_version(t->ssl),
           SSL_get_cipher_name(t->ssl));
  sl__conn_announce(c);
}

/* Expected name and SNI of a client connection. */
static int set_peer_name(sl_conn *c, struct sl_tls *t) {
  char ip[INET6_ADDRSTRLEN];
  const char *host = t->host[0] ? t->host : c->host;
  if (host == NULL) {
    /* A literal address: the one being connected to. */
    const void *a = c->peer.ss_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)&c->peer)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)&c->peer)->sin_addr;
    if (c->peer.ss_family != AF_INET && c->peer.ss_family != AF_INET6) return SL_EINVAL;
    inet_ntop(c->peer.ss_family, a, ip, sizeof(ip));
    host = ip;
  }
  unsigned char bin[16];
  int is_ip = inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1;
  if (is_ip) {
    /* RFC 6066 section 3: no SNI for an address. */
    if (!t->ctx->insecure &&
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) != 1)
      return SL_EINVAL;
    return 0;
  }
  if (SSL_set_tlsext_host_name(t->ssl, host) != 1 ||
      (!t->ctx->insecure && SSL_set1_host(t->ssl, host) != 1))
    return SL_EINVAL;
  return 0;
}

static void tls_handshake(sl_conn *c) {
  struct sl_tls *t = c->io_data;
  if (!t->started) {
    /* A client's handshake starts with its TCP connection, when the name
     * the URL gave has been resolved (or the address connected to). */
    t->started = 1;
    c->connect_deadline = c->mgr->now + t->ctx->handshake_ms;
    sl__conn_rearm(c);
    if (set_peer_name(c, t) != 0) {
      t->failed = 1;
      sl__conn_fail(c, SL_CLOSE_ERROR, SL_EINVAL, "TLS: the host name to verify is not usable");
      return;
    }
  }
  handshake_step(c, t);
}

/* Skip `n` bytes of the iovecs: position (*i, *off). */
static size_t skip(const struct iovec *iov, int n, int *i, size_t *off, size_t bytes) {
  size_t skipped = 0;
  while (*i < n && bytes) {
    size_t left = iov[*i].iov_len - *off;
    size_t s = left < bytes ? left : bytes;
    *off += s;
    bytes -= s;
    skipped += s;
    if (*off == iov[*i].iov_len) (*i)++, *off = 0;
  }
  return skipped;
}

/* The plaintext of the next record, from position (*i, *off): a long
 * segment in place (up to one record of it), or consecutive short ones
 * gathered into `gather`. Returns its length (0: nothing left). */
static size_t next_record(const struct iovec *iov, int n, int *i, size_t *off,
                          unsigned char *gather, const unsigned char **out) {
  size_t len = 0;
  while (*i < n && iov[*i].iov_len == *off) (*i)++, *off = 0;
  if (*i == n) return 0;
  size_t left = iov[*i].iov_len - *off;
  if (left >= SL_TLS_GATHER) {
    len = left < SL_TLS_RECORD ? left : SL_TLS_RECORD;
    *out = (const unsigned char *)iov[*i].iov_base + *off;
    skip(iov, n, i, off, len);
    return len;
  }
  while (*i < n && len < SL_TLS_RECORD) {
    left = iov[*i].iov_len - *off;
    if (left == 0) {
      (*i)++, *off = 0;
      continue;
    }
    if (left >= SL_TLS_GATHER) break; /* its own records */
    size_t take = left < SL_TLS_RECORD - len ? left : SL_TLS_RECORD - len;
    memcpy(gather + len, (const unsigned char *)iov[*i].iov_base + *off, take);
    len += take;
    skip(iov, n, i, off, take);
  }
  *out = gather;
  return len;
}

static ssize_t tls_writev(sl_conn *c, const struct iovec *iov, int n) {
  struct sl_tls *t = c->io_data;
  unsigned char gather[SL_TLS_RECORD];
  size_t done = 0, want = 0;
  for (int k = 0; k < n; k++) want += iov[k].iov_len;
  /* The record in flight goes first. */
  if (rec_send(c, t) != 0) return -1;
  if (t->rec_off < t->rec_len || c->state == SL_ST_HANDSHAKE) {
    if (t->rec_len == 0) rec_release(c, t);
    errno = EAGAIN;
    return -1;
  }
  /* Its plaintext is written now. (The queue only shrinks from the front
   * by what we return, but a connection being reset may have dropped it.) */
  done = t->rec_plain < want ? t->rec_plain : want;
  t->rec_plain = 0;
  int i = 0;
  size_t off = 0;
  skip(iov, n, &i, &off, done);
  for (;;) {
    const unsigned char *p = NULL;
    size_t len = next_record(iov, n, &i, &off, gather, &p);
    if (len == 0) break;
    ERR_clear_error();
    int w = SSL_write(t->ssl, p, (int)len);
    if (w <= 0) {
      fail(c, t, SSL_get_error(t->ssl, w), "write");
      errno = EPROTO;
      return -1;
    }
    /* Our BIO takes every byte: one SSL_write, one whole record. */
    t->rec_plain = len;
    if (rec_send(c, t) != 0) {
      if (done) break; /* the error comes again on the next write */
      return -1;
    }
    if (t->rec_len) break; /* the socket is full: the rest waits */
    done += len;
    t->rec_plain = 0;
  }
  if (t->rec_len == 0) rec_release(c, t);
  if (done == 0) {
    errno = EAGAIN;
    return -1;
  }
  return (ssize_t)done;
}

static ssize_t tls_read(sl_conn *c, void *buf, size_t len) {
  struct sl_tls *t = c->io_data;
  size_t total = 0;
  t->read_again = 0;
  while (total < len) {
    size_t want = len - total;
    ERR_clear_error();
    int r = SSL_read(t->ssl, (char *)buf + total, want > INT_MAX ? INT_MAX : (int)want);
    if (r > 0) {
      total += (size_t)r;
      continue;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
    if (total) {
      /* Deliver what came first; the end or the error is read again. */
      t->read_again = 1;
      break;
    }
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    if (e == SSL_ERROR_SYSCALL && t->sys_errno) {
      errno = t->sys_errno;
      return -1;
    }
    if (e == SSL_ERROR_SYSCALL && t->eof) return 0;
    fail(c, t, e, "read");
    errno = EPROTO;
    return -1;
  }
  /* A post-handshake message may have made OpenSSL write (a ticket, a key
   * update): it goes out with the next flush. */
  if (t->rec_len) sl__conn_mark_dirty(c);
  if (total == 0) {
    errno = EAGAIN;
    return -1;
  }
  return (ssize_t)total;
}

static int tls_held(const sl_conn *c) {
  const struct sl_tls *t = c->io_data;
  int m = 0;
  if (t->rec_off < t->rec_len) m |= SL_POLL_OUT;
  /* Decrypted bytes only (SSL_pending): reading them needs no socket. A
   * partly received record (SSL_has_pending) waits for its rest, which
   * the poller announces. */
  if (t->done && (t->read_again || SSL_pending(t->ssl) > 0)) m |= SL_POLL_IN;
  return m;
}

/* close_notify, if the socket takes it now: never waited for. (The core
 * calls this only with the socket open and no reset asked.) */
static void tls_shutdown(sl_conn *c) {
  struct sl_tls *t = c->io_data;
  if (t == NULL || !t->done || t->failed) return;
  ERR_clear_error();
  if (SSL_shutdown(t->ssl) >= 0) rec_send(c, t);
}

static void tls_free(sl_conn *c) {
  struct sl_tls *t = c->io_data;
  if (t == NULL) return;
  ERR_clear_error();
  rec_release(c, t);
  SSL_free(t->ssl);
  sl__tls_ctx_unref(t->ctx);
  sl__free(t, sizeof(*t), SL_MEM_META);
  c->io = &sl__io_tcp;
  c->io_data = NULL;
}

static const struct sl_io tls_io = {
  .writev = tls_writev, .read = tls_read, .held = tls_held,
  .handshake = tls_handshake, .shutdown = tls_shutdown, .free = tls_free,
};

static int start_server(sl_conn *c, struct sl_tls_ctx *ctx);

/* A TLS listener: io_data is its context (a reference). */
static int tls_listen_accept(sl_conn *l, sl_conn *c) {
  return start_server(c, l->io_data);
}

static void tls_listen_free(sl_conn *l) {
  sl__tls_ctx_unref(l->io_data);
  l->io = &sl__io_tcp;
  l->io_data = NULL;
}

static const struct sl_io tls_listen_io = {
  .accept = tls_listen_accept, .free = tls_listen_free,
};

/* ---- attaching ------------------------------------------------------ */

/* Give `c` TLS state for `ctx`. 0 or SL_ENOMEM. */
static int attach(sl_conn *c, struct sl_tls_ctx *ctx) {
  struct sl_tls *t = sl__calloc(sizeof(*t), SL_MEM_META);
  if (t == NULL) return SL_ENOMEM;
  pthread_mutex_lock(&ctx->lock);
  t->ssl = SSL_new(ctx->ssl);
  pthread_mutex_unlock(&ctx->lock);
  BIO *b = t->ssl ? BIO_new(bio_method) : NULL;
  if (b == NULL) {
    SSL_free(t->ssl);
    sl__free(t, sizeof(*t), SL_MEM_META);
    ERR_clear_error();
    return SL_ENOMEM;
  }
  BIO_set_data(b, c);
  SSL_set_bio(t->ssl, b, b);
  t->ctx = sl__tls_ctx_ref(ctx);
  t->server = ctx->server;
  if (t->server) SSL_set_accept_state(t->ssl);
  else SSL_set_connect_state(t->ssl);
  sl__conn_set_io(c, &tls_io, t);
  return 0;
}

/* The server side starts at once: its deadline runs from the accept. */
static int start_server(sl_conn *c, struct sl_tls_ctx *ctx) {
  int rc = attach(c, ctx);
  if (rc) return rc;
  struct sl_tls *t = c->io_data;
  t->started = 1;
  sl__conn_set_state(c, SL_ST_HANDSHAKE);
  c->connect_deadline = c->mgr->now + ctx->handshake_ms;
  sl__conn_update_interest(c);
  sl__conn_rearm(c);
  return 0;
}

int sl_conn_tls(sl_conn *c, sl_tls_ctx *ctx, const char *host) {
  if (ctx == NULL) return SL_EINVAL;
  if (c->state >= SL_ST_DRAINING) return SL_ECLOSING;
  if (c->flags & SL_F_LISTENER) {
    if (!ctx->server) return SL_EINVAL;
    if (c->io == &tls_listen_io) {
      sl__tls_ctx_ref(ctx);
      sl__tls_ctx_unref(c->io_data);
      c->io_data = ctx;
      return 0;
    }
    if (c->io != &sl__io_tcp) return SL_EINVAL;
    sl__conn_set_io(c, &tls_listen_io, sl__tls_ctx_ref(ctx));
    return 0;
  }
  if (c->io != &sl__io_tcp) return c->io == &tls_io ? SL_EALREADY : SL_EINVAL;
  if (c->flags & SL_F_ANNOUNCED) return SL_EINVAL;
  int client = (c->flags & SL_F_CLIENT) != 0;
  if (client == ctx->server) return SL_EINVAL;
  if (!client) return start_server(c, ctx);
  if (host && (!host[0] || strlen(host) >= sizeof(((struct sl_tls *)0)->host)))
    return SL_EINVAL;
  int rc = attach(c, ctx);
  if (rc) return rc;
  if (host) snprintf(((struct sl_tls *)c->io_data)->host, 256, "%s", host);
  return 0;
}

sl_conn *sl_listen_tls(sl_mgr *m, const char *url, sl_tls_ctx *ctx, sl_handler fn,
                       void *data, int *err) {
  if (sl__tls_server_ok(ctx) != 0) {
    if (err) *err = SL_EINVAL;
    return NULL;
  }
  sl_conn *l = sl_listen(m, url, fn, data, err);
  if (l) sl__conn_set_io(l, &tls_listen_io, sl__tls_ctx_ref(ctx));
  return l;
}

int sl_conn_is_tls(const sl_conn *c) {
  return c->io == &tls_io || c->io == &tls_listen_io;
}

static struct sl_tls *established(const sl_conn *c) {
  if (c->io != &tls_io) return NULL;
  struct sl_tls *t = c->io_data;
  return t->done ? t : NULL;
}

int sl_conn_tls_info(const sl_conn *c, char *out, size_t cap) {
  struct sl_tls *t = established(c);
  if (t == NULL) return SL_EINVAL;
  snprintf(out, cap, "%s %s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl));
  return 0;
}

int sl_conn_tls_peer(const sl_conn *c, char *out, size_t cap) {
  struct sl_tls *t = established(c);
  if (t == NULL) return SL_EINVAL;
  X509 *x = SSL_get0_peer_certificate(t->ssl);
  if (x == NULL) return SL_ENOENT;
  if (cap == 0) return 0;
  X509_NAME_oneline(X509_get_subject_name(x), out, cap > INT_MAX ? INT_MAX : (int)cap);
  return 0;
}
