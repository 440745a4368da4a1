"""llama.cpp's CPU numerics for a model transformers loaded from a GGUF, for the CPU check only.

transformers dequantises a GGUF's weights to fp32 and runs fp32 activations and an fp32 cache;
llama.cpp (and ckv-sim's engine, bit-identical to it) quantises each linear layer's input to Q8
blocks of 32 before the block product, and keeps the cache and the attention products in binary16.
Those differences, not the recorder's arithmetic, are what separates the two traces of the same
tokens. With `--numerics ggml` the recorder rounds where ggml rounds, so that the check against the
Swift engine tests the recorder's own sums at a tight tolerance:

- a linear layer's input: per block of 32, scale = amax / 127, q = round-half-even(x · 127 / amax),
  the block's value q · fp16(scale) (`quantize_row_q8_1`); a Q4_1 weight's min term takes the block
  sum as ggml stores it, fp16(scale · Σq), not Σ of the rounded values (`ggml_vec_dot_q4_1_q8_1`);
- a Q8_0 weight's input (the tied LM head) the same blocks without the sum (`quantize_row_q8_0`);
- attention: queries, keys and values in binary16, the softmax weights rounded to binary16 before
  they multiply the values (ggml's f16 cache and its mul_mat with f16 operands).

What stays apart: summation orders, RoPE angles (ggml multiplies θ step by step), exp, RMSNorm's
double sum. With the roundings above the first layer's statistics match the engine's to 1e-3;
later layers drift to 1–2 % (the source is not identified yet). This is a development aid, never
what a recording on a GPU should use.
"""
from __future__ import annotations

import numpy as np
import torch

# GGUF tensor names of one block's linear layers → the module path under the decoder layer.
_LINEARS = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}
_Q4_1_BLOCK = 20  # bytes: d (f16), m (f16), 16 bytes of nibbles for 32 weights


class NumericsError(Exception):
    """Why ggml numerics cannot be emulated for this model: one line for the user."""


def q8_blocks(x: torch.Tensor):
    """x [..., n] (n a multiple of 32) → (its Q8 values q · fp16(scale), fp16(scale · Σq) per block)."""
    shape = x.shape
    b = x.float().reshape(*shape[:-1], shape[-1] // 32, 32)
    amax = b.abs().amax(dim=-1, keepdim=True)
    scale = amax / 127.0
    inverse = 127.0 / amax
    inverse[amax == 0] = 0
    q = torch.round(b * inverse)  # half to even, as _mm256_round_ps(_MM_FROUND_TO_NEAREST_INT)
    d16 = scale.half().float()
    s16 = (scale[..., 0] * q.sum(dim=-1)).half().float()
    return (q * d16).reshape(shape), s16


def half(x: torch.Tensor) -> torch.Tensor:
    """x rounded to binary16 and back."""
    return x.half().float()


def _q4_1_mins(data: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """The per-block minimum m of a Q4_1 tensor's raw bytes, as [rows, columns / 32] float32."""
    blocks = np.ascontiguousarray(data).reshape(rows, columns // 32, _Q4_1_BLOCK)
    return blocks[:, :, 2:4].copy().view(np.float16)[..., 0].astype(np.float32)


def _unpermute_rows(rows: int, heads: int) -> np.ndarray:
    """The row order transformers gives a GGUF's Q or K projection (llama.cpp stores each head's
    rotary pairs interleaved; transformers restores the halves): HF row i is GGUF row perm[i]."""
    pair = rows // heads // 2
    return np.arange(rows).reshape(heads, pair, 2).swapaxes(1, 2).reshape(rows)


def emulate(model, gguf_path: str):
    """Makes `model`'s linear layers quantise their inputs as ggml does for this GGUF's weight types.
    Raises NumericsError for a weight type or architecture it does not know."""
    from gguf import GGUFReader
    reader = GGUFReader(gguf_path)
    tensors = {t.name: t for t in reader.tensors}
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    heads, kv_heads = config.num_attention_heads, getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    layers = model.model.layers
    for i, layer in enumerate(layers):
        for gguf_name, path in _LINEARS.items():
            tensor = tensors.get(f"blk.{i}.{gguf_name}.weight")
            if tensor is None:
                raise NumericsError(f"{gguf_path}: no blk.{i}.{gguf_name}.weight")
            module = layer.get_submodule(path)
            kind = tensor.tensor_type.name
            columns, rows = int(tensor.shape[0]), int(tensor.shape[1])
            if (rows, columns) != tuple(module.weight.shape):
                raise NumericsError(f"{gguf_path}: blk.{i}.{gguf_name} is {rows} × {columns}, the loaded layer {tuple(module.weight.shape)}")
            if kind == "Q4_1":
                mins = _q4_1_mins(tensor.data, rows, columns)
                if gguf_name in ("attn_q", "attn_k"):
                    mins = mins[_unpermute_rows(rows, heads if gguf_name == "attn_q" else kv_heads)]
                _q8_linear(module, torch.from_numpy(mins))
            elif kind == "Q8_0":
                _q8_linear(module, None)
            else:
                raise NumericsError(f"{gguf_path}: blk.{i}.{gguf_name} is {kind}; ggml numerics are emulated for Q4_1 and Q8_0 weights")
    head = tensors.get("output.weight") or tensors.get("token_embd.weight")
    if head is None or head.tensor_type.name != "Q8_0":
        raise NumericsError(f"{gguf_path}: the LM head is {head.tensor_type.name if head is not None else 'missing'}; emulated for Q8_0")
    _q8_linear(model.lm_head, None)


def _q8_linear(module, mins):
    """Replaces `module`'s forward: Q8 inputs, and for Q4_1 weights the min term with ggml's block sums."""
    weight, bias = module.weight, module.bias

    def forward(x):
        values, sums = q8_blocks(x)
        y = torch.matmul(values, weight.t())
        if mins is not None:
            # y used Σ(q · fp16(scale)) per block for the min term; ggml uses fp16(scale · Σq).
            rounded = values.reshape(*values.shape[:-1], -1, 32).sum(dim=-1)
            y = y + torch.matmul(sums - rounded, mins.t())
        return y + bias if bias is not None else y

    module.forward = forward
