"""The paper's fully connected network (docs/models.md)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from agd.models.common import flag, positive_int


class ScaledReLU(nn.Module):
    """ReLU(x) * sqrt(2): keeps ||x|| roughly constant through depth at the paper's init."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) * math.sqrt(2.0)


def _flat_size(input_shape) -> int:
    if (not isinstance(input_shape, Sequence) or isinstance(input_shape, str) or len(input_shape) == 0
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in input_shape)):
        raise ValueError(f"FCN input_shape must be a tuple of positive integers such as (784,) or "
                         f"(3, 32, 32), got {input_shape!r}.")
    return math.prod(input_shape)


class FCN(nn.Module):
    """The paper's bias-free MLP: Linear(d0→width), (depth−2)×Linear(width→width),
    Linear(width→num_classes), with ReLU·√2 after every layer but the last; the input is
    flattened, d0 = prod(input_shape). `depth` counts the linear layers.

    `bias=True` (beyond the paper; off by default) gives every linear layer a bias. Like every
    model here it takes the dataset's `input_shape` and `num_classes` as keywords.
    """

    def __init__(self, depth: int, width: int, *, input_shape: tuple[int, ...], num_classes: int,
                 bias: bool = False):
        super().__init__()
        positive_int("FCN", "depth", depth, 2)
        positive_int("FCN", "width", width)
        positive_int("FCN", "num_classes", num_classes)
        flag("FCN", "bias", bias)
        d0, classes = _flat_size(input_shape), num_classes
        self.depth, self.width = depth, width
        dims = [d0] + [width] * (depth - 1) + [classes]
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            layers.append(nn.Linear(d_in, d_out, bias=bias))
            if i < depth - 1:
                layers.append(ScaledReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))
