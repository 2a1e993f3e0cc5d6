"""Automatic Gradient Descent as the paper writes it, as a `torch.optim.Optimizer`.

For L weight tensors W_k, each a set of (out, in) blocks with a scale (agd/rules.py), one step is
(docs/algorithm.md):
    1. G = (1/L) Σ_k scale_k Σ_blocks ||∇W_k[block]||_F
    2. η = log((1 + sqrt(1 + 4G)) / 2)
    3. W_k[block] ← W_k[block] − (η/L)·scale_k·gain · ∇W_k[block] / ||∇W_k[block]||_F

    opt = AGD(model.parameters())     # after agd.init_weights(model); or AGD(model)
    loss.backward(); eta = opt.step(); opt.zero_grad()

`step()` below is these lines, one tensor at a time. `foreach=True` runs the same maths over all
tensors at once with no host sync (agd/optim_fast.py, tested equal to this reading). Two
variants beyond the paper, both off by default, change what steps 1 and 3 read (docs/beyond.md):
`momentum=β` puts a moving average of the gradient in its place, `orthogonalize=True` moves each
matrix block along its orthogonalised gradient instead of its Frobenius-normalised one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import NamedTuple

import torch
from torch import nn
from torch.optim import Optimizer

from agd import optim_fast
from agd.functional import automatic_learning_rate, momentum_direction, orthogonalize_blocks
from agd.rules import RULES, Rule, model_rules, rule_for

_PASS_THE_MODEL = "AGD(model, extensions=True)"


class Trained(NamedTuple):
    """One tensor this step moves, with everything either step needs to move it."""

    param: torch.Tensor
    grad: torch.Tensor
    rule: Rule
    gain: float
    momentum: torch.Tensor | None  # the moving average m of the momentum variant (None: β = 0)
    beta: float                    # its weight this step: β, or 0 on the tensor's first step
    spectral: bool                 # orthogonalize=True and the rule orthogonalises this kind


class AGD(Optimizer):
    """Automatic Gradient Descent: no learning rate; the step size η is computed every step.

    Args:
        params: a model (its parameters are classified with module context, so an
            nn.Embedding weight is recognised), or weight tensors / param groups (classified by
            rank: 2 -> matrix, 4 -> conv). L, the depth, counts the trained tensors across all
            groups; a frozen tensor (requires_grad=False) is neither moved nor counted.
        gain: multiplier on the update; 1.0 in every result of the paper, which does not have it
            (docs/algorithm.md, "Gain"; docs/beyond.md for gain above 1). A group may override it.
        check_finite: if True, a non-finite gradient raises FloatingPointError before any weight
            changes. If False, that step is skipped (η recorded as 0) and counted in
            `state["nonfinite_steps"]`.
        momentum: β in [0, 1) of the momentum variant (docs/beyond.md): steps 1 and 3 read
            d = β·m + (1 − β)·∇ instead of ∇. 0 (default) is the paper's AGD; β > 0 keeps one
            moving average per tensor, doubling the optimiser's memory to 2x the weights.
        orthogonalize: the spectral variant (docs/beyond.md): matrices and conv kernel positions
            move along the Newton–Schulz orthogonalisation of their (moving-average) gradient
            instead of dividing it by its Frobenius norm; G and η are the paper's.
        extensions: allow the rules beyond the paper (biases, norm affines, embeddings); needs
            the model itself, AGD(model, extensions=True), whose modules tell the kinds apart.
        foreach: run the step over all tensors at once with no host sync (agd/optim_fast.py;
            every kind). None (default): on off the CPU.

    Attributes:
        measure_update_size: if True, every step stores (1/n) Σ_k ||ΔW_k||_F / ||W_k||_F over the
            n trained tensors whose rule counts in it, the relative update size of fig2, as the
            0-d tensor `state["update_size"]`.
    """

    def __init__(self, params: Iterable | nn.Module, gain: float = 1.0, check_finite: bool = True, *,
                 momentum: float = 0.0, orthogonalize: bool = False, extensions: bool = False,
                 foreach: bool | None = None):
        self.extensions, self.check_finite, self.foreach = bool(extensions), bool(check_finite), foreach
        if isinstance(params, nn.Module):  # module context: classify every parameter by its module
            named = model_rules(params, self.extensions)
            if not named:
                raise ValueError(f"AGD got a {type(params).__name__} with no parameters: pass the model whose "
                                 "weights it should train, AGD(model).")
            params = [{"params": [p for _, p, _ in named], "kinds": [r.kind for _, _, r in named]}]
        else:
            if isinstance(params, torch.Tensor):  # iterating it would hand over its rows
                raise TypeError("AGD got one tensor, not a list of them: pass AGD([weight]), or the model, AGD(model).")
            params = list(params)
            if not params:
                raise ValueError("AGD got no parameters (an empty list, or a model.parameters() generator already "
                                 "used up): pass the model, AGD(model), or a fresh model.parameters().")
        self._fast = optim_fast.FastStep()  # the all-tensors step and the plans it caches
        super().__init__(params, _checked(dict(gain=gain, momentum=momentum, orthogonalize=orthogonalize)))
        self.state["step"] = 0
        self.measure_update_size = False  # the training loop sets it to record state["update_size"]
        self.layers()  # refuse now a set of tensors with no layer among them

    def add_param_group(self, param_group: dict) -> None:
        """Check every tensor of the group against the rule table and record its kind."""
        params = param_group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        index = len(self.param_groups)
        if not params:
            raise ValueError(f"param group {index} has no parameters: give every group at least one tensor.")
        if self.extensions and param_group.get("kinds") is None:
            raise ValueError(f"param group {index}: extensions=True needs the model itself, whose modules tell an "
                             "nn.Embedding weight from a Linear's and a bias from a norm gain; pass "
                             f"{_PASS_THE_MODEL}, not its parameters.")
        _refuse_repeats(params, index, [group["params"] for group in self.param_groups])
        kinds = param_group.get("kinds") or [None] * len(params)
        if len(kinds) != len(params):
            raise ValueError(f"param group {index} has {len(params)} tensors but {len(kinds)} kinds: give one kind "
                             "per tensor, or leave 'kinds' out.")
        rules = [rule_for(p, kind=kind, name=f"parameter {i} of group {index}", extensions=self.extensions)
                 for i, (p, kind) in enumerate(zip(params, kinds, strict=True))]
        settings = _checked({key: param_group[key] for key in self.defaults if key in param_group},
                            f"param group {index}: ")
        super().add_param_group({**param_group, **settings, "params": params, "kinds": [r.kind for r in rules]})

    def counted(self, field: str) -> list[torch.Tensor]:
        """The trained tensors whose rule sets `field` (in_depth: the L layers; in_update_size)."""
        return [p for group in self.param_groups for p, kind in zip(group["params"], group["kinds"], strict=True)
                if p.requires_grad and getattr(RULES[kind], field)]

    @property
    def depth(self) -> int:
        """L: the number of trained tensors that count in the depth (docs/algorithm.md)."""
        return len(self.counted("in_depth"))

    def trained(self) -> list[Trained]:
        """Each trained tensor that has a gradient, with its moving average if momentum is on."""
        live = []
        for index, group in enumerate(self.param_groups):
            beta = group["momentum"]
            for p, kind in zip(group["params"], group["kinds"], strict=True):
                if p.requires_grad and p.grad is not None:
                    if p.grad.is_sparse:
                        raise ValueError(f"a parameter of group {index} of shape {tuple(p.shape)} has a sparse "
                                         "gradient: AGD needs dense ones (build nn.Embedding with sparse=False).")
                    average, weight = None, 0.0
                    if beta > 0:  # a new average starts as the gradient itself (weight 0 on m = 0)
                        weight = beta if "momentum" in self.state[p] else 0.0
                        if weight == 0.0:
                            self.state[p]["momentum"] = torch.zeros_like(p)
                        average = self.state[p]["momentum"]
                    rule = RULES[kind]
                    live.append(Trained(p, p.grad, rule, group["gain"], average, weight,
                                        group["orthogonalize"] and rule.spectral))
        return live

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:
        """One AGD step (docs/algorithm.md, steps 1-3). Returns η as a 0-d tensor."""
        if closure is not None:
            with torch.enable_grad():
                closure()
        live, depth = self.trained(), self.layers()
        if self.foreach is not False and (self.foreach or self.device.type != "cpu"):
            return self.fast_step(live, depth)
        # Momentum (beyond the paper, off by default): d = β·m + (1 − β)·∇W_k stands for ∇W_k below
        grads = [momentum_direction(t.grad, t.momentum, t.beta) for t in live]
        # Step 1: G = (1/L) Σ_k scale_k Σ_blocks ||∇W_k[block]||_F (a block is one (out, in) matrix)
        norms = [t.rule.norms(g) for t, g in zip(live, grads, strict=True)]
        summary = sum((t.rule.scale(t.param.shape) * n.sum() for t, n in zip(live, norms, strict=True)),
                      torch.zeros((), device=self.device)) / depth
        if not torch.isfinite(summary):  # one host read (free on the CPU; foreach=True avoids it)
            return self.skip_nonfinite(summary)
        # Step 2: η = log((1 + sqrt(1 + 4G)) / 2)
        eta = automatic_learning_rate(summary)
        moved = []
        for t, g, norm in zip(live, grads, norms, strict=True):
            if t.momentum is not None:
                t.momentum.copy_(g)  # the step is finite: keep the new moving average
            # Step 3: W_k ← W_k − (η/L)·scale_k·gain · ∇W_k[block] / ||∇W_k[block]||_F, block by
            # block; a block whose gradient is zero has 0/0 := 0 and stays put. The spectral
            # variant moves each block along its orthogonalised gradient instead.
            length = eta / depth * t.rule.scale(t.param.shape) * t.gain
            direction, coef = (orthogonalize_blocks(g), length) if t.spectral else \
                (g, torch.where(norm > 0, length / norm, 0.0))
            if self.measure_update_size and t.rule.in_update_size:  # ||ΔW_k||_F / ||W_k||_F
                weight_norm = torch.linalg.vector_norm(t.param, dtype=norm.dtype)
                step_norm = (coef * t.rule.norms(direction)).norm()
                moved.append(torch.where(weight_norm > 0, step_norm / weight_norm, 0.0))
            t.param.addcmul_(direction, coef, value=-1)
        if self.measure_update_size:
            self.state["update_size"] = sum(moved, torch.zeros((), device=self.device)) / self.update_count()
        return self.record(eta, summary)

    def fast_step(self, live: list[Trained], depth: int) -> torch.Tensor:
        """The same step over all tensors at once (agd/optim_fast.py), recorded like the readable one."""
        outcome = self._fast.step(live, depth, self.update_count(), device=self.device,
                                  check_finite=self.check_finite, measure_update_size=self.measure_update_size)
        if outcome.skipped:
            return self.skip_nonfinite(outcome.summary)
        if self.measure_update_size:
            self.state["update_size"] = outcome.update_size
        return self.record(outcome.eta, outcome.summary, outcome.finite)

    @property
    def device(self) -> torch.device:
        return self.param_groups[0]["params"][0].device

    def layers(self) -> int:
        """L for this step, refusing a step with tensors to move but no layer among them."""
        depth = self.depth
        if depth == 0 and any(p.requires_grad for group in self.param_groups for p in group["params"]):
            raise ValueError("every tensor AGD trains here is a bias or a norm gain, which add no depth (L = 0): "
                             "unfreeze a layer (a matrix, conv kernel or embedding) or train them with another "
                             "optimiser.")
        return max(depth, 1)

    def update_count(self) -> int:
        """How many tensors the relative update size averages over (at least 1)."""
        return max(len(self.counted("in_update_size")), 1)

    def load_state_dict(self, state_dict: dict) -> None:
        """Load an AGD state dict, refusing one from another optimiser or another model before
        anything changes; variant settings a state dict predates keep this optimiser's values."""
        super().load_state_dict(_checked_state_dict(self, state_dict))

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


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _checked(settings: dict, where: str = "") -> dict:
    """AGD's settings (gain, momentum, orthogonalize) as their types, or one error naming the bad one."""
    gain, beta, spectral = (settings.get(key) for key in ("gain", "momentum", "orthogonalize"))
    if "gain" in settings and not (_number(gain) and 0 < gain < math.inf):
        raise ValueError(f"{where}AGD's gain must be a positive finite number, got {gain!r}.")
    if "momentum" in settings and not (_number(beta) and 0 <= beta < 1):
        raise ValueError(f"{where}AGD's momentum must be a number in [0, 1) (0: the paper's AGD), got {beta!r}.")
    if "orthogonalize" in settings and not isinstance(spectral, bool):
        raise ValueError(f"{where}AGD's orthogonalize must be true or false, got {spectral!r}.")
    return {key: value if key == "orthogonalize" else float(value) for key, value in settings.items()}


def _memory_span(t: torch.Tensor) -> tuple[int, int, int]:
    """(storage address, first byte, one past the last byte) of the memory `t` reads."""
    extent = 1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride(), strict=True))
    start = t.storage_offset() * t.element_size()
    return t.untyped_storage().data_ptr(), start, start + extent * t.element_size()


def _refuse_repeats(params: list, index: int, groups: list[list]) -> None:
    """Refuse a tensor given twice, here or in another group, or two tensors over the same memory:
    one step would move it twice (and count it twice in L)."""
    where = {id(p): (g, i) for g, group in enumerate(groups) for i, p in enumerate(group)}
    spans = [(_memory_span(p), (g, i)) for g, group in enumerate(groups) for i, p in enumerate(group)]
    for i, p in enumerate(params):
        if id(p) in where:
            g, j = where[id(p)]
            raise ValueError(f"parameter {i} of group {index} is also parameter {j} of group {g}: one step would move "
                             "it twice and count it twice in L; pass each tensor once, in one group.")
        where[id(p)] = (index, i)
        (address, start, end), here = _memory_span(p), (index, i)
        for (other, first, last), (g, j) in spans:
            if other == address and address != 0 and start < last and first < end:
                raise ValueError(f"parameter {i} of group {index} shares memory with parameter {j} of group {g} "
                                 "(one is a view of the other): one step would move those entries twice; give "
                                 "each weight its own tensor (e.g. nn.Parameter(t.detach().clone())).")
        spans.append(((address, start, end), here))


def _checked_state_dict(opt: AGD, state_dict: dict) -> dict:
    """`state_dict` with the variant settings it predates filled from `opt`'s groups, after
    checking it is AGD's and fits `opt`'s tensors and their rules."""
    groups = state_dict.get("param_groups") if isinstance(state_dict, dict) else None
    if not isinstance(groups, list) or not all(isinstance(g, dict) and "kinds" in g for g in groups) \
            or not isinstance(state_dict.get("state"), dict):
        raise ValueError("this state dict is not AGD's (its param groups have no 'kinds': another optimiser saved "
                         "it); load it into the optimiser that saved it, or start AGD without it.")
    sizes, ours = [len(g["params"]) for g in groups], [len(g["params"]) for g in opt.param_groups]
    if sizes != ours:
        raise ValueError(f"this AGD state dict holds groups of {sizes} tensors and this optimiser {ours}: load it "
                         "into an AGD built the same way on the same model.")
    unknown = {key for value in state_dict["state"].values() if isinstance(value, dict) for key in value} - {"momentum"}
    if unknown:
        raise ValueError(f"this state dict holds per-tensor {sorted(unknown)}, which AGD never keeps (another "
                         "optimiser saved it); load it into the optimiser that saved it, or start AGD without it.")
    filled = []
    for index, (group, saved) in enumerate(zip(opt.param_groups, groups, strict=True)):
        for i, (p, kind) in enumerate(zip(group["params"], saved["kinds"], strict=True)):
            rule_for(p, kind=kind, name=f"parameter {i} of group {index} of the state dict", extensions=opt.extensions)
        filled.append({**{k: v for k, v in group.items() if k != "params"}, **saved})
    for group in filled:
        group.update(_checked({key: group[key] for key in opt.defaults}, "the state dict: "))
    return {**state_dict, "param_groups": filled}
