"""The paper's initialisation gives the prescribed singular values (docs/algorithm.md,
"Initialisation" and "Convolutions")."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from agd import init_weights
from agd.init import orthogonal_scaled_


@pytest.mark.parametrize("shape", [(64, 16), (16, 64), (32, 32), (10, 1), (1, 10)])
def test_dense_singular_values_all_equal_sqrt_out_over_in(shape):
    w = torch.empty(shape)
    orthogonal_scaled_(w, torch.Generator().manual_seed(0))
    sv = torch.linalg.svdvals(w)
    assert len(sv) == min(shape)
    torch.testing.assert_close(sv, torch.full_like(sv, math.sqrt(shape[0] / shape[1])))


@pytest.mark.parametrize("shape", [(8, 4, 3, 3), (4, 8, 3, 3), (6, 6, 1, 1), (5, 3, 7, 7)])
def test_conv_each_kernel_position_is_scaled_orthogonal(shape):
    w = torch.empty(shape)
    orthogonal_scaled_(w, torch.Generator().manual_seed(0))
    expected = math.sqrt(shape[0] / shape[1]) / math.sqrt(shape[2] * shape[3])
    for i in range(shape[2]):
        for j in range(shape[3]):
            sv = torch.linalg.svdvals(w[:, :, i, j])
            torch.testing.assert_close(sv, torch.full_like(sv, expected))
    # the kernel positions are drawn independently, not copies of one matrix
    if shape[2] > 1:
        assert not torch.allclose(w[:, :, 0, 0], w[:, :, 0, 1])


def test_init_weights_covers_a_model_and_is_seeded():
    def make(seed):
        model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.Flatten(), nn.Linear(8, 4, bias=False))
        return init_weights(model, torch.Generator().manual_seed(seed))
    a, b, c = make(0), make(0), make(1)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb)
        assert not torch.equal(pa, pc)


def test_init_weights_gives_every_block_of_a_model_its_scale_in_its_dtype():
    model = nn.Sequential(nn.Conv2d(2, 8, 3, bias=False), nn.Flatten(), nn.Linear(8, 2, bias=False)).double()
    model[2].weight.requires_grad_(False)  # frozen layers are initialised too
    init_weights(model, torch.Generator().manual_seed(0))
    conv, head = model[0].weight, model[2].weight
    assert conv.dtype == torch.float64
    # conv (8, 2, 3, 3): sqrt(8/2)/3 = 2/3 for each kernel position; head (2, 8): sqrt(2/8) = 1/2
    for i in range(3):
        torch.testing.assert_close(torch.linalg.svdvals(conv[:, :, i, 0]), torch.full((2,), 2 / 3, dtype=torch.float64))
    torch.testing.assert_close(torch.linalg.svdvals(head), torch.full((2,), 0.5, dtype=torch.float64))
