"""One table of per-tensor rules: everything AGD and `init_weights` do with each kind of parameter.

Every parameter gets a *kind*; the kind's `Rule` is the one place that says how the tensor is
matched, refused, split into (out, in) blocks, scaled, initialised and normalised, whether it
counts in the depth L and in the relative update size, and whether the spectral variant
orthogonalises it (docs/algorithm.md, "The rule table"):

    kind       tensor               blocks (view)                scale                        in the paper
    matrix     (out, in)            1 (whole)                    sqrt(out/in)                 yes
    conv       (out, in, kx, ky)    kx*ky of (out, in) (blocks)  sqrt(out/in) / sqrt(kx*ky)   yes
    embedding  (vocab, dim)         1, maps vocab -> dim         sqrt(dim/vocab)              no: extensions=True
    norm       a norm layer's gain  1, diag(γ) of (d, d)          1                            no: extensions=True
    bias       (d,)                 1, a (d, 1) column on 1      sqrt(d)                      no: extensions=True
    vector     other 1-D            -                            -                            refused by design
    loose      1-D, no module       -                            -                            refused: pass the model

The kinds outside the paper are refused unless `extensions=True` is passed; their reasoning is
in docs/beyond.md and their initialisations in agd/extensions.py. `vector` and `loose` have no
rule with any setting: AGD cannot size the step of a tensor whose map it does not know.
Adding a kind is one `Rule(...)` entry in `RULES`: the first entry whose `matches` accepts a
parameter decides its kind. The fast step (agd/optim_fast.py) handles both views, so every
kind with a rule has its fast path.

Module context matters: an `nn.Embedding` weight is 2-D but is the transpose of a Linear
weight, and a 1-D tensor is a bias or a norm's affine parameter depending on its module. A model
(`classify(model)`, `AGD(model)`, `init_weights(model)`) gives that context; bare tensors
(`AGD(tensors)`) are classified by rank alone, so they can only be the paper's kinds.
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

WHOLE, BLOCKS = "whole", "blocks"  # the two views: the tensor is one (out, in) block, or W[:, :, i, j] each is


@torch.no_grad()
def orthogonal_blocks_(weight: torch.Tensor, scale: float, generator: torch.Generator | None = None) -> None:
    """Each (out, in) block W[:, :, i, j, ...] drawn semi-orthogonal, then all times `scale`."""
    for position in itertools.product(*(range(n) for n in weight.shape[2:])):
        block = weight[(slice(None), slice(None)) + position]
        block.copy_(semi_orthogonal(block.shape, generator, weight.dtype, weight.device))
    weight.mul_(scale)


def norm_dtype(grad: torch.Tensor) -> torch.dtype:
    """Norms, G and η are float32 for float32/16 and bfloat16 tensors, float64 for float64 ones."""
    return torch.promote_types(grad.dtype, torch.float32)


@dataclass(frozen=True)
class Rule:
    """Everything about one kind of parameter. `fans` None: the kind is refused with every setting."""

    kind: str
    matches: Callable[[torch.Tensor, nn.Module | None, str], bool]  # (param, its module, attr name)
    ranks: tuple[int, ...]      # the tensor ranks the kind can hold (checked when a kind is given)
    fans: Callable[[Shape], tuple[int, int]] | None = None  # (out, in) of one block
    view: str = WHOLE           # WHOLE: one (out, in) block; BLOCKS: one per position W[:, :, i, j]
    init: Callable[[torch.Tensor, float, torch.Generator | None], None] = orthogonal_blocks_
    paper: bool = True          # False: beyond the paper, used only with extensions=True
    in_depth: bool = True       # counts in L (a frozen parameter never does: agd/optim.py)
    in_update_size: bool = True  # counts in the relative update size (1/n) Σ ||ΔW||/||W|| (fig2)
    spectral: bool = False      # orthogonalize=True orthogonalises its blocks (docs/beyond.md)
    refusal: str = ""           # why the paper's AGD (or AGD at all, fans None) has no rule for it
    fix: str = ""               # what works instead

    def blocks(self, shape: Shape) -> int:
        """How many (out, in) blocks the tensor holds (a conv: one per kernel position)."""
        return math.prod(shape[2:]) if self.view == BLOCKS else 1

    def scale(self, shape: Shape) -> float:
        """sqrt(out/in) / sqrt(blocks): sizes the initialisation, G and the update alike."""
        fan_out, fan_in = self.fans(shape)
        return math.sqrt(fan_out / fan_in) / math.sqrt(self.blocks(shape))

    def norms(self, grad: torch.Tensor) -> torch.Tensor:
        """Frobenius norm of each block: 0-d for a WHOLE tensor, (kx, ky) for a conv, so it
        broadcasts against the tensor. Float32 at least (float64 stays float64)."""
        dims = (0, 1) if self.view == BLOCKS else None
        return torch.linalg.vector_norm(grad, dim=dims, dtype=norm_dtype(grad))


def _rank(*ranks: int):
    return lambda param, module, attr: param.dim() in ranks


def _is_norm_gain(param: torch.Tensor, module: nn.Module | None, attr: str) -> bool:
    """A normalisation layer's `weight` (its shift is its `bias`, which the bias rule takes)."""
    return isinstance(module, _NORMS) and attr == "weight"


_PASS_THE_MODEL = "pass the model itself, AGD(model, extensions=True) and init_weights(model, extensions=True)"

RULES: dict[str, Rule] = {rule.kind: rule for rule in (
    Rule("embedding", lambda p, m, a: isinstance(m, _EMBEDDINGS) and a == "weight", ranks=(2,),
         fans=extensions.embedding_fans, init=extensions.init_embedding_, paper=False,
         refusal="it is an nn.Embedding weight, stored (vocab, dim) but mapping a one-hot of size vocab to dim "
                 "(the transpose of a Linear weight), which the paper's AGD has no rule for",
         fix="leave it out of the optimised parameters"),
    Rule("norm", _is_norm_gain, ranks=(1,), fans=extensions.norm_gain_fans, init=extensions.ones_,
         paper=False, in_depth=False, in_update_size=False,
         refusal="it is a normalisation layer's affine parameter, which the paper's AGD has no rule for",
         fix="build the layer with affine=False (elementwise_affine=False for LayerNorm)"),
    Rule("bias", lambda p, m, a: m is not None and a.endswith("bias") and p.dim() == 1, ranks=(1,),
         fans=extensions.bias_fans, init=extensions.zeros_, paper=False, in_depth=False, in_update_size=False,
         refusal="it is a bias, which the paper's AGD has no rule for", fix="build the layer with bias=False"),
    Rule("vector", lambda p, m, a: m is not None and p.dim() == 1, ranks=(1,), in_depth=False, in_update_size=False,
         refusal="it is a 1-D parameter of a module that is neither a bias nor a normalisation layer's "
                 "parameter, so AGD cannot tell which map it is nor size its step (refused by design, "
                 "docs/beyond.md)",
         fix="train it with another optimiser and leave it out of AGD's parameters"),
    Rule("loose", _rank(1), ranks=(1,), in_depth=False, in_update_size=False,
         refusal="it is a 1-D tensor passed without its module, so AGD cannot tell a bias from a normalisation "
                 "layer's gain",
         fix=f"for the paper's AGD build the model with bias=False and affine=False; for every parameter "
             f"{_PASS_THE_MODEL}"),
    Rule("matrix", _rank(2), ranks=(2,), fans=lambda shape: (shape[0], shape[1]), spectral=True),
    Rule("conv", _rank(4), ranks=(4,), fans=lambda shape: (shape[0], shape[1]), view=BLOCKS, spectral=True),
)}


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
    if kind not in RULES or param.dim() not in RULES[kind].ranks:
        raise ValueError(f"{name} has shape {shape} but is given the kind {kind!r}, which holds tensors of rank "
                         f"{RULES[kind].ranks if kind in RULES else 'none'}: give it the kind of its rank "
                         f"(one of {', '.join(RULES)}) or leave 'kinds' out.")
    if any(n == 0 for n in shape):
        raise ValueError(f"{name} has shape {shape}: AGD cannot handle an empty tensor.")
    rule = RULES[kind]
    if rule.fans is None:
        raise ValueError(f"{name} has shape {shape}: {rule.refusal}: {rule.fix}.")
    if not rule.paper and not extensions:
        raise ValueError(f"{name} has shape {shape}: {rule.refusal}: {rule.fix}, or pass extensions=True.")
    return rule


def owned_parameters(model: nn.Module, *, tied_ok: bool = False) -> Iterator[tuple[str, nn.Parameter, nn.Module, str]]:
    """(qualified name, parameter, owning module, attribute name) of each distinct parameter.
    A parameter owned by two modules (a tied weight) is refused, as its kind, its place in L and
    its step would each be ambiguous; with `tied_ok` it is listed once, under its first owner."""
    owner: dict[int, str] = {}
    for module_name, module in model.named_modules():
        for attr, param in module.named_parameters(recurse=False):
            name = f"{module_name}.{attr}" if module_name else attr
            if id(param) in owner and not tied_ok:
                raise ValueError(f"{name} is the same tensor as {owner[id(param)]} (a weight tied between two "
                                 "modules): AGD would have to give one tensor two modules' rules and count it "
                                 f"once or twice in L; untie it (e.g. model.{name} = nn.Parameter("
                                 f"model.{owner[id(param)]}.detach().clone())) or train the tied model with "
                                 "another optimiser.")
            if id(param) not in owner:
                owner[id(param)] = name
                yield name, param, module, attr


def classify(model: nn.Module) -> dict[str, str | None]:
    """Qualified parameter name -> kind (None where no rule matches), with module context."""
    return {name: kind_of(param, module, attr) for name, param, module, attr in owned_parameters(model, tied_ok=True)}


def model_rules(model: nn.Module, extensions: bool = False) -> list[tuple[str, nn.Parameter, Rule]]:
    """(name, parameter, rule) of every parameter of `model`; refuses as `rule_for` does."""
    return [(name, param, rule_for(param, module, attr, name=name, extensions=extensions))
            for name, param, module, attr in owned_parameters(model)]


def update_size_tensors(model: nn.Module) -> list[torch.Tensor]:
    """The tensors the relative update size of fig2 averages over, for any optimiser: those whose
    kind's rule counts in it (matrices, conv kernels, embeddings; not biases or norm gains). A
    tensor AGD has no rule for (a Conv1d kernel under Adam) counts when it is at least 2-D, as
    the weight of a layer is."""
    chosen = []
    for _, param, module, attr in owned_parameters(model, tied_ok=True):
        kind = kind_of(param, module, attr)
        rule = RULES.get(kind) if kind else None
        if rule.in_update_size if rule else param.dim() >= 2:
            chosen.append(param)
    return chosen
