"""Test-time protocols (`convzoo.deploy.tta`, `convzoo eval RUN --tta ...`): crops where the papers put them,
evaluation counts and MACs that add up, exact agreement with the baseline where a protocol must reduce to it,
and one-line errors for protocols and scales that cannot be."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import convzoo
from convzoo.cli import main
from convzoo.data.pipeline import InputSpec, prepare
from convzoo.dense import FullyConvNet
from convzoo.deploy import tta, views
from data_writers import isolate, write_idx

FAST_CPU = ["--quiet", "--amp", "none", "--device", "cpu", "--lr", "0.02", "--batch-size", "64"]
SPEC = InputSpec((32, 32), 1, (0.3,), (0.35,))  # a Fashion-MNIST run: 28×28 images padded to 32×32


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def fm_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A lenet5_modern run of one epoch on a tiny Fashion-MNIST in the real idx format: (run dir, data dir)."""
    root = tmp_path_factory.mktemp("tta")
    data = root / "fm"
    write_idx(data, n_train=128, n_test=40)
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp, root)
        argv = ["train", "lenet5_modern", "--dataset", "fashion-mnist", "--data-dir", str(data), "--no-verify",
                "--epochs", "1", "--out", str(root / "run"), *FAST_CPU]
        assert main(argv) == 0
    return root / "run", data


@pytest.fixture(scope="module")
def lenet() -> torch.nn.Module:
    torch.manual_seed(0)
    return convzoo.create_model("lenet5_modern").eval()


def _images(n: int = 3, size: tuple[int, int] = (28, 28)) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def test_ten_crops_are_the_four_corners_and_the_centre() -> None:
    x = torch.arange(9 * 11).view(1, 1, 9, 11)  # landscape: the crops come from the central 9×9 square
    offsets = views.ten_crop_offsets(9, 11, (4, 4))
    assert offsets == [(0, 1), (0, 6), (5, 1), (5, 6), (2, 3)]
    crops = views.crop(x, offsets, (4, 4))
    assert crops.shape == (1, 5, 1, 4, 4)
    square = x[0, 0, :, 1:10]
    expected = [square[:4, :4], square[:4, -4:], square[-4:, :4], square[-4:, -4:], square[2:6, 2:6]]
    for got, want in zip(crops[0, :, 0], expected):
        assert torch.equal(got, want)
    assert views.ten_crop_offsets(8, 8, (5, 5)) == [(0, 0), (0, 3), (3, 0), (3, 3), (1, 1)]


def test_grid_spans_the_image_corner_to_corner() -> None:
    offsets = views.grid_offsets(12, 10, (4, 4))
    assert len(offsets) == 25 and offsets[0] == (0, 0) and offsets[-1] == (8, 6) and offsets[12] == (4, 3)
    x = torch.arange(12 * 10).view(1, 1, 12, 10)
    assert torch.equal(views.crop(x, offsets, (4, 4))[0, -1, 0], x[0, 0, 8:, 6:])


def test_googlenet_crops_take_three_squares_and_six_crops_each() -> None:
    x = torch.arange(6 * 10, dtype=torch.float32).view(1, 1, 6, 10)  # landscape: squares at x = 0, 2, 4
    seen = views.googlenet_crops(x, (4, 4))
    assert seen.shape == (1, 18, 1, 4, 4)
    right = x[..., :, 4:10]  # the third square; its top-left corner crop, its centre crop, itself resized
    assert torch.equal(seen[0, 12, 0], right[0, 0, :4, :4]) and torch.equal(seen[0, 16, 0], right[0, 0, 1:5, 1:5])
    resized = F.interpolate(right, size=(4, 4), mode="bilinear", align_corners=False, antialias=True)
    assert torch.allclose(seen[0, 17], resized[0])


def test_144crop_makes_144_evaluations_per_image(lenet: torch.nn.Module) -> None:
    p = tta.plan(lenet, SPEC, "144crop")
    assert p.scales == (37, 41, 46, 50) and p.evaluations == 144  # 256, 288, 320, 352 × 32/224
    seen: list[int] = []
    handle = lenet.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    try:
        tta.log_posteriors(p, _images(3))
    finally:
        handle.remove()
    assert sum(seen) == 3 * 144


def test_flip_of_a_mirror_symmetric_input_is_the_baseline(lenet: torch.nn.Module) -> None:
    half = _images(4, (28, 14))
    symmetric = torch.cat([half, half.flip(-1)], -1)  # symmetric left-right, not top-bottom
    base = tta.log_posteriors(tta.plan(lenet, SPEC, "centre"), symmetric)
    flip = tta.plan(lenet, SPEC, "flip")
    assert flip.evaluations == 2
    assert torch.allclose(tta.log_posteriors(flip, symmetric), base, atol=1e-6)
    plain = _images(4)  # and the mirror does change the answer when the image is not symmetric
    assert not torch.allclose(tta.log_posteriors(flip, plain), tta.log_posteriors(tta.plan(lenet, SPEC, "none"),
                                                                                 plain), atol=1e-4)


def test_dense_at_the_training_scale_is_the_baseline() -> None:
    images = _images(2)
    single = replace(tta.PROTOCOLS["dense"], mirror=False)
    torch.manual_seed(0)
    pooled = convzoo.create_model("resnet18", num_classes=10, in_chans=1).eval()  # a global pool: runs natively
    p = tta.plan(pooled, SPEC, single, scales=[32])
    assert p.net is pooled
    with torch.no_grad():
        logits = pooled(prepare(images, SPEC))
    assert torch.allclose(tta.log_posteriors(p, images), logits.log_softmax(1), atol=1e-5)
    torch.manual_seed(0)
    fc = convzoo.create_model("lenet5_modern").eval()  # an FC head: through to_fully_conv
    p = tta.plan(fc, SPEC, single, scales=[32, 40])
    assert isinstance(p.net, FullyConvNet) and p.input_sizes == ((32, 32), (40, 40))
    with torch.no_grad():
        x = prepare(images, SPEC)
        assert p.net(x).shape[-2:] == (1, 1) and p.net(F.interpolate(x, size=(40, 40))).shape[-2:] == (3, 3)
        assert torch.allclose(tta.log_posteriors(replace(p, scales=(32,), image_sizes=((32, 32),),
                                                         input_sizes=((32, 32),), views=(1,)), images),
                              fc(x).log_softmax(1), atol=1e-5)


def test_macs_per_image_are_the_analysed_macs_times_the_evaluations(lenet: torch.nn.Module) -> None:
    at = {s: convzoo.analyze(lenet, input_size=(1, s, s), find_input_range=False).totals.macs for s in (32,)}
    ten = tta.plan(lenet, SPEC, "10crop")
    assert ten.scales == (37,) and ten.evaluations == 10 and ten.macs() == 10 * at[32]
    multi = tta.plan(lenet, SPEC, "multicrop", scales=[32, 40])
    assert multi.evaluations == 100 and multi.macs() == 100 * at[32]
    dense = tta.plan(lenet, SPEC, "dense", scales=[32, 40])
    fc = {s: convzoo.analyze(dense.net, input_size=(1, s, s), find_input_range=False).totals.macs for s in (32, 40)}
    assert dense.evaluations == 4 and dense.macs() == 2 * fc[32] + 2 * fc[40] and fc[32] == at[32] < fc[40]


def test_scales_of_one_protocol_from_python(lenet: torch.nn.Module, fm_run: tuple[Path, Path]) -> None:
    ten = tta.plan(lenet, SPEC, "10crop", scales=[40])  # what a {"10crop": [40]} mapping passes on
    assert ten.scales == (40,) and ten.image_sizes == ((40, 40),) and ten.evaluations == 10
    with pytest.raises(convzoo.UserError, match="flip looks at the network's own 32×32 input and takes no scales"):
        tta.plan(lenet, SPEC, "flip", scales=[40])
    with pytest.raises(convzoo.UserError, match="scales are given for 'dense', which is not among the protocols"):
        tta.evaluate_protocols(fm_run[0], "10crop", scales={"10crop": [40], "dense": [48]})
    report = tta.evaluate_protocols(fm_run[0], ["10crop", "centre"], scales={"10crop": [36]}, data_dir=fm_run[1],
                                    verify=False)
    assert [(r.protocol, r.scales) for r in report.results] == [("10crop", (36,)), ("none", (32,))]


def test_eval_tta_reports_accuracy_and_cost_per_protocol(capsys: pytest.CaptureFixture[str],
                                                         fm_run: tuple[Path, Path]) -> None:
    run_dir, data = fm_run
    common = [str(run_dir), "--data-dir", str(data), "--no-verify"]
    code, out, _ = run(capsys, "eval", *common, "--json")
    plain = json.loads(out)
    code, out, err = run(capsys, "eval", *common, "--tta", "none,flip", "--tta", "10crop,dense", "--scales", "32,40",
                         "--json")
    assert code == 0, err
    report = json.loads(out)
    rows = {r["protocol"]: r for r in report["results"]}
    assert list(rows) == ["none", "flip", "10crop", "dense"] and report["dataset"] == "fashion-mnist"
    assert [r["evaluations"] for r in rows.values()] == [1, 2, 10, 4]
    assert rows["dense"]["scales"] == [32, 40] and rows["10crop"]["scales"] == [37] and rows["flip"]["scales"] == [32]
    assert rows["none"]["top1"] == plain["top1"] and rows["none"]["loss"] == pytest.approx(plain["loss"], rel=1e-6)
    assert rows["10crop"]["macs_per_image"] == 10 * rows["none"]["macs_per_image"]
    assert all(r["images"] == 40 and 0 <= r["top1"] <= r["top5"] <= 1 and r["seconds"] > 0 for r in rows.values())
    code, out, _ = run(capsys, "eval", *common, "--tta", "centre,144crop")
    lines = out.splitlines()
    assert code == 0 and "protocol" in lines[1] and "evals/image" in lines[1] and "MACs/image" in lines[1]
    assert lines[3].split()[:3] == ["none", "32", "1"] and lines[4].split()[:3] == ["144crop", "37,41,46,50", "144"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--tta", "none,10crp"], "unknown test-time protocol '10crp'; did you mean 10crop?"),
    (["--tta", "dense", "--scales", "16,32"], "takes square sizes 32 or more; give --scales within that range"),
    (["--tta", "multicrop", "--scales", "24"], "no scale can be below 32; got 24"),
    (["--tta", "10crop", "--scales", "40"], "scales apply to dense, multicrop"),
    (["--scales", "40"], "add --tta dense"),
    (["--tta", "dense", "--scales", "32,4O"], "whole numbers of pixels"),
])
def test_bad_protocol_or_scale_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], fm_run: tuple[Path, Path],
                                                      extra: list[str], message: str) -> None:
    run_dir, data = fm_run
    code, out, err = run(capsys, "eval", str(run_dir), "--data-dir", str(data), "--no-verify", *extra)
    assert code == 2 and not out and err.count("\n") == 1 and err.startswith("convzoo: error: "), err
    assert message in err, err
