"""The analysis against independent oracles.

- Every registered network: Σ row parameters = Σ p.numel(); Σ row MACs = FlopCounterMode / 2; every
  convolution and pooling op seen at the aten level happens inside a layer row (no functional geometry),
  and each Conv2d or pooling row accounts for exactly one; no diagnostics.
- Receptive fields against a perturbation oracle (float64 on CPU): with positive weights, zero biases and
  a zero image, an output position is nonzero exactly when a changed pixel lies in its receptive field.
  For the centre position of a layer, the rows (and columns) of pixels just inside the predicted field must
  change it and those just outside must not. Branching networks (GoogLeNet, Inception v3, SqueezeNet, ResNet)
  included, at inputs small enough to be quick.
"""
from __future__ import annotations

import copy
import functools

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import convzoo
from convzoo.analysis import LayerRecord, Report, analyze
from convzoo.counting import count_macs, count_params
from convzoo.meta import build_on_meta

POOL_TYPES = ("MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d")


@functools.cache
def registered(name: str) -> Report:
    return analyze(name, find_input_range=False)


@pytest.mark.parametrize("name", convzoo.list_models())
def test_params_and_macs_agree_with_independent_counts(name: str) -> None:
    report = registered(name)
    net = build_on_meta(convzoo.create_model, name=name)
    assert sum(r.params for r in report.rows) == report.totals.params == count_params(net)
    assert sum(r.trainable_params for r in report.rows) == count_params(net, trainable_only=True)
    assert sum(r.macs for r in report.rows) == report.totals.macs == count_macs(net, report.input_size)


@pytest.mark.parametrize("name", [n for n in convzoo.list_models() if convzoo.model_info(n).aux_weight])
def test_auxiliary_heads_the_forward_skips_are_rows_too(name: str) -> None:
    report = analyze(name, options={"aux_logits": True}, find_input_range=False)
    net = build_on_meta(convzoo.create_model, name=name, aux_logits=True)
    assert report.totals.params == sum(r.params for r in report.rows) == count_params(net)
    assert any(not r.called and r.params for r in report.rows)


@pytest.mark.parametrize("name", convzoo.list_models())
def test_convolution_and_pooling_ops_are_all_layers(name: str) -> None:
    report = registered(name)
    for kind, seen, in_layers in report.census:
        assert seen == in_layers, f"{name}: {seen - in_layers} functional {kind} op(s) outside any layer"
    convs = [r for r in report.rows if r.type == "Conv2d" and r.called]
    pools = [r for r in report.rows if r.type in POOL_TYPES and r.called]
    assert all(dict(r.ops) == {"convolution": 1} for r in convs)
    assert all(dict(r.ops) == {"pooling": 1} for r in pools)
    assert dict((k, s) for k, s, _ in report.census)["convolution"] == len(convs)


@pytest.mark.parametrize("name", convzoo.list_models())
def test_registered_networks_analyse_without_diagnostics(name: str) -> None:
    report = registered(name)
    assert report.diagnostics == (), "\n".join(f"{d.kind} {d.where}: {d.message}" for d in report.diagnostics)


def test_census_catches_functional_pooling_in_torchvision_inception_v3() -> None:
    import torchvision

    with torch.device("meta"):
        net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    report = analyze(net, (3, 299, 299), find_input_range=False)
    assert dict((k, (s, n)) for k, s, n in report.census)["pooling"] == (14, 3)  # hooks alone see 3 of 14
    assert report.totals.macs == count_macs(net, (3, 299, 299)) == 5_713_216_096


# --- the perturbation oracle ---------------------------------------------------------------------------

class _Stop(Exception):
    pass


def positive(net: nn.Module) -> nn.Module:
    """A float64 copy with weights 1/fan_in, zero biases and identity batch norm: a monotone network.

    A network built on meta is materialised on the CPU instead (no copy, no random initialisation)."""
    if any(p.is_meta for p in net.parameters()):
        net = copy.deepcopy(net).to(torch.float64).to_empty(device="cpu").eval()
    else:
        net = copy.deepcopy(net).double().eval()
    with torch.no_grad():
        for m in net.modules():
            for pname, p in m.named_parameters(recurse=False):
                if p.dim() >= 2:
                    p.fill_(1.0 / p[0].numel())
                else:
                    p.fill_(0.0 if "bias" in pname else 1.0)
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
    return net


def predicted(r: LayerRecord) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """Centre output position and, per axis, the predicted field [lo, hi] of that position."""
    o = (r.output_shape[1] // 2, r.output_shape[2] // 2)  # type: ignore[index]
    return o, [(r.rf_start[a] + o[a] * r.jump[a], r.rf_start[a] + o[a] * r.jump[a] + r.rf[a] - 1)  # type: ignore[index]
               for a in (0, 1)]


def inside(r: LayerRecord, size: tuple[int, int, int]) -> bool:
    if not (r.called and r.rf and r.output_shape and len(r.output_shape) == 3):
        return False
    _, field = predicted(r)
    return all(lo >= 1 and hi <= size[1 + a] - 2 for a, (lo, hi) in enumerate(field))


def _choose(rows: dict[str, LayerRecord], size: tuple[int, int, int], most: int) -> list[str]:
    """Windows and blocks (depth ≤ 3) whose predicted field fits in the image, spread out, the deepest included."""
    fit = [r.name for r in rows.values() if (r.kernel or not r.leaf) and 0 < r.depth <= 3 and inside(r, size)]
    return [fit[i] for i in sorted({round(k * (len(fit) - 1) / max(most - 1, 1)) for k in range(most)})] if fit else []


def _probes(rows: dict[str, LayerRecord], names: list[str], size: tuple[int, int, int]) -> tuple[Tensor, list]:
    """Per layer and axis: the lines (rows or columns of pixels) just outside and just inside the predicted field.

    A whole line is changed rather than one pixel because a field can have holes (a strided 1×1 convolution
    sees every other pixel), but its first and last lines always reach the centre position."""
    probes, expect = [], []
    for name in names:
        r = rows[name]
        assert inside(r, size), f"{name}: predicted field {predicted(r)[1]} leaves the {size} image"
        o, field = predicted(r)
        for axis, (lo, hi) in enumerate(field):
            for line, changes in ((lo - 1, False), (lo, True), (hi, True), (hi + 1, False)):
                x = torch.zeros(*size, dtype=torch.float64)
                if axis == 0:
                    x[:, line, :] = 1.0
                else:
                    x[:, :, line] = 1.0
                probes.append(x)
                expect.append((name, o, axis, line, changes))
    return torch.stack(probes), expect


def _outputs(net: nn.Module, names: list[str], x: Tensor) -> dict[str, Tensor]:
    """The outputs of the named layers for a batch, stopping the forward once all have been seen."""
    modules = dict(net.named_modules())
    seen: dict[str, Tensor] = {}

    def keep(name: str):
        def hook(mod: nn.Module, args: tuple, out: Tensor) -> None:
            seen.setdefault(name, out)
            if len(seen) == len(names):
                raise _Stop
        return hook

    handles = [modules[n].register_forward_hook(keep(n)) for n in names]
    try:
        with torch.no_grad():
            net(x)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    return seen


def check_fields(net: nn.Module, size: tuple[int, int, int], names: list[str] | None = None, most: int = 4) -> int:
    """Compare the analysis' receptive fields with perturbations; returns the number of layers checked."""
    report = analyze(net, size, find_input_range=False)
    rows = {r.name: r for r in report.rows if r.called}
    names = names or _choose(rows, size, most)
    assert names, "no layer's receptive field fits inside the image: use a larger input"
    x, expect = _probes(rows, names, size)
    seen = _outputs(positive(net), names, x)
    for b, (name, o, axis, line, changes) in enumerate(expect):
        changed = bool(seen[name][b, :, o[0], o[1]].ne(0).any())
        assert changed == changes, (f"{name}: {'row' if axis == 0 else 'column'} {line} "
                                    f"{'should' if changes else 'should not'} reach position {o}")
    return len(names)


class Branchy(nn.Module):
    """A small network with every awkward case: 1×7/7×1, dilation, ceil-mode pooling, misaligned strided
    branches concatenated, a residual add with a strided 1×1 projection, functional pooling, asymmetric pad."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, padding=1)
        self.a = nn.Sequential(nn.Conv2d(4, 4, (1, 7), padding=(0, 3)), nn.Conv2d(4, 4, (7, 1), padding=(3, 0)))
        self.b = nn.Conv2d(4, 4, 3, padding=2, dilation=2)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.s1 = nn.Conv2d(8, 4, 1, stride=2)  # samples even positions only: a field with holes
        self.s3 = nn.Conv2d(8, 4, 3, stride=2, padding=1)
        self.proj = nn.Conv2d(8, 8, 1, stride=2)
        self.tail = nn.Conv2d(8, 8, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(F.pad(x, (1, 0, 0, 0)))
        x = self.pool(torch.cat([self.a(x), self.b(x)], 1))
        y = torch.cat([self.s1(x), self.s3(x)], 1) + self.proj(x)
        return self.tail(F.avg_pool2d(y, 3, 1, padding=1))


def test_field_oracle_on_awkward_branches() -> None:
    assert check_fields(Branchy(), (2, 48, 48), ["stem", "a", "pool", "s1", "proj", "tail"]) == 6


@pytest.mark.parametrize(("name", "size", "layers", "kwargs"), [
    ("googlenet", 96, ["conv1", "maxpool1", "conv3", "maxpool2", "inception3a"],
     {"aux_logits": False, "init_weights": False}),
    ("inception_v3", 112, ["Conv2d_2b_3x3", "Conv2d_4a_3x3", "Mixed_5b", "Mixed_5c"],
     {"aux_logits": False, "init_weights": False}),
    ("squeezenet1_0", 80, None, {}),
])
def test_field_oracle_on_torchvision_branching_networks(name: str, size: int, layers: list[str] | None,
                                                        kwargs: dict) -> None:
    import torchvision  # functional pooling in forward (inception_v3) must not change the fields

    with torch.device("meta"):
        net = torchvision.models.get_model(name, weights=None, **kwargs)
    assert check_fields(net, (3, size, size), layers) >= 3


@pytest.mark.parametrize(("name", "layers"), [
    ("resnet18", ["stem.conv", "stem.pool", "stages.conv2_x.0", "stages.conv2_x"]),
    ("resnet50", ["stages.conv2_x.0.shortcut", "stages.conv2_x", "stages.conv3_x.0.conv1"]),  # stride-2 1×1: holes
])
def test_field_oracle_on_resnets(name: str, layers: list[str]) -> None:
    net = build_on_meta(convzoo.create_model, name=name)
    assert check_fields(net, (3, 72, 72), layers) == len(layers)


class Features(nn.Module):
    """`forward_features` as a module, so that the oracle can use inputs the classifier head would refuse."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.in_chans = net, net.in_chans

    def forward(self, x: Tensor) -> Tensor:
        return self.net.forward_features(x)


def _smallest_per_family() -> list[str]:
    names = []
    for family in convzoo.list_families():
        members = convzoo.list_models(family=family)
        names.append(min(members, key=lambda n: count_params(build_on_meta(convzoo.create_model, name=n))))
    return names


def _oracle_copy(name: str) -> nn.Module:
    """Built on meta unless the network keeps data in buffers (LeNet-5's connection table)."""
    net = build_on_meta(convzoo.create_model, name=name)
    odd = [b for m in net.modules() if not isinstance(m, nn.modules.batchnorm._BatchNorm)
           for b in m.buffers(recurse=False)]
    return convzoo.create_model(name) if odd else net


@pytest.mark.parametrize("name", _smallest_per_family())
def test_field_oracle_on_each_family(name: str) -> None:
    net = Features(_oracle_copy(name))
    size = next(s for s in _sizes(name) if _takes(net, s))
    assert check_fields(net, size, most=3) >= 1


def _sizes(name: str) -> list[tuple[int, int, int]]:
    c, h, w = convzoo.model_info(name).input_size
    return [(c, s, s) for s in (64, 96, 128) if s < h] + [(c, h, w)]


def _takes(net: Features, size: tuple[int, int, int]) -> bool:
    twin = Features(build_on_meta(convzoo.create_model, name=net.net.name))
    try:
        with torch.no_grad():
            twin(torch.empty(1, *size, device="meta"))
    except (RuntimeError, ValueError):
        return False
    return True
