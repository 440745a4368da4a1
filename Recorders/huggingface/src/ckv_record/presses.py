"""Real compressed runs with NVIDIA kvpress's presses on the same model, recorded beside the
full-cache trace as `outcome.POLICY@BUDGET` annotations naming the press and its settings.

A budget b (tokens kept per layer per KV head) is kvpress's compression_ratio (n − b) / n, nudged
so that kvpress's int(n · (1 − ratio)) keeps b. kvpress compresses once, after the prompt: for the
policies ckv-sim runs continually (StreamingLLM) the label says so ("+once", as `ckv-sim record
--compress-once` labels its runs). Window and kernel follow kvpress's defaults unless named here.
"""
from __future__ import annotations

import json

import torch

# name → (ckv-sim policy, ckv-sim evicts during decode, factory(ratio) → press)
PRESSES = {
    "streamingllm": ("streamingllm", True, lambda kp, r: kp.StreamingLLMPress(compression_ratio=r, n_sink=4)),
    "snapkv": ("snapkv", False, lambda kp, r: kp.SnapKVPress(compression_ratio=r, window_size=32, kernel_size=7)),
    "pyramidkv": ("pyramidkv", False, lambda kp, r: kp.PyramidKVPress(compression_ratio=r, window_size=32, kernel_size=7)),
    "adakv": ("adakv", False, lambda kp, r: kp.AdaKVPress(press=kp.SnapKVPress(compression_ratio=r, window_size=32, kernel_size=7))),
    "chunkkv": ("chunkkv", False, lambda kp, r: kp.ChunkKVPress(press=kp.SnapKVPress(compression_ratio=r, window_size=32, kernel_size=7), chunk_length=10)),
}


def ratio(n: int, budget: int) -> float:
    r = (n - budget) / n
    while int(n * (1 - r)) < budget:
        r -= 1e-12
    return max(0.0, r)


def _describe(press) -> str:
    fields = {k: v for k, v in vars(press).items() if isinstance(v, (int, float, str, bool)) and not k.startswith("_")}
    inner = getattr(press, "press", None)
    return f"{type(press).__name__}({', '.join(f'{k}={v}' for k, v in sorted(fields.items()))}" + (f", press={_describe(inner)}" if inner is not None else "") + ")"


def run(loaded, ids, task, names, budgets):
    """Yields (label, annotation value) for every press × budget: a prefill under the press with
    the model's own (sdpa) attention, then greedy decoding from the compressed cache."""
    import kvpress as kp
    from transformers import DynamicCache
    from .record import _outcome, _stops, cache_argument, greedy
    model, tok = loaded.model, loaded.tokenizer
    n = len(ids)
    stops = _stops(tok)
    previous = model.config._attn_implementation
    model.set_attn_implementation("sdpa")
    try:
        for name in names:
            policy, continual, make = PRESSES[name]
            for b in budgets:
                if b >= n:
                    continue
                press = make(kp, ratio(n, b))
                cache = DynamicCache()
                with torch.no_grad():
                    with press(model):
                        out = model(input_ids=torch.tensor([ids], device=loaded.device), **cache_argument(model, cache), use_cache=True, logits_to_keep=1)
                    generated = greedy(model, loaded.device, cache, out.logits[0, -1], stops, task.max_tokens)
                text = tok.decode(generated, skip_special_tokens=True)
                label = f"{policy}@{b}" + ("+once" if continual else "")
                yield label, _outcome(task.score(text) == 1, generated, text, press=_describe(press))
    finally:
        model.set_attn_implementation(previous)
