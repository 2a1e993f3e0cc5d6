"""Automatic Gradient Descent as the paper writes it, as a `torch.optim.Optimizer`.

For L weight tensors W_k, each a set of (out, in) blocks with a scale (agd/rules.py), one step is
(docs/algorithm.md):
    1. G = (1/L) Σ_k scale_k Σ_blocks ||∇W_k[block]||_F
    2. η = log((1 + sqrt(1 + 4G)) / 2)
    3. W_k[block] ← W_k[block] − (η/L)·scale_k·gain · ∇W_k[block] / ||∇W_k[block]||_F

    opt = AGD(model.parameters())     # after agd.init_weights(model); or AGD(model)
    loss.backward(); eta = opt.step(); opt.zero_grad()

`step()` below is these lines, one tensor at a time. `foreach=True` runs the same maths over all
tensors at once with no host sync (agd/optim_fast.py, tested equal to this reading).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.optim import Optimizer

from agd.functional import automatic_learning_rate
from agd.rules import RULES, model_rules, rule_for


class AGD(Optimizer):
    """Automatic Gradient Descent: no learning rate; the step size η is computed every step.

    Args:
        params: a model (its parameters are classified with module context, so an
            nn.Embedding weight is recognised), or weight tensors / param groups (classified by
            rank: 2 -> matrix, 4 -> conv). L, the depth, counts the trained tensors across all
            groups; a frozen tensor (requires_grad=False) is neither moved nor counted.
        gain: multiplier on the update; 1.0 in every result of the paper, which does not have it
            (docs/algorithm.md, "Gain"). A group may override it.
        check_finite: if True, a non-finite gradient raises FloatingPointError before any weight
            changes. If False, that step is skipped (η recorded as 0) and counted in
            `state["nonfinite_steps"]`.
        extensions: allow the rules beyond the paper (biases, norm affines, embeddings); a kind
            whose rule is not available yet raises NotImplementedError.
        foreach: run the step over all tensors at once with no host sync (agd/optim_fast.py;
            matrices and conv kernels). None (default): on off the CPU where it applies.

    Attributes:
        measure_update_size: if True, every step stores (1/L) Σ_k ||ΔW_k||_F / ||W_k||_F, the
            relative update size of fig2, as the 0-d tensor `state["update_size"]`.
    """

    def __init__(self, params: Iterable | nn.Module, gain: float = 1.0, check_finite: bool = True, *,
                 extensions: bool = False, foreach: bool | None = None):
        if not gain > 0:
            raise ValueError(f"AGD's gain must be positive, got {gain}.")
        self.extensions, self.check_finite, self.foreach = bool(extensions), bool(check_finite), foreach
        if isinstance(params, nn.Module):  # module context: classify every parameter by its module
            named = model_rules(params, self.extensions)
            params = [{"params": [p for _, p, _ in named], "kinds": [r.kind for _, _, r in named]}]
        super().__init__(params, dict(gain=float(gain)))
        self.state["step"] = 0
        self.measure_update_size = False  # the training loop sets it to record state["update_size"]

    def add_param_group(self, param_group: dict) -> None:
        """Check every tensor of the group against the rule table and record its kind."""
        params = param_group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        kinds = param_group.get("kinds") or [None] * len(params)
        index = len(self.param_groups)
        rules = [rule_for(p, kind=kind, name=f"parameter {i} of group {index}", extensions=self.extensions)
                 for i, (p, kind) in enumerate(zip(params, kinds, strict=True))]
        super().add_param_group({**param_group, "params": params, "kinds": [r.kind for r in rules]})

    @property
    def depth(self) -> int:
        """L: the number of trained tensors that count in the depth (docs/algorithm.md)."""
        return sum(RULES[kind].in_depth and p.requires_grad for group in self.param_groups
                   for p, kind in zip(group["params"], group["kinds"], strict=True))

    def trained(self) -> list[tuple[torch.Tensor, torch.Tensor, object, float]]:
        """(weight, gradient, rule, gain) of each trained tensor that has a gradient."""
        live = []
        for index, group in enumerate(self.param_groups):
            for p, kind in zip(group["params"], group["kinds"], strict=True):
                if p.requires_grad and p.grad is not None:
                    if p.grad.is_sparse:
                        raise ValueError(f"a parameter of group {index} of shape {tuple(p.shape)} has a sparse "
                                         "gradient: AGD needs dense ones (build nn.Embedding with sparse=False).")
                    live.append((p, p.grad, RULES[kind], group["gain"]))
        return live

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:
        """One AGD step (docs/algorithm.md, steps 1-3). Returns η as a 0-d tensor."""
        if closure is not None:
            with torch.enable_grad():
                closure()
        live, depth = self.trained(), max(self.depth, 1)
        device = live[0][0].device if live else self.param_groups[0]["params"][0].device
        if self.foreach is not False and (self.foreach or device.type != "cpu"):
            from agd import optim_fast  # the same step over all tensors at once, no host sync

            if self.foreach or optim_fast.supports(live):
                return optim_fast.foreach_step(self, live, depth)
        # Step 1: G = (1/L) Σ_k scale_k Σ_blocks ||∇W_k[block]||_F (a block is one (out, in) matrix)
        norms = [rule.norms(g) for _, g, rule, _ in live]
        summary = sum((rule.scale(p.shape) * n.sum() for (p, _, rule, _), n in zip(live, norms, strict=True)),
                      torch.zeros((), device=device)) / depth
        if not torch.isfinite(summary):  # one host read (free on the CPU; foreach=True avoids it)
            return self.skip_nonfinite(summary)
        # Step 2: η = log((1 + sqrt(1 + 4G)) / 2)
        eta = automatic_learning_rate(summary)
        moved = []
        for (p, g, rule, gain), norm in zip(live, norms, strict=True):
            # Step 3: W_k ← W_k − (η/L)·scale_k·gain · ∇W_k[block] / ||∇W_k[block]||_F, block by
            # block; a block whose gradient is zero has 0/0 := 0 and stays put.
            coef = torch.where(norm > 0, eta / depth * rule.scale(p.shape) * gain / norm, 0.0)
            if self.measure_update_size and rule.in_depth:  # ||ΔW_k||_F/||W_k||_F over the L tensors
                weight_norm = torch.linalg.vector_norm(p, dtype=norm.dtype)
                moved.append(torch.where(weight_norm > 0, (coef * norm).norm() / weight_norm, 0.0))
            p.addcmul_(g, coef, value=-1)
        if self.measure_update_size:
            self.state["update_size"] = sum(moved, torch.zeros((), device=device)) / depth
        return self.record(eta, summary)

    def skip_nonfinite(self, summary: torch.Tensor) -> torch.Tensor:
        """A non-finite G: raise (check_finite=True) or skip the step with η = 0."""
        if self.check_finite:
            raise FloatingPointError(self.nonfinite_message())
        if self.measure_update_size:
            self.state["update_size"] = torch.zeros((), device=summary.device)
        return self.record(torch.zeros((), device=summary.device), summary, finite=False)

    def record(self, eta: torch.Tensor, summary: torch.Tensor, finite: bool | torch.Tensor = True) -> torch.Tensor:
        """Store η, G and the step count (and count non-finite steps with check_finite=False)."""
        self.state["step"] = self.state.get("step", 0) + 1
        self.state["eta"] = eta
        self.state["gradient_summary"] = summary
        if not self.check_finite:
            if "nonfinite_steps" not in self.state:
                self.state["nonfinite_steps"] = torch.zeros((), device=eta.device)
            self.state["nonfinite_steps"].add_(torch.logical_not(torch.as_tensor(finite, device=eta.device)))
        return eta

    def nonfinite_message(self) -> str:
        bad = [f"group {gi} parameter {pi} of shape {tuple(p.shape)}"
               for gi, group in enumerate(self.param_groups) for pi, p in enumerate(group["params"])
               if p.grad is not None and not torch.isfinite(p.grad).all()]
        return (f"AGD got a non-finite gradient ({'; '.join(bad) or 'the gradient summary'}); the weights were "
                "left unchanged. Check the loss and the inputs for inf/NaN.")
