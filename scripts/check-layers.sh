#!/usr/bin/env bash
# The layer check: fails when a file of src/ reaches up to a higher layer,
# through an #include "…" or through a symbol its object file leaves
# undefined, and when a protocol, media or hub file names a connection
# flag (SL_F_*). The layers come from the table in docs/architecture.md,
# section "Layers".
#   scripts/check-layers.sh [--objdir DIR] [ROOT]
# ROOT (default: this checkout) holds src/, include/ and docs/. Without
# --objdir every src/*.c is compiled with -c into a temporary directory;
# with it, DIR/src/<file>.c.o are used (build/rel/CMakeFiles/sluice_obj.dir).
# Environment: CC (default cc).
set -uo pipefail
objdir=
if [ "${1:-}" = --objdir ]; then objdir=$2; shift 2; fi
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
doc=$root/docs/architecture.md
cc=${CC:-cc}
[ -f "$doc" ] || { echo "check-layers: $doc is missing"; exit 2; }

# name -> layer, from the table rows of the "Layers" section.
declare -A layer
while read -r num names; do
  for n in $names; do layer[$n]=$num; done
done < <(awk '/^## /{on = ($0 ~ /^## Layers/)} on && /^\| *[0-9]+ *\|/ {
  split($0, f, "|"); gsub(/ /, "", f[2]); print f[2], f[4] }' "$doc")
[ ${#layer[@]} -gt 0 ] || { echo "check-layers: no layer table in $doc"; exit 2; }

key_of() { # src/foo.c -> foo, src/foo.h -> foo.h
  local b; b=$(basename "$1"); [ "${b%.c}" != "$b" ] && b=${b%.c}; echo "$b"; }

bad=0
report() { echo "check-layers: $*"; bad=$((bad + 1)); }

# Every file must have a layer.
for f in "$root"/src/*.c "$root"/src/*.h; do
  k=$(key_of "$f")
  [ -n "${layer[$k]:-}" ] || report "$(basename "$f") is in no layer (add it to the table in docs/architecture.md)"
done

# 1. #include "x.h": x.h's layer must not be above the includer's.
for f in "$root"/src/*.c "$root"/src/*.h; do
  k=$(key_of "$f"); mine=${layer[$k]:-}
  [ -n "$mine" ] || continue
  while IFS=: read -r line inc; do
    [ "$inc" = sluice.h ] && continue
    theirs=${layer[$inc]:-}
    if [ -z "$theirs" ]; then
      report "$(basename "$f"):$line includes $inc, which is in no layer"
    elif [ "$theirs" -gt "$mine" ]; then
      report "$(basename "$f"):$line (layer $mine) includes $inc (layer $theirs)"
    fi
  done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
           sed -E 's/^([0-9]+):.*"([^"]+)".*/\1:\2/')
done

# 2. Symbols: who defines each sl_/sl__ symbol, who leaves it undefined.
tmp=
if [ -z "$objdir" ]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  objdir=$tmp
  mkdir -p "$tmp/src"
  flags="-std=c11 -D_GNU_SOURCE -O0 -w -I$root/include -I$root/src"
  ls "$root"/src/*.c | xargs -P2 -I{} sh -c \
    'f={}; b=$(basename "$f"); '"$cc"' '"$flags"' -c "$f" -o '"$tmp"'/src/"$b".o 2>'"$tmp"'/src/"$b".err ||
     { echo "check-layers: cannot compile $b:"; head -5 '"$tmp"'/src/"$b".err; }'
fi
declare -A def
for o in "$objdir"/src/*.c.o; do
  [ -f "$o" ] || continue
  k=$(key_of "$(basename "${o%.o}")")
  while read -r sym; do def[$sym]=$k; done < <(nm --defined-only -g "$o" | awk '$3 ~ /^sl_/ {print $3}')
done
[ ${#def[@]} -gt 0 ] || { echo "check-layers: no object files in $objdir/src"; exit 2; }
for o in "$objdir"/src/*.c.o; do
  [ -f "$o" ] || continue
  k=$(key_of "$(basename "${o%.o}")"); mine=${layer[$k]:-}
  [ -n "$mine" ] || continue
  while read -r sym; do
    d=${def[$sym]:-}
    [ -n "$d" ] || continue # the other TLS backend, or outside src/
    theirs=${layer[$d]:-0}
    if [ "$theirs" -gt "$mine" ]; then
      report "$k.c (layer $mine) uses $sym of $d.c (layer $theirs)"
    fi
  done < <(nm -u "$o" | awk '$2 ~ /^sl_/ {print $2}')
done

# 3. The lifecycle has one owner: above the transport (layers 3 and up), no
# file names a connection flag (SL_F_*); it asks the core through the
# sl__conn_* queries of internal.h (sl__conn_closing, sl__conn_paused, ...).
for f in "$root"/src/*.c "$root"/src/*.h; do
  k=$(key_of "$f"); mine=${layer[$k]:-}
  [ -n "$mine" ] && [ "$mine" -ge 3 ] || continue
  while IFS=: read -r line name; do
    report "$(basename "$f"):$line (layer $mine) reads the connection flag $name (use the sl__conn_* queries of internal.h)"
  done < <(grep -noE '\bSL_F_[A-Z0-9_]+' "$f")
done

if [ $bad -gt 0 ]; then
  echo "check-layers: $bad violation(s); see docs/architecture.md, \"Layers\""
  exit 1
fi
echo "check-layers: ok (${#layer[@]} files in layers, ${#def[@]} symbols)"
