#!/usr/bin/env bash
# Prints the -target-cpu the engine's kernels are built for on this machine: "haswell" (AVX2 +
# FMA) when /proc/cpuinfo has both, else nothing (a baseline x86-64 build). Sourced by setup.sh
# and test.sh, which export it as CKV_TARGET_CPU for Package.swift.
if [ "$(uname -m)" = x86_64 ] && grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo 2>/dev/null; then
  echo haswell
fi
