"""A writer (and a small reader) of the .ckvt trace format, version 1.1, written from its
specification (ckv-sim Docs/trace-format.md): a second implementation of the spec, so the spec,
not the Swift code, is what both follow.

The writer only appends: a file header, records frames (zstd, 1 MiB of raw records by default),
then the index frame and the trailer. Each closed frame is flushed to disk, so a process killed at
any moment leaves a file whose complete frames are readable (`ckv-sim trace repair` finishes it).
"""
from __future__ import annotations

import json
import os
import struct
import zlib

import numpy as np
import zstandard

MAGIC = b"\x89CKVT\r\n\x1a"
FRAME_MAGIC = b"CKVF"
TRAILER_MAGIC = b"CKVT-END"
MAJOR, MINOR = 1, 1
KIND_RECORDS, KIND_INDEX = 1, 2
CODEC_STORED, CODEC_ZSTD = 0, 1

# Record types.
TOKENS, SPAN, HEAD_STATISTIC, DECODE_ATTENTION, DECODE_VECTOR, ANNOTATION, CACHE_VECTORS = 1, 2, 3, 4, 5, 6, 7
# Value encodings.
F32, F16, BF16 = 1, 2, 3
# Roles and kinds.
PROMPT, GENERATED = 0, 1
ANSWER, NEEDLE = 0, 1
WINDOW_SUM, WINDOW_SQUARED_SUM, ACCUMULATED = 0, 1, 2
KEY, VALUE = 1, 2

MAX_METADATA = 16 << 20
# A head statistic's fields before its values: kind, encoding, layer, head, window, count.
_HEAD_STATISTIC = struct.Struct("<BBHHHI")


class TraceFormatError(Exception):
    """A file that is not a readable trace: the message names the file and the offset."""


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def encode_values(values, encoding: int) -> bytes:
    """Little-endian values: f32 exactly, f16 rounded to nearest even, bf16 as the upper 16 bits of
    binary32 after round-to-nearest-even."""
    a = np.ascontiguousarray(np.asarray(values, dtype=np.float32).reshape(-1))
    if encoding == F32:
        return a.astype("<f4").tobytes()
    if encoding == F16:
        return a.astype("<f2").tobytes()
    if encoding == BF16:
        bits = a.view(np.uint32).astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        nan = np.isnan(a)
        out = rounded.astype(np.uint16)
        out[nan] = ((bits[nan] >> 16) | 0x40).astype(np.uint16)  # keep NaN a (quiet) NaN
        return out.astype("<u2").tobytes()
    raise ValueError(f"unknown value encoding {encoding}")


def decode_values(data: bytes, encoding: int) -> np.ndarray:
    """The values `encode_values` wrote, as float32."""
    if encoding == F32:
        return np.frombuffer(data, dtype="<f4").astype(np.float32)
    if encoding == F16:
        return np.frombuffer(data, dtype="<f2").astype(np.float32)
    if encoding == BF16:
        return (np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    raise ValueError(f"unknown value encoding {encoding}")


def head_statistics(records) -> dict:
    """(kind, window) -> (layer, head) -> float32 values, from `read`'s records."""
    out = {}
    for t, body in records:
        if t == HEAD_STATISTIC:
            kind, encoding, layer, head, window, _ = _HEAD_STATISTIC.unpack_from(body)
            out.setdefault((kind, window), {})[(layer, head)] = decode_values(body[_HEAD_STATISTIC.size:], encoding)
    return out


def metadata_json(header: dict) -> bytes:
    """Sorted keys, compact, UTF-8, slashes unescaped: the same header gives the same bytes."""
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class TraceWriter:
    """Appends records to a new .ckvt file. `flush()` closes the frame in progress (call it when a
    unit of work is done); `finish()` writes the index and trailer."""

    def __init__(self, path: str, header: dict, frame_size: int = 1 << 20, level: int = 3):
        meta = metadata_json(header)
        if len(meta) > MAX_METADATA:
            raise ValueError(f"{path}: the header metadata is {len(meta)} bytes, above 16 MiB")
        self.path = path
        self.frame_size = frame_size
        self._zstd = zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=True)
        self._file = open(path, "wb")
        fixed = MAGIC + struct.pack("<HHI", MAJOR, MINOR, len(meta)) + meta
        self._write(fixed + struct.pack("<I", crc32(fixed)))
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._pending_types: list[int] = []
        self._frames: list[tuple[int, int, int, int, int]] = []  # offset, first record, records, S, R
        self._records = 0
        self._types: dict[int, int] = {}
        self.finished = False

    def _write(self, data: bytes):
        self._file.write(data)

    @property
    def offset(self) -> int:
        return self._file.tell()

    # Records.

    def append(self, type_: int, body: bytes):
        if type_ <= 0 or type_ > 0xFFFF:
            raise ValueError(f"record type {type_} is not 1 … 65535")
        record = struct.pack("<HHI", type_, 0, len(body)) + body
        if self._pending and self._pending_bytes + len(record) > self.frame_size:
            self._close_frame()
        self._pending.append(record)
        self._pending_types.append(type_)
        self._pending_bytes += len(record)
        if self._pending_bytes >= self.frame_size:
            self._close_frame()

    def tokens(self, role: int, ids):
        ids = np.asarray(ids, dtype="<u4")
        self.append(TOKENS, struct.pack("<B3xI", role, len(ids)) + ids.tobytes())

    def span(self, role: int, start: int, end: int):
        if end < start:
            raise ValueError(f"span end {end} is before its start {start}")
        self.append(SPAN, struct.pack("<B3xII", role, start, end))

    def head_statistic(self, kind: int, layer: int, head: int, window: int, values, encoding: int = F32):
        data = encode_values(values, encoding)
        n = len(data) // (4 if encoding == F32 else 2)
        self.append(HEAD_STATISTIC, _HEAD_STATISTIC.pack(kind, encoding, layer, head, window, n) + data)

    def decode_attention(self, layer: int, head: int, step: int, values, encoding: int = F16):
        data = encode_values(values, encoding)
        n = len(data) // (4 if encoding == F32 else 2)
        self.append(DECODE_ATTENTION, struct.pack("<BBHHHII", 0, encoding, layer, head, 0, step, n) + data)

    def cache_vectors(self, kind: int, layer: int, kv_head: int, values, encoding: int = F16):
        """`values`: positions × head dimension."""
        v = np.asarray(values, dtype=np.float32)
        if v.ndim != 2 or v.shape[1] == 0:
            raise ValueError("cache vectors are positions × dimension, dimension > 0")
        self.append(CACHE_VECTORS, struct.pack("<BBHHHII", kind, encoding, layer, kv_head, 0, v.shape[0], v.shape[1]) + encode_values(v, encoding))

    def annotation(self, key: str, value: str):
        k, v = key.encode("utf-8"), value.encode("utf-8")
        self.append(ANNOTATION, struct.pack("<I", len(k)) + k + struct.pack("<I", len(v)) + v)

    # Frames.

    def _payload(self, raw: bytes) -> tuple[int, bytes]:
        packed = self._zstd.compress(raw)
        return (CODEC_ZSTD, packed) if len(packed) < len(raw) else (CODEC_STORED, raw)

    def _frame(self, kind: int, field8: int, field16: int, raw: bytes):
        codec, stored = self._payload(raw)
        head = FRAME_MAGIC + struct.pack("<BBHQIIII", kind, codec, 0, field8, field16, len(stored), len(raw), crc32(stored))
        offset = self.offset
        self._write(head + struct.pack("<I", crc32(head)) + stored)
        return offset, len(stored), len(raw)

    def _close_frame(self):
        if not self._pending:
            return
        raw = b"".join(self._pending)
        count = len(self._pending)
        offset, s, r = self._frame(KIND_RECORDS, self._records, count, raw)
        self._frames.append((offset, self._records, count, s, r))
        self._records += count
        for t in self._pending_types:
            self._types[t] = self._types.get(t, 0) + 1
        self._pending, self._pending_types, self._pending_bytes = [], [], 0
        self._file.flush()

    def flush(self):
        """Closes the frame in progress and puts it on disk (a unit of work is finished)."""
        self._close_frame()
        self._file.flush()
        os.fsync(self._file.fileno())

    def finish(self) -> dict:
        self._close_frame()
        index = struct.pack("<I", len(self._frames))
        for offset, first, count, s, r in self._frames:
            index += struct.pack("<QQIII", offset, first, count, s, r)
        index += struct.pack("<I", len(self._types))
        for t in sorted(self._types):
            index += struct.pack("<HHQ", t, 0, self._types[t])
        x, _, _ = self._frame(KIND_INDEX, self._records, len(self._frames), index)
        trailer = struct.pack("<QQI", x, self._records, len(self._frames))
        self._write(trailer + struct.pack("<I", crc32(trailer)) + TRAILER_MAGIC)
        size = self.offset
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self.finished = True
        return {"records": self._records, "frames": len(self._frames), "bytes": size}

    def close(self):
        """Closes the file without finishing it (an interrupted recording: readable up to its last frame)."""
        if not self._file.closed:
            self._file.flush()
            self._file.close()


def read(path: str):
    """Reads a trace front to back: (metadata, [(type, body)], finished). An unfinished file gives
    the records of its complete frames; a damaged one raises TraceFormatError naming the offset."""
    b = open(path, "rb").read()
    if b[:8] != MAGIC:
        raise TraceFormatError(f"{path}: not a .ckvt trace (no magic at offset 0)")
    if len(b) < 20:
        raise TraceFormatError(f"{path}: truncated at offset {len(b)} (file header)")
    major, _minor, m = struct.unpack_from("<HHI", b, 8)
    if major != MAJOR:
        raise TraceFormatError(f"{path}: major version {major}, this reader knows {MAJOR}")
    if len(b) < 20 + m or crc32(b[:16 + m]) != struct.unpack_from("<I", b, 16 + m)[0]:
        raise TraceFormatError(f"{path}: corrupt or truncated header at offset 16")
    meta = json.loads(b[16:16 + m])
    pos, records, next_record = 20 + m, [], 0
    while True:
        if pos + 36 > len(b):
            return meta, records, False
        head = b[pos:pos + 32]
        if head[:4] != FRAME_MAGIC or crc32(head) != struct.unpack_from("<I", b, pos + 32)[0]:
            if b[-8:] == TRAILER_MAGIC and pos == len(b) - 32:
                raise TraceFormatError(f"{path}: trailer without an index frame at offset {pos}")
            raise TraceFormatError(f"{path}: corrupt frame header at offset {pos}")
        kind, codec, _, first, count, s, r, pcrc = struct.unpack_from("<BBHQIIII", b, pos + 4)
        if pos + 36 + s > len(b):
            return meta, records, False
        stored = b[pos + 36:pos + 36 + s]
        if crc32(stored) != pcrc:
            raise TraceFormatError(f"{path}: corrupt frame payload at offset {pos + 36}")
        if kind == KIND_INDEX:
            end = pos + 36 + s
            if len(b) != end + 32 or b[-8:] != TRAILER_MAGIC:
                return meta, records, False
            return meta, records, True
        raw = zstandard.ZstdDecompressor().decompress(stored) if codec == CODEC_ZSTD else stored
        if len(raw) != r or first != next_record:
            raise TraceFormatError(f"{path}: frame at offset {pos} does not match its header")
        q = 0
        for _ in range(count):
            t, _, blen = struct.unpack_from("<HHI", raw, q)
            records.append((t, raw[q + 8:q + 8 + blen]))
            q += 8 + blen
        if q != len(raw):
            raise TraceFormatError(f"{path}: frame at offset {pos} holds bytes beyond its {count} records")
        next_record += count
        pos += 36 + s
