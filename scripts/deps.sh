#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build, run and test sluice,
# or prints the exact command and stops when it cannot install.
#   scripts/deps.sh          everything (build, tests, benchmarks)
#   scripts/deps.sh run      only what `make run` needs
set -euo pipefail
cd "$(dirname "$0")/.."

want=${1:-all}
pkgs_run=(build-essential cmake pkg-config python3 libturbojpeg0-dev libssl-dev libopenh264-dev)
pkgs_test=(clang libclang-rt-14-dev curl wrk nginx-light haproxy ffmpeg gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good python3 python3-prometheus-client
  valgrind qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross chromium nodejs npm
  procps iproute2 binutils openssl)

pkgs=("${pkgs_run[@]}")
[ "$want" = run ] || pkgs+=("${pkgs_test[@]}")

# Node.js may come from elsewhere than Debian (it ships its own npm): a
# working node and npm on PATH are enough, and asking apt for Debian's npm
# next to another nodejs would only conflict.
have_cmd() { command -v "$1" >/dev/null 2>&1; }
missing=()
for p in "${pkgs[@]}"; do
  case "$p" in
    nodejs) have_cmd node && continue ;;
    npm) have_cmd npm && continue ;;
  esac
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$st" in *"install ok installed"*) ;; *) missing+=("$p") ;; esac
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then
    sudo=""
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo="sudo"
  else
    echo "deps: missing packages and no root. Run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  if ! $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/sluice-apt.log 2>&1; then
    echo "deps: apt-get install failed (log: /tmp/sluice-apt.log). Run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# npm packages for the interop and browser tests, pinned in tests/node.
if [ "$want" != run ] && [ -f tests/node/package.json ]; then
  if [ ! -d tests/node/node_modules ] || [ tests/node/package.json -nt tests/node/node_modules ]; then
    echo "deps: npm install in tests/node"
    (cd tests/node && npm install --no-audit --no-fund --loglevel=error) || {
      echo "deps: npm install failed; run: (cd tests/node && npm install)" >&2
      exit 1
    }
    touch tests/node/node_modules
  fi
fi
exit 0
