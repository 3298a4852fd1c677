"""`convzoo list` and `convzoo info`: what is registered, and what each network is."""
from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from ..counting import count_macs, count_params
from ..errors import UserError
from ..inputs import input_range
from ..meta import build_on_meta
from ..registry import ModelInfo, PaperFigure, create_model, list_models, model_info
from ..render import fmt_count, fmt_shape, fmt_stated, text_table

__all__ = ["info_text", "list_rows", "register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="registered networks: name, family, paper, input, parameters")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'vgg*' (default: all)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_list)
    p = sub.add_parser("info", help="paper, configuration, deviations and figures of one network")
    p.add_argument("name", help="a registered name (see `convzoo list`)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run_info)


def list_rows(pattern: str = "*") -> list[dict[str, Any]]:
    """One record per registered name matching `pattern` (parameters counted on the meta device)."""
    names = list_models(pattern)
    if not names:
        raise UserError(f"no registered model matches {pattern!r}; `convzoo list` shows them all")
    rows = []
    for name in names:
        info = model_info(name)
        net = build_on_meta(create_model, name=name)
        rows.append({"name": name, "family": info.family, "paper": info.paper.short,
                     "input": list(info.input_size), "params": count_params(net)})
    return rows


def run_list(args: argparse.Namespace) -> None:
    rows = list_rows(args.pattern)
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(text_table(["name", "family", "paper", "input", "params"],
                     [[r["name"], r["family"], r["paper"], fmt_shape(r["input"]), fmt_count(r["params"])]
                      for r in rows], right=[False, False, False, True, True]))


def _versus(ours: int, fig: PaperFigure | None) -> str:
    if fig is None:
        return "the paper states none"
    diff = ours - fig.value
    verdict = f"ours differs by {diff:+,.0f} ({diff / fig.value:+.2%})" if diff else "ours is exactly the paper's"
    line = f"paper: {fmt_stated(fig.value, fig.rel_tol)} ({fig.where}); {verdict}"
    return line + (f"; gap: {fig.gap}" if fig.gap else "")


def info_record(info: ModelInfo) -> dict[str, Any]:
    net = build_on_meta(create_model, name=info.name)
    rng = input_range(net, info.input_size[1])
    config = dataclasses.asdict(info.config) if dataclasses.is_dataclass(info.config) else info.config
    return {
        "name": info.name, "family": info.family, "summary": info.doc.splitlines()[0] if info.doc else "",
        "paper": str(info.paper), "input_size": list(info.input_size),
        "input_range": list(rng) if rng else None, "config": config,
        "params": count_params(net), "trainable_params": count_params(net, trainable_only=True),
        "macs": count_macs(net, info.input_size),
        "paper_params": dataclasses.asdict(info.params) if info.params else None,
        "paper_macs": dataclasses.asdict(info.macs) if info.macs else None,
        "deviations": list(info.deviations), "peers": dict(info.peers),
        "input_hint": info.input_hint, "aux_weight": info.aux_weight,
    }


def info_text(info: ModelInfo) -> str:
    r = info_record(info)
    lo_hi = r["input_range"]
    sizes = "none found" if not lo_hi else (f"{lo_hi[0]} to {lo_hi[1]}" if lo_hi[1] else f"{lo_hi[0]} or more")
    peers = ", ".join(f"{k} {v!r}" for k, v in r["peers"].items()) or "none ships this network"
    lines = [
        f"{info.name}: {r['summary']}",
        f"  family      {info.family}",
        f"  paper       {r['paper']}",
        f"  input       {fmt_shape(info.input_size)} (square sizes that work: {sizes})",
        f"  config      {r['config']}" if r["config"] is not None else None,
        f"  params      {fmt_count(r['params'])} ({_versus(r['params'], info.params)})",
        f"  MACs        {fmt_count(r['macs'])} at {fmt_shape(info.input_size)}, FLOPs = 2 × MACs "
        f"({_versus(r['macs'], info.macs)})",
        f"  peers       {peers} (load with convzoo.load_peer_weights)",
        f"  aux loss    weight {info.aux_weight} per auxiliary head" if info.aux_weight else None,
        f"  input note  {info.input_hint}" if info.input_hint else None,
        "  deviations from the paper:",
    ]
    lines += [f"    - {d}" for d in info.deviations] or ["    - none"]
    return "\n".join(line for line in lines if line is not None)


def run_info(args: argparse.Namespace) -> None:
    info = model_info(args.name)
    print(json.dumps(info_record(info), indent=1) if args.json else info_text(info))
