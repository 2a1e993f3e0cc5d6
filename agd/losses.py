"""Objectives (docs/algorithm.md, "Objective")."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class SquareLoss(nn.Module):
    """The release's square loss: mean over batch and classes of (f(x) − y)², where y is the
    one-hot target scaled by sqrt(C) so that ||y||_2 = sqrt(C). (The paper's 1/2 is dropped, as
    in the release that made the published figures; docs/algorithm.md, "Objective".)"""

    def __init__(self, num_classes: int):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"SquareLoss needs at least 2 classes, got {num_classes}.")
        self.num_classes = num_classes

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(target, self.num_classes).to(output.dtype) * math.sqrt(self.num_classes)
        return F.mse_loss(output, onehot)


class CrossEntropyLoss(nn.CrossEntropyLoss):
    """Mean softmax cross-entropy (used for ImageNet). Takes num_classes for a uniform API."""

    def __init__(self, num_classes: int | None = None):
        super().__init__()
        self.num_classes = num_classes
