"""The maths of AGD as small pure functions (PAPER.md §1).

Every function here works on plain tensors and is shared by the optimiser, the initialiser and
the tests' reference arithmetic is written *independently* of it (tests/test_optim.py).
"""

from __future__ import annotations

import math

import torch

SUPPORTED_RANKS = (2, 4)


def check_weight_shape(shape: torch.Size | tuple[int, ...], name: str = "parameter") -> None:
    """Raise a clear error for a tensor AGD has no rule for (PAPER.md §1, §1.1)."""
    if len(shape) not in SUPPORTED_RANKS:
        raise ValueError(
            f"AGD handles only matrices (out, in) and conv kernels (out, in, kx, ky); {name} has "
            f"shape {tuple(shape)} (rank {len(shape)}). Biases and affine norm parameters are not "
            "part of the paper's algorithm: build the model with bias=False / affine=False."
        )
    if any(d == 0 for d in shape):
        raise ValueError(f"AGD cannot handle the empty {name} of shape {tuple(shape)}.")


def weight_scale(shape: torch.Size | tuple[int, ...]) -> float:
    """sqrt(d_out / d_in) for a matrix; sqrt(c_out / c_in) / sqrt(kx * ky) for a conv kernel.

    PAPER.md §1 (dense) and §1.1 (conv): the same factor scales the initialisation, enters the
    gradient summary, and sizes the update.
    """
    check_weight_shape(shape)
    fan_out, fan_in = shape[0], shape[1]
    kernel_positions = math.prod(shape[2:])  # 1 for a matrix
    return math.sqrt(fan_out / fan_in) / math.sqrt(kernel_positions)


def block_norms(grad: torch.Tensor) -> torch.Tensor:
    """Frobenius norm of each (out, in) block: a 0-d tensor for a matrix, (kx, ky) for a conv.

    The conv kernel is viewed as (out*in, kx*ky) so the reduction runs over the leading,
    contiguous-in-memory-per-column dimension; no transposed copy is made.
    """
    if grad.dim() == 2:
        return torch.linalg.vector_norm(grad)
    flat = grad.reshape(grad.shape[0] * grad.shape[1], -1)
    return torch.linalg.vector_norm(flat, dim=0).reshape(grad.shape[2:])


def gradient_summary(scaled_norm_sums: torch.Tensor, depth: int) -> torch.Tensor:
    """G = (1/L) Σ_k scale_k Σ_blocks ||∇W_k[block]||_F  (PAPER.md §1 step 1).

    `scaled_norm_sums` holds scale_k * Σ_blocks ||∇W_k[block]|| for each of the L tensors.
    """
    return scaled_norm_sums.sum() / depth


def automatic_learning_rate(summary: torch.Tensor | float) -> torch.Tensor:
    """η = log((1 + sqrt(1 + 4G)) / 2): the positive root of (e^η − 1) e^η = G (PAPER.md §1)."""
    summary = torch.as_tensor(summary)
    return torch.log((1 + torch.sqrt(1 + 4 * summary)) / 2)


def relative_update_size(before: list[torch.Tensor], after: list[torch.Tensor]) -> torch.Tensor:
    """(1/L) Σ_k ||W_k(after) − W_k(before)||_F / ||W_k(before)||_F as a 0-d device tensor
    (PAPER.md §5 fig2). A zero weight contributes 0 rather than NaN."""
    if not before:
        return torch.zeros(())
    diff = torch._foreach_sub(after, before)
    num = torch.stack(torch._foreach_norm(diff))
    den = torch.stack(torch._foreach_norm(before))
    ratio = torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), 0.0)
    return ratio.mean()
