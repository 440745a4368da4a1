"""ckv-record: record .ckvt attention traces of a Hugging Face model on tasks from `ckv-sim tasks export`.

  ckv-record --model ID_OR_DIR [--gguf-file F] --tasks TASKS.jsonl --out DIR
             [--device cuda|cpu] [--dtype bf16|fp32] [--presses snapkv,… --budgets 64,256]
             [--numerics native|ggml]

One trace per task, DIR/<task id>.ckvt. Bad input is one line on stderr and exit status 1.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def _fail(message: str) -> "NoReturn":
    print(f"ckv-record: {message}", file=sys.stderr)
    sys.exit(1)


def parse(argv):
    p = argparse.ArgumentParser(prog="ckv-record", description="Record ckv-sim attention traces (.ckvt) of a Hugging Face model.")
    p.add_argument("--model", required=True, help="Hugging Face model id, or a local directory (with --gguf-file: the directory holding it)")
    p.add_argument("--gguf-file", help="a GGUF file to load (transformers dequantises it; needs the gguf package)")
    p.add_argument("--tasks", required=True, help="tasks file from `ckv-sim tasks export`")
    p.add_argument("--out", required=True, help="directory for the traces (one per task, <task id>.ckvt)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default=None, help="weights and activations (default: bf16 on cuda, fp32 on cpu)")
    p.add_argument("--numerics", choices=["native", "ggml"], default="native",
                   help="native (default), or ggml: round as llama.cpp's CPU backend does for the GGUF (Q8 activations, "
                   "binary16 attention), to check the recorder against ckv-sim's engine on the CPU")
    p.add_argument("--only", help="task ids to record, comma-separated (default: every task)")
    p.add_argument("--presses", default="", help="kvpress presses to run for real after each full run, comma-separated "
                   "(streamingllm, snapkv, pyramidkv, adakv, chunkkv); needs kvpress")
    p.add_argument("--budgets", default="", help="with --presses: budgets in tokens per layer per KV head, comma-separated")
    p.add_argument("--frame-size", type=int, default=1 << 20, help="raw bytes per trace frame (default 1 MiB)")
    p.add_argument("--attention-memory", type=int, default=1 << 30, help="bytes of attention scores one chunk of query rows may use (default 1 GiB)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    if not 4096 <= a.frame_size <= 64 << 20:
        p.error("--frame-size must be 4096 … 67108864 bytes")
    if a.attention_memory < 1 << 20:
        p.error("--attention-memory must be at least 1 MiB")
    return a


def main(argv=None):
    a = parse(sys.argv[1:] if argv is None else argv)
    from .tasks import TasksError, load
    try:
        tasks = load(a.tasks)
    except TasksError as e:
        _fail(str(e))
    selected = tasks.tasks
    if a.only:
        wanted = [t.strip() for t in a.only.split(",") if t.strip()]
        known = {t.id for t in tasks.tasks}
        for w in wanted:
            if w not in known:
                _fail(f"--only: no task '{w}' in {a.tasks} (it has {', '.join(sorted(known))})")
        selected = [t for t in tasks.tasks if t.id in wanted]
    from .presses import PRESSES
    presses = [x.strip() for x in a.presses.split(",") if x.strip()]
    for name in presses:
        if name not in PRESSES:
            _fail(f"--presses: unknown press '{name}' (known: {', '.join(PRESSES)})")
    try:
        budgets = [int(x) for x in a.budgets.split(",") if x.strip()]
    except ValueError:
        _fail(f"--budgets: '{a.budgets}' is not a list of token counts")
    if presses and not budgets:
        _fail("--presses needs --budgets")
    if any(b < 1 for b in budgets):
        _fail("--budgets: a budget must be a positive token count")
    import torch
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        _fail("--device cuda: torch sees no CUDA device here")
    if device not in ("cpu",) and not device.startswith("cuda"):
        _fail(f"--device: '{device}' is not cuda or cpu")
    dtype = a.dtype or ("bf16" if device.startswith("cuda") else "fp32")
    if a.threads:
        torch.set_num_threads(a.threads)
    if presses:
        try:
            import kvpress  # noqa: F401
        except ImportError:
            _fail("--presses needs kvpress: pip install 'ckv-record[kvpress]'")
    os.makedirs(a.out, exist_ok=True)
    from .record import LoadedModel, RecordError, check_fits, load_model, prompt_tokens, record_task

    prepared = {}

    def check(tokenizer, context):
        # Every task is encoded and checked against the context before the weights load; the
        # recording then uses these prompts.
        probe = LoadedModel(None, tokenizer, None, device, dtype)
        for task in selected:
            prepared[task.id] = prompt_tokens(probe, tasks, task)
            check_fits(tasks, task, len(prepared[task.id][0]), context, a.model)

    try:
        started = time.monotonic()
        loaded = load_model(a.model, a.gguf_file, device, dtype, check=check, numerics=a.numerics)
        if not a.quiet:
            print(f"ckv-record: {loaded.identity['name']} on {device} ({dtype}), loaded in {time.monotonic() - started:.1f} s", file=sys.stderr)
        from tqdm import tqdm
        for i, task in enumerate(selected):
            out = os.path.join(a.out, f"{task.id}.ckvt")
            bar = tqdm(total=1, unit="tok", unit_scale=True, desc=f"[{i + 1}/{len(selected)}] {task.id}", disable=a.quiet, file=sys.stderr)

            def progress(done, total, bar=bar):
                bar.total = total
                bar.n = done
                bar.refresh()

            result = record_task(loaded, tasks, task, out, frame_size=a.frame_size, attention_memory=a.attention_memory,
                                 presses=presses, budgets=budgets, progress=progress, prompt=prepared[task.id])
            bar.close()
            found = "finds" if result["correct"] else "misses"
            print(f"{out}: {result['prompt_tokens']} prompt tokens, full cache {found} '{', '.join(task.expected)}' ({result['text']!r}), "
                  f"{result['bytes'] / 1e6:.1f} MB" + (f", {len(result['runs'])} compressed runs" if result["runs"] else ""))
    except RecordError as e:
        _fail(str(e))
    except KeyboardInterrupt:
        _fail("interrupted: every trace finished so far is complete; the one in progress keeps its finished frames (ckv-sim trace repair)")
    except torch.cuda.OutOfMemoryError:
        _fail("the GPU ran out of memory: lower --attention-memory, or record shorter tasks")


if __name__ == "__main__":
    main()
