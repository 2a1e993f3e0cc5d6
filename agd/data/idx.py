"""The IDX file format of MNIST and Fashion-MNIST, and the search for a set of IDX files.

IDX: a big-endian header — magic (0x00000803 for images, 0x00000801 for labels), then one
uint32 per dimension (count, rows, cols) — followed by the raw uint8 values. Files may be
gzip-compressed (`.gz`), as the official downloads and the Debian package ship them.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path

import numpy as np

# train/test images and labels, by their official file names (a `.gz` suffix is also accepted)
FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
         "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
_MAGIC = {2049: 1, 2051: 3}  # 0x801 labels (1 dim), 0x803 images (3 dims); type byte 0x08 = uint8


def read_idx(path: Path) -> np.ndarray:
    """Read one uint8 IDX file (plain or gzip) into an array of the shape its header gives."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:  # a truncated or corrupt .gz
        raise ValueError(f"{path} could not be read ({err}); replace the file.") from err
    magic = int.from_bytes(raw[:4], "big")
    if magic not in _MAGIC:
        raise ValueError(f"{path} is not a uint8 IDX file (magic number {magic:#010x}).")
    ndim = _MAGIC[magic]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} but the file holds {body.size} values.")
    return body.reshape(shape)


def find_file(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def complete_folder(candidates: Iterable[Path]) -> Path | None:
    """The first folder that holds all four IDX files, or None."""
    for directory in candidates:
        if all(find_file(directory, stem) is not None for stem in FILES.values()):
            return directory
    return None


def missing_stems(directory: Path) -> list[str]:
    """The IDX files (by official name) that `directory` lacks, plain or .gz."""
    return [stem for stem in FILES.values() if find_file(directory, stem) is None]


def check_labels(labels: np.ndarray, classes: int, path: Path, name: str) -> None:
    """Every label in 0..classes-1, or one sentence naming the file, the label and where it is."""
    bad = np.flatnonzero((labels < 0) | (labels >= classes))
    if bad.size:
        raise ValueError(f"{path} holds label {int(labels[bad[0]])} at index {int(bad[0])} ({bad.size} labels "
                         f"in all outside 0..{classes - 1}: {name} has {classes} classes); replace the file.")


def read_split_arrays(directory: Path, name: str, classes: int = 10) -> dict[str, np.ndarray]:
    """The four arrays (x_train, y_train, x_test, y_test) of a complete IDX folder, checked:
    shapes that match and labels in 0..classes-1."""
    paths = {key: find_file(directory, stem) for key, stem in FILES.items()}
    arrays = {key: read_idx(path) for key, path in paths.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"{name} {split}: images {x.shape} and labels {y.shape} do not match.")
        check_labels(y, classes, paths[f"y_{split}"], name)
    return arrays
