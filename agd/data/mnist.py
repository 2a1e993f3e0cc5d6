"""MNIST from its official IDX files (PAPER.md §4: no augmentation, mean 0.1307, std 0.3081).

    <root>/MNIST/raw/train-images-idx3-ubyte  train-labels-idx1-ubyte
                     t10k-images-idx3-ubyte   t10k-labels-idx1-ubyte      (each may end in .gz)

IDX: a big-endian header — magic (0x00000803 for images, 0x00000801 for labels), then one
uint32 per dimension (count, rows, cols) — followed by the raw uint8 values. This is the folder
torchvision's MNIST downloader creates.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from agd.data.base import ArrayData
from agd.data.files import resolve_root, try_download

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
         "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
_MAGIC = {2049: 1, 2051: 3}  # 0x801 labels (1 dim), 0x803 images (3 dims); type byte 0x08 = uint8


def read_idx(path: Path) -> np.ndarray:
    """Read one uint8 IDX file (plain or gzip) into an array of the shape its header gives."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[:4], "big")
    if magic not in _MAGIC:
        raise ValueError(f"{path} is not a uint8 IDX file (magic number {magic:#010x}).")
    ndim = _MAGIC[magic]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} but the file holds {body.size} values.")
    return body.reshape(shape)


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def load(root: str | None = None, download: bool = True, loader: str = "device",
         num_workers: int = 0) -> ArrayData:
    """MNIST: 60,000 train / 10,000 test 28×28 grey images as uint8 (N, 1, 28, 28)."""
    base = resolve_root(root)
    directory = base / "MNIST" / "raw"
    reason = "download=false"
    if any(_find(directory, stem) is None for stem in FILES.values()) and download:
        import torchvision.datasets

        reason = try_download(lambda: torchvision.datasets.MNIST(root=str(base), train=True,
                                                                 download=True)) or reason
    paths = {key: _find(directory, stem) for key, stem in FILES.items()}
    missing = [FILES[k] for k, p in paths.items() if p is None]
    if missing:
        raise FileNotFoundError(
            f"MNIST not found: {directory}/ lacks {', '.join(missing)} (.gz or not); put the four IDX "
            f"files from http://yann.lecun.com/exdb/mnist/ there, or point data.root / DATA_DIR at the "
            f"folder that holds MNIST/raw/ (download not possible: {reason}).")
    arrays = {key: read_idx(p) for key, p in paths.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"MNIST {split}: images {x.shape} and labels {y.shape} do not match.")
    return ArrayData(
        name="mnist",
        x_train=torch.from_numpy(arrays["x_train"].copy()).unsqueeze(1),
        y_train=torch.from_numpy(arrays["y_train"].astype(np.int64)),
        x_test=torch.from_numpy(arrays["x_test"].copy()).unsqueeze(1),
        y_test=torch.from_numpy(arrays["y_test"].astype(np.int64)),
        num_classes=10, mean=MNIST_MEAN, std=MNIST_STD, pixel_scale=255.0, augment=False,
        loader=loader, num_workers=num_workers)
