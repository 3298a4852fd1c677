"""The `.czc` file of `convzoo compress`: canonical Huffman codes, sparse (gap, index) entries with filler
zeros, and the file itself (magic, JSON header, tensor sections, CRC-32). docs/compression.md has the format
byte by byte; `compress.py` is the pipeline that fills it."""
from __future__ import annotations

import heapq
import json
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import UserError
from ..fsio import write_bytes

MAGIC = b"\x89CZC\r\n\x1a\n"  # PNG's trick: a high byte, then CR LF, ^Z, LF catch text-mode and 7-bit transfers
FORMAT = "convzoo-compressed/1"
SUFFIX = ".czc"
MAX_CODE_BITS = 16  # longest Huffman code: the decoder's lookup table has 2^16 entries
GAP_BITS = range(1, 9)  # the paper uses 8 (conv) and 5 (fc); each layer here takes the width that packs best
MB = 1_000_000



# --- canonical Huffman codes ------------------------------------------------------------------------------------

def _huffman_tree_lengths(counts: np.ndarray) -> np.ndarray:
    lengths = np.zeros(len(counts), dtype=np.int64)
    used = np.flatnonzero(counts)
    if len(used) == 1:  # one symbol still needs one bit per occurrence, so the stream has a length
        lengths[used] = 1
        return lengths
    heap = [(int(counts[s]), int(s), [int(s)]) for s in used]
    heapq.heapify(heap)
    while len(heap) > 1:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        members = a[2] + b[2]
        lengths[members] += 1
        heapq.heappush(heap, (a[0] + b[0], min(a[1], b[1]), members))
    return lengths


def huffman_lengths(counts: np.ndarray, limit: int = MAX_CODE_BITS) -> np.ndarray:
    """Code length per symbol (0: unused) of a Huffman code for `counts`, no code longer than `limit`.

    A code that comes out too long is rebuilt from halved counts (rounded up, so every used symbol stays
    used) until it fits: the distribution flattens towards equal counts, whose tree has depth ⌈log2 n⌉.
    """
    counts = np.asarray(counts, dtype=np.int64)
    while True:
        lengths = _huffman_tree_lengths(counts)
        if lengths.max(initial=0) <= limit:
            return lengths
        counts = np.where(counts > 0, (counts + 1) // 2, 0)


def _canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical codes: symbols ordered by (length, symbol) get consecutive codes, so lengths are the whole table."""
    codes = np.zeros(len(lengths), dtype=np.int64)
    code = prev = 0
    for s in np.lexsort((np.arange(len(lengths)), lengths)):
        n = int(lengths[s])
        if n == 0:
            continue
        code <<= n - prev
        codes[s] = code
        code, prev = code + 1, n
    return codes


def huffman_encode(symbols: np.ndarray, lengths: np.ndarray) -> bytes:
    """The codes of `symbols` back to back, most significant bit first, zero-padded to a whole byte."""
    if len(symbols) == 0:
        return b""
    codes = _canonical_codes(lengths)
    n, c = lengths[symbols], codes[symbols]
    ends = np.cumsum(n)
    owner = np.repeat(np.arange(len(symbols)), n)
    shift = ends[owner] - 1 - np.arange(int(ends[-1]))  # bit k of the stream is bit `shift` of its code
    return np.packbits(((c[owner] >> shift) & 1).astype(np.uint8)).tobytes()


def huffman_decode(data: bytes, lengths: np.ndarray, count: int) -> np.ndarray:
    """`count` symbols back from a `huffman_encode` stream; a stream that does not hold them raises ValueError.

    Vectorised: the code starting at every bit position is read through a 2^L-entry table, which gives a
    "next code starts here" jump per position; the start of the i-th code is that jump applied i times
    from 0, found by pointer doubling in log2(count) array gathers instead of a Python loop per symbol.
    """
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    longest = int(lengths.max(initial=0))
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8)).astype(np.int64)
    nbits = len(bits)
    if longest == 0 or nbits == 0:
        raise ValueError("empty code or stream")
    padded = np.concatenate([bits, np.zeros(longest, dtype=np.int64)])
    window = np.zeros(nbits, dtype=np.int64)  # the `longest` bits from each position
    for j in range(longest):
        window = (window << 1) | padded[j:j + nbits]
    codes = _canonical_codes(lengths)
    symbol_at = np.full(1 << longest, -1, dtype=np.int64)
    length_at = np.zeros(1 << longest, dtype=np.int64)
    for s in np.flatnonzero(lengths):
        lo, hi = int(codes[s]) << (longest - lengths[s]), (int(codes[s]) + 1) << (longest - lengths[s])
        symbol_at[lo:hi], length_at[lo:hi] = s, lengths[s]
    step = length_at[window]
    jump = np.append(np.minimum(np.arange(nbits) + step, nbits), nbits)  # position nbits: past the end, absorbing
    starts = np.zeros(count, dtype=np.int64)
    have = 1
    while have < count:  # `jump` moves `have` codes on: starts[have + i] = jump(starts[i])
        take = min(have, count - have)
        starts[have:have + take] = jump[starts[:take]]
        have += take
        if have < count:
            jump = jump[jump]
    if starts[-1] >= nbits or (step[starts] == 0).any():
        raise ValueError("the stream ends early or holds a bit pattern that is no code")
    end = int(starts[-1] + step[starts[-1]])
    if end > nbits or (end + 7) // 8 != len(data):
        raise ValueError("the stream's length does not match its codes")
    return symbol_at[window[starts]]


# --- sparse entries: relative indices with filler zeros ---------------------------------------------------------

def _entries(index: np.ndarray, gap_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(gaps, values) of a flattened index map (0 = zero): one entry per nonzero, plus fillers for long gaps."""
    pos = np.flatnonzero(index)
    skipped = np.diff(pos, prepend=-1) - 1  # zeros before each nonzero
    span = 1 << gap_bits
    fillers = skipped // span  # each filler steps `span` positions and writes a zero
    count = fillers + 1
    last = np.cumsum(count) - 1
    gaps = np.full(int(count.sum()), span - 1, dtype=np.int64)
    values = np.zeros(len(gaps), dtype=np.int64)
    gaps[last], values[last] = skipped - fillers * span, index[pos]
    return gaps, values


def _positions(gaps: np.ndarray) -> np.ndarray:
    return np.cumsum(gaps + 1) - 1


def _plan_layer(index: np.ndarray, centroids: int) -> dict[str, Any]:
    """The gap width, Huffman code lengths and size of the smallest encoding of one layer."""
    best: dict[str, Any] | None = None
    for g in GAP_BITS:
        gaps, values = _entries(index, g)
        gap_len = huffman_lengths(np.bincount(gaps, minlength=1 << g))
        idx_len = huffman_lengths(np.bincount(values, minlength=centroids + 1))
        gap_bytes = (int((np.bincount(gaps, minlength=1 << g) * gap_len).sum()) + 7) // 8
        idx_bytes = (int((np.bincount(values, minlength=centroids + 1) * idx_len).sum()) + 7) // 8
        size = 4 * centroids + (1 << g) + (centroids + 1) + gap_bytes + idx_bytes
        if best is None or size < best["size"]:
            best = {"gap_bits": g, "gaps": gaps, "values": values, "gap_len": gap_len, "idx_len": idx_len,
                    "size": size}
    assert best is not None
    return best


# --- the file ---------------------------------------------------------------------------------------------------

def shared_layers(model: nn.Module) -> list[str]:
    """State-dict keys of the weights that are pruned and shared: every Conv2d and Linear weight."""
    return [f"{name}.weight" if name else "weight" for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))]


def encode_tensors(state: dict[str, Tensor], shared: dict[str, tuple[Tensor, Tensor]]) -> tuple[list[dict], bytes]:
    """The tensor directory and the payload of a state dict.

    `shared` maps a key to (codebook float32 of K+1 entries with entry 0 == 0, index int64 of the weight's
    shape): that tensor is stored as codebook[1:] plus its two Huffman streams; every other tensor raw.
    """
    directory: list[dict[str, Any]] = []
    parts: list[bytes] = []
    for key, value in state.items():
        if key in shared:
            table, index = shared[key]
            k = len(table) - 1
            flat = index.reshape(-1).cpu().numpy().astype(np.int64)
            plan = _plan_layer(flat, k)
            gap_stream = huffman_encode(plan["gaps"], plan["gap_len"])
            idx_stream = huffman_encode(plan["values"], plan["idx_len"])
            section = (table[1:].to(torch.float32).cpu().numpy().astype("<f4").tobytes()
                       + plan["gap_len"].astype(np.uint8).tobytes() + plan["idx_len"].astype(np.uint8).tobytes()
                       + gap_stream + idx_stream)
            directory.append({"name": key, "kind": "shared", "shape": list(value.shape), "centroids": k,
                              "gap_bits": plan["gap_bits"], "entries": len(plan["gaps"]),
                              "gap_bytes": len(gap_stream), "index_bytes": len(idx_stream)})
        else:
            array = value.detach().cpu().contiguous().numpy()
            section = array.astype(array.dtype.newbyteorder("<")).tobytes()
            directory.append({"name": key, "kind": "raw", "shape": list(value.shape), "dtype": str(array.dtype)})
        parts.append(section)
    return directory, b"".join(parts)


def section_size(entry: dict[str, Any]) -> int:
    """Bytes of one tensor's section, from its directory entry alone (the arithmetic of docs/compression.md)."""
    if entry["kind"] == "raw":
        return math.prod(entry["shape"]) * np.dtype(entry["dtype"]).itemsize
    k = entry["centroids"]
    return 4 * k + (1 << entry["gap_bits"]) + (k + 1) + entry["gap_bytes"] + entry["index_bytes"]


def decode_tensors(directory: list[dict[str, Any]], payload: bytes) -> dict[str, Tensor]:
    """The state dict back from `encode_tensors`' output; shared tensors come back as codebook[index], bit-exact."""
    out: dict[str, Tensor] = {}
    at = 0
    for entry in directory:
        size = section_size(entry)
        chunk = payload[at:at + size]
        if len(chunk) != size:
            raise ValueError(f"section {entry['name']} is cut short")
        at += size
        shape = tuple(entry["shape"])
        if entry["kind"] == "raw":
            array = np.frombuffer(chunk, dtype=np.dtype(entry["dtype"]).newbyteorder("<"))
            out[entry["name"]] = torch.from_numpy(array.astype(entry["dtype"]).reshape(shape))
            continue
        k, g = entry["centroids"], entry["gap_bits"]
        o = 4 * k
        table = np.concatenate([np.zeros(1, np.float32), np.frombuffer(chunk[:o], dtype="<f4").astype(np.float32)])
        gap_len = np.frombuffer(chunk[o:o + (1 << g)], dtype=np.uint8).astype(np.int64)
        o += 1 << g
        idx_len = np.frombuffer(chunk[o:o + k + 1], dtype=np.uint8).astype(np.int64)
        o += k + 1
        n = entry["entries"]
        gaps = huffman_decode(chunk[o:o + entry["gap_bytes"]], gap_len, n)
        values = huffman_decode(chunk[o + entry["gap_bytes"]:], idx_len, n)
        numel = math.prod(shape)
        index = np.zeros(numel, dtype=np.int64)
        if n:
            pos = _positions(gaps)
            if pos[-1] >= numel or values.max() > k:
                raise ValueError(f"section {entry['name']} points outside its tensor")
            index[pos] = values
        out[entry["name"]] = torch.from_numpy(table[index].reshape(shape))
    if at != len(payload):
        raise ValueError("bytes after the last section")
    return out


def pack(run: dict[str, Any], compression: dict[str, Any], state: dict[str, Tensor],
         shared: dict[str, tuple[Tensor, Tensor]]) -> tuple[bytes, list[dict[str, Any]]]:
    """The whole file as bytes, and its tensor directory (see docs/compression.md for the layout)."""
    directory, payload = encode_tensors(state, shared)
    header = json.dumps({"format": FORMAT, "run": run, "compression": compression, "tensors": directory},
                        separators=(",", ":")).encode()
    body = MAGIC + struct.pack("<I", len(header)) + header + payload
    return body + struct.pack("<I", zlib.crc32(body)), directory


def write_compressed(path: str | os.PathLike[str], run: dict[str, Any], compression: dict[str, Any],
                     state: dict[str, Tensor], shared: dict[str, tuple[Tensor, Tensor]]) -> tuple[int, list[dict]]:
    """Encode, check that decoding gives `state` back bit for bit, then write the file atomically.

    Returns its size and the tensor directory.
    """
    blob, directory = pack(run, compression, state, shared)
    back = decode_tensors(directory, blob[12 + struct.unpack("<I", blob[8:12])[0]:-4])
    for key, value in state.items():
        if not torch.equal(back[key], value.detach().cpu()):
            raise RuntimeError(f"encoding {key} is not lossless; this is a bug in convzoo.deploy.compress")
    write_bytes(path, blob)
    return len(blob), directory


def is_compressed(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a file that starts with this format's magic bytes."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _read(path: Path) -> tuple[dict[str, Any], bytes]:
    if path.is_dir():
        raise UserError(f"{str(path)!r} is a directory; give a {SUFFIX} file written by `convzoo compress`")
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"compressed file {str(path)!r} does not exist; write one with `convzoo compress`") from None
    except OSError as err:
        raise UserError(f"cannot read {str(path)!r}: {err.strerror}") from None
    if not blob.startswith(MAGIC):
        raise UserError(f"{str(path)!r} is not a convzoo compressed file (its first bytes are not the {SUFFIX} "
                        "magic); give a file written by `convzoo compress`, or a checkpoint")
    damaged = (f"{str(path)!r} is truncated or corrupt (its CRC-32 or lengths do not match); compress the run "
               "again")
    if len(blob) < len(MAGIC) + 8:
        raise UserError(damaged)
    body, (crc,) = blob[:-4], struct.unpack("<I", blob[-4:])
    if zlib.crc32(body) != crc:
        raise UserError(damaged)
    (hlen,) = struct.unpack("<I", body[8:12])
    try:
        header = json.loads(body[12:12 + hlen])
    except ValueError:
        raise UserError(damaged) from None
    if header.get("format") != FORMAT:
        raise UserError(f"{str(path)!r} is a compressed file of format {header.get('format')!r}; this convzoo "
                        f"reads {FORMAT}")
    return header, body[12 + hlen:]


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON header of a compressed file (format, run metadata, compression settings, tensor directory)."""
    return _read(Path(path))[0]


def load_compressed(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """The dense network decoded from a `.czc` file (eval mode, CPU) and its run metadata (as a checkpoint's,
    plus a ``compression`` entry)."""
    from ..registry import create_model

    path = Path(path)
    header, payload = _read(path)
    try:
        state = decode_tensors(header["tensors"], payload)
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{str(path)!r} is corrupt ({err}); compress the run again") from None
    run = header["run"]
    model = create_model(run["model"], **run["options"])
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise UserError(f"{str(path)!r} does not fit {run['model']} as this convzoo builds it; it was written by "
                        "another version") from None
    return model.eval(), {**run, "compression": header["compression"]}


