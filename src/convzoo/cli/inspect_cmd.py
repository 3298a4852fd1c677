"""`convzoo summary`, `convzoo cost` and `convzoo compare`: inspect networks and convolution designs."""
from __future__ import annotations

import argparse
import ast
import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from ..analysis import Report, analyze, cost
from ..analysis.report import fmt_pair
from ..errors import UserError
from ..registry import list_models, model_info
from ..render import fmt_count, fmt_shape, fmt_si, md_table, text_table

__all__ = ["build_options", "compare_rows", "parse_input", "plot_macs_params", "register", "render_report"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="per-layer shapes, parameters, MACs and receptive fields of one network")
    p.add_argument("name", help="a registered name (see `convzoo list`)")
    _input_option(p)
    p.add_argument("--depth", type=int, metavar="N", help="fold modules deeper than N into their parents")
    p.add_argument("--explain", action="store_true", help="write each layer's arithmetic with its numbers")
    p.add_argument("--format", choices=("table", "md", "csv", "json"), default="table")
    p.add_argument("--json", dest="format", action="store_const", const="json", help="same as --format json")
    p.add_argument("--batch", type=int, default=1, help="batch size for the activation memory (default 1)")
    _build_options(p)
    p.set_defaults(func=run_summary)

    p = sub.add_parser("compare", help="parameters, MACs, depth and receptive field of several networks")
    p.add_argument("names", nargs="+", metavar="NAME", help="registered names or patterns ('resnet*')")
    _input_option(p)
    p.add_argument("--plot", metavar="PNG", help="also draw MACs against parameters (log-log) to this file")
    _build_options(p)
    p.add_argument("--format", choices=("table", "md", "csv", "json"), default="table")
    p.add_argument("--json", dest="format", action="store_const", const="json", help="same as --format json")
    p.set_defaults(func=run_compare)

    p = sub.add_parser("cost", help="closed-form parameters and MACs of convolution designs")
    kinds = p.add_subparsers(dest="kind", metavar="DESIGN", required=True)
    for kind, (helptext, options, _) in _DESIGNS.items():
        q = kinds.add_parser(kind, help=helptext, description=helptext)
        for flags, dest, kw in options:
            q.add_argument(*flags, dest=dest, **({"type": int} if "action" not in kw else {}), **kw)
        q.add_argument("--size", type=_size, default=None, metavar="H[xW]",
                       help="map size h×w (default 1: figures per output position)")
        q.add_argument("--json", action="store_true", help="machine-readable output")
        q.set_defaults(func=run_cost)


# --- summary --------------------------------------------------------------------------------------

def _input_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", metavar="CxHxW", help="input size: 3x227x227, 227x227 or 227 (default: the paper's)")


def _build_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in-chans", type=int, help="build the network for this many input channels")
    p.add_argument("--num-classes", type=int, help="build the network for this many classes")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a builder option, e.g. conv1_padding=2 or aux_logits=True (repeatable)")


def build_options(args: argparse.Namespace) -> dict[str, Any]:
    """The builder options of --in-chans, --num-classes and --set KEY=VALUE (values read as Python literals)."""
    options: dict[str, Any] = {"in_chans": args.in_chans, "num_classes": args.num_classes}
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            raise UserError(f"--set {item!r} is not KEY=VALUE, e.g. --set conv1_padding=2")
        try:
            options[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            options[key] = text
    return {k: v for k, v in options.items() if v is not None}


def parse_input(text: str | None, name: str, in_chans: int | None = None) -> tuple[int, int, int] | None:
    """'3x227x227', '227x227' or '227' -> (C, H, W); channels default to the network's."""
    if text is None:
        return None
    try:
        dims = [int(d) for d in text.lower().replace("×", "x").split("x")]
    except ValueError:
        dims = []
    if not dims or len(dims) > 3 or min(dims) < 1:
        raise UserError(f"--input {text!r} is not a size; write CxHxW, HxW or S, e.g. 3x227x227")
    chans = in_chans or model_info(name).input_size[0]
    if len(dims) == 1:
        return (chans, dims[0], dims[0])
    return (chans, dims[0], dims[1]) if len(dims) == 2 else (dims[0], dims[1], dims[2])


def render_report(report: Report, fmt: str, depth: int | None = None) -> str:
    if fmt == "json":
        return report.to_json()
    if fmt == "csv":
        return report.to_csv(depth).rstrip("\n")
    return report.to_markdown(depth) if fmt == "md" else report.to_table(depth)


def run_summary(args: argparse.Namespace) -> None:
    if args.explain and args.format != "table":
        raise UserError("--explain writes text derivations; leave out --format/--json")
    if args.depth is not None and args.depth < 1:
        raise UserError(f"--depth must be 1 or more, got {args.depth}")
    if args.batch < 1:
        raise UserError(f"--batch must be 1 or more, got {args.batch}")
    size = parse_input(args.input, args.name, args.in_chans)
    report = analyze(args.name, size, batch=args.batch, options=build_options(args))
    print(report.explain() if args.explain else render_report(report, args.format, args.depth))


# --- compare --------------------------------------------------------------------------------------

def _expand(names: Sequence[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        found = list_models(n) if any(c in n for c in "*?[") else [model_info(n).name]
        if not found:
            raise UserError(f"no registered model matches {n!r}; `convzoo list` shows them all")
        out += [f for f in found if f not in out]
    return out


def compare_rows(names: Sequence[str], input_text: str | None = None,
                 options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One record per network: parameters, MACs, weight layers, receptive field, square input sizes."""
    rows = []
    for name in _expand(names):
        r = analyze(name, parse_input(input_text, name, (options or {}).get("in_chans")), options=options)
        t = r.totals
        rows.append({"name": name, "input": list(r.input_size), "params": t.params, "macs": t.macs,
                     "weight_layers": t.weight_layers, "receptive_field": list(t.receptive_field or ()) or None,
                     "input_range": list(t.input_range) if t.input_range else None,
                     "complete": r.complete})
    return rows


def _compare_cells(r: dict[str, Any]) -> list[str]:
    rng = r["input_range"]
    sizes = "?" if rng is None else (f"{rng[0]}–{rng[1]}" if rng[1] else f"≥ {rng[0]}")
    rf = fmt_pair(tuple(r["receptive_field"])) if r["receptive_field"] else ""
    return [r["name"] + ("" if r["complete"] else " *"), fmt_shape(r["input"]), fmt_count(r["params"]),
            fmt_si(r["params"]), fmt_count(r["macs"]), fmt_si(r["macs"]), str(r["weight_layers"]), rf, sizes]


_COMPARE = ["name", "input", "params", "≈", "MACs", "≈", "depth", "RF", "square input"]


def plot_macs_params(rows: Sequence[dict[str, Any]], path: str) -> None:
    """Log-log scatter of MACs against parameters, one labelled point per network."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, LogLocator
    except ImportError:
        raise UserError("--plot needs matplotlib; install it with: pip install 'convzoo[plot]'") from None
    fig, ax = plt.subplots(figsize=(7, 5))
    try:
        ax.scatter([r["params"] for r in rows], [r["macs"] for r in rows])
        for r in rows:
            ax.annotate(r["name"], (r["params"], r["macs"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set(xscale="log", yscale="log", xlabel="parameters", ylabel="MACs per image (FLOPs = 2 × MACs)",
               title="MACs against parameters")
        si = FuncFormatter(lambda v, _: fmt_si(v))
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(si)
            axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
            axis.set_minor_formatter(si)
        ax.grid(True, which="both", alpha=0.3)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    except OSError as err:
        raise UserError(f"cannot write the plot to {path!r}: {err.strerror}") from None
    finally:
        plt.close(fig)


def run_compare(args: argparse.Namespace) -> None:
    rows = compare_rows(args.names, args.input, build_options(args))
    if args.plot:
        plot_macs_params(rows, args.plot)
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    elif args.format == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for r in rows:
            rng = r["input_range"]
            writer.writerow({**{k: "x".join(map(str, v)) if isinstance(v, list) else v for k, v in r.items()},
                             "input_range": f"{rng[0]}-{rng[1] or ''}" if rng else ""})
        print(buf.getvalue().rstrip("\n"))
    else:
        cells = [_compare_cells(r) for r in rows]
        if args.format == "md":
            print("\n".join(md_table(_COMPARE, cells, [False] + [True] * 8)))
        else:
            print(text_table(_COMPARE, cells, right=[False] + [True] * 8))
        notes = ["MACs per image (FLOPs = 2 × MACs); depth: weight layers on the longest path; RF: receptive "
                 "field of the last feature map"]
        notes += ["* incomplete analysis: run `convzoo summary NAME` for its diagnostics"] * any(
            not r["complete"] for r in rows)
        notes += [f"plot written to {args.plot}"] if args.plot else []
        print("\n" + "\n".join(notes))


# --- cost -----------------------------------------------------------------------------------------

def _size(text: str) -> tuple[int, int]:
    try:
        dims = [int(d) for d in text.lower().replace("×", "x").split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a map size; write H or HxW, e.g. 28") from None
    if len(dims) not in (1, 2) or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a map size; write H or HxW, e.g. 28")
    return (dims[0], dims[-1])


_CIN = (("--in",), "c_in", {"required": True, "metavar": "C_IN", "help": "input channels"})
_COUT = (("--out",), "c_out", {"required": True, "metavar": "C_OUT", "help": "output channels"})
_K = (("-k", "--kernel"), "k", {"required": True, "help": "kernel size"})
_C = (("-c", "--channels"), "c", {"required": True, "help": "channels c (in and out)"})
_M = (("-m", "--bottleneck"), "m", {"required": True, "help": "bottleneck channels m"})
_G = (("-g", "--groups"), "g", {"required": True, "help": "groups g"})

_DESIGNS: dict[str, tuple[str, list[tuple[tuple[str, ...], str, dict[str, Any]]], Any]] = {
    "conv": ("a standard or grouped k×k convolution", [_CIN, _COUT, _K, (("-g", "--groups"), "g", {"default": 1}),
                                                        (("--bias",), "bias", {"action": "store_true"})],
             lambda a, h, w: cost.conv(a.c_in, a.c_out, a.k, h, w, a.g, a.bias)),
    "separable": ("depthwise k×k + pointwise 1×1, versus a standard k×k", [_CIN, _COUT, _K],
                  lambda a, h, w: cost.separable(a.c_in, a.c_out, a.k, h, w)),
    "bottleneck": ("a 1×1 reduction before a k×k convolution, versus the k×k alone (Inception)",
                   [_CIN, (("--reduce",), "c_red", {"required": True, "help": "channels after the 1×1"}), _COUT, _K],
                   lambda a, h, w: cost.bottleneck(a.c_in, a.c_red, a.c_out, a.k, h, w)),
    "stack": ("n stacked k×k convolutions versus one kernel of the same receptive field (VGG)",
              [_C, (("-k", "--kernel"), "k", {"default": 3}), (("-n", "--layers"), "n", {"default": 3})],
              lambda a, h, w: cost.stack(a.c, a.k, a.n, h, w)),
    "factorize": ("n×1 then 1×n versus one n×n convolution (Inception v3)",
                  [_C, (("-n",), "n", {"required": True, "help": "kernel size n"})],
                  lambda a, h, w: cost.factorized(a.c, a.n, h, w)),
    "resnet": ("ResNet bottleneck unit: hw(2cm + 9m²)", [_C, _M], lambda a, h, w: cost.resnet_unit(a.c, a.m, h, w)),
    "resnext": ("ResNeXt unit: hw(2cm + 9m²/g)", [_C, _M, _G],
                lambda a, h, w: cost.resnext_unit(a.c, a.m, a.g, h, w)),
    "shufflenet": ("ShuffleNet unit: hw(2cm/g + 9m)", [_C, _M, _G],
                   lambda a, h, w: cost.shufflenet_unit(a.c, a.m, a.g, h, w)),
}


def _cost_dict(c: cost.Cost) -> dict[str, Any]:
    d = {k: v for k, v in asdict(c).items() if k not in ("versus", "build")}
    d["versus"] = _cost_dict(c.versus) if c.versus else None
    return d


def run_cost(args: argparse.Namespace) -> None:
    h, w = args.size or (1, 1)
    result = _DESIGNS[args.kind][2](args, h, w)
    print(json.dumps(_cost_dict(result), indent=1, ensure_ascii=False) if args.json else cost.describe(result))
