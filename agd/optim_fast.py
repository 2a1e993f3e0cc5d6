"""AGD's step over all tensors at once (`AGD(..., foreach=True)`, the default off the CPU).

The same maths as `AGD.step` (agd/optim.py; docs/algorithm.md, steps 1-3, and the variants of
docs/beyond.md) and tested equal to it for every kind (tests/test_speed_optim.py); what differs
is how it runs:
- one flat vector holds the Frobenius norm of every (out, in) block of every tensor, so G, η and
  all per-block coefficients are a few vector ops whatever the depth;
- the per-block constants (scale_k / L, scale_k·gain_k / L, where each conv block's coefficient
  goes) are built once per layout and cached in the `FastStep` that owns them, so a step copies
  nothing from the host;
- η never leaves the device: with check_finite=False the step makes no host sync, so it replays
  in a CUDA graph and traces under torch.compile;
- a conv's coefficient is laid out (c_in, kx, ky) in the weight's memory order and the update is
  one `torch._foreach_addcmul_`, broadcasting over c_out along contiguous rows.

The optimiser hands `FastStep.step` the tensors to move, each with its rule (agd/rules.py), and
gets back an `Outcome`; the step reads nothing else of the optimiser. Every rule's view (WHOLE:
one block; BLOCKS: one per kernel position) has its layout here, so every kind has this path.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch

from agd.functional import automatic_learning_rate, orthogonalize, orthogonalize_blocks
from agd.rules import BLOCKS, WHOLE

VIEWS = (WHOLE, BLOCKS)  # the rule views this step lays out


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


def block_norms(tensors: list[torch.Tensor], whole: int, dtype: torch.dtype) -> torch.Tensor:
    """The norms of every block, one flat vector: the first `whole` tensors are one block each,
    the rest conv kernels with one block per position."""
    pieces = ([frobenius_norms(tensors[:whole], dtype)] if whole else []) + \
        [kernel_norms(t, dtype) for t in tensors[whole:]]
    return torch.cat(pieces)


class Plan:
    """The per-block constants of one layout (which tensors, their kinds, shapes, memory
    formats, gains and variants), as vectors over all blocks, WHOLE tensors first."""

    def __init__(self, live: list, depth: int, update_count: int, device, dtype: torch.dtype):
        scales, lengths, owner, index, shapes, frobenius = [], [], [], [], [], []
        for k, t in enumerate(live):
            blocks, scale = t.rule.blocks(t.param.shape), t.rule.scale(t.param.shape)
            first = len(scales)
            scales += [scale / depth] * blocks            # G = Σ_blocks (scale_k / L)·||block||
            lengths += [scale * t.gain / depth] * blocks  # coef = η·(scale_k·gain / L) [/ ||block||]
            frobenius += [not t.spectral] * blocks        # the spectral variant does not divide
            owner += [k] * blocks
            if t.rule.view == BLOCKS:  # coefficient laid out (c_in, kx, ky) in memory order
                c_in, kx, ky = t.param.shape[1:]
                pos = torch.arange(kx * ky).reshape(kx, ky) + first
                if _channels_last(t.param):  # memory order (kx, ky, c_in)
                    index.append(pos.reshape(kx, ky, 1).expand(kx, ky, c_in).reshape(-1))
                else:  # memory order (c_in, kx, ky)
                    index.append(pos.reshape(1, kx, ky).expand(c_in, kx, ky).reshape(-1))
                shapes.append((_channels_last(t.param), c_in, kx, ky))
        vector = dict(dtype=dtype, device=device)
        self.scales_over_depth = torch.tensor(scales, **vector)
        self.step_lengths = torch.tensor(lengths, **vector)
        self.frobenius = None if all(frobenius) else torch.tensor(frobenius, dtype=torch.bool, device=device)
        self.owner = torch.tensor(owner, dtype=torch.long, device=device)
        self.tensors, self.whole = len(live), len(live) - len(shapes)
        self.conv_index = torch.cat(index).to(device) if index else None
        self.conv_shapes = shapes
        counted = [k for k, t in enumerate(live) if t.rule.in_update_size]  # the tensors fig2 averages over
        self.counted = counted
        self.counted_index = None if len(counted) == len(live) else torch.tensor(counted, dtype=torch.long,
                                                                                 device=device)
        self.update_count = update_count


@dataclass
class Outcome:
    """What one step did, for the optimiser to record: η and G (0-d), whether G was finite (a
    device tensor: never read here unless the optimiser checks), the relative update size when
    measured, and `skipped` when a non-finite G was read on the host and nothing moved."""

    eta: torch.Tensor
    summary: torch.Tensor
    finite: torch.Tensor | bool
    update_size: torch.Tensor | None = None
    skipped: bool = False


class FastStep:
    """AGD's step over all tensors at once; holds the plans it has built, one per layout."""

    def __init__(self):
        self.plans: dict[tuple, Plan] = {}

    def plan(self, live: list, depth: int, update_count: int, dtype: torch.dtype) -> Plan:
        device = live[0].param.device
        if _compiling():  # traced into the graph as constants
            return Plan(live, depth, update_count, device, dtype)
        key = (depth, update_count, dtype, device,
               tuple((t.param.shape, t.rule.kind, _channels_last(t.param), t.gain, t.spectral) for t in live))
        if key not in self.plans:
            if len(self.plans) >= 8:  # the layout keeps changing: do not grow without bound
                self.plans.clear()
            self.plans[key] = Plan(live, depth, update_count, device, dtype)
        return self.plans[key]

    def step(self, live: list, depth: int, update_count: int, *, device: torch.device, check_finite: bool,
             measure_update_size: bool) -> Outcome:
        """One AGD step over `live` (agd.optim.Trained entries), L = `depth`."""
        if not live:
            zero = torch.zeros((), device=device)
            return Outcome(zero, zero, True, zero if measure_update_size else None)
        live = sorted(live, key=lambda t: t.rule.view == BLOCKS)  # WHOLE tensors first (stable)
        params = [t.param for t in live]
        grads = _momentum_directions(live)
        dtype = torch.float64 if any(g.dtype == torch.float64 for g in grads) else torch.float32
        plan = self.plan(live, depth, update_count, dtype)
        norms = block_norms(grads, plan.whole, dtype)
        summary = torch.dot(plan.scales_over_depth, norms)  # step 1
        finite = torch.isfinite(summary)
        # On a CPU reading a number is no device sync; elsewhere only check_finite=True reads it
        read = check_finite or (params[0].device.type == "cpu" and not _compiling())
        if read and not bool(finite):
            return Outcome(summary, summary, False, skipped=True)
        eta = torch.where(finite, automatic_learning_rate(summary), 0.0)  # step 2; η = 0 skips a step
        if not read:  # a step skipped on the device must not write inf·0 = NaN: zero such entries
            grads = [torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0) for g in grads]
        _keep_averages(live, grads, read, finite)
        directions = _spectral_directions(live, grads)
        # step 3: coef_block = η·scale·gain / (L·||block||), 0/0 := 0 for a zero block (and for the
        # non-finite norms of a skipped step); a spectral block's coefficient does not divide
        lengths = plan.step_lengths / norms if plan.frobenius is None else \
            torch.where(plan.frobenius, plan.step_lengths / norms, plan.step_lengths)
        coef = torch.nan_to_num(lengths * eta, nan=0.0, posinf=0.0, neginf=0.0)
        update_size = None
        if measure_update_size:
            moved_norms = norms if plan.frobenius is None else block_norms(directions, plan.whole, dtype)
            update_size = _update_size(plan, params, coef, moved_norms)
        torch._foreach_addcmul_(params, directions, _coefficients(plan, coef), value=-1)
        return Outcome(eta, summary, finite, update_size)


def _momentum_directions(live: list) -> list[torch.Tensor]:
    """Each tensor's d = β·m + (1 − β)·∇ where it has a moving average (new tensors), else ∇."""
    grads = [t.grad for t in live]
    averaged = [k for k, t in enumerate(live) if t.momentum is not None]
    if averaged:
        mixed = torch._foreach_lerp([grads[k] for k in averaged], [live[k].momentum for k in averaged],
                                    [live[k].beta for k in averaged])
        for k, d in zip(averaged, mixed, strict=True):
            grads[k] = d
    return grads


def _keep_averages(live: list, grads: list, read: bool, finite: torch.Tensor) -> None:
    """Store the new moving averages; on the device, a skipped step keeps the old ones (lerp
    with weight 0 returns m exactly, with weight 1 the new d exactly, with no host read)."""
    averaged = [k for k, t in enumerate(live) if t.momentum is not None]
    if not averaged:
        return
    averages, new = [live[k].momentum for k in averaged], [grads[k] for k in averaged]
    if read:  # the step is known finite here
        torch._foreach_copy_(averages, new)
    else:
        weight = finite.to(averages[0].dtype)
        torch._foreach_lerp_(averages, new, [weight] * len(averages))


def _spectral_directions(live: list, grads: list) -> list[torch.Tensor]:
    """The spectral variant's direction for each tensor it applies to (the others keep d):
    matrices of one shape orthogonalised as one batch, conv kernels position by position."""
    directions = list(grads)
    same_shape = defaultdict(list)
    for k, t in enumerate(live):
        if t.spectral:
            if grads[k].dim() == 2:
                same_shape[(tuple(grads[k].shape), grads[k].dtype)].append(k)
            else:
                directions[k] = orthogonalize_blocks(grads[k])
    for ks in same_shape.values():
        for k, direction in zip(ks, orthogonalize(torch.stack([grads[k] for k in ks])).unbind(), strict=True):
            directions[k] = direction
    return directions


def _coefficients(plan: Plan, coef: torch.Tensor) -> list[torch.Tensor]:
    """Per tensor, its coefficients shaped to broadcast against its gradient."""
    out = list(coef[:plan.whole].unbind())  # one 0-d per WHOLE tensor
    if plan.conv_shapes:
        pieces = coef[plan.conv_index].split([c_in * kx * ky for _, c_in, kx, ky in plan.conv_shapes])
        for piece, (channels_last, c_in, kx, ky) in zip(pieces, plan.conv_shapes, strict=True):
            out.append(piece.view(kx, ky, c_in).permute(2, 0, 1) if channels_last else piece.view(c_in, kx, ky))
    return out


def _update_size(plan: Plan, params: list, coef: torch.Tensor, moved_norms: torch.Tensor) -> torch.Tensor:
    """(1/n) Σ_k ||ΔW_k||_F / ||W_k||_F over the n tensors whose rule counts in it, of the update
    about to be applied: block b moves by coef_b·||direction_b||, so only the weights' norms
    cost a pass over memory."""
    moved = (coef * moved_norms).square()
    moved = torch.zeros(plan.tensors, dtype=moved.dtype, device=moved.device).index_add_(0, plan.owner, moved).sqrt_()
    if not plan.counted:
        return torch.zeros((), dtype=moved.dtype, device=moved.device)
    weights = frobenius_norms([params[k] for k in plan.counted], moved_norms.dtype)
    if plan.counted_index is not None:
        moved = moved[plan.counted_index]
    return torch.where(weights > 0, moved / weights, 0.0).sum() / plan.update_count
