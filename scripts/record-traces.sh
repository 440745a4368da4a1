#!/usr/bin/env bash
# Records the bundled traces in Traces/ (Traces/README.md lists the same commands).
# Each is a full-cache run of a generated task plus real compressed runs for every policy at
# the budgets the planner reads (continued from the same prefill; CompressKV with the committed
# head profiles in Profiles/). About a minute on 2 idle cores once built; the same commands
# write byte-identical files every time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bin=.build/release/ckv-sim
grid=(--evaluate all --budgets 64,128,256 --kv-fractions 5%,10%,25%,50% --max-tokens 8)
$bin record --model Models/SmolLM2-135M-Instruct.Q4_1.gguf --profile Profiles/smollm2-135m-instruct.json --task passkey --lengths 1k --depths 0.5 --seed 1 "${grid[@]}" --out Traces/smollm2-passkey-1k.ckvt
$bin record --model Models/SmolLM2-135M-Instruct.Q4_1.gguf --profile Profiles/smollm2-135m-instruct.json --task qa --lengths 1k --depths 0.25 --seed 1 "${grid[@]}" --out Traces/smollm2-qa-1k.ckvt
$bin record --model Models/gemma-3-270m-q4_k_m.gguf --profile Profiles/gemma3-270m.json --task passkey --lengths 2k --depths 0.5 --seed 1 "${grid[@]}" --out Traces/gemma3-passkey-2k.ckvt
$bin record --model Models/gemma-3-270m-q4_k_m.gguf --profile Profiles/gemma3-270m.json --task qa --lengths 2k --depths 0.5 --seed 2 "${grid[@]}" --out Traces/gemma3-qa-2k.ckvt
