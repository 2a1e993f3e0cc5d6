"""Architectures of PAPER.md §3, all bias-free."""

from agd.models.fcn import FCN

__all__ = ["FCN"]
