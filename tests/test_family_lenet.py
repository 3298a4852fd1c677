"""LeNet-5 (LeCun et al. 1998): the paper's counts written out, Table I, the RBF output, the input size."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
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


# --- the fast forward computes the paper's function (a reference written out here, from the same weights) ---

_A, _S = 1.7159, 2.0 / 3.0


def _squash(a: torch.Tensor) -> torch.Tensor:
    return _A * torch.tanh(_S * a)


def _subsample(x: torch.Tensor, scale: MapScale) -> torch.Tensor:
    """§II.B: the four inputs of each 2×2 window summed, times the map's coefficient, plus its bias, squashed."""
    n, c, h, w = x.shape
    four = x.reshape(n, c, h // 2, 2, w // 2, 2).sum((3, 5))
    return _squash(four * scale.coefficient.view(1, c, 1, 1) + scale.bias.view(1, c, 1, 1))


def _c3(x: torch.Tensor, table_conv: TableConv) -> torch.Tensor:
    """Table I map by map: C3 map j convolves the S2 maps TABLE_I[j] with its own kernels (row j of the runs)."""
    kernels = [(conv, r) for conv in table_conv.runs.values() for r in range(conv.out_channels)]
    maps = [nn.functional.conv2d(x[:, list(reads)], conv.weight[r:r + 1], conv.bias[r:r + 1])
            for reads, (conv, r) in zip(TABLE_I, kernels)]
    return torch.cat(maps, 1)


def _reference_lenet5(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    f, h = net.features, net.head
    x = _squash(f.c1.conv(x))
    x = _subsample(x, f.s2.scale)
    x = _squash(_c3(x, f.c3.conv))
    x = _subsample(x, f.s4.scale)
    x = _squash(f.c5.conv(x)).flatten(1)
    x = _squash(h.f6.fc(x))
    return -(x[:, None, :] - h.output.centres[None]).square().sum(2)  # eq. 7 as a broadcast difference


def _logits_and_grads(fn, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
    net.zero_grad(set_to_none=True)
    logits = fn(x)
    nn.functional.cross_entropy(logits, y).backward()
    return logits.detach(), {n: p.grad.clone() for n, p in net.named_parameters()}


# Gradients here are 1e-4 … 1; float32 rounding leaves ~1e-7 of absolute difference (a small bias gradient is a
# sum that cancels, so its relative difference is larger), a wrong connection or derivative ~1e-3 or more.
@pytest.mark.parametrize(("dtype", "rtol", "atol"), [(torch.float64, 1e-10, 1e-13), (torch.float32, 1e-4, 1e-6)])
def test_forward_and_gradients_equal_a_written_out_reference(dtype: torch.dtype, rtol: float, atol: float) -> None:
    net = _lenet5().to(dtype).train()
    x = torch.randn(8, 1, 32, 32, dtype=dtype, generator=torch.Generator().manual_seed(1))
    y = torch.arange(8) % 10
    ours, ours_grads = _logits_and_grads(net, net, x, y)
    ref, ref_grads = _logits_and_grads(lambda t: _reference_lenet5(net, t), net, x, y)
    torch.testing.assert_close(ours, ref, rtol=rtol, atol=rtol * ref.abs().max().item())
    assert ours_grads.keys() == ref_grads.keys() and len(ours_grads) == 16
    for name, g in ref_grads.items():
        torch.testing.assert_close(ours_grads[name], g, rtol=rtol, atol=atol, msg=name)


def test_state_dict_keys_and_shapes_are_unchanged() -> None:
    """Checkpoints written before the fast forward still load: the same keys, the same shapes."""
    sd = _lenet5().state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == {
        "features.c1.conv.weight": (6, 1, 5, 5), "features.c1.conv.bias": (6,),
        "features.s2.scale.coefficient": (6,), "features.s2.scale.bias": (6,),
        "features.c3.conv.runs.maps0_5.weight": (6, 3, 5, 5), "features.c3.conv.runs.maps0_5.bias": (6,),
        "features.c3.conv.runs.maps6_14.weight": (9, 4, 5, 5), "features.c3.conv.runs.maps6_14.bias": (9,),
        "features.c3.conv.runs.map15.weight": (1, 6, 5, 5), "features.c3.conv.runs.map15.bias": (1,),
        "features.s4.scale.coefficient": (16,), "features.s4.scale.bias": (16,),
        "features.c5.conv.weight": (120, 16, 5, 5), "features.c5.conv.bias": (120,),
        "head.f6.fc.weight": (84, 120), "head.f6.fc.bias": (84,), "head.output.centres": (10, 84),
    }
    twin = convzoo.create_model("lenet5")
    twin.load_state_dict(sd)  # strict
    x = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(twin(x), _lenet5()(x), rtol=0, atol=0)


class _ConvCount(TorchDispatchMode):
    """Counts aten convolutions; a dispatch mode installs no module hook, so TableConv takes its dense form."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.convs += func._overloadpacket is torch.ops.aten.convolution
        return func(*args, **(kwargs or {}))


def test_c3_dense_kernel_holds_table_i_and_the_run_form_agrees() -> None:
    c3 = _lenet5().features.c3.conv
    weight, bias = c3.dense()
    assert weight.shape == (16, 6, 5, 5) and bias.shape == (16,)
    reads = [sorted(i for i in range(6) if weight[j, i].ne(0).any()) for j in range(16)]
    assert reads == [sorted(row) for row in TABLE_I]  # zeros exactly where Table I has no connection
    assert int(weight.ne(0).sum()) == 25 * 60 and c3.slots.numel() == 60  # 60 connections of 5×5 weights
    x = torch.randn(3, 6, 14, 14, requires_grad=True)
    with _ConvCount() as count:
        fast = c3(x)
    assert count.convs == 1  # one dense convolution, not three grouped ones
    (gx_fast,) = torch.autograd.grad(fast.square().sum(), x)
    runs = c3.forward_runs(x)
    (gx_runs,) = torch.autograd.grad(runs.square().sum(), x)
    torch.testing.assert_close(fast, runs)
    torch.testing.assert_close(gx_fast, gx_runs)


def test_observers_see_the_runs_and_the_papers_macs() -> None:
    """A hook on a run, `FlopCounterMode` or `analyze` on the CPU all see C3 as its three grouped convolutions."""
    net = _lenet5().eval()
    x = torch.randn(1, 1, 32, 32)
    called: list[str] = []
    run = net.features.c3.conv.runs["maps6_14"]
    handle = run.register_forward_hook(lambda m, a, out: called.append(tuple(out.shape)))
    try:
        with _ConvCount() as count:
            net(x)
    finally:
        handle.remove()
    assert called == [(1, 9, 10, 10)] and count.convs == 5  # C1, three C3 runs, C5
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    assert counter.get_total_flops() // 2 == 326_520  # the pinned MACs, not a dense C3's 416,520
    report = convzoo.analyze(net, device="cpu", find_input_range=False)
    assert report.diagnostics == () and report.totals.macs == 326_520
    macs = {r.name.rpartition(".")[2]: r.macs for r in report.rows if r.name.startswith("features.c3.conv.runs.")}
    assert macs == {"maps0_5": 10 * 10 * 6 * 3 * 25, "maps6_14": 10 * 10 * 9 * 4 * 25, "map15": 10 * 10 * 1 * 6 * 25}


def test_scaled_tanh_is_the_three_op_formula() -> None:
    x = torch.randn(4, 6, 7, 7) * 3
    assert torch.equal(ScaledTanh()(x), 1.7159 * torch.tanh(x * (2.0 / 3.0)))  # the same ops: the same bits
    a = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ScaledTanh(), (a,))
    assert torch.autograd.gradgradcheck(ScaledTanh(), (a,))  # second derivatives still work
    with torch.device("meta"):
        assert ScaledTanh()(torch.empty(2, 3)).shape == (2, 3)


def test_map_scale_gradients() -> None:
    scale = MapScale(3, window=4).double()
    with torch.no_grad():
        scale.coefficient.copy_(torch.tensor([0.5, -1.0, 2.0]))
        scale.bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(scale(x), x * (4 * scale.coefficient).view(1, 3, 1, 1) + scale.bias.view(1, 3, 1, 1))
    assert torch.autograd.gradcheck(lambda t, c, b: torch.func.functional_call(
        scale, {"coefficient": c, "bias": b}, (t,)), (x, scale.coefficient.detach().requires_grad_(),
                                                      scale.bias.detach().requires_grad_()))
