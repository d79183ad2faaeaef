#!/usr/bin/env python3
"""HTTP Digest (RFC 7616, MD5, qop=auth) verifier for the client tests.

Written from the RFC for tests/net/test_http_client.c, independently of
sluice's own Digest code, so the client is checked against arithmetic it
did not write. It serves two kinds of requests:

  - nginx's auth_request subrequests (X-Original-Method / X-Original-URI
    headers present): 204 when the Authorization verifies, else 401 with a
    fresh challenge, which nginx passes to the client;
  - direct requests: 200 "digest ok <uri>\n" or the same 401. Under
    a path starting with /stale, the first correct answer for that path is
    refused as if its nonce had expired: 401 with stale=true and a new
    nonce (RFC 7616 section 3.3), logged as "stale". Under /stale/always
    every correct answer is (a broken server: a client must give up).

It binds 127.0.0.1 on an ephemeral port and writes that port to
--port-file once it is listening. Every verdict is appended to --log as
"<method> <uri> <none|bad|ok>" so the test can see the retry happen.
"""
import argparse
import hashlib
import http.server
import os
import secrets
import threading
import urllib.request

def md5(s):
    return hashlib.md5(s.encode("utf-8")).hexdigest()

class State:
    def __init__(self, user, password, realm, log):
        self.user, self.password, self.realm, self.log = user, password, realm, log
        self.lock = threading.Lock()
        self.nonces = {}  # nonce -> highest nc seen
        self.opaque = secrets.token_hex(8)
        self.staled = set()  # paths that already had their stale answer

    def challenge(self, stale=False):
        nonce = secrets.token_hex(16)
        with self.lock:
            self.nonces[nonce] = 0
        return ('Digest realm="%s", qop="auth", algorithm=MD5, nonce="%s", opaque="%s"%s'
                % (self.realm, nonce, self.opaque, ", stale=true" if stale else ""))

    def verify(self, method, uri, header):
        if not header or not header.lower().startswith("digest "):
            return "none"
        items = urllib.request.parse_keqv_list(urllib.request.parse_http_list(header[7:]))
        try:
            nonce, nc, cnonce = items["nonce"], items["nc"], items["cnonce"]
            if (items["username"] != self.user or items["realm"] != self.realm
                    or items.get("qop") != "auth" or items["uri"] != uri
                    or items.get("opaque") != self.opaque
                    or items.get("algorithm", "MD5").upper() != "MD5"):
                return "bad"
            ncv = int(nc, 16)
            with self.lock:
                if nonce not in self.nonces or ncv <= self.nonces[nonce]:
                    return "bad"
                self.nonces[nonce] = ncv
            ha1 = md5("%s:%s:%s" % (self.user, self.realm, self.password))
            ha2 = md5("%s:%s" % (method, uri))
            want = md5("%s:%s:%s:%s:auth:%s" % (ha1, nonce, nc, cnonce, ha2))
            if not secrets.compare_digest(want, items["response"].lower()):
                return "bad"
            return "ok " + nonce
        except (KeyError, ValueError):
            return "bad"

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_any(self):
        st = self.server.state
        # Read the body, if any: closing with unread bytes would reset the
        # connection and could destroy the response in flight.
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        method = self.headers.get("X-Original-Method") or self.command
        uri = self.headers.get("X-Original-URI") or self.path
        subrequest = "X-Original-URI" in self.headers
        verdict = st.verify(method, uri, self.headers.get("Authorization"))
        if verdict.startswith("ok ") and not subrequest and uri.startswith("/stale"):
            with st.lock:
                if uri not in st.staled or uri.startswith("/stale/always"):
                    st.staled.add(uri)
                    verdict = "stale"
        verdict = verdict.split(" ")[0]
        with st.lock, open(st.log, "a") as f:
            f.write("%s %s %s\n" % (method, uri, verdict))
        if verdict == "ok":
            body = b"" if subrequest else ("digest ok %s\n" % uri).encode()
            self.send_response(204 if subrequest else 200)
        else:
            body = b"unauthorized\n"
            self.send_response(401)
            self.send_header("WWW-Authenticate", st.challenge(verdict == "stale"))
        if body or not subrequest:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_HEAD = handle_any

    def log_message(self, fmt, *args):
        pass

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--user", default="admin")
    ap.add_argument("--password", default="secret")
    ap.add_argument("--realm", default="sluice-test")
    a = ap.parse_args()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.state = State(a.user, a.password, a.realm, a.log)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, a.port_file)
    srv.serve_forever()

if __name__ == "__main__":
    main()
