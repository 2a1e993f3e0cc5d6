"""One table of per-tensor rules: what AGD and `init_weights` do with each parameter.

Every parameter gets a *kind*; the kind's `Rule` says how the tensor splits into (out, in)
blocks, its scale, its initialisation, whether it counts in the depth L, and whether the
paper covers it (docs/algorithm.md, "The rule table"):

    kind       tensor               blocks                  scale                          in the paper
    matrix     (out, in)            1                       sqrt(out/in)                   yes
    conv       (out, in, kx, ky)    kx*ky of (out, in)      sqrt(out/in) / sqrt(kx*ky)     yes
    embedding  (vocab, dim)         1, maps vocab -> dim    sqrt(dim/vocab)                no: not available yet
    bias, norm, vector (1-D)        -                       -                              no: not available yet

Kinds outside the paper are refused unless `extensions=True` is passed (and raise "not
available yet" while their rule is not written). Adding a kind is one `Rule(...)` entry in
`RULES`: the first entry whose `matches` accepts a parameter decides its kind.

Module context matters: an `nn.Embedding` weight is 2-D but is the transpose of a Linear
weight, and a 1-D tensor is a bias or a norm's affine parameter depending on its module. A model
(`classify(model)`, `AGD(model)`, `init_weights(model)`) gives that context; bare tensors
(`AGD(tensors)`) are classified by rank alone.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from agd import extensions
from agd.functional import semi_orthogonal

Shape = tuple[int, ...]

_NORMS = tuple(t for t in (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm,
                           getattr(nn, "RMSNorm", None)) if t is not None)
_EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)


def block_frobenius_norms(grad: torch.Tensor) -> torch.Tensor:
    """Frobenius norm of each (out, in) block W[:, :, i, j, ...]: 0-d for a matrix, (kx, ky)
    for a conv, so it broadcasts against the tensor. Float32 at least (float64 stays float64)."""
    return torch.linalg.vector_norm(grad, dim=(0, 1), dtype=torch.promote_types(grad.dtype, torch.float32))


@torch.no_grad()
def orthogonal_blocks_(weight: torch.Tensor, scale: float, generator: torch.Generator | None = None) -> None:
    """Each (out, in) block W[:, :, i, j, ...] drawn semi-orthogonal, then all times `scale`."""
    for position in itertools.product(*(range(n) for n in weight.shape[2:])):
        block = weight[(slice(None), slice(None)) + position]
        block.copy_(semi_orthogonal(block.shape, generator, weight.dtype, weight.device))
    weight.mul_(scale)


@dataclass(frozen=True)
class Rule:
    kind: str
    matches: Callable[[torch.Tensor, nn.Module | None, str], bool]  # (param, its module, attr name)
    fans: Callable[[Shape], tuple[int, int]] | None = None  # (out, in) of one block
    paper: bool = True          # False: beyond the paper, used only with extensions=True
    implemented: bool = True    # False: refused even with extensions=True ("not available yet")
    in_depth: bool = True       # counts in L (a frozen parameter never does: agd/optim.py)
    refusal: str = ""           # why the paper's AGD has no rule for it
    fix: str = ""               # what to do instead, without extensions
    norms: Callable[[torch.Tensor], torch.Tensor] = block_frobenius_norms
    init: Callable[[torch.Tensor, float, torch.Generator | None], None] = orthogonal_blocks_

    def blocks(self, shape: Shape) -> int:
        """How many (out, in) blocks the tensor holds (a conv: one per kernel position)."""
        return math.prod(shape[2:])

    def scale(self, shape: Shape) -> float:
        """sqrt(out/in) / sqrt(blocks): sizes the initialisation, G and the update alike."""
        fan_out, fan_in = self.fans(shape)
        return math.sqrt(fan_out / fan_in) / math.sqrt(self.blocks(shape))


def _rank(*ranks: int):
    return lambda param, module, attr: param.dim() in ranks


RULES: dict[str, Rule] = {rule.kind: rule for rule in (
    Rule("embedding", lambda p, m, a: isinstance(m, _EMBEDDINGS) and a == "weight",
         fans=lambda shape: (shape[1], shape[0]), paper=False, implemented=False,
         refusal="it is an nn.Embedding weight, stored (vocab, dim) but mapping a one-hot of size vocab to dim "
                 "(the transpose of a Linear weight), which the paper's AGD has no rule for",
         fix="leave it out of the optimised parameters"),
    Rule("norm", lambda p, m, a: isinstance(m, _NORMS), paper=False, implemented=False,
         refusal="it is a normalisation layer's affine parameter, which the paper's AGD has no rule for",
         fix="build the layer with affine=False (elementwise_affine=False for LayerNorm)"),
    Rule("bias", lambda p, m, a: m is not None and a.endswith("bias"), paper=False, implemented=False,
         refusal="it is a bias, which the paper's AGD has no rule for", fix="build the layer with bias=False"),
    Rule("vector", _rank(1), paper=False, implemented=False,
         refusal="it is a 1-D tensor (a bias or a normalisation layer's affine parameter), which the paper's "
                 "AGD has no rule for", fix="build the model with bias=False / affine=False"),
    Rule("matrix", _rank(2), fans=lambda shape: (shape[0], shape[1])),
    Rule("conv", _rank(4), fans=lambda shape: (shape[0], shape[1])),
)}
extensions.register(RULES)  # the rules beyond the paper (agd/extensions.py), used only with extensions=True


def kind_of(param: torch.Tensor, module: nn.Module | None = None, attr: str = "") -> str | None:
    """The first kind in `RULES` that matches, or None. `module` owns `param` as `attr`."""
    return next((kind for kind, rule in RULES.items() if rule.matches(param, module, attr)), None)


def rule_for(param: torch.Tensor, module: nn.Module | None = None, attr: str = "", *, name: str = "parameter",
             extensions: bool = False, kind: str | None = None) -> Rule:
    """The rule for `param` (of the given `kind`, or classified here), or one clear error naming
    the parameter and the fix."""
    shape = tuple(param.shape)
    if not param.is_floating_point():
        raise ValueError(f"{name} has dtype {param.dtype}: AGD handles floating-point weights only.")
    kind = kind or kind_of(param, module, attr)
    if kind is None:
        raise ValueError(f"{name} has shape {shape} (rank {param.dim()}), which AGD has no rule for: it "
                         "handles matrices (out, in) and conv kernels (out, in, kx, ky).")
    if any(n == 0 for n in shape):
        raise ValueError(f"{name} has shape {shape}: AGD cannot handle an empty tensor.")
    rule = RULES[kind]
    if not rule.paper and not extensions:
        raise ValueError(f"{name} has shape {shape}: {rule.refusal}: {rule.fix}, or pass extensions=True.")
    if not rule.implemented:
        raise NotImplementedError(f"{name} has shape {shape}: {rule.refusal}, and extensions=True asks for its "
                                  f"{kind!r} rule, which is not available yet: {rule.fix}.")
    return rule


def owned_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter, nn.Module, str]]:
    """(qualified name, parameter, owning module, attribute name) of each distinct parameter."""
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for attr, param in module.named_parameters(recurse=False):
            if id(param) not in seen:
                seen.add(id(param))
                yield (f"{module_name}.{attr}" if module_name else attr), param, module, attr


def classify(model: nn.Module) -> dict[str, str | None]:
    """Qualified parameter name -> kind (None where no rule matches), with module context."""
    return {name: kind_of(param, module, attr) for name, param, module, attr in owned_parameters(model)}


def model_rules(model: nn.Module, extensions: bool = False) -> list[tuple[str, nn.Parameter, Rule]]:
    """(name, parameter, rule) of every parameter of `model`; refuses as `rule_for` does."""
    return [(name, param, rule_for(param, module, attr, name=name, extensions=extensions))
            for name, param, module, attr in owned_parameters(model)]
