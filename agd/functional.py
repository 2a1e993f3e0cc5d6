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


def kernel_square_norms(grad: torch.Tensor) -> torch.Tensor:
    """Squared Frobenius norm of each kernel position W[:, :, i, j] of a conv gradient, as a
    float32 vector of length kx*ky in (i, j) order (PAPER.md §1.1).

    `grad.norm(dim=(0, 1))` gathers kx*ky-strided elements and runs about 4x slower on a CPU.
    Here the kernel is viewed as rows of length c_in*kx*ky in memory order (contiguous or
    channels_last), squared and summed down the rows (long contiguous inner loop), and only the
    short row of partial sums is folded into its kx*ky positions.
    """
    c_out, c_in, kx, ky = grad.shape
    if grad.is_contiguous():
        rows = grad.reshape(c_out, c_in * kx * ky).float()
        partial = (rows * rows).sum(0)
        return partial.reshape(c_in, kx * ky).sum(0)
    if grad.is_contiguous(memory_format=torch.channels_last):
        rows = grad.permute(0, 2, 3, 1).reshape(c_out, kx * ky * c_in).float()  # a view
        partial = (rows * rows).sum(0)
        return partial.reshape(kx * ky, c_in).sum(1)
    return kernel_square_norms(grad.contiguous())


def block_norms(grad: torch.Tensor) -> torch.Tensor:
    """Frobenius norm of each (out, in) block: a 0-d tensor for a matrix, (kx, ky) for a conv."""
    if grad.dim() == 2:
        return torch.linalg.vector_norm(grad.float())
    return kernel_square_norms(grad).sqrt().reshape(grad.shape[2:])


def automatic_learning_rate(summary: torch.Tensor | float) -> torch.Tensor:
    """η = log((1 + sqrt(1 + 4G)) / 2): the positive root of (e^η − 1) e^η = G (PAPER.md §1).

    Computed as log(0.5 + sqrt(0.25 + G)), the same number in four tensor ops instead of six.
    """
    summary = torch.as_tensor(summary)
    return (summary + 0.25).sqrt_().add_(0.5).log_()


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
