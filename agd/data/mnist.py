"""MNIST from its official IDX files (docs/data.md: no augmentation, mean 0.1307, std 0.3081).

    <root>/MNIST/raw/train-images-idx3-ubyte  train-labels-idx1-ubyte
                     t10k-images-idx3-ubyte   t10k-labels-idx1-ubyte      (each may end in .gz)

This is the folder torchvision's MNIST downloader creates; the format is read by agd.data.idx.
"""

from __future__ import annotations

import numpy as np
import torch

from agd.data.base import ArrayData
from agd.data.files import REPO_DATA, check_root, explicit_root, try_download
from agd.data.idx import FILES, missing_stems, read_split_arrays

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


def load(root: str | None = None, download: bool = True, loader: str = "device",
         num_workers: int = 0) -> ArrayData:
    """MNIST: 60,000 train / 10,000 test 28×28 grey images as uint8 (N, 1, 28, 28)."""
    named = explicit_root(root)
    base = named[0] if named else REPO_DATA
    if named:
        check_root(*named)
    directory = base / "MNIST" / "raw"
    missing = missing_stems(directory)
    reason = "download=false"
    if missing and len(missing) < len(FILES):  # a partial set is refused, not downloaded over
        raise FileNotFoundError(f"MNIST in {directory}/ is incomplete: it lacks {', '.join(missing)} (.gz or not); "
                                "put all four IDX files there, or point data.root / DATA_DIR at a folder whose "
                                "MNIST/raw/ holds them.")
    if missing and download:
        import torchvision.datasets

        reason = try_download(lambda: torchvision.datasets.MNIST(root=str(base), train=True,
                                                                 download=True)) or reason
        missing = missing_stems(directory)
    if missing:
        raise FileNotFoundError(
            f"MNIST not found: {directory}/ lacks {', '.join(missing)} (.gz or not); put the four IDX "
            f"files from http://yann.lecun.com/exdb/mnist/ there, or point data.root / DATA_DIR at the "
            f"folder that holds MNIST/raw/ (download not possible: {reason}).")
    arrays = read_split_arrays(directory, "MNIST")
    return ArrayData(
        name="mnist",
        x_train=torch.from_numpy(arrays["x_train"].copy()).unsqueeze(1),
        y_train=torch.from_numpy(arrays["y_train"].astype(np.int64)),
        x_test=torch.from_numpy(arrays["x_test"].copy()).unsqueeze(1),
        y_test=torch.from_numpy(arrays["y_test"].astype(np.int64)),
        num_classes=10, mean=MNIST_MEAN, std=MNIST_STD, pixel_scale=255.0, augment=False,
        loader=loader, num_workers=num_workers, source=str(directory))
