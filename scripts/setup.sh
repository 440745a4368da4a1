#!/usr/bin/env bash
# Sets up a fresh Debian machine with Swift 6.3 for ckv-sim, idempotently:
#   1. system packages: libzstd-dev (the zstd binding), zlib1g-dev (frame CRCs), zstd (the CLI
#      `ckv-sim bench trace` compares against), pkg-config;
#   2. the two reference models from PyPI into Models/ (ignored by git), sha256-verified;
#   3. a release build of ckv-sim (skip with CKV_SKIP_BUILD=1).
# Safe to run again: each step does nothing when its result is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
export CKV_TARGET_CPU="${CKV_TARGET_CPU-$(bash scripts/cpu.sh)}"

missing=()
for pkg in libzstd-dev zlib1g-dev zstd pkg-config; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

bash scripts/install-models.sh

if [ "${CKV_SKIP_BUILD:-0}" != 1 ]; then
  echo "setup: building ckv-sim (release)" >&2
  swift build -c release --product ckv-sim 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' >&2 || true
  test -x .build/release/ckv-sim || { echo "setup: the release build failed" >&2; exit 1; }
fi
