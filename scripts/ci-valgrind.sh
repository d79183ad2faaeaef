#!/usr/bin/env bash
# CI stage valgrind: a subset of the suite under memcheck, with a plain
# (unsanitized) Debug build: the output queue, timers, echo over loopback and
# the stalled-peer path. The runner forks one child per test; memcheck follows
# forks by itself and --trace-children follows any exec of our own programs
# (system tools and interpreters that tests drive, such as node or curl, run
# natively). A memcheck error or
# a definite/indirect leak makes that child exit 1, which fails its test,
# which makes the runner, and so this script, exit nonzero.
#   scripts/ci-valgrind.sh [TEST-PATTERN...]  (default: outq timer echo stalled)
# Environment: CI_BUILD (default build), JOBS.
set -uo pipefail
cd "$(dirname "$0")/.."
dir=${CI_BUILD:-build}/valgrind
jobs=${JOBS:-$(nproc)}
[ $# -gt 0 ] || set -- outq timer echo stalled
mkdir -p "$dir"
echo "== valgrind: configure and build ($dir)"
if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DSL_BUILD_APPS=OFF \
       >"$dir.log" 2>&1 ||
   ! cmake --build "$dir" -j"$jobs" --target sluice-tests >>"$dir.log" 2>&1; then
  grep -E -B2 -A6 'error|Error' "$dir.log" | head -60
  echo "valgrind: build failed (log: $dir.log)"
  exit 1
fi
echo "== valgrind: sluice-tests $*"
cd "$dir"
export TEST_TIMEOUT_SCALE=${TEST_TIMEOUT_SCALE:-10}
exec valgrind -q --leak-check=full --error-exitcode=1 \
  --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
  --trace-children=yes --trace-children-skip='/usr/*,/bin/*,/sbin/*,/snap/*' \
  --track-origins=yes ./sluice-tests "$@"
