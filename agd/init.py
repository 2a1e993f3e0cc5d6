"""The paper's initialisation (PAPER.md §1 and §1.1): semi-orthogonal, then scaled.

Dense W (out, in): orthogonal, times sqrt(out/in) -> every singular value equals sqrt(out/in).
Conv W (out, in, kx, ky): each W[:, :, i, j] orthogonal, whole tensor times
sqrt(out/in)/sqrt(kx*ky).
"""

from __future__ import annotations

import torch
from torch import nn

from agd.functional import check_weight_shape, weight_scale


@torch.no_grad()
def orthogonal_scaled_(weight: torch.Tensor, generator: torch.Generator | None = None):
    """Initialise one weight tensor in place as the paper prescribes and return it."""
    check_weight_shape(weight.shape, "weight")
    scale = weight_scale(weight.shape)
    if weight.dim() == 2:
        blocks = [weight]
    else:
        blocks = [weight[:, :, i, j] for i in range(weight.shape[2]) for j in range(weight.shape[3])]
    for block in blocks:
        block.copy_(_semi_orthogonal(block.shape, generator, weight.dtype, weight.device))
    weight.mul_(scale)
    return weight


def _semi_orthogonal(shape, generator, dtype, device) -> torch.Tensor:
    # QR of a Gaussian matrix with the sign fix gives a Haar-distributed semi-orthogonal matrix
    # (the same construction as torch.nn.init.orthogonal_, but accepting a generator).
    rows, cols = shape
    flat = torch.randn(max(rows, cols), min(rows, cols), generator=generator, dtype=torch.float32)
    q, r = torch.linalg.qr(flat)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    if rows < cols:
        q = q.T
    return q.to(device=device, dtype=dtype)


def init_weights(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Apply the paper's initialisation to every weight of `model` (every parameter of rank 2
    or 4). Raises for a parameter of another rank, since the paper's nets have none."""
    for name, param in model.named_parameters():
        check_weight_shape(param.shape, name)
        orthogonal_scaled_(param.data, generator)
    return model
