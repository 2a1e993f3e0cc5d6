"""The paper's fully connected network (PAPER.md §3)."""

from __future__ import annotations

import math

import torch
from torch import nn


class ScaledReLU(nn.Module):
    """ReLU(x) * sqrt(2): keeps ||x|| roughly constant through depth at the paper's init."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) * math.sqrt(2.0)


class FCN(nn.Module):
    """Bias-free MLP: Linear(in→width), (depth−2)×Linear(width→width), Linear(width→out), with
    ReLU·√2 after every layer but the last. `depth` counts the linear layers."""

    def __init__(self, depth: int, width: int, in_dim: int, out_dim: int):
        super().__init__()
        for key, value, low in (("depth", depth, 2), ("width", width, 1), ("in_dim", in_dim, 1),
                                ("out_dim", out_dim, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"FCN {key} must be an integer >= {low}, got {value!r}.")
        self.depth, self.width = depth, width
        dims = [in_dim] + [width] * (depth - 1) + [out_dim]
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            layers.append(nn.Linear(d_in, d_out, bias=False))
            if i < depth - 1:
                layers.append(ScaledReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))
