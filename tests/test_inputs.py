"""Inputs a network cannot take raise one UserError naming the model, the size, the layer and the fix."""
from __future__ import annotations

import pytest
import torch

import convzoo


def test_wrong_number_of_channels() -> None:
    model = convzoo.create_model("resnet18", num_classes=10, in_chans=1)
    with pytest.raises(convzoo.UserError, match=r"resnet18 was built for 1 input channel\(s\) but got 3; "
                                                r"build it with in_chans=3"):
        model(torch.randn(1, 3, 64, 64))


def test_missing_batch_dimension() -> None:
    model = convzoo.create_model("resnet18", num_classes=10)
    with pytest.raises(convzoo.UserError, match=r"4-D batch .* x.unsqueeze\(0\)"):
        model(torch.randn(3, 64, 64))


def test_errors_that_are_not_about_the_input_keep_their_type() -> None:
    model = convzoo.create_model("resnet18", num_classes=10)
    model.head.fc = torch.nn.Linear(7, 10)  # a broken network, not a bad input
    with pytest.raises(RuntimeError) as info:
        model(torch.randn(1, 3, 64, 64))
    assert not isinstance(info.value, convzoo.UserError)


def test_input_range_of_a_global_pooling_network() -> None:
    with torch.device("meta"):
        model = convzoo.create_model("resnet50")
    assert convzoo.input_range(model) == (1, None)
