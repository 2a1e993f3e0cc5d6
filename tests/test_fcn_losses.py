"""FCN architecture (docs/models.md) and the objectives (docs/algorithm.md, "Objective")."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from agd.losses import CrossEntropyLoss, SquareLoss
from agd.models import FCN


def test_fcn_layers_shapes_and_no_bias():
    model = FCN(depth=4, width=16, input_shape=(12,), num_classes=5)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(16, 12), (16, 16), (16, 16), (5, 16)]
    assert all(m.bias is None for m in linears)
    assert model(torch.randn(7, 3, 4)).shape == (7, 5)  # input is flattened


def test_fcn_depth_two_is_one_hidden_layer():
    model = FCN(depth=2, width=8, input_shape=(3,), num_classes=2)
    assert len([m for m in model.modules() if isinstance(m, nn.Linear)]) == 2


def test_fcn_activation_is_relu_times_sqrt2_and_not_after_last_layer():
    model = FCN(depth=2, width=2, input_shape=(2,), num_classes=2)
    with torch.no_grad():
        model.net[0].weight.copy_(torch.eye(2))
        model.net[2].weight.copy_(torch.eye(2))
    out = model(torch.tensor([[1.0, -3.0]]))
    torch.testing.assert_close(out, torch.tensor([[math.sqrt(2.0), 0.0]]))
    assert isinstance(model.net[-1], nn.Linear)


@pytest.mark.parametrize(("kwargs", "key"), [
    (dict(depth=1, width=8, input_shape=(3,), num_classes=2), "depth"),
    (dict(depth=3, width=0, input_shape=(3,), num_classes=2), "width"),
    (dict(depth=3, width=2.5, input_shape=(3,), num_classes=2), "width"),
    (dict(depth=3, width=8, input_shape=(3,), num_classes=0), "num_classes"),
])
def test_fcn_rejects_bad_arguments_naming_them(kwargs, key):
    with pytest.raises(ValueError, match=f"FCN {key} must be an integer"):
        FCN(**kwargs)


def test_square_loss_is_mean_over_batch_and_classes_with_sqrt_c_targets():
    out = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    target = torch.tensor([0, 3])
    # targets: 2 at the true class (sqrt(4)); squared errors: (1-2)^2 = 1 and (0-2)^2 = 4
    expected = (1.0 + 4.0) / (2 * 4)
    assert SquareLoss(4)(out, target).item() == pytest.approx(expected)


def test_square_loss_target_has_norm_sqrt_c():
    c = 10
    loss = SquareLoss(c)(torch.zeros(1, c), torch.tensor([3]))
    assert loss.item() * c == pytest.approx(c)  # ||y||^2 = C


def test_cross_entropy_matches_log_softmax():
    out = torch.tensor([[2.0, 0.0, -1.0]])
    expected = -(2.0 - math.log(math.exp(2.0) + 1.0 + math.exp(-1.0)))
    assert CrossEntropyLoss(3)(out, torch.tensor([0])).item() == pytest.approx(expected, rel=1e-6)
