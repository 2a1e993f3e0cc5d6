"""Automatic Gradient Descent (Bernstein et al., 2023): the optimiser and its initialisation."""

from agd.init import init_weights
from agd.optim import AGD

__all__ = ["AGD", "init_weights"]
