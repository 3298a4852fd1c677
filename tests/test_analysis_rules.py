"""Analysis rules on tiny modules, each expected value written out as arithmetic (torch-scan's manner)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import convzoo
from convzoo.analysis import IncompleteAnalysis, Report, analyze, cost
from convzoo.analysis.explain import output_size
from convzoo.analysis.rules import Field, merge


def rows(report: Report) -> dict[str, object]:
    return {r.name: r for r in report.rows}


def run(model: nn.Module, size: tuple[int, ...], **kw: object) -> Report:
    return analyze(model, size, find_input_range=False, **kw)  # type: ignore[arg-type]


# --- MACs and parameters ---------------------------------------------------------------------------

def test_conv_macs_and_params() -> None:
    r = rows(run(nn.Sequential(nn.Conv2d(3, 8, 3)), (3, 32, 32)))["0"]
    assert r.output_shape == (8, 30, 30)
    assert r.macs == 8 * 30 * 30 * 3 * 3 * 3  # each output: C_in·k·k multiply-adds
    assert r.params == 8 * 3 * 3 * 3 + 8  # weights + bias
    assert r.neurons == 8 * 30 * 30
    assert (r.kernel, r.stride, r.padding, r.dilation, r.groups) == ((3, 3), (1, 1), (0, 0), (1, 1), 1)


def test_grouped_depthwise_dilated_and_same_padding() -> None:
    net = nn.Sequential(nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.Conv2d(256, 256, 3, padding=1, groups=256),
                        nn.Conv2d(256, 16, 3, padding="same", dilation=2, bias=False))
    r = rows(run(net, (96, 27, 27)))
    assert r["0"].macs == 27 * 27 * 256 * 5 * 5 * (96 // 2) and r["0"].params == 5 * 5 * 48 * 256 + 256
    assert r["1"].macs == 27 * 27 * 256 * 3 * 3 * 1 and r["1"].params == 3 * 3 * 256 + 256
    assert r["2"].macs == 27 * 27 * 16 * 3 * 3 * 256 and r["2"].padding == (2, 2)
    assert r["2"].rf == (1 + 4 + 2 + (3 - 1) * 2,) * 2  # 5×5, 3×3, 3×3 dilated 2: 1 + 4 + 2 + 4 = 11


def test_linear_and_transposed_conv() -> None:
    r = rows(run(nn.Sequential(nn.Flatten(), nn.Linear(8 * 4 * 4, 10)), (8, 4, 4)))["1"]
    assert r.macs == 128 * 10 and r.params == 128 * 10 + 10
    report = run(nn.Sequential(nn.ConvTranspose2d(4, 2, 3, stride=2)), (4, 5, 5))
    assert rows(report)["0"].macs == 4 * 5 * 5 * 2 * 3 * 3  # every input element meets C_out·k·k weights
    assert [d.kind for d in report.diagnostics] == ["receptive_field"]  # no RF rule for transposed convolution


def test_totals_memory_arithmetic() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    t = run(net, (4, 3, 10, 10)).totals  # batch 4 only scales activation memory
    assert t.params == 8 * 27 + 8 and t.macs == 8 * 8 * 8 * 27 and t.flops == 2 * t.macs
    assert t.activations == 2 * (8 * 8 * 8)  # conv output + ReLU output, per image
    assert dict(t.weight_bytes) == {"fp32": 224 * 4, "fp16": 224 * 2, "int8": 224}
    assert dict(t.activation_bytes) == {"fp32": 1024 * 4 * 4, "fp16": 1024 * 4 * 2}
    assert t.weight_layers == 1


def test_shared_module_counts_params_once_and_macs_per_call() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1)

        def forward(self, x: Tensor) -> Tensor:
            return self.conv(self.conv(x))

    report = run(Twice(), (4, 6, 6))
    convs = [r for r in report.rows if r.name == "conv"]
    assert [c.params for c in convs] == [4 * 4 + 4, 0] and [c.macs for c in convs] == [6 * 6 * 4 * 4] * 2


class Subsampling(nn.Module):
    """LeNet-style trainable subsampling: parameters held by a module whose work is done by a child."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(2)
        self.coef, self.bias = nn.Parameter(torch.ones(c, 1, 1)), nn.Parameter(torch.zeros(c, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(x) * self.coef + self.bias


def test_parameters_held_by_containers_and_uncalled_modules_are_rows() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.s2 = nn.Conv2d(1, 6, 5), Subsampling(6)
            self.aux = nn.Linear(3, 2)  # e.g. an auxiliary head the default forward skips

        def forward(self, x: Tensor) -> Tensor:
            return self.s2(self.c1(x))

    net = Net()
    report = run(net, (1, 32, 32))
    r = rows(report)
    assert r["s2"].params == 6 + 6 and not r["s2"].leaf and r["s2.pool"].output_shape == (6, 14, 14)
    assert not r["aux"].called and r["aux"].params == 3 * 2 + 2
    assert report.totals.params == sum(p.numel() for p in net.parameters()) == (6 * 25 + 6) + 12 + 8
    assert report.complete


class MaskedConv(nn.Module):
    """A custom leaf doing multiply-accumulate work with F.conv2d."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(4, 2, 3, 3))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight)


class CountedConv(MaskedConv):
    def macs(self, x: Tensor, out: Tensor) -> int:
        return out[0].numel() * 2 * 3 * 3


def test_custom_module_without_rule_is_a_diagnostic_not_a_zero() -> None:
    report = run(nn.Sequential(MaskedConv()), (2, 8, 8))
    r = rows(report)["0"]
    assert r.macs == 4 * 6 * 6 * 2 * 3 * 3 and r.macs_source == "aten"
    assert [d.kind for d in report.diagnostics] == ["macs"] and report.totals.macs_status == "partial"
    with pytest.raises(IncompleteAnalysis, match="no MAC rule"):
        run(nn.Sequential(MaskedConv()), (2, 8, 8), strict=True)
    counted = run(nn.Sequential(CountedConv()), (2, 8, 8))
    assert rows(counted)["0"].macs_source == "macs()" and counted.complete
    assert dict(rows(counted)["0"].ops) == {"convolution": 1}  # the census sees it inside a layer


# --- receptive field ---------------------------------------------------------------------------------

def test_field_window_arithmetic() -> None:
    f = Field().window((11, 11), (4, 4), (0, 0))  # AlexNet conv1
    assert (f.size, f.jump, f.start) == ((11, 11), (4, 4), (0, 0))
    f = f.window((3, 3), (2, 2), (0, 0))  # max-pool 3/2: 11 + 2·4 = 19, jump 8
    assert (f.size, f.jump) == ((19, 19), (8, 8))
    f = f.window((5, 5), (1, 1), (2, 2))  # 5×5 pad 2: 19 + 4·8 = 51, start 0 − 2·8 = −16
    assert (f.size, f.jump, f.start) == ((51, 51), (8, 8), (-16, -16))
    u = merge([Field((3, 3), (1, 1), (-1, -1)), Field((1, 1), (1, 1), (0, 0)), Field((5, 1), (1, 1), (-2, 0))])
    assert (u.size, u.start) == ((5, 3), (-2, -1))  # union: rows −2..2, columns −1..1


def test_asymmetric_kernels_keep_height_and_width_apart() -> None:
    net = nn.Sequential(nn.Conv2d(2, 2, (1, 7), padding=(0, 3)), nn.Conv2d(2, 2, (7, 1), padding=(3, 0)),
                        nn.Conv2d(2, 2, (1, 7), padding=(0, 3)))
    r = rows(run(net, (2, 17, 17)))
    assert r["0"].rf == (1, 7) and r["1"].rf == (7, 7) and r["2"].rf == (7, 13)


class Branches(nn.Module):
    """Inception-like: 1×1, 3×3 and 5×5 branches concatenated, plus a residual add."""

    def __init__(self) -> None:
        super().__init__()
        self.b1, self.b3, self.b5 = nn.Conv2d(4, 2, 1), nn.Conv2d(4, 2, 3, padding=1), nn.Conv2d(4, 4, 5, padding=2)
        self.merge = nn.Conv2d(8, 4, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.merge(torch.cat([self.b1(x), self.b3(x), self.b5(x)], 1))
        return y + x


def test_concat_and_add_take_the_largest_field() -> None:
    r = rows(run(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), Branches()), (4, 16, 16)))
    assert r["1.b5"].rf == (3 + 4,) * 2 and r["1.merge"].rf == (7, 7) and r["1"].rf == (7, 7)
    assert r["1.merge"].weight_layers == 3 and r["1"].weight_layers == 3  # conv → b5 → merge


def test_global_pooling_and_flatten_cover_the_whole_map() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    r = rows(run(net, (3, 15, 15)))  # conv: 7×7 map, RF 3, jump 2
    assert r["0"].output_shape == (4, 7, 7) and r["0"].rf == (3, 3) and r["0"].jump == (2, 2)
    assert r["1"].rf == (3 + (7 - 1) * 2,) * 2  # the whole map: rf + (H − 1)·jump = 15
    assert r["3"].rf == (15, 15) and r["3"].weight_layers == 2
    flat = rows(run(nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.Flatten()), (3, 15, 15)))
    assert flat["1"].rf == (15, 15)


def test_adaptive_pooling_is_exact_when_the_map_divides() -> None:
    r = rows(run(nn.Sequential(nn.Conv2d(3, 3, 1), nn.AdaptiveAvgPool2d(7)), (3, 14, 14)))
    assert r["1"].rf == (2, 2) and r["1"].jump == (2, 2)  # 14 → 7: windows of 2, stride 2
    assert rows(run(nn.Sequential(nn.Conv2d(3, 3, 1), nn.AdaptiveAvgPool2d(7)), (3, 7, 7)))["1"].rf == (1, 1)


class Functional(nn.Module):
    """Geometry in forward with functional ops: the aten-level field is right, the census flags them."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(self.conv(x), 3, 2).mean((2, 3))


def test_functional_pooling_keeps_the_field_and_is_flagged() -> None:
    report = run(Functional(), (3, 21, 21))
    assert report.rows[0].rf == (3 + 2 + 8 * 2, 3 + 2 + 8 * 2)  # conv 3, pool 3/2 → 5 (jump 2), mean over 9×9 → 21
    assert dict((k, (s, n)) for k, s, n in report.census) == {"convolution": (1, 1), "pooling": (2, 0)}
    assert [d.kind for d in report.diagnostics] == ["census"]
    assert "functional 2 pooling" in report.diagnostics[0].message


def test_an_op_that_changes_geometry_without_a_rule_is_a_diagnostic() -> None:
    class Up(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return F.interpolate(x, scale_factor=2.0)

    report = run(nn.Sequential(nn.Conv2d(1, 1, 3), Up()), (1, 8, 8))
    assert any(d.kind == "receptive_field" for d in report.diagnostics) and report.totals.rf_status == "partial"


def test_padding_and_ceil_mode() -> None:
    net = nn.Sequential(nn.ZeroPad2d((1, 0, 2, 0)), nn.MaxPool2d(3, 2, ceil_mode=True))
    r = rows(run(net, (1, 10, 10)))
    assert r["0"].rf_start == (-2, -1)  # two rows above, one column to the left
    assert r["0"].output_shape == (1, 12, 11)
    assert r["1"].output_shape == (1, 6, 5) and r["1"].rf == (3, 3) and r["1"].ceil_mode  # ⌈9/2⌉ + 1, ⌈8/2⌉ + 1


@pytest.mark.parametrize(("n", "k", "s", "p", "d"), [(227, 11, 4, 0, 1), (224, 11, 4, 2, 1), (55, 3, 2, 0, 1),
                                                     (13, 3, 1, 1, 1), (17, 3, 2, 0, 2), (10, 2, 3, 1, 1)])
@pytest.mark.parametrize("ceil", [False, True])
def test_output_size_formula_agrees_with_torch(n: int, k: int, s: int, p: int, d: int, ceil: bool) -> None:
    pool = nn.MaxPool2d(k, s, p, d, ceil_mode=ceil)
    expected = pool(torch.empty(1, 1, n, n, device="meta")).shape[-1]
    assert output_size(n, k, s, p, d, ceil)[0] == expected


def test_output_size_drops_pixels_when_the_division_is_not_exact() -> None:
    assert output_size(227, 11, 4, 0) == ((227 + 0 - 10 - 1) // 4 + 1, 0) == (55, 0)  # 216 = 54·4
    assert output_size(224, 11, 4, 0) == (54, (224 - 10 - 1) % 4) == (54, 1)  # 213 = 53·4 + 1: one pixel lost


# --- side effects --------------------------------------------------------------------------------

def test_analysis_leaves_the_model_untouched() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout())
    net.train()
    net[1].eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for device in ("meta", "cpu"):
        run(net, (3, 8, 8), device=device)
        assert [m.training for m in net.modules()] == [True, True, False, True]
        assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
        assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_registered_name_and_bad_inputs() -> None:
    report = analyze("resnet18", find_input_range=False)
    assert report.model == "resnet18" and report.input_size == (3, 224, 224)
    with pytest.raises(convzoo.UserError, match="built for 3 input channel"):
        analyze("resnet18", (1, 64, 64), find_input_range=False)
    with pytest.raises(convzoo.UserError, match="cannot take a 3×16×16 input"):  # a network that is not a ZooModel
        analyze(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 30 * 30, 2)), (3, 16, 16))
    with pytest.raises(ValueError, match="needs input_size"):
        analyze(nn.Conv2d(3, 3, 1))


# --- closed forms (analysis/cost.py) against analyze ----------------------------------------------

def test_inception_example_exactly() -> None:
    direct = cost.conv(192, 32, 5, 28)
    assert direct.macs == 28 * 28 * 32 * 5 * 5 * 192 == 120_422_400
    reduced = cost.bottleneck(192, 16, 32, 5, 28)
    assert reduced.macs == 28 * 28 * 16 * 192 + 28 * 28 * 32 * 5 * 5 * 16 == 2_408_448 + 10_035_200 == 12_443_648
    assert "28·28·16·192 + 28·28·32·5·5·16 = 2,408,448 + 10,035,200 = 12,443,648" in reduced.macs_formula
    assert reduced.versus == direct


@pytest.mark.parametrize("design", [
    cost.conv(192, 32, 5, 28), cost.conv(96, 256, 5, 27, groups=2, bias=True), cost.separable(32, 64, 3, 112),
    cost.bottleneck(192, 16, 32, 5, 28), cost.stack(64, 3, 3, 14), cost.stack(32, 3, 2), cost.factorized(128, 7, 17),
    cost.resnet_unit(256, 64, 56), cost.resnext_unit(256, 128, 32, 56), cost.shufflenet_unit(240, 60, 3, 28),
], ids=lambda c: c.title.split(" on ")[0].split(" per ")[0])
def test_closed_forms_agree_with_analyze(design: cost.Cost) -> None:
    for c in [design] + ([design.versus] if design.versus else []):
        report = analyze(c.build(), c.input_size, find_input_range=False, strict=True)
        assert (report.totals.params, report.totals.macs) == (c.params, c.macs), c.title


def test_closed_form_ratios_of_the_papers() -> None:
    c = 100
    assert cost.stack(c, 3, 3).params == 27 * c * c and cost.stack(c, 3, 3).versus.params == 49 * c * c  # VGG
    assert cost.factorized(c, 3).params == 6 * c * c and cost.factorized(c, 3).versus.params == 9 * c * c  # 33% less
    h = w = 14
    cc, m, g = 512, 128, 4
    assert cost.resnet_unit(cc, m, h).macs == h * w * (2 * cc * m + 9 * m * m)
    assert cost.resnext_unit(cc, m, g, h).macs == h * w * (2 * cc * m + 9 * m * m // g)
    assert cost.shufflenet_unit(cc, m, g, h).macs == h * w * (2 * cc * m // g + 9 * m)
    sep = cost.separable(c, 2 * c, 3, h)
    assert sep.macs / sep.versus.macs == pytest.approx(1 / (2 * c) + 1 / 9)  # MobileNet eq. (5)
    with pytest.raises(convzoo.UserError, match="groups 3 must divide"):
        cost.resnext_unit(256, 128, 3, 56)
