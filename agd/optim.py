"""AGD as a drop-in `torch.optim.Optimizer` (PAPER.md §1, §1.1, §1.2, §1.3).

    opt = AGD(model.parameters())          # after agd.init_weights(model)
    loss.backward(); eta = opt.step(); opt.zero_grad()

How the step is made fast (numbers in BENCHMARKS.md):
- Every weight is a list of "blocks" (a matrix is one block, a conv kernel one block per kernel
  position), and one flat float32 vector holds the norms of all blocks of all tensors. G, η and
  every per-block coefficient are a handful of vector ops on it, whatever the depth.
- Matrix norms come from one `torch._foreach_norm` (on a CPU, one BLAS dot per matrix, which
  reads memory faster); a conv's block norms are squared and summed over a
  (c_out, c_in*kx*ky) view, so the reduction runs down long contiguous rows instead of the
  strided 9-element gathers that `norm(dim=(0, 1))` makes (about 4x faster on a CPU).
- The update is one pass per tensor, W ← W − coef ⊙ ∇W (`torch._foreach_addcmul_`), with coef
  a 0-d tensor for a matrix and a (c_in, kx, ky) tensor for a conv, broadcast over c_out so the
  innermost loop is contiguous.
- The per-block scale vectors, the coefficient buffers and their per-tensor views are built
  once and cached (rebuilt only when the set of parameters with a gradient, their layout or a
  gain changes), so a step makes no host-to-device copies.
- η stays a device tensor: with `check_finite=False` the step never waits on the host (the
  training loop uses that mode and reads the count of skipped steps once per epoch). On a CPU,
  where reading a number is not a device sync, G is read once and η computed in Python, which
  saves a dozen 0-d tensor ops per step.
- Under torch.compile (and on CUDA) the same maths runs without the cached buffers' in-place
  `out=` writes, so it traces into one graph; the step also replays inside a CUDA graph.
- With `measure_update_size` the relative update size of PAPER.md fig2 comes from the step's
  own coefficients (block b moves by exactly coef_b·||∇W[b]||), so the training loop no longer
  copies every weight every step to measure it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch.optim import Optimizer

from agd.functional import automatic_learning_rate, check_weight_shape, kernel_square_norms, weight_scale


def _is_compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and compiler.is_compiling())


def _frobenius_norms(tensors: list[torch.Tensor], compiling: bool) -> torch.Tensor:
    """Frobenius norm of each tensor as one float32 vector."""
    fp32 = all(t.dtype == torch.float32 for t in tensors)
    if fp32 and tensors[0].device.type == "cpu" and not compiling:
        # on a CPU, BLAS sdot reads a tensor about 1.4x faster than vector_norm does
        flat = [t.reshape(-1) for t in tensors]
        return torch.stack([torch.dot(f, f) for f in flat]).sqrt_()
    return torch.stack(torch._foreach_norm(tensors, 2, **({} if fp32 else {"dtype": torch.float32})))


def _channels_last(t: torch.Tensor) -> bool:
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


class _Plan:
    """Everything about a step that depends only on which tensors take part, their shapes,
    layouts and gains: built once and cached, so the hot path makes no host-to-device copies
    and no per-tensor Python views. Holds float32 vectors over all blocks:

    scales_over_depth  scale_k / L for each block of tensor k (G is their dot with the norms)
    step_lengths       scale_k * gain_k / L for each block (times η / ||block|| = coefficient)
    coef               the per-block coefficients of this step, written in place
    coefs              per tensor, a view of coef (0-d for a matrix) or of expanded, where each
                       conv's coefficient is laid out (c_in, kx, ky) in the weight's memory
                       order, so W ← W − coef ⊙ ∇W broadcasts over c_out along contiguous rows
    """

    def __init__(self, live: list[tuple[torch.Tensor, float]], depth: int, device):
        scales, step_lengths, entries, views, owner = [], [], [], [], []
        block = 0
        for k, (p, gain) in enumerate(live):
            scale = weight_scale(p.shape)
            blocks = 1 if p.dim() == 2 else p.shape[2] * p.shape[3]
            scales += [scale / depth] * blocks
            step_lengths += [scale * gain / depth] * blocks  # (η/L)·scale·gain, PAPER.md §1
            owner += [k] * blocks
            if p.dim() == 4:
                c_in, kx, ky = p.shape[1], p.shape[2], p.shape[3]
                pos = torch.arange(kx * ky).reshape(kx, ky) + block
                if _channels_last(p):  # memory order (kx, ky, c_in)
                    entries.append(pos.reshape(kx, ky, 1).expand(kx, ky, c_in).reshape(-1))
                else:  # memory order (c_in, kx, ky)
                    entries.append(pos.reshape(1, kx, ky).expand(c_in, kx, ky).reshape(-1))
                views.append((len(entries) - 1, _channels_last(p), c_in, kx, ky))
            else:
                views.append(block)
            block += blocks
        as_vector = dict(dtype=torch.float32, device=device)
        self.scales_over_depth = torch.tensor(scales, **as_vector)
        self.step_lengths = torch.tensor(step_lengths, **as_vector)
        self.coef = torch.empty(block, **as_vector)
        self.tensors = len(live)
        self.owner = torch.tensor(owner, dtype=torch.long, device=device)  # block -> tensor
        self.conv_index = torch.cat(entries).to(device) if entries else None
        self.expanded = torch.empty(len(self.conv_index), **as_vector) if entries else None
        self.coefs = []
        pieces = self.expanded.split([len(e) for e in entries]) if entries else []
        for view in views:
            if isinstance(view, int):
                self.coefs.append(self.coef[view])
            else:
                index, channels_last, c_in, kx, ky = view
                if channels_last:
                    self.coefs.append(pieces[index].view(kx, ky, c_in).permute(2, 0, 1))
                else:
                    self.coefs.append(pieces[index].view(c_in, kx, ky))


class AGD(Optimizer):
    """Automatic Gradient Descent: no learning rate, the step size η is computed every step.

    Args:
        params: weight tensors (rank 2 or 4) or param groups. L, the depth, counts every tensor
            given, across groups.
        gain: multiplier on the update, 1.0 in every result of the paper (PAPER.md §1.3); a
            group may override it.
        check_finite: if True (default) a non-finite gradient raises `FloatingPointError` before
            any weight changes; this costs one device-to-host sync per step. If False the step
            is skipped on the device (weights untouched, η recorded as 0) and
            `state["nonfinite_steps"]` counts such steps, to be read by the caller.

    Attributes:
        measure_update_size: if True, every step also stores (1/L) Σ_k ||ΔW_k||_F / ||W_k||_F,
            the relative update size of PAPER.md fig2, as the device tensor
            `state["update_size"]` (one extra read of the weights; no copy of them).
    """

    def __init__(self, params: Iterable, gain: float = 1.0, check_finite: bool = True):
        if not gain > 0:
            raise ValueError(f"AGD's gain must be positive, got {gain}.")
        super().__init__(params, dict(gain=float(gain)))
        self.check_finite = bool(check_finite)
        for group in self.param_groups:
            for index, p in enumerate(group["params"]):
                check_weight_shape(p.shape, f"parameter {index} of its group")
        self.state["step"] = 0
        # set True (the training loop does) to record state["update_size"] every step
        self.measure_update_size = False
        self._plans: dict[tuple, _Plan] = {}  # not state: rebuilt from the parameters

    @property
    def depth(self) -> int:
        """L: the number of weight tensors the optimiser was given."""
        return sum(len(group["params"]) for group in self.param_groups)

    def _live(self):
        """(param, grad, gain) of every tensor with a gradient, matrices first, then convs, and
        the key under which their plan is cached."""
        matrices, convs, key = [], [], []
        for group in self.param_groups:
            gain = group["gain"]
            for p in group["params"]:
                g = p.grad
                if g is None:
                    key.append(None)
                elif p.dim() == 2:
                    matrices.append((p, g, gain))
                    key.append((p.shape, gain))
                else:
                    convs.append((p, g, gain))
                    key.append((p.shape, _channels_last(p), gain))
        return matrices, convs, tuple(key)

    def _plan(self, live, key, device) -> _Plan:
        pairs = [(p, gain) for p, _, gain in live]
        if _is_compiling():  # traced into the graph as constants
            return _Plan(pairs, self.depth, device)
        plans = self.__dict__.setdefault("_plans", {})
        plan = plans.get((key, device))
        if plan is None:
            if len(plans) >= 8:  # the layout keeps changing: do not grow without bound
                plans.clear()
            plan = plans[(key, device)] = _Plan(pairs, self.depth, device)
        return plan

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:
        """One AGD step. Returns η as a 0-d tensor on the parameters' device."""
        if closure is not None:
            with torch.enable_grad():
                closure()
        matrices, convs, key = self._live()
        if not matrices and not convs:  # nothing has a gradient: G = 0, η = 0, nothing moves
            device = self.param_groups[0]["params"][0].device
            if self.measure_update_size:
                self.state["update_size"] = torch.zeros((), device=device)
            return self._record(torch.zeros((), device=device), torch.zeros((), device=device), True)
        live = matrices + convs
        device = live[0][0].device
        plan = self._plan(live, key, device)
        params = [p for p, _, _ in live]
        grads = [g for _, g, _ in live]
        compiling = _is_compiling()

        # Norm of every block, float32: matrices first (one foreach call), then kernel positions.
        n = len(matrices)
        pieces = []
        if matrices:
            pieces.append(_frobenius_norms(grads[:n], compiling))
        if convs:
            pieces.append(torch.cat([kernel_square_norms(g) for g in grads[n:]]).sqrt_())
        norms = pieces[0] if len(pieces) == 1 else torch.cat(pieces)

        # G = (1/L) Σ_k scale_k Σ_blocks ||∇W_k[block]||_F and η from it (PAPER.md §1 steps 1-2);
        # a tensor without a gradient adds 0 to G but still counts in L.
        summary = torch.dot(plan.scales_over_depth, norms)
        masked = False
        if device.type == "cpu" and not compiling:
            # On the CPU reading a number is not a device sync, and a few scalar ops in Python
            # cost far less than the same ops on 0-d tensors (about 3 us each).
            value = summary.item()
            finite = math.isfinite(value)
            if not finite:
                if self.check_finite:
                    raise FloatingPointError(self._nonfinite_message())
                if self.measure_update_size:
                    self.state["update_size"] = torch.zeros((), device=device)
                return self._record(torch.zeros((), device=device), summary, False)
            eta_value = math.log(0.5 + math.sqrt(0.25 + value))  # = automatic_learning_rate
            eta = torch.scalar_tensor(eta_value)
        else:
            eta = eta_value = automatic_learning_rate(summary)
            finite = torch.isfinite(summary)
            if self.check_finite:
                if not bool(finite):  # one host sync; check_finite=False avoids it
                    raise FloatingPointError(self._nonfinite_message())
            else:
                masked = True
                eta = eta_value = torch.where(finite, eta, torch.zeros_like(eta))

        # coef_block = (η/L)·scale·gain / ||∇W[block]||. A zero block has a zero gradient, so its
        # coefficient (inf or NaN from 0/0) is set to 0 and the block stays put (PAPER.md §1.2).
        if compiling:
            coef = torch.nan_to_num(plan.step_lengths / norms * eta_value, nan=0.0, posinf=0.0,
                                    neginf=0.0)
            coefs = list(coef[:n].unbind())
            if convs:
                coefs += [c.reshape(v.shape) if v.dim() == 3 and v.is_contiguous()
                          else c.reshape(v.shape[1], v.shape[2], v.shape[0]).permute(2, 0, 1)
                          for c, v in zip(coef[plan.conv_index].split(
                              [v.numel() for v in plan.coefs[n:]]), plan.coefs[n:], strict=True)]
        else:
            coef = torch.div(plan.step_lengths, norms, out=plan.coef).mul_(eta_value)
            torch.nan_to_num_(coef, nan=0.0, posinf=0.0, neginf=0.0)
            if convs:
                torch.index_select(coef, 0, plan.conv_index, out=plan.expanded)
            coefs = plan.coefs
        if self.measure_update_size:
            self.state["update_size"] = self._update_size(plan, params, coef, norms, compiling)
        if masked:
            # A skipped step (η = 0) must not turn inf * 0 into NaN in the weights: zero the
            # non-finite entries of the gradient; for a finite gradient this is the identity.
            grads = [torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0) for g in grads]
        torch._foreach_addcmul_(params, grads, coefs, value=-1)
        return self._record(eta, summary, finite)

    def _update_size(self, plan, params, coef, norms, compiling) -> torch.Tensor:
        """(1/L) Σ_k ||ΔW_k||_F / ||W_k||_F of the update about to be applied (PAPER.md fig2),
        from quantities the step already has: block b moves by coef_b·||∇W[b]||, so only the
        weights' norms cost a pass over memory, instead of a copy of every weight."""
        moved = torch.nan_to_num(coef * norms, nan=0.0, posinf=0.0, neginf=0.0)
        if plan.tensors != len(moved):  # convs: Σ over each tensor's blocks of the squares
            moved = torch.zeros(plan.tensors, device=moved.device).index_add_(
                0, plan.owner, moved * moved).sqrt_()
        weight_norms = _frobenius_norms(params, compiling)
        ratio = torch.where(weight_norms > 0, moved / weight_norms, 0.0)
        return ratio.sum() / self.depth

    def _record(self, eta, summary, finite) -> torch.Tensor:
        self.state["step"] = self.state.get("step", 0) + 1
        self.state["eta"] = eta
        self.state["gradient_summary"] = summary
        if not self.check_finite:
            bad = self.state.get("nonfinite_steps")
            if bad is None:
                bad = self.state["nonfinite_steps"] = torch.zeros((), device=eta.device)
            if isinstance(finite, torch.Tensor):
                bad.add_(torch.logical_not(finite))
            elif not finite:
                bad.add_(1)
        return eta

    def _nonfinite_message(self) -> str:
        bad = []
        for gi, group in enumerate(self.param_groups):
            for pi, p in enumerate(group["params"]):
                if p.grad is not None and not torch.isfinite(p.grad).all():
                    bad.append(f"group {gi} parameter {pi} of shape {tuple(p.shape)}")
        where = "; ".join(bad) if bad else "the gradient summary"
        return (
            f"AGD got a non-finite gradient ({where}); the weights were left unchanged. "
            "Check the loss and the inputs for inf/NaN."
        )
