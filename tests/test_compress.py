"""`convzoo compress` / `convzoo quantize`: the Deep Compression pipeline, its file format, and the int8 export.

A LeNet-5 trained for one epoch on the synthetic data goes through the whole pipeline in seconds; the
codec is also tested on its own (Huffman, relative indices with fillers, k-means).
"""
from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convzoo.cli import main
from convzoo.deploy import compress as C
from convzoo.deploy import czc

FAST_CPU = ["--quiet", "--amp", "none", "--device", "cpu", "--lr", "0.02", "--batch-size", "128"]
PRUNE, BITS = 0.6, 3


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse's usage errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compress") / "run"
    assert main(["train", "lenet5_modern", "--dataset", "synthetic", "--epochs", "1", "--out", str(out),
                 *FAST_CPU]) == 0
    return out


@pytest.fixture(scope="module")
def compressed(trained_run: Path) -> tuple[Path, C.CompressReport]:
    out = trained_run.parent / "lenet.czc"
    report = C.compress(trained_run, prune=PRUNE, bits=BITS, out=out, finetune_epochs=1, batch_size=256)
    return out, report


# --- the pipeline -----------------------------------------------------------------------------------------------

def test_every_layer_reaches_the_target_sparsity_exactly(compressed: tuple[Path, C.CompressReport]) -> None:
    path, report = compressed
    model, _ = C.load_compressed(path)
    state = model.state_dict()
    keys = C.shared_layers(model)
    assert len(keys) == 5 and [r.name for r in report.layers] == keys  # 3 convolutions, 2 linear layers
    for k in keys:
        w = state[k]
        assert int((w == 0).sum()) == round(PRUNE * w.numel()), k
    n = sum(state[k].numel() for k in keys)
    assert report.sparsity == sum(round(PRUNE * state[k].numel()) for k in keys) / n
    assert abs(report.sparsity - PRUNE) < 1e-3


def test_each_layer_takes_at_most_2_to_the_bits_values(compressed: tuple[Path, C.CompressReport]) -> None:
    path, report = compressed
    model, _ = C.load_compressed(path)
    for row in report.layers:
        values = torch.unique(model.state_dict()[row.name])
        assert 0.0 in values.tolist() and len(values) <= 2 ** BITS, row.name
        assert row.centroids == 2 ** BITS - 1  # the layers are large enough to use every centroid


def test_the_file_size_is_the_formats_arithmetic(compressed: tuple[Path, C.CompressReport]) -> None:
    path, report = compressed
    blob = path.read_bytes()
    assert blob[:8] == b"\x89CZC\r\n\x1a\n"
    (hlen,) = struct.unpack("<I", blob[8:12])
    header = json.loads(blob[12:12 + hlen])
    sections = 0
    for e in header["tensors"]:
        if e["kind"] == "raw":
            sections += math.prod(e["shape"]) * np.dtype(e["dtype"]).itemsize
        else:  # codebook (float32) + gap code lengths + index code lengths + the two Huffman streams
            k = e["centroids"]
            sections += 4 * k + 2 ** e["gap_bits"] + (k + 1) + e["gap_bytes"] + e["index_bytes"]
    assert len(blob) == 8 + 4 + hlen + sections + 4 == report.sizes["encoded"]
    assert header["format"] == C.FORMAT and header["compression"]["bits"] == BITS
    # the stages shrink in order, and the report's per-layer sections add up
    s = report.sizes
    assert s["fp32"] == 4 * report.params and s["fp32"] > s["pruned"] > s["quantised"] > s["encoded"]
    assert sum(r.encoded for r in report.layers) < s["encoded"] - hlen


def test_encode_decode_is_bit_exact(trained_run: Path) -> None:
    from convzoo.training.inference import load_trained

    model = load_trained(trained_run).model
    state = {k: v.clone() for k, v in model.state_dict().items()}
    shared = {}
    for i, k in enumerate(C.shared_layers(model)):
        w = state[k]
        fraction = (0.0, 0.5, 0.97, 0.6, 0.999)[i]  # dense, half, and so sparse that gaps need fillers
        mask = torch.ones_like(w, dtype=torch.bool)
        C._prune_to(w, mask, fraction)
        table, index = C.share_weights(w * mask, (8, 6, 2, 1, 5)[i])
        state[k] = table[index]
        shared[k] = (table, index)
    directory, payload = C.encode_tensors(state, shared)
    back = C.decode_tensors(directory, payload)
    assert list(back) == list(state)
    for k, v in state.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
        assert torch.equal(back[k].view(torch.int32) if v.is_floating_point() else back[k],
                           v.view(torch.int32) if v.is_floating_point() else v), k
    sparse = next(e for e in directory if e["name"] == C.shared_layers(model)[4])
    nonzero = int((state[sparse["name"]] != 0).sum())
    assert sparse["entries"] >= nonzero


def test_eval_and_predict_read_the_file_as_the_decoded_network(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                               compressed: tuple[Path, C.CompressReport]) -> None:
    from convzoo.data import load_dataset
    from convzoo.data.pipeline import InputSpec, prepare
    from convzoo.training import predict
    from convzoo.training.checkpoint import write_checkpoint

    path, report = compressed
    model, meta = C.load_compressed(path)
    data = load_dataset("synthetic")
    with torch.no_grad():
        pred = model(prepare(data.test.images, InputSpec.from_json(meta["input"]))).topk(1, dim=1).indices[:, 0]
    code, out, _ = run(capsys, "eval", str(path), "--json")
    record = json.loads(out)
    assert code == 0 and record["top1"] == (pred == data.test.labels).float().mean().item() == report.accuracy["final"]
    confusion = torch.zeros(10, 10, dtype=torch.int64).index_put_((data.test.labels, pred), torch.tensor(1),
                                                                  accumulate=True)
    assert record["confusion"] == confusion.tolist()
    # predict on the .czc == predict on a plain checkpoint of the decoded network
    dense = write_checkpoint(tmp_path / "dense.safetensors", model, meta)
    image = tmp_path / "x.png"
    Image.new("RGB", (40, 30), (200, 30, 90)).save(image)
    code, out, _ = run(capsys, "predict", str(path), str(image), "--json", "--top", "10")
    assert code == 0 and json.loads(out)[0]["top"] == predict(dense, [str(image)], top=10)[0]["top"]


def test_the_cli_prints_stages_layers_and_the_paper_arithmetic(capsys: pytest.CaptureFixture[str],
                                                               trained_run: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "m.czc"
    code, out, err = run(capsys, "compress", str(trained_run), "--prune", "0.5", "--bits", "8", "--out",
                         str(out_file), "--finetune-epochs", "0")
    assert code == 0 and out_file.is_file()
    assert "encoded (the file)" in out and "features.c5.conv.weight" in out and "240MB" in out
    assert "before compression" in err  # progress goes to stderr
    code, out, _ = run(capsys, "compress", str(trained_run), "--prune", "0", "--bits", "2", "--out",
                       str(out_file), "--finetune-epochs", "0", "--json")
    record = json.loads(out)
    assert code == 0 and record["sparsity"] == 0 and record["sizes"]["encoded"] == out_file.stat().st_size
    assert record["ratio"] == record["sizes"]["fp32"] / record["sizes"]["encoded"]


# --- bad input: one line, exit 2, nothing written ------------------------------------------------------------------

@pytest.mark.parametrize(("flags", "message"), [
    (["--prune", "1"], "--prune 1.0"), (["--prune", "-0.1"], "--prune -0.1"), (["--prune", "nan"], "--prune nan"),
    (["--bits", "0"], "--bits 0"), (["--bits", "9"], "--bits 9"), (["--bits", "6.5"], "invalid int value"),
    (["--finetune-epochs", "-1"], "--finetune-epochs"), (["--prune", "lots"], "invalid float value"),
])
def test_bad_flags_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], trained_run: Path, tmp_path: Path,
                                           flags: list[str], message: str) -> None:
    settings = {"--prune": "0.5", "--bits": "6"}
    for i in range(0, len(flags), 2):
        settings[flags[i]] = flags[i + 1]
    argv = ["compress", str(trained_run), "--out", str(tmp_path / "m.czc"),
            *[x for kv in settings.items() for x in kv]]
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_out_fails_before_any_work(capsys: pytest.CaptureFixture[str], trained_run: Path,
                                                 tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    for out in (blocker / "m.czc", tmp_path):
        code, _, err = run(capsys, "compress", str(trained_run), "--prune", "0.5", "--bits", "6", "--out", str(out))
        assert code == 2 and err.startswith("convzoo: error: --out") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_foreign_truncated_or_corrupt_files_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                         compressed: tuple[Path, C.CompressReport]) -> None:
    path, _ = compressed
    blob = path.read_bytes()
    cases = {"truncated.czc": blob[: len(blob) // 2], "short.czc": blob[:10],
             "flipped.czc": blob[:100] + bytes([blob[100] ^ 1]) + blob[101:], "foreign.czc": b"not a model\n",
             "foreign.bin": b"\x00" * 64}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        for argv in (["eval", str(tmp_path / name)],
                     ["compress", str(tmp_path / name), "--prune", "0.5", "--bits", "6", "--out",
                      str(tmp_path / "out.czc")]):
            code, _, err = run(capsys, *argv)
            assert code == 2 and err.startswith("convzoo: error: ") and err.count("\n") == 1, (name, err)
    assert not (tmp_path / "out.czc").exists()
    with pytest.raises(C.UserError, match="truncated or corrupt"):
        C.load_compressed(tmp_path / "flipped.czc")


# --- the codec on its own ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("alphabet", "n"), [(1, 7), (2, 1), (17, 500), (256, 20_000)])
def test_huffman_round_trip(alphabet: int, n: int) -> None:
    rng = np.random.default_rng(alphabet)
    p = rng.zipf(1.3, alphabet).astype(float)
    symbols = rng.choice(alphabet, n, p=p / p.sum())
    lengths = C.huffman_lengths(np.bincount(symbols, minlength=alphabet))
    data = C.huffman_encode(symbols, lengths)
    assert np.array_equal(C.huffman_decode(data, lengths, n), symbols)
    assert len(data) == (int(lengths[symbols].sum()) + 7) // 8
    used = lengths[lengths > 0]
    if len(used) > 1:
        assert (2.0 ** -used).sum() == 1.0  # a complete prefix code
    with pytest.raises(ValueError):
        C.huffman_decode(data[:-1] if len(data) > 1 else b"", lengths, n)


def test_huffman_codes_are_at_most_16_bits() -> None:
    counts = np.array([2 ** i for i in range(40)])  # a plain Huffman code would need 39 bits
    lengths = C.huffman_lengths(counts)
    assert lengths.max() == C.MAX_CODE_BITS and (2.0 ** -lengths).sum() <= 1.0
    symbols = np.repeat(np.arange(40), 3)
    assert np.array_equal(C.huffman_decode(C.huffman_encode(symbols, lengths), lengths, 120), symbols)


@pytest.mark.parametrize("gap_bits", [1, 3, 8])
def test_relative_indices_bridge_long_gaps_with_fillers(gap_bits: int) -> None:
    index = np.zeros(3000, dtype=np.int64)
    index[[0, 1, 5, 300, 2999]] = [3, 1, 2, 7, 4]
    gaps, values = czc._entries(index, gap_bits)
    assert gaps.max() < 2 ** gap_bits and (values != 0).sum() == 5
    span = 2 ** gap_bits  # fillers: one per full span skipped
    assert len(gaps) == 5 + sum(d // span for d in (0, 0, 3, 294, 2698))
    back = np.zeros_like(index)
    back[czc._positions(gaps)] = values
    assert np.array_equal(back, index)


def test_kmeans_starts_linear_and_converges_on_clusters() -> None:
    torch.manual_seed(0)
    v = torch.cat([torch.randn(500) * 0.01 + c for c in (-1.0, 0.5, 2.0)])
    centroids, labels = C.kmeans_1d(v, 3)
    assert torch.allclose(centroids, torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64), atol=0.01)
    assert torch.equal(labels, torch.arange(3).repeat_interleave(500))
    few = torch.tensor([0.3, -0.2, 0.3])
    centroids, labels = C.kmeans_1d(few, 7)  # fewer distinct values than centroids: each its own
    assert centroids.tolist() == pytest.approx([-0.2, 0.3]) and labels.tolist() == [1, 0, 1]


# --- int8 post-training quantisation --------------------------------------------------------------------------------

def test_quantize_writes_an_int8_onnx_and_measures_it(capsys: pytest.CaptureFixture[str], trained_run: Path,
                                                      tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    out = tmp_path / "int8.onnx"
    code, stdout, _ = run(capsys, "quantize", str(trained_run), "--out", str(out), "--calibration", "64",
                          "--batch-sizes", "1,8", "--repeats", "2", "--json")
    r = json.loads(stdout)
    assert code == 0 and out.is_file() and r["sizes"]["onnx_int8"] == out.stat().st_size
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert r["sizes"]["onnx_int8"] < r["sizes"]["onnx_fp32"] / 2  # int8 weights: a quarter, plus scales
    assert abs(r["accuracy"]["torch_fp32"] - r["accuracy"]["onnx_fp32"]) < 0.01 and r["agreement"] > 0.8
    assert [row["batch"] for row in r["latency"]] == [1, 8]
    assert all(row["onnx_int8"]["median_ms"] > 0 for row in r["latency"])
    x = np.zeros((3, 3, 32, 32), dtype=np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": x})[0].shape == (3, 10)
    code, _, err = run(capsys, "quantize", str(trained_run), "--out", str(tmp_path / "q.onnx"), "--calibration", "0")
    assert code == 2 and "--calibration" in err and not (tmp_path / "q.onnx").exists()
