"""Records a task's full-cache run of a Hugging Face model as a .ckvt trace: exactly what ckv-sim's
Swift recorder records (Docs/trace-format.md, Sources/Recorder/Recorder.swift), from a forward pass
whose attention goes through the function below.

The attention function takes the place of the model's own (transformers' attention interface): it
computes each layer's attention itself, in chunks of query rows against all keys, so it sees the
post-softmax weights without ever holding a prompt × prompt matrix — a chunk of rows is complete
(every key it may attend to), so no running softmax is needed and the sums are exact. From those
rows it adds up, per (layer, query head), the window sums and squared sums over the prompt's last w
queries and the attention accumulated over every prompt query; it keeps the last prompt query's row
(decode step 0) and each decode step's row on the global layers.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from . import __version__, ckvt, ggml
from .tasks import Task, TasksFile

ATTENTION = "ckv_record"
# Model types whose attention calls transformers' attention interface with (query, key, value)
# after RoPE, as this recorder needs; others are refused rather than recorded wrongly.
SUPPORTED = ("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma2", "gemma3", "gemma3_text", "phi3", "granite", "olmo2")
STOP_MARKERS = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|end_of_text|>")


class RecordError(Exception):
    """Why a recording cannot run: one line for the user."""


class _Recording:
    """What the attention function fills during one task's run."""

    def __init__(self, n: int, layers: int, heads: int, windows: list, squared: list, global_layers: set, memory: int, on_layer):
        self.n, self.layers, self.heads = n, layers, heads
        self.windows = sorted(w for w in set(windows) | set(squared) if w <= n)
        self.sum_windows = [w for w in windows if w <= n]
        self.squared_windows = [w for w in squared if w <= n]
        self.global_layers = global_layers
        self.memory = memory
        self.on_layer = on_layer  # called with (layer, statistics) when a layer's prefill is done
        self.phase = "prefill"
        self.first = 0  # position of the forward's first query
        self.step = 0
        self.rows: dict = {}  # step -> layer -> [heads, keys] float32 numpy
        self.seen: set = set()
        self.ggml = False  # round the attention's operands as ggml does (`ggml.py`)


_ACTIVE: _Recording | None = None


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, softcap=None, **kwargs):
    """transformers attention-interface function: query [1, H, q, d], key/value [1, KV, k, d] after
    RoPE and the cache update. Returns ([1, q, H, d], None)."""
    rec = _ACTIVE
    if rec is None:
        raise RuntimeError("ckv_record attention called outside a recording")
    if query.shape[0] != 1:
        raise RecordError("the recorder runs one sequence at a time (batch 1)")
    _, H, q, d = query.shape
    KV, k = key.shape[1], key.shape[2]
    G = H // KV
    layer = module.layer_idx
    rec.seen.add(layer)
    if scaling is None:
        scaling = 1.0 / math.sqrt(d)
    window = getattr(module, "sliding_window", None)
    cap = softcap or getattr(module.config, "attn_logit_softcapping", None)
    device = query.device
    last = rec.first + q - 1  # position of the forward's last query
    key_first = last + 1 - k  # a sliding-window cache may hold only the newest keys
    out = torch.empty((KV, G, q, value.shape[-1]), dtype=value.dtype, device=device)
    prefill = rec.phase == "prefill"
    is_global = layer in rec.global_layers
    n = rec.n
    if prefill:
        acc = torch.zeros((H, n), dtype=torch.float32, device=device)
        sums = {w: torch.zeros((H, n), dtype=torch.float32, device=device) for w in rec.windows}
        squares = {w: torch.zeros((H, n), dtype=torch.float32, device=device) for w in rec.windows}
    # Rows per chunk: the chunk's scores (H × rows × keys floats) within the memory asked for.
    rows_per_chunk = max(1, min(q, rec.memory // max(1, 4 * 3 * H * k)))
    for c0 in range(0, q, rows_per_chunk):
        c1 = min(q, c0 + rows_per_chunk)
        C = c1 - c0
        hi = min(k, rec.first + c1 - 1 - key_first + 1)  # keys up to the chunk's last query
        qs = query[0, :, c0:c1].float().reshape(KV, G * C, d)
        ks = key[0, :, :hi].float()
        if rec.ggml:
            qs, ks = ggml.half(qs), ggml.half(ks)
        s = torch.matmul(qs, ks.transpose(1, 2)) * scaling
        if cap:
            s = torch.tanh(s / cap) * cap
        s = s.view(KV, G, C, hi)
        qpos = torch.arange(rec.first + c0, rec.first + c1, device=device).view(1, 1, C, 1)
        kpos = torch.arange(key_first, key_first + hi, device=device).view(1, 1, 1, hi)
        masked = kpos > qpos
        if window is not None:
            masked = masked | (qpos - kpos >= window)
        s = s.masked_fill(masked, float("-inf"))
        p = torch.softmax(s, dim=-1)
        if rec.ggml:
            out[:, :, c0:c1] = torch.matmul(ggml.half(p), ggml.half(value[0, :, :hi].float()).unsqueeze(1))
        else:
            out[:, :, c0:c1] = torch.matmul(p.to(value.dtype), value[0, :, :hi].unsqueeze(1))
        if prefill:
            ph = p.reshape(H, C, hi)
            acc[:, :hi] += ph.sum(dim=1)
            for w in rec.windows:
                r0 = max(c0, n - w)  # rows of the chunk among the prompt's last w queries
                if r0 < c1:
                    part = ph[:, r0 - c0:]
                    sums[w][:, :hi] += part.sum(dim=1)
                    squares[w][:, :hi] += (part * part).sum(dim=1)
            if is_global and c0 <= n - 1 < c1:
                rec.rows.setdefault(0, {})[layer] = ph[:, n - 1 - c0, :n].cpu().numpy()
        elif is_global:
            rec.rows.setdefault(rec.step, {})[layer] = p.reshape(H, hi).cpu().numpy()
    if prefill:
        rec.on_layer(layer, {
            "accumulated": acc.cpu().numpy(),
            "sums": {w: sums[w].cpu().numpy() for w in rec.sum_windows},
            "squares": {w: squares[w].cpu().numpy() for w in rec.squared_windows},
        })
    return out.reshape(H, q, -1).transpose(0, 1).unsqueeze(0).contiguous(), None


def _no_mask(*args, **kwargs):
    """The attention function builds its own causal and sliding-window masks."""
    return None


def register():
    from transformers import AttentionInterface
    try:
        from transformers import AttentionMaskInterface
    except ImportError:  # older transformers
        from transformers.masking_utils import AttentionMaskInterface
    AttentionInterface.register(ATTENTION, _attention)
    AttentionMaskInterface.register(ATTENTION, _no_mask)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(16 << 20), b""):
            h.update(piece)
    return h.hexdigest()


def _gguf_facts(path: str) -> dict:
    """general.name and general.architecture of a GGUF file (as ckv-sim names its models)."""
    facts = {}
    try:
        from gguf import GGUFReader
        reader = GGUFReader(path)
        for key in ("general.name", "general.architecture"):
            field = reader.fields.get(key)
            if field is not None:
                facts[key] = bytes(field.parts[field.data[0]]).decode("utf-8")
    except Exception:  # the facts are names; without the gguf package the file name serves
        pass
    return facts


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    identity: dict
    device: str
    dtype: str
    numerics: str = "native"


def load_model(model_id: str, gguf_file: str | None, device: str, dtype: str, check=None, numerics: str = "native") -> LoadedModel:
    """Loads a model and its tokenizer with the recording attention, and names it as a trace does.
    `check(tokenizer, context_length)` runs before the weights load (it may raise RecordError).
    `numerics` "ggml" rounds as llama.cpp's CPU backend does for the GGUF (`ggml.py`: the CPU check
    against ckv-sim's engine); "native" is the framework's own arithmetic."""
    if numerics not in ("native", "ggml"):
        raise RecordError(f"--numerics {numerics}: not one of native, ggml")
    if numerics == "ggml" and (not gguf_file or device != "cpu" or dtype != "fp32"):
        raise RecordError("--numerics ggml emulates llama.cpp's CPU arithmetic for a GGUF: it needs --gguf-file, --device cpu and --dtype fp32")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    register()
    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    local = os.path.isdir(model_id)
    if gguf_file and not os.path.isfile(os.path.join(model_id, gguf_file) if local else gguf_file):
        raise RecordError(f"--gguf-file {gguf_file}: no such file{' in ' + model_id if local else ''}")
    try:
        config = AutoConfig.from_pretrained(model_id, **kwargs)
    except Exception as e:
        raise RecordError(f"{model_id}: cannot read the model's configuration ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    model_type = getattr(config, "model_type", "?")
    if model_type not in SUPPORTED:
        raise RecordError(f"{model_id}: model type '{model_type}' is not one the recorder knows (known: {', '.join(SUPPORTED)})")
    text = getattr(config, "text_config", None) or config
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_id, **kwargs)
    except Exception as e:
        raise RecordError(f"{model_id}: cannot load the tokenizer ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if check is not None:
        check(tokenizer, int(getattr(text, "max_position_embeddings", 0) or 0))  # before the slow part
    # transformers' GGUF conversion bar (tqdm reads TQDM_DISABLE only when it is imported).
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_loading
        bar = getattr(gguf_loading, "tqdm", None)
    except ImportError:
        gguf_loading, bar = None, None
    if bar is not None:
        gguf_loading.tqdm = lambda *args, **kw: bar(*args, **{**kw, "disable": True})
    try:
        model = AutoModelForCausalLM.from_pretrained(model_id, dtype=torch_dtype, attn_implementation=ATTENTION, **kwargs)
    except Exception as e:
        raise RecordError(f"{model_id}: cannot load the model ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    finally:
        if bar is not None:
            gguf_loading.tqdm = bar
    model = model.to(device).eval()
    if numerics == "ggml":
        try:
            ggml.emulate(model, os.path.join(model_id, gguf_file) if local else gguf_file)
        except ggml.NumericsError as e:
            raise RecordError(str(e)) from None
    layers = text.num_hidden_layers
    heads = text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    attention = [m for m in model.modules() if hasattr(m, "layer_idx") and hasattr(m, "q_proj")]
    windows = {m.layer_idx: getattr(m, "sliding_window", None) for m in attention}
    if len(windows) != layers:
        raise RecordError(f"{model_id}: found {len(windows)} attention modules for {layers} layers; this architecture is not one the recorder can read")
    sliding = sorted({w for w in windows.values() if w})
    identity = {
        "name": None, "architecture": model_type, "layers": layers, "query_heads": heads, "kv_heads": kv_heads,
        "head_dim": head_dim, "context_length": int(getattr(text, "max_position_embeddings", 0) or 0),
    }
    if sliding:
        identity["sliding_window"] = sliding[0]
        identity["global_layers"] = [l for l in range(layers) if not windows[l]]
    if gguf_file:
        path = os.path.join(model_id, gguf_file) if local else gguf_file
        facts = _gguf_facts(path)
        identity["gguf_sha256"] = sha256_file(path)
        identity["name"] = facts.get("general.name") or os.path.splitext(os.path.basename(path))[0]
        identity["architecture"] = facts.get("general.architecture", model_type)
    if not local:
        identity["hf_id"] = model_id
        revision = getattr(config, "_commit_hash", None)
        if revision:
            identity["hf_revision"] = revision
    if identity["name"] is None:
        identity["name"] = model_id if not local else os.path.basename(os.path.normpath(model_id))
        if local:
            identity["hf_id"] = identity["name"]
    return LoadedModel(model, tokenizer, identity, device, dtype, numerics)


def _stops(tokenizer) -> set:
    vocab = tokenizer.get_vocab()
    out = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    out |= {vocab[m] for m in STOP_MARKERS if m in vocab}
    return out


def check_fits(tasks: TasksFile, task: Task, n: int, context: int, name: str):
    if context and n + task.max_tokens > context:
        raise RecordError(f"{tasks.path}: task {task.id} ({n} tokens and {task.max_tokens} to generate) exceeds {name}'s context of {context} tokens")


def prompt_tokens(loaded, tasks: TasksFile, task: Task) -> tuple[list, tuple | None, tuple | None]:
    """The prompt's token ids and the needle and answer spans: the file's own when it carries this
    tokenizer's ids, else the prompt encoded here (rendered in the chat format if the file asks)."""
    tok = loaded.tokenizer
    name = loaded.identity["name"] if loaded.identity else "the model"
    if tasks.header["tokens_included"]:
        ids = list(task.tokens)
        if max(ids) >= len(tok):
            raise RecordError(f"{tasks.path}: task {task.id} holds token id {max(ids)}, beyond this model's {len(tok)}-token vocabulary: "
                              "its ids are another tokenizer's (export without --tokenizer-of, or with this model's GGUF)")
        decoded = tok.decode(ids, skip_special_tokens=True)
        if task.needle and task.needle.strip() not in decoded:
            raise RecordError(f"{tasks.path}: task {task.id}'s token ids do not decode to its prompt under this model's tokenizer: "
                              "they are another tokenizer's (export without --tokenizer-of, or with this model's GGUF)")
        span = lambda s: tuple(s) if s else None
        return ids, span(task.needle_span), span(task.answer_span)
    text = task.prompt
    if tasks.chat:
        if not getattr(tok, "chat_template", None):
            raise RecordError(f"{tasks.path} asks for the chat format; {name}'s tokenizer has no chat template")
        text = tok.apply_chat_template([{"role": "user", "content": task.prompt}], tokenize=False, add_generation_prompt=True)
    enc = tok(text, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]

    def token_range(c0, c1):
        first = next(i for i, (a, b) in enumerate(offsets) if b > c0)
        last = next(i for i, (a, b) in enumerate(offsets) if b >= c1)
        return first, last + 1

    needle = answer = None
    if task.needle:
        at = text.find(task.needle)
        inside = task.needle.find(task.answer)
        if at < 0 or inside < 0:
            raise RecordError(f"{tasks.path}: task {task.id}'s needle is not in its prompt")
        needle = token_range(at, at + len(task.needle))
        answer = token_range(at + inside, at + inside + len(task.answer))
    return ids, needle, answer


def record_task(loaded: LoadedModel, tasks: TasksFile, task: Task, out: str, frame_size: int = 1 << 20,
                attention_memory: int = 1 << 30, presses=(), budgets=(), progress=None, prompt=None) -> dict:
    """Records `task` to `out`; returns a summary. `progress(done, total)` counts tokens; `prompt`
    is what `prompt_tokens` gives for the task, when the caller has it already."""
    global _ACTIVE
    model, tok, identity = loaded.model, loaded.tokenizer, loaded.identity
    ids, needle, answer = prompt or prompt_tokens(loaded, tasks, task)
    n, T = len(ids), task.max_tokens
    check_fits(tasks, task, n, identity["context_length"], identity["name"])
    layers, heads, kv_heads = identity["layers"], identity["query_heads"], identity["kv_heads"]
    global_layers = set(identity.get("global_layers", range(layers)))
    import transformers
    header = {
        "model": identity,
        "task": {"kind": task.kind, "seed": task.seed, "prompt_tokens": n, "parameters": {
            "depth": repr(float(task.depth)), "answer": ",".join(task.expected), "max_tokens": str(T), "task_id": task.id,
            "windows": ",".join(map(str, tasks.windows)), "squared_windows": ",".join(map(str, tasks.squared_windows)),
        }},
        "producer": f"ckv-record {__version__}",
        "notes": {"engine": f"Hugging Face transformers {transformers.__version__}, torch {torch.__version__}, {loaded.dtype} on {loaded.device}"
                            + (", ggml's roundings emulated (Q8 activations, binary16 attention)" if loaded.numerics == "ggml" else "") + ", greedy, full cache",
                  "tasks": f"{os.path.basename(tasks.path)} ({tasks.header['producer']})"},
    }
    writer = ckvt.TraceWriter(out, header, frame_size=frame_size)
    try:
        writer.tokens(ckvt.PROMPT, ids)
        if needle and answer:
            writer.span(ckvt.NEEDLE, *needle)
            writer.span(ckvt.ANSWER, *answer)
        writer.flush()

        def on_layer(layer, stats):
            for h in range(heads):
                for w in tasks.windows:
                    if w in stats["sums"]:
                        writer.head_statistic(ckvt.WINDOW_SUM, layer, h, w, stats["sums"][w][h])
                for w in tasks.squared_windows:
                    if w in stats["squares"]:
                        writer.head_statistic(ckvt.WINDOW_SQUARED_SUM, layer, h, w, stats["squares"][w][h])
                writer.head_statistic(ckvt.ACCUMULATED, layer, h, 0, stats["accumulated"][h])
            writer.flush()

        rec = _Recording(n, layers, heads, tasks.windows, tasks.squared_windows, global_layers, attention_memory, on_layer)
        rec.ggml = loaded.numerics == "ggml"
        stops = _stops(tok)
        device = loaded.device
        _ACTIVE = rec
        try:
            with torch.no_grad():
                from transformers import DynamicCache
                cache = DynamicCache()
                result = model(input_ids=torch.tensor([ids], device=device), **cache_argument(model, cache), use_cache=True, logits_to_keep=1)
                if rec.seen != set(range(layers)):
                    raise RecordError(f"{identity['name']}: {layers - len(rec.seen)} of {layers} layers did not use the recording attention; this model cannot be recorded")
                if progress:
                    progress(n, n + T)

                def write_rows(step):
                    for layer in sorted(rec.rows.get(step, {})):
                        for h, row in enumerate(rec.rows[step][layer]):
                            writer.decode_attention(layer, h, step, row)
                    rec.rows.pop(step, None)
                    writer.flush()

                write_rows(0)

                def before(count):
                    if progress:
                        progress(n + count, n + T)
                    # The forward about to run is decode step `count`: the query at n − 1 + count.
                    rec.phase, rec.first, rec.step = "decode", n + count - 1, count

                generated = greedy(model, device, cache, result.logits[0, -1], stops, T, before=before, after=write_rows)
                if progress:
                    progress(n + len(generated), n + T)
        finally:
            _ACTIVE = None
        writer.tokens(ckvt.GENERATED, generated)
        for layer in sorted(global_layers):
            values = _cache_values(cache, layer)
            for g in range(kv_heads):
                writer.cache_vectors(ckvt.VALUE, layer, g, values[g])
        text = tok.decode(generated, skip_special_tokens=True)
        correct = task.score(text) == 1
        writer.annotation("outcome.full", _outcome(correct, generated, text))
        writer.flush()
        runs = []
        if presses:
            from . import presses as press_runs
            for label, value in press_runs.run(loaded, ids, task, presses, budgets):
                writer.annotation(f"outcome.{label}", value)
                writer.flush()
                runs.append(label)
        summary = writer.finish()
    except BaseException:
        writer.close()
        raise
    return {"path": out, "prompt_tokens": n, "generated": generated, "text": text, "correct": correct, "runs": runs, **summary}


def greedy(model, device, cache, logits, stops, limit: int, before=None, after=None) -> list:
    """Greedy decoding from `logits` (the prompt's last position) over `cache`: up to `limit`
    tokens, stopping after an end-of-generation token, as ckv-sim's engine does (the last token is
    never fed back). `before(count)` runs before the forward that follows the count-th token,
    `after(count)` after it."""
    generated = []
    while True:
        nxt = int(torch.argmax(logits))
        generated.append(nxt)
        if nxt in stops or len(generated) == limit:
            return generated
        if before:
            before(len(generated))
        result = model(input_ids=torch.tensor([[nxt]], device=device), **cache_argument(model, cache), use_cache=True)
        if after:
            after(len(generated))
        logits = result.logits[0, -1]


def cache_argument(model, cache) -> dict:
    """The forward's cache keyword: `cache` from transformers 5.x on, `past_key_values` before."""
    import inspect
    return {"cache": cache} if "cache" in inspect.signature(model.forward).parameters else {"past_key_values": cache}


def _cache_values(cache, layer: int) -> np.ndarray:
    """The cache's values of one layer as [KV heads, positions, dim] float32."""
    if hasattr(cache, "layers"):
        v = cache.layers[layer].values
    else:  # transformers before 4.56
        v = cache.value_cache[layer]
    return v[0].float().cpu().numpy()


def _outcome(correct: bool, tokens: list, text: str, **extra) -> str:
    """RunOutcome's annotation value: {"correct", "text", "tokens"} (and what else the run names)."""
    return json.dumps({"correct": correct, "text": text, "tokens": tokens, **extra}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
