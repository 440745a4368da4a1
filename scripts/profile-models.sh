#!/usr/bin/env bash
# Writes the committed CompressKV profiles in Profiles/ for both reference models: Semantic
# Retrieval Heads (`ckv-sim heads identify`: 3 needles at depths 0, 50 %, 100 % and lengths up to
# each model's context, SmolLM2 8k and Gemma 32k) and layer eviction errors (`ckv-sim layers
# estimate`, 8 tasks each). About 100 minutes on 2 cores (Gemma's nine 32k probes are most of it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bin=.build/release/ckv-sim
mkdir -p Profiles
smollm2=Models/SmolLM2-135M-Instruct.Q4_1.gguf gemma=Models/gemma-3-270m-q4_k_m.gguf
# Longest lengths leave room for the 50 decoded tokens within the context (8,192 and 32,768).
$bin heads identify --model $smollm2 --lengths 1k,2k,4k,8000 --depths 0,0.5,1 --out Profiles/smollm2-135m-instruct.json
$bin layers estimate --model $smollm2 --profile Profiles/smollm2-135m-instruct.json
$bin heads identify --model $gemma --lengths 1k,8k,32000 --depths 0,0.5,1 --out Profiles/gemma3-270m.json
$bin layers estimate --model $gemma --profile Profiles/gemma3-270m.json
