/* The HTTP helpers against curl over loopback: a login form POSTed
 * (application/x-www-form-urlencoded, read with sl_http_var), the session
 * cookie set with sl_http_set_cookie and sent back by curl -b (read with
 * sl_http_cookie), a JSON API answered with sl_json_printf and read with
 * sl_json_get_*, and routes matched on the decoded path. */
#include "http_harness.h"

#define CURL "curl --http1.1 --noproxy '*' -sS --max-time 10 "

static void on_web(sl_conn *c, int ev, void *ev_data) {
  if (ev != SL_EV_HTTP_MSG) return;
  const sl_http_msg *m = ev_data;
  char user[64], pass[64], sid[64], body[512], hdr[256];
  if (sl_http_match(m, "/login", NULL, 0) && sl_http_is_method(m, "POST")) {
    int u = sl_http_var(m->body.ptr, m->body.len, "user", user, sizeof(user));
    int p = sl_http_var(m->body.ptr, m->body.len, "pass", pass, sizeof(pass));
    if (u < 0 || p < 0 || strcmp(pass, "s3cret&=") != 0) {
      sl_http_reply_status(c, u == SL_EINVAL || p == SL_EINVAL ? 400 : 403);
      return;
    }
    sl_cookie_opts o = {.path = "/", .http_only = 1, .same_site = "Strict", .max_age = 600};
    CHECK(sl_http_set_cookie(hdr, sizeof(hdr), "sid", "tok-42", &o) > 0);
    int n = sl_json_printf(body, sizeof(body), "{%Q:%Q,%Q:%B}", "user", user, "ok", 1);
    CHECK(n > 0);
    strcat(hdr, "Content-Type: application/json\r\n");
    sl_http_reply(c, 200, hdr, body, (size_t)n);
    return;
  }
  if (sl_http_match(m, "/api/me", NULL, 0)) {
    if (sl_http_cookie(m, "sid", sid, sizeof(sid)) < 0 || strcmp(sid, "tok-42") != 0) {
      sl_http_reply_status(c, 401);
      return;
    }
    char theme[32] = "";
    sl_http_cookie(m, "theme", theme, sizeof(theme));
    int n = sl_json_printf(body, sizeof(body), "{%Q:%Q,%Q:%Q}", "sid", sid, "theme", theme);
    sl_http_reply(c, 200, "Content-Type: application/json\r\n", body, (size_t)n);
    return;
  }
  if (sl_http_match(m, "/api/config", NULL, 0) && sl_http_is_method(m, "POST")) {
    double fps = 0;
    char name[32];
    int a = sl_json_get_num(m->body.ptr, m->body.len, "$.camera.fps", &fps);
    int b = sl_json_get_str(m->body.ptr, m->body.len, "$.camera.names[1]", name, sizeof(name));
    if (a < 0 || b < 0) {
      sl_http_replyf(c, 400, NULL, "%s %s", sl_err_name(a), sl_err_name(b));
      return;
    }
    sl_http_replyf(c, 200, NULL, "fps=%g name=%s", fps, name);
    return;
  }
  if (sl_http_match(m, "/files/*", NULL, 0)) {
    sl_http_reply(c, 200, NULL, "file", 4);
    return;
  }
  sl_http_reply_status(c, 404);
}

TEST_T(http_util_curl_form_cookie_json, 60) {
  NEED_TOOL("curl");
  struct srv s;
  srv_start(&s, NULL, NULL, on_web, NULL);
  char dir[64], jar[128], out[4096];
  make_tmpdir(dir);
  snprintf(jar, sizeof(jar), "%s/jar", dir);
  /* A form POST: curl encodes the fields (the password has '&' and '='). */
  CHECK_EQ(sh_capture(out, sizeof(out),
                      CURL "-c %s --data-urlencode \"user=ann o'neil\" "
                           "--data-urlencode 'pass=s3cret&=' http://127.0.0.1:%d/login",
                      jar, s.port), 0);
  CHECK_STR(out, "{\"user\":\"ann o'neil\",\"ok\":true}");
  /* The cookie jar got the cookie with its attributes: curl sends it back. */
  CHECK_EQ(sh_capture(out, sizeof(out), "grep -c 'sid.*tok-42' %s", jar), 0);
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "-b %s http://127.0.0.1:%d/api/me", jar, s.port), 0);
  CHECK_STR(out, "{\"sid\":\"tok-42\",\"theme\":\"\"}");
  /* -b with a literal cookie string: several cookies, one header. */
  CHECK_EQ(sh_capture(out, sizeof(out),
                      CURL "-b 'theme=\"dark\"; sid=tok-42' http://127.0.0.1:%d/api/me", s.port), 0);
  CHECK_STR(out, "{\"sid\":\"tok-42\",\"theme\":\"dark\"}");
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "-o /dev/null -w '%%{http_code}' "
                      "-b 'sid=other' http://127.0.0.1:%d/api/me", s.port), 0);
  CHECK_STR(out, "401");
  /* A wrong password, and a form with a bad escape. */
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "-o /dev/null -w '%%{http_code}' "
                      "-d 'user=a&pass=no' http://127.0.0.1:%d/login", s.port), 0);
  CHECK_STR(out, "403");
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "-o /dev/null -w '%%{http_code}' "
                      "-d 'user=a&pass=%%zz' http://127.0.0.1:%d/login", s.port), 0);
  CHECK_STR(out, "400");
  /* A JSON body read by path. */
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "-H 'Content-Type: application/json' "
                      "-d '{\"camera\": {\"fps\": 12.5, \"names\": [\"a\", \"lobby \\u00e9\"]}}' "
                      "http://127.0.0.1:%d/api/config", s.port), 0);
  CHECK_STR(out, "fps=12.5 name=lobby \xc3\xa9");
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "-d '{\"camera\": [}' "
                      "http://127.0.0.1:%d/api/config", s.port), 0);
  CHECK_STR(out, "SL_EINVAL SL_EINVAL");
  /* Routes see the decoded path; traversal spellings match nothing. */
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "http://127.0.0.1:%d/%%66iles/x", s.port), 0);
  CHECK_STR(out, "file");
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "--path-as-is -o /dev/null -w '%%{http_code}' "
                      "http://127.0.0.1:%d/files/%%2e%%2e", s.port), 0);
  CHECK_STR(out, "404");
  CHECK_EQ(sh_capture(out, sizeof(out), CURL "--path-as-is -o /dev/null -w '%%{http_code}' "
                      "http://127.0.0.1:%d/files/a%%2fb", s.port), 0);
  CHECK_STR(out, "404");
  test_sh("rm -rf %s", dir);
  srv_wait_clean(&s, 3000);
  srv_stop(&s);
  CHECK_MEM_CLEAN();
}
