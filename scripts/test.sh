#!/usr/bin/env bash
# Sets up (system packages, models; no separate release build) and runs the whole test suite,
# optimised: the integration tests run real models, far too slow in a debug build.
set -euo pipefail
cd "$(dirname "$0")/.."
export CKV_TARGET_CPU="${CKV_TARGET_CPU-$(bash scripts/cpu.sh)}"
CKV_SKIP_BUILD=1 bash scripts/setup.sh
swift test -c release -Xswiftc -enable-testing "$@"
