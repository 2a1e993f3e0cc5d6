"""Per-batch metrics kept on the device (no host sync until the epoch is read)."""

from __future__ import annotations

import torch


def correct_count(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Number of top-1 correct predictions as a 0-d tensor on output's device."""
    return (output.argmax(dim=1) == target).sum()


class RunningStats:
    """Mean/min/max of a stream of 0-d device tensors, accumulated without syncing."""

    def __init__(self, device: torch.device):
        self.total = torch.zeros((), device=device, dtype=torch.float64)
        self.low = torch.full((), float("inf"), device=device, dtype=torch.float64)
        self.high = torch.full((), float("-inf"), device=device, dtype=torch.float64)
        self.count = 0

    def add(self, value: torch.Tensor) -> None:
        value = value.detach().to(torch.float64)
        self.total += value
        torch.minimum(self.low, value, out=self.low)
        torch.maximum(self.high, value, out=self.high)
        self.count += 1

    def tensors(self) -> torch.Tensor:
        """(mean, min, max) stacked, still on the device."""
        return torch.stack([self.total / max(self.count, 1), self.low, self.high])
