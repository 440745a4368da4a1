#!/usr/bin/env bash
# Writes the committed CompressKV profiles in Profiles/ for both reference models: Semantic
# Retrieval Heads (`ckv-sim heads identify`, 45 probes each) and layer eviction errors
# (`ckv-sim layers estimate`, 8 tasks each). About 20 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bin=.build/release/ckv-sim
mkdir -p Profiles
$bin heads identify --model Models/SmolLM2-135M-Instruct.Q4_1.gguf --out Profiles/smollm2-135m-instruct.json
$bin layers estimate --model Models/SmolLM2-135M-Instruct.Q4_1.gguf --profile Profiles/smollm2-135m-instruct.json
$bin heads identify --model Models/gemma-3-270m-q4_k_m.gguf --out Profiles/gemma3-270m.json
$bin layers estimate --model Models/gemma-3-270m-q4_k_m.gguf --profile Profiles/gemma3-270m.json
