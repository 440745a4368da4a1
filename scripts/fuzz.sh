#!/usr/bin/env bash
# Runs a libFuzzer target over the trace or GGUF readers for N minutes (issue #21; not part of CI).
#
#   bash scripts/fuzz.sh trace|gguf [MINUTES=10]
#
# Builds ckv-fuzz with -sanitize=fuzzer,address in .build-fuzz/ and seeds the corpus with a small
# trace recorded from the bundled SmolLM2 (trace) or the first 64 KiB of its GGUF (gguf); run
# `bash scripts/setup.sh` first for the model. Findings land in .build-fuzz/findings/TARGET/;
# replay one without the sanitizers with `swift run -c release ckv-fuzz TARGET FILE`.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh trace|gguf [MINUTES]}
minutes=${2:-10}
case "$target" in trace|gguf) ;; *) echo "fuzz.sh: unknown target '$target' (known: trace, gguf)" >&2; exit 64 ;; esac
[[ "$minutes" =~ ^[0-9]+$ && "$minutes" -gt 0 ]] || { echo "fuzz.sh: MINUTES must be a positive whole number, got '$minutes'" >&2; exit 64; }
model=Models/SmolLM2-135M-Instruct.Q4_1.gguf
[[ -f "$model" ]] || { echo "fuzz.sh: $model is missing: run bash scripts/setup.sh first" >&2; exit 1; }

swift build -c release --product ckv-fuzz --build-path .build-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DCKV_LIBFUZZER
corpus=.build-fuzz/corpus/$target findings=.build-fuzz/findings/$target
mkdir -p "$corpus" "$findings"
if [[ -z "$(ls -A "$corpus")" ]]; then
    if [[ $target == trace ]]; then
        [[ -x .build/release/ckv-sim ]] || swift build -c release --product ckv-sim
        .build/release/ckv-sim record --model "$model" --lengths 56 --max-tokens 2 --out "$corpus/seed.ckvt" >/dev/null
    else
        head -c 65536 "$model" > "$corpus/seed.gguf"
    fi
fi
max_len=$(( $(ls -l "$corpus" | awk 'NR > 1 { if ($5 > m) m = $5 } END { print m }') + 4096 ))
CKV_FUZZ_TARGET=$target .build-fuzz/release/ckv-fuzz "$corpus" \
    -max_total_time=$(( minutes * 60 )) -max_len="$max_len" -timeout=20 -rss_limit_mb=2048 \
    -artifact_prefix="$findings/" -print_final_stats=1
