"""AGD as a drop-in `torch.optim.Optimizer` (PAPER.md §1, §1.1, §1.2, §1.3).

    opt = AGD(model.parameters())          # after agd.init_weights(model)
    loss.backward(); eta = opt.step(); opt.zero_grad()

The step is written for lists of tensors: one `torch._foreach_norm` over all matrix gradients,
one reduction per conv kernel, and η kept as a device tensor, so with `check_finite=False` the
step never waits on the host (the training loop uses that mode and checks finiteness once per
epoch instead).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.optim import Optimizer

from agd.functional import automatic_learning_rate, block_norms, check_weight_shape, weight_scale


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

    @property
    def depth(self) -> int:
        """L: the number of weight tensors the optimiser was given."""
        return sum(len(group["params"]) for group in self.param_groups)

    def _layers(self):
        """(param, gradient or None, gain) for every tensor, matrices first, then convs."""
        entries = [(p, p.grad, g["gain"]) for g in self.param_groups for p in g["params"]]
        return [e for e in entries if e[0].dim() == 2], [e for e in entries if e[0].dim() == 4]

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:
        """One AGD step. Returns η as a 0-d tensor on the parameters' device."""
        if closure is not None:
            with torch.enable_grad():
                closure()
        matrices, convs = self._layers()
        ref = (matrices or convs)[0][0]
        depth = self.depth
        # Σ_k scale_k Σ_blocks ||∇W_k[block]||_F, and the norms themselves for the update.
        # A missing gradient is a zero gradient: it adds 0 to G and leaves its tensor unchanged.
        live = [(p, g, gain) for p, g, gain in matrices if g is not None]
        live_convs = [(p, g, gain) for p, g, gain in convs if g is not None]
        total = torch.zeros((), device=ref.device, dtype=torch.float32)
        matrix_norms = None
        if live:
            matrix_norms = torch.stack(torch._foreach_norm([g for _, g, _ in live])).float()
            scales = torch.tensor([weight_scale(p.shape) for p, _, _ in live], device=ref.device)
            total = total + (scales * matrix_norms).sum()
        conv_norms = [block_norms(g.float()) for _, g, _ in live_convs]
        for (p, _, _), norms in zip(live_convs, conv_norms, strict=True):
            total = total + weight_scale(p.shape) * norms.sum()
        summary = total / depth
        eta = automatic_learning_rate(summary)
        finite = torch.isfinite(summary)
        if self.check_finite:
            if not bool(finite):  # one host sync; check_finite=False avoids it
                raise FloatingPointError(self._nonfinite_message())
            eta_applied = eta
        else:
            eta_applied = torch.where(finite, eta, torch.zeros_like(eta))
            bad = self.state.get("nonfinite_steps", torch.zeros((), device=ref.device))
            self.state["nonfinite_steps"] = bad + (~finite).to(bad.dtype)

        if live:
            scales_gain = torch.tensor(
                [weight_scale(p.shape) * gain for p, _, gain in live], device=ref.device
            )
            # coefficient_k = gain * (η/L) * scale_k / ||∇W_k||, with 0/0 -> 0 (PAPER.md §1.2)
            coef = _safe_divide(eta_applied / depth * scales_gain, matrix_norms)
            self._apply([p for p, _, _ in live], [g for _, g, _ in live], list(coef.unbind()), finite)
        for (p, g, gain), norms in zip(live_convs, conv_norms, strict=True):
            # one coefficient per kernel position, broadcast over the (out, in) block
            coef = _safe_divide(eta_applied / depth * (weight_scale(p.shape) * gain), norms)
            self._apply([p], [g], [coef], finite)

        self.state["step"] = self.state.get("step", 0) + 1
        self.state["eta"] = eta_applied
        self.state["gradient_summary"] = summary
        return eta_applied

    def _apply(self, params, grads, coefs, finite):
        updates = torch._foreach_mul(grads, coefs)
        if self.check_finite:
            torch._foreach_sub_(params, updates)
        else:
            # inf * 0 is NaN, so a skipped step must select the old weights, not add zero.
            for p, u in zip(params, updates, strict=True):
                p.copy_(torch.where(finite, p - u.to(p.dtype), p))

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


def _safe_divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    positive = denominator > 0
    return torch.where(positive, numerator / torch.where(positive, denominator, 1.0), 0.0)
