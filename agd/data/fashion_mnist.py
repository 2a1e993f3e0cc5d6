"""Fashion-MNIST (Xiao et al., 2017): 60,000 train / 10,000 test 28×28 grey images of clothing,
10 classes; the same size as CIFAR-10 and a real image set that installs offline, so it stands
in for CIFAR-10/100 and ImageNet at `scale=small` (docs/data.md).

Where the four IDX files are looked for, first match wins:
  1. `data.root`, 2. $DATA_DIR, 3. the repo's `data/`   — each as <base>/FashionMNIST/raw/
     (torchvision's layout) or the files directly in <base>/;
  4. /usr/share/datasets/fashion-mnist/, where `apt-get install dataset-fashion-mnist` puts them.
When none holds them, torchvision's downloader is tried (online only) into the first base.

Two forms: the native (1, 28, 28) images, flattened to 784 inputs by the FCN; and the CNN form
(`channels=3, image_size=32`), bilinearly resized and repeated over three channels so the CIFAR
networks run unchanged, with crop + flip augmentation (`augment=true`). Normalisation is the
training set's own per-channel mean and std. `train_size` / `test_size` take a fixed random
subset (same for every seed), for CPU budgets.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from agd.data.base import ArrayData, channel_stats
from agd.data.files import REPO_DATA, try_download
from agd.data.idx import complete_folder, read_split_arrays

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
INSTALL_HINT = ("install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or put the "
                "four IDX files in data/FashionMNIST/raw/ (torchvision downloads them there when online)")


def candidate_folders(root: str | None) -> list[Path]:
    """Every folder searched, in order (see the module docstring)."""
    bases = []
    if root not in (None, ""):
        bases.append(Path(root).expanduser())
    if os.environ.get("DATA_DIR"):
        bases.append(Path(os.environ["DATA_DIR"]).expanduser())
    bases.append(REPO_DATA)
    folders = [folder for base in bases for folder in (base / "FashionMNIST" / "raw", base)]
    return folders + [DEBIAN_DIR]


def _locate(root: str | None, download: bool) -> Path:
    folders = candidate_folders(root)
    found = complete_folder(folders)
    if found is not None:
        return found
    reason = "download=false"
    if download:
        import torchvision.datasets

        base = folders[0].parent.parent  # <first base>/FashionMNIST/raw -> <first base>
        reason = try_download(lambda: torchvision.datasets.FashionMNIST(
            root=str(base), train=True, download=True)) or reason
        found = complete_folder(folders[:1])
        if found is not None:
            return found
    searched = ", ".join(str(f) for f in folders)
    raise FileNotFoundError(f"Fashion-MNIST not found (searched {searched}; download not possible: "
                            f"{reason}); {INSTALL_HINT}.")


def _subset(n: int, size: int | None, seed: int, name: str) -> torch.Tensor:
    if size is None:
        return torch.arange(n)
    if not isinstance(size, int) or not 0 < size <= n:
        raise ValueError(f"fashion_mnist {name} must be an integer between 1 and {n}, got {size!r}.")
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size].sort().values


def _form(images: np.ndarray, index: torch.Tensor, channels: int, image_size: int) -> torch.Tensor:
    pixels = torch.from_numpy(images[index.numpy()]).unsqueeze(1)  # a copy: (N, 1, 28, 28) uint8
    if image_size != pixels.shape[-1]:
        pixels = F.interpolate(pixels.float(), size=(image_size, image_size), mode="bilinear",
                               align_corners=False).round().clamp(0, 255).to(torch.uint8)
    return pixels.expand(-1, channels, -1, -1).contiguous()


def load(root: str | None = None, download: bool = True, channels: int = 1, image_size: int = 28,
         augment: bool = False, train_size: int | None = None, test_size: int | None = None,
         subset_seed: int = 0, loader: str = "device", num_workers: int = 0) -> ArrayData:
    """Fashion-MNIST as uint8 images (N, channels, image_size, image_size)."""
    if channels not in (1, 3):
        raise ValueError(f"fashion_mnist channels must be 1 or 3, got {channels!r}.")
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"fashion_mnist image_size must be an integer >= 8, got {image_size!r}.")
    arrays = read_split_arrays(_locate(root, download), "Fashion-MNIST")
    train_idx = _subset(len(arrays["y_train"]), train_size, subset_seed, "train_size")
    test_idx = _subset(len(arrays["y_test"]), test_size, subset_seed + 1, "test_size")
    x_train = _form(arrays["x_train"], train_idx, channels, image_size)
    mean, std = channel_stats(x_train, 255.0)
    return ArrayData(
        name="fashion_mnist",
        x_train=x_train,
        y_train=torch.from_numpy(arrays["y_train"].astype(np.int64))[train_idx],
        x_test=_form(arrays["x_test"], test_idx, channels, image_size),
        y_test=torch.from_numpy(arrays["y_test"].astype(np.int64))[test_idx],
        num_classes=10, mean=mean, std=std, pixel_scale=255.0, augment=augment,
        loader=loader, num_workers=num_workers)
