"""`convzoo bench` and `convzoo.bench`: record structure and consistency, interleaving, the classic report, train
steps that train, and one-line errors. Tiny networks, inputs and step counts; no timing is ever asserted."""
from __future__ import annotations

import json
import math
import re

import pytest
import torch
import torch.nn.functional as F

import convzoo.bench as zb
from convzoo.bench import bench, compare, render
from convzoo.bench.run import _loss, build_ours, build_peer, make_inputs, make_workload, resolve
from convzoo.bench.timing import Workload, classic_line, classic_stats, step_stats, time_workloads
from convzoo.cli import main

TINY = {"batch": 4, "input_size": 32, "steps": 3, "warmup": 1, "device": "cpu"}
RECORD_KEYS = {
    "name", "source", "options", "mode", "batch", "input_size", "dtype", "dtype_native", "dtype_note",
    "memory_format", "compile", "compile_mode", "cuda_graphs", "steps", "warmup", "warmup_s", "compile_s",
    "img_per_s", "median_step_ms", "p10_step_ms", "p25_step_ms", "p75_step_ms", "p90_step_ms", "mean_step_ms",
    "sd_step_ms", "peak_mem_mb", "peak_mem_kind", "macs_per_image", "flops_per_image", "flop_convention",
    "tflops", "peak_tflops", "mfu", "device", "device_type", "driver", "cuda", "torch", "torchvision", "timm",
    "convzoo", "threads",
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["bench", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def check_record(r: dict, batch: int, steps: int, mode: str = "infer") -> None:
    assert set(r) >= RECORD_KEYS, RECORD_KEYS - set(r)
    assert r["mode"] == mode and r["batch"] == batch and r["steps"] == steps
    assert 0 < r["p10_step_ms"] <= r["median_step_ms"] <= r["p90_step_ms"]
    assert r["img_per_s"] == pytest.approx(batch * 1000 / r["median_step_ms"])
    assert r["macs_per_image"] > 0 and r["warmup_s"] > 0 and r["peak_mem_mb"] >= 0 and r["threads"] >= 1
    assert r["flops_per_image"] == 2 * r["macs_per_image"] * (3 if mode == "train" else 1)
    assert r["tflops"] == pytest.approx(r["flops_per_image"] * r["img_per_s"] / 1e12)
    assert "2 × MACs" in r["flop_convention"] and "3 ×" in r["flop_convention"]
    assert r["device_type"] == "cpu" and r["device"] and r["driver"] is None and r["torch"] == torch.__version__
    assert r["memory_format"] == "contiguous" and r["compile"] is False and r["compile_s"] is None


def test_bench_record_is_complete_and_consistent() -> None:
    r = bench("lenet5_modern", **TINY)
    check_record(r, batch=4, steps=3)
    assert r["name"] == "lenet5_modern" and r["source"] == "convzoo" and r["input_size"] == [1, 32, 32]
    assert r["peak_tflops"] is None and r["mfu"] is None and "classic" not in r
    json.dumps(r)  # every value is JSON


def test_train_record_counts_three_forwards_and_the_fraction_of_peak() -> None:
    r = bench("lenet5_modern", mode="train", peak_tflops=2.0, channels_last=True, options={"num_classes": 7}, **TINY)
    check_record({**r, "memory_format": "contiguous"}, batch=4, steps=3, mode="train")
    assert r["memory_format"] == "channels_last" and r["options"] == {"num_classes": 7}
    assert r["mfu"] == pytest.approx(r["tflops"] / 2.0)


def test_fp16_on_the_cpu_runs_and_says_when_it_is_emulated(monkeypatch: pytest.MonkeyPatch) -> None:
    r = bench("lenet5_modern", mode="train", dtype="fp16", **TINY)
    assert r["dtype"] == "fp16" and (r["dtype_note"] is None) == r["dtype_native"]
    monkeypatch.setattr(zb, "_native", lambda dtype, device: False)
    r = bench("lenet5_modern", dtype="fp16", **{**TINY, "steps": 1})
    assert r["dtype_native"] is False and "fp16 is emulated on this cpu" in r["dtype_note"]


def test_train_step_changes_the_weights_and_infer_does_not() -> None:
    cfg, device = resolve({"mode": "train", **TINY})
    side = build_ours("lenet5_modern", cfg)
    before = [p.detach().clone() for p in side.model.parameters()]
    infer = make_workload(side, "infer", cfg, device, make_inputs(side, cfg, device))
    infer.enter()
    infer.step()
    assert all(torch.equal(a, p) for a, p in zip(before, side.model.parameters()))
    train = make_workload(side, "train", cfg, device, make_inputs(side, cfg, device))
    train.enter()
    assert side.model.training
    train.step()
    train.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, side.model.parameters()))


def test_a_peer_side_trains_on_inputs_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # torchvision's AlexNet has no num_classes attribute: the labels come from what it was built with (the
    # profile of a missed goal times each side on its own inputs)
    cfg, device = resolve({"mode": "train", **TINY, "batch": 2, "input_size": 224})
    peer = build_peer(build_ours("alexnet_owt", cfg), "torchvision", cfg)
    assert not hasattr(peer.model, "num_classes")
    x, y = make_inputs(peer, cfg, device)
    assert x.shape == (2, 3, 224, 224) and int(y.max()) < peer.options["num_classes"]
    work = make_workload(peer, "train", cfg, device, (x, y))
    work.enter()
    work.step()


def test_auxiliary_heads_train_only_when_asked() -> None:
    cfg, _ = resolve({"mode": "train", **TINY})
    assert not build_ours("googlenet_bn", cfg).aux
    cfg, device = resolve({"mode": "train", **TINY, "batch": 2, "options": {"aux_logits": True}})
    side = build_ours("googlenet_bn", cfg)
    assert side.aux and side.aux_weight == 0.3  # model_info("googlenet_bn").aux_weight
    make_workload(side, "train", cfg, device, make_inputs(side, cfg, device)).step()
    logits, aux, y = torch.randn(3, 5), torch.randn(3, 5), torch.tensor([0, 1, 2])
    want = F.cross_entropy(logits, y) + 0.3 * F.cross_entropy(aux, y)
    assert torch.allclose(_loss((logits, [aux]), y, 0.3), want)  # ours: (logits, [aux, …])
    assert torch.allclose(_loss((logits, aux, None), y, 0.3), want)  # torchvision's namedtuples


def test_interleaving_alternates_blocks_after_each_warm_up() -> None:
    calls: list[str] = []

    def workload(name: str) -> Workload:
        return Workload(lambda: calls.append(name), lambda: calls.append(name + ".enter"))

    timed = time_workloads({"a": workload("a"), "b": workload("b")}, steps=5, warmup=2, block=2,
                           device=torch.device("cpu"))
    assert calls == ["a.enter", "a", "a", "b.enter", "b", "b",  # warm-up, each on its own
                     "a.enter", "a", "a", "b.enter", "b", "b", "a.enter", "a", "a", "b.enter", "b", "b",
                     "a.enter", "a", "b.enter", "b"]
    assert all(len(t.step_ms) == 5 and min(t.step_ms) >= 0 for t in timed.values())


def test_compare_vs_torchvision_interleaves_the_two_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    real = zb.time_workloads

    def spy(workloads: dict[str, Workload], **kw: object) -> object:
        def logged(name: str, w: Workload) -> Workload:
            return Workload(lambda: (order.append(name), w.step()), w.enter, w.resident_bytes)

        return real({k: logged(k, w) for k, w in workloads.items()}, **kw)

    monkeypatch.setattr(zb, "time_workloads", spy)
    out = compare("squeezenet1_1", "torchvision", batch=2, input_size=64, steps=2, warmup=1, device="cpu",
                  options={"num_classes": 10})
    assert set(out) == {"ours", "peer", "ratio"}
    ours, peer = out["ours"], out["peer"]
    for r in (ours, peer):
        check_record(r, batch=2, steps=2)
        assert r["block_steps"] == 1 and r["input_size"] == [3, 64, 64]
    assert (peer["source"], peer["name"], peer["options"]) == ("torchvision", "squeezenet1_1", {"num_classes": 10})
    assert peer["macs_per_image"] == ours["macs_per_image"]  # the same network, analysed on each side
    assert out["ratio"] == pytest.approx(ours["img_per_s"] / peer["img_per_s"])
    assert order == ["ours/infer", "peer/infer"] * 3  # warm-up, then blocks of one: ours, peer, ours, peer
    table = render(out)
    assert "squeezenet1_1  convzoo" in table and "squeezenet1_1  torchvision" in table
    assert f"ratio ours/peer: {out['ratio']:.3f}×" in table


def test_vs_timm_through_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("timm")
    code, out, _ = run(capsys, "mobilenet_v2_x0_35", "--vs", "timm", "--mode", "train", "--batch", "2",
                       "--input-size", "32", "--steps", "2", "--warmup", "1", "--device", "cpu", "--json")
    result = json.loads(out)
    assert code == 0 and set(result) == {"ours", "peer", "ratio"}
    check_record(result["peer"], batch=2, steps=2, mode="train")
    assert result["peer"]["name"] == "mobilenetv2_035" and result["peer"]["timm"]
    assert result["ratio"] == pytest.approx(result["ours"]["img_per_s"] / result["peer"]["img_per_s"])


def test_classic_report_prints_forward_and_forward_backward(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "lenet5_modern", "--classic", "--batch", "2", "--steps", "3", "--warmup", "1",
                       "--device", "cpu")
    assert code == 0 and "lenet5_modern  convzoo  infer" in out
    for info in ("Forward", "Forward-backward"):
        assert re.search(rf"^{info} across 3 steps, \d+\.\d{{3}} \+/- \d+\.\d{{3}} sec / batch$", out, re.M), out
    code, out, _ = run(capsys, "lenet5_modern", "--classic", "--batch", "2", "--steps", "3", "--warmup", "1",
                       "--device", "cpu", "--json")
    r = json.loads(out)
    assert r["classic"]["burn_in"] == 1 and r["classic"]["forward"]["steps"] == 3
    assert r["classic"]["forward"]["mean_s"] == pytest.approx(r["mean_step_ms"] / 1000)  # the main mode is infer


def test_statistics() -> None:
    s = step_stats([float(t) for t in range(1, 11)])
    assert (s["median_step_ms"], s["p10_step_ms"], s["p90_step_ms"]) == pytest.approx((5.5, 1.9, 9.1))
    c = classic_stats([1.0, 3.0])  # ms → s; the tutorial's sd is √(E[t²] − E[t]²)
    assert c["steps"] == 2 and math.isclose(c["mean_s"], 0.002) and math.isclose(c["sd_s"], 0.001)
    assert classic_line("Forward", {"steps": 100, "mean_s": 0.1234, "sd_s": 0.0041}) == \
        "Forward across 100 steps, 0.123 +/- 0.004 sec / batch"


@pytest.mark.parametrize(("argv", "message"), [
    (["resnet5"], "unknown model 'resnet5'; did you mean resnet50"),
    (["lenet5_modern", "--input-size", "4"], "lenet5_modern cannot take a 1×4×4 input"),
    (["lenet5_modern", "--steps", "0"], "--steps must be an integer ≥ 1, got 0"),
    (["lenet5_modern", "--batch", "0"], "--batch must be an integer ≥ 1, got 0"),
    (["lenet5_modern", "--warmup", "0"], "--warmup must be an integer ≥ 1"),
    (["lenet5_modern", "--peak-tflops", "-1"], "--peak-tflops must be a positive number"),
    (["lenet5_modern", "--cuda-graphs", "--device", "cpu"], "--cuda-graphs captures GPU work and needs --device cuda"),
    (["lenet5_modern", "--vs", "torchvision"], "lenet5_modern has no torchvision peer; it has no peer"),
    (["squeezenet1_1", "--vs", "timm"], "squeezenet1_1 has no timm peer; its peers: torchvision (squeezenet1_1)"),
    (["resnet18", "--vs", "torchvision", "--in-chans", "1"], "torchvision's resnet18 takes 3 input channels"),
    (["lenet5_modern", "--set", "nope=1"], "lenet5_modern has no option 'nope'"),
    (["lenet5_modern", "--input-size", "x"], "'x' is not an input size"),
])
def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exited:
        raise SystemExit(main(["bench", "--steps", "1", "--warmup", "1", "--batch", "2", *argv]))  # argv wins
    _, err = capsys.readouterr()
    assert exited.value.code == 2 and err.count("\n") == 1 and message in err and err.startswith("convzoo"), err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch sees a CUDA device")
def test_cuda_without_cuda_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "lenet5_modern", "--device", "cuda")
    assert code == 2 and err == "convzoo: error: --device cuda: this torch sees no CUDA device; use --device cpu " \
                                "(or auto)\n"
