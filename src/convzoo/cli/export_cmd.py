"""`convzoo export`: a network to ONNX, a .pt2 program or safetensors weights, checked against torch first.

Also the parse of `convzoo predict FILE.onnx` on its own (`parse_onnx_predict`): this module imports nothing
heavy at import time, so that a deployment's prediction runs with onnxruntime, numpy and PIL, without torch.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any, NoReturn

from ..errors import UserError

__all__ = ["add_predict_arguments", "parse_onnx_predict", "print_predictions", "register", "run_onnx_predict"]

FORMAT_NAMES = ("onnx", "pt2", "safetensors")  # convzoo.deploy.export.FORMATS, which imports torch


def register(sub: argparse._SubParsersAction) -> None:
    from ..peers import SOURCES
    from .inspect_cmd import _build_options  # the builder flags, spelled as `convzoo summary` spells them

    p = sub.add_parser(
        "export", help="a network to ONNX, a torch.export program or safetensors, checked against torch",
        description="Export a network and check the file before it counts: onnxruntime (CPU) for ONNX, "
                    "torch.export.load for .pt2, a fresh build for safetensors, on the same random images as "
                    "torch; max |Δ| ≤ 1e-4 of the largest logit and the same top-1, or nothing is written.")
    p.add_argument("source", metavar="SOURCE",
                   help="a run directory or checkpoint; a registered name (its initial weights, --seed); or a "
                        "weights file with --model NAME")
    p.add_argument("--format", choices=FORMAT_NAMES, help="default: from the suffix of --out")
    p.add_argument("--out", required=True, metavar="FILE", help="the file to write (.onnx, .pt2, .safetensors)")
    p.add_argument("--model", metavar="NAME", help="the registered network a weights file SOURCE is for")
    p.add_argument("--source", dest="weights_source", choices=SOURCES,
                   help="the weights file is this library's state dict (loaded by load_peer_weights)")
    p.add_argument("--seed", type=int, default=0, help="seed of a registered name's initial weights (default 0)")
    p.add_argument("--input", metavar="[C×]H×W", help="export size, e.g. 3x224x224, 224x224 or 224 (default: the "
                                                      "run's input, else the paper's)")
    _build_options(p)
    p.add_argument("--json", action="store_true", help="machine-readable record")
    p.set_defaults(func=run_export)


def _size(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        dims = tuple(int(d) for d in text.lower().replace("×", "x").split("x"))
    except ValueError:
        dims = ()
    if not 1 <= len(dims) <= 3 or min(dims) < 1:
        raise UserError(f"--input {text!r} is not a size; write CxHxW, HxW or S, e.g. 3x224x224")
    return dims


def run_export(args: argparse.Namespace) -> None:
    from ..deploy.export import export
    from .inspect_cmd import build_options

    record = export(args.source, args.format, args.out, model=args.model, weights_source=args.weights_source,
                    options=build_options(args), seed=args.seed, input_size=_size(args.input))
    print(json.dumps(record.to_json(), indent=1) if args.json else record.describe())


# --- predict FILE.onnx without torch ----------------------------------------------------------------

def add_predict_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of `convzoo predict` (one definition for the full parser and the torch-free one)."""
    p.add_argument("source", metavar="RUN_OR_CHECKPOINT", help="a run directory, a checkpoint or an exported "
                                                               ".onnx file (run by onnxruntime alone)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--json", action="store_true", help="machine-readable output")


class _NotOurs(Exception):
    pass


class _Probe(argparse.ArgumentParser):
    """A parser whose usage errors hand the command line back to the full parser, which reports them."""

    def error(self, message: str) -> NoReturn:
        raise _NotOurs(message)


def parse_onnx_predict(argv: Sequence[str]) -> argparse.Namespace | None:
    """`predict FILE.onnx IMAGE… [--top K] [--device D] [--json]` parsed without the other commands (whose
    modules import torch); None for any other command line, or one this parser does not fully understand."""
    if not argv or argv[0] != "predict":
        return None
    parser = _Probe(prog="convzoo predict", add_help=False)
    add_predict_arguments(parser)
    try:
        args, extra = parser.parse_known_args(list(argv[1:]))
    except _NotOurs:
        return None
    from ..deploy.onnx_predict import is_onnx

    if extra or not is_onnx(args.source):
        return None
    args.command, args.func = "predict", run_onnx_predict
    return args


def print_predictions(results: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=1))
        return
    for r in results:
        best = ", ".join(f"{t['class']} {100 * t['probability']:.1f} %" for t in r["top"])
        print(f"{r['image']}: {best}")


def run_onnx_predict(args: argparse.Namespace) -> None:
    from ..deploy.onnx_predict import predict_onnx

    print_predictions(predict_onnx(args.source, args.images, top=args.top, device=args.device), args.json)
