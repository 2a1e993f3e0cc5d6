"""A few full-batch training steps, shared by the tests that check a model trains."""

from __future__ import annotations

from torch import nn


def cross_entropy_losses(model: nn.Module, optimizer, x, y, steps: int) -> list[float]:
    """Train `steps` full-batch steps on cross-entropy; return the loss before each step."""
    losses = []
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
