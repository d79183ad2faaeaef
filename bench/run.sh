#!/usr/bin/env bash
# Runs the benchmarks and prints their tables (Markdown), each with the exact
# command that produced it. `make bench` builds the project first; this
# script (re)builds just the bench targets it needs in $BUILD.
#   bench/run.sh [NAME...]        e.g. bench/run.sh core, bench/run.sh h264, bench/run.sh mux
# Environment: BUILD (build/release), BENCH_ARGS_<name> (extra arguments for
# one benchmark, e.g. BENCH_ARGS_core="-r 3 -t 0.5").
# To add a benchmark: bench/bench_<name>.c (built by cmake/extra.cmake) and
# a line in the list below, with the arguments it runs with by default.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build/release}

# name            default arguments (each run must stay well under 60 s)
benches=(
  "core           -r 5 -t 1 -n 1000"
  "tls            -r 3 -t 1 -n 100"
)

want=("$@")
selected() { [ ${#want[@]} = 0 ] && return 0; local w; for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
fi

status=0
echo "# sluice benchmarks"
echo
btype=$(grep -m1 '^CMAKE_BUILD_TYPE:' "$build/CMakeCache.txt" | cut -d= -f2)
echo "$(uname -srm), load average $(cut -d" " -f1-3 /proc/loadavg); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs; build: $build (${btype:-RelWithDebInfo, the default}), $(${CC:-cc} --version | head -1)"
for entry in "${benches[@]}"; do
  read -r name args <<<"$entry"
  selected "$name" || continue
  extra_var="BENCH_ARGS_$name"
  [ -n "${!extra_var:-}" ] && args=${!extra_var}
  if ! cmake --build "$build" --target "bench_$name" >"$build/bench_$name.build.log" 2>&1; then
    tail -20 "$build/bench_$name.build.log"; echo "bench $name: build failed"; status=1; continue
  fi
  echo
  echo "## $name"
  echo
  echo "Command: \`$build/bench_$name $args\`"
  echo
  t0=$SECONDS
  # shellcheck disable=SC2086
  if ! "$build/bench_$name" $args 2>"$build/bench_$name.log"; then
    cat "$build/bench_$name.log"; echo "bench $name: failed"; status=1
  fi
  echo
  echo "($name: $((SECONDS - t0)) s; per-round numbers in $build/bench_$name.log)"
done
# ---- Fan-out, load and HTTP comparisons: bench/fanout.py ---------------------
# Script-driven, so not in the list above: bench_fanout_server and
# bench_http_server (servers built from the library), loadgen (bench/loadgen.c:
# the readers, stalled/slow/frozen viewers, slowloris, churn, floods) and, for
# comparison, GStreamer's tcpserversink, nginx and h2o when installed. Selected by
# "fanout" or by any of its sections (throughput fanout30 memory stalled http
# mixed), e.g. bench/run.sh stalled http. About 6 minutes on 2 cores.
# FANOUT_ARGS adds arguments, e.g. FANOUT_ARGS="--rounds 5 --long".
fan_sections=(throughput fanout30 memory stalled http mixed)
fan_run=0
fan_pick=()
if [ ${#want[@]} = 0 ]; then
  fan_run=1
else
  for w in "${want[@]}"; do
    [ "$w" = fanout ] && fan_run=1
    for s in "${fan_sections[@]}"; do [ "$w" = "$s" ] && fan_run=1 && fan_pick+=("$s"); done
  done
  [[ " ${want[*]} " == *" fanout "* ]] && fan_pick=()
fi
if [ $fan_run = 1 ]; then
  echo
  echo "## fanout"
  echo
  fan_targets=(bench_fanout_server bench_http_server loadgen)
  grep -q '^SL_BUILD_APPS:BOOL=OFF' "$build/CMakeCache.txt" || fan_targets+=(sluice-stream)
  if ! cmake --build "$build" --target "${fan_targets[@]}" >"$build/bench_fanout.build.log" 2>&1; then
    tail -20 "$build/bench_fanout.build.log"; echo "bench fanout: build failed"; status=1
  elif ! command -v python3 >/dev/null; then
    echo "bench fanout: needs python3"; status=1
  else
    fan_cmd="bench/fanout.py --build $build${FANOUT_ARGS:+ $FANOUT_ARGS}${fan_pick[*]:+ ${fan_pick[*]}}"
    echo "Command: \`$fan_cmd\`"
    echo
    t0=$SECONDS
    # shellcheck disable=SC2086
    if ! python3 bench/fanout.py --build "$build" --json "$build/bench_fanout.json" ${FANOUT_ARGS:-} \
        "${fan_pick[@]}" 2>"$build/bench_fanout.log"; then
      tail -20 "$build/bench_fanout.log"; echo "bench fanout: failed"; status=1
    fi
    echo
    echo "(fanout: $((SECONDS - t0)) s; progress in $build/bench_fanout.log, every number in $build/bench_fanout.json)"
  fi
fi
# ---- MJPEG vs H.264 and fMP4 fan-out of sluice-stream: bench/h264.py --------
# The 640x480, 30 fps test pattern as MJPEG and as H.264 (openh264, in the
# server) to 100 and 1000 viewers, and /stream.mp4 vs /stream.h264 to 1000,
# interleaved rounds (about 50 s). Selected by "h264" (and run by default).
# H264_ARGS adds arguments, e.g. H264_ARGS="--rounds 3 --duration 3".
if selected h264; then
  echo
  echo "## h264"
  echo
  if grep -q '^SL_BUILD_APPS:BOOL=OFF' "$build/CMakeCache.txt"; then
    echo "bench h264: needs sluice-stream (SL_BUILD_APPS is OFF in $build)"; status=1
  elif ! cmake --build "$build" --target sluice-stream loadgen >"$build/bench_h264.build.log" 2>&1; then
    tail -20 "$build/bench_h264.build.log"; echo "bench h264: build failed"; status=1
  elif ! command -v python3 >/dev/null; then
    echo "bench h264: needs python3"; status=1
  else
    echo "Command: \`bench/h264.py --build $build${H264_ARGS:+ $H264_ARGS}\`"
    echo
    t0=$SECONDS
    # shellcheck disable=SC2086
    if ! python3 bench/h264.py --build "$build" --json "$build/bench_h264.json" ${H264_ARGS:-} \
        2>"$build/bench_h264.log"; then
      tail -20 "$build/bench_h264.log"; echo "bench h264: failed"; status=1
    fi
    echo
    echo "(h264: $((SECONDS - t0)) s; progress in $build/bench_h264.log, every number in $build/bench_h264.json)"
  fi
fi
# ---- Publish -> screen latency in Chromium: bench/latency.js ----------------
# MJPEG <img> vs H.264 WebCodecs vs H.264 MSE, interleaved rounds against two
# sluice-stream servers (MJPEG and --codec h264) on loopback; needs Debian's
# chromium, node and tests/node's npm packages (playwright-core, ws). About
# 70 s. Selected by "latency" (and run by default). LATENCY_ARGS adds
# arguments, e.g. LATENCY_ARGS="--rounds 5 --duration 10".
if selected latency; then
  echo
  echo "## latency"
  echo
  if grep -q '^SL_BUILD_APPS:BOOL=OFF' "$build/CMakeCache.txt"; then
    echo "bench latency: needs sluice-stream (SL_BUILD_APPS is OFF in $build)"; status=1
  elif ! cmake --build "$build" --target sluice-stream >"$build/bench_latency.build.log" 2>&1; then
    tail -20 "$build/bench_latency.build.log"; echo "bench latency: build failed"; status=1
  elif ! command -v node >/dev/null || [ ! -d tests/node/node_modules/playwright-core ]; then
    echo "bench latency: needs node and (cd tests/node && npm ci)"; status=1
  else
    echo "Command: \`node bench/latency.js --build $build${LATENCY_ARGS:+ $LATENCY_ARGS}\`"
    echo
    t0=$SECONDS
    # shellcheck disable=SC2086
    if ! node bench/latency.js --build "$build" --json "$build/bench_latency.json" ${LATENCY_ARGS:-} \
        2>"$build/bench_latency.log"; then
      tail -20 "$build/bench_latency.log"; echo "bench latency: failed"; status=1
    fi
    echo
    echo "(latency: $((SECONDS - t0)) s; per-round numbers in $build/bench_latency.log, every number in $build/bench_latency.json)"
  fi
fi

# ---- /mux vs one WebSocket per stream: bench/mux.py ---------------------------
# 100 clients x 12 subscriptions over /mux against 1200 viewers of
# /streams/NAME/ws on one sluice-stream with 12 small test patterns
# (--demo-streams 11, 320x240, 15 fps): server CPU and library memory per
# subscription, interleaved rounds (about 60 s). Selected by "mux" (and run by
# default). MUX_ARGS adds arguments, e.g. MUX_ARGS="--rounds 5 --duration 6".
if selected mux; then
  echo
  echo "## mux"
  echo
  if grep -q '^SL_BUILD_APPS:BOOL=OFF' "$build/CMakeCache.txt"; then
    echo "bench mux: needs sluice-stream (SL_BUILD_APPS is OFF in $build)"; status=1
  elif ! cmake --build "$build" --target sluice-stream loadgen >"$build/bench_mux.build.log" 2>&1; then
    tail -20 "$build/bench_mux.build.log"; echo "bench mux: build failed"; status=1
  elif ! command -v python3 >/dev/null; then
    echo "bench mux: needs python3"; status=1
  else
    echo "Command: \`bench/mux.py --build $build${MUX_ARGS:+ $MUX_ARGS}\`"
    echo
    t0=$SECONDS
    # shellcheck disable=SC2086
    if ! python3 bench/mux.py --build "$build" --json "$build/bench_mux.json" ${MUX_ARGS:-} \
        2>"$build/bench_mux.log"; then
      tail -20 "$build/bench_mux.log"; echo "bench mux: failed"; status=1
    fi
    echo
    echo "(mux: $((SECONDS - t0)) s; progress in $build/bench_mux.log, every number in $build/bench_mux.json)"
  fi
fi
exit $status
