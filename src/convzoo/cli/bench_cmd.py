"""`convzoo bench`: images per second, step-time spread, memory and TFLOP/s; thin over `convzoo.bench`."""
from __future__ import annotations

import argparse
import json

from ..bench import MODES, Settings, bench, compare, render
from ..bench.run import DTYPES
from ..peers import SOURCES
from .inspect_cmd import build_options

__all__ = ["register"]


def _side(text: str) -> tuple[int, int]:
    """'224' or '224x192' -> (H, W)."""
    try:
        dims = [int(d) for d in text.lower().replace("×", "x").split("x")]
    except ValueError:
        dims = []
    if len(dims) not in (1, 2) or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an input size; write S or HxW, e.g. 224 or 299x299")
    return (dims[0], dims[-1])


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="time a network's steps: img/s, median/p10/p90 ms, memory, TFLOP/s",
                       description="Warm up, then time each step (CUDA events on a GPU, perf_counter on the CPU). "
                                   "The TF Inception tutorial's classic timing uses --batch 32 --input-size 299 "
                                   "--warmup 10 --steps 100 --classic.")
    p.add_argument("name", help="a registered name (see `convzoo list`)")
    p.add_argument("--mode", choices=MODES, default=Settings.mode,
                   help="infer: eval forward under inference_mode; train: forward, backward and an SGD step")
    p.add_argument("--batch", type=int, default=Settings.batch, help=f"images per step (default {Settings.batch})")
    p.add_argument("--input-size", type=_side, metavar="S", help="input side S or HxW (default: the paper's)")
    p.add_argument("--dtype", choices=tuple(DTYPES), default=Settings.dtype, help="fp32, or autocast to bf16/fp16")
    p.add_argument("--channels-last", action="store_true", help="network and input in channels_last memory format")
    p.add_argument("--compile", action="store_true", help="torch.compile (compile time reported as compile_s)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="CUDA graphs via torch.compile(mode='reduce-overhead'); needs --device cuda")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default=Settings.device)
    p.add_argument("--steps", type=int, default=Settings.steps, help=f"timed steps (default {Settings.steps})")
    p.add_argument("--warmup", type=int, default=Settings.warmup,
                   help=f"untimed steps first, the classic burn-in (default {Settings.warmup})")
    p.add_argument("--vs", choices=SOURCES, help="also time the peer library's same network, interleaved")
    p.add_argument("--classic", action="store_true",
                   help="also print the TF tutorial's 'Forward' and 'Forward-backward' mean ± sd lines")
    p.add_argument("--peak-tflops", type=float, metavar="X", help="the device's peak TFLOP/s: report the fraction")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--in-chans", type=int, help="build the network for this many input channels")
    p.add_argument("--num-classes", type=int, help="build the network for this many classes")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a builder option, e.g. aux_logits=True (repeatable)")
    p.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> None:
    settings = {"mode": args.mode, "batch": args.batch, "input_size": args.input_size, "dtype": args.dtype,
                "channels_last": args.channels_last, "compile": args.compile, "cuda_graphs": args.cuda_graphs,
                "device": args.device, "steps": args.steps, "warmup": args.warmup, "classic": args.classic,
                "peak_tflops": args.peak_tflops, "options": build_options(args)}
    result = compare(args.name, args.vs, **settings) if args.vs else bench(args.name, **settings)
    print(json.dumps(result, indent=1, ensure_ascii=False) if args.json else render(result))
