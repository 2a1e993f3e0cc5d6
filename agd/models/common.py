"""Argument checks shared by the models: every constructor takes `input_shape` and `num_classes`."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


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


def cnn_arguments(model: str, input_shape, num_classes, width, bias, affine) -> int:
    """Check the arguments every CNN takes (an image shape, the class count, the first stage's
    width, the bias and affine flags); returns the input channels."""
    channels = image_shape(model, input_shape)[0]
    positive_int(model, "num_classes", num_classes)
    positive_int(model, "width", width)
    flag(model, "bias", bias)
    flag(model, "affine", affine)
    return channels


def residual_stages(block: type[nn.Module], counts: Sequence[int], width: int, bias: bool,
                    affine: bool) -> tuple[list[nn.Sequential], int]:
    """A ResNet's four stages: counts[s] blocks of width·2^s planes, the first block of stages 2-4
    with stride 2. Returns the stages and the channels the last one outputs."""
    in_planes, stages = width, []
    for stage, (count, stride) in enumerate(zip(counts, (1, 2, 2, 2), strict=True)):
        planes, layers = width * 2 ** stage, []
        for i in range(count):
            layers.append(block(in_planes, planes, stride if i == 0 else 1, bias, affine))
            in_planes = planes * block.expansion
        stages.append(nn.Sequential(*layers))
    return stages, in_planes
