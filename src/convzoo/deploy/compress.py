"""Deep Compression of a trained network: prune, share weights, encode; and the dense network back from the file.

Han, Mao & Dally, "Deep Compression: Compressing Deep Neural Networks with Pruning, Trained Quantization and
Huffman Coding" (ICLR 2016), §2 (pruning, relative indices), §3 (weight sharing, linear initialisation,
centroid fine-tuning), §4 (Huffman coding); Iandola et al., SqueezeNet (arXiv:1602.07360) §4 and Table 2,
where the same pipeline takes SqueezeNet from 4.8 MB to 0.66 MB (8-bit) and 0.47 MB (6-bit).

What `compress` does to every convolution and fully-connected weight (biases, BN parameters and buffers are
kept as float32; there are few of them):

1. **Prune.** The `prune` fraction of smallest |w| of each layer becomes zero, exactly round(prune · n) of
   its n weights. The sparsity is reached gradually over the first half of the fine-tuning (s·(1 − (1 −
   t)³) of the way, Zhu & Gupta's schedule, so no single step removes much) and held for the second half;
   gradients of pruned weights are masked and the mask is re-applied after every SGD step.
2. **Share.** Per layer, k-means of the surviving weights into 2^B − 1 centroids, initialised linearly
   over [min, max] (the paper's best initialisation: large weights keep a centroid of their own). Codebook
   entry 0 is the pruned zero, so a layer has at most 2^B distinct values. The centroids are then
   fine-tuned: each one's gradient is the sum of the gradients of the weights that share it, and the
   weights are rewritten from the codebook after every step.
3. **Encode.** Each layer becomes a stream of entries (gap, index) in the order of its flattened weight:
   the gap counts the zeros skipped since the previous entry, stored in g bits; a gap of 2^g or more is
   bridged by filler entries that step 2^g positions and carry index 0 (the paper's "filler zero"). g is
   chosen per layer (1–8) for the smallest result. Gaps and indices are two canonical Huffman streams
   (codes at most 16 bits), with their code lengths in the file.

The file (suffix `.czc`, laid out byte by byte in docs/compression.md) holds the run's metadata, so
`convzoo eval FILE` and `convzoo predict FILE IMG` decode it into the dense network (`load_compressed`) and
use it like a checkpoint. Sizes are bytes; MB means 10^6 bytes and MiB 2^20.
"""
from __future__ import annotations

import heapq
import json
import math
import os
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UserError
from ..fsio import write_bytes

__all__ = ["FORMAT", "MAGIC", "SUFFIX", "CompressReport", "LayerRow", "compress", "decode_tensors",
           "encode_tensors", "huffman_decode", "huffman_encode", "huffman_lengths", "is_compressed",
           "kmeans_1d", "load_compressed", "pack", "read_header", "section_size", "share_weights",
           "shared_layers", "write_compressed"]

MAGIC = b"\x89CZC\r\n\x1a\n"  # PNG's trick: a high byte, then CR LF, ^Z, LF catch text-mode and 7-bit transfers
FORMAT = "convzoo-compressed/1"
SUFFIX = ".czc"
MAX_CODE_BITS = 16  # longest Huffman code: the decoder's lookup table has 2^16 entries
GAP_BITS = range(1, 9)  # the paper uses 8 (conv) and 5 (fc); each layer here takes the width that packs best
MB = 1_000_000

Log = Callable[[str], None]


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


# --- weight sharing ---------------------------------------------------------------------------------------------

def kmeans_1d(values: Tensor, k: int, iters: int = 100) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means of 1-D `values` from k centroids spread linearly over [min, max].

    Returns (centroids sorted ascending, float64; label per value). In 1-D the nearest centroid is found
    by bucketing against the midpoints, so an iteration is a sort-free O(n log k).
    """
    v = values.double().reshape(-1)
    distinct = torch.unique(v)
    if len(distinct) <= k:  # nothing to share: every value is its own centroid
        return distinct, torch.bucketize(v, distinct)
    c = torch.linspace(float(v.min()), float(v.max()), k, dtype=torch.float64)
    labels = torch.zeros(len(v), dtype=torch.int64)
    for _ in range(iters):
        labels = torch.bucketize(v, (c[1:] + c[:-1]) / 2)
        sums = torch.zeros(k, dtype=torch.float64).index_add_(0, labels, v)
        counts = torch.bincount(labels, minlength=k)
        new = torch.where(counts > 0, sums / counts.clamp(min=1), c).sort().values
        if torch.equal(new, c):
            break
        c = new
    return c, torch.bucketize(v, (c[1:] + c[:-1]) / 2)


def share_weights(weight: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """(codebook float32 of K+1 ≤ 2^bits entries, entry 0 = 0; index of the weight's shape, 0 where pruned)."""
    w = weight.detach().cpu()
    nonzero = w != 0
    index = torch.zeros(w.shape, dtype=torch.int64)
    if not nonzero.any():
        return torch.zeros(1), index
    centroids, labels = kmeans_1d(w[nonzero], (1 << bits) - 1)
    index[nonzero] = labels + 1
    return torch.cat([torch.zeros(1, dtype=torch.float64), centroids]).float(), index


# --- fine-tuning ------------------------------------------------------------------------------------------------

@dataclass
class _Ctx:
    """What the fine-tuning and evaluation need: the data on the device and how it is prepared."""

    data: Any
    train: Any
    test: Any
    spec: Any
    augment: Any
    device: torch.device
    batch_size: int
    seed: int
    amp: str

    def batches(self, split: Any, *, train: bool, epoch: int = 0) -> Any:
        from ..data.pipeline import batches

        return batches(split, self.spec, batch_size=self.batch_size if train else 1000, device=self.device,
                       seed=self.seed, epoch=epoch, shuffle=train, augment=self.augment if train else None,
                       drop_last=train and len(split) > self.batch_size, stored_size=self.data.size)


def _autocast(ctx: _Ctx) -> Any:
    import contextlib

    if ctx.amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(ctx.device.type, dtype=torch.bfloat16 if ctx.amp == "bf16" else torch.float16)


def top1(model: nn.Module, ctx: _Ctx) -> float:
    """Test top-1 in float32 and eval mode (the same measure at every stage, whatever the run trained in)."""
    model.eval()
    hits = n = 0
    with torch.no_grad():
        for x, y in ctx.batches(ctx.test, train=False):
            hits += int((model(x).float().topk(1, dim=1).indices[:, 0] == y).sum())  # as `convzoo eval` breaks ties
            n += len(y)
    return hits / max(n, 1)


def _cosine(lr: float, step: int, total: int) -> float:
    return 0.5 * lr * (1 + math.cos(math.pi * step / max(total, 1)))


def _fit(model: nn.Module, ctx: _Ctx, *, epochs: int, epoch0: int, groups: list[dict[str, Any]],
         on_grad: Callable[[], None], after_step: Callable[[int, int], None], log: Log, stage: str) -> None:
    """SGD with momentum 0.9 and a cosine-decayed lr over `epochs`; BN (where there is any) in train mode."""
    if epochs == 0:
        return
    steps = max(1, len(ctx.train) // ctx.batch_size)
    total, step = epochs * steps, 0
    opt = torch.optim.SGD(groups, momentum=0.9)
    base = [g["lr"] for g in groups]
    for epoch in range(epochs):
        model.train()
        t0, loss_sum, seen = time.perf_counter(), 0.0, 0
        for x, y in ctx.batches(ctx.train, train=True, epoch=epoch0 + epoch):
            for g, lr in zip(opt.param_groups, base):
                g["lr"] = _cosine(lr, step, total)
            with _autocast(ctx):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            on_grad()
            opt.step()
            step += 1
            after_step(step, total)
            loss_sum, seen = loss_sum + float(loss.detach()) * len(y), seen + len(y)
        if not math.isfinite(loss_sum):
            raise UserError(f"the loss became {loss_sum} while fine-tuning ({stage}); lower --lr and run again")
        log(f"{stage}: epoch {epoch + 1}/{epochs}, train loss {loss_sum / max(seen, 1):.4f}, "
            f"{time.perf_counter() - t0:.0f} s")


def _prune_to(weight: Tensor, mask: Tensor, fraction: float) -> None:
    """Set `mask` to zero at the round(fraction · n) smallest |weight| (already pruned ones are the smallest)."""
    k = round(fraction * weight.numel())
    flat = mask.view(-1)
    flat.fill_(True)
    if k:
        flat[torch.argsort(weight.detach().abs().reshape(-1), stable=True)[:k]] = False


# --- the pipeline -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerRow:
    """One pruned and shared weight: its sizes at each stage, in bytes."""

    name: str
    shape: tuple[int, ...]
    weights: int
    nonzero: int
    centroids: int
    gap_bits: int
    entries: int  # nonzero weights plus filler entries
    fp32: int
    pruned: int  # float32 values + g-bit gaps, fixed width
    quantised: int  # B-bit indices + g-bit gaps, fixed width, + the float32 codebook
    encoded: int  # the file's section: codebook, code lengths, Huffman streams


@dataclass(frozen=True)
class CompressReport:
    """What `compress` did and measured. Sizes in bytes; accuracies are test top-1 fractions in float32."""

    source: str
    out: str
    model: str
    dataset: str
    prune: float
    bits: int
    finetune_epochs: int
    lr: float
    centroid_lr: float
    params: int  # every parameter of the network
    shared_weights: int  # the conv/linear weights that were pruned and shared
    sparsity: float  # zeros / shared_weights, reached
    sizes: dict[str, int]  # fp32, pruned, quantised, encoded (= the file)
    accuracy: dict[str, float]  # fp32 (before), pruned, quantised (before centroid fine-tuning), final (the file)
    layers: tuple[LayerRow, ...]
    reference: dict[str, Any]  # SqueezeNet's §4 arithmetic and this file's bits per weight applied to it
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.sizes["fp32"] / self.sizes["encoded"]

    @property
    def points_lost(self) -> float:
        return 100 * (self.accuracy["fp32"] - self.accuracy["final"])

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "points_lost": self.points_lost}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CompressReport:
        """A report back from `to_json` (e.g. a saved `convzoo compress --json`), to render it again."""
        known = {f.name for f in fields(cls)}
        layers = tuple(LayerRow(**{**row, "shape": tuple(row["shape"])}) for row in d["layers"])
        return cls(**{**{k: v for k, v in d.items() if k in known}, "layers": layers})


def _check_settings(prune: float, bits: int, finetune_epochs: int, lr: float, batch_size: int) -> None:
    if not (isinstance(prune, (int, float)) and 0 <= prune < 1):
        raise UserError(f"--prune {prune}: give the fraction of each layer's weights to remove, in [0, 1) (e.g. "
                        "0.6 keeps 40 %)")
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
        raise UserError(f"--bits {bits}: give the codebook width per layer, an integer from 1 to 8 (2^bits values "
                        "including the zero; the paper uses 8 and 6)")
    if finetune_epochs < 0:
        raise UserError(f"--finetune-epochs must be 0 or more, got {finetune_epochs}")
    if not lr > 0:
        raise UserError(f"--lr must be positive, got {lr}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be 1 or more, got {batch_size}")


def _check_writable(out: Path) -> None:
    """Fail before minutes of fine-tuning if `out` cannot be written."""
    if out.is_dir():
        raise UserError(f"--out {str(out)!r} is a directory; give a file name such as "
                        f"{str(out / ('model' + SUFFIX))!r}")
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"--out {str(out)!r} cannot be written ({str(parent)!r} is not a writable directory); "
                        "choose another path")


def _context(trained: Any, *, dataset: str | None, data_dir: str | None, verify: bool, device: str,
             batch_size: int, seed: int) -> _Ctx:
    from ..data import load_dataset
    from ..data.pipeline import Augment, to_device
    from ..data.types import TensorSplit

    meta = trained.meta
    name = dataset or meta["dataset"]
    stored = meta.get("stored_size")
    data = load_dataset(name, data_dir=data_dir, verify=verify,
                        image_size=tuple(stored) if stored else trained.spec.size)
    if tuple(data.classes) != trained.classes:
        raise UserError(f"{name} has {len(data.classes)} classes but the network was trained on "
                        f"{len(trained.classes)}; fine-tune it on its own dataset ({meta['dataset']})")
    dev = torch.device(device)
    cfg = meta.get("config") or _run_config(trained.path)
    augment = Augment(int(cfg.get("crop_padding", 0)), bool(cfg.get("hflip", False)) and data.hflip)
    amp = "bf16" if meta.get("amp") == "bf16" else "none"  # fp16 would need a loss scaler: fine-tune in float32

    def place(split: Any) -> Any:
        return to_device(split, dev) if isinstance(split, TensorSplit) else split

    return _Ctx(data, place(data.train), place(data.test), trained.spec, augment, dev, batch_size, seed, amp)


def _run_config(path: Path) -> dict[str, Any]:
    """The run's config.json beside a best.safetensors (whose header leaves the config out), else {}."""
    try:
        return json.loads((path.parent / "config.json").read_text())
    except (OSError, ValueError):
        return {}


def compress(source: str | os.PathLike[str], *, prune: float, bits: int, out: str | os.PathLike[str],
             finetune_epochs: int = 2, lr: float = 0.01, centroid_lr: float | None = None, batch_size: int = 256,
             dataset: str | None = None, data_dir: str | None = None, verify: bool = True, device: str = "cpu",
             seed: int = 0, log: Log | None = None) -> CompressReport:
    """Prune, share and encode the trained network of `source` (a run directory or checkpoint) into `out`.

    Args:
        prune: the fraction of each conv/linear layer's weights set to zero, in [0, 1).
        bits: codebook width B per layer (2^B values including the zero), 1 to 8.
        finetune_epochs: epochs of fine-tuning after pruning, and as many again of centroid fine-tuning
            (0: one-shot, no training).
        lr: peak SGD learning rate (cosine-decayed to 0 in each phase) of the weights, biases and BN.
        centroid_lr: the centroids' learning rate (default lr / 100: a centroid's gradient sums those of
            hundreds to thousands of weights).
        dataset, data_dir, verify: the data to fine-tune and evaluate on (default: the run's).

    The test split measures each stage and chooses nothing. Returns the report; the file is written
    atomically, and only after every stage succeeded.
    """
    from ..training.inference import load_trained

    _check_settings(prune, bits, finetune_epochs, lr, batch_size)
    out = Path(out)
    _check_writable(out)
    say: Log = log or (lambda _: None)
    start = time.perf_counter()
    torch.manual_seed(seed)
    trained = load_trained(source, device)
    model = trained.model
    ctx = _context(trained, dataset=dataset, data_dir=data_dir, verify=verify, device=device,
                   batch_size=batch_size, seed=seed)
    params = dict(model.named_parameters())
    keys = [k for k in shared_layers(model) if k in params]
    weights = {k: params[k] for k in keys}
    acc = {"fp32": top1(model, ctx)}
    say(f"{trained.meta['model']}: test top-1 {100 * acc['fp32']:.2f} % before compression")
    seconds: dict[str, float] = {}

    # 1. prune (gradually over the first half of the fine-tuning), then train with the mask
    t0 = time.perf_counter()
    masks = {k: torch.ones_like(w, dtype=torch.bool) for k, w in weights.items()}

    def set_sparsity(fraction: float) -> None:
        with torch.no_grad():
            for k, w in weights.items():
                _prune_to(w, masks[k], fraction)
                w.mul_(masks[k])

    if finetune_epochs == 0:
        set_sparsity(prune)
    steps_total = finetune_epochs * max(1, len(ctx.train) // batch_size)
    ramp = max(1, steps_total // 2)
    updates = {min(ramp, max(1, round(ramp * i / 10))) for i in range(1, 11)}

    def mask_grads() -> None:
        for k, w in weights.items():
            if w.grad is not None:
                w.grad.mul_(masks[k])

    def after_prune_step(step: int, total: int) -> None:
        if step in updates:
            set_sparsity(prune * (1 - (1 - step / ramp) ** 3))
        else:
            with torch.no_grad():
                for k, w in weights.items():
                    w.mul_(masks[k])

    _fit(model, ctx, epochs=finetune_epochs, epoch0=0, groups=[{"params": list(params.values()), "lr": lr}],
         on_grad=mask_grads, after_step=after_prune_step, log=say, stage="prune")
    set_sparsity(prune)  # exactly the target (a no-op after the ramp)
    seconds["prune"] = time.perf_counter() - t0
    acc["pruned"] = top1(model, ctx)
    say(f"pruned to {100 * prune:.1f} %: test top-1 {100 * acc['pruned']:.2f} %")

    # 2. share: k-means per layer, then fine-tune the centroids (each one's gradient: the sum over its weights)
    t0 = time.perf_counter()
    tables: dict[str, Tensor] = {}
    index: dict[str, Tensor] = {}
    for k, w in weights.items():
        table, idx = share_weights(w, bits)
        tables[k] = table.to(ctx.device).requires_grad_(True)
        index[k] = idx.to(ctx.device)
    rewrite_from_tables(weights, tables, index)
    acc["quantised"] = top1(model, ctx)
    say(f"{bits}-bit codebooks: test top-1 {100 * acc['quantised']:.2f} %")
    others = [p for n, p in params.items() if n not in weights]

    def centroid_grads() -> None:
        for k, w in weights.items():
            g = torch.zeros_like(tables[k])
            if w.grad is not None:
                g.index_add_(0, index[k].reshape(-1), w.grad.reshape(-1).to(g.dtype))
                w.grad = None
            g[0] = 0  # the pruned zero stays zero
            tables[k].grad = g

    c_lr = centroid_lr if centroid_lr is not None else lr / 100
    groups = [{"params": list(tables.values()), "lr": c_lr}] + ([{"params": others, "lr": lr}] if others else [])
    _fit(model, ctx, epochs=finetune_epochs, epoch0=finetune_epochs, groups=groups, on_grad=centroid_grads,
         after_step=lambda step, total: rewrite_from_tables(weights, tables, index), log=say, stage="centroids")
    seconds["share"] = time.perf_counter() - t0

    # 3. encode, write, and measure the network decoded from the file
    t0 = time.perf_counter()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    shared = {k: (tables[k].detach().cpu(), index[k].cpu()) for k in weights}
    meta = trained.meta
    run = {k: meta.get(k) for k in ("model", "options", "classes", "dataset", "input", "stored_size", "epoch")}
    run["amp"] = "none"  # every figure here is float32, so `convzoo eval FILE` reproduces the report's
    settings = {"prune": prune, "bits": bits, "finetune_epochs": finetune_epochs, "source": str(trained.path)}
    size, directory = write_compressed(out, run, settings, state, shared)
    seconds["encode"] = time.perf_counter() - t0
    decoded, _ = load_compressed(out)
    acc["final"] = top1(decoded.to(ctx.device), ctx)
    say(f"{out}: {size:,} bytes, test top-1 {100 * acc['final']:.2f} %")
    seconds["total"] = time.perf_counter() - start
    layers, sizes = _sizes(state, directory, bits, size)
    zeros = sum(r.weights - r.nonzero for r in layers)
    n_shared = sum(r.weights for r in layers)
    return CompressReport(str(trained.path), str(out), meta["model"], ctx.data.name, prune, bits, finetune_epochs,
                          lr, c_lr, sum(p.numel() for p in params.values()), n_shared, zeros / max(n_shared, 1), sizes,
                          acc, tuple(layers), reference(meta, layers, sizes), seconds)


def rewrite_from_tables(weights: dict[str, Tensor], tables: dict[str, Tensor], index: dict[str, Tensor]) -> None:
    """Every shared weight set to codebook[index] (the only values it may take)."""
    with torch.no_grad():
        for k, w in weights.items():
            tables[k][0] = 0
            w.copy_(tables[k][index[k]])


def _sizes(state: dict[str, Tensor], directory: list[dict[str, Any]], bits: int,
           file_size: int) -> tuple[list[LayerRow], dict[str, int]]:
    rows = []
    totals = {"fp32": 0, "pruned": 0, "quantised": 0}
    for entry in directory:
        if entry["kind"] == "raw":
            raw = section_size(entry)
            for stage in totals:
                totals[stage] += raw
            continue
        w = state[entry["name"]]
        n, g, k, e = w.numel(), entry["gap_bits"], entry["centroids"], entry["entries"]
        row = LayerRow(entry["name"], tuple(w.shape), n, int((w != 0).sum()), k, g, e, 4 * n,
                       (e * (32 + g) + 7) // 8, (e * (bits + g) + 7) // 8 + 4 * k, section_size(entry))
        rows.append(row)
        totals["fp32"] += row.fp32
        totals["pruned"] += row.pruned
        totals["quantised"] += row.quantised
    return rows, {**totals, "encoded": file_size}


def reference(meta: dict[str, Any], layers: list[LayerRow], sizes: dict[str, int]) -> dict[str, Any]:
    """SqueezeNet §4's figures with their arithmetic, and this file's bits per weight applied to the
    1000-class, 3-channel network (arithmetic, not a measurement)."""
    from ..meta import build_on_meta
    from ..registry import create_model

    def count(name: str, **kw: Any) -> tuple[int, int]:
        net = build_on_meta(create_model, name=name, **kw)
        names = set(shared_layers(net))
        total = sum(p.numel() for p in net.parameters())
        return total, sum(p.numel() for n, p in net.named_parameters() if n in names)

    alexnet, _ = count("alexnet")
    full, full_weights = count(meta["model"]) if meta["model"].startswith("squeezenet") else (0, 0)
    ours_weights = sum(r.weights for r in layers)
    shared_bytes = sum(r.encoded for r in layers)
    raw_bytes = sizes["fp32"] - sum(r.fp32 for r in layers)  # biases, BN: float32 at every stage
    overhead = sizes["encoded"] - shared_bytes - raw_bytes  # magic, header, CRC
    per_weight = shared_bytes / max(ours_weights, 1)
    ref: dict[str, Any] = {
        "mb": "10^6 bytes (MiB: 2^20)",
        "alexnet_params": alexnet, "alexnet_fp32_bytes": 4 * alexnet,
        "paper": {"alexnet_fp32": "240MB", "squeezenet_fp32": "4.8MB", "squeezenet_8bit": "0.66MB",
                  "squeezenet_6bit": "0.47MB", "ratios_vs_alexnet": {"squeezenet": 50, "8bit": 363, "6bit": 510}},
        "bits_per_shared_weight": 8 * per_weight,
        "header_bytes": overhead,
    }
    if full:
        ref.update(squeezenet_1000_params=full, squeezenet_1000_fp32_bytes=4 * full,
                   squeezenet_1000_same_settings_bytes=round(per_weight * full_weights + 4 * (full - full_weights)
                                                            + overhead))
    return ref
