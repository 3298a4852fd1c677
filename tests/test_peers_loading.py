"""load_peer_weights: file formats, and one clear error for every way the weights can be wrong."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

import convzoo
from helpers import assert_same_as_peer


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_loads_from_a_file(fmt: str) -> None:
    pytest.importorskip("safetensors")
    assert_same_as_peer("resnet18", "torchvision", "resnet18", via_file=fmt)


def test_accepts_wrapped_and_ddp_prefixed_checkpoints(tmp_path: Path) -> None:
    peer = torchvision.models.resnet18(num_classes=10)
    state = {f"module.{k}": v for k, v in peer.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": state}, tmp_path / "ckpt.pth")
    ours = convzoo.create_model("resnet18", num_classes=10)
    convzoo.load_peer_weights(ours, tmp_path / "ckpt.pth")
    torch.testing.assert_close(ours.head.fc.weight, peer.fc.weight, rtol=0, atol=0)


def _ours() -> torch.nn.Module:
    return convzoo.create_model("resnet18", num_classes=10)


def test_unknown_source() -> None:
    with pytest.raises(convzoo.UserError, match=r"unknown weights source 'keras'.*torchvision, timm"):
        convzoo.load_peer_weights(_ours(), {}, source="keras")


def test_model_without_that_peer() -> None:
    with torch.device("meta"):
        paper_resnet = convzoo.create_model("resnet50")
    with pytest.raises(convzoo.UserError, match="resnet50 has no torchvision counterpart"):
        convzoo.load_peer_weights(paper_resnet, {}, source="torchvision")


def test_weights_of_another_network() -> None:
    state = torchvision.models.resnet34(num_classes=10).state_dict()
    with pytest.raises(convzoo.UserError, match=r"are not that network.s: .* keys such as .layer1.2"):
        convzoo.load_peer_weights(_ours(), state)


def test_weights_with_other_num_classes_name_the_tensor() -> None:
    state = torchvision.models.resnet18().state_dict()  # 1000 classes
    with pytest.raises(convzoo.UserError, match=r"fc.weight \(1000, 512\) meets convzoo head.fc.weight \(10, 512\)"):
        convzoo.load_peer_weights(_ours(), state)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(convzoo.UserError, match="does not exist"):
        convzoo.load_peer_weights(_ours(), tmp_path / "nope.pth")


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_truncated_file(tmp_path: Path, fmt: str) -> None:
    pytest.importorskip("safetensors")
    from safetensors.torch import save_file

    state = torchvision.models.resnet18(num_classes=10).state_dict()
    path = tmp_path / f"w.{fmt}"
    if fmt == "pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(convzoo.UserError, match="truncated, corrupt or not a weights file"):
        convzoo.load_peer_weights(_ours(), path)


def test_not_a_state_dict(tmp_path: Path) -> None:
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(convzoo.UserError, match="holds no state dict"):
        convzoo.load_peer_weights(_ours(), tmp_path / "list.pth")


def test_refuses_pickled_code(tmp_path: Path) -> None:
    """A checkpoint that would execute code on load is refused (weights_only), not run."""
    torch.save({"model": torchvision.models.resnet18(num_classes=10)}, tmp_path / "whole.pth")
    with pytest.raises(convzoo.UserError, match="truncated, corrupt or not a weights file"):
        convzoo.load_peer_weights(_ours(), tmp_path / "whole.pth")


def test_failed_load_leaves_the_model_untouched() -> None:
    model = _ours()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bad = torchvision.models.resnet18().state_dict()
    with pytest.raises(convzoo.UserError):
        convzoo.load_peer_weights(model, bad)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
