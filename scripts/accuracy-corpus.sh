#!/usr/bin/env bash
# Runs (or resumes) the accuracy corpus of both reference models into Accuracy/*.jsonl (issue #19):
# every task kind at every length, 30 seeded samples up to 8k tokens and 12 beyond, each prefilled
# once and continued for real by every policy at every kv-fraction. Interrupt it at any time: the
# same command resumes after the last finished sample. `ckv-sim accuracy Accuracy/*.jsonl` prints
# the curves. Each model's line prints the time its run took.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bin=.build/release/ckv-sim
mkdir -p Accuracy
fractions=2%,5%,10%,20%,50%
# The longest lengths leave room for the longest answer (48 tokens) inside each model's context.
$bin corpus run --model Models/SmolLM2-135M-Instruct.Q4_1.gguf --profile Profiles/smollm2-135m-instruct.json \
    --lengths 1k,2k,4k,8000 --kv-fractions $fractions --seed 1 --out Accuracy/smollm2-135m.jsonl
$bin corpus run --model Models/gemma-3-270m-q4_k_m.gguf --profile Profiles/gemma3-270m.json \
    --lengths 1k,2k,4k,8k,16k,32000 --kv-fractions $fractions --seed 1 --out Accuracy/gemma3-270m.jsonl
