#!/usr/bin/env bash
# Sets up (system packages, models; no separate release build) and runs the whole test suite,
# optimised: the integration tests run real models, far too slow in a debug build.
set -euo pipefail
cd "$(dirname "$0")/.."
CKV_SKIP_BUILD=1 bash scripts/setup.sh
swift test -c release -Xswiftc -enable-testing "$@"
