"""Helpers the test files share (imported as `helpers`; pytest puts tests/ on sys.path)."""
from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

import convzoo
from convzoo.meta import build_on_meta
from convzoo.peers import build_peer_network


@functools.cache
def small_input(name: str, **overrides: Any) -> tuple[int, int, int]:
    """A cheap legal input (C, H, W) for `name` (built with `overrides`): its smallest working square size,
    at least 32 where that works."""
    info = convzoo.model_info(name)
    net = build_on_meta(convzoo.create_model, name=name, **overrides)
    rng = convzoo.input_range(net, info.input_size[1])
    assert rng is not None, f"{name}: no input size works"
    lo, hi = rng
    side = max(lo, 32) if hi is None else max(lo, min(32, hi))
    return (info.input_size[0], side, side)


def build_peer(source: str, peer_name: str, **kwargs: Any) -> nn.Module:
    """A random-initialised torchvision or timm network (no download, no weights)."""
    return build_peer_network(source, peer_name, **kwargs)


def assert_same_as_peer(name: str, source: str, peer_name: str, *, ours: dict[str, Any] | None = None,
                        peer: dict[str, Any] | None = None, input_size: tuple[int, int, int] | None = None,
                        via_file: str | None = None) -> float:
    """Load a random peer's weights into ours and require the same outputs (fp32, max |Δ| ≤ 1e-5 on unit-scale
    inputs; relative to the output scale on 30× inputs).

    Returns the max abs difference. `via_file` ("pth" or "safetensors") round-trips the state dict
    through a file in a temporary directory first.
    """
    torch.manual_seed(0)
    theirs = build_peer(source, peer_name, **(peer or {})).eval()
    model = convzoo.create_model(name, **(ours or {})).eval()
    state: Any = theirs.state_dict()
    if via_file is None:
        convzoo.load_peer_weights(model, state, source=source)
    else:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:  # VGG-sized files: never leave them behind
            path = Path(tmp) / f"weights.{via_file}"
            if via_file == "safetensors":
                from safetensors.torch import save_file

                save_file({k: v.contiguous() for k, v in state.items()}, str(path))
            else:
                torch.save(state, path)
            convzoo.load_peer_weights(model, path, source=source)
    x = torch.randn(2, *(input_size or small_input(name)))
    worst = 0.0
    # Unit-scale inputs, then large ones: random weights keep activations small, where a ReLU6 and a ReLU
    # (or any clipping) agree; a 30× input drives them apart. The tolerance scales with the outputs.
    for scale in (1.0, 30.0):
        with torch.no_grad():
            expected, got = theirs(scale * x), model(scale * x)
        if isinstance(expected, tuple):  # torchvision's eval-mode outputs are tensors; be safe with namedtuples
            expected = expected[0]
        assert got.shape == expected.shape, (got.shape, expected.shape)
        diff = (got - expected).abs().max().item()
        bound = 1e-5 * max(1.0, expected.abs().max().item())
        assert diff <= bound, f"{name} vs {source} {peer_name} at input scale {scale}: max |Δ| = {diff:.3g}"
        worst = max(worst, diff)
    return worst


def interrupt_epoch(monkeypatch: Any, epoch: int) -> None:
    """Make training raise KeyboardInterrupt (Ctrl-C) as epoch `epoch` (0-based) begins; other epochs train."""
    from convzoo.training import loop

    original = loop.Trainer.train_one_epoch

    def stop(self: Any, e: int, progress: Any = None) -> Any:
        if e == epoch:
            raise KeyboardInterrupt
        return original(self, e, progress)

    monkeypatch.setattr(loop.Trainer, "train_one_epoch", stop)
