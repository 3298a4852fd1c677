"""LeNet-5 (LeCun et al. 1998): the paper's counts written out, Table I, the RBF output, the input size."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import convzoo
from convzoo.counting import count_params, stage_shapes
from convzoo.models.lenet import TABLE_I, EuclideanRBF, MapScale, ScaledTanh, TableConv


def _lenet5(**kwargs) -> nn.Module:
    torch.manual_seed(0)
    return convzoo.create_model("lenet5", **kwargs)


def _trainable(m: nn.Module) -> int:
    return count_params(m, trainable_only=True)


def test_per_layer_trainable_parameters() -> None:
    net = _lenet5()
    f, h = net.features, net.head
    assert _trainable(f.c1) == 6 * (5 * 5 * 1 + 1) == 156
    assert _trainable(f.s2) == 6 * 2 == 12  # a coefficient and a bias per map
    assert _trainable(f.c3) == 6 * (3 * 25 + 1) + 9 * (4 * 25 + 1) + 1 * (6 * 25 + 1) == 1_516
    assert _trainable(f.s4) == 16 * 2 == 32
    assert _trainable(f.c5) == 120 * (16 * 25 + 1) == 48_120
    assert _trainable(h.f6) == 84 * (120 + 1) == 10_164
    assert _trainable(h.output) == 0  # fixed centres
    assert _trainable(net) == count_params(net) == 156 + 12 + 1_516 + 32 + 48_120 + 10_164 == 60_000


def test_linear_output_variant() -> None:
    net = _lenet5(output="linear")
    assert isinstance(net.head.output, nn.Linear)
    assert _trainable(net) == 60_000 + 10 * (84 + 1) == 60_850


def test_connections_are_the_papers_340908() -> None:
    # §II.B per layer: C1 28·28·6·(25+1), S2 14·14·6·(4+1), C3 10·10·1,516, S4 5·5·16·(4+1), C5 1·1·48,120,
    # F6 84·(120+1), output 10·84 (each RBF unit reads the 84 F6 outputs).
    paper = [122_304, 5_880, 151_600, 2_000, 48_120, 10_164, 840]
    assert paper == [28 * 28 * 6 * 26, 14 * 14 * 6 * 5, 100 * 1_516, 25 * 16 * 5, 48_120, 84 * 121, 10 * 84]
    assert sum(paper) == 340_908

    net = _lenet5().eval()
    counted: list[int] = []

    def hook(mod: nn.Module, args: tuple, out: torch.Tensor) -> None:
        positions = out[0, 0].numel() if out.ndim == 4 else 1
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            counted.append(positions * sum(p.numel() for p in mod.parameters()))
        elif isinstance(mod, MapScale):  # each output reads `window` inputs and the bias
            counted.append(out[0].numel() * (mod.window + 1))
        elif isinstance(mod, EuclideanRBF):
            counted.append(out[0].numel() * mod.in_features)

    handles = [m.register_forward_hook(hook) for m in net.modules()]
    with torch.no_grad():
        net(torch.zeros(1, 1, 32, 32))
    for h in handles:
        h.remove()
    assert sum(counted) == 340_908


def test_c3_reads_the_s2_maps_of_table_i() -> None:
    """Perturb one S2 map at a time and watch which C3 maps change."""
    c3 = _lenet5().features.c3.conv
    x = torch.randn(1, 6, 14, 14)
    with torch.no_grad():
        base = c3(x)
        readers: dict[int, set[int]] = {}
        for i in range(6):
            x2 = x.clone()
            x2[:, i] += 1.0
            delta = (c3(x2) - base).abs().amax(dim=(0, 2, 3))
            readers[i] = {j for j in range(16) if delta[j] > 0}
    reads = [sorted(i for i in range(6) if j in readers[i]) for j in range(16)]
    assert reads == [sorted(row) for row in TABLE_I]


def test_table_i_shape() -> None:
    """§II.B: six maps read 3 contiguous S2 maps, six read 4 contiguous, three read 4 discontinuous, one all."""

    def contiguous(row: tuple[int, ...]) -> bool:  # cyclically: some rotation of 0..5 holds it as a run
        return any(set(row) == {(s + k) % 6 for k in range(len(row))} for s in range(6))

    assert [len(r) for r in TABLE_I] == [3] * 6 + [4] * 9 + [6]
    assert all(contiguous(r) for r in TABLE_I[:12])
    assert not any(contiguous(r) for r in TABLE_I[12:15])
    assert len(set(TABLE_I)) == 16


def test_c3_has_no_masked_weights() -> None:
    c3 = _lenet5().features.c3.conv
    assert isinstance(c3, TableConv)
    shapes = [tuple(conv.weight.shape) for conv in c3.runs.values()]
    assert shapes == [(6, 3, 5, 5), (9, 4, 5, 5), (1, 6, 5, 5)]
    assert "inputs" not in c3.state_dict()  # the table is code, not a weight


def test_rbf_centres_are_fixed_buffers() -> None:
    net = _lenet5()
    rbf = net.head.output
    assert isinstance(rbf, EuclideanRBF)
    assert "centres" in dict(rbf.named_buffers())
    assert all("centres" not in n for n, _ in net.named_parameters())
    assert not rbf.centres.requires_grad
    net(torch.randn(2, 1, 32, 32)).square().sum().backward()
    assert rbf.centres.grad is None
    c = rbf.centres
    assert c.shape == (10, 84) and set(c.unique().tolist()) == {-1.0, 1.0}
    assert len({tuple(r) for r in c.tolist()}) == 10
    assert torch.equal(c.square().sum(1), torch.full((10,), 84.0))  # equal norms: no class favoured at 0
    assert not (c == 1).all(1).any()  # the all-ones Hadamard row is skipped


def test_rbf_logits_are_negative_squared_distances() -> None:
    rbf = _lenet5().head.output
    x = torch.randn(5, 84)
    expected = -torch.cdist(x, rbf.centres).square()
    torch.testing.assert_close(rbf(x), expected, rtol=1e-4, atol=1e-3)
    assert torch.equal(rbf(rbf.centres).argmax(1), torch.arange(10))  # a centre is nearest to itself


def test_rbf_macs_equal_flop_counter() -> None:
    rbf = EuclideanRBF(84, 10)
    x = torch.randn(3, 84)
    with FlopCounterMode(display=False) as counter:
        out = rbf(x)
    assert rbf.macs(x, out) == counter.get_total_flops() // 2 == 3 * 10 * 84


def test_rbf_refuses_more_classes_than_its_code() -> None:
    with torch.device("meta"):
        assert convzoo.create_model("lenet5", num_classes=127).num_classes == 127
        with pytest.raises(convzoo.UserError, match="output='linear'"):
            convzoo.create_model("lenet5", num_classes=128)
        assert convzoo.create_model("lenet5", num_classes=1000, output="linear").num_classes == 1000
        with pytest.raises(convzoo.UserError, match="'rbf' or 'linear'"):
            convzoo.create_model("lenet5", output="softmax")


def test_stage_shapes_28_14_10_5_1() -> None:
    shapes = stage_shapes(_lenet5(), (1, 32, 32))
    # C1 32−5+1 = 28; S2 28/2 = 14; C3 14−5+1 = 10; S4 10/2 = 5; C5 5−5+1 = 1
    assert {k: v for k, v in shapes.items() if k != "features"} == {
        "features.c1": [6, 28, 28], "features.s2": [6, 14, 14], "features.c3": [16, 10, 10],
        "features.s4": [16, 5, 5], "features.c5": [120, 1, 1],
    }


def test_28x28_input_is_refused_naming_32() -> None:
    net = _lenet5()
    with pytest.raises(convzoo.UserError, match=r"1×28×28.*32 to 35.*Pad\(2\)"):
        net(torch.randn(2, 1, 28, 28))


def test_squashing_and_subsampling() -> None:
    f = ScaledTanh()
    torch.testing.assert_close(f(torch.tensor([1.0, -1.0])), torch.tensor([1.0, -1.0]), rtol=0, atol=1e-4)
    s2 = _lenet5().features.s2  # pool → scale → act: the four inputs summed, × coefficient, + bias
    with torch.no_grad():
        s2.scale.coefficient.fill_(0.5)
        s2.scale.bias.fill_(0.25)
        x = torch.randn(1, 6, 28, 28)
        four_sum = x.reshape(1, 6, 14, 2, 14, 2).sum((3, 5))
        torch.testing.assert_close(s2(x), f(0.5 * four_sum + 0.25))


def test_appendix_a_initialisation() -> None:
    net = _lenet5()
    fan_in = {"features.c1.conv": 25, "features.c3.conv.runs.maps0_5": 75, "features.c3.conv.runs.maps6_14": 100,
              "features.c3.conv.runs.map15": 150, "features.c5.conv": 400, "head.f6.fc": 120,
              "features.s2.scale": 4, "features.s4.scale": 4}
    modules = dict(net.named_modules())
    for name, f_i in fan_in.items():
        for p in modules[name].parameters():
            assert p.abs().max() <= 2.4 / f_i, name
            assert p.abs().max() > 0.5 * 2.4 / f_i, name  # drawn over the whole range, not left at a default


def test_modern_variant() -> None:
    torch.manual_seed(0)
    net = convzoo.create_model("lenet5_modern")
    # C1 6·(25+1) + C3 16·(6·25+1) + C5 120·(16·25+1) + F6 84·(120+1) + output 10·(84+1)
    assert count_params(net) == 156 + 2_416 + 48_120 + 10_164 + 850 == 61_706
    kinds = {type(m) for m in net.modules()}
    assert {nn.ReLU, nn.MaxPool2d, nn.Linear} <= kinds
    assert not kinds & {ScaledTanh, MapScale, TableConv, EuclideanRBF, nn.AvgPool2d}
    assert net.features.c3.conv.in_channels == 6 and net.features.c3.conv.groups == 1
    assert stage_shapes(net, (1, 32, 32))["features"] == [120, 1, 1]
