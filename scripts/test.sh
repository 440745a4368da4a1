#!/usr/bin/env bash
# Sets up (system packages, models, headless Chromium, the recorder's Python environment; no separate release build) and runs the whole test suite,
# optimised: the integration tests run real models, far too slow in a debug build.
set -euo pipefail
cd "$(dirname "$0")/.."
export CKV_TARGET_CPU="${CKV_TARGET_CPU-$(bash scripts/cpu.sh)}"
CKV_SKIP_BUILD=1 bash scripts/setup.sh
# Headless Chromium for the HTML report test (it screenshots `plan --format html`).
if ! command -v chromium >/dev/null 2>&1; then
  echo "test: installing chromium (headless, for the HTML report test)" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
swift test -c release -Xswiftc -enable-testing "$@"
# The Hugging Face recorder (Python, pytest) against the binary the suite just built.
bash scripts/test-recorder.sh
