"""The tasks file `ckv-sim tasks export` writes (JSON Lines: a header line, then one task per line;
ckv-sim Docs/recording-on-gpu.md), read and checked here, and the scoring rule each task names."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

FORMAT, VERSION = "ckv-tasks", 1
SCORINGS = ("prefix", "anywhere", "items")


class TasksError(Exception):
    """A tasks file this recorder cannot use: the message names the file, line and key."""


@dataclass
class Task:
    id: str
    kind: str
    length: int
    index: int
    seed: int
    depth: float
    prompt: str
    expected: list
    answer: str
    needle: str
    scoring: str
    max_tokens: int
    tokens: list | None = None
    needle_span: list | None = None
    answer_span: list | None = None

    def score(self, text: str) -> float:
        """The share of the expected items `text` produced (ckv-sim's RetrievalTask.score): "prefix" —
        it begins with the answer, leading spaces ignored; "anywhere" — it contains it; "items" — the
        share of the expected items it holds as whole words of letters and digits."""
        if self.scoring == "prefix":
            return 1.0 if text.lstrip(" ").startswith(self.answer) else 0.0
        if self.scoring == "anywhere":
            return 1.0 if self.answer in text else 0.0
        words = set(re.findall(r"[^\W_]+", text))
        return sum(1 for e in self.expected if e in words) / len(self.expected)


@dataclass
class TasksFile:
    path: str
    header: dict
    tasks: list = field(default_factory=list)

    @property
    def windows(self) -> list:
        return list(self.header["windows"])

    @property
    def squared_windows(self) -> list:
        return list(self.header["squared_windows"])

    @property
    def chat(self) -> bool:
        return bool(self.header["chat"])


_TASK_KEYS = {"id": str, "kind": str, "length": int, "index": int, "seed": int, "depth": (int, float), "prompt": str,
              "expected": list, "answer": str, "needle": str, "scoring": str, "max_tokens": int}
_HEADER_KEYS = {"format": str, "version": int, "producer": str, "tokenizer": dict, "tokens_included": bool, "chat": bool,
                "windows": list, "squared_windows": list}


def _check(obj, keys, where):
    if not isinstance(obj, dict):
        raise TasksError(f"{where}: expected a JSON object")
    for k, t in keys.items():
        if k not in obj:
            raise TasksError(f"{where}: missing key '{k}'")
        if not isinstance(obj[k], t) or (t is int and isinstance(obj[k], bool)):
            raise TasksError(f"{where}: key '{k}' has the wrong type ({type(obj[k]).__name__})")


def load(path: str) -> TasksFile:
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError as e:
        raise TasksError(f"{path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise TasksError(f"{path}: not UTF-8 text (byte {e.start})") from None
    lines = [(i + 1, l) for i, l in enumerate(lines) if l.strip()]
    if not lines:
        raise TasksError(f"{path}: empty; write it with `ckv-sim tasks export`")

    def parse(no, text):
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise TasksError(f"{path}:{no}: not JSON ({e.msg} at column {e.colno})") from None

    no, text = lines[0]
    header = parse(no, text)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise TasksError(f"{path}:{no}: not a ckv-sim tasks file (its first line has no \"format\": \"{FORMAT}\"; write it with `ckv-sim tasks export`)")
    _check(header, _HEADER_KEYS, f"{path}:{no}")
    if header["version"] != VERSION:
        raise TasksError(f"{path}:{no}: tasks format version {header['version']}; this recorder reads version {VERSION}")
    for key in ("windows", "squared_windows"):
        if not header[key] or not all(isinstance(w, int) and 0 < w < 65536 for w in header[key]):
            raise TasksError(f"{path}:{no}: '{key}' must list windows of 1 … 65535 tokens")
    out = TasksFile(path, header)
    seen = set()
    for no, text in lines[1:]:
        d = parse(no, text)
        _check(d, _TASK_KEYS, f"{path}:{no}")
        if d["scoring"] not in SCORINGS:
            raise TasksError(f"{path}:{no}: scoring '{d['scoring']}' is not one of {', '.join(SCORINGS)}")
        if not d["expected"] or not all(isinstance(e, str) and e for e in d["expected"]):
            raise TasksError(f"{path}:{no}: 'expected' must list the answer's items")
        if d["max_tokens"] < 1:
            raise TasksError(f"{path}:{no}: 'max_tokens' must be positive")
        if d["id"] in seen:
            raise TasksError(f"{path}:{no}: task id '{d['id']}' appears twice")
        seen.add(d["id"])
        tokens = d.get("tokens")
        if header["tokens_included"]:
            if not isinstance(tokens, list) or not tokens or not all(isinstance(t, int) and 0 <= t < 2**32 for t in tokens):
                raise TasksError(f"{path}:{no}: 'tokens' must be the prompt's token ids (the header says they are included)")
        for key in ("needle_span", "answer_span"):
            span = d.get(key)
            if span is not None and (not isinstance(span, list) or len(span) != 2 or not all(isinstance(x, int) for x in span)
                                     or not 0 <= span[0] <= span[1] <= len(tokens or [])):
                raise TasksError(f"{path}:{no}: '{key}' must be [start, end] within the prompt's tokens")
        out.tasks.append(Task(**{k: d.get(k) for k in Task.__dataclass_fields__}))
    if not out.tasks:
        raise TasksError(f"{path}: a header and no tasks")
    return out
