"""The .ckvt writer against the spec (Docs/trace-format.md) and against ckv-sim's reader."""
import json
import os
import struct
import zlib

import numpy as np
import pytest

from ckv_record import ckvt
from conftest import ckv_sim

MODEL = {"name": "fixture", "architecture": "llama", "hf_id": "fixture/model", "layers": 2, "query_heads": 2, "kv_heads": 1,
         "head_dim": 4, "context_length": 64}


def small_trace(path, frame_size=4096, seed=3):
    """A small but complete trace: every record type replay reads, several frames."""
    rng = np.random.default_rng(seed)
    n, steps = 40, 3
    header = {"model": MODEL, "task": {"kind": "passkey", "seed": 1, "prompt_tokens": n, "parameters": {}}, "producer": "test", "notes": {}}
    w = ckvt.TraceWriter(path, header, frame_size=frame_size)
    w.tokens(ckvt.PROMPT, range(n))
    w.span(ckvt.NEEDLE, 10, 20)
    w.span(ckvt.ANSWER, 12, 14)
    w.flush()
    for layer in range(2):
        for h in range(2):
            for kind, window in ((ckvt.WINDOW_SUM, 8), (ckvt.WINDOW_SUM, 32), (ckvt.WINDOW_SQUARED_SUM, 8), (ckvt.ACCUMULATED, 0)):
                w.head_statistic(kind, layer, h, window, rng.random(n, dtype=np.float32))
        w.flush()
    for step in range(steps):
        for layer in range(2):
            for h in range(2):
                row = rng.random(n + step, dtype=np.float32)
                w.decode_attention(layer, h, step, row / row.sum())
        w.flush()
    w.tokens(ckvt.GENERATED, [5, 6, 7])
    for layer in range(2):
        w.cache_vectors(ckvt.VALUE, layer, 0, rng.standard_normal((n + steps - 1, 4), dtype=np.float32))
    w.annotation("outcome.full", json.dumps({"correct": True, "text": " 5", "tokens": [5, 6, 7]}))
    return w.finish()


def test_crc_check_value():
    assert ckvt.crc32(b"123456789") == 0xCBF43926


def test_f16_and_bf16_round_to_nearest_even_and_read_back():
    x = np.array([1.0, 1 + 2**-11, 1 + 3 * 2**-11, 1 + 2**-8, 1 + 3 * 2**-8, -2.5], dtype=np.float32)
    assert list(ckvt.decode_values(ckvt.encode_values(x, ckvt.F32), ckvt.F32)) == list(x)
    f16 = ckvt.decode_values(ckvt.encode_values(x, ckvt.F16), ckvt.F16)
    assert list(f16) == [1.0, 1.0, 1 + 2 * 2**-10, 1 + 2**-8, 1 + 3 * 2**-8, -2.5]
    bf = ckvt.decode_values(ckvt.encode_values(x, ckvt.BF16), ckvt.BF16)
    # bf16 keeps 7 fraction bits: 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷ and goes to the even 1;
    # 1 + 3·2⁻⁸ is halfway between 1 + 2⁻⁷ and 1 + 2·2⁻⁷ and goes to the even 1 + 2·2⁻⁷.
    assert list(bf) == [1.0, 1.0, 1.0, 1.0, 1 + 2 * 2**-7, -2.5]


def test_layout_follows_the_spec(tmp_path):
    path = str(tmp_path / "t.ckvt")
    summary = small_trace(path)
    b = open(path, "rb").read()
    assert b[:8] == b"\x89CKVT\r\n\x1a" and struct.unpack_from("<HH", b, 8) == (1, 1)
    m = struct.unpack_from("<I", b, 12)[0]
    meta = b[16:16 + m]
    assert meta == json.dumps(json.loads(meta), sort_keys=True, separators=(",", ":")).encode()
    assert zlib.crc32(b[:16 + m]) == struct.unpack_from("<I", b, 16 + m)[0]
    x, total, frames, crc = struct.unpack_from("<QQII", b, len(b) - 32)
    assert b[-8:] == b"CKVT-END" and crc == zlib.crc32(b[len(b) - 32:len(b) - 12])
    assert (total, frames) == (summary["records"], summary["frames"]) and frames > 3
    meta, records, finished = ckvt.read(path)
    assert finished and len(records) == total
    assert [t for t, _ in records][:3] == [ckvt.TOKENS, ckvt.SPAN, ckvt.SPAN]


def test_swift_reader_verifies_and_replays_it(tmp_path):
    path = str(tmp_path / "t.ckvt")
    small_trace(path)
    assert "every checksum matches" in ckv_sim("trace", "verify", path).stdout
    info = json.loads(ckv_sim("trace", "inspect", path, "--format", "json").stdout)
    assert info["header"]["model"]["hf_id"] == "fixture/model"
    out = ckv_sim("replay", path, "--policies", "snapkv,streamingllm", "--budgets", "36", "--format", "json").stdout
    results = json.loads(out)
    assert {r["policy"] for r in results} == {"snapkv", "streamingllm"}
    assert all(0 < r["attention_mass"] <= 1 for r in results)


def test_every_frame_boundary_leaves_a_readable_prefix(tmp_path):
    """Cut at every frame boundary (what a killed recording leaves): the complete frames read, and
    ckv-sim's repair keeps exactly their records."""
    path = str(tmp_path / "t.ckvt")
    small_trace(path)
    b = open(path, "rb").read()
    m = struct.unpack_from("<I", b, 12)[0]
    pos, boundaries, counts = 20 + m, [], [0]
    while True:
        kind, _, _, _, count, s = struct.unpack_from("<4xBBHQII", b, pos)
        pos += 36 + s
        if kind == 2:
            break
        boundaries.append(pos)
        counts.append(counts[-1] + count)
    for cut, expected in zip([20 + m] + boundaries, counts):
        cut_path = str(tmp_path / f"cut-{cut}.ckvt")
        open(cut_path, "wb").write(b[:cut])
        _, records, finished = ckvt.read(cut_path)
        assert not finished and len(records) == expected
        r = ckv_sim("trace", "verify", cut_path, check=False)
        assert r.returncode == 1 and "truncated" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        if expected:
            repaired = str(tmp_path / f"fixed-{cut}.ckvt")
            ckv_sim("trace", "repair", cut_path, "-o", repaired)
            assert len(ckvt.read(repaired)[1]) == expected + 1  # and the ckvt.repaired annotation


def test_a_flipped_byte_is_refused(tmp_path):
    path = str(tmp_path / "t.ckvt")
    small_trace(path)
    b = bytearray(open(path, "rb").read())
    rng = np.random.default_rng(11)
    for at in rng.integers(0, len(b), 12):
        damaged = bytearray(b)
        damaged[at] ^= 0x10
        p = str(tmp_path / f"flip-{at}.ckvt")
        open(p, "wb").write(damaged)
        r = ckv_sim("trace", "verify", p, check=False)
        assert r.returncode == 1, f"a flip at {at} went unnoticed"
