/* Address and URL parsing: "host:port", "[v6]:port", ":port", and
 * scheme://host[:port][/path] with the scheme's default port. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const struct {
  const char *scheme;
  uint16_t port;
  int tls;
} schemes[] = {
    {"tcp", 0, 0},  {"http", 80, 0}, {"ws", 80, 0},
    {"https", 443, 1}, {"wss", 443, 1}, {"tls", 0, 1},
};

int sl__parse_url(const char *url, char *host, size_t hostlen, uint16_t *port,
                  const char **path, int *tls) {
  const char *p = url, *sep = strstr(url, "://");
  long defport = -1;
  if (tls) *tls = 0;
  if (sep) {
    size_t slen = (size_t)(sep - url), i;
    for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
      if (strlen(schemes[i].scheme) == slen &&
          strncasecmp(url, schemes[i].scheme, slen) == 0)
        break;
    }
    if (i == sizeof(schemes) / sizeof(schemes[0])) return SL_EURL;
    if (schemes[i].port) defport = schemes[i].port;
    if (tls) *tls = schemes[i].tls;
    p = sep + 3;
  }
  /* Userinfo (user:pass@) is the caller's business; skip it here. */
  const char *end = p + strcspn(p, "/?#");
  const char *at = memchr(p, '@', (size_t)(end - p));
  if (at) p = at + 1;
  const char *hs, *he, *colon = NULL;
  if (*p == '[') {
    hs = p + 1;
    he = memchr(hs, ']', (size_t)(end - hs));
    if (he == NULL) return SL_EURL;
    if (he + 1 < end) {
      if (he[1] != ':') return SL_EURL;
      colon = he + 1;
    }
  } else {
    hs = p;
    colon = memchr(p, ':', (size_t)(end - p));
    he = colon ? colon : end;
    if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1)))
      return SL_EURL; /* bare IPv6 needs brackets */
  }
  if ((size_t)(he - hs) >= hostlen) return SL_EURL;
  memcpy(host, hs, (size_t)(he - hs));
  host[he - hs] = '\0';
  long pn = defport;
  if (colon) {
    char *e;
    if (colon + 1 == end) return SL_EURL;
    pn = strtol(colon + 1, &e, 10);
    if (e != end || pn < 0 || pn > 65535) return SL_EURL;
  }
  if (pn < 0) return SL_EURL;
  *port = (uint16_t)pn;
  if (path) *path = *end ? end : "/";
  for (const char *c = host; *c; c++)
    if ((unsigned char)*c <= ' ') return SL_EURL;
  return 0;
}

int sl__literal_addr(const char *host, uint16_t port,
                     struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof(*ss));
  struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  if (host[0] == '\0' || strcmp(host, "*") == 0) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    in4->sin_addr.s_addr = htonl(INADDR_ANY);
    *len = sizeof(*in4);
    return 0;
  }
  if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    *len = sizeof(*in4);
    return 0;
  }
  if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    *len = sizeof(*in6);
    return 0;
  }
  return SL_EURL;
}

void sl__addr_str(const struct sockaddr *sa, char *out, size_t outlen) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
    snprintf(out, outlen, "%s:%u", ip, ntohs(a->sin_port));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
    snprintf(out, outlen, "[%s]:%u", ip, ntohs(a->sin6_port));
  } else {
    snprintf(out, outlen, "?");
  }
}
