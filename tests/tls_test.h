/*
 * Shared by the TLS tests (tests/net/test_tls.c, tests/app/test_stream_tls.c):
 * a throwaway CA and certificates, made by the `openssl` command in a
 * temporary directory at test time (EC P-256 keys: a few milliseconds
 * each), valid for two days:
 *
 *   ca      the test CA (CN=sluice-test-ca)
 *   srv     CN=localhost, SAN DNS:localhost, IP:127.0.0.1, signed by ca
 *   srv2    CN=localhost-renewed, same names, signed by ca (a renewal)
 *   other   CN=other.example, SAN DNS:other.example, signed by ca
 *   self    CN=localhost, same names as srv, self-signed (untrusted)
 *   cli     CN=viewer-7, signed by ca (a client certificate)
 *
 * each as NAME.pem and NAME.key in tls_dir.
 */
#ifndef SL_TLS_TEST_H
#define SL_TLS_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

static char tls_dir[128];

static inline void tls_certs_make(void) {
  snprintf(tls_dir, sizeof(tls_dir), "/tmp/sluice-tls-XXXXXX");
  CHECK(mkdtemp(tls_dir) != NULL);
  char path[256];
  snprintf(path, sizeof(path), "%s/gen.sh", tls_dir);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  fputs("set -e\n"
        "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out \"$1\"; }\n"
        "key ca.key\n"
        "openssl req -x509 -new -key ca.key -subj /CN=sluice-test-ca -days 2 -out ca.pem\n"
        "leaf() { # name cn san signer\n"
        "  key $1.key\n"
        "  openssl req -new -key $1.key -subj \"/CN=$2\" -out $1.csr\n"
        "  printf 'subjectAltName=%s\\n' \"$3\" > $1.ext\n"
        "  if [ \"$4\" = self ]; then\n"
        "    openssl x509 -req -in $1.csr -signkey $1.key -days 2 -extfile $1.ext -out $1.pem\n"
        "  else\n"
        "    openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \\\n"
        "      -extfile $1.ext -out $1.pem\n"
        "  fi\n"
        "}\n"
        "leaf srv localhost DNS:localhost,IP:127.0.0.1 ca\n"
        "leaf srv2 localhost-renewed DNS:localhost,IP:127.0.0.1 ca\n"
        "leaf other other.example DNS:other.example ca\n"
        "leaf self localhost DNS:localhost,IP:127.0.0.1 self\n"
        "leaf cli viewer-7 DNS:viewer-7 ca\n",
        f);
  fclose(f);
  int rc = test_sh("cd %s && sh gen.sh >gen.log 2>&1", tls_dir);
  if (rc != 0 && !test_in_ci() && test_sh("command -v openssl >/dev/null") != 0)
    TEST_SKIP("the openssl command is not installed (scripts/deps.sh)");
  CHECK_MSG(rc == 0, "making certificates failed: see %s/gen.log", tls_dir);
}

/* The path of file NAME in tls_dir (a static buffer per call site: use it
 * at once or copy it). */
static inline const char *tls_path(const char *name) {
  static char bufs[8][256];
  static int next;
  char *b = bufs[next++ % 8];
  snprintf(b, 256, "%s/%s", tls_dir, name);
  return b;
}

/* The contents of file NAME in tls_dir, NUL-terminated (malloc). */
static inline char *tls_read(const char *name) {
  FILE *f = fopen(tls_path(name), "rb");
  CHECK(f != NULL);
  static char tmp[1 << 16];
  size_t n = fread(tmp, 1, sizeof(tmp) - 1, f);
  fclose(f);
  char *s = malloc(n + 1);
  CHECK(s != NULL);
  memcpy(s, tmp, n);
  s[n] = '\0';
  return s;
}

static inline void tls_certs_remove(void) {
  if (getenv("SL_TLS_KEEP")) return; /* for a look at the files and logs */
  if (tls_dir[0]) test_sh("rm -rf %s", tls_dir);
  tls_dir[0] = '\0';
}

#endif
