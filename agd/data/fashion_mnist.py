"""Fashion-MNIST (Xiao et al., 2017): 60,000 train / 10,000 test 28×28 grey images of clothing,
10 classes; the same size as CIFAR-10 and a real image set that installs offline, so it stands
in for CIFAR-10/100 and ImageNet at `scale=small` (docs/data.md).

Where the four IDX files are looked for: a root named explicitly (`data.root`, else $DATA_DIR)
is the only place read, as <root>/FashionMNIST/raw/ (torchvision's layout) or the files directly
in <root>/; one that does not exist, is not a folder or holds only some of the files is refused
in one sentence, never replaced by another copy. With no root named, first match wins: the
repo's `data/` (both layouts), then /usr/share/datasets/fashion-mnist/, where `apt-get install
dataset-fashion-mnist` puts them. When no folder holds them, torchvision's downloader is tried
(online only) into the root, or into data/.

Two forms: the native (1, 28, 28) images, flattened to 784 inputs by the FCN; and the CNN form
(`channels=3, image_size=32`), bilinearly resized and repeated over three channels so the CIFAR
networks run unchanged, with crop + flip augmentation (`augment=true`). Normalisation is the
training set's own per-channel mean and std. `train_size` / `test_size` take a fixed random
subset (same for every seed), for CPU budgets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from agd.data.base import ArrayData, channel_stats
from agd.data.files import REPO_DATA, check_root, explicit_root, try_download
from agd.data.idx import FILES, complete_folder, missing_stems, read_split_arrays

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
INSTALL_HINT = ("install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or put the "
                "four IDX files in data/FashionMNIST/raw/ (torchvision downloads them there when online)")


def candidate_folders(root: str | None) -> list[Path]:
    """Every folder searched, in order (see the module docstring)."""
    named = explicit_root(root)
    bases = [named[0]] if named else [REPO_DATA]
    folders = [folder for base in bases for folder in (base / "FashionMNIST" / "raw", base)]
    return folders if named else folders + [DEBIAN_DIR]


def _named_folder(base: Path, named: str, download: bool) -> Path:
    """The folder of an explicit root that holds the four files, or one sentence: the root does
    not exist, is not a folder, holds only some of them, or none (and no download)."""
    check_root(base, named)
    folders = candidate_folders(str(base))
    found = complete_folder(folders)
    if found is not None:
        return found
    partial = next((f for f in folders if f.is_dir() and len(missing_stems(f)) < len(FILES)), None)
    if partial is not None:
        raise FileNotFoundError(f"Fashion-MNIST in {named} is incomplete: {partial} lacks "
                                f"{', '.join(missing_stems(partial))} (.gz or not); put all four IDX files there, "
                                f"or point {named} at a folder that holds them.")
    reason = "download=false"
    if download:
        import torchvision.datasets

        reason = try_download(lambda: torchvision.datasets.FashionMNIST(root=str(base), train=True,
                                                                        download=True)) or reason
        found = complete_folder(folders)
        if found is not None:
            return found
    raise FileNotFoundError(f"Fashion-MNIST not found in {named} {base} (looked in {folders[0]} and {base}; "
                            f"download not possible: {reason}); put the four IDX files there, or {INSTALL_HINT} "
                            f"and drop {named} to use that copy.")


def _locate(root: str | None, download: bool) -> Path:
    named = explicit_root(root)
    if named is not None:  # the only place read: never another copy in its stead
        return _named_folder(*named, download)
    folders = candidate_folders(None)
    found = complete_folder(folders)
    if found is not None:
        return found
    reason = "download=false"
    if download:
        import torchvision.datasets

        reason = try_download(lambda: torchvision.datasets.FashionMNIST(
            root=str(REPO_DATA), train=True, download=True)) or reason
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
         subset_seed: int = 0, loader: str = "device", num_workers: int = 0, pad: int | None = None) -> ArrayData:
    """Fashion-MNIST as uint8 images (N, channels, image_size, image_size); `pad`: the crop's padding
    when augmented (None: image_size // 8, CIFAR's proportion)."""
    if channels not in (1, 3):
        raise ValueError(f"fashion_mnist channels must be 1 or 3, got {channels!r}.")
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"fashion_mnist image_size must be an integer >= 8, got {image_size!r}.")
    folder = _locate(root, download)
    arrays = read_split_arrays(folder, "Fashion-MNIST")
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
        loader=loader, num_workers=num_workers, pad=pad, source=str(folder))
