"""One forward pass, two observers.

1. Forward hooks on every module record each call: qualified name, input and output shapes, and the
   innermost module active when an aten op runs (so each op is attributed to exactly one call).
2. A `TorchDispatchMode` propagates a receptive `Field` per tensor through every aten op (functional
   ops included), counts MAC-bearing ops with torch's own FLOP formulas, and takes a census of
   convolution and pooling ops.

Nothing is left behind: hooks are removed and training flags restored in ``finally``; state lives in
the `Tracer` object only. While `convzoo.inputs` probes input sizes (inside a network's error handler)
both observers stand aside.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import flop_registry
from torch.utils.weak import WeakTensorKeyDictionary

from ..inputs import is_probing
from .rules import CONV_OPS, FIELD_RULES, MAC_RULES, POOL_OPS, WEIGHT_OPS, Field, merge, whole

__all__ = ["Call", "Trace", "Tracer", "trace"]

_REDUCE_OPS = frozenset({torch.ops.aten.mean, torch.ops.aten.sum, torch.ops.aten.amax, torch.ops.aten.amin})


@dataclass
class Call:
    """One module call, filled in while the forward runs."""

    index: int
    name: str
    module: nn.Module
    parent: int | None
    leaf: bool
    input_shape: tuple[int, ...] | None = None  # with the batch dimension
    output_shape: tuple[int, ...] | None = None
    rule_macs: int | None = None  # from rules.MAC_RULES (leaf layers of a listed type)
    own_macs: int | None = None  # from the module's own `macs(x, out)`, for types without a rule
    field_in: Field | None = None
    field_out: Field | None = None
    aten_macs: int = 0  # MACs of the ops that ran while this call was the innermost one
    ops: Counter[str] = field(default_factory=Counter)  # "convolution"/"pooling" ops attributed here


@dataclass
class Trace:
    calls: list[Call]
    census: Counter[str]  # every convolution and pooling op seen at the aten level
    problems: list[tuple[str, str, str]]  # (kind, where, message): receptive-field rules that were missing
    output: Any


def _tensors(obj: Any) -> list[Tensor]:
    """The tensors in an op's arguments or results: flat tuples, lists of tensors (cat), rarely deeper."""
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)) and all(isinstance(o, (Tensor, int, float, bool, str, type(None))) for o in obj):
        return [o for o in obj if isinstance(o, Tensor)]
    return [t for t in tree_leaves(obj) if isinstance(t, Tensor)]


def _first_tensor(obj: Any) -> Tensor | None:
    found = _tensors(obj)
    return found[0] if found else None


def _is_map(t: Tensor) -> bool:
    return t.dim() >= 4  # (N, C, H, W) and (N, G, C/G, H, W) views; the last two dimensions are spatial


class Tracer:
    """Module hooks + dispatch mode for one forward pass of `model` (see `trace`)."""

    def __init__(self, model: nn.Module) -> None:
        self.names = {m: n for n, m in model.named_modules()}
        self.fields: WeakTensorKeyDictionary = WeakTensorKeyDictionary()
        self.calls: list[Call] = []
        self.stack: list[Call] = []
        self.inputs: list[Tensor | None] = []  # inputs of the calls on the stack, released when they return
        self.census: Counter[str] = Counter()
        self.problems: list[tuple[str, str, str]] = []

    # --- module hooks ---------------------------------------------------------------------------
    def pre_hook(self, module: nn.Module, args: tuple) -> None:
        if is_probing():
            return
        x = _first_tensor(args)
        parent = self.stack[-1].index if self.stack else None
        call = Call(len(self.calls), self.names[module], module, parent, not any(True for _ in module.children()),
                    input_shape=tuple(x.shape) if x is not None else None,
                    field_in=self.fields.get(x) if x is not None else None)
        self.calls.append(call)
        self.stack.append(call)
        self.inputs.append(x)

    def post_hook(self, module: nn.Module, args: tuple, out: Any) -> None:
        if is_probing() or not self.stack:
            return
        call, x = self.stack.pop(), self.inputs.pop()
        y = _first_tensor(out)
        if y is None:
            return
        call.output_shape, call.field_out = tuple(y.shape), self.fields.get(y)
        rule = MAC_RULES.get(type(module))
        if x is not None and rule is not None and call.leaf:
            call.rule_macs = rule(module, x, y)
        elif x is not None and rule is None and callable(getattr(module, "macs", None)):
            call.own_macs = int(module.macs(x, y))

    # --- aten ops -------------------------------------------------------------------------------
    def on_op(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        packet = func._overloadpacket
        owner = self.stack[-1] if self.stack else None
        formula = flop_registry.get(packet)
        if formula is not None and owner is not None:
            owner.aten_macs += formula(*args, **kwargs, out_val=out) // 2
        ins = [t for t in _tensors(args) + (_tensors(kwargs) if kwargs else []) if t in self.fields]
        if not ins:
            return
        kind = self._kind(packet, args)
        if kind:
            self.census[kind] += 1
            if owner is not None:
                owner.ops[kind] += 1
        outs = _tensors(out)
        if outs:
            result = self._propagate(func, packet, args, ins, outs[0])
            for t in outs:
                self.fields[t] = result

    @staticmethod
    def _kind(packet: Any, args: tuple) -> str | None:
        if packet in CONV_OPS:
            return "convolution"
        if packet in POOL_OPS:
            return "pooling"
        if packet in _REDUCE_OPS and _is_map(args[0]):
            ndim, dims = args[0].dim(), args[1] if len(args) > 1 and args[1] is not None else []
            dims = [dims] if isinstance(dims, int) else list(dims) or list(range(ndim))
            if {ndim - 2, ndim - 1} & {d % ndim for d in dims}:
                return "pooling"
        return None

    def _propagate(self, func: Any, packet: Any, args: tuple, ins: list[Tensor], out: Tensor) -> Field:
        first = ins[0]
        rule = FIELD_RULES.get(packet)
        if rule is not None and _is_map(first) and first is args[0]:
            result = rule(self.fields[first], first.shape[-2:], args)
            if result is not None:
                return result
        fields = [self.fields[t] for t in ins]
        if not _is_map(out):  # flatten / view / a matrix product after a map: the whole map
            fields = [whole(f, t.shape[-2:]) if _is_map(t) else f for f, t in zip(fields, ins)]
            result = merge(fields)
            return Field(result.size, result.jump, result.start, result.depth + (packet in WEIGHT_OPS))
        hw = tuple(out.shape[-2:])
        maps = [(f, t) for f, t in zip(fields, ins) if _is_map(t)]
        if any(t.shape[-2 + i] not in (1, hw[i]) for _, t in maps for i in (0, 1)):
            where = self.stack[-1].name if self.stack else ""
            self.problems.append(("receptive_field", where, f"{func} changes the map from "
                                  f"{tuple(first.shape[-2:])} to {hw} and has no receptive-field rule; "
                                  "fields after it are unknown"))
        same = [f for f, t in maps if tuple(t.shape[-2:]) == hw] or [f for f, _ in maps] or fields
        return merge(fields, same[0].jump)


def _bn_eval(x: Tensor, *args: Any) -> Any:
    if args[4]:  # training-mode statistics: take torch's own path
        return None
    return torch.empty_like(x), x.new_empty((x.shape[1],)), x.new_empty((x.shape[1],))


def _same_shape(inplace: bool) -> Any:
    def make(x: Tensor, *others: Any) -> Any:  # element-wise with operands of x's shape and dtype, or scalars
        if not x.is_floating_point():
            return None
        for o in others:
            if isinstance(o, Tensor) and (o.shape != x.shape or o.dtype != x.dtype):
                return None
        return x if inplace else torch.empty_like(x)
    return make


# On ``meta`` these shape-keeping ops run through Python reference kernels (batch norm: ~4 ms a call, most of a
# ResNet's analysis time). Their outputs are fully determined by the input's metadata, so they are made here.
_aten = torch.ops.aten
_META_SHORTCUTS: dict[Any, Any] = {
    _aten.native_batch_norm.default: _bn_eval,
    **dict.fromkeys((_aten.relu.default, _aten.add.Tensor, _aten.mul.Tensor, _aten.mul.Scalar, _aten.add.Scalar),
                    _same_shape(inplace=False)),
    **dict.fromkeys((_aten.relu_.default, _aten.add_.Tensor, _aten.mul_.Tensor, _aten.mul_.Scalar),
                    _same_shape(inplace=True)),
}


class _FieldMode(TorchDispatchMode):
    def __init__(self, tracer: Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        shortcut = _META_SHORTCUTS.get(func)
        out = shortcut(*args) if shortcut is not None and not kwargs and args[0].is_meta else None
        if out is None:
            out = func(*args, **kwargs)
        if not is_probing():
            self.tracer.on_op(func, args, kwargs, out)
        return out


def trace(model: nn.Module, x: Tensor) -> Trace:
    """Run `model(x)` once under `torch.no_grad()` in eval mode, observed by hooks and the dispatch mode."""
    tracer = Tracer(model)
    modes = {m: m.training for m in model.modules()}
    handles = []
    try:
        for m in tracer.names:
            handles.append(m.register_forward_pre_hook(tracer.pre_hook))
            handles.append(m.register_forward_hook(tracer.post_hook))
        model.eval()
        tracer.fields[x] = Field()
        with torch.no_grad(), _FieldMode(tracer):
            out = model(x)
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes.items():
            m.training = mode
    return Trace(tracer.calls, tracer.census, tracer.problems, out)
