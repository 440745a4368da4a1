#!/usr/bin/env bash
# Development only (needs ../shared/tools/llamacpp-oracle, never used by the tests or CI):
# prefill and decode tok/s of `ckv-sim bench engine` next to llama.cpp on the same GGUF and
# prompt length, 2 threads, run back to back; prints the Markdown rows of Docs/engine.md.
#   scripts/dev/engine-vs-llamacpp.sh [MODEL.gguf …]   (default: both reference models; 1k and 4k)
set -euo pipefail
cd "$(dirname "$0")/../.."
oracle=${LLAMACPP_ORACLE:-../shared/tools/llamacpp-oracle}
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(Models/SmolLM2-135M-Instruct.Q4_1.gguf Models/gemma-3-270m-q4_k_m.gguf)
swift build -c release --product ckv-sim >/dev/null
echo "| model | prompt | ckv-sim prefill | llama.cpp prefill | ratio | ckv-sim decode | llama.cpp decode | ratio | ckv-sim peak RSS |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for m in "${models[@]}"; do
  for n in 1024 4096; do
    ours=$(.build/release/ckv-sim bench engine --model "$m" --context "$n" --format json)
    theirs=$("$oracle" speed "$m" "$n" 2>/dev/null | tail -1)
    python3 - "$m" "$n" "$ours" "$theirs" <<'PY'
import json, sys, os
m, n, a, b = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
print(f"| {os.path.basename(m)} | {n} | {a['prefill_tok_s']:.1f} | {b['prefill_tok_s']:.1f} | **{a['prefill_tok_s']/b['prefill_tok_s']:.2f}×** "
      f"| {a['decode_tok_s']:.1f} | {b['decode_tok_s']:.1f} | **{a['decode_tok_s']/b['decode_tok_s']:.2f}×** | {a['peak_rss_bytes']/2**20:.1f} MiB |")
PY
  done
done
