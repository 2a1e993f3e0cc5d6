"""MNIST-1D (Greydanus, 2020): a real, offline 10-class set of 40-sample 1-D signals.

4,000 train / 1,000 test. FCNs overfit it as they overfit CIFAR-10 (train accuracy to 100%,
test well below), which makes it the offline stand-in for the paper's FCN figures.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from agd.data.base import ArrayData, channel_stats, preserved_global_rng


def load(seed: int = 42, num_samples: int = 5000, train_split: float = 0.8, loader: str = "device",
         num_workers: int = 0) -> ArrayData:
    """Generate MNIST-1D in memory (about 1 s). `seed` fixes the dataset itself; 42 is the
    package's default, so the default matches the published MNIST-1D."""
    raw = _generate(seed, num_samples, train_split)
    # copies, so no run can alter the cached arrays another run of the same sweep will get
    x_train = torch.tensor(raw["x"], dtype=torch.float32)
    x_test = torch.tensor(raw["x_test"], dtype=torch.float32)
    mean, std = channel_stats(x_train, 1.0)
    return ArrayData(
        name="mnist1d",
        x_train=x_train,
        y_train=torch.tensor(raw["y"], dtype=torch.long),
        x_test=x_test,
        y_test=torch.tensor(raw["y_test"], dtype=torch.long),
        num_classes=10,
        mean=mean,
        std=std,
        pixel_scale=1.0,
        loader=loader,
        num_workers=num_workers,
    )


@lru_cache(maxsize=4)
def _generate(seed: int, num_samples: int, train_split: float) -> dict:
    """make_dataset, memoised per process: a Hydra sweep runs its jobs in one process, and
    generation costs 1-15 s of pure Python (measured on a busy 2-core CPU) against well under a
    second of training for the small grid points of the mini figures."""
    # make_dataset is called directly: its download path has no timeout and the machines this
    # runs on are offline.
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed, args.num_samples, args.train_split = seed, num_samples, train_split
    with preserved_global_rng():  # make_dataset reseeds numpy and random globally
        return make_dataset(args)
