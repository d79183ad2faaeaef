#!/usr/bin/env bash
# CI stage install: installs into a temporary prefix, then builds
# examples/echo_server.c against the installed copy twice, as a user would:
# with `pkg-config --cflags --libs sluice`, and with a small CMake project
# using find_package(sluice) (sluice::sluice, shared, and sluice::sluice_static).
# Each program must build and start.
# Environment: CI_BUILD (default build), JOBS.
set -uo pipefail
cd "$(dirname "$0")/.."
src=$PWD
dir=${CI_BUILD:-build}/install-check
jobs=${JOBS:-$(nproc)}
prefix=$(mktemp -d /tmp/sluice-prefix.XXXXXX)
work=$(mktemp -d /tmp/sluice-user.XXXXXX)
trap 'rm -rf "$prefix" "$work"' EXIT
mkdir -p "$dir"

echo "== install: build and install into $prefix"
if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSL_BUILD_APPS=OFF \
       -DSL_BUILD_TESTS=OFF >"$dir.log" 2>&1 ||
   ! cmake --build "$dir" -j"$jobs" >>"$dir.log" 2>&1 ||
   ! cmake --install "$dir" --prefix "$prefix" >>"$dir.log" 2>&1; then
  tail -30 "$dir.log"; echo "install: build or install failed (log: $dir.log)"; exit 1
fi
(cd "$prefix" && find . -type f -o -type l | sort | sed 's/^/  /')

status=0
# Starts a built server on a free port for a moment: it must load its
# libraries and print its banner.
starts() { # name binary
  local out; out=$(LD_LIBRARY_PATH="$libdir" timeout 1 "$2" 127.0.0.1:0 2>&1)
  if echo "$out" | grep -q echoing; then echo "ok   $1"; else
    echo "FAIL $1: did not start: $out"; status=1; fi
}

pc=$(find "$prefix" -name sluice.pc | head -1)
cfg=$(find "$prefix" -name sluiceConfig.cmake | head -1)
if [ -z "$pc" ] || [ -z "$cfg" ]; then echo "FAIL install: no sluice.pc or sluiceConfig.cmake"; exit 1; fi
libdir=$(dirname "$(dirname "$pc")")

echo "== install: pkg-config"
export PKG_CONFIG_PATH=$(dirname "$pc")
flags=$(pkg-config --cflags --libs sluice) || { echo "FAIL pkg-config"; exit 1; }
# The paths must be the custom prefix given to `cmake --install --prefix`,
# not the configure-time one (/usr/local): cmake/extra.cmake rewrites the
# installed sluice.pc. A copy elsewhere on the system must not be used.
case " $flags " in
  *" -I$prefix/include "*"-L$libdir "*) echo "ok   pkg-config paths are in $prefix" ;;
  *) echo "FAIL pkg-config paths are not in $prefix: $flags"; exit 1 ;;
esac
echo "  cc examples/echo_server.c $flags"
if cc -std=c11 -Wall -Werror examples/echo_server.c $flags -o "$work/echo-pc"; then
  starts "pkg-config, shared" "$work/echo-pc"
else echo "FAIL pkg-config build"; status=1; fi
# Static: the archive by path, plus what `pkg-config --static` adds.
slibs=$(pkg-config --static --libs-only-l sluice | sed 's/-lsluice//')
if cc -std=c11 -Wall -Werror examples/echo_server.c $(pkg-config --cflags sluice) \
     "$libdir/libsluice.a" $slibs -o "$work/echo-pc-static"; then
  starts "pkg-config, static libsluice.a $slibs" "$work/echo-pc-static"
else echo "FAIL static archive build"; status=1; fi

echo "== install: find_package(sluice)"
mkdir -p "$work/proj"
cp examples/echo_server.c "$work/proj/"
cat >"$work/proj/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.16)
project(sluice_user C)
find_package(sluice 0.1 REQUIRED)
add_executable(echo_shared echo_server.c)
target_link_libraries(echo_shared PRIVATE sluice::sluice)
add_executable(echo_static echo_server.c)
target_link_libraries(echo_static PRIVATE sluice::sluice_static)
CM
if cmake -S "$work/proj" -B "$work/proj/build" -DCMAKE_PREFIX_PATH="$prefix" \
     >"$work/proj.log" 2>&1 && cmake --build "$work/proj/build" >>"$work/proj.log" 2>&1; then
  starts "find_package, sluice::sluice" "$work/proj/build/echo_shared"
  starts "find_package, sluice::sluice_static" "$work/proj/build/echo_static"
  if ldd "$work/proj/build/echo_static" | grep -q libsluice; then
    echo "FAIL sluice::sluice_static links the shared library"; status=1; fi
else
  cat "$work/proj.log"; echo "FAIL find_package build"; status=1
fi
exit $status
