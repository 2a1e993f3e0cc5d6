"""The maths of AGD that does not depend on a tensor's kind, as small pure functions
(docs/algorithm.md). Per-kind facts (scale, blocks, initialisation) live in agd/rules.py."""

from __future__ import annotations

import torch


def automatic_learning_rate(summary: torch.Tensor | float) -> torch.Tensor:
    """η = log((1 + sqrt(1 + 4G)) / 2), the positive root of (e^η − 1) e^η = G
    (docs/algorithm.md, step 2)."""
    summary = torch.as_tensor(summary)
    return torch.log((1 + torch.sqrt(1 + 4 * summary)) / 2)


def semi_orthogonal(shape: tuple[int, int], generator: torch.Generator | None = None,
                    dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """A matrix drawn uniformly (Haar) from the semi-orthogonal matrices of `shape`: every
    singular value is 1. QR of a Gaussian matrix with the signs of R's diagonal folded into Q,
    the construction of torch.nn.init.orthogonal_, here with a generator."""
    rows, cols = shape
    gaussian = torch.randn(max(rows, cols), min(rows, cols), generator=generator, dtype=torch.float32)
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    return (q if rows >= cols else q.T).to(device=device, dtype=dtype)


def relative_update_size(before: list[torch.Tensor], after: list[torch.Tensor]) -> torch.Tensor:
    """(1/L) Σ_k ||W_k(after) − W_k(before)||_F / ||W_k(before)||_F as a 0-d tensor
    (docs/experiments.md, fig2). A zero weight contributes 0 rather than NaN."""
    if not before:
        return torch.zeros(())
    diff = torch._foreach_sub(after, before)
    num = torch.stack(torch._foreach_norm(diff))
    den = torch.stack(torch._foreach_norm(before))
    ratio = torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), 0.0)
    return ratio.mean()
