"""The device loader's augmentation against torchvision's RandomCrop(32, padding=4) +
RandomHorizontalFlip, and the one-visit-per-epoch contract of both loaders (docs/data.md)."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import functional as TF

from agd.data import ArrayData, DeviceLoader, make_loaders
from agd.data.loader import random_crop_flip
from agd.data.torch_loader import crop_flip_transform

N = 8100  # 100 expected per cell of the 9×9 offset grid


def coordinate_images(n: int) -> torch.Tensor:
    """(n, 2, 32, 32) uint8: channel 0 holds row+1, channel 1 col+1 (1..32); padding reads 0."""
    rows = torch.arange(1, 33, dtype=torch.uint8)
    image = torch.stack([rows[:, None].expand(32, 32), rows[None, :].expand(32, 32)])
    return image.expand(n, -1, -1, -1).contiguous()


def decode(out: torch.Tensor):
    """Recover (dy, dx, flipped) of each crop from the coordinate channels. Output row 16 shows
    padded row dy+16 = original row dy+12, value dy+13 (never padding); likewise for columns, where
    a flip reverses the order, so output column 16 shows original column dx+11, value dx+12."""
    rowv = out[:, 0, 16, 16].long()
    colv = out[:, 1, 16, 16].long()
    flipped = out[:, 1, 16, 15] > out[:, 1, 16, 16]
    return rowv - 13, torch.where(flipped, colv - 12, colv - 13), flipped


def reference(image: torch.Tensor, dy: int, dx: int, flip: bool) -> torch.Tensor:
    """torchvision's functional ops: zero-pad 4, crop 32×32 at (dy, dx), mirror."""
    out = TF.crop(TF.pad(image, [4]), dy, dx, 32, 32)
    return TF.hflip(out) if flip else out


def check_distribution(outs: torch.Tensor, images: torch.Tensor):
    dy, dx, flipped = decode(outs)
    assert dy.min() >= 0 and dy.max() <= 8 and dx.min() >= 0 and dx.max() <= 8
    # every output is exactly the torchvision crop/flip it decodes to: padding is zero, no
    # interpolation, channels moved together
    for i in range(0, len(outs), 97):
        assert torch.equal(outs[i], reference(images[i], int(dy[i]), int(dx[i]), bool(flipped[i])))
    counts = torch.bincount(dy * 9 + dx, minlength=81).double()
    expected = len(outs) / 81
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    # 80 degrees of freedom: mean 80, sd 12.6; 135 is p ~ 1e-4. Offsets drawn from 0..7 (a
    # classic off-by-one) empty 17 cells and give chi2 > 1,000.
    assert chi2 < 135, f"crop offsets not uniform over 9×9: chi2 = {chi2:.1f}"
    # flips: p = 0.5, sd of the fraction 0.0056 at N = 8100; 4 sd
    assert abs(flipped.double().mean().item() - 0.5) < 0.023
    # flips independent of the offsets: about half of each row offset is flipped
    for value in range(9):
        share = flipped[dy == value].double().mean().item()
        assert abs(share - 0.5) < 0.1


def test_random_crop_flip_equals_torchvision_ops_exactly():
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    offsets = torch.tensor([[0, 0], [8, 8], [0, 8], [8, 0], [4, 4], [1, 7]])
    flips = torch.tensor([False, True, False, True, True, False])
    out = random_crop_flip(images, offsets, flips)
    for i in range(6):
        assert torch.equal(out[i], reference(images[i], *offsets[i].tolist(), bool(flips[i])))


def test_device_loader_augmentation_distribution():
    images = coordinate_images(N)
    # identity normalisation (mean 0, std 1, scale 1) so the loader hands back raw pixel values
    loader = DeviceLoader(images, torch.zeros(N, dtype=torch.long), N, mean=(0.0, 0.0), std=(1.0, 1.0),
                          pixel_scale=1.0, shuffle=True, augment=True, seed=3)
    out, _ = next(iter(loader))
    check_distribution(out.round().to(torch.uint8), images)


def test_torchvision_transform_reference_distribution():
    # the same statistics hold for torchvision's own transforms (the loader=torchvision option),
    # so the test above compares the device loader with what torchvision does
    images = coordinate_images(N)
    transform = crop_flip_transform(32)
    torch.manual_seed(0)
    out = torch.stack([transform(im) for im in images])
    check_distribution(out, images)


def test_unaugmented_loader_returns_the_images():
    images = coordinate_images(10)
    loader = DeviceLoader(images, torch.zeros(10, dtype=torch.long), 10, mean=(0.0, 0.0), std=(1.0, 1.0),
                          pixel_scale=1.0, shuffle=True, augment=False)
    out, _ = next(iter(loader))
    assert torch.equal(out, images.float())


def _data(n: int, loader: str) -> ArrayData:
    x = torch.zeros(n, 1, 8, 8, dtype=torch.uint8)
    return ArrayData(name="ids", x_train=x, y_train=torch.arange(n), x_test=x[:4], y_test=torch.arange(4),
                     num_classes=n, mean=(0.0,), std=(1.0,), augment=True, loader=loader)


def _epoch_labels(loader, epoch: int) -> list[int]:
    loader.set_epoch(epoch)
    return torch.cat([y for _, y in loader]).tolist()


@pytest.mark.parametrize("kind", ["device", "torchvision"])
def test_every_sample_once_per_epoch_seeded_by_epoch(kind):
    n = 103  # not a multiple of the batch: the last batch is short, nothing dropped
    train, _ = make_loaders(_data(n, kind), 10, seed=5, device="cpu")
    assert len(train) == 11
    first, second = _epoch_labels(train, 0), _epoch_labels(train, 1)
    assert sorted(first) == list(range(n)) and sorted(second) == list(range(n))
    assert first != second and first != list(range(n))
    assert _epoch_labels(train, 0) == first  # an epoch replays from (seed, epoch) alone
    other_seed, _ = make_loaders(_data(n, kind), 10, seed=6, device="cpu")
    assert _epoch_labels(other_seed, 0) != first


@pytest.mark.parametrize("kind, n", [("device", 103), ("torchvision", 100)])
def test_two_ranks_shard_a_permutation(kind, n):
    # the DataLoader path shards through a DistributedSampler, which pads to a multiple of the
    # ranks with repeats; n = 100 keeps the check exact there
    for epoch in (0, 3):
        shards = []
        for rank in (0, 1):
            train, _ = make_loaders(_data(n, kind), 10, seed=2, device="cpu", rank=rank, world_size=2)
            shards.append(_epoch_labels(train, epoch))
        assert not set(shards[0]) & set(shards[1])
        assert sorted(shards[0] + shards[1]) == list(range(n))
        assert abs(len(shards[0]) - len(shards[1])) <= len(train)


# ---- the crop's padding: CIFAR's proportion by default (image_size // 8), or a dataset's own ----

def coordinate_images_16(n: int) -> torch.Tensor:
    """(n, 2, 16, 16) uint8: channel 0 holds row+1, channel 1 col+1 (1..16); padding reads 0."""
    rows = torch.arange(1, 17, dtype=torch.uint8)
    image = torch.stack([rows[:, None].expand(16, 16), rows[None, :].expand(16, 16)])
    return image.expand(n, -1, -1, -1).contiguous()


def decode_16(out: torch.Tensor, pad: int):
    """(dy, dx) of each 16×16 crop made with `pad` pixels of padding: output row 8 shows padded row
    dy + 8 = original row dy + 8 - pad, value dy + 9 - pad (never padding for pad <= 4); a flip
    reverses the columns, so output column 8 then shows original column dx + 7 - pad."""
    rowv, colv = out[:, 0, 8, 8].long(), out[:, 1, 8, 8].long()
    flipped = out[:, 1, 8, 7] > out[:, 1, 8, 8]
    return rowv - 9 + pad, torch.where(flipped, colv - 8 + pad, colv - 9 + pad)


@pytest.mark.parametrize("pad, given", [(2, None), (4, 4), (2, 2)])
def test_crop_offsets_range_over_zero_to_twice_the_pad(pad, given):
    """At 16×16 the default padding is 2 (CIFAR's 4 at 32, in proportion): offsets 0..4 only; an
    explicit pad=4 gives 0..8. Every offset in the range occurs, none outside it."""
    n = 2000
    images = coordinate_images_16(n)
    loader = DeviceLoader(images, torch.zeros(n, dtype=torch.long), n, mean=(0.0, 0.0), std=(1.0, 1.0),
                          pixel_scale=1.0, shuffle=True, augment=True, seed=1, pad=given)
    assert loader.pad == pad
    out, _ = next(iter(loader))
    dy, dx = decode_16(out.round().to(torch.uint8), pad)
    assert sorted(set(dy.tolist())) == list(range(2 * pad + 1))
    assert sorted(set(dx.tolist())) == list(range(2 * pad + 1))


def test_the_padding_follows_the_dataset_into_both_loaders():
    x = torch.zeros(16, 3, 16, 16, dtype=torch.uint8)

    def data(pad, loader="device"):
        return ArrayData(name="p", x_train=x, y_train=torch.zeros(16, dtype=torch.long), x_test=x[:4],
                         y_test=torch.zeros(4, dtype=torch.long), num_classes=1, mean=(0.0,) * 3,
                         std=(1.0,) * 3, augment=True, loader=loader, pad=pad)

    assert make_loaders(data(None), 8, seed=0, device="cpu")[0].pad == 2  # 16 // 8
    assert make_loaders(data(4), 8, seed=0, device="cpu")[0].pad == 4
    assert crop_flip_transform(16).transforms[0].padding == 2
    assert crop_flip_transform(32).transforms[0].padding == 4
    train, _ = make_loaders(data(3, "torchvision"), 8, seed=0, device="cpu")
    assert train.loader.dataset.transform.transforms[0].padding == 3
    with pytest.raises(ValueError, match="pad must be a whole number of pixels"):
        data(-1)
