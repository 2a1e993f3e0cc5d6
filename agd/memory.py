"""Optimiser memory, measured (table1 of docs/experiments.md: AGD 1× #weights, SGD+momentum 2×, Adam 3×).

`measure(model, optimizer, inputs, targets, loss_fn)` takes one real step and then walks every
tensor the optimiser holds — `optimizer.state` (per-parameter dicts, or AGD's flat entries) and
any tensor-valued hyperparameter in `param_groups` — counting each storage once and never the
parameters themselves. Tensors the optimiser object holds elsewhere (caches in its attributes,
e.g. the per-block plan of AGD(foreach=True)) are counted separately as `cache_bytes` and included in the
total. Gradients are not optimiser state (every method needs them for one step) and are not
counted. Python numbers in the state (e.g. a step counter) are reported by count only.
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
    cache_bytes: int = 0    # tensors held in the optimiser's other attributes (not state_dict)
    cache_tensors: int = 0

    @property
    def state_multiple(self) -> float:
        """Optimiser state in units of the weights' bytes (0 for plain SGD)."""
        return self.state_bytes / self.parameter_bytes

    @property
    def total_multiple(self) -> float:
        """Weights plus everything the optimiser holds (state and caches), in units of the
        weights' bytes (table1's number)."""
        return 1.0 + (self.state_bytes + self.cache_bytes) / self.parameter_bytes


def tensor_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _walk(value, tensors: list, numbers: list, objects: bool = False, seen: set | None = None) -> None:
    """Collect the tensors (and Python numbers) reachable from `value` through dicts, lists and
    tuples, and, with objects=True, through the attributes of plain Python objects."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        tensors.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _walk(v, tensors, numbers, objects, seen)
    elif isinstance(value, (list, tuple, set)):
        for v in value:
            _walk(v, tensors, numbers, objects, seen)
    elif isinstance(value, (bool, int, float)):
        numbers.append(value)
    elif objects and hasattr(value, "__dict__") and not isinstance(value, (type, nn.Module)) \
            and not callable(value):
        _walk(vars(value), tensors, numbers, objects, seen)


def _count(tensors: list[torch.Tensor], skip: set[int], seen: set[tuple[int, int]]) -> tuple[int, int, int]:
    """(bytes, tensors, 0-d tensors) of distinct storages, skipping storages in `skip`."""
    total = count = scalars = 0
    for t in tensors:
        storage = t.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        if storage.data_ptr() in skip or key in seen:
            continue
        seen.add(key)
        total += storage.nbytes()  # a view counts its whole storage: that is what stays allocated
        count += 1
        scalars += t.dim() == 0
    return total, count, scalars


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
    state_bytes, count, scalars = _count(tensors, param_storage, seen)
    # everything else the optimiser object keeps alive (caches, plans); the hooks and the
    # parameters themselves are not memory of the method
    skip_keys = ("state", "param_groups", "defaults")
    extra: list[torch.Tensor] = []
    _walk({k: v for k, v in vars(optimizer).items() if k not in skip_keys and "hook" not in k}, extra, [],
          objects=True)
    cache_bytes, cache_count, _ = _count(extra, param_storage, seen)
    return MemoryReport(parameter_bytes=sum(tensor_bytes(p) for p in params), state_bytes=state_bytes,
                        state_tensors=count, scalar_tensors=scalars, python_numbers=len(numbers),
                        cache_bytes=cache_bytes, cache_tensors=cache_count)


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
