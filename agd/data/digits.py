"""scikit-learn's digits: 1,797 real 8×8 handwritten digits, available offline.

As vectors (64 features) for FCNs, or upsampled to image_size×image_size with `channels`
copies for the mini-scale CNN runs that stand in for CIFAR.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from agd.data.base import ArrayData, channel_stats


def load(image_size: int = 8, channels: int = 1, test_size: int = 497, split_seed: int = 0,
         augment: bool = False, loader: str = "device", num_workers: int = 0) -> ArrayData:
    """Deterministic split (1,300 train / 497 test by default) fixed by `split_seed`."""
    from sklearn.datasets import load_digits

    if image_size < 8:
        raise ValueError(f"digits image_size must be >= 8 (the native size), got {image_size}.")
    if channels < 1:
        raise ValueError(f"digits channels must be >= 1, got {channels}.")
    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32)  # values 0..16
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    if not 0 < test_size < len(labels):
        raise ValueError(f"digits test_size must be between 1 and {len(labels) - 1}, got {test_size}.")
    # stored as uint8 pixels like every image set, so the same loader serves them all
    pixels = (images * (255.0 / 16.0)).round().unsqueeze(1)
    if image_size != 8:
        pixels = F.interpolate(pixels, size=(image_size, image_size), mode="bilinear",
                               align_corners=False).round().clamp(0, 255)
    pixels = pixels.to(torch.uint8).expand(-1, channels, -1, -1).contiguous()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(split_seed))
    test_idx, train_idx = order[:test_size], order[test_size:]
    mean, std = channel_stats(pixels[train_idx], 255.0)
    return ArrayData(
        name="digits",
        x_train=pixels[train_idx],
        y_train=labels[train_idx],
        x_test=pixels[test_idx],
        y_test=labels[test_idx],
        num_classes=10,
        mean=mean,
        std=std,
        pixel_scale=255.0,
        augment=augment,
        loader=loader,
        num_workers=num_workers,
    )
