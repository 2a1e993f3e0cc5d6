"""VGG-16 for CIFAR (docs/models.md): bias-free convs, batch norm without affine parameters."""

from __future__ import annotations

import torch
from torch import nn

from agd.models.common import cnn_arguments

# channels of each Conv3x3 -> BN -> ReLU stage; "M" is a 2x2 max-pool (docs/models.md)
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nn.Module):
    """13 Conv3x3(pad 1) → BatchNorm2d(affine=False) → ReLU, five max-pools, Linear(512→C).

    On 32×32 inputs the five pools leave 1×1×512, which is flattened into the classifier, as in
    the paper. Two choices make other input sizes work without changing the 32×32 network: the
    pools round up (ceil_mode), so a 28×28 MNIST image ends at 1×1 instead of failing on the
    fifth pool, and a global average pool (the identity on a 1×1 map) precedes the classifier.

    Beyond the paper, off by default: `bias=True` gives every conv and the linear layer a bias,
    `affine=True` gives every BatchNorm its scale and shift.
    """

    def __init__(self, *, input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10,
                 width: int = 64, bias: bool = False, affine: bool = False):
        # width: channels of the first stage (64 in the paper); every stage scales with it.
        # Smaller values exist only for the CPU-sized mini experiments (conf/scale/).
        super().__init__()
        channels = cnn_arguments("VGG16", input_shape, num_classes, width, bias, affine)
        layers: list[nn.Module] = []
        for item in VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            else:
                item = item * width // 64
                layers += [nn.Conv2d(channels, item, 3, padding=1, bias=bias),
                           nn.BatchNorm2d(item, affine=affine), nn.ReLU(inplace=True)]
                channels = item
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))
