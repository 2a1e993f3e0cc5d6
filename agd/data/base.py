"""The common shape of every dataset: tensors plus the facts a loader needs."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

LOADERS = ("device", "torchvision")


@dataclass
class ArrayData:
    """A whole dataset in memory.

    Images are stored raw (uint8, N×C×H×W) and normalised per batch by the loader, so the same
    tensors can live on the GPU at a quarter of the float32 size. Feature vectors (MNIST-1D) are
    stored as float32 with `pixel_scale` 1.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]  # per channel, in units of x / pixel_scale
    std: tuple[float, ...]
    pixel_scale: float = 255.0
    augment: bool = False  # random crop + horizontal flip on training batches
    # which loader serves it (agd.data.loader.make_loaders): "device" = DeviceLoader (whole set on
    # the device, augmented per batch there); "torchvision" = DataLoader + per-sample transforms
    loader: str = "device"
    num_workers: int = 0  # DataLoader workers, "torchvision" loader only
    # the crop's zero padding in pixels; None keeps CIFAR's proportion, image_size // 8 (4 at 32,
    # 2 at 16: agd.data.loader.default_pad)
    pad: int | None = None
    source: str | None = None  # the folder the files were read from (facts.json: data_source)

    def __post_init__(self):
        if self.loader not in LOADERS:
            raise ValueError(f"{self.name}: loader must be one of {', '.join(LOADERS)}, got {self.loader!r}.")
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if len(x) != len(y):
                raise ValueError(f"{self.name}: {split} has {len(x)} inputs but {len(y)} labels.")
            if len(x) == 0:
                raise ValueError(f"{self.name}: the {split} split is empty.")
            outside = (y < 0) | (y >= self.num_classes)
            if bool(outside.any()):  # the loss would fail on it mid-epoch, far from the cause
                first = int(outside.nonzero()[0, 0])
                raise ValueError(f"{self.name}: {split} label {int(y[first])} at index {first} is outside "
                                 f"0..{self.num_classes - 1} ({self.num_classes} classes).")
        if len(self.mean) != len(self.std):
            raise ValueError(f"{self.name}: mean and std have different lengths.")
        if self.pad is not None and (isinstance(self.pad, bool) or not isinstance(self.pad, int) or self.pad < 0):
            raise ValueError(f"{self.name}: pad must be a whole number of pixels >= 0 (or null for "
                             f"image_size // 8), got {self.pad!r}.")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def in_dim(self) -> int:
        return math.prod(self.input_shape)


def channel_stats(x: torch.Tensor, pixel_scale: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of x / pixel_scale (channel = dim 1 for images, one for vectors)."""
    values = x.double() / pixel_scale
    if values.dim() == 2:
        return (values.mean().item(),), (values.std().item(),)
    dims = [d for d in range(values.dim()) if d != 1]
    return tuple(values.mean(dim=dims).tolist()), tuple(values.std(dim=dims).tolist())


@contextmanager
def preserved_global_rng() -> Iterator[None]:
    """Restore Python's and NumPy's global RNG state afterwards (mnist1d reseeds them)."""
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
