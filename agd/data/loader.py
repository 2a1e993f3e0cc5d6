"""A device-resident loader for datasets that fit in memory (airbench-style).

The raw tensors (uint8 images or float features) are moved to the device once. Each epoch draws
a permutation from a generator seeded by (seed, epoch), so an epoch's batches depend only on the
seed and the epoch number: resuming at epoch k replays exactly what an uninterrupted run sees.
Augmentation (random crop with `pad` zero pixels of padding, horizontal flip with p = 0.5, each
per sample, as torchvision's RandomCrop(size, padding=pad) + RandomHorizontalFlip) runs per batch
on the device, on raw pixels before normalisation, so padding is black like torchvision's. The
padding keeps CIFAR's proportion unless a dataset says otherwise (docs/data.md): 4 pixels at 32,
so image_size // 8 (2 at 16: the same shift relative to the image as CIFAR's).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

PAD = 4  # CIFAR's zero padding before the random crop, in pixels at 32×32 (docs/data.md)


def default_pad(image_size: int) -> int:
    """CIFAR's padding in proportion to the image: 4 px at 32 (1/8 of the side), 2 at 16, 3 at 28."""
    return image_size * PAD // 32


def crop_pad(pad: int | None, image_size: int) -> int:
    """The padding a loader uses: `pad` when given (an integer >= 0), else default_pad."""
    if pad is None:
        return default_pad(image_size)
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(f"data.pad must be a whole number of pixels >= 0 (or null for image_size // 8), got {pad!r}.")
    return pad


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # distinct, reproducible streams per (seed, epoch); large odd multiplier avoids collisions
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def random_crop_flip(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor,
                     pad: int | None = None) -> torch.Tensor:
    """Crop each image of x (N, C, H, W) at offsets (N, 2) in [0, 2·pad] from its copy padded
    with `pad` zeros (default_pad of its width when None), then mirror the rows where flips (N,)
    is True. No Python loop over N: one gather of each image's H·W source pixels from its
    flattened padded copy (2.7-5x faster on a CPU than 4-way advanced indexing, which broadcasts
    four index tensors to N×C×H×W)."""
    n, c, h, w = x.shape
    pad = crop_pad(pad, w)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    padded_width = w + 2 * pad
    rows = offsets[:, 0, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = offsets[:, 1, None] + torch.arange(w, device=x.device)  # (N, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    index = (rows[:, :, None] * padded_width + cols[:, None, :]).reshape(n, 1, h * w)
    pixels = torch.gather(padded.reshape(n, c, -1), 2, index.expand(n, c, h * w))
    return pixels.reshape(n, c, h, w)


class DeviceLoader:
    """Iterate (inputs, labels) mini-batches of a whole in-memory dataset on `device`.

    With world_size > 1 every rank walks the same global permutation and keeps its own slice of
    each global batch, so the global batch is `batch_size` whatever the number of ranks.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *,
                 mean: tuple[float, ...], std: tuple[float, ...], pixel_scale: float = 255.0,
                 shuffle: bool = False, augment: bool = False, seed: int = 0,
                 device: torch.device | str = "cpu", rank: int = 0, world_size: int = 1, pad: int | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if augment and x.dim() != 4:
            raise ValueError("augmentation needs images (N, C, H, W); got shape "
                             f"{tuple(x.shape)}.")
        if batch_size < world_size:
            raise ValueError(f"batch_size {batch_size} is smaller than the {world_size} ranks.")
        self.device = torch.device(device)
        self.x = x.to(self.device)
        self.y = y.to(self.device)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        # normalise as ((x / pixel_scale) - mean) / std == x * a + b, one fused multiply-add
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).reshape(shape)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device).reshape(shape)
        self.mul = 1.0 / (pixel_scale * std_t)
        self.add = -mean_t / std_t
        self.batch_size = batch_size
        self.shuffle, self.augment, self.seed = shuffle, augment, seed
        self.pad = crop_pad(pad, x.shape[-1]) if augment else None  # pixels, see default_pad
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.x)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.add, x.float(), self.mul)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.x)
        gen = epoch_generator(self.seed, self.epoch)
        # drawn on the CPU generator and moved once per epoch: no per-batch host traffic
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        if self.augment:
            offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=gen).to(self.device)
            flips = (torch.rand(n, generator=gen) < 0.5).to(self.device)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size][self.rank::self.world_size]
            x = self.x[idx]
            if self.augment:
                x = random_crop_flip(x, offsets[idx], flips[idx], self.pad)
            yield self.normalise(x), self.y[idx]


def make_loaders(data, batch_size: int, *, seed: int, device, rank: int = 0, world_size: int = 1,
                 eval_batch_size: int = 1000, train_sampler=None, test_sampler=None):
    """Training loader (shuffled, augmented if the dataset asks) and test loader.

    A dataset with its own `make_loaders` method (agd.data.text.TokenData) builds its pair itself.

    An ArrayData with loader="device" (the default for every small set) gets a DeviceLoader
    pair; an ArrayData with loader="torchvision", or a dataset too large for memory (ImageNet's
    ImageFolderData), gets a DataLoader pair (agd.data.torch_loader), where `train_sampler` /
    `test_sampler` replace the default shuffling / DistributedSampler.
    """
    from agd.data.base import ArrayData

    own_loaders = getattr(data, "make_loaders", None)
    if callable(own_loaders):  # a dataset that serves itself (agd.data.text: token windows)
        return own_loaders(batch_size, seed=seed, device=device, rank=rank, world_size=world_size,
                           eval_batch_size=eval_batch_size)
    if not (isinstance(data, ArrayData) and data.loader == "device"):
        from agd.data.torch_loader import make_dataloaders

        return make_dataloaders(data, batch_size, seed=seed, device=device, rank=rank,
                                world_size=world_size, eval_batch_size=eval_batch_size,
                                train_sampler=train_sampler, test_sampler=test_sampler)
    common = dict(mean=data.mean, std=data.std, pixel_scale=data.pixel_scale, device=device,
                  rank=rank, world_size=world_size)
    train = DeviceLoader(data.x_train, data.y_train, batch_size, shuffle=True,
                         augment=data.augment, seed=seed, pad=data.pad, **common)
    test = DeviceLoader(data.x_test, data.y_test, max(eval_batch_size, world_size), **common)
    return train, test
