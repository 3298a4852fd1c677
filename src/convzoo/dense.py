"""Dense evaluation: a network whose fully-connected head is rewritten as convolutions.

Simonyan & Zisserman, arXiv:1409.1556, §3.2: at test time the first fully-connected layer becomes a 7×7
convolution and the other two 1×1 convolutions, the network runs over the whole (uncropped) image, the map
of class scores it returns is averaged over space, and the soft-max posteriors of the image and of its
mirror image are averaged. The same rewriting serves AlexNet (a 6×6 window) and any convzoo network whose
head is an ``nn.Sequential`` of flatten, linear, convolution, activation, dropout and adaptive average pooling.

Rules of `to_fully_conv`:
- the first ``Linear`` after the ``Flatten`` becomes a k×k convolution, k² = in_features / channels of the
  feature map (7 for VGG, 6 for AlexNet, 1 after a global average pool); later ``Linear``s become 1×1;
- ``Flatten`` and adaptive average pooling are dropped (the k×k window takes the pool's place; at the
  network's own input size the pool is the identity for VGG and AlexNet, and for a global average pool the
  spatial mean of the map equals the original logits whenever the layers after the pool are affine, as
  in ResNet's pool → flatten → dropout → fc);
- activations, dropout and convolutions are kept; any other layer raises `UserError`.

The result holds copies of the weights: training either network leaves the other unchanged.
"""
from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Iterator

from torch import Tensor, nn

from .base import input_error
from .errors import UserError

__all__ = ["FullyConvNet", "dense_predict", "to_fully_conv"]

_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Tanh, nn.Sigmoid,
                nn.Dropout, nn.Identity)


class FullyConvNet(nn.Module):
    """A network's feature extractor followed by its head as convolutions; returns (N, classes, h, w)."""

    def __init__(self, body: nn.Module, head: nn.Sequential, name: str, in_chans: int) -> None:
        super().__init__()
        self.body = body  # the original network (copied), its head replaced by nn.Identity
        self.head = head
        self.name = f"{name} (fully convolutional)"
        self.in_chans = in_chans

    def forward_features(self, x: Tensor) -> Tensor:
        return self.body.forward_features(x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        try:
            return self.forward_head(self.forward_features(x))
        except (RuntimeError, ValueError) as err:  # an input too small for the window: say which sizes work
            raise input_error(self, x, err) from None


def _linear_as_conv(fc: nn.Linear, in_chans: int, k: int) -> nn.Conv2d:
    """A k×k convolution computing `fc` on each k×k window of an (in_chans)-channel map (weights copied)."""
    conv = nn.Conv2d(in_chans, fc.out_features, k, bias=fc.bias is not None, device="meta")
    # Flatten orders a (C, k, k) window channel-major, so the (out, C·k·k) matrix is an (out, C, k, k) kernel.
    weight = fc.weight.detach().reshape(fc.out_features, in_chans, k, k).clone()
    conv.weight = nn.Parameter(weight, requires_grad=fc.weight.requires_grad)
    if fc.bias is not None:
        conv.bias = nn.Parameter(fc.bias.detach().clone(), requires_grad=fc.bias.requires_grad)
    return conv


def _window(fc: nn.Linear, chans: int, where: str) -> int:
    """k such that fc reads a chans×k×k window, or a UserError."""
    k = math.isqrt(fc.in_features // chans) if fc.in_features % chans == 0 else 0
    if k == 0 or k * k * chans != fc.in_features:
        raise UserError(f"to_fully_conv: {where} reads {fc.in_features} values, which is not a square window of "
                        f"the {chans}-channel feature map; it has no convolutional form")
    return k


def _leaves(seq: nn.Sequential, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """The layers of a head with its nested Sequentials laid out flat (lenet5_modern's f6 = fc → act: f6_fc, ...)."""
    for key, layer in seq.named_children():
        if isinstance(layer, nn.Sequential):
            yield from _leaves(layer, f"{prefix}{key}_")
        else:
            yield f"{prefix}{key}", layer


def _convert_head(head: nn.Sequential, chans: int, name: str) -> nn.Sequential:
    """The head with Flatten/adaptive pooling dropped and its Linear layers turned into convolutions."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    flat = seen_linear = False
    for key, layer in _leaves(head):
        where = f"{name}'s head.{key}"
        if isinstance(layer, nn.AdaptiveAvgPool2d):
            continue
        if isinstance(layer, nn.Flatten):
            flat = True
        elif isinstance(layer, nn.Linear):
            if not flat:
                raise UserError(f"to_fully_conv: {where} is a Linear layer that no Flatten precedes; cannot tell "
                                "which spatial window it reads")
            k = 1 if seen_linear else _window(layer, chans, where)
            layers[key] = _linear_as_conv(layer, layer.in_features // (k * k), k)
            chans, seen_linear = layer.out_features, True
        elif isinstance(layer, nn.Conv2d) and not flat:
            layers[key] = copy.deepcopy(layer)
            chans = layer.out_channels
        elif isinstance(layer, _ELEMENTWISE):
            layers[key] = copy.deepcopy(layer)
        else:
            raise UserError(f"to_fully_conv: {where} is a {type(layer).__name__}, which has no convolutional "
                            "form here (heads of Flatten, Linear, Conv2d, AdaptiveAvgPool2d, activations and "
                            "Dropout convert)")
    return nn.Sequential(layers)


def to_fully_conv(model: nn.Module) -> FullyConvNet:
    """The network with its fully-connected head rewritten as convolutions (dense evaluation, §3.2).

    Args:
        model: a convzoo network (``forward_features``, ``num_features`` and an ``nn.Sequential`` ``head``).

    Returns:
        A `FullyConvNet` holding copies of `model`'s weights, in `model`'s train/eval mode, whose forward
        returns the class score map (N, classes, h, w): 1×1 and equal to `model`'s logits at the paper's input
        (224 for VGG, 227 for AlexNet), 6×6 for VGG at 384. `model` is left unchanged.

    Raises:
        UserError: `model` is not a convzoo network, or its head holds a layer with no convolutional form.
    """
    name = getattr(model, "name", type(model).__name__)
    head = getattr(model, "head", None)
    if not (hasattr(model, "forward_features") and isinstance(getattr(model, "num_features", None), int)
            and isinstance(head, nn.Sequential)):
        raise UserError(f"to_fully_conv takes a convzoo network (forward_features, num_features and an "
                        f"nn.Sequential head); {name} is a {type(model).__name__}")
    fc_head = _convert_head(head, model.num_features, name)
    body = copy.deepcopy(model, {id(head): nn.Identity()})  # everything but the head, which is converted
    net = FullyConvNet(body, fc_head, name, int(getattr(model, "in_chans", 3)))
    return net.train(model.training)


def _averaged_scores(fc_model: nn.Module, x: Tensor) -> Tensor:
    scores = fc_model(x)
    if scores.ndim != 4:
        raise UserError(f"dense_predict needs the class score map (N, classes, h, w) of to_fully_conv(model), "
                        f"but the network returned shape {tuple(scores.shape)}; pass to_fully_conv(model)")
    return scores.mean((2, 3))  # "sum-pooled": the spatial average of the score map


def dense_predict(fc_model: nn.Module, x: Tensor, flip: bool = False) -> Tensor:
    """Class posteriors (N, classes) by dense evaluation (§3.2).

    The class score map of ``fc_model = to_fully_conv(model)`` is averaged over space and turned into
    soft-max posteriors; with `flip`, the posteriors of the horizontally mirrored images are averaged in.
    """
    probs = _averaged_scores(fc_model, x).softmax(1)
    if flip:
        probs = (probs + _averaged_scores(fc_model, x.flip(-1)).softmax(1)) / 2
    return probs
