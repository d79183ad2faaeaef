/* multipart/form-data from curl -F over loopback: a sluice HTTP server
 * buffers each upload (SL_EV_HTTP_MSG, the whole body) and feeds it to
 * sl_multipart in pieces of 1000 bytes, as SL_EV_HTTP_CHUNK would hand
 * it; the reply lists every part (name, file name, type, size, FNV-1a of
 * its data), which the test compares with the files and values it sent.
 * A body that is not multipart, or is cut, gets 400 with the reason. */
#include "http_harness.h"

#define CURL "curl --http1.1 --noproxy '*' -sS --max-time 20 "

struct up {
  char out[2048];
  size_t n;
  uint32_t h;
};

static int up_part(const sl_multipart_part *p, void *arg) {
  struct up *u = arg;
  u->h = 2166136261u;
  u->n += (size_t)snprintf(u->out + u->n, sizeof(u->out) - u->n, "%.*s|%s%.*s|%.*s|",
                           (int)p->name.len, p->name.ptr, p->has_filename ? "" : "-",
                           (int)p->filename.len, p->filename.ptr,
                           (int)p->content_type.len, p->content_type.ptr);
  return 0;
}

static int up_data(const sl_multipart_part *p, const void *d, size_t len, void *arg) {
  struct up *u = arg;
  const unsigned char *b = d;
  (void)p;
  for (size_t i = 0; i < len; i++) u->h = (u->h ^ b[i]) * 16777619u;
  return 0;
}

static int up_end(const sl_multipart_part *p, void *arg) {
  struct up *u = arg;
  u->n += (size_t)snprintf(u->out + u->n, sizeof(u->out) - u->n, "%llu|%08x\n",
                           (unsigned long long)p->size, u->h);
  return 0;
}

static void on_upload(sl_conn *c, int ev, void *ev_data) {
  if (ev != SL_EV_HTTP_MSG) return;
  const sl_http_msg *m = ev_data;
  const sl_str *ct = sl_http_get_header(m, "Content-Type");
  const char *why = "no Content-Type";
  sl_str b;
  if (ct == NULL || sl_multipart_boundary(ct->ptr, ct->len, &b, &why) != 0) {
    sl_http_replyf(c, 400, NULL, "400 Bad Request: %s\n", why);
    return;
  }
  struct up u = {.n = 0};
  sl_multipart_opts o = {.on_part = up_part, .on_data = up_data, .on_end = up_end, .arg = &u};
  int err = 0;
  sl_multipart *mp = sl_multipart_new(ct->ptr, ct->len, &o, &err);
  CHECK(mp != NULL);
  int rc = 0;
  for (size_t off = 0; off < m->body.len && rc == 0; off += 1000) {
    size_t k = m->body.len - off < 1000 ? m->body.len - off : 1000;
    rc = sl_multipart_feed(mp, m->body.ptr + off, k);
  }
  if (rc == 0) rc = sl_multipart_finish(mp);
  if (rc) sl_http_replyf(c, 400, NULL, "400 Bad Request: %s\n", sl_multipart_error(mp));
  else sl_http_reply(c, 200, "Content-Type: text/plain\r\n", u.out, u.n);
  sl_multipart_free(mp);
}

TEST_T(multipart_curl_form_upload, 60) {
  NEED_TOOL("curl");
  struct srv s;
  srv_start(&s, NULL, NULL, on_upload, NULL);
  char dir[64], path[128], path2[128], out[4096], want[1024];
  make_tmpdir(dir);
  /* A binary file of 300 KB whose bytes include CR, LF and dashes, and a
   * small text file. */
  size_t n = 300000;
  unsigned char *data = malloc(n);
  CHECK(data != NULL);
  fill_pattern(data, n, 7);
  for (size_t i = 0; i + 4 < n; i += 997) memcpy(data + i, "\r\n--", 4);
  snprintf(path, sizeof(path), "%s/fw.bin", dir);
  write_file(path, data, n);
  snprintf(path2, sizeof(path2), "%s/notes.txt", dir);
  write_file(path2, "line 1\r\nline 2\n", 15);
  CHECK_EQ(sh_capture(out, sizeof(out),
                      CURL "-F 'title=Front door' -F 'fw=@%s;type=application/octet-stream' "
                           "-F 'notes=@%s;filename=my notes.txt' -F 'empty=' "
                           "http://127.0.0.1:%d/upload", path, path2, s.port), 0);
  snprintf(want, sizeof(want),
           "title|-||10|%08x\n"
           "fw|fw.bin|application/octet-stream|%zu|%08x\n"
           "notes|my notes.txt|text/plain|15|%08x\n"
           "empty|-||0|%08x\n",
           fnv1a("Front door", 10), n, fnv1a(data, n), fnv1a("line 1\r\nline 2\n", 15),
           fnv1a("", 0));
  CHECK_STR(out, want);
  /* Not multipart: the reason in the 400. */
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "-d 'a=1' http://127.0.0.1:%d/upload", s.port), 0);
  CHECK_STR(out, "400 Bad Request: Content-Type is not multipart/form-data\n");
  /* A multipart body cut before its closing delimiter. */
  CHECK_EQ(sh_capture(out, sizeof(out),
                      CURL "-H 'Content-Type: multipart/form-data; boundary=zz' "
                           "--data-binary $'--zz\\r\\nContent-Disposition: form-data; name=a\\r\\n\\r\\nv' "
                           "http://127.0.0.1:%d/upload", s.port), 0);
  CHECK_STR(out, "400 Bad Request: body ended before the closing boundary\n");
  free(data);
  test_sh("rm -rf %s", dir);
  srv_wait_clean(&s, 3000);
  srv_stop(&s);
  CHECK_MEM_CLEAN();
}
