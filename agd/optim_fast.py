"""AGD's step over all tensors at once (`AGD(..., foreach=True)`, the default off the CPU).

The same maths as `AGD.step` (agd/optim.py; docs/algorithm.md, steps 1-3) and tested equal to it
(tests/test_speed_optim.py); what differs is how it runs:
- one flat vector holds the Frobenius norm of every (out, in) block of every tensor, so G, η and
  all per-block coefficients are a few vector ops whatever the depth;
- the per-block constants (scale_k / L, scale_k·gain_k / L, where each conv block's coefficient
  goes) are built once per layout and cached, so a step copies nothing from the host;
- η never leaves the device: with check_finite=False the step makes no host sync, so it replays
  in a CUDA graph and traces under torch.compile;
- a conv's coefficient is laid out (c_in, kx, ky) in the weight's memory order and the update is
  one `torch._foreach_addcmul_`, broadcasting over c_out along contiguous rows.
"""

from __future__ import annotations

import torch

from agd.functional import automatic_learning_rate
from agd.rules import block_frobenius_norms


def _compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and compiler.is_compiling())


def _channels_last(t: torch.Tensor) -> bool:
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


def frobenius_norms(tensors: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """Frobenius norm of each tensor, as one vector of `dtype`."""
    if dtype == torch.float32 and all(t.dtype == dtype and t.device.type == "cpu" for t in tensors) \
            and not _compiling():
        flat = [t.reshape(-1) for t in tensors]  # on a CPU, a BLAS dot reads ~1.4x faster than a norm
        return torch.stack([torch.dot(f, f) for f in flat]).sqrt_()
    return torch.stack(torch._foreach_norm(tensors, 2, dtype=dtype))


def kernel_norms(grad: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Frobenius norm of each kernel position of a conv gradient, length kx*ky in (i, j) order.

    Squares are summed down rows of length c_in*kx*ky in memory order (contiguous or
    channels_last), a long contiguous inner loop, and only the row of partial sums is folded
    into positions: about 4x faster on a CPU than `grad.norm(dim=(0, 1))`.
    """
    c_out, c_in, kx, ky = grad.shape
    if grad.is_contiguous():
        rows = grad.reshape(c_out, c_in * kx * ky).to(dtype)
        return (rows * rows).sum(0).reshape(c_in, kx * ky).sum(0).sqrt()
    if grad.is_contiguous(memory_format=torch.channels_last):
        rows = grad.permute(0, 2, 3, 1).reshape(c_out, kx * ky * c_in).to(dtype)  # a view
        return (rows * rows).sum(0).reshape(kx * ky, c_in).sum(1).sqrt()
    return kernel_norms(grad.contiguous(), dtype)


class Plan:
    """The per-block constants of one layout (which tensors, their kinds, shapes, memory
    formats and gains), as vectors over all blocks, matrices first."""

    def __init__(self, live: list, depth: int, device, dtype: torch.dtype):
        scales, lengths, owner, index, shapes = [], [], [], [], []
        for k, (p, _, rule, gain) in enumerate(live):
            blocks, scale = rule.blocks(p.shape), rule.scale(p.shape)
            first = len(scales)
            scales += [scale / depth] * blocks          # G = Σ_blocks (scale_k / L)·||block||
            lengths += [scale * gain / depth] * blocks  # coef = η·(scale_k·gain / L) / ||block||
            owner += [k] * blocks
            if _is_conv(p, rule):  # coefficient laid out (c_in, kx, ky) in memory order
                c_in, kx, ky = p.shape[1:]
                pos = torch.arange(kx * ky).reshape(kx, ky) + first
                if _channels_last(p):  # memory order (kx, ky, c_in)
                    index.append(pos.reshape(kx, ky, 1).expand(kx, ky, c_in).reshape(-1))
                else:  # memory order (c_in, kx, ky)
                    index.append(pos.reshape(1, kx, ky).expand(c_in, kx, ky).reshape(-1))
                shapes.append((_channels_last(p), c_in, kx, ky))
        vector = dict(dtype=dtype, device=device)
        self.scales_over_depth = torch.tensor(scales, **vector)
        self.step_lengths = torch.tensor(lengths, **vector)
        self.owner = torch.tensor(owner, dtype=torch.long, device=device)
        self.tensors = len(live)
        self.conv_index = torch.cat(index).to(device) if index else None
        self.conv_shapes = shapes


def _is_conv(p: torch.Tensor, rule) -> bool:
    return p.dim() == 4 and rule.norms is block_frobenius_norms


def supports(live: list) -> bool:
    """Whether every tensor is a matrix or a conv kernel with the (out, in)-block norms."""
    return all(_is_conv(p, rule) or (p.dim() == 2 and rule.norms is block_frobenius_norms)
               for p, _, rule, _ in live)


def _plan(opt, live: list, depth: int, dtype: torch.dtype) -> Plan:
    device = live[0][0].device
    if _compiling():  # traced into the graph as constants
        return Plan(live, depth, device, dtype)
    key = (depth, dtype, device, tuple((p.shape, r.kind, _channels_last(p), gain) for p, _, r, gain in live))
    plans = opt.__dict__.setdefault("_plans", {})
    if key not in plans:
        if len(plans) >= 8:  # the layout keeps changing: do not grow without bound
            plans.clear()
        plans[key] = Plan(live, depth, device, dtype)
    return plans[key]


def _coefficients(plan: Plan, coef: torch.Tensor, live: list) -> list[torch.Tensor]:
    """Per tensor, its coefficients shaped to broadcast against its gradient."""
    out = list(coef[:len(live) - len(plan.conv_shapes)].unbind())  # one 0-d per matrix
    if plan.conv_shapes:
        pieces = coef[plan.conv_index].split([c_in * kx * ky for _, c_in, kx, ky in plan.conv_shapes])
        for piece, (channels_last, c_in, kx, ky) in zip(pieces, plan.conv_shapes, strict=True):
            out.append(piece.view(kx, ky, c_in).permute(2, 0, 1) if channels_last else piece.view(c_in, kx, ky))
    return out


def foreach_step(opt, live: list, depth: int) -> torch.Tensor:
    """One AGD step over `live` = [(weight, gradient, rule, gain)], L = `depth`; returns η."""
    if not live:
        zero = torch.zeros((), device=opt.param_groups[0]["params"][0].device)
        if opt.measure_update_size:
            opt.state["update_size"] = zero
        return opt.record(zero, zero)
    if not supports(live):
        raise NotImplementedError("foreach=True handles matrices and conv kernels only; use foreach=False.")
    live = sorted(live, key=lambda entry: entry[0].dim() == 4)  # matrices first (stable)
    params, grads = [p for p, _, _, _ in live], [g for _, g, _, _ in live]
    dtype = torch.float64 if any(g.dtype == torch.float64 for g in grads) else torch.float32
    plan = _plan(opt, live, depth, dtype)
    n = len(live) - len(plan.conv_shapes)
    pieces = ([frobenius_norms(grads[:n], dtype)] if n else []) + [kernel_norms(g, dtype) for g in grads[n:]]
    norms = torch.cat(pieces)
    summary = torch.dot(plan.scales_over_depth, norms)  # step 1
    finite = torch.isfinite(summary)
    # On a CPU reading a number is no device sync; elsewhere only check_finite=True reads it
    read = opt.check_finite or (params[0].device.type == "cpu" and not _compiling())
    if read and not bool(finite):
        return opt.skip_nonfinite(summary)
    eta = torch.where(finite, automatic_learning_rate(summary), 0.0)  # step 2; η = 0 skips a step
    # step 3: coef_block = η·scale·gain / (L·||block||), 0/0 := 0 for a zero block (and for the
    # non-finite norms of a skipped step)
    coef = torch.nan_to_num(plan.step_lengths / norms * eta, nan=0.0, posinf=0.0, neginf=0.0)
    if opt.measure_update_size:
        opt.state["update_size"] = _update_size(plan, params, coef, norms, depth)
    if not read:  # a step skipped on the device must not write inf·0 = NaN: zero such entries
        grads = [torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0) for g in grads]
    torch._foreach_addcmul_(params, grads, _coefficients(plan, coef, live), value=-1)
    return opt.record(eta, summary, finite)


def _update_size(plan: Plan, params: list, coef: torch.Tensor, norms: torch.Tensor, depth: int) -> torch.Tensor:
    """(1/L) Σ_k ||ΔW_k||_F / ||W_k||_F of the update about to be applied: block b moves by
    coef_b·||∇W[b]||, so only the weights' norms cost a pass over memory."""
    moved = (coef * norms).square()
    moved = torch.zeros(plan.tensors, dtype=moved.dtype, device=moved.device).index_add_(0, plan.owner, moved).sqrt_()
    weights = frobenius_norms(params, norms.dtype)
    return torch.where(weights > 0, moved / weights, 0.0).sum() / depth
