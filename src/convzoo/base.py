"""`ZooModel`, the contract every convzoo network keeps.

- keyword-only ``num_classes``, ``in_chans`` and ``dropout``, checked here;
- ``forward_features(x) -> (N, C, H, W)``, ``forward_head(x) -> (N, num_classes)`` and
  ``forward = forward_head ∘ forward_features``, always one Tensor;
- networks with auxiliary heads expose ``forward_train(x) -> (logits, [aux, ...])``;
- an input the network cannot take raises `UserError` naming the layer and the sizes that work.
"""
from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from .errors import UserError
from .inputs import diagnose_input, is_probing
from .options import check_int, check_probability

__all__ = ["ZooModel", "input_error"]


class ZooModel(nn.Module):
    """Base class: subclasses build `stem`/`stages` (or `features`) and `head`, and set `num_features`."""

    num_features: int

    def __init__(self, *, num_classes: int, in_chans: int, dropout: float) -> None:
        super().__init__()
        name = type(self).__name__
        self.name = name.lower()  # create_model replaces it with the registered name
        self.num_classes = check_int(name, "num_classes", num_classes, minimum=1)
        self.in_chans = check_int(name, "in_chans", in_chans, minimum=1)
        self.drop_rate = check_probability(name, "dropout", dropout)

    def forward_features(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward_head(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        try:
            return self.forward_head(self.forward_features(x))
        except (RuntimeError, ValueError) as err:  # torch's shape errors are of either type
            raise input_error(self, x, err) from None

    def forward_train(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits and the auxiliary heads' logits (none here); networks with auxiliary heads override it.

        Trainers call this in training and weight each auxiliary loss by ``model_info(name).aux_weight``.
        """
        return self(x), []

    def _forward_with_taps(self, x: Tensor, taps: Mapping[str, nn.Module]) -> tuple[Tensor, list[Tensor]]:
        """Stem and stages, with ``taps[name]`` (an auxiliary head) applied to the output of stage `name`;
        the main logits and the taps' outputs in stage order. For `forward_train` of networks with heads."""
        try:
            h, aux = self.stem(x), []
            for name, stage in self.stages.named_children():
                h = stage(h)
                if name in taps:
                    aux.append(taps[name](h))
            return self.forward_head(h), aux
        except (RuntimeError, ValueError) as err:  # torch's shape errors, as in `forward`
            raise input_error(self, x, err) from None

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, in_chans={self.in_chans}, dropout={self.drop_rate}"


def input_error(model: nn.Module, x: Tensor, err: Exception) -> Exception:
    """The error a network's forward raises when torch refused `x`: a `UserError` naming the layer and the sizes
    that work if the input size is the cause, else `err` itself (also while an input probe runs)."""
    if is_probing() or isinstance(err, UserError):
        return err
    return diagnose_input(model, tuple(x.shape), err)
