"""The analysis rule tables: MACs per module type, receptive field per aten op.

MAC rules are keyed by the *exact* module type (a subclass gets no rule by inheritance: its forward may
differ) and count conv + fully-connected multiply-accumulates per image, bias excluded, as torchvision's
``_ops`` and ``FlopCounterMode / 2`` do. Types that do no multiply-accumulate work are listed explicitly
with a zero rule, so that "no rule" always means "unknown", never "zero".

Receptive-field rules are keyed by aten op and act on a `Field` per tensor: the window of input pixels
that position (0, 0) of the tensor sees, per axis (height, width). A window op with kernel k, stride s,
padding p and dilation d maps (size, jump, start) to (size + (k − 1)·d·jump, jump·s, start − p·jump).
Ops without a rule take the union over their inputs (element-wise ops, concatenation, addition).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "CONV_OPS", "FIELD_RULES", "MAC_RULES", "POOL_OPS", "WEIGHT_OPS", "WINDOW_TYPES", "Field", "Window",
    "merge", "module_window", "whole",
]

aten = torch.ops.aten


# --- MACs per module type -------------------------------------------------------------------------

def _conv_macs(m: nn.Module, x: Tensor, out: Tensor) -> int:  # each output element: C_in/g · k_h · k_w
    return out[0].numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)


def _conv_transpose_macs(m: nn.Module, x: Tensor, out: Tensor) -> int:  # each input element: C_out/g · k_h · k_w
    return x[0].numel() * (m.out_channels // m.groups) * math.prod(m.kernel_size)


def _linear_macs(m: nn.Module, x: Tensor, out: Tensor) -> int:  # each output element: in_features
    per_image = out[0].numel() if out.dim() > 1 else out.numel()
    return per_image * m.in_features


def _zero(m: nn.Module, x: Tensor, out: Tensor) -> int:
    return 0


_NO_MACS = (  # normalisation, activations, pooling, regularisation, reshaping: other work, not MACs
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm,
    nn.CrossMapLRN2d, nn.InstanceNorm2d,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid,
    nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softmax, nn.LogSoftmax, nn.Softplus,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity, nn.Flatten, nn.Unflatten,
    nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d, nn.ChannelShuffle,
)

MAC_RULES: dict[type[nn.Module], Callable[[nn.Module, Tensor, Tensor], int]] = {
    nn.Conv1d: _conv_macs, nn.Conv2d: _conv_macs, nn.Conv3d: _conv_macs,
    nn.ConvTranspose1d: _conv_transpose_macs, nn.ConvTranspose2d: _conv_transpose_macs,
    nn.ConvTranspose3d: _conv_transpose_macs,
    nn.Linear: _linear_macs,
    **dict.fromkeys(_NO_MACS, _zero),
}


# --- the window of a convolution or pooling module (for the rows and --explain) ---------------------

@dataclass(frozen=True)
class Window:
    """Kernel, stride, padding and dilation per axis (h, w) of a sliding-window layer; groups for convs."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int = 1
    ceil_mode: bool = False


def _pair(v: Any) -> tuple[int, int]:
    v = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    return (int(v[-2]), int(v[-1])) if len(v) >= 2 else (int(v[0]), int(v[0]))


def _conv_window(m: nn.Module) -> Window:
    k, d = _pair(m.kernel_size), _pair(m.dilation)
    pad = m.padding
    if isinstance(pad, str):  # 'valid' or 'same' (stride 1): the left padding torch applies
        pad = (0, 0) if pad == "valid" else tuple(di * (ki - 1) // 2 for ki, di in zip(k, d))
    return Window(k, _pair(m.stride), _pair(pad), d, m.groups)


def _pool_window(m: nn.Module) -> Window:
    stride = m.stride if m.stride is not None else m.kernel_size
    return Window(_pair(m.kernel_size), _pair(stride), _pair(m.padding), _pair(getattr(m, "dilation", 1)),
                  ceil_mode=bool(m.ceil_mode))


WINDOW_TYPES: dict[type[nn.Module], Callable[[nn.Module], Window]] = {
    nn.Conv2d: _conv_window, nn.MaxPool2d: _pool_window, nn.AvgPool2d: _pool_window,
}


def module_window(m: nn.Module) -> Window | None:
    rule = WINDOW_TYPES.get(type(m))
    return rule(m) if rule else None


# --- receptive field per aten op ---------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """What position (0, 0) of a tensor sees in the input image, per axis (h, w).

    size: receptive-field extent in input pixels; jump: input pixels between neighbouring positions
    (the effective stride); start: input coordinate of the field's first pixel (negative in the padding);
    depth: weight layers (convolutions and matrix products) on the longest path from the input.
    """

    size: tuple[int, int] = (1, 1)
    jump: tuple[int, int] = (1, 1)
    start: tuple[int, int] = (0, 0)
    depth: int = 0

    def window(self, k: Sequence[int], s: Sequence[int], p: Sequence[int], d: Sequence[int] = (1, 1)) -> Field:
        return Field(
            size=(self.size[0] + (k[0] - 1) * d[0] * self.jump[0], self.size[1] + (k[1] - 1) * d[1] * self.jump[1]),
            jump=(self.jump[0] * s[0], self.jump[1] * s[1]),
            start=(self.start[0] - p[0] * self.jump[0], self.start[1] - p[1] * self.jump[1]),
            depth=self.depth,
        )


def whole(f: Field, hw: Sequence[int], axes: Sequence[int] = (0, 1)) -> Field:
    """The field of a window spanning the whole map along `axes` (global pooling, flatten)."""
    k = [hw[i] if i in axes else 1 for i in (0, 1)]
    return f.window(k, k, (0, 0))


def merge(fields: Sequence[Field], jumps: tuple[int, int] | None = None) -> Field:
    """The union of fields (concatenation, addition, any op that mixes its inputs position by position)."""
    start = tuple(min(f.start[i] for f in fields) for i in (0, 1))
    end = tuple(max(f.start[i] + f.size[i] for f in fields) for i in (0, 1))
    jump = jumps or fields[0].jump
    return Field((end[0] - start[0], end[1] - start[1]), jump, start, max(f.depth for f in fields))  # type: ignore[arg-type]


def _arg(args: Sequence[Any], i: int, default: Any) -> Any:
    return args[i] if len(args) > i and args[i] is not None else default


def _conv_rule(f: Field, hw: Sequence[int], args: Sequence[Any]) -> Field | None:
    if _arg(args, 6, False):  # transposed convolution: no rule
        return None
    k = tuple(args[1].shape[2:])
    if len(k) < 2:
        return None
    out = f.window(_pair(k), _pair(args[3]), _pair(args[4]), _pair(args[5]))
    return Field(out.size, out.jump, out.start, f.depth + 1)


def _pool_rule(dilation_at: int | None) -> Callable[[Field, Sequence[int], Sequence[Any]], Field]:
    def rule(f: Field, hw: Sequence[int], args: Sequence[Any]) -> Field:
        k = _pair(args[1])
        s = _pair(_arg(args, 2, []) or args[1])
        d = _pair(_arg(args, dilation_at, 1)) if dilation_at else (1, 1)
        return f.window(k, s, _pair(_arg(args, 3, 0)), d)
    return rule


def _adaptive_rule(f: Field, hw: Sequence[int], args: Sequence[Any]) -> Field:
    """Exact when the map divides evenly (a window of k = stride = in/out); otherwise the whole map."""
    out = _pair(args[1])
    k = [hw[i] // out[i] if out[i] and hw[i] % out[i] == 0 else hw[i] for i in (0, 1)]
    return f.window(k, k, (0, 0))


def _reduce_rule(f: Field, hw: Sequence[int], args: Sequence[Any]) -> Field:
    """mean/sum/amax over dims: the whole map along each reduced spatial axis."""
    ndim = args[0].dim()
    dims = _arg(args, 1, None)
    dims = list(range(ndim)) if dims is None or dims == [] else ([dims] if isinstance(dims, int) else dims)
    axes = [a for a, dim in ((0, ndim - 2), (1, ndim - 1)) if any(d % ndim == dim for d in dims)]
    return whole(f, hw, axes)


def _pad_rule(f: Field, hw: Sequence[int], args: Sequence[Any]) -> Field:
    pad = [*args[1], 0, 0, 0, 0]  # (w_left, w_right, h_top, h_bottom, ...)
    return Field(f.size, f.jump, (f.start[0] - pad[2] * f.jump[0], f.start[1] - pad[0] * f.jump[1]), f.depth)


def _slice_rule(f: Field, hw: Sequence[int], args: Sequence[Any]) -> Field:
    ndim, dim = args[0].dim(), _arg(args, 1, 0) % args[0].dim()
    if dim < ndim - 2:
        return f
    axis = dim - (ndim - 2)
    begin, step = _arg(args, 2, 0), _arg(args, 4, 1)
    begin = max(begin + hw[axis], 0) if begin < 0 else min(begin, hw[axis])
    start, jump = list(f.start), list(f.jump)
    start[axis] += begin * jump[axis]
    jump[axis] *= step
    return Field(f.size, (jump[0], jump[1]), (start[0], start[1]), f.depth)


CONV_OPS = frozenset({aten.convolution, aten._convolution})
POOL_OPS = frozenset({  # the ops a "pooling" census counts (spatial means are added when they reduce H and W)
    aten.max_pool2d, aten.max_pool2d_with_indices, aten.avg_pool2d, aten._adaptive_avg_pool2d,
    aten.adaptive_max_pool2d, aten.max_pool3d_with_indices, aten.avg_pool3d,
})
WEIGHT_OPS = frozenset({aten.mm, aten.addmm, aten.bmm, aten.baddbmm})  # fully-connected layers: depth + 1

FIELD_RULES: dict[Any, Callable[[Field, Sequence[int], Sequence[Any]], Field | None]] = {
    aten.convolution: _conv_rule, aten._convolution: _conv_rule,
    aten.max_pool2d: _pool_rule(4), aten.max_pool2d_with_indices: _pool_rule(4),
    aten.max_pool3d_with_indices: _pool_rule(4), aten.avg_pool2d: _pool_rule(None),
    aten.avg_pool3d: _pool_rule(None),
    aten._adaptive_avg_pool2d: _adaptive_rule, aten.adaptive_max_pool2d: _adaptive_rule,
    aten.mean: _reduce_rule, aten.sum: _reduce_rule, aten.amax: _reduce_rule, aten.amin: _reduce_rule,
    aten.constant_pad_nd: _pad_rule, aten.reflection_pad2d: _pad_rule, aten.replication_pad2d: _pad_rule,
    aten.slice: _slice_rule,
}
