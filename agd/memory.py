"""Optimiser memory, measured (PAPER.md §5 table1: AGD 1× #weights, SGD+momentum 2×, Adam 3×).

`measure(model, optimizer, inputs, targets, loss_fn)` takes one real step and then walks every
tensor the optimiser holds — `optimizer.state` (per-parameter dicts, or AGD's flat entries) and
any tensor-valued hyperparameter in `param_groups` — counting each storage once and never the
parameters themselves. Gradients are not optimiser state (every method needs them for one
step) and are not counted. Python numbers in the state (e.g. a step counter) are reported by
count only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class MemoryReport:
    parameter_bytes: int
    state_bytes: int
    state_tensors: int      # distinct tensors in the optimiser state
    scalar_tensors: int     # of which 0-d (one number each, e.g. AGD's η)
    python_numbers: int     # ints/floats/bools stored as state values (not param_groups settings)

    @property
    def state_multiple(self) -> float:
        """Optimiser state in units of the weights' bytes (0 for plain SGD)."""
        return self.state_bytes / self.parameter_bytes

    @property
    def total_multiple(self) -> float:
        """Weights plus optimiser state, in units of the weights' bytes (table1's number)."""
        return 1.0 + self.state_multiple


def tensor_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _walk(value, tensors: list, numbers: list) -> None:
    if isinstance(value, torch.Tensor):
        tensors.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _walk(v, tensors, numbers)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _walk(v, tensors, numbers)
    elif isinstance(value, (int, float)):
        numbers.append(value)


def optimizer_state(optimizer: torch.optim.Optimizer, parameters: Iterable[torch.Tensor]) -> MemoryReport:
    """Bytes held by `optimizer` now, apart from the parameters (see the module docstring)."""
    params = list(parameters)
    param_storage = {p.untyped_storage().data_ptr() for p in params}
    tensors: list[torch.Tensor] = []
    numbers: list = []
    _walk(dict(optimizer.state), tensors, numbers)
    group_numbers: list = []  # hyperparameters (lr, betas, ...) are settings, not state
    for group in optimizer.param_groups:
        _walk({k: v for k, v in group.items() if k != "params"}, tensors, group_numbers)
    seen: set[tuple[int, int]] = set()
    state_bytes = count = scalars = 0
    for t in tensors:
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if t.untyped_storage().data_ptr() in param_storage or key in seen:
            continue
        seen.add(key)
        # a view counts its whole storage: that is what stays allocated
        state_bytes += t.untyped_storage().nbytes()
        count += 1
        scalars += t.dim() == 0
    return MemoryReport(parameter_bytes=sum(tensor_bytes(p) for p in params), state_bytes=state_bytes,
                        state_tensors=count, scalar_tensors=scalars, python_numbers=len(numbers))


def measure(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor,
            loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> MemoryReport:
    """Take one optimiser step on (inputs, targets), then report parameter and state bytes."""
    model.train()
    switch = getattr(optimizer, "train", None)  # Schedule-Free needs train mode to step
    if callable(switch):
        switch()
    optimizer.zero_grad(set_to_none=True)
    loss_fn(model(inputs), targets).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return optimizer_state(optimizer, model.parameters())
