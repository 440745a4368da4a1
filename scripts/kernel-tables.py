#!/usr/bin/env python3
"""Converts the subset of NVIDIA aiconfigurator-core's measured kernel tables that ckv-sim's cost
model reads into Sources/Hardware/KernelData/<gpu>.tsv (a development tool: ckv-sim never imports
the package, CI never runs this).

    pip download aiconfigurator-core==0.12.0 --no-deps -d /tmp/aic && pip install pandas pyarrow
    python3 scripts/kernel-tables.py /tmp/aic/aiconfigurator_core-0.12.0-*.whl

Per GPU it keeps, for vLLM: dense GEMM latency by (m, n, k) for bf16 and per-tensor fp8, context
(prefill) attention by (batch, prompt length, heads, KV heads) and generation (decode) attention by
(batch, KV length, heads, KV heads) at head_dim 128 with a bf16 cache, the fused mixture-of-experts
layer of the catalogue's MoE shapes by (dtype, TP, tokens), and the custom all-reduce by
(GPUs, bf16 elements) with CUDA graphs. Latencies are milliseconds as measured. The kernel kept
where the table has several is vLLM's default for that GPU generation (named in each file).
"""
import hashlib, io, os, sys, zipfile

import pandas as pd

# catalogue name → (aiconfigurator system, vLLM version, context kernel, generation kernel, GEMM kernels per dtype)
# Attention defaults: vLLM picks FlashAttention (FA2 on Ampere/Ada, FA3 on Hopper) and FlashInfer on
# Blackwell (vllm/platforms/cuda.py, get_attn_backend_cls).
GPUS = {
    "A100-80G": ("a100_sxm", "0.14.0", "vllm_flash_attn", "vllm_flash_attn", {"bfloat16": "vllm_default"}),
    "H100-80G-SXM": ("h100_sxm", "0.24.0", "vllm_flash_attn_fa3", "vllm_flash_attn_fa3",
                     {"bfloat16": "torch.nn.functional.linear", "fp8": "CutlassFP8ScaledMMLinearKernel"}),
    "H200": ("h200_sxm", "0.24.0", "vllm_flash_attn_fa3", "vllm_flash_attn_fa3",
             {"bfloat16": "torch.nn.functional.linear", "fp8": "CutlassFP8ScaledMMLinearKernel"}),
    "B200": ("b200_sxm", "0.24.0", "vllm_flashinfer_trtllmprefill", "vllm_flashinfer_trtllmdecode",
             {"bfloat16": "torch.nn.functional.linear", "fp8": "CutlassFP8ScaledMMLinearKernel"}),
    "L40S": ("l40s", "0.24.0", "vllm_flash_attn_fa2", "vllm_flash_attn_fa2",
             {"bfloat16": "torch.nn.functional.linear", "fp8": "CutlassFP8ScaledMMLinearKernel"}),
}
# GEMM grid kept: every n and k from 256 up (the catalogue's projections at TP ≤ 8), and these m.
GEMM_M = [1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 8192, 16384, 32768]
HEAD_DIM = 128
# The catalogue's mixture-of-experts layers as (hidden, expert intermediate, experts per token,
# experts): Qwen3-30B-A3B, Qwen3-235B-A22B, Mixtral-8x7B (Sources/Hardware/ModelSpec.swift).
MOE_SHAPES = [(2048, 768, 8, 128), (4096, 1536, 8, 128), (4096, 14336, 2, 8)]
# Fused-MoE dtypes kept: bf16, fp8 with one scale per tensor, fp8 with 128×128 block scales (the
# Qwen3 FP8 checkpoints). Routing: aiconfigurator's mildly skewed power law (every GPU has it).
MOE_DTYPES = {"bfloat16": "bf16", "fp8": "fp8", "fp8_block": "fp8_block"}
MOE_DISTRIBUTION = "power_law_1.01"


def main(wheel: str, out_dir: str) -> None:
    digest = hashlib.sha256(open(wheel, "rb").read()).hexdigest()
    z = zipfile.ZipFile(wheel)
    version = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA")).split("-")[1].split(".dist")[0]

    def table(system, kind, framework, fw_version, name):
        path = f"aiconfigurator_core/systems/data/{system}/{kind}/{framework}/{fw_version}/{name}"
        return pd.read_parquet(io.BytesIO(z.read(path)))

    for gpu, (system, vllm, ctx_kernel, gen_kernel, gemm_kernels) in GPUS.items():
        lines = [
            f"# {gpu}: kernel latencies (ms) measured by NVIDIA for aiconfigurator-core {version} (Apache-2.0),",
            f"# system '{system}', vLLM {vllm}; wheel sha256 {digest}. Written by scripts/kernel-tables.py.",
            f"meta\tgpu\t{gpu}",
            f"meta\tsource\taiconfigurator-core {version}",
            f"meta\tframework\tvllm {vllm}",
        ]
        g = table(system, "gemm", "vllm", vllm, "gemm_perf.parquet")
        lines.append(f"meta\tdevice\t{g.device.iloc[0]}")
        lines.append(f"meta\tkernels\tgemm {', '.join(f'{d}: {k}' for d, k in gemm_kernels.items())}; context attention {ctx_kernel}; generation attention {gen_kernel}; all-reduce vLLM custom (CUDA graphs)")
        for dtype, kernel in gemm_kernels.items():
            s = g[(g.gemm_dtype == dtype) & (g.kernel_source == kernel) & g.m.isin(GEMM_M) & (g.n >= 256) & (g.k >= 256)]
            s = s.groupby(["m", "n", "k"], as_index=False).latency.min().sort_values(["m", "n", "k"])
            lines += [f"gemm\t{'bf16' if dtype == 'bfloat16' else dtype}\t{r.m}\t{r.n}\t{r.k}\t{r.latency:.5g}" for r in s.itertuples()]
        for kind, kernel, file in [("context", ctx_kernel, "context_attention_perf.parquet"), ("generation", gen_kernel, "generation_attention_perf.parquet")]:
            a = table(system, "attention", "vllm", vllm, file)
            a = a[(a.kernel_source == kernel) & (a.head_dim == HEAD_DIM) & (a.attn_dtype == "bfloat16") & (a.kv_cache_dtype == "bfloat16")]
            if "window_size" in a.columns:
                a = a[a.window_size.isin([0, -1]) | a.window_size.isna()]
            a = a.assign(length=a.isl if kind == "context" else a.isl + a.step)
            a = a.groupby(["batch_size", "length", "num_heads", "num_key_value_heads"], as_index=False).latency.min()
            a = a.sort_values(["num_heads", "num_key_value_heads", "batch_size", "length"])
            lines += [f"{kind}\t{r.batch_size}\t{r.length}\t{r.num_heads}\t{r.num_key_value_heads}\t{r.latency:.5g}" for r in a.itertuples()]
        moe_path = f"aiconfigurator_core/systems/data/{system}/moe/vllm/{vllm}/moe_perf.parquet"
        if moe_path in z.namelist():
            m = pd.read_parquet(io.BytesIO(z.read(moe_path)))
            m = m[(m.moe_ep_size == 1) & (m.distribution == MOE_DISTRIBUTION) & m.moe_dtype.isin(list(MOE_DTYPES))]
            keep = pd.Series(False, index=m.index)
            for h, i, k, e in MOE_SHAPES:
                keep |= (m.hidden_size == h) & (m.inter_size == i) & (m.topk == k) & (m.num_experts == e)
            m = m[keep].groupby(["moe_dtype", "moe_tp_size", "hidden_size", "inter_size", "topk", "num_experts", "num_tokens"], as_index=False)
            m = m.agg(latency=("latency", "min"), kernel=("kernel_source", "first")).sort_values(["moe_dtype", "moe_tp_size", "hidden_size", "inter_size", "topk", "num_experts", "num_tokens"])
            kernels = sorted({f"{MOE_DTYPES[r.moe_dtype]}: {r.kernel}" for r in m.itertuples()})
            lines.append(f"meta\tmoe\t{'; '.join(kernels)} ({MOE_DISTRIBUTION} routing, no expert parallelism)")
            lines += [f"moe\t{MOE_DTYPES[r.moe_dtype]}\t{r.moe_tp_size}\t{r.hidden_size}\t{r.inter_size}\t{r.topk}\t{r.num_experts}\t{r.num_tokens}\t{r.latency:.5g}" for r in m.itertuples()]
        comm = [n for n in z.namelist() if n.startswith(f"aiconfigurator_core/systems/data/{system}/comm/vllm/") and n.endswith("custom_allreduce_perf.parquet")]
        if comm:
            path = sorted(comm, key=lambda p: [int(x) for x in p.split("/")[-2].split(".")])[-1]
            c = pd.read_parquet(io.BytesIO(z.read(path)))
            c = c[(c.backend == "vllm_graph") & (c.allreduce_dtype == "bfloat16")].sort_values(["num_gpus", "message_size"])
            lines.append(f"meta\tallreduce\t{path.split('/')[-2]}")
            lines += [f"allreduce\t{r.num_gpus}\t{r.message_size}\t{r.latency:.5g}" for r in c.itertuples()]
        with open(os.path.join(out_dir, f"{gpu}.tsv"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"{gpu}: {len(lines)} lines")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: kernel-tables.py aiconfigurator_core-VERSION-….whl")
    main(sys.argv[1], os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Sources", "Hardware", "KernelData"))
