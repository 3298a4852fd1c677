"""Each layer's arithmetic with its numbers filled in (``convzoo summary NAME --explain``).

For a convolution or pooling layer: the output size ⌊(in + 2p − d(k−1) − 1)/s⌋ + 1 (⌈⌉ in ceil mode),
the parameters k_h·k_w·C_in/g·C_out + C_out, the MACs H_out·W_out·C_out·k_h·k_w·C_in/g, and the
receptive field rf_in + (k−1)·d·jump_in with the new jump jump_in·s, per axis where height and width
differ. A warning marks a division that drops pixels: when (in + 2p − d(k−1) − 1) is not a multiple of
s, the last pixels of the padded input are never covered by a window (AlexNet's conv1 at 224 instead
of 227).
"""
from __future__ import annotations

from ..render import fmt_count, fmt_shape
from .report import LayerRecord, Report, fmt_pair, fmt_window

__all__ = ["explain", "explain_row", "output_size"]


def output_size(n: int, k: int, s: int, p: int, d: int = 1, ceil: bool = False) -> tuple[int, int]:
    """(output size, pixels dropped) of a sliding window along one axis: ⌊(n + 2p − d(k−1) − 1)/s⌋ + 1."""
    span = n + 2 * p - d * (k - 1) - 1
    if ceil:
        out = -(-span // s) + 1
        if (out - 1) * s >= n + p:  # torch: the last window must start inside the input or left padding
            out -= 1
        return out, 0
    return span // s + 1, span % s


def _size_lines(r: LayerRecord, axis: int, label: str) -> list[str]:
    n = r.input_shape[1 + axis]  # type: ignore[index]
    k, s, p, d = r.kernel[axis], r.stride[axis], r.padding[axis], r.dilation[axis]  # type: ignore[index]
    out, dropped = output_size(n, k, s, p, d, r.ceil_mode)
    lo, hi = ("⌈", "⌉") if r.ceil_mode else ("⌊", "⌋")
    span = n + 2 * p - d * (k - 1) - 1
    lines = [f"out{label} = {lo}(in + 2p − d(k−1) − 1)/s{hi} + 1 = {lo}({n} + {2 * p} − {d * (k - 1)} − 1)/{s}{hi} "
             f"+ 1 = {out}"]
    if dropped:
        lines.append(f"  warning: {n} + {2 * p} − {d * (k - 1)} − 1 = {span} is not a multiple of {s}: the last "
                     f"{dropped} pixel(s) of the padded {n + 2 * p}-pixel input{label and ' ' + label[1:]} are "
                     "never covered")
    return lines


def _rf_line(r: LayerRecord, axis: int, label: str) -> list[str]:
    if not (r.rf_in and r.jump_in):
        return []
    k, s, d = r.kernel[axis], r.stride[axis], r.dilation[axis]  # type: ignore[index]
    rf_in, j_in = r.rf_in[axis], r.jump_in[axis]
    return [f"RF{label} = rf_in + (k−1)·d·jump_in = {rf_in} + {k - 1}·{d}·{j_in} = {rf_in + (k - 1) * d * j_in}; "
            f"jump = jump_in·s = {j_in}·{s} = {j_in * s}"]


def _window_lines(r: LayerRecord) -> list[str]:
    same = r.kernel[0] == r.kernel[1] and r.stride[0] == r.stride[1] and r.padding[0] == r.padding[1] \
        and r.dilation[0] == r.dilation[1] and r.input_shape[1] == r.input_shape[2] \
        and (r.rf_in is None or r.rf_in[0] == r.rf_in[1]) and (r.jump_in is None or r.jump_in[0] == r.jump_in[1])
    axes = [(0, "")] if same else [(0, "_h"), (1, "_w")]
    lines = [line for a, label in axes for line in _size_lines(r, a, label)]
    rf = [line for a, label in axes for line in _rf_line(r, a, label)]
    if r.groups is None:  # pooling
        return lines + rf
    c_in, c_out = r.input_shape[0], r.output_shape[0]
    h, w = r.output_shape[1], r.output_shape[2]
    kh, kw, g = r.kernel[0], r.kernel[1], r.groups
    cin_g = f"{c_in}/{g}" if g > 1 else f"{c_in}"
    bias = r.params - kh * kw * (c_in // g) * c_out
    p_terms = f"{kh}·{kw}·{cin_g}·{c_out}" + (f" + {c_out}" if bias else "")
    lines.append(f"params = k_h·k_w·C_in/g·C_out{' + C_out' if bias else ''} = {p_terms} = {fmt_count(r.params)}")
    lines.append(f"MACs = H_out·W_out·C_out·k_h·k_w·C_in/g = {h}·{w}·{c_out}·{kh}·{kw}·{cin_g} = {fmt_count(r.macs)}")
    lines.append(f"neurons = C_out·H_out·W_out = {c_out}·{h}·{w} = {fmt_count(r.neurons)}")
    return lines + rf


def _other_lines(r: LayerRecord) -> list[str]:
    if r.type == "Linear" and r.input_shape:
        c_in, c_out = r.input_shape[-1], r.output_shape[-1]  # type: ignore[index]
        bias = r.params - c_in * c_out
        return [f"params = C_in·C_out{' + C_out' if bias else ''} = {c_in}·{c_out}"
                f"{f' + {c_out}' if bias else ''} = {fmt_count(r.params)}",
                f"MACs = C_in·C_out = {c_in}·{c_out} = {fmt_count(r.macs)}"]
    if r.type.startswith("BatchNorm") and r.params:
        c = r.params // 2
        return [f"params = 2·C = 2·{c} = {fmt_count(r.params)} (γ and β; running mean and variance are buffers)"]
    if r.type == "Flatten" and r.input_shape and len(r.input_shape) == 3:
        return [f"flatten: {fmt_shape(r.input_shape)} → {'·'.join(map(str, r.input_shape))} = "
                f"{fmt_count(r.neurons)} values"]
    if r.type.startswith("Adaptive") and r.input_shape and r.output_shape and r.rf_in and r.jump_in:
        n, o, rf_in, j_in = r.input_shape[1], r.output_shape[1], r.rf_in[0], r.jump_in[0]
        if n == r.input_shape[2] and o == r.output_shape[2] and n % o == 0 and rf_in == r.rf_in[1]:
            k = n // o
            return [f"k = s = in/out = {n}/{o} = {k}: RF = rf_in + (k−1)·jump_in = {rf_in} + {k - 1}·{j_in} = "
                    f"{rf_in + (k - 1) * j_in}; jump = jump_in·s = {j_in}·{k} = {j_in * k}"]
        return [f"uneven windows over the {fmt_shape(r.input_shape[1:])} map: RF = {fmt_pair(r.rf)} (the whole "
                f"map), jump = {fmt_pair(r.jump)}"]
    lines = []
    if r.params:
        lines.append(f"params = {fmt_count(r.params)} (held by this module)")
    if r.macs:
        lines.append(f"MACs = {fmt_count(r.macs)} (from {r.macs_source})")
    return lines


def explain_row(r: LayerRecord) -> list[str]:
    """The derivation lines of one row (empty for layers with nothing to derive, like ReLU)."""
    if not r.called:
        return [f"{r.name}  {r.type}: not called by this forward; holds {fmt_count(r.params)} parameters"]
    if r.kernel is not None and r.input_shape and r.output_shape and len(r.input_shape) == 3:
        body = _window_lines(r)
    else:
        body = _other_lines(r)
    if not body:
        return []
    shapes = f"{fmt_shape(r.input_shape or ())} → {fmt_shape(r.output_shape or ())}"
    window = f" {fmt_window(r)}" if r.kernel else ""
    return [f"{r.name or '(forward)'}  {r.type}{window}: {shapes}", *[f"  {line}" for line in body]]


def explain(report: Report) -> str:
    """All derivations, in forward order, then the totals they add up to."""
    lines = [f"{report.model} at {fmt_shape(report.input_size)}: output size ⌊(in + 2p − d(k−1) − 1)/s⌋ + 1, "
             "MACs per image, receptive field (RF) and jump in input pixels", ""]
    for r in report.rows:
        if r.leaf or r.params or r.macs or not r.called:
            block = explain_row(r)
            lines += [*block, ""] if block else []
    t = report.totals
    lines.append(f"total: params = {fmt_count(t.params)}; MACs = {fmt_count(t.macs)}; "
                 f"FLOPs = 2 × MACs = {fmt_count(t.flops)}")
    return "\n".join(lines)
