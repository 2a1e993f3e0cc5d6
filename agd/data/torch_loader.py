"""DataLoader-based loaders: ImageNet (always) and, on request (`data.loader=torchvision`), the
small in-memory sets with torchvision's per-sample transforms.

`EpochDataLoader` gives a DataLoader the interface agd.train expects of DeviceLoader: `len()`,
`set_epoch(epoch)`, and iteration over normalised (x, y) batches already on the device. The
datasets yield uint8 images; the wrapper moves them (pinned, non-blocking on CUDA) and
normalises on the device.

Order: the shuffle (and, with workers, each worker's transform seed) is drawn from a generator
reseeded from (seed, epoch) in `set_epoch`, so an epoch's order depends only on the seed and the
epoch number, as with DeviceLoader. With num_workers=0 the transforms draw from the main
process's global torch RNG, which the pipeline seeds and checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from agd.data.loader import crop_pad, epoch_generator


class EpochDataLoader:
    def __init__(self, dataset: Dataset, batch_size: int, *, mean: tuple[float, ...],
                 std: tuple[float, ...], pixel_scale: float = 255.0, shuffle: bool = False,
                 seed: int = 0, device: torch.device | str = "cpu", num_workers: int = 0,
                 sampler: Sampler | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}.")
        self.device = torch.device(device)
        self.seed, self.epoch, self.sampler = seed, 0, sampler
        self.generator = torch.Generator()
        # The sampler hook: a DistributedSampler (agd.distributed.make_sampler) replaces the
        # shuffle and gives this rank its share; it is told the epoch in set_epoch.
        self.loader = DataLoader(
            dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
            num_workers=num_workers, pin_memory=self.device.type == "cuda", generator=self.generator,
            # fresh workers each epoch take their seeds from the reseeded generator
            persistent_workers=False, drop_last=False)
        self.set_epoch(0)
        self.mean, self.std, self.pixel_scale = mean, std, pixel_scale
        self._mul = self._add = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.generator.manual_seed(epoch_generator(self.seed, epoch).initial_seed())
        if self.sampler is not None and hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def num_samples(self) -> int:
        return len(self.loader.dataset)

    def _normaliser(self, ndim: int):
        if self._mul is None or self._mul.dim() != ndim:
            shape = (1, -1) + (1,) * (ndim - 2)
            std = torch.tensor(self.std, dtype=torch.float32, device=self.device).reshape(shape)
            mean = torch.tensor(self.mean, dtype=torch.float32, device=self.device).reshape(shape)
            self._mul, self._add = 1.0 / (self.pixel_scale * std), -mean / std
        return self._mul, self._add

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        non_blocking = self.device.type == "cuda"
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=non_blocking)
            mul, add = self._normaliser(x.dim())
            yield torch.addcmul(add, x.float(), mul), y.to(self.device, non_blocking=non_blocking)


class TransformedTensors(Dataset):
    """(transform(x[i]), y[i]) over in-memory tensors: the torchvision per-sample pipeline."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform=None):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int):
        x = self.x[index]
        return (self.transform(x) if self.transform is not None else x), self.y[index]


def crop_flip_transform(image_size: int, pad: int | None = None):
    """The CIFAR augmentation of docs/data.md as torchvision's per-sample transforms (zero padding
    of `pad` pixels; None: image_size // 8, CIFAR's proportion, as agd.data.loader)."""
    from torchvision import transforms

    return transforms.Compose([transforms.RandomCrop(image_size, padding=crop_pad(pad, image_size)),
                               transforms.RandomHorizontalFlip()])


def make_dataloaders(data, batch_size: int, *, seed: int, device, rank: int = 0, world_size: int = 1,
                     eval_batch_size: int = 1000, train_sampler: Sampler | None = None,
                     test_sampler: Sampler | None = None) -> tuple[EpochDataLoader, EpochDataLoader]:
    """Train and test EpochDataLoaders for an ArrayData (per-sample torchvision transforms) or an
    ImageFolderData (ImageNet). With world_size > 1 each rank loads batch_size / world_size
    samples per step through a DistributedSampler (agd.distributed.make_sampler) unless a sampler
    is passed in."""
    from agd.data.base import ArrayData

    if isinstance(data, ArrayData):
        transform = crop_flip_transform(data.x_train.shape[-1], data.pad) if data.augment else None
        train_set = TransformedTensors(data.x_train, data.y_train, transform)
        test_set = TransformedTensors(data.x_test, data.y_test)
    else:
        train_set, test_set = data.train_set, data.test_set
        # decoded full-size images: evaluate at the training batch size, not the small sets' 1000
        eval_batch_size = batch_size
    if world_size > 1:
        from agd.distributed import DistEnv, local_batch_size, make_sampler

        env = DistEnv(rank=rank, world_size=world_size)
        if train_sampler is None:
            train_sampler = make_sampler(train_set, env, shuffle=True, seed=seed)
        if test_sampler is None:
            test_sampler = make_sampler(test_set, env, shuffle=False, seed=seed)
        batch_size = local_batch_size(batch_size, env)
        eval_batch_size = max(1, eval_batch_size // world_size)
    common = dict(mean=data.mean, std=data.std, pixel_scale=data.pixel_scale, device=device,
                  num_workers=data.num_workers)
    train = EpochDataLoader(train_set, batch_size, shuffle=True, seed=seed, sampler=train_sampler, **common)
    test = EpochDataLoader(test_set, eval_batch_size, shuffle=False, seed=seed, sampler=test_sampler,
                           **common)
    return train, test
