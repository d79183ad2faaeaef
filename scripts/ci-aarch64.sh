#!/usr/bin/env bash
# CI stage aarch64: cross-compiles the library, the examples and the suite
# for 64-bit ARM at -Os (MinSizeRel) with Debian's gcc-aarch64-linux-gnu,
# runs the suite under qemu-user, and prints the stripped size of libsluice
# at -Os for x86_64 and aarch64.
#   scripts/ci-aarch64.sh [TEST-PATTERN...]
# Environment: CI_BUILD (default build), JOBS, TEST_TIMEOUT_SCALE (5),
# AARCH64_EXCLUDE (space-separated name parts to skip, default below).
#
# Skipped by default, because emulation breaks an assumption of the test,
# not of the library:
# - http_server_header_timeout measures the keep-alive header timeout from
#   when the client *received* the response, while the server starts it when
#   the request ends; under qemu the response takes more than the test's
#   10 ms margin to arrive, so the close looks early (283 ms of 300
#   measured). Drop it when the test measures from before its request.
# - hub_net_resume_starts_with_newest_frame reads the kernel's unsent bytes
#   with ioctl(SIOCOUTQNSD), which qemu-user 7.2 does not translate (the
#   library itself does not use it).
# - http_camera_example_* start the example program (built for aarch64) as a
#   child process, and runner_exact_pattern_* / runner_kills_hung_test_*
#   start the runner again through /proc/self/exe, which under qemu-user is
#   qemu itself: both would need the emulator in front of the child. They
#   test the example and the runner, not the library, and run natively in
#   the other stages.
set -uo pipefail
cd "$(dirname "$0")/.."
root=${CI_BUILD:-build}
jobs=${JOBS:-$(nproc)}
sysroot=/usr/aarch64-linux-gnu
mkdir -p "$root"

build() { # name builddir cmake-args...
  local name=$1 dir=$2; shift 2
  echo "== $name: configure and build ($dir)"
  if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=MinSizeRel -DSL_WERROR=ON \
         -DSL_BUILD_APPS=OFF "$@" >"$dir.log" 2>&1 ||
     ! cmake --build "$dir" -j"$jobs" >>"$dir.log" 2>&1; then
    grep -E -B2 -A6 'error|Error' "$dir.log" | head -60
    echo "$name: build failed (log: $dir.log)"
    return 1
  fi
}

# The stripped shared object (bytes on disk, which include page alignment:
# 64 KiB on aarch64, and its loaded text+data+bss), and what a static link
# can add at most (text+data+bss of every object in the archive).
size_row() { # arch builddir strip size
  local so; so=$(readlink -f "$2/libsluice.so")
  "$3" --strip-unneeded -o "$2/libsluice.stripped.so" "$so" || return 1
  local sobytes; sobytes=$(stat -c %s "$2/libsluice.stripped.so")
  local soload; soload=$("$4" "$2/libsluice.stripped.so" | awk 'NR == 2 {print $4}')
  local abytes; abytes=$("$4" -t "$2/libsluice.a" | awk '/TOTALS/ {print $4}')
  printf '  %-8s libsluice.so stripped %7d bytes (text+data+bss %7d)   libsluice.a text+data+bss %7d\n' \
    "$1" "$sobytes" "$soload" "$abytes"
}

a64=$root/aarch64
build aarch64 "$a64" -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-toolchain.cmake" || exit 1
x64=$root/x86_64-Os
CC=${HOST_CC:-gcc} build x86_64-Os "$x64" -DSL_BUILD_TESTS=OFF || exit 1

excl=()
for x in ${AARCH64_EXCLUDE-http_server_header_timeout hub_net_resume_starts_with_newest_frame http_camera_example_ runner_exact_pattern_runs_one_test runner_kills_hung_test_and_its_helpers}; do excl+=(-x "$x"); done
echo "== aarch64: sluice-tests ${excl[*]} $* (qemu-aarch64)"
status=0
(cd "$a64" && TEST_TIMEOUT_SCALE=${TEST_TIMEOUT_SCALE:-5} \
  qemu-aarch64 -L "$sysroot" ./sluice-tests "${excl[@]}" "$@") || status=1

echo "== libsluice size at -Os (MinSizeRel: -Os -DNDEBUG)"
size_row x86_64 "$x64" strip size || status=1
size_row aarch64 "$a64" aarch64-linux-gnu-strip aarch64-linux-gnu-size || status=1
exit $status
