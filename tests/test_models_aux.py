"""Auxiliary heads (GoogLeNet, Inception v3): reached only through forward_train, and trained."""
from __future__ import annotations

import pytest
import torch

import convzoo
from convzoo.registry import _options
from helpers import small_input

AUX = [n for n in convzoo.list_models() if "aux_logits" in _options(convzoo.model_info(n))]


def test_networks_without_aux_heads_return_none_from_forward_train() -> None:
    model = convzoo.create_model("resnet18", num_classes=10).train()
    logits, aux = model.forward_train(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10) and aux == []


@pytest.mark.parametrize("name", AUX)
def test_aux_heads(name: str) -> None:
    info = convzoo.model_info(name)
    assert info.aux_weight is not None and 0 < info.aux_weight < 1, "the paper's aux loss weight"
    torch.manual_seed(0)
    model = convzoo.create_model(name, num_classes=10, aux_logits=True)
    x = torch.randn(2, *small_input(name, aux_logits=True))
    logits, aux = model.train().forward_train(x)
    assert logits.shape == (2, 10) and len(aux) >= 1 and all(a.shape == (2, 10) for a in aux)
    loss = logits.square().mean() + info.aux_weight * sum(a.square().mean() for a in aux)
    loss.backward()
    aux_params = [(n, p) for n, p in model.named_parameters() if "aux" in n]
    assert aux_params, "auxiliary parameters must have 'aux' in their names"
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for _, p in aux_params)
    with torch.no_grad():
        out = model.eval()(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 10)  # eval forward: the main head only


@pytest.mark.parametrize("name", AUX)
def test_aux_heads_are_off_by_default(name: str) -> None:
    with torch.device("meta"):
        model = convzoo.create_model(name)
    assert not [n for n, _ in model.named_parameters() if "aux" in n]
