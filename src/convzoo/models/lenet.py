"""LeNet-5.

LeCun, Bottou, Bengio & Haffner, "Gradient-Based Learning Applied to Document Recognition", Proc. IEEE 86(11),
1998: §II.B (the layers C1, S2, C3, S4, C5, F6 and the Euclidean RBF output), Table I (which S2 maps each C3
map reads), Fig. 2 (the architecture), Appendix A (the squashing function 1.7159·tanh(2a/3) and the uniform
±2.4/F_i initialisation). Every layer up to F6 squashes its weighted sum (§II.B), the subsampling layers too.

Trainable parameters (§II.B): C1 156 + S2 12 + C3 1,516 + S4 32 + C5 48,120 + F6 10,164 = 60,000; the RBF
centres are fixed, so they are buffers and not counted. "340,908 connections" adds the output's 840 to the
connections of C1 … F6 (tests/test_family_lenet.py writes the sum out).

Deviations from the paper:
- RBF centres: the paper's are stylised 7×12 bitmaps of the characters (Fig. 3), not published as data. Ours
  are ±1 codes as well, but different ones: row c + 1 of the 128×128 Sylvester–Hadamard matrix (row 0, all
  ones, skipped), first 84 columns, for class c. That gives up to 127 classes; every centre has the same
  norm, so none is favoured at the origin.
- The output returns logits −y_i, where y_i = Σ_j (x_j − w_ij)² is the paper's RBF output (eq. 7), so that
  argmax and cross-entropy work. Cross-entropy on these logits is the paper's MAP criterion (eq. 9)
  without its constant e^(−j) term.
- ``output="linear"`` replaces the RBF layer with nn.Linear(84, classes): 60,850 trainable parameters
  instead of 60,000 (10 classes).
- ``dropout`` (default 0, as in the paper) drops F6's outputs before the output layer.
- ``lenet5_modern`` is not in the paper: ReLU, 2×2 max-pooling, a dense C3 (all six S2 maps feed every
  C3 map), a linear output and He initialisation (61,706 parameters). It is the usual modern reading.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..base import ZooModel
from ..errors import UserError
from ..layers import ActLayer
from ..meta import is_meta
from ..options import check_choice
from ..registry import Paper, PaperFigure, register_model

__all__ = ["CFGS", "TABLE_I", "EuclideanRBF", "LeNet5", "LeNetCfg", "MapScale", "ScaledTanh", "TableConv"]

LENET = Paper("LeCun, Bottou, Bengio & Haffner", 1998, "Gradient-Based Learning Applied to Document Recognition",
              "Proc. IEEE 86(11):2278–2324")

# Table I: the S2 maps that each of the 16 C3 maps reads. Maps 0–5 read three contiguous S2 maps, 6–11 four
# contiguous ones, 12–14 four discontinuous ones, and map 15 reads all six.
TABLE_I: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


@dataclass(frozen=True)
class LeNetCfg:
    """One LeNet-5 variant: the paper's (§II.B) or the modern reading."""

    act: ActLayer  # squashing function after every layer up to F6
    trainable_subsampling: bool  # S2/S4: sum of 2×2 × coefficient + bias (§II.B); False: 2×2 max-pool
    c3_table: tuple[tuple[int, ...], ...] | None  # Table I; None: every C3 map reads all six S2 maps
    output: Literal["rbf", "linear"]  # Euclidean RBF with fixed centres (§II.B), or a linear layer
    init: Literal["appendix_a", "he"]  # uniform ±2.4/F_i (Appendix A), or He-normal


_A, _S = 1.7159, 2.0 / 3.0  # Appendix A's squashing constants


class _ScaledTanhFn(torch.autograd.Function):
    """A·tanh(S·a) as one autograd node: forward is three passes over one new tensor, backward two passes
    from the saved output. Written as three autograd ops, each allocates a whole activation map and backward
    runs three more; on LeNet's small maps those allocations cost several times the arithmetic
    (benchmarks/lenet_cost.py times both)."""

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return x.mul(_S).tanh_().mul_(_A)  # the same ops in the same order as A·tanh(S·a): the same bits

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor], output: Tensor) -> None:
        ctx.save_for_backward(output)  # the output, not tanh(S·a): the next layer keeps it anyway

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors  # y = A·t, so f'(a) = A·S·(1 − t²) = A·S − (S/A)·y²: two passes, one new tensor
        return torch.addcmul(y.new_full((), _A * _S), y, y, value=-_S / _A).mul_(grad)


class ScaledTanh(nn.Module):
    """The squashing function f(a) = A·tanh(S·a), A = 1.7159, S = 2/3 (Appendix A): f(±1) = ±1."""

    def forward(self, x: Tensor) -> Tensor:
        return _ScaledTanhFn.apply(x)


class MapScale(nn.Module):
    """One trainable coefficient and one trainable bias per map (S2/S4, §II.B).

    It follows a 2×2 average pool: ``window`` = 4 turns the mean back into the paper's sum of four inputs,
    so ``coefficient`` is the paper's coefficient.
    """

    def __init__(self, chans: int, window: int) -> None:
        super().__init__()
        self.window = window
        self.coefficient = nn.Parameter(torch.ones(chans))
        self.bias = nn.Parameter(torch.zeros(chans))

    def forward(self, x: Tensor) -> Tensor:  # bias + x·(window·coefficient) as one op (addcmul), not two
        scale = (self.coefficient * self.window).view(1, -1, 1, 1)
        return torch.addcmul(self.bias.view(1, -1, 1, 1), x, scale)

    def macs(self, x: Tensor, out: Tensor) -> int:
        """A per-element scale (like batch norm's affine), not a multiply-accumulate of the convention."""
        return 0

    def extra_repr(self) -> str:
        return f"{self.coefficient.numel()}, window={self.window}"


class TableConv(nn.Module):
    """A convolution whose output maps each read a subset of the input maps (C3, Table I).

    The weights are the real connections only: output maps are grouped into consecutive runs that read
    the same number of input maps, one grouped convolution (`runs`) per run, so Σ numel is the paper's
    parameter count. ``slots`` lists, connection by connection in table order, where that connection
    sits in a dense (out, in) kernel: out · in_maps + in.

    The forward has two forms of one function. Called run by run, it gathers each run's input maps and
    applies its grouped convolution: the paper's connections op for op, which is what the analysis and
    `FlopCounterMode` must count. That form is slow to train on a CPU (grouped convolutions of 3 or 4
    channels per group, the gather and its scatter-add backward, the concatenation), so otherwise the
    compact weights are scattered into a dense kernel with zeros where Table I has no connection and one
    ordinary convolution runs. A zero weight adds exact zeros to the sums, and the gradient flows back
    through the scatter to the real connections only. The run-by-run form is used whenever a module hook
    could observe the runs (a hook on a run, or a global module hook as `FlopCounterMode` and
    `convzoo.analyze` install) or the weights are on ``meta``.
    """

    def __init__(self, table: tuple[tuple[int, ...], ...], kernel_size: int) -> None:
        super().__init__()
        self.table = table
        self.in_maps = 1 + max(i for row in table for i in row)
        slots = [j * self.in_maps + i for j, row in enumerate(table) for i in row]
        self.register_buffer("slots", torch.tensor(slots), persistent=False)
        self.runs = nn.ModuleDict()
        self._slices: dict[str, tuple[int, int]] = {}
        first, offset = 0, 0
        while first < len(table):
            width = len(table[first])
            last = first
            while last + 1 < len(table) and len(table[last + 1]) == width:
                last += 1
            n = last - first + 1
            name = f"maps{first}_{last}" if last > first else f"map{first}"
            self.runs[name] = nn.Conv2d(n * width, n, kernel_size, groups=n)
            self._slices[name] = (offset, offset + n * width)
            first, offset = last + 1, offset + n * width

    def forward(self, x: Tensor) -> Tensor:
        if self._watched():
            return self.forward_runs(x)
        weight, bias = self.dense()
        return F.conv2d(x, weight, bias)

    def forward_runs(self, x: Tensor) -> Tensor:
        """The connection-level form: per run, gather its input maps and apply its grouped convolution."""
        inputs = self.slots % self.in_maps
        outs = [conv(x[:, inputs[a:b]]) for (a, b), conv in zip(self._slices.values(), self.runs.values())]
        return torch.cat(outs, 1)

    def dense(self) -> tuple[Tensor, Tensor]:
        """The (out, in_maps, k, k) kernel with Table I's zeros, and the bias, built from the runs' weights."""
        convs = list(self.runs.values())
        k = convs[0].kernel_size
        rows = torch.cat([c.weight.reshape(-1, k[0] * k[1]) for c in convs])  # one row per connection
        grid = rows.new_zeros(len(self.table) * self.in_maps, k[0] * k[1]).index_copy(0, self.slots, rows)
        return grid.view(len(self.table), self.in_maps, *k), torch.cat([c.bias for c in convs])

    def _watched(self) -> bool:
        """Whether the runs must be called one by one: on ``meta``, or with a module hook that would see them."""
        if is_meta(self) or any(_global_hooks()):
            return True
        return any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
                   for m in self.runs.values())


def _global_hooks() -> tuple[dict, ...]:
    """torch's registries of hooks on every module's calls (`nn.modules.module.register_module_forward_hook`...)."""
    g = nn.modules.module
    return (g._global_forward_hooks, g._global_forward_pre_hooks, g._global_backward_hooks,
            g._global_backward_pre_hooks)


def _hadamard_codes(n: int, length: int) -> list[list[float]]:
    """Rows 1 … n of the Sylvester–Hadamard matrix of order 2^⌈log2 length⌉, first `length` columns.

    H[i, j] = (−1)^popcount(i & j). Two rows i ≠ i' differ at column 2^b for any bit b of i XOR i', and every
    such column is < `length`, so the truncated rows stay distinct.
    """
    return [[-1.0 if bin(i & j).count("1") % 2 else 1.0 for j in range(length)] for i in range(1, n + 1)]


def _rbf_capacity(features: int) -> int:
    """Classes the ±1 code supports: the Hadamard order minus its all-ones row."""
    return (1 << (features - 1).bit_length()) - 1


class EuclideanRBF(nn.Module):
    """Output layer of Euclidean radial basis units with fixed ±1 centres (§II.B, eq. 7), as logits −y_i.

    y_i = Σ_j (x_j − w_ij)² = ‖x‖² − 2 x·w_i + ‖w_i‖², computed with one matrix product.
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        capacity = _rbf_capacity(in_features)
        if num_classes > capacity:
            raise UserError(f"the RBF output has ±1 codes for at most {capacity} classes, got "
                            f"num_classes={num_classes}; use output='linear'")
        self.in_features = in_features
        self.num_classes = num_classes
        self.register_buffer("centres", torch.tensor(_hadamard_codes(num_classes, in_features)))

    def forward(self, x: Tensor) -> Tensor:
        c = self.centres
        dist = x.square().sum(1, keepdim=True) - 2 * (x @ c.T) + c.square().sum(1)
        return -dist

    def macs(self, x: Tensor, out: Tensor) -> int:
        """The product x·Wᵀ: in_features multiply-accumulates per output (the norms are not counted)."""
        return out.numel() * self.in_features

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_classes={self.num_classes}, centres=fixed ±1"


# Rows after the blocks: they name the activation classes.
CFGS: dict[str, LeNetCfg] = {
    "lenet5": LeNetCfg(act=ScaledTanh, trainable_subsampling=True, c3_table=TABLE_I, output="rbf",
                       init="appendix_a"),
    "lenet5_modern": LeNetCfg(act=nn.ReLU, trainable_subsampling=False, c3_table=None, output="linear",
                              init="he"),
}


def _subsampling(cfg: LeNetCfg, chans: int) -> nn.Module:
    if not cfg.trainable_subsampling:
        return nn.MaxPool2d(2)
    return nn.Sequential(OrderedDict(pool=nn.AvgPool2d(2), scale=MapScale(chans, window=4), act=cfg.act()))


def _conv(cfg: LeNetCfg, conv: nn.Module) -> nn.Sequential:
    return nn.Sequential(OrderedDict(conv=conv, act=cfg.act()))


class LeNet5(ZooModel):
    """C1 → S2 → C3 → S4 → C5 → F6 → output (Fig. 2, §II.B)."""

    def __init__(self, cfg: LeNetCfg, *, num_classes: int = 10, in_chans: int = 1, dropout: float = 0.0,
                 output: Literal["rbf", "linear"] | None = None) -> None:
        super().__init__(num_classes=num_classes, in_chans=in_chans, dropout=dropout)
        self.cfg = cfg
        self.output = output = check_choice("LeNet5", "output", cfg.output if output is None else output,
                                            ("rbf", "linear"), note="'rbf' is §II.B's layer, 'linear' an nn.Linear")
        c3 = nn.Conv2d(6, 16, 5) if cfg.c3_table is None else TableConv(cfg.c3_table, 5)
        self.features = nn.Sequential(OrderedDict(
            c1=_conv(cfg, nn.Conv2d(in_chans, 6, 5)),  # (N, 6, 28, 28)
            s2=_subsampling(cfg, 6),  # (N, 6, 14, 14)
            c3=_conv(cfg, c3),  # (N, 16, 10, 10)
            s4=_subsampling(cfg, 16),  # (N, 16, 5, 5)
            c5=_conv(cfg, nn.Conv2d(16, 120, 5)),  # (N, 120, 1, 1)
        ))
        self.num_features = 120
        self.head = nn.Sequential(OrderedDict(
            flatten=nn.Flatten(1),
            f6=nn.Sequential(OrderedDict(fc=nn.Linear(120, 84), act=cfg.act())),
            drop=nn.Dropout(dropout),
            output=EuclideanRBF(84, num_classes) if output == "rbf" else nn.Linear(84, num_classes),
        ))
        if cfg.init == "appendix_a":
            init_appendix_a(self)
        else:
            init_he(self)

    def forward_features(self, x: Tensor) -> Tensor:  # (N, 1, 32, 32) -> (N, 120, 1, 1)
        return self.features(x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(x)


def init_appendix_a(model: nn.Module) -> None:
    """Appendix A: weights uniform in ±2.4/F_i, F_i the fan-in of the unit the connection belongs to.

    Biases get the same range: the paper counts them among a unit's connections ((5×5 + 1) per C1 unit).
    An S2/S4 unit has four inputs, so its coefficient and bias draw from ±2.4/4.
    """
    if is_meta(model):
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            bound = 2.4 / m.weight[0].numel()  # in_features, or in_chans/groups × k × k
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.uniform_(m.bias, -bound, bound)
        elif isinstance(m, MapScale):
            bound = 2.4 / m.window
            nn.init.uniform_(m.coefficient, -bound, bound)
            nn.init.uniform_(m.bias, -bound, bound)


def init_he(model: nn.Module) -> None:
    """The modern reading: He-normal weights (fan-in, ReLU gain), zero biases."""
    if is_meta(model):
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(m.bias)


_HINT = "the paper pads the 28×28 MNIST digits to 32×32, e.g. transforms.Pad(2)"


@register_model(paper=LENET, input_size=(1, 32, 32), params=PaperFigure(60_000, 0.0, "§II.B"),
                deviations=("RBF centres are rows of a Sylvester–Hadamard matrix, not the paper's 7×12 bitmaps",
                            "returns −(squared RBF distance) as logits",
                            "output='linear' replaces the RBF layer: 60,850 trainable parameters, not 60,000"),
                config=CFGS["lenet5"], input_hint=_HINT)
def lenet5(**kwargs: Any) -> LeNet5:
    """LeNet-5 as in §II.B: scaled tanh, trainable subsampling, Table I's C3, RBF output."""
    return LeNet5(CFGS["lenet5"], **kwargs)


@register_model(paper=LENET, input_size=(1, 32, 32),
                deviations=("ReLU instead of the scaled tanh", "2×2 max-pooling instead of trainable subsampling",
                            "C3 reads all six S2 maps (no Table I)", "linear output instead of the RBF layer",
                            "He initialisation instead of Appendix A's"),
                config=CFGS["lenet5_modern"], input_hint=_HINT)
def lenet5_modern(**kwargs: Any) -> LeNet5:
    """LeNet-5 as usually built today: ReLU, max-pooling, dense C3, linear output."""
    return LeNet5(CFGS["lenet5_modern"], **kwargs)
