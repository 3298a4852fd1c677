"""`convzoo summary`, `cost` and `compare`: golden text outputs (regenerate with `pytest --update-golden`),
parsed machine-readable outputs, and one-line errors with exit status 2."""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest

import convzoo
from convzoo.cli import main

GOLDEN = Path(__file__).parent / "golden"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exited:  # argparse usage errors
        code = int(exited.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def golden(request: pytest.FixtureRequest, name: str, text: str) -> None:
    path = GOLDEN / name
    if request.config.getoption("--update-golden"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run pytest --update-golden and review the diff"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs: review, then pytest --update-golden"


def needs(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(name not in convzoo.list_models(), reason=f"{name} is not registered yet")


@needs("alexnet")
def test_summary_alexnet_explain_reproduces_the_derivations(request: pytest.FixtureRequest,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", "alexnet", "--explain")
    assert code == 0
    assert "out = ⌊(in + 2p − d(k−1) − 1)/s⌋ + 1 = ⌊(227 + 0 − 10 − 1)/4⌋ + 1 = 55" in out  # conv1
    assert "params = k_h·k_w·C_in/g·C_out + C_out = 11·11·3·96 + 96 = 34,944" in out
    assert "MACs = H_out·W_out·C_out·k_h·k_w·C_in/g = 55·55·96·11·11·3 = 105,415,200" in out
    assert "RF = rf_in + (k−1)·d·jump_in = 1 + 10·1·1 = 11; jump = jump_in·s = 1·4 = 4" in out
    assert "⌊(55 + 0 − 2 − 1)/2⌋ + 1 = 27" in out and "⌊(27 + 0 − 2 − 1)/2⌋ + 1 = 13" in out  # pool1, pool2
    assert "⌊(13 + 0 − 2 − 1)/2⌋ + 1 = 6" in out  # pool5
    assert "5·5·96/2·256 + 256 = 307,456" in out  # conv2, split over the two GPUs (groups = 2)
    for c, hw, n in ((256, 27, "186,624"), (384, 13, "64,896"), (256, 13, "43,264")):  # the paper's neurons, §3
        assert f"neurons = C_out·H_out·W_out = {c}·{hw}·{hw} = {n}" in out
    assert "warning" not in out  # 227 divides exactly
    golden(request, "summary_alexnet_explain.txt", out)


@needs("alexnet")
def test_explain_warns_when_the_division_drops_pixels(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", "alexnet", "--input", "224", "--set", "conv1_padding=2", "--explain")
    assert code == 0 and "⌊(224 + 4 − 10 − 1)/4⌋ + 1 = 55" in out
    assert "warning: 224 + 4 − 10 − 1 = 217 is not a multiple of 4: the last 1 pixel(s)" in out


@needs("alexnet")
def test_summary_alexnet_at_224_is_a_one_line_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "summary", "alexnet", "--input", "3x224x224")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("convzoo: error: alexnet cannot take a 3×224×224 input") and "227" in err


def test_summary_resnet18_depth_2(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", "resnet18", "--depth", "2")
    assert code == 0 and "stages.conv2_x" in out and "stages.conv2_x.0" not in out
    golden(request, "summary_resnet18_depth2.txt", out)


@needs("lenet5")
def test_summary_lenet5(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", "lenet5")
    assert code == 0 and "diagnostics: none" in out
    golden(request, "summary_lenet5.txt", out)


def test_summary_machine_readable_formats(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", "resnet18", "--input", "64", "--json")
    d = json.loads(out)
    assert code == 0 and d["schema_version"] == 1 and d["input_size"] == [3, 64, 64]
    assert d["totals"]["params"] == 11_689_512 and not d["diagnostics"]
    code, out, _ = run(capsys, "summary", "resnet18", "--format", "csv", "--depth", "1")
    assert code == 0 and [r["name"] for r in csv.DictReader(io.StringIO(out))] == ["stem", "stages", "head"]
    code, out, _ = run(capsys, "summary", "resnet18", "--format", "md", "--batch", "8")
    assert code == 0 and out.startswith("**resnet18 at 3×224×224") and "at batch 8" in out


def test_summary_builder_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", "resnet18", "--in-chans", "1", "--num-classes", "10", "--input", "28",
                       "--json")
    d = json.loads(out)
    assert code == 0 and d["input_size"] == [1, 28, 28] and d["rows"][-1]["output_shape"] == [10]


def test_cost_inception_example(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "cost", "bottleneck", "--in", "192", "--reduce", "16", "--out", "32", "-k", "5",
                       "--size", "28")
    assert code == 0
    assert "MACs   = H·W·C_out·k·k·C_in = 28·28·32·5·5·192 = 120,422,400" in out
    assert "28·28·16·192 + 28·28·32·5·5·16 = 2,408,448 + 10,035,200 = 12,443,648" in out
    golden(request, "cost_inception_bottleneck.txt", out)


@pytest.mark.parametrize(("argv", "macs"), [
    (["stack", "-c", "64"], 27 * 64 * 64),
    (["factorize", "-c", "64", "-n", "7", "--size", "17"], 17 * 17 * 14 * 64 * 64),
    (["resnet", "-c", "256", "-m", "64", "--size", "56"], 56 * 56 * (2 * 256 * 64 + 9 * 64 * 64)),
    (["resnext", "-c", "256", "-m", "128", "-g", "32", "--size", "56"],
     56 * 56 * (2 * 256 * 128 + 9 * 128 * 128 // 32)),
    (["shufflenet", "-c", "240", "-m", "60", "-g", "3", "--size", "28"], 28 * 28 * (2 * 240 * 60 // 3 + 9 * 60)),
    (["separable", "--in", "32", "--out", "64", "-k", "3", "--size", "112"], 112 * 112 * 32 * (9 + 64)),
    (["conv", "--in", "96", "--out", "256", "-k", "5", "-g", "2", "--bias", "--size", "27"], 27 * 27 * 256 * 25 * 48),
])
def test_cost_json(capsys: pytest.CaptureFixture[str], argv: list[str], macs: int) -> None:
    code, out, _ = run(capsys, "cost", *argv, "--json")
    assert code == 0 and json.loads(out)["macs"] == macs


def test_compare_table_json_and_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    png = tmp_path / "macs.png"
    code, out, _ = run(capsys, "compare", "resnet18", "resnet34", "--plot", str(png))
    assert code == 0 and png.read_bytes().startswith(b"\x89PNG")
    assert out.splitlines()[0].split()[:5] == ["name", "input", "params", "≈", "MACs"]
    assert f"plot written to {png}" in out
    code, out, _ = run(capsys, "compare", "resnet1[8]", "--json")
    assert code == 0 and json.loads(out) == [{
        "name": "resnet18", "input": [3, 224, 224], "params": 11_689_512, "macs": 1_814_073_344, "weight_layers": 18,
        "receptive_field": [435, 435], "input_range": [1, None], "complete": True}]


def test_compare_plot_without_matplotlib_is_a_user_error(capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run(capsys, "compare", "resnet18", "--plot", str(tmp_path / "x.png"))
    assert code == 2 and "pip install 'convzoo[plot]'" in err and err.count("\n") == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["summary", "resnet5"], "unknown model 'resnet5'; did you mean resnet50"),
    (["summary", "resnet18", "--input", "1x64x64"], "was built for 3 input channel(s) but got 1"),
    (["summary", "resnet18", "--input", "3x0x0"], "--input '3x0x0' is not a size"),
    (["summary", "resnet18", "--explain", "--json"], "--explain writes text derivations"),
    (["summary", "resnet18", "--depth", "0"], "--depth must be 1 or more"),
    (["summary", "resnet18", "--set", "bogus=1"], "resnet18 has no option 'bogus'"),
    (["summary", "resnet18", "--set", "bogus"], "--set 'bogus' is not KEY=VALUE"),
    (["compare", "nothing*"], "no registered model matches 'nothing*'"),
    (["cost", "resnext", "-c", "256", "-m", "128", "-g", "3"], "groups 3 must divide m = 128"),
    (["cost", "conv", "--in", "3", "--out", "8", "-k", "3", "--size", "a"], "'a' is not a map size"),
    (["cost", "bottleneck", "--in", "3"], "the following arguments are required"),
])
def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err, err
