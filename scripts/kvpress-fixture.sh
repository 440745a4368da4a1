#!/usr/bin/env bash
# Regenerates Tests/AccuracyTests/Fixtures/kvpress-smollm2.json, the kvpress reference the engine's
# compressed runs are checked against (Tests/AccuracyTests/KVPressAgreementTests.swift,
# Docs/accuracy.md "Checked against kvpress"). Development only: it runs
# ../shared/tools/kvpress-oracle (NVIDIA kvpress on transformers, CPU, fp32), which installs its
# own ~6 GB environment the first time; nothing here is needed to build or test ckv-sim.
#
# 40 tasks (passkey, single-needle, multi-key, qa × 1k, 2k × 5 samples, seed 1, the SmolLM2
# tokenizer's ids from `ckv-sim tasks export`) × 5 presses × budgets 64 and 256, with this
# project's conventions where kvpress lets them be set: window 32, kernel 7, max pooling for
# SnapKV and the presses over it (Ada-KV α 0.2, ChunkKV chunks of 10), StreamingLLM 4 sinks.
# kvpress's PyramidKV fixes average pooling: it runs with --pool avg. About 15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
oracle=${KVPRESS_ORACLE:-../shared/tools/kvpress-oracle}
model=Models/SmolLM2-135M-Instruct.Q4_1.gguf
out=Tests/AccuracyTests/Fixtures/kvpress-smollm2.json
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
.build/release/ckv-sim tasks export --kinds passkey,single-needle,multi-key,qa --lengths 1k,2k --samples 5 --seed 1 \
  --tokenizer-of "$model" --out "$work/tasks.jsonl" >&2
python3 - "$work/tasks.jsonl" "$work/oracle-tasks.json" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
tasks = [json.loads(l) for l in lines[1:]]
json.dump([{"name": t["id"], "answer": t["answer"], "tokens": t["tokens"]} for t in tasks], open(sys.argv[2], "w"))
PY
"$oracle" "$model" "$work/oracle-tasks.json" "$work/max.json" --presses streamingllm,snapkv,adakv,chunkkv --budgets 64,256 \
  --window 32 --kernel 7 --pool max --max-new 12
"$oracle" "$model" "$work/oracle-tasks.json" "$work/avg.json" --presses pyramidkv --budgets 64,256 \
  --window 32 --kernel 7 --pool avg --max-new 12
python3 - "$work/max.json" "$work/avg.json" "$out" "$(( $(date +%s) - start ))" <<'PY'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
tasks = []
for x, y in zip(a["tasks"], b["tasks"]):
    assert x["name"] == y["name"] and x["full"]["tokens"] == y["full"]["tokens"]
    runs = {k: {"found": v["found"], "text": v["text"]} for k, v in sorted({**x["runs"], **y["runs"]}.items())}
    tasks.append({"name": x["name"], "n": x["n"], "answer": x["answer"], "full": {"found": x["full"]["found"], "text": x["full"]["text"]}, "runs": runs})
json.dump({
    "source": "kvpress " + a["kvpress"] + " through ../shared/tools/kvpress-oracle on SmolLM2-135M-Instruct.Q4_1.gguf "
              "(transformers, CPU, fp32 dequantised); regenerate with bash scripts/kvpress-fixture.sh",
    "plan": {"kinds": ["passkey", "single-needle", "multi-key", "qa"], "lengths": [1024, 2048], "samples": 5, "seed": 1},
    "presses": {"streamingllm": "StreamingLLMPress(n_sink=4)", "snapkv": "SnapKVPress with max pooling, window 32, kernel 7",
                "adakv": "AdaKVPress(alpha_safeguard=0.2) over SnapKV (max pooling, window 32, kernel 7)",
                "chunkkv": "ChunkKVPress(chunk_length=10) over SnapKV (max pooling, window 32, kernel 7)",
                "pyramidkv": "PyramidKVPress(window_size=32, kernel_size=7, beta=20), average pooling (kvpress's only)"},
    "budgets": [64, 256], "max_new": 12, "seconds": int(sys.argv[4]), "tasks": tasks,
}, open(sys.argv[3], "w"), indent=1, sort_keys=True)
print(f"wrote {sys.argv[3]}: {len(tasks)} tasks in {sys.argv[4]} s", file=sys.stderr)
PY
