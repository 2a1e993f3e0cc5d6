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


def trained(tensors) -> list[torch.Tensor]:
    """The tensors that count in the relative update size: the trained ones. A frozen tensor
    (requires_grad=False) is neither moved nor counted, as in AGD's depth L (docs/algorithm.md,
    "Edge cases")."""
    return [t for t in tensors if t.requires_grad]


class UpdateSizeMeter:
    """Relative update size of one optimiser step, (1/L) Σ_k ||ΔW_k||_F / ||W_k||_F over the
    trained tensors of `weights` (docs/experiments.md, fig2), as a 0-d device tensor.

    An optimiser that measures its own update over exactly these tensors (agd.AGD with
    `measure_update_size`, over the trained tensors whose rule counts in the update size)
    reports it with no copy of the weights. For any other the weights
    are copied, before the step, into buffers allocated once (not every step), and the norms of
    the difference taken after it.
    """

    def __init__(self, optimizer, weights: list[torch.Tensor], enabled: bool = True):
        self.optimizer, self.weights, self.enabled = optimizer, trained(weights), enabled
        self.native = False
        if enabled and hasattr(optimizer, "measure_update_size") and hasattr(optimizer, "counted"):
            held = optimizer.counted("in_update_size")  # the tensors AGD's own measure averages over
            if len(held) == len(self.weights) and {id(p) for p in held} == {id(w) for w in self.weights}:
                optimizer.measure_update_size = True
                self.native = True
        self._before: list[torch.Tensor] | None = None
        self._norms: torch.Tensor | None = None

    @torch.no_grad()
    def before_step(self) -> None:
        if not self.enabled or self.native or not self.weights:
            return
        if self._before is None or any(b.shape != w.shape or b.device != w.device
                                       for b, w in zip(self._before, self.weights, strict=True)):
            self._before = [torch.empty_like(w) for w in self.weights]
        torch._foreach_copy_(self._before, self.weights)
        self._norms = torch.stack(torch._foreach_norm(self.weights))

    @torch.no_grad()
    def after_step(self) -> torch.Tensor:
        device = self.weights[0].device if self.weights else torch.device("cpu")
        if not self.enabled or not self.weights:
            return torch.zeros((), device=device)
        if self.native:
            return self.optimizer.state["update_size"].detach()
        torch._foreach_sub_(self._before, self.weights)  # before - after = -ΔW, in place
        moved = torch.stack(torch._foreach_norm(self._before))
        norms = self._norms
        ratio = torch.where(norms > 0, moved / norms.clamp_min(torch.finfo(norms.dtype).tiny), 0.0)
        return ratio.mean()
