#!/usr/bin/env bash
# Runs the layer check (scripts/check-layers.sh, counted as one test), then
# the whole suite twice: a normal build and an ASan+UBSan build, and prints
# one closing "N passed, N failed" line for all of it.
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-2}
pass=0; fail=0
run_suite() { # name builddir cmake-args...
  local name=$1 dir=$2; shift 2
  echo "== $name: configure and build ($dir)"
  if ! cmake -S . -B "$dir" -DSL_WERROR=ON "$@" >"$dir.log" 2>&1 || \
     ! cmake --build "$dir" -j"$jobs" >>"$dir.log" 2>&1; then
    tail -40 "$dir.log"; echo "$name: build failed"; fail=$((fail+1)); return
  fi
  echo "== $name: tests"
  local out; out=$(mktemp)
  (cd "$dir" && ./sluice-tests) 2>&1 | tee "$out"
  local line; line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
  if [ -z "$line" ]; then fail=$((fail+1)); else
    pass=$((pass + $(echo "$line" | awk '{print $1}')))
    fail=$((fail + $(echo "$line" | awk '{print $3}' | tr -d ,)))
  fi
  rm -f "$out"
}
mkdir -p build
echo "== layers: scripts/check-layers.sh"
if scripts/check-layers.sh; then pass=$((pass+1)); else fail=$((fail+1)); fi
run_suite "release" build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite "asan+ubsan" build/asan -DCMAKE_BUILD_TYPE=Debug -DSL_SANITIZE=ON
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
