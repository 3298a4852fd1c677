"""Per-layer analysis: ``analyze(model or name) -> Report`` from one forward pass on the ``meta`` device.

Rows come from forward hooks on every module (leaf layers carry the figures); receptive fields, the
longest path of weight layers and a census of convolution and pooling ops come from a dispatch mode at
the aten level, so functional operations are seen too. Conventions (DESIGN.md): MACs are conv + fc
multiply-accumulates per image, bias excluded; FLOPs = 2 × MACs; receptive fields are per axis
(height, width) in input pixels, with the jump (effective stride). What the rules cannot account for
becomes a `Diagnostic`, never a silent zero; ``strict=True`` turns any diagnostic into an error.
"""
from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from ..inputs import diagnose_input, input_range
from ..meta import build_on_meta, is_meta, meta_twin
from ..registry import create_model, model_info
from .report import SCHEMA_VERSION, Diagnostic, LayerRecord, Report, Totals
from .rules import MAC_RULES, module_window
from .trace import Call, Trace, trace

__all__ = ["SCHEMA_VERSION", "Diagnostic", "IncompleteAnalysis", "LayerRecord", "Report", "Totals", "analyze"]


class IncompleteAnalysis(RuntimeError):
    """Raised by ``analyze(..., strict=True)`` when some figure could not be accounted for by a rule."""


def _network(model_or_name: nn.Module | str, device: str, options: Mapping[str, Any]) -> nn.Module:
    if isinstance(model_or_name, str):
        if device == "meta":
            return build_on_meta(create_model, name=model_or_name, **options)
        return create_model(model_or_name, **options).to(device)
    if device == "meta" and not is_meta(model_or_name):
        return meta_twin(model_or_name)
    return model_or_name


def _size(net: nn.Module, input_size: Sequence[int] | None) -> tuple[tuple[int, int, int], int]:
    if input_size is None:
        try:
            chans, h, w = model_info(getattr(net, "name", None)).input_size  # type: ignore[arg-type]
        except UserError:
            raise ValueError("analyze needs input_size=(C, H, W) for a network that is not registered") from None
        return (getattr(net, "in_chans", chans), h, w), 1  # the paper's size, at the channels it was built for
    size = tuple(int(s) for s in input_size)
    if len(size) not in (3, 4) or min(size) < 1:
        raise UserError(f"input size must be (C, H, W) or (N, C, H, W) with positive sizes, got {size}")
    return (size[-3], size[-2], size[-1]), (size[0] if len(size) == 4 else 1)


def analyze(model_or_name: nn.Module | str, input_size: Sequence[int] | None = None, device: str = "meta", *,
            batch: int | None = None, strict: bool = False, find_input_range: bool = True,
            options: Mapping[str, Any] | None = None) -> Report:
    """Analyze one forward pass of a network, layer by layer.

    Args:
        model_or_name: a registered name (built on `device` with `options`) or a module. On ``meta`` a
            module with real weights is analysed through a weightless twin; the module is not modified.
        input_size: (C, H, W) or (N, C, H, W); default: the registered paper input. The forward runs at
            batch 1; N (or `batch`) only scales the activation memory.
        device: where the forward runs; ``meta`` costs no memory or compute.
        strict: raise `IncompleteAnalysis` when any diagnostic is produced.
        find_input_range: search the square input sizes the network takes (a few extra shape-only passes).
    """
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise UserError(f"batch must be a positive integer, got {batch!r}")
    net = _network(model_or_name, device, options or {})
    size, n = _size(net, input_size)
    dtype = next((p.dtype for p in net.parameters() if p.is_floating_point()), torch.float32)
    x = torch.zeros(1, *size, device=device, dtype=dtype)
    try:
        traced = trace(net, x)
    except UserError:
        raise
    except (RuntimeError, ValueError) as err:
        built_with = options if isinstance(model_or_name, str) else None  # a failure at every size is theirs
        raise diagnose_input(net, tuple(x.shape), err, built_with=built_with) from None
    rows, diags = _records(net, traced)
    totals = _totals(net, rows, traced, batch or n, None, diags)
    if find_input_range:  # last: a network built here for the analysis may be stripped by the search
        totals = dataclasses.replace(totals, input_range=_input_range(net, size, net is not model_or_name))
    accounted = Counter[str]()
    for r in rows:
        if r.leaf:
            accounted.update(dict(r.ops))
    census = tuple((k, traced.census[k], accounted[k]) for k in ("convolution", "pooling"))
    env = (("torch", torch.__version__), ("device", str(device)))
    report = Report(getattr(net, "name", type(net).__name__), size, tuple(rows), totals, tuple(diags), census, env)
    if strict and diags:
        raise IncompleteAnalysis("; ".join(f"{d.where or '(forward)'}: {d.message}" for d in diags))
    return report


class _Channels(nn.Module):
    """Tells `input_range` how many channels a network that has no `in_chans` attribute takes."""

    def __init__(self, net: nn.Module, in_chans: int) -> None:
        super().__init__()
        self.net, self.in_chans = net, in_chans

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _input_range(net: nn.Module, size: tuple[int, int, int], owned: bool) -> tuple[int, int | None] | None:
    if getattr(net, "in_chans", 3) != size[0]:
        net = _Channels(net, size[0])
    return input_range(net, size[1], inplace=owned)


def _macs(call: Call, diags: list[Diagnostic]) -> tuple[int, str]:
    """The call's own MACs and where they come from (rule, the module's macs(), or the aten count)."""
    name = type(call.module).__name__
    if call.rule_macs is not None:
        if call.rule_macs != call.aten_macs:
            diags.append(Diagnostic("macs", call.name, f"the {name} rule gives {call.rule_macs:,} MACs but its "
                                    f"aten ops count {call.aten_macs:,}"))
        return call.rule_macs, "rule"
    if call.own_macs is not None:
        return call.own_macs, "macs()"
    if call.aten_macs:
        what = f"{name} has no MAC rule and no macs() method" if call.leaf else \
            f"functional ops in {name}.forward (not in any layer)"
        diags.append(Diagnostic("macs", call.name, f"{what}: its {call.aten_macs:,} MACs come from the aten-level "
                                "count, not from a formula"))
        return call.aten_macs, "aten"
    return 0, "rule" if type(call.module) in MAC_RULES else ("aten" if call.leaf else "")


def _record(call: Call, seen: set[int], diags: list[Diagnostic]) -> LayerRecord:
    m = call.module
    own = [p for p in m.parameters(recurse=False) if id(p) not in seen]
    seen.update(id(p) for p in own)
    macs, source = _macs(call, diags)
    win = module_window(m) if call.leaf else None
    fo, fi = call.field_out, call.field_in
    out_shape = call.output_shape[1:] if call.output_shape is not None else None
    return LayerRecord(
        index=call.index, name=call.name, type=type(m).__name__, depth=call.name.count(".") + 1 if call.name else 0,
        parent=call.parent, leaf=call.leaf, called=True,
        input_shape=call.input_shape[1:] if call.input_shape is not None else None, output_shape=out_shape,
        kernel=win and win.kernel, stride=win and win.stride, padding=win and win.padding,
        dilation=win and win.dilation, groups=win.groups if win and isinstance(m, nn.Conv2d) else None,
        ceil_mode=bool(win and win.ceil_mode),
        params=sum(p.numel() for p in own), trainable_params=sum(p.numel() for p in own if p.requires_grad),
        macs=macs, macs_source=source, neurons=math.prod(out_shape) if out_shape is not None else 0,
        rf=fo and fo.size, jump=fo and fo.jump, rf_start=fo and fo.start, rf_in=fi and fi.size,
        jump_in=fi and fi.jump, weight_layers=fo and fo.depth, ops=tuple(sorted(call.ops.items())),
    )


def _records(net: nn.Module, traced: Trace) -> tuple[list[LayerRecord], list[Diagnostic]]:
    diags: list[Diagnostic] = []
    seen: set[int] = set()
    rows = [_record(c, seen, diags) for c in traced.calls]
    by_name = {r.name: r.index for r in reversed(rows)}
    called = {id(c.module) for c in traced.calls}
    for name, m in net.named_modules():  # modules holding parameters that this forward never called
        if id(m) in called or all(id(p) in seen for p in m.parameters()):
            continue
        own = [p for p in m.parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in own)
        parent = by_name.get(name.rpartition(".")[0]) if name else None
        by_name.setdefault(name, len(rows))
        rows.append(LayerRecord(
            index=len(rows), name=name, type=type(m).__name__, depth=name.count(".") + 1 if name else 0,
            parent=parent, leaf=not any(True for _ in m.children()), called=False, input_shape=None,
            output_shape=None, params=sum(p.numel() for p in own),
            trainable_params=sum(p.numel() for p in own if p.requires_grad)))
    for c in traced.calls:
        if not c.leaf and c.ops:
            ops = ", ".join(f"{n} {k}" for k, n in sorted(c.ops.items()))
            diags.append(Diagnostic("census", c.name, f"functional {ops} op(s) in {type(c.module).__name__}.forward: "
                                    "no layer row shows them (use nn modules for geometry)"))
    for kind, where, message in dict.fromkeys(traced.problems):
        diags.append(Diagnostic(kind, where, message))
    return rows, diags


def _big_map(shape: tuple[int, ...] | None) -> bool:
    return shape is not None and len(shape) == 3 and shape[1] * shape[2] > 1


def _features_field(rows: Sequence[LayerRecord]) -> tuple[tuple[int, int] | None, tuple[int, int] | None, str | None]:
    """The field of the last map larger than 1×1: the input of the last layer that pools or flattens it."""
    called = [r for r in rows if r.leaf and r.called]
    ends = [r for r in called if _big_map(r.input_shape) and not _big_map(r.output_shape) and r.rf_in]
    if ends:
        return ends[-1].rf_in, ends[-1].jump_in, f"the input of {ends[-1].name}"
    maps = [r for r in called if _big_map(r.output_shape) and r.rf]
    return (maps[-1].rf, maps[-1].jump, maps[-1].name) if maps else (None, None, None)


def _totals(net: nn.Module, rows: Sequence[LayerRecord], traced: Trace, batch: int,
            rng: tuple[int, int | None] | None, diags: Sequence[Diagnostic]) -> Totals:
    params = sum(r.params for r in rows)
    trainable = sum(r.trainable_params for r in rows)
    macs = sum(r.macs for r in rows)
    acts = sum(r.neurons for r in rows if r.leaf and r.called)
    rf, jump, where = _features_field(rows)
    kinds = {d.kind for d in diags}
    return Totals(
        params=params, trainable_params=trainable, non_trainable_params=params - trainable,
        buffers=sum(b.numel() for b in net.buffers()), macs=macs, flops=2 * macs, activations=acts, batch=batch,
        weight_bytes=tuple((k, params * b) for k, b in (("fp32", 4), ("fp16", 2), ("int8", 1))),
        activation_bytes=tuple((k, acts * batch * b) for k, b in (("fp32", 4), ("fp16", 2))),
        receptive_field=rf, jump=jump, rf_layer=where,
        weight_layers=rows[0].weight_layers if rows else None, input_range=rng,
        macs_status="partial" if "macs" in kinds else "complete",
        rf_status="partial" if "receptive_field" in kinds else "complete",
        layers_status="partial" if "census" in kinds else "complete",
    )

