"""CIFAR-10 and CIFAR-100 from the official "python version" pickle files (docs/data.md).

    <root>/cifar-10-batches-py/data_batch_1 … data_batch_5, test_batch   (labels: b"labels")
    <root>/cifar-100-python/train, test                                   (labels: b"fine_labels")

Each file is a pickled dict whose b"data" is a uint8 array (N, 3072): 1,024 red, then green,
then blue values of a 32×32 image in row-major order, which reshapes directly to (N, 3, 32, 32).
These are pickles: only load files you obtained from the official source.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from agd.data.base import ArrayData
from agd.data.files import REPO_DATA, check_root, explicit_root, missing_files, try_download
from agd.data.idx import check_labels

# the standard normalisation (docs/data.md) (per channel, of pixel/255)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)

_LAYOUT = {
    # name: (folder, train files, test files, label key, classes, torchvision class, mean, std)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                "labels", 10, "CIFAR10", CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels", 100, "CIFAR100",
                 CIFAR100_MEAN, CIFAR100_STD),
}


def _read_batch(path: Path, label_key: str, classes: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{path} is not a readable CIFAR batch file ({type(err).__name__}: {err}); "
                         "replace it with the official one.") from err
    if not isinstance(entry, dict):
        raise ValueError(f"{path} is not a CIFAR batch (it holds a {type(entry).__name__}, not a dict).")
    # the official files were written by Python 2: keys come back as bytes
    entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
    if "data" not in entry or label_key not in entry:
        raise ValueError(f"{path} is not a CIFAR batch (expected keys 'data' and '{label_key}', found "
                         f"{sorted(entry)}).")
    data = np.asarray(entry["data"], dtype=np.uint8)
    labels = np.asarray(entry[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ValueError(f"{path}: data of shape {data.shape} with {len(labels)} labels is not CIFAR's "
                         "(N, 3072) layout.")
    check_labels(labels, classes, path, path.parent.name)
    return data.reshape(-1, 3, 32, 32), labels


def _directory(name: str, root, download: bool) -> Path:
    """The folder holding every file of the set: an explicit root must exist and be a folder, a
    partial set is refused (not downloaded over), and a download is tried only when none is there."""
    folder, train_files, test_files = _LAYOUT[name][:3]
    named = explicit_root(root)
    if named:
        check_root(*named)
    base = named[0] if named else REPO_DATA
    directory = base / folder
    files = train_files + test_files
    title = name.upper().replace("CIFAR", "CIFAR-")
    missing = missing_files(directory, files)
    if missing and len(missing) < len(files):
        raise FileNotFoundError(f"{title} in {directory}/ is incomplete: it lacks {', '.join(missing)}; extract "
                                "the whole official python version there, or point data.root / DATA_DIR at a "
                                f"folder whose {folder}/ holds every file.")
    reason = "download=false"
    if missing and download:
        import torchvision.datasets

        dataset_cls = getattr(torchvision.datasets, _LAYOUT[name][5])
        reason = try_download(lambda: dataset_cls(root=str(base), train=True, download=True)) or reason
        missing = missing_files(directory, files)
    if missing:
        raise FileNotFoundError(
            f"{title} not found: {directory / missing[0]} is missing; extract the official "
            f"python version (https://www.cs.toronto.edu/~kriz/cifar.html) into {base} so that {directory}/ "
            f"holds {', '.join(files)}, or point data.root / DATA_DIR at the folder that "
            f"holds {folder}/ (download not possible: {reason}).")
    return directory


def _load(name: str, root, download: bool, augment: bool, loader: str, num_workers: int,
          pad: int | None = None) -> ArrayData:
    folder, train_files, test_files, label_key, classes, tv_name, mean, std = _LAYOUT[name]
    directory = _directory(name, root, download)
    splits = []
    for files in (train_files, test_files):
        parts = [_read_batch(directory / f, label_key, classes) for f in files]
        splits.append((torch.from_numpy(np.concatenate([p[0] for p in parts])),
                       torch.from_numpy(np.concatenate([p[1] for p in parts]))))
    (x_train, y_train), (x_test, y_test) = splits
    return ArrayData(name=name, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                     num_classes=classes, mean=mean, std=std, pixel_scale=255.0, augment=augment,
                     loader=loader, num_workers=num_workers, pad=pad, source=str(directory))


def load_cifar10(root: str | None = None, download: bool = True, augment: bool = True,
                 loader: str = "device", num_workers: int = 0, pad: int | None = None) -> ArrayData:
    """CIFAR-10: 50,000 train / 10,000 test 32×32 RGB images, 10 classes. Training batches get
    random crop (pad 4 unless `pad` says otherwise) + horizontal flip when `augment` (docs/data.md)."""
    return _load("cifar10", root, download, augment, loader, num_workers, pad)


def load_cifar100(root: str | None = None, download: bool = True, augment: bool = True,
                  loader: str = "device", num_workers: int = 0, pad: int | None = None) -> ArrayData:
    """CIFAR-100 with its 100 fine labels; same augmentation as CIFAR-10 (docs/data.md)."""
    return _load("cifar100", root, download, augment, loader, num_workers, pad)
