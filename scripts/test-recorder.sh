#!/usr/bin/env bash
# Sets up the Hugging Face recorder's virtual environment (Recorders/huggingface/.venv: CPU torch,
# transformers, gguf, zstandard, pytest; ~1.3 GB, 2–4 minutes the first time, reused afterwards)
# and runs its tests against the ckv-sim binary (CKV_SIM, default .build/release/ckv-sim).
set -euo pipefail
cd "$(dirname "$0")/.."
here=Recorders/huggingface
venv=$here/.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import torch, transformers, gguf, zstandard, pytest, ckv_record' 2>/dev/null; then
  echo "test-recorder: installing torch, transformers, gguf, zstandard and pytest into $venv" >&2
  python3 -m venv "$venv"
  # The CPU build of torch: a wheel this machine carries, else PyPI's.
  wheel=$(ls /opt/wheels/torch-*+cpu-*.whl 2>/dev/null | head -1 || true)
  "$venv/bin/pip" install -q ${wheel:-torch} >&2
  "$venv/bin/pip" install -q -e "$here[test]" >&2
fi
export CKV_SIM="${CKV_SIM:-$PWD/.build/release/ckv-sim}"
[ -x "$CKV_SIM" ] || swift build -c release --product ckv-sim
cd "$here"
exec .venv/bin/python -m pytest -q "$@"
