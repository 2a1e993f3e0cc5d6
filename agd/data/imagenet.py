"""ImageNet (ILSVRC2012) from an ImageFolder tree (docs/data.md).

    <root>/train/<class folder>/*.JPEG      <root>/val/<class folder>/*.JPEG

root = `data.root`, else the IMAGENET_PATH environment variable, else <DATA_DIR or repo data>/
imagenet. (The validation images must be sorted into class folders, as most ImageNet set-up
scripts do.) Train: RandomResizedCrop(224) + horizontal flip; test: resize 256, centre crop 224;
normalised with the ImageNet mean/std. The transforms end in uint8 tensors: normalisation runs
on the device, like the small sets, so a quarter of the bytes cross the PCIe bus.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from agd.data.files import resolve_root

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class ImageFolderData:
    """A dataset too large for memory: two torch Datasets yielding (uint8 C×H×W, label), served
    by a DataLoader with workers (agd.data.loader.make_loaders dispatches on this type)."""

    name: str
    train_set: Dataset
    test_set: Dataset
    num_classes: int
    input_shape: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pixel_scale: float = 255.0
    num_workers: int = 8

    @property
    def in_dim(self) -> int:
        return math.prod(self.input_shape)


def resolve_imagenet_root(root: str | None) -> Path:
    if root not in (None, ""):
        return Path(root).expanduser()
    if os.environ.get("IMAGENET_PATH"):
        return Path(os.environ["IMAGENET_PATH"]).expanduser()
    return resolve_root(None) / "imagenet"


def load(root: str | None = None, crop_size: int = 224, resize_size: int = 256,
         num_workers: int = 8) -> ImageFolderData:
    """Index the ImageFolder tree (no image is decoded here). crop_size/resize_size are the
    paper's 224/256; tests shrink them."""
    from torchvision import datasets, transforms

    if not 0 < crop_size <= resize_size:
        raise ValueError(f"imagenet needs 0 < crop_size <= resize_size, got {crop_size} and {resize_size}.")
    base = resolve_imagenet_root(root)
    for split in ("train", "val"):
        folder = base / split
        if not folder.is_dir() or not any(p.is_dir() for p in folder.iterdir()):
            raise FileNotFoundError(
                f"ImageNet not found: {folder}/ must hold one sub-folder of images per class; set "
                f"data.root or IMAGENET_PATH to the folder that contains train/ and val/ (ILSVRC2012 "
                f"cannot be downloaded automatically).")
    train_tf = transforms.Compose([transforms.RandomResizedCrop(crop_size), transforms.RandomHorizontalFlip(),
                                   transforms.PILToTensor()])
    test_tf = transforms.Compose([transforms.Resize(resize_size), transforms.CenterCrop(crop_size),
                                  transforms.PILToTensor()])
    train_set = datasets.ImageFolder(str(base / "train"), transform=train_tf)
    test_set = datasets.ImageFolder(str(base / "val"), transform=test_tf)
    if train_set.classes != test_set.classes:
        raise ValueError(f"ImageNet: {base}/train and {base}/val have different class folders "
                         f"({len(train_set.classes)} vs {len(test_set.classes)}).")
    return ImageFolderData(name="imagenet", train_set=train_set, test_set=test_set,
                           num_classes=len(train_set.classes), input_shape=(3, crop_size, crop_size),
                           mean=IMAGENET_MEAN, std=IMAGENET_STD, num_workers=num_workers)
