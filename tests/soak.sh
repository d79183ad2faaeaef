#!/usr/bin/env bash
# `make soak`: the long versions of the reliability tests, printing what
# they measure. Same tests as the suite's rel_* (tests/app/test_reliability.c),
# with 60 s phases instead of 20 s (12 s for the mixed attack) and five
# times the churn cycles:
#   - 1000 stalled + 20 healthy viewers of one 30 fps stream for 60 s:
#     library memory against the documented bound, RSS per stalled viewer
#     and its growth per viewer per minute, healthy viewers' frames against
#     a 60 s control, then 1000 stalled viewers evicted on time;
#   - 50,000 connect/request/close and 50,000 viewer join/leave cycles,
#     back to the baseline (counters, descriptors);
#   - 60 s of slowloris + request flood + stalled viewers, the attackers
#     replaced as the server drops them, every one closed by its limit;
#   - descriptor exhaustion, resets and garbage, half-close, valgrind.
#   tests/soak.sh [BUILD_DIR] [TEST-PATTERN...]
# Environment: SL_SOAK_SECS (60), SL_SOAK_SCALE (5), SOAK_ASAN=1 to run the
# ASan+UBSan build (build/asan) instead of build/release.
set -uo pipefail
cd "$(dirname "$0")/.."
dir=${1:-}
[ $# -gt 0 ] && shift
if [ -z "$dir" ]; then
  if [ "${SOAK_ASAN:-0}" = 1 ]; then
    dir=build/asan
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DSL_SANITIZE=ON >/dev/null || exit 1
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  else
    dir=build/release
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
  fi
  cmake --build "$dir" -j"${JOBS:-2}" >/dev/null || { echo "soak: build failed"; exit 1; }
fi
[ $# -gt 0 ] || set -- rel_
export SL_SOAK_SECS=${SL_SOAK_SECS:-60}
export SL_SOAK_SCALE=${SL_SOAK_SCALE:-5}
# Phases are 3x longer: stretch the per-test timeouts to match.
export TEST_TIMEOUT_SCALE=${TEST_TIMEOUT_SCALE:-4}
echo "soak: $dir/sluice-tests $* (phases ${SL_SOAK_SECS} s, cycles x${SL_SOAK_SCALE})"
t0=$SECONDS
(cd "$dir" && ./sluice-tests "$@")
rc=$?
echo "soak: $((SECONDS - t0)) s, exit $rc"
exit $rc
