"""The model contract, checked on every registered network (timm's registry-wide tests, our contract)."""
from __future__ import annotations

import functools
import inspect

import pytest
import torch
from torch import nn

import convzoo
from convzoo.base import ZooModel
from helpers import small_input

NAMES = convzoo.list_models()


@functools.lru_cache(maxsize=1)
def _small(name: str) -> ZooModel:
    """The network with 10 classes and 1 input channel (built once per name: tests are grouped by name)."""
    torch.manual_seed(0)
    return convzoo.create_model(name, num_classes=10, in_chans=1)


def _x(name: str, batch: int = 2) -> torch.Tensor:
    _, h, w = small_input(name)
    return torch.randn(batch, 1, h, w, generator=torch.Generator().manual_seed(1))


pytestmark = pytest.mark.parametrize("name", NAMES, scope="module")


def test_builds_with_defaults(name: str) -> None:
    info = convzoo.model_info(name)
    with torch.device("meta"):
        model = convzoo.create_model(name)
    assert isinstance(model, ZooModel)
    assert model.num_classes >= 2 and model.in_chans == info.input_size[0]
    assert isinstance(model.num_features, int) and model.num_features > 0
    assert isinstance(model.head, nn.Module)
    assert isinstance(getattr(model, "stages", None) or getattr(model, "features", None), nn.Module)


def test_builds_on_meta_with_overrides(name: str) -> None:
    with torch.device("meta"):
        model = convzoo.create_model(name, num_classes=10, in_chans=1)
        out = model.eval()(torch.empty(2, 1, *small_input(name)[1:]))
    assert all(p.device.type == "meta" for p in model.parameters())
    assert out.shape == (2, 10)


def test_keyword_only_contract(name: str) -> None:
    cls = type(_small(name))
    params = inspect.signature(cls.__init__).parameters
    for arg in ("num_classes", "in_chans", "dropout"):
        assert arg in params and params[arg].kind is inspect.Parameter.KEYWORD_ONLY, (cls, arg)


def test_output_shape_gradients_and_a_training_step(name: str) -> None:
    model = _small(name).train()
    out = model(_x(name))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 10)
    assert torch.isfinite(out).all()
    model.zero_grad(set_to_none=True)
    out.square().mean().backward()  # not cross-entropy: every logit then gets a gradient
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.optim.SGD(model.parameters(), lr=0.01).step()  # one training step
    for n, p in model.named_parameters():
        if torch.equal(before[n], p):  # only an update below float32 resolution may leave a parameter unchanged
            assert 0.01 * p.grad.abs().max() <= 1e-6 * max(1.0, p.abs().max().item()), n
    with torch.no_grad():  # the network is shared with the tests that follow: undo the step
        for n, p in model.named_parameters():
            p.copy_(before[n])
    model.zero_grad(set_to_none=True)


def test_forward_is_head_of_features(name: str) -> None:
    model = _small(name).eval()
    x = _x(name)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.ndim == 4 and feats.shape[1] == model.num_features
        torch.testing.assert_close(model(x), model.forward_head(feats), rtol=0, atol=0)


def test_eval_is_deterministic(name: str) -> None:
    model = _small(name).eval()
    x = _x(name)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


def test_dropout_drops_in_train_mode(name: str) -> None:
    torch.manual_seed(0)
    model = convzoo.create_model(name, num_classes=10, in_chans=1, dropout=0.5).train()
    x = _x(name)
    with torch.no_grad():  # batch norm uses the batch's statistics: only dropout can tell two passes apart
        a, b = model(x), model(x)
    assert not torch.equal(a, b), f"{name}: dropout=0.5 does not change train-mode outputs"


def test_constructor_has_no_side_effects(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    state = torch.random.get_rng_state()
    with torch.device("meta"):
        convzoo.create_model(name)
    assert torch.equal(state, torch.random.get_rng_state()), "building on meta consumed random numbers"
    assert capsys.readouterr() == ("", "")


def test_rejects_bad_contract_values(name: str) -> None:
    with torch.device("meta"):
        for bad in ({"num_classes": 0}, {"in_chans": -1}, {"dropout": 1.0}, {"num_classes": 2.5}):
            with pytest.raises(convzoo.UserError):
                convzoo.create_model(name, **bad)
