"""`convzoo export` (ONNX, .pt2, safetensors) with its parity check, and `convzoo predict FILE.onnx` without torch."""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import convzoo
from convzoo.cli import main
from convzoo.deploy import export as export_mod
from convzoo.deploy.export import export, load_exportable, read_metadata
from convzoo.errors import UserError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from convzoo.deploy.onnx_predict import predict_onnx  # noqa: E402  (needs onnxruntime only when run)
from data_writers import write_idx  # noqa: E402
from helpers import small_input  # noqa: E402

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def fm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained lenet5_modern run on a tiny Fashion-MNIST in the real idx format (1×28×28 images padded to 32)."""
    root = tmp_path_factory.mktemp("export")
    write_idx(root / "fashion", n_train=128, n_test=32)
    out = root / "run"
    argv = ["train", "lenet5_modern", "--dataset", "fashion-mnist", "--data-dir", str(root / "fashion"), "--no-verify",
            "--epochs", "1", "--out", str(out), "--quiet", "--amp", "none", "--device", "cpu", "--batch-size", "64"]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def fm_onnx(fm_run: Path) -> tuple[Path, str]:
    """`convzoo export RUN --format onnx`: the file and what the command printed."""
    path = fm_run.parent / "lenet.onnx"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["export", str(fm_run), "--format", "onnx", "--out", str(path)]) == 0
    return path, buf.getvalue()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A grey 28×28 image (the stored size: decoded the same way on both paths) and an RGB 40×50 one (resized)."""
    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    grey, rgb = d / "grey.png", d / "rgb.png"
    Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(grey)
    Image.fromarray(rng.integers(0, 256, (50, 40, 3), dtype=np.uint8)).save(rgb)
    return {"grey": str(grey), "rgb": str(rgb)}


# --- a trained run to ONNX, and predictions from the file ------------------------------------------

def test_export_of_a_trained_run_passes_its_onnxruntime_check(fm_onnx: tuple[Path, str]) -> None:
    path, printed = fm_onnx
    assert "check passed: onnxruntime" in printed and "top-1 identical on 5/5" in printed, printed
    assert "opset 20" in printed and "(limit 0.0001)" in printed
    model = onnx.load(str(path))
    props = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert props["format"] == "convzoo-export/1" and props["model"] == "lenet5_modern"
    assert props["classes"] == FASHION and props["stored_size"] == [28, 28]
    assert props["input"]["size"] == [32, 32] and props["input"]["channels"] == 1 and len(props["input"]["mean"]) == 1
    assert props["opset"] == 20 and model.opset_import[0].version == 20
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, 32, 32] and props["dynamic"] == ["batch"]  # LeNet's fully-connected head fixes 32
    assert read_metadata(path)["classes"] == FASHION


def test_predict_from_onnx_answers_as_the_run_does(capsys: pytest.CaptureFixture[str], fm_run: Path,
                                                    fm_onnx: tuple[Path, str], images: dict[str, str]) -> None:
    path = fm_onnx[0]
    paths = [images["grey"], images["rgb"]]
    ours = predict_onnx(path, paths, top=10)
    torch_side = convzoo.predict(fm_run, paths, top=10)
    for a, b, tol in zip(ours, torch_side, (1e-5, 0.02)):  # the RGB image's resize rounds to uint8 in PIL vs torch
        assert a["image"] == b["image"] and a["top"][0]["class"] == b["top"][0]["class"]
        pa = {t["class"]: t["probability"] for t in a["top"]}
        pb = {t["class"]: t["probability"] for t in b["top"]}
        assert set(pa) == set(FASHION) and max(abs(pa[c] - pb[c]) for c in FASHION) <= tol
    code, out, _ = run(capsys, "predict", str(path), *paths, "--json", "--top", "3")
    assert code == 0 and [r["top"] for r in json.loads(out)] == [r["top"][:3] for r in ours]
    code, out, _ = run(capsys, "predict", str(path), images["grey"])
    assert code == 0 and out.startswith(f"{images['grey']}: {ours[0]['top'][0]['class']} ")


@pytest.mark.parametrize(("have", "want", "stored", "size"), [
    (1, 1, (28, 28), (32, 32)),  # padded (LeNet on Fashion-MNIST)
    (1, 3, (28, 28), (227, 227)),  # grey to RGB, enlarged (AlexNet on Fashion-MNIST)
    (3, 1, (32, 32), (28, 28)),  # RGB to grey by luma, shrunk with antialiasing
    (3, 3, (64, 48), (40, 70)),  # shrunk one way, enlarged the other
])
def test_onnx_preprocessing_is_the_training_pipeline_in_numpy(have: int, want: int, stored: tuple[int, int],
                                                              size: tuple[int, int]) -> None:
    from convzoo.data.pipeline import InputSpec, prepare
    from convzoo.deploy import onnx_predict

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (have, *stored), dtype=np.uint8)
    spec = InputSpec(size, want, tuple(rng.random(have) * 0.5 + 0.2), tuple(rng.random(have) * 0.2 + 0.1))
    expected = prepare(torch.from_numpy(img)[None], spec)[0].numpy()
    x = onnx_predict._to_size(onnx_predict._channels(img.astype(np.float32) / 255, want), size, "auto")
    got = (x - onnx_predict._stats(spec.mean, have, want)) / onnx_predict._stats(spec.std, have, want)
    assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-4


def test_predict_from_onnx_imports_no_torch(fm_onnx: tuple[Path, str], images: dict[str, str]) -> None:
    script = ("import json, sys\nfrom convzoo.cli import main\nimport convzoo\n"
              f"code = main(['predict', {str(fm_onnx[0])!r}, {images['grey']!r}, '--json'])\n"
              "print(json.dumps({'code': code, 'torch': 'torch' in sys.modules, 'version': convzoo.__version__}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr
    *predictions, verdict = done.stdout.strip().splitlines()
    assert json.loads(verdict) == {"code": 0, "torch": False, "version": convzoo.__version__}
    assert json.loads("\n".join(predictions))[0]["top"][0]["class"] in FASHION


# --- every family, one network each, at a small input ------------------------------------------------

# The smallest network of each family (VGG's are left to scripts/export_all.py: their fixed 224 head holds 120M+
# weights, a 500 MB file). googlenet and inception_v3 are built with their auxiliary heads, which eval mode leaves
# out of the graph. Between them: LRN (alexnet, googlenet), grouped convolutions (alexnet, shufflenet, resnext's
# family), depthwise ones (mobilenet v1/v2, xception), channel shuffle (shufflenet), ceil-mode pooling (squeezenet).
FAMILIES = {
    "lenet5": {}, "alexnet": {}, "nin_cifar": {}, "googlenet": {"aux_logits": True}, "inception_bn": {},
    "inception_v3": {"aux_logits": True}, "inception_v4": {}, "inception_resnet_v1": {}, "xception": {},
    "squeezenet1_1": {}, "mobilenet_v1_x0_25": {}, "mobilenet_v2_x0_35": {}, "shufflenet_v1_g3_x0_25": {},
    "resnet18": {},
}
FIXED_HEAD = {"lenet5", "alexnet"}  # a fully-connected head fixes the input size


def test_the_family_list_covers_every_family_but_vgg() -> None:
    families = {convzoo.model_info(n).family for n in FAMILIES}
    assert families == set(convzoo.list_families()) - {"vgg"}


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_exports_to_onnx_and_passes_its_check(name: str, tmp_path: Path) -> None:
    options = {"num_classes": 10, **FAMILIES[name]}
    size = small_input(name)  # the eval-mode forward leaves the auxiliary heads (and their size limits) out
    record = export(name, "onnx", tmp_path / "net.onnx", options=options, input_size=size)
    check = record.check
    assert check.passed and check.rel_diff <= 1e-4 and check.top1_same == check.images, check.describe()
    spatial = name not in FIXED_HEAD
    assert record.dynamic == (("batch", "height", "width") if spatial else ("batch",))
    assert check.images == (7 if spatial else 5) and record.opset == 20
    session = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    (output,) = session.get_outputs()  # no auxiliary logits
    assert output.shape == ["batch", 10]
    assert session.get_inputs()[0].shape == ["batch", size[0], *(["height", "width"] if spatial else size[1:])]
    assert read_metadata(tmp_path / "net.onnx")["classes"] == [str(i) for i in range(10)]


# --- .pt2 and safetensors -------------------------------------------------------------------------

def test_pt2_export_is_checked_and_carries_the_metadata(fm_run: Path, tmp_path: Path) -> None:
    record = export(fm_run, "pt2", tmp_path / "net.pt2")
    assert record.check.passed and record.check.runtime == "torch.export.load" and record.opset is None
    assert read_metadata(tmp_path / "net.pt2")["classes"] == FASHION
    program = torch.export.load(str(tmp_path / "net.pt2"))
    x = torch.randn(3, 1, 32, 32)
    trained = load_exportable(fm_run).model
    with torch.no_grad():
        assert torch.allclose(program.module()(x), trained(x), atol=1e-5)


def test_safetensors_export_holds_the_weights_and_is_a_source_again(fm_run: Path, tmp_path: Path) -> None:
    record = export(fm_run, None, tmp_path / "net.safetensors")  # the format from the suffix
    assert record.format == "safetensors" and record.check.max_abs_diff == 0
    again = load_exportable(tmp_path / "net.safetensors")
    trained = load_exportable(fm_run)
    assert again.classes == tuple(FASHION) and again.stored_size == (28, 28) and again.spec == trained.spec
    for (k, a), (_, b) in zip(again.model.state_dict().items(), trained.model.state_dict().items()):
        assert torch.equal(a, b), k


# --- sources ------------------------------------------------------------------------------------

def _weights(source: str, tmp_path: Path, **options: object) -> dict[str, torch.Tensor]:
    out = tmp_path / f"{source.replace('/', '_')}-{len(list(tmp_path.iterdir()))}.safetensors"
    export(source, "safetensors", out, **options)  # type: ignore[arg-type]
    from safetensors.torch import load_file

    return load_file(str(out))


def test_a_registered_name_exports_its_initial_weights_by_seed(tmp_path: Path) -> None:
    a = _weights("lenet5", tmp_path, options={"num_classes": 10, "in_chans": 1}, seed=0)
    b = _weights("lenet5", tmp_path, options={"num_classes": 10, "in_chans": 1}, seed=0)
    c = _weights("lenet5", tmp_path, options={"num_classes": 10, "in_chans": 1}, seed=1)
    assert all(torch.equal(a[k], b[k]) for k in a) and not all(torch.equal(a[k], c[k]) for k in a)
    net = load_exportable("lenet5", options={"num_classes": 10, "in_chans": 1})
    assert net.classes == tuple(map(str, range(10))) and net.spec.size == (32, 32)
    assert net.spec.mean == export_mod.default_stats(1)[0]  # ImageNet's statistics in grey


def test_a_weights_file_is_exported_with_model_and_its_options(tmp_path: Path) -> None:
    torch.manual_seed(3)
    net = convzoo.create_model("lenet5_modern", num_classes=7)
    torch.save(net.state_dict(), tmp_path / "w.pth")
    got = _weights(str(tmp_path / "w.pth"), tmp_path, model="lenet5_modern", options={"num_classes": 7})
    assert all(torch.equal(got[k], v) for k, v in net.state_dict().items())
    with pytest.raises(UserError, match=r"head\.fc\.weight|do not fit") as err:
        export(tmp_path / "w.pth", "onnx", tmp_path / "x.onnx", model="lenet5_modern", options={"num_classes": 10})
    assert "\n" not in str(err.value) and "--num-classes" in str(err.value)


def test_a_torchvision_state_dict_goes_through_load_peer_weights(tmp_path: Path) -> None:
    from helpers import build_peer

    torch.manual_seed(0)
    peer = build_peer("torchvision", "squeezenet1_1", num_classes=10).eval()
    torch.save(peer.state_dict(), tmp_path / "tv.pth")
    net = load_exportable(tmp_path / "tv.pth", model="squeezenet1_1", weights_source="torchvision",
                          options={"num_classes": 10})
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(net.model(x), peer(x), atol=1e-5)
    assert net.origin == "torchvision weights tv.pth"


# --- bad input: one line, exit 2, nothing written ----------------------------------------------------

def _broken_files(tmp_path: Path, fm_run: Path) -> dict[str, Path]:
    ckpt = (fm_run / "best.safetensors").read_bytes()
    files = {"truncated": tmp_path / "cut.safetensors", "text": tmp_path / "notes.txt", "pth": tmp_path / "w.pth",
             "fake_onnx": tmp_path / "fake.onnx", "bare_onnx": tmp_path / "bare.onnx", "a_file": tmp_path / "file"}
    files["truncated"].write_bytes(ckpt[: len(ckpt) // 2])
    files["text"].write_text("not a checkpoint\n")
    torch.save({"w": torch.zeros(2)}, files["pth"])
    files["fake_onnx"].write_bytes(b"\x08\x07garbage")
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 2, 2])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 1, 2, 2])])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 20)]), files["bare_onnx"])
    files["a_file"].write_text("")
    return files


BAD = [
    (["export", "lenet5", "--format", "tflite", "--out", "{out}/m.onnx"], "invalid choice: 'tflite'"),
    (["export", "lenet5", "--out", "{out}/m.tflite"], "cannot tell the format"),
    (["export", "lenet5", "--format", "onnx", "--out", "{out}/m.pt2"], "names a pt2 file"),
    (["export", "{truncated}", "--out", "{out}/m.onnx"], "truncated"),
    (["export", "{text}", "--out", "{out}/m.onnx"], "not a safetensors file"),
    (["export", "{pth}", "--out", "{out}/m.onnx"], "--model NAME"),
    (["export", "{pth}", "--model", "lenet5", "--out", "{out}/m.onnx"], "do not fit"),
    (["export", "{pth}", "--source", "timm", "--out", "{out}/m.onnx"], "add --model NAME"),
    (["export", "/nonexistent/run", "--out", "{out}/m.onnx"], "does not exist"),
    (["export", "lenet9", "--out", "{out}/m.onnx"], "unknown model 'lenet9'"),
    (["export", "lenet5", "--set", "output=cosine", "--out", "{out}/m.onnx"], "output"),
    (["export", "lenet5", "--input", "64", "--out", "{out}/m.onnx"], "lenet5 cannot take a 1×64×64 input"),
    (["export", "{run}", "--num-classes", "3", "--out", "{out}/m.onnx"], "leave out --num-classes"),
    (["export", "lenet5", "--out", "{out}"], "is a directory"),
    (["export", "lenet5", "--out", "{a_file}/m.onnx"], "not a writable directory"),
    (["predict", "{fake_onnx}", "{text}"], "cannot load ONNX file"),
    (["predict", "{bare_onnx}", "{text}"], "without convzoo's metadata"),
    (["predict", "{out}/missing.onnx", "{text}"], "does not exist"),
]


@pytest.mark.parametrize(("argv", "message"), BAD)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                         fm_run: Path, argv: list[str], message: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    names = {k: str(v) for k, v in _broken_files(tmp_path, fm_run).items()} | {"out": str(out), "run": str(fm_run)}
    with pytest.raises(SystemExit) as exited:
        raise SystemExit(main([a.format(**names) for a in argv]))
    _, err = capsys.readouterr()
    assert exited.value.code == 2 and err.count("\n") == 1 and message in err and err.startswith("convzoo"), err
    assert not any(out.iterdir()) and not (tmp_path / "file").is_dir()


def test_a_failed_check_is_an_error_and_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = export_mod.check_file

    def off_by_one(fmt: str, tmp: Path, inputs: list, expected: list) -> export_mod.Check:  # torch's logits + 1
        return real(fmt, tmp, inputs, [e + 1.0 for e in expected])

    monkeypatch.setattr(export_mod, "check_file", off_by_one)
    with pytest.raises(UserError, match="does not match torch, so it was not written") as err:
        export("lenet5", "onnx", tmp_path / "m.onnx", options={"num_classes": 10})
    assert "check FAILED" in str(err.value) and "\n" not in str(err.value)
    assert not any(tmp_path.iterdir())  # neither the file nor its temporary


def test_a_file_that_fails_at_another_size_falls_back_to_a_fixed_size(tmp_path: Path) -> None:
    """alexnet_owt pools to 6×6 adaptively: the TorchScript exporter bakes the pooling window of the export size
    into the graph, which the check at a larger size catches; the export then keeps its size (dynamic batch)."""
    record = export("alexnet_owt", "onnx", tmp_path / "m.onnx", options={"num_classes": 10}, input_size=(63, 63))
    assert record.check.passed and record.dynamic == ("batch",) and record.check.images == 5
    assert any("failed" in r for r in record.refused), record.refused
