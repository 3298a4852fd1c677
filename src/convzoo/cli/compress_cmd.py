"""`convzoo compress` (Deep Compression into a .czc file) and `convzoo quantize` (int8 ONNX for the CPU).

Two commands rather than a `--int8` mode of one: they make different files (a `.czc` that `convzoo eval`
and `predict` decode into the dense float network; an int8 `.onnx` for onnxruntime) and take different
settings. Both are thin over `convzoo.deploy.compress` and `convzoo.deploy.quantize`.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from ..render import fmt_count, fmt_shape, text_table

if TYPE_CHECKING:
    from ..deploy.compress import CompressReport
    from ..deploy.quantize import QuantReport

__all__ = ["register", "render_compress", "render_quantize"]


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of positive batch sizes, e.g. 1,64")
    return sizes


def _data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help="the data to calibrate/fine-tune and test on (default: the run's)")
    p.add_argument("--data-dir", metavar="DIR")
    p.add_argument("--no-verify", dest="verify", action="store_false", help="skip the checksum verification")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="machine-readable report on stdout")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="Deep Compression: prune, share weights (k-means), Huffman-encode",
                       description="Prune each conv/linear layer to --prune sparsity with fine-tuning, share its "
                                   "weights in a --bits codebook with fine-tuned centroids, and encode it (relative "
                                   "indices + Huffman) into FILE, which `convzoo eval` and `convzoo predict` read. "
                                   "Progress goes to stderr.")
    p.add_argument("source", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("--prune", type=float, required=True, metavar="P",
                   help="fraction of each layer's weights set to zero, in [0, 1)")
    p.add_argument("--bits", type=int, required=True, metavar="B", help="codebook width per layer, 1-8 (2^B values)")
    p.add_argument("--out", required=True, metavar="FILE", help="the compressed file (.czc)")
    p.add_argument("--finetune-epochs", type=int, default=2, metavar="N",
                   help="epochs after pruning, and as many for the centroids (0: one-shot; default 2)")
    p.add_argument("--lr", type=float, default=0.01, help="peak SGD lr of the fine-tuning (cosine to 0)")
    p.add_argument("--centroid-lr", type=float, help="the centroids' lr (default lr/100)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    _data_flags(p)
    p.set_defaults(func=run_compress)

    p = sub.add_parser("quantize", help="int8 post-training quantisation to ONNX for the CPU, with speed-up",
                       description="Export to ONNX, calibrate on training images and quantise to int8 "
                                   "(onnxruntime, QDQ); report test accuracy of float32 and int8 and their latency "
                                   "measured interleaved. Progress goes to stderr.")
    p.add_argument("source", metavar="RUN_OR_CHECKPOINT", help="a run, a checkpoint or a .czc file")
    p.add_argument("--out", required=True, metavar="FILE", help="the int8 model (.onnx)")
    p.add_argument("--calibration", type=int, default=512, metavar="N", help="training images to calibrate on")
    p.add_argument("--batch-sizes", type=_batch_sizes, default=(1, 64), metavar="B1,B2", help="timed batch sizes")
    p.add_argument("--repeats", type=int, default=30, help="timed runs per batch size and engine")
    p.add_argument("--threads", type=int, default=1, help="threads per engine while timing (default 1)")
    _data_flags(p)
    p.set_defaults(func=run_quantize)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_compress(args: argparse.Namespace) -> None:
    from ..deploy.compress import compress

    r = compress(args.source, prune=args.prune, bits=args.bits, out=args.out, finetune_epochs=args.finetune_epochs,
                 lr=args.lr, centroid_lr=args.centroid_lr, batch_size=args.batch_size, dataset=args.dataset,
                 data_dir=args.data_dir, verify=args.verify, device=args.device, seed=args.seed,
                 log=_progress)
    if args.json:
        print(json.dumps(r.to_json(), indent=1))
        return
    print(render_compress(r))


def render_compress(r: CompressReport) -> str:
    """The report as text: the stages, each layer, and SqueezeNet's §4 arithmetic beside it."""
    from ..deploy.compress import MB

    acc, size, base = r.accuracy, r.sizes["encoded"], r.sizes["fp32"]
    stages = (("fp32", "fp32", "fp32"), ("pruned", "pruned", "pruned"), ("quantised", "quantised", "quantised"),
              ("encoded (the file)", "encoded", "final"))
    rows = [[label, fmt_count(r.sizes[key]), f"{r.sizes[key] / MB:.3f}", f"{base / r.sizes[key]:.1f}×",
             f"{100 * acc[stage]:.2f} %"] for label, key, stage in stages]
    layers = [[x.name, fmt_shape(x.shape), fmt_count(x.weights), f"{100 * x.nonzero / x.weights:.1f} %",
               str(x.centroids), str(x.gap_bits), fmt_count(x.fp32), fmt_count(x.pruned), fmt_count(x.quantised),
               fmt_count(x.encoded), f"{8 * x.encoded / max(x.nonzero, 1):.2f}"] for x in r.layers]
    ref = r.reference
    lines = [
        f"{r.model} ({r.source}) → {r.out}: prune {100 * r.prune:g} %, {r.bits}-bit codebooks, "
        f"{r.finetune_epochs} + {r.finetune_epochs} fine-tuning epochs",
        f"parameters {fmt_count(r.params)}, of which {fmt_count(r.shared_weights)} conv/linear weights pruned and "
        f"shared (sparsity reached {100 * r.sparsity:.2f} %)",
        text_table(["stage", "bytes", "MB", "ratio", "test top-1"], rows, right=[False, True, True, True, True]),
        f"test top-1 {100 * acc['fp32']:.2f} % → {100 * acc['final']:.2f} % ({r.points_lost:+.2f} points lost); "
        f"{size:,} bytes = {size / MB:.3f} MB (10^6 bytes) = {size / 2**20:.3f} MiB, {r.ratio:.1f}× smaller than "
        "float32",
        "(pruned: after its fine-tuning; quantised: before the centroids' fine-tuning; the pruned and quantised sizes "
        "are fixed-width fields, no Huffman)",
        text_table(["layer", "shape", "weights", "kept", "centroids", "gap bits", "fp32", "pruned", "quantised",
                    "encoded", "bits/kept"], layers, right=[False, False] + [True] * 9),
        f"SqueezeNet §4 beside it (4 bytes per parameter): AlexNet {fmt_count(ref['alexnet_params'])} parameters = "
        f"{ref['alexnet_fp32_bytes'] / MB:.1f} MB = {ref['alexnet_fp32_bytes'] / 2**20:.1f} MiB (paper: 240MB); "
        "SqueezeNet 4.8MB, and with Deep Compression 0.66MB (8-bit) and 0.47MB (6-bit): 363× and 510× under AlexNet",
    ]
    if "squeezenet_1000_params" in ref:
        full, fp32 = ref["squeezenet_1000_params"], ref["squeezenet_1000_fp32_bytes"]
        lines.append(f"the 1000-class, 3-channel {r.model} has {fmt_count(full)} parameters = {fp32 / MB:.3f} MB = "
                     f"{fp32 / 2**20:.2f} MiB (the paper's 4.8MB); at this file's "
                     f"{ref['bits_per_shared_weight']:.2f} bits per conv weight it would take about "
                     f"{ref['squeezenet_1000_same_settings_bytes']:,} bytes (arithmetic, not measured)")
    return "\n".join(lines)


def run_quantize(args: argparse.Namespace) -> None:
    from ..deploy.quantize import quantize

    r = quantize(args.source, out=args.out, calibration=args.calibration, batch_sizes=args.batch_sizes,
                 repeats=args.repeats, threads=args.threads, dataset=args.dataset, data_dir=args.data_dir,
                 verify=args.verify, seed=args.seed, log=_progress)
    if args.json:
        print(json.dumps(r.to_json(), indent=1))
        return
    print(render_quantize(r))


def render_quantize(r: QuantReport) -> str:
    """The report as text: accuracy, sizes, and the latency table."""
    a = r.accuracy

    def cell(s: dict[str, float]) -> str:
        return f"{s['median_ms']:.3f} ({s['p10_ms']:.3f}–{s['p90_ms']:.3f})"

    rows = [[str(row["batch"]), cell(row["torch_fp32"]), cell(row["onnx_fp32"]), cell(row["onnx_int8"]),
             f"{row['speedup_vs_onnx_fp32']:.2f}×", f"{row['speedup_vs_torch_fp32']:.2f}×"] for row in r.latency]
    return "\n".join([
        f"{r.model} ({r.source}) → {r.out}: {r.method}",
        f"test top-1: torch fp32 {100 * a['torch_fp32']:.2f} %, ONNX fp32 {100 * a['onnx_fp32']:.2f} %, int8 "
        f"{100 * a['onnx_int8']:.2f} % ({r.points_lost:+.2f} points lost); int8 and fp32 agree on "
        f"{100 * r.agreement:.2f} % of the test images",
        f"size: ONNX fp32 {r.sizes['onnx_fp32']:,} bytes, int8 {r.sizes['onnx_int8']:,} bytes",
        f"latency, ms per batch, median (p10–p90), {r.threads} thread(s), engines interleaved:",
        text_table(["batch", "torch fp32", "onnxruntime fp32", "onnxruntime int8", "int8 vs ort fp32",
                    "int8 vs torch"], rows, right=[True] * 6),
    ])
