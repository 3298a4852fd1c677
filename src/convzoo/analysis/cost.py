"""Closed-form parameters and MACs of the convolution designs the papers argue with.

Each function returns a `Cost`: the figures, the formula with its numbers written out, and a builder of
the module the formula describes (no bias, no normalisation), so that tests can check every closed form
against `convzoo.analyze`. Maps are h × w; MACs are per image; convolutions keep the map size ("same"
padding, stride 1).

- standard k×k convolution: params k·k·C_in/g·C_out, MACs h·w·C_out·k·k·C_in/g;
- depthwise separable (MobileNet §3.1): k·k·C_in + C_in·C_out per position, 1/C_out + 1/k² of a standard;
- 1×1 reduction before a k×k (GoogLeNet §5, the Inception "bottleneck"): 5×5 192→32 on 28×28 costs
  120,422,400 MACs, with a reduction to 16 first 2,408,448 + 10,035,200 = 12,443,648;
- a stack of n k×k layers versus one kernel of the same receptive field (VGG §2.3: three 3×3 cost 27C²,
  one 7×7 49C²); factorized n×1 + 1×n versus n×n (Inception v3 §3.2);
- bottleneck units (ShuffleNet §3.3): ResNet hw(2cm + 9m²), ResNeXt hw(2cm + 9m²/g), ShuffleNet
  hw(2cm/g + 9m), for c input/output channels and m bottleneck channels.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from ..errors import UserError
from ..render import fmt_count

__all__ = ["Cost", "bottleneck", "conv", "describe", "factorized", "resnet_unit", "resnext_unit", "separable",
           "shufflenet_unit", "stack"]


@dataclass(frozen=True)
class Cost:
    """Closed-form figures of one design, with the arithmetic that gives them."""

    title: str
    params: int
    macs: int
    params_formula: str  # "k·k·C_in·C_out = 5·5·192·32 = 153,600"
    macs_formula: str
    input_size: tuple[int, int, int]  # (C, h, w) the module is analysed at
    build: Callable[[], nn.Module] = field(repr=False, compare=False)
    versus: Cost | None = None  # the design it is compared with in the paper


def _on(h: int, w: int) -> str:
    return "per output position" if h == w == 1 else f"on a {h}×{w} map"


def _check(**values: int) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UserError(f"{name} must be a positive integer, got {v!r}")


def _divides(g: int, **channels: int) -> None:
    for name, c in channels.items():
        if c % g:
            raise UserError(f"groups {g} must divide {name} = {c}")


def _sum(terms: list[int]) -> str:
    return " + ".join(fmt_count(t) for t in terms) + f" = {fmt_count(sum(terms))}" if len(terms) > 1 else ""


def _conv(c_in: int, c_out: int, k: int | tuple[int, int], groups: int = 1, bias: bool = False) -> nn.Conv2d:
    kh, kw = (k, k) if isinstance(k, int) else k
    return nn.Conv2d(c_in, c_out, (kh, kw), padding=(kh // 2, kw // 2), groups=groups, bias=bias)


def conv(c_in: int, c_out: int, k: int, h: int, w: int | None = None, groups: int = 1, bias: bool = False) -> Cost:
    """A standard (or grouped) k×k convolution on an h×w map."""
    w = w or h
    _check(c_in=c_in, c_out=c_out, k=k, h=h, w=w, groups=groups)
    _divides(groups, c_in=c_in, c_out=c_out)
    cin_g, g = c_in // groups, "/g" if groups > 1 else ""
    cin_s = f"{c_in}/{groups}" if groups > 1 else f"{c_in}"
    params = k * k * cin_g * c_out + (c_out if bias else 0)
    macs = h * w * c_out * k * k * cin_g
    kind = f"grouped (g = {groups}) " if groups > 1 else ""
    return Cost(
        f"{k}×{k} {kind}convolution {c_in}→{c_out} {_on(h, w)} ({'with' if bias else 'no'} bias)", params, macs,
        f"k·k·C_in{g}·C_out{' + C_out' if bias else ''} = {k}·{k}·{cin_s}·{c_out}{f' + {c_out}' if bias else ''} "
        f"= {fmt_count(params)}",
        f"H·W·C_out·k·k·C_in{g} = {h}·{w}·{c_out}·{k}·{k}·{cin_s} = {fmt_count(macs)}",
        (c_in, h, w), lambda: _conv(c_in, c_out, k, groups, bias))


def separable(c_in: int, c_out: int, k: int, h: int, w: int | None = None) -> Cost:
    """Depthwise k×k then pointwise 1×1 (MobileNet, Xception), versus a standard k×k convolution."""
    w = w or h
    _check(c_in=c_in, c_out=c_out, k=k, h=h, w=w)
    dw_p, pw_p = k * k * c_in, c_in * c_out
    dw_m, pw_m = h * w * c_in * k * k, h * w * c_in * c_out
    return Cost(
        f"depthwise separable {k}×{k} convolution {c_in}→{c_out} {_on(h, w)} (no bias)", dw_p + pw_p,
        dw_m + pw_m,
        f"k·k·C_in + C_in·C_out = {k}·{k}·{c_in} + {c_in}·{c_out} = {_sum([dw_p, pw_p])}",
        f"H·W·C_in·k·k + H·W·C_in·C_out = {h}·{w}·{c_in}·{k}·{k} + {h}·{w}·{c_in}·{c_out} = {_sum([dw_m, pw_m])}",
        (c_in, h, w), lambda: nn.Sequential(_conv(c_in, c_in, k, groups=c_in), _conv(c_in, c_out, 1)),
        versus=conv(c_in, c_out, k, h, w))


def bottleneck(c_in: int, c_reduce: int, c_out: int, k: int, h: int, w: int | None = None) -> Cost:
    """A 1×1 reduction to c_reduce channels before a k×k convolution, versus the k×k alone (Inception)."""
    w = w or h
    _check(c_in=c_in, c_reduce=c_reduce, c_out=c_out, k=k, h=h, w=w)
    r_p, k_p = c_reduce * c_in, k * k * c_reduce * c_out
    r_m, k_m = h * w * c_reduce * c_in, h * w * c_out * k * k * c_reduce
    return Cost(
        f"1×1 reduction {c_in}→{c_reduce}, then {k}×{k} convolution {c_reduce}→{c_out}, {_on(h, w)} (no bias)",
        r_p + k_p, r_m + k_m,
        f"C_red·C_in + k·k·C_red·C_out = {c_reduce}·{c_in} + {k}·{k}·{c_reduce}·{c_out} = {_sum([r_p, k_p])}",
        f"H·W·C_red·C_in + H·W·C_out·k·k·C_red = {h}·{w}·{c_reduce}·{c_in} + {h}·{w}·{c_out}·{k}·{k}·{c_reduce} "
        f"= {_sum([r_m, k_m])}",
        (c_in, h, w), lambda: nn.Sequential(_conv(c_in, c_reduce, 1), _conv(c_reduce, c_out, k)),
        versus=conv(c_in, c_out, k, h, w))


def stack(c: int, k: int = 3, layers: int = 3, h: int = 1, w: int | None = None) -> Cost:
    """`layers` stacked k×k convolutions C→C versus one kernel with the same receptive field (VGG §2.3)."""
    w = w or h
    _check(channels=c, k=k, layers=layers, h=h, w=w)
    big = layers * (k - 1) + 1
    params, macs = layers * k * k * c * c, h * w * layers * k * k * c * c
    return Cost(
        f"{layers} stacked {k}×{k} convolutions {c}→{c} (receptive field {big}×{big}) {_on(h, w)} (no bias)",
        params, macs,
        f"n·k·k·C² = {layers}·{k}·{k}·{c}² = {layers * k * k}C² = {fmt_count(params)}",
        f"H·W·n·k·k·C² = {h}·{w}·{layers}·{k}·{k}·{c}² = {fmt_count(macs)}",
        (c, h, w), lambda: nn.Sequential(*[_conv(c, c, k) for _ in range(layers)]),
        versus=_single(c, big, h, w))


def _single(c: int, k: int, h: int, w: int) -> Cost:
    params, macs = k * k * c * c, h * w * k * k * c * c
    return Cost(f"one {k}×{k} convolution {c}→{c} {_on(h, w)} (no bias)", params, macs,
                f"k·k·C² = {k}·{k}·{c}² = {k * k}C² = {fmt_count(params)}",
                f"H·W·k·k·C² = {h}·{w}·{k}·{k}·{c}² = {fmt_count(macs)}", (c, h, w), lambda: _conv(c, c, k))


def factorized(c: int, n: int, h: int = 1, w: int | None = None) -> Cost:
    """An n×1 convolution followed by a 1×n, C→C, versus one n×n (Inception v3 §3.2)."""
    w = w or h
    _check(channels=c, n=n, h=h, w=w)
    params, macs = 2 * n * c * c, h * w * 2 * n * c * c
    return Cost(
        f"{n}×1 then 1×{n} convolution {c}→{c} {_on(h, w)} (no bias)", params, macs,
        f"n·C² + n·C² = 2·{n}·{c}² = {2 * n}C² = {fmt_count(params)}",
        f"H·W·2·n·C² = {h}·{w}·2·{n}·{c}² = {fmt_count(macs)}",
        (c, h, w), lambda: nn.Sequential(_conv(c, c, (n, 1)), _conv(c, c, (1, n))), versus=_single(c, n, h, w))


def _unit(title: str, formula: str, numbers: str, params: int, hw: tuple[int, int], c: int,
          build: Callable[[], nn.Module]) -> Cost:
    h, w = hw
    return Cost(title, params, h * w * params, f"{formula} = {numbers} = {fmt_count(params)}",
                f"hw({formula}) = {h}·{w}·({numbers}) = {fmt_count(h * w * params)}", (c, h, w), build)


def resnet_unit(c: int, m: int, h: int, w: int | None = None) -> Cost:
    """ResNet bottleneck: 1×1 c→m, 3×3 m→m, 1×1 m→c: hw(2cm + 9m²) MACs (ShuffleNet §3.3)."""
    w = w or h
    _check(c=c, m=m, h=h, w=w)
    return _unit(f"ResNet bottleneck unit, c = {c}, m = {m}, {_on(h, w)} (convolutions only)", "2cm + 9m²",
                 f"2·{c}·{m} + 9·{m}²", 2 * c * m + 9 * m * m, (h, w), c,
                 lambda: nn.Sequential(_conv(c, m, 1), _conv(m, m, 3), _conv(m, c, 1)))


def resnext_unit(c: int, m: int, g: int, h: int, w: int | None = None) -> Cost:
    """ResNeXt unit: the 3×3 grouped in g: hw(2cm + 9m²/g) MACs."""
    w = w or h
    _check(c=c, m=m, groups=g, h=h, w=w)
    _divides(g, m=m)
    return _unit(f"ResNeXt unit, c = {c}, m = {m}, g = {g}, {_on(h, w)} (convolutions only)", "2cm + 9m²/g",
                 f"2·{c}·{m} + 9·{m}²/{g}", 2 * c * m + 9 * m * (m // g), (h, w), c,
                 lambda: nn.Sequential(_conv(c, m, 1), _conv(m, m, 3, groups=g), _conv(m, c, 1)))


def shufflenet_unit(c: int, m: int, g: int, h: int, w: int | None = None) -> Cost:
    """ShuffleNet unit: 1×1 group conv c→m, channel shuffle, 3×3 depthwise, 1×1 group conv m→c: hw(2cm/g + 9m)."""
    w = w or h
    _check(c=c, m=m, groups=g, h=h, w=w)
    _divides(g, c=c, m=m)
    return _unit(f"ShuffleNet unit, c = {c}, m = {m}, g = {g}, {_on(h, w)} (convolutions only)",
                 "2cm/g + 9m", f"2·{c}·{m}/{g} + 9·{m}", 2 * c * m // g + 9 * m, (h, w), c,
                 lambda: nn.Sequential(_conv(c, m, 1, groups=g), nn.ChannelShuffle(g), _conv(m, m, 3, groups=m),
                                       _conv(m, c, 1, groups=g)))


def _ratio(a: int, b: int) -> str:
    return f"{b / a:.2f}× fewer" if a < b else (f"{a / b:.2f}× more" if a > b else "the same")


def describe(cost: Cost) -> str:
    """The title, the two formulas, and the comparison with the alternative where there is one."""
    lines = [cost.title, f"  params = {cost.params_formula}", f"  MACs   = {cost.macs_formula}"]
    if cost.versus is not None:
        v = cost.versus
        lines += [f"versus {v.title}", f"  params = {v.params_formula}", f"  MACs   = {v.macs_formula}",
                  f"the first needs {_ratio(cost.macs, v.macs)} MACs and {_ratio(cost.params, v.params)} parameters"]
    return "\n".join(lines)
