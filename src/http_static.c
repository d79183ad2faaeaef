/*
 * Static files: a directory below a root, or an in-binary table. Paths are
 * cleaned by sl__http_clean_path (no "..", no encoded separators, no NUL)
 * and the file found is checked again with realpath, so a symlink cannot
 * lead outside the root. Large files are read in pieces into shared
 * buffers as the peer drains (a body source), so a download holds at most
 * SOURCE_HIGH + SOURCE_PIECE bytes whatever the file size or the peer's
 * speed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "http.h"
#include "wbuf.h"

#define SOURCE_PIECE (64u * 1024)  /* bytes read per pread */
#define SOURCE_HIGH (128u * 1024)  /* refill only below this much queued */

static const struct {
  const char *ext, *mime;
} mimes[] = {
    {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},   {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"}, {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"}, {"xml", "application/xml"},
    {"svg", "image/svg+xml"},             {"png", "image/png"},
    {"jpg", "image/jpeg"},                {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},                 {"webp", "image/webp"},
    {"ico", "image/x-icon"},              {"wasm", "application/wasm"},
    {"mp4", "video/mp4"},                 {"webm", "video/webm"},
    {"m3u8", "application/vnd.apple.mpegurl"}, {"ts", "video/mp2t"},
    {"woff2", "font/woff2"},              {"pdf", "application/pdf"},
    {"gz", "application/gzip"},           {"wav", "audio/wav"},
};

const char *sl_http_mime(const char *name) {
  const char *dot = strrchr(name, '.');
  if (dot && !strchr(dot, '/'))
    for (size_t i = 0; i < sizeof(mimes) / sizeof(mimes[0]); i++)
      if (strcasecmp(dot + 1, mimes[i].ext) == 0) return mimes[i].mime;
  return "application/octet-stream";
}

/* Validators: a strong ETag from size and mtime (nanoseconds included),
 * and an HTTP date. */
static void validators(unsigned long long size, const struct timespec *mt,
                       char *etag, size_t elen, char *date, size_t dlen) {
  snprintf(etag, elen, "\"%llx-%llx\"", size,
           (unsigned long long)mt->tv_sec * 1000000000ull + (unsigned long long)mt->tv_nsec);
  struct tm tm;
  time_t t = mt->tv_sec;
  gmtime_r(&t, &tm);
  strftime(date, dlen, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static int etag_matches(const sl_str *inm, const char *etag) {
  size_t el = strlen(etag);
  const char *p = inm->ptr, *e = inm->ptr + inm->len;
  while (p < e) {
    while (p < e && (*p == ' ' || *p == ',')) p++;
    const char *s = p;
    while (p < e && *p != ',') p++;
    const char *t = p;
    while (t > s && t[-1] == ' ') t--;
    if (t - s == 1 && *s == '*') return 1;
    if (t - s >= 2 && s[0] == 'W' && s[1] == '/') s += 2; /* weak compare */
    if ((size_t)(t - s) == el && memcmp(s, etag, el) == 0) return 1;
  }
  return 0;
}

static int not_modified(const sl_http_msg *m, const char *etag, time_t mtime) {
  const sl_str *inm = sl_http_get_header(m, "If-None-Match");
  if (inm) return etag_matches(inm, etag);
  const sl_str *ims = sl_http_get_header(m, "If-Modified-Since");
  if (ims && ims->len < 64) {
    char buf[64];
    struct tm tm;
    memcpy(buf, ims->ptr, ims->len);
    buf[ims->len] = '\0';
    memset(&tm, 0, sizeof(tm));
    if (strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &tm)) return timegm(&tm) >= mtime;
  }
  return 0;
}

/* ---- the file body source ------------------------------------------- */

struct file_src {
  int fd;
  unsigned long long off, left;
};

static void src_free(sl_conn *c, void *arg) {
  struct file_src *f = arg;
  (void)c;
  close(f->fd);
  sl__free(f, sizeof(*f), SL_MEM_META);
}

/* A piece could not be queued (no memory, send_max or the budget). With
 * output still queued, the next write retries. With none, no write will
 * ever come and the connection is neither idle (busy) nor stalled (nothing
 * pending): it would hang for good, so it ends, with the reason. */
static void stuck(sl_conn *c) {
  if (sl_conn_queued(c) == 0) sl_conn_close_with(c, SL_CLOSE_NOW, SL_CLOSE_LIMIT);
}

static void src_fill(sl_conn *c, void *arg) {
  struct file_src *f = arg;
  while (f->left && sl_conn_queued(c) < SOURCE_HIGH) {
    size_t n = f->left < SOURCE_PIECE ? (size_t)f->left : SOURCE_PIECE;
    sl_buf *b = sl_buf_new(n);
    if (b == NULL) {
      stuck(c);
      return;
    }
    ssize_t r = pread(f->fd, sl_buf_data(b), n, (off_t)f->off);
    if (r <= 0) {
      /* The file shrank or failed under us: the promised length cannot be
       * delivered, so the connection must end. */
      sl_buf_unref(b);
      sl_conn_close_with(c, SL_CLOSE_NOW, SL_CLOSE_ERROR);
      return;
    }
    int rc = sl_send_buf(c, b, 0, (size_t)r);
    sl_buf_unref(b);
    if (rc) {
      stuck(c);
      return;
    }
    f->off += (unsigned long long)r;
    f->left -= (unsigned long long)r;
  }
  if (f->left == 0) {
    sl__http_set_source(c, NULL, NULL, NULL); /* frees f */
    sl__http_finish(c);
  }
}

/* ---- directories ---------------------------------------------------- */

static int method_ok(sl_conn *c, const sl_http_msg *m) {
  if (sl_http_is_method(m, "GET") || sl_http_is_method(m, "HEAD")) return 1;
  sl_http_reply(c, 405, "Allow: GET, HEAD\r\nContent-Type: text/plain\r\n",
                "405 Method Not Allowed\n", 23);
  return 0;
}

static int serve_fd(sl_conn *c, const sl_http_msg *m, int fd,
                    const struct stat *st, const char *name) {
  char etag[64], date[64], hdr[512];
  unsigned long long size = (unsigned long long)st->st_size, a = 0, b = 0;
  validators(size, &st->st_mtim, etag, sizeof(etag), date, sizeof(date));
  if (not_modified(m, etag, st->st_mtim.tv_sec)) {
    close(fd);
    snprintf(hdr, sizeof(hdr), "ETag: %s\r\nLast-Modified: %s\r\n", etag, date);
    return sl_http_reply(c, 304, hdr, NULL, 0);
  }
  int status = 200, r = 0;
  const sl_str *range = sl_http_get_header(m, "Range");
  const sl_str *ifr = sl_http_get_header(m, "If-Range");
  /* If-Range with a different validator: send the whole file. */
  if (range && (!ifr || (ifr->len == strlen(etag) && memcmp(ifr->ptr, etag, ifr->len) == 0)))
    r = sl__http_parse_range(*range, size, &a, &b);
  if (r < 0) {
    close(fd);
    snprintf(hdr, sizeof(hdr), "Content-Range: bytes */%llu\r\nContent-Type: text/plain\r\n", size);
    return sl_http_reply(c, 416, hdr, "416 Range Not Satisfiable\n", 26);
  }
  sl__wbuf w;
  sl__wbuf_init(&w, hdr, sizeof(hdr));
  sl__wbuf_printf(&w,
                  "Content-Type: %s\r\nETag: %s\r\nLast-Modified: %s\r\nAccept-Ranges: bytes\r\n",
                  sl_http_mime(name), etag, date);
  unsigned long long len = size;
  if (r == 1) {
    status = 206;
    len = b - a + 1;
    sl__wbuf_printf(&w, "Content-Range: bytes %llu-%llu/%llu\r\n", a, b, size);
  }
  if (sl__wbuf_done(&w) != 0) {
    close(fd);
    return SL_EMSGSIZE;
  }
  int rc = sl__http_start_fixed(c, status, hdr, len);
  if (rc) {
    close(fd);
    return rc;
  }
  if (sl__http_head_request(c) || len == 0) {
    close(fd);
    sl__http_finish(c);
    return 0;
  }
  struct file_src *f = sl__alloc(sizeof(*f), SL_MEM_META);
  if (f == NULL) {
    close(fd);
    sl_conn_close(c, SL_CLOSE_NOW);
    return SL_ENOMEM;
  }
  f->fd = fd;
  f->off = r == 1 ? a : 0;
  f->left = len;
  sl__http_set_source(c, src_fill, src_free, f);
  src_fill(c, f);
  return 0;
}

int sl_http_serve_dir(sl_conn *c, const sl_http_msg *m, const char *root) {
  char rel[PATH_MAX], full[PATH_MAX], real[PATH_MAX], rroot[PATH_MAX];
  if (!method_ok(c, m)) return 0;
  int n = sl__http_clean_path(m->path, rel, sizeof(rel));
  if (n < 0) return sl_http_reply_status(c, 403);
  if (realpath(root, rroot) == NULL) return sl_http_reply_status(c, 404);
  if (snprintf(full, sizeof(full), "%s/%s", rroot, rel) >= (int)sizeof(full))
    return sl_http_reply_status(c, 414);
  struct stat st;
  if (stat(full, &st) != 0) return sl_http_reply_status(c, errno == EACCES ? 403 : 404);
  if (S_ISDIR(st.st_mode)) {
    if (n > 0 && rel[n - 1] != '/') {
      /* Directory without its slash: redirect so relative links work.
       * One leading slash only: "//host/dir/" would be a network-path
       * reference (RFC 3986 4.2), a redirect to another site. */
      const char *pp = m->path.ptr, *pe = m->path.ptr + m->path.len;
      while (pe - pp > 1 && pp[1] == '/') pp++;
      char loc[PATH_MAX + 32];
      snprintf(loc, sizeof(loc), "Location: %.*s/\r\n", (int)(pe - pp), pp);
      return sl_http_reply(c, 301, loc, NULL, 0);
    }
    if (snprintf(full, sizeof(full), "%s/%sindex.html", rroot, rel) >= (int)sizeof(full) ||
        stat(full, &st) != 0)
      return sl_http_reply_status(c, 404);
  }
  if (!S_ISREG(st.st_mode)) return sl_http_reply_status(c, 403);
  /* The cleaned path cannot climb, but a symlink inside the root could
   * point anywhere: resolve it and check it is still below the root. */
  size_t rl = strlen(rroot);
  if (realpath(full, real) == NULL) return sl_http_reply_status(c, 404);
  if (strncmp(real, rroot, rl) != 0 || (real[rl] != '/' && rl > 1))
    return sl_http_reply_status(c, 403);
  int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return sl_http_reply_status(c, errno == EACCES ? 403 : 404);
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return sl_http_reply_status(c, 403);
  }
  return serve_fd(c, m, fd, &st, real);
}

int sl_http_serve_table(sl_conn *c, const sl_http_msg *m,
                        const sl_http_file *files, size_t nfiles) {
  char rel[1024], path[1040];
  int n = sl__http_clean_path(m->path, rel, sizeof(rel));
  if (n < 0) return SL_ENOENT;
  snprintf(path, sizeof(path), "/%s%s", rel, (n == 0 || rel[n - 1] == '/') ? "index.html" : "");
  const sl_http_file *f = NULL;
  for (size_t i = 0; i < nfiles && !f; i++)
    if (strcmp(files[i].path, path) == 0) f = &files[i];
  if (f == NULL) return SL_ENOENT;
  if (!method_ok(c, m)) return 0;
  char etag[64], date[64], hdr[512];
  struct timespec mt = {(time_t)f->mtime, 0};
  validators(f->len, &mt, etag, sizeof(etag), date, sizeof(date));
  if (not_modified(m, etag, (time_t)f->mtime)) {
    snprintf(hdr, sizeof(hdr), "ETag: %s\r\n", etag);
    return sl_http_reply(c, 304, hdr, NULL, 0);
  }
  snprintf(hdr, sizeof(hdr), "Content-Type: %s\r\nETag: %s\r\nLast-Modified: %s\r\n"
           "Cache-Control: no-cache\r\n",
           f->mime ? f->mime : sl_http_mime(f->path), etag, date);
  return sl_http_reply(c, 200, hdr, f->data, f->len);
}
