"""The paper's initialisation, part of the method (docs/algorithm.md, "Initialisation"): each
(out, in) block drawn semi-orthogonal, then the tensor times its scale, so every singular value
of every block equals the scale. Which blocks, which scale, and the initialisations of the kinds
beyond the paper (with extensions=True): the rule table, agd/rules.py."""

from __future__ import annotations

import torch
from torch import nn

from agd.rules import model_rules, rule_for


@torch.no_grad()
def orthogonal_scaled_(weight: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Initialise one bare matrix or conv kernel in place (kind from its rank) and return it."""
    rule = rule_for(weight, name="weight")
    rule.init(weight, rule.scale(weight.shape), generator)
    return weight


@torch.no_grad()
def init_weights(model: nn.Module, generator: torch.Generator | None = None, *,
                 extensions: bool = False) -> nn.Module:
    """Initialise every parameter of `model` by its rule (agd/rules.py). A parameter the paper
    has no rule for (a bias, a norm's affine parameter, an nn.Embedding weight) is refused with
    the fix; `extensions=True` initialises those by the rules beyond the paper (docs/beyond.md:
    biases 0, norm gains 1, embeddings semi-orthogonal with equal token norms). Frozen
    parameters are initialised too: freezing decides what trains, not the network."""
    for _, param, rule in model_rules(model, extensions):
        rule.init(param.data, rule.scale(param.shape), generator)
    return model
