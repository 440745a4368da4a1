#!/usr/bin/env bash
# Writes the committed CompressKV profiles in Profiles/ for both reference models: Semantic
# Retrieval Heads (`ckv-sim heads identify`, 3 needles per length and depth) and layer eviction
# errors (`ckv-sim layers estimate`, 8 tasks each). SmolLM2 is probed up to its 8k context (36
# probes: 85 minutes on 2 cores shared with other jobs); Gemma up to its 32k context (27 probes: 42
# minutes on 2 idle cores). `GEMMA_QUICK=1` probes Gemma at 512 to 2k only (45 probes, a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bin=.build/release/ckv-sim
mkdir -p Profiles
smollm2=Models/SmolLM2-135M-Instruct.Q4_1.gguf gemma=Models/gemma-3-270m-q4_k_m.gguf
# Longest lengths leave room for the 50 decoded tokens within the context (8,192 and 32,768).
$bin heads identify --model $smollm2 --lengths 1k,2k,4k,8000 --depths 0,0.5,1 --out Profiles/smollm2-135m-instruct.json
$bin layers estimate --model $smollm2 --profile Profiles/smollm2-135m-instruct.json
if [ "${GEMMA_QUICK:-0}" = 1 ]; then
  $bin heads identify --model $gemma --lengths 512,1k,2k --depths 0,0.25,0.5,0.75,1 --out Profiles/gemma3-270m.json
else
  $bin heads identify --model $gemma --lengths 1k,8k,32000 --depths 0,0.5,1 --out Profiles/gemma3-270m.json
fi
$bin layers estimate --model $gemma --profile Profiles/gemma3-270m.json
