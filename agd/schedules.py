"""AdamW with linear warm-up and cosine decay, as one optimiser (the GPT baselines of
docs/beyond.md). The training loop calls only `optimizer.step()`, so the schedule lives inside
the step rather than in a separate LR scheduler.

    lr(t) = peak * (t + 1) / warmup_steps                                   for t < warmup_steps
    lr(t) = floor + (peak - floor) * (1 + cos(pi * progress)) / 2           after, up to total_steps
    lr(t) = floor                                                           from total_steps on

with progress = (t - warmup_steps) / (total_steps - warmup_steps), floor = min_lr_ratio * peak and
warmup_steps = round(warmup_fraction * total_steps); t counts the steps taken (0 for the first).
The step count is kept in each param group, so it survives `state_dict()` / `load_state_dict()`
and a resumed run continues the schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch


def warmup_cosine(step: int, peak: float, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """The learning rate of step `step` (0-based) under the schedule above."""
    floor = min_lr_ratio * peak
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    if step >= total_steps:
        return floor
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class AdamWCosine(torch.optim.AdamW):
    """torch.optim.AdamW whose learning rate follows warm-up then cosine decay over `total_steps`.

    Args:
        params: tensors or param groups, as for AdamW.
        lr: the peak learning rate, reached at the end of the warm-up.
        total_steps: the step at which the cosine reaches its floor; set it to the run's length.
        warmup_fraction: the share of total_steps spent warming up linearly (0: none).
        min_lr_ratio: the floor as a fraction of the peak (0.1: decay to a tenth).
        **kwargs: the rest of AdamW's arguments (betas, weight_decay, ...).
    """

    def __init__(self, params: Iterable, lr: float, total_steps: int, warmup_fraction: float = 0.05,
                 min_lr_ratio: float = 0.1, **kwargs):
        if not lr > 0:
            raise ValueError(f"AdamWCosine lr must be positive, got {lr}.")
        if not isinstance(total_steps, int) or isinstance(total_steps, bool) or total_steps < 1:
            raise ValueError(f"AdamWCosine total_steps must be an integer >= 1, got {total_steps!r}.")
        if not 0.0 <= warmup_fraction <= 1.0:
            raise ValueError(f"AdamWCosine warmup_fraction must be between 0 and 1, got {warmup_fraction}.")
        warmup_steps = round(warmup_fraction * total_steps)
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"AdamWCosine min_lr_ratio must be between 0 and 1, got {min_lr_ratio}.")
        super().__init__(params, lr=lr, **kwargs)
        for group in self.param_groups:
            group.setdefault("peak_lr", group["lr"])
            group.setdefault("schedule_step", 0)
            group.update(warmup_steps=warmup_steps, total_steps=total_steps, min_lr_ratio=min_lr_ratio)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None):
        for group in self.param_groups:
            group["lr"] = warmup_cosine(group["schedule_step"], group["peak_lr"], group["warmup_steps"],
                                        group["total_steps"], group["min_lr_ratio"])
        loss = super().step(closure)
        for group in self.param_groups:
            group["schedule_step"] += 1
        return loss
