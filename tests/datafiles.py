"""Writers of tiny datasets in the official on-disk formats, shared by the data tests."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np


def cifar_images(n: int, start: int) -> np.ndarray:
    """n distinct (3072,) uint8 rows; row i is filled with (start + i) mod 256 except pixel 0 of
    each channel, which holds 10·channel so the channel order can be checked."""
    rows = np.empty((n, 3072), dtype=np.uint8)
    for i in range(n):
        rows[i] = (start + i) % 256
        rows[i, [0, 1024, 2048]] = [0, 10, 20]
    return rows


def write_cifar10(root: Path, per_batch: int = 4, test: int = 3) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for b in range(1, 6):
        with open(folder / f"data_batch_{b}", "wb") as f:
            pickle.dump({b"batch_label": b"training batch", b"data": cifar_images(per_batch, 10 * b),
                         b"labels": [(b + i) % 10 for i in range(per_batch)],
                         b"filenames": [b"x.png"] * per_batch}, f)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": cifar_images(test, 200), b"labels": list(range(test))}, f)
    return folder


def write_cifar100(root: Path, train: int = 6, test: int = 3) -> Path:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n, start in (("train", train, 50), ("test", test, 100)):
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": cifar_images(n, start), b"fine_labels": [99 - i for i in range(n)],
                         b"coarse_labels": [i % 20 for i in range(n)]}, f)
    return folder


def idx_bytes(array: np.ndarray) -> bytes:
    magic = {1: 2049, 3: 2051}[array.ndim]
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, train: int = 6, test: int = 4, gz_train: bool = True,
                  label_offset: int = 0, seed: int = 0) -> Path:
    """The four MNIST-format IDX files in `folder`: random 28×28 images, labels (i + offset) mod 10
    for training and (i + 3 + offset) mod 10 for test; training files gzipped if `gz_train`."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (train, 28, 28)),
        "train-labels-idx1-ubyte": (np.arange(train) + label_offset) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (test, 28, 28)),
        "t10k-labels-idx1-ubyte": (np.arange(test) + 3 + label_offset) % 10,
    }
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz_train and name.startswith("train"):
            with gzip.open(folder / (name + ".gz"), "wb") as f:
                f.write(data)
        else:
            (folder / name).write_bytes(data)
    return folder


def write_mnist(root: Path, train: int = 6, test: int = 4, gz_train: bool = True) -> Path:
    return write_idx_set(root / "MNIST" / "raw", train, test, gz_train)


CLASS_COLOURS = {"n01": (255, 0, 0), "n02": (0, 0, 255)}


def write_imagefolder(root: Path, per_class: int = 3, size=(40, 48)) -> Path:
    """root/train/<class>/*.JPEG and root/val/<class>/*.JPEG: solid-colour JPEGs, one colour per
    class, so decoded pixels are known up to JPEG rounding."""
    from PIL import Image

    for split in ("train", "val"):
        for cls, colour in CLASS_COLOURS.items():
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", size, colour).save(folder / f"{cls}_{i}.JPEG", quality=95)
    return root
