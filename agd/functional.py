"""The maths of AGD that does not depend on a tensor's kind, as small pure functions
(docs/algorithm.md), and the variants beyond the paper (docs/beyond.md). Per-kind facts (scale,
blocks, initialisation) live in agd/rules.py."""

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


# Muon's quintic Newton–Schulz coefficients and step count (docs/beyond.md, "Spectral updates"):
# five steps of X ← aX + b(XXᵀ)X + c(XXᵀ)²X push every singular value of a unit-Frobenius X
# into roughly [0.7, 1.2], which is as orthogonal as an update needs to be.
NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)
NEWTON_SCHULZ_STEPS = 5


def orthogonalize(blocks: torch.Tensor, steps: int = NEWTON_SCHULZ_STEPS) -> torch.Tensor:
    """The nearest semi-orthogonal matrix to each (rows, cols) matrix of `blocks` (..., rows,
    cols), approximately, by Newton–Schulz iterations as Muon runs them: each matrix scaled to unit
    Frobenius norm (a zero matrix stays zero), then `steps` quintic steps, on the wide orientation
    (a tall matrix is transposed so that XXᵀ is the smaller product). Float32 at least."""
    x = blocks.to(torch.promote_types(blocks.dtype, torch.float32))
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = x.mT
    norm = torch.linalg.vector_norm(x, dim=(-2, -1), keepdim=True)
    x = x * torch.where(norm > 0, 1 / norm, 0.0)
    a, b, c = NEWTON_SCHULZ
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.mT if tall else x


def orthogonalize_blocks(grad: torch.Tensor) -> torch.Tensor:
    """`orthogonalize` applied to each (out, in) block of a matrix (one block) or of a conv kernel
    (out, in, kx, ky) (one per kernel position), returned in the gradient's shape."""
    if grad.dim() == 2:
        return orthogonalize(grad)
    positions = grad.permute(*range(2, grad.dim()), 0, 1)  # (kx, ky, out, in): a batch of blocks
    return orthogonalize(positions).permute(grad.dim() - 2, grad.dim() - 1, *range(grad.dim() - 2))


def momentum_direction(grad: torch.Tensor, average: torch.Tensor | None, beta: float) -> torch.Tensor:
    """The momentum variant's d = β·m + (1 − β)·∇ (docs/beyond.md, "Momentum"), as a new tensor,
    or ∇ itself without momentum (average None). β = 0 on a tensor's first step makes d = ∇."""
    return grad if average is None else torch.lerp(grad, average, beta)
