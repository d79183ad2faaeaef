#!/usr/bin/env bash
# Builds every fuzz/fuzz_<name>.c as a libFuzzer binary with ASan + UBSan and
# runs each for SECONDS (default $FUZZ_SECONDS, else 60). Exits nonzero when
# a target fails to build, crashes, leaks, hangs or breaks an invariant.
#
#   scripts/fuzz.sh [SECONDS]
#
# Each target is linked against a static, instrumented library made of every
# src/*.c plus the pure app modules below, so a new fuzz/fuzz_<name>.c needs
# no edit here: the linker takes the objects it references.
# The run starts from a copy of fuzz/corpus/<name>/ and fuzz/regress/<name>/
# in the build directory; nothing is written into the repository. Crash,
# leak and timeout inputs, with the log, land in $FUZZ_ARTIFACTS.
#
# Environment: CC (clang), FUZZ_JOBS (targets run at once, default nproc),
# FUZZ_BUILD (build/fuzz), FUZZ_ARTIFACTS (build/fuzz-artifacts),
# FUZZ_TARGETS (space-separated names to run, default all).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

secs=${1:-${FUZZ_SECONDS:-60}}
cc=${CC:-clang}
case "$cc" in *clang*) ;; *) cc=clang ;; esac # libFuzzer needs clang
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
bdir=${FUZZ_BUILD:-build/fuzz}
art=${FUZZ_ARTIFACTS:-build/fuzz-artifacts}
# Modules outside src/ that a fuzz target may exercise: pure parsers only
# (no libjpeg, no main).
app_sources=(apps/sluice-stream/mjpeg_split.c)

if ! command -v "$cc" >/dev/null; then
  echo "fuzz: $cc not found (scripts/deps.sh installs clang)" >&2
  exit 1
fi
mkdir -p "$bdir/obj" "$bdir/bin" "$bdir/work" "$art"
bdir=$(cd "$bdir" && pwd)
art=$(cd "$art" && pwd)

cflags=(-std=c11 -g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=all
  -D_GNU_SOURCE -I"$root/include" -I"$root/src" -I"$root/apps/sluice-stream")
san=address,undefined

# 1. The instrumented library, objects compiled in parallel. An object that
# fails to compile is reported; a target that needs it then fails to link.
t0=$SECONDS
rm -f "$bdir"/obj/*.o "$bdir/libsluice_fuzz.a"
srcs=()
for f in src/*.c "${app_sources[@]}"; do [ -f "$f" ] && srcs+=("$f"); done
export cc bdir
export cflags_s="${cflags[*]} -fsanitize=fuzzer-no-link,$san"
printf '%s\n' "${srcs[@]}" | xargs -P "$jobs" -I{} sh -c '
  o="$bdir/obj/$(echo "{}" | tr / _ | sed "s/\.c$/.o/")"
  $cc $cflags_s -c "{}" -o "$o" 2>"$o.log" || { echo "fuzz: {} does not compile:"; head -20 "$o.log"; }'
ar rcs "$bdir/libsluice_fuzz.a" "$bdir"/obj/*.o 2>/dev/null

# 2. One binary per target.
status=0
names=()
for f in fuzz/fuzz_*.c; do
  [ -f "$f" ] || continue
  n=${f#fuzz/fuzz_}; n=${n%.c}
  if [ -n "${FUZZ_TARGETS:-}" ] && ! [[ " $FUZZ_TARGETS " == *" $n "* ]]; then continue; fi
  if "$cc" "${cflags[@]}" -fsanitize=fuzzer,$san "$f" "$bdir/libsluice_fuzz.a" \
      -lpthread -o "$bdir/bin/fuzz_$n" 2>"$bdir/bin/fuzz_$n.log"; then
    names+=("$n")
  else
    echo "FAIL fuzz $n: does not build"; head -30 "$bdir/bin/fuzz_$n.log"; status=1
  fi
done
echo "fuzz: built ${#names[@]} target(s) in $((SECONDS - t0)) s; running each for $secs s, $jobs at a time"

# 3. Run. Each job leaves its exit code in $work/rc.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
run_one() { # name
  local n=$1 work=$bdir/work/$1
  rm -rf "$work"; mkdir -p "$work/corpus"
  for kind in corpus regress; do
    for s in fuzz/"$kind/$n"/*; do [ -f "$s" ] && cp "$s" "$work/corpus/$kind-${s##*/}"; done
  done
  local seeds; seeds=$(ls "$work/corpus" | wc -l)
  # -timeout: one input running for this long is a hang, reported as a crash.
  (cd "$work" && "$bdir/bin/fuzz_$n" -max_total_time="$secs" -timeout=25 \
     -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$art/$n-" \
     corpus >log 2>&1)
  local rc=$?
  echo "$rc $seeds" >"$work/rc"
}
t1=$SECONDS
for n in "${names[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  run_one "$n" &
done
wait

for n in "${names[@]}"; do
  work=$bdir/work/$n
  read -r rc seeds <"$work/rc" 2>/dev/null || { rc=99; seeds=0; }
  execs=$(grep -m1 -o 'number_of_executed_units: [0-9]*' "$work/log" | awk '{print $2}')
  now=$(ls "$work/corpus" | wc -l)
  if [ "$rc" = 0 ]; then
    printf 'ok   fuzz %-14s %10s runs, corpus %s -> %s\n' "$n" "${execs:-?}" "$seeds" "$now"
  else
    status=1
    cp "$work/log" "$art/$n.log"
    printf 'FAIL fuzz %-14s exit %s; log and inputs in %s/%s*\n' "$n" "$rc" "$art" "$n"
    grep -E -m1 -A25 'ERROR: |invariant failed|REQUIRE|runtime error|SUMMARY' "$work/log" | head -40
  fi
done
echo "fuzz: ${#names[@]} target(s), run phase $((SECONDS - t1)) s, total $((SECONDS - t0)) s"
exit $status
