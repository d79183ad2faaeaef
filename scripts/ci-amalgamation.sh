#!/usr/bin/env bash
# CI stage amalgamation: the two-file build (sluice.c + sluice.h) that an
# embedded project drops into its tree. Generates it (scripts/amalgamate.py),
# then checks that
#   - examples/echo_server.c builds against it with ONE cc line and echoes;
#   - sluice.c compiles warning-free with gcc and clang (-Wall -Wextra
#     -Wpedantic -Wshadow -Werror), without and (when OpenSSL's headers are
#     there) with TLS;
#   - its object exports only the public API: no sl__ symbol, nothing
#     without the sl_ prefix.
#   scripts/ci-amalgamation.sh [OUTDIR]     (default: build/amalgamation)
# Prints what it checked; exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/amalgamation}
tmp=$(mktemp -d /tmp/sl-amal.XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "amalgamation: FAIL: $*" >&2; exit 1; }

python3 scripts/amalgamate.py --out "$out"

# The one line a user types.
t0=$(date +%s%N)
cc -O2 -I "$out" examples/echo_server.c "$out/sluice.c" -lpthread -o "$tmp/echo" ||
  fail "cc -O2 -I $out examples/echo_server.c $out/sluice.c -lpthread"
echo "amalgamation: cc -O2 -I $out examples/echo_server.c $out/sluice.c -lpthread: ok ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"

# It echoes.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$tmp/echo" "127.0.0.1:$port" >"$tmp/echo.log" 2>&1 &
pid=$!
python3 - "$port" <<'EOF' || fail "no echo from the amalgamated echo_server (log: $(cat "$tmp/echo.log"))"
import socket, sys, time
port = int(sys.argv[1])
for _ in range(100):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        break
    except OSError:
        time.sleep(0.05)
else:
    sys.exit("cannot connect")
msg = b"hello, amalgamation\n" * 1000
s.sendall(msg)
got = b""
while len(got) < len(msg):
    d = s.recv(65536)
    if not d:
        break
    got += d
sys.exit(0 if got == msg else "echo differs")
EOF
kill -TERM "$pid"
wait "$pid" || fail "echo_server did not exit cleanly on SIGTERM"
pid=
echo "amalgamation: echo_server built from it echoed 20000 bytes and exited cleanly"

# Warning-free with both compilers; only sl_ symbols exported.
flags="-std=c11 -O2 -Wall -Wextra -Wpedantic -Wshadow -Werror"
variants=(plain)
if echo '#include <openssl/ssl.h>' | cc -E -x c - >/dev/null 2>&1; then
  python3 scripts/amalgamate.py --tls --out "$tmp/tls" >/dev/null
  variants+=(tls)
fi
for v in "${variants[@]}"; do
  dir=$out
  [ "$v" = tls ] && dir=$tmp/tls
  for c in gcc clang; do
    command -v "$c" >/dev/null || { [ "${CI:-}" = true ] && fail "$c missing"; echo "amalgamation: $c missing, skipped"; continue; }
    "$c" $flags -I "$dir" -c "$dir/sluice.c" -o "$tmp/sluice-$v-$c.o" 2>"$tmp/warn" ||
      { cat "$tmp/warn" >&2; fail "$c $flags ($v)"; }
    bad=$(nm -g --defined-only "$tmp/sluice-$v-$c.o" | awk '{print $NF}' | grep -v '^sl_' || true)
    internal=$(nm -g --defined-only "$tmp/sluice-$v-$c.o" | awk '{print $NF}' | grep '^sl__' || true)
    [ -z "$bad$internal" ] || fail "$c ($v) exports: $bad $internal"
    api=$(nm -g --defined-only "$tmp/sluice-$v-$c.o" | wc -l)
    static=$(nm "$tmp/sluice-$v-$c.o" | awk '$2 ~ /^[a-z]$/ && $3 ~ /^sl__/' | wc -l)
    echo "amalgamation: $c $flags ($v): no warning; exports $api sl_ symbols, no sl__ ($static internal sl__ symbols are static)"
  done
done
echo "amalgamation: ok ($out/sluice.c, $(wc -l <"$out/sluice.c") lines)"
