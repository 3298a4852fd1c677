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

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import UserError
from .czc import (
    FORMAT,
    MAGIC,
    MAX_CODE_BITS,
    MB,
    SUFFIX,
    decode_tensors,
    encode_tensors,
    huffman_decode,
    huffman_encode,
    huffman_lengths,
    is_compressed,
    load_compressed,
    pack,
    read_header,
    section_size,
    shared_layers,
    write_compressed,
)
from .finetune import Log, _Ctx, _fit, _prune_to, kmeans_1d, share_weights, top1

__all__ = ["FORMAT", "MAGIC", "MAX_CODE_BITS", "MB", "SUFFIX", "CompressReport", "LayerRow", "compress",
           "decode_tensors",
           "encode_tensors", "huffman_decode", "huffman_encode", "huffman_lengths", "is_compressed",
           "kmeans_1d", "load_compressed", "pack", "read_header", "section_size", "share_weights",
           "shared_layers", "write_compressed"]

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
