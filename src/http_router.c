/* A small router: an array of (method, pattern, handler) tried in order.
 * Matching is sl_http_match, allocation-free per request. */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "http.h"

struct route {
  char *method; /* NULL: any */
  char *pattern;
  sl_route_fn fn;
  void *data;
  sl_route_opts opts;
};

struct sl_router {
  struct route *routes;
  size_t n, cap;
};

sl_router *sl_router_new(void) { return sl__calloc(sizeof(sl_router), SL_MEM_META); }

void sl_router_free(sl_router *r) {
  if (r == NULL) return;
  for (size_t i = 0; i < r->n; i++) {
    if (r->routes[i].method) sl__free(r->routes[i].method, strlen(r->routes[i].method) + 1, SL_MEM_META);
    sl__free(r->routes[i].pattern, strlen(r->routes[i].pattern) + 1, SL_MEM_META);
  }
  sl__free(r->routes, r->cap * sizeof(*r->routes), SL_MEM_META);
  sl__free(r, sizeof(*r), SL_MEM_META);
}

int sl_router_add(sl_router *r, const char *method, const char *pattern,
                  sl_route_fn fn, void *data) {
  return sl_router_add_opts(r, method, pattern, fn, data, NULL);
}

int sl_router_add_opts(sl_router *r, const char *method, const char *pattern,
                       sl_route_fn fn, void *data, const sl_route_opts *opts) {
  if (pattern == NULL || pattern[0] != '/' || fn == NULL) return SL_EINVAL;
  if (r->n == r->cap) {
    size_t nc = r->cap ? r->cap * 2 : 16;
    struct route *p = sl__realloc(r->routes, r->cap * sizeof(*p), nc * sizeof(*p), SL_MEM_META);
    if (p == NULL) return SL_ENOMEM;
    r->routes = p;
    r->cap = nc;
  }
  struct route *rt = &r->routes[r->n];
  rt->method = method ? sl__strdup(method) : NULL;
  rt->pattern = sl__strdup(pattern);
  if ((method && rt->method == NULL) || rt->pattern == NULL) {
    if (rt->method) sl__free(rt->method, strlen(rt->method) + 1, SL_MEM_META);
    if (rt->pattern) sl__free(rt->pattern, strlen(rt->pattern) + 1, SL_MEM_META);
    return SL_ENOMEM;
  }
  rt->fn = fn;
  rt->data = data;
  if (opts) rt->opts = *opts;
  else memset(&rt->opts, 0, sizeof(rt->opts));
  r->n++;
  return 0;
}

/* Append `method` to the comma-separated `allow` list unless it is there
 * already (as a whole element) or would not fit. */
static void add_allow(char *allow, size_t cap, size_t *alen, const char *method) {
  size_t ml = strlen(method);
  for (const char *p = allow; *p;) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n == ml && memcmp(p, method, ml) == 0) return;
    p = e ? e + 2 : p + n;
  }
  if (*alen + ml + 3 >= cap) return;
  if (*alen) allow[(*alen)++] = ',', allow[(*alen)++] = ' ';
  memcpy(allow + *alen, method, ml + 1);
  *alen += ml;
}

/* The route sl_router_dispatch would run for `m`, or NULL. */
static struct route *find(sl_router *r, const sl_http_msg *m) {
  for (size_t i = 0; i < r->n; i++) {
    struct route *rt = &r->routes[i];
    if (!sl_http_match(m, rt->pattern, NULL, 0)) continue;
    if (rt->method == NULL || sl_http_is_method(m, rt->method) ||
        (strcmp(rt->method, "GET") == 0 && sl_http_is_method(m, "HEAD")))
      return rt;
  }
  return NULL;
}

int sl_router_headers(sl_router *r, sl_conn *c, const sl_http_msg *m) {
  struct route *rt = find(r, m);
  if (rt == NULL) return 0;
  if (rt->opts.max_body) sl_http_body_max(c, rt->opts.max_body);
  return 1;
}

int sl_router_dispatch(sl_router *r, sl_conn *c, const sl_http_msg *m) {
  sl_str caps[SL_ROUTE_MAX_CAPS];
  char allow[128] = "";
  size_t alen = 0;
  for (size_t i = 0; i < r->n; i++) {
    struct route *rt = &r->routes[i];
    memset(caps, 0, sizeof(caps));
    if (!sl_http_match(m, rt->pattern, caps, SL_ROUTE_MAX_CAPS)) continue;
    if (rt->method == NULL || sl_http_is_method(m, rt->method) ||
        (strcmp(rt->method, "GET") == 0 && sl_http_is_method(m, "HEAD"))) {
      rt->fn(c, m, caps, rt->data);
      return 1;
    }
    add_allow(allow, sizeof(allow), &alen, rt->method);
    /* A GET route answers HEAD too (dispatch above), so say so. */
    if (strcmp(rt->method, "GET") == 0) add_allow(allow, sizeof(allow), &alen, "HEAD");
  }
  if (alen == 0) return 0;
  char hdr[192];
  snprintf(hdr, sizeof(hdr), "Allow: %s\r\nContent-Type: text/plain\r\n", allow);
  sl_http_reply(c, 405, hdr, "405 Method Not Allowed\n", 23);
  return 1;
}
