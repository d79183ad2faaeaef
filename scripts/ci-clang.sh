#!/usr/bin/env bash
# CI stage clang-poll: builds everything with clang at -Wall -Wextra
# -Wpedantic -Wshadow -Werror (SL_WERROR), then runs the whole suite with the
# poll(2) fallback as the default backend (SLUICE_BACKEND=poll), so the
# fallback is exercised by a second compiler's code as well.
#   scripts/ci-clang.sh [TEST-PATTERN...]
# Environment: CI_BUILD (root of the build directories, default build),
# JOBS (default nproc).
set -uo pipefail
cd "$(dirname "$0")/.."
dir=${CI_BUILD:-build}/clang
jobs=${JOBS:-$(nproc)}
mkdir -p "$dir"
echo "== clang: configure and build ($dir)"
if ! CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
       -DSL_WERROR=ON >"$dir.log" 2>&1 ||
   ! cmake --build "$dir" -j"$jobs" >>"$dir.log" 2>&1; then
  grep -E -B2 -A6 'error|Error' "$dir.log" | head -60
  echo "clang: build failed (log: $dir.log)"
  exit 1
fi
grep -q 'warning:' "$dir.log" && { grep 'warning:' "$dir.log" | head; echo "clang: warnings"; exit 1; }
echo "== clang: tests with SLUICE_BACKEND=poll"
cd "$dir" && SLUICE_BACKEND=poll ./sluice-tests "$@"
