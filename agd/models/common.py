"""Argument checks shared by the models: every constructor takes `input_shape` and `num_classes`."""

from __future__ import annotations

from collections.abc import Sequence


def positive_int(model: str, key: str, value, low: int = 1) -> int:
    """`value` if it is an integer >= low, else a ValueError naming the model and the key."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{model} {key} must be an integer >= {low}, got {value!r}.")
    return value


def image_shape(model: str, input_shape) -> tuple[int, int, int]:
    """A (channels, height, width) tuple, or a ValueError saying what the model needs."""
    if (not isinstance(input_shape, Sequence) or isinstance(input_shape, str) or len(input_shape) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in input_shape)):
        raise ValueError(f"{model} input_shape must be (channels, height, width) of positive integers, "
                         f"got {input_shape!r}.")
    return tuple(input_shape)


def flag(model: str, key: str, value) -> bool:
    """`value` if it is a bool, else a ValueError naming the model and the key."""
    if not isinstance(value, bool):
        raise ValueError(f"{model} {key} must be true or false, got {value!r}.")
    return value
