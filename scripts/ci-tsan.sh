#!/usr/bin/env bash
# CI stage tsan: a ThreadSanitizer build (clang, SL_TSAN) running the tests
# that cross threads: the wakeup channel, thread-safe buffer refcounts,
# publishing from other threads, and several loops on several threads
# (hub_group_thread_*, loops_threads_*: hub groups and SO_REUSEPORT
# listeners; "thread" selects them).
#   scripts/ci-tsan.sh [TEST-PATTERN...]   (default: wakeup thread publish)
# Environment: CI_BUILD (default build), JOBS.
set -uo pipefail
cd "$(dirname "$0")/.."
dir=${CI_BUILD:-build}/tsan
jobs=${JOBS:-$(nproc)}
[ $# -gt 0 ] || set -- wakeup thread publish
mkdir -p "$dir"
echo "== tsan: configure and build ($dir)"
if ! CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
       -DSL_TSAN=ON -DSL_BUILD_APPS=OFF >"$dir.log" 2>&1 ||
   ! cmake --build "$dir" -j"$jobs" --target sluice-tests >>"$dir.log" 2>&1; then
  grep -E -B2 -A6 'error|Error' "$dir.log" | head -60
  echo "tsan: build failed (log: $dir.log)"
  exit 1
fi
# A report fails the test that caused it: the child exits with 66.
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
echo "== tsan: sluice-tests $*"
cd "$dir"
# TSan's shadow layout predates high-entropy mmap randomisation; running
# without ASLR avoids "unexpected memory mapping" on such kernels.
if setarch "$(uname -m)" -R true 2>/dev/null; then
  exec setarch "$(uname -m)" -R ./sluice-tests "$@"
fi
exec ./sluice-tests "$@"
