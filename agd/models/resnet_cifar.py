"""Pre-activation ResNet-18 and ResNet-50 for CIFAR (docs/models.md), bias-free, affine-free BN.

Pre-activation (He et al., 2016, "Identity mappings in deep residual networks"): every residual
branch is BN → ReLU → conv, and the skip path is the identity, or a 1×1 conv (taken from the
pre-activated input) where the shape changes. Layout: 3×3 stem conv with 64 channels and stride
1, four stages of widths 64/128/256/512 (strides 1, 2, 2, 2), then straight to the average pool
over the 4×4 map and Linear → C. There is no BN → ReLU after the last stage: the authors'
network, which produced the published numbers, has none (unlike some pre-activation ResNets).

Beyond the paper, off by default: `bias=True` gives every conv and the linear layer a bias,
`affine=True` gives every BatchNorm its scale and shift.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from agd.models.common import cnn_arguments, residual_stages


class PreActBasicBlock(nn.Module):
    """BN-ReLU-conv3x3, BN-ReLU-conv3x3; output channels = planes."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, bias: bool = False, affine: bool = False):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes, affine=affine)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=bias)
        self.bn2 = nn.BatchNorm2d(planes, affine=affine)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=bias)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        skip = self.shortcut(pre) if self.shortcut is not None else x
        out = self.conv1(pre)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + skip


class PreActBottleneck(nn.Module):
    """BN-ReLU-conv1x1 (→planes), BN-ReLU-conv3x3 (stride), BN-ReLU-conv1x1 (→4·planes)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, bias: bool = False, affine: bool = False):
        super().__init__()
        out_planes = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(in_planes, affine=affine)
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=bias)
        self.bn2 = nn.BatchNorm2d(planes, affine=affine)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=bias)
        self.bn3 = nn.BatchNorm2d(planes, affine=affine)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=bias)
        self.shortcut = None
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        skip = self.shortcut(pre) if self.shortcut is not None else x
        out = self.conv1(pre)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + skip


class PreActResNet(nn.Module):
    """CIFAR pre-activation ResNet; `blocks` per stage, widths 64/128/256/512.

    `width` (default 64, the paper's) is the stem/first-stage width; the stages keep the ratios
    1:2:4:8. Smaller values exist only for the CPU-sized mini experiments (conf/scale/).
    """

    def __init__(self, block: type[nn.Module], blocks: tuple[int, int, int, int], *,
                 input_shape: tuple[int, int, int], num_classes: int, width: int, bias: bool, affine: bool):
        super().__init__()
        in_channels = cnn_arguments(type(self).__name__, input_shape, num_classes, width, bias, affine)
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1, bias=bias)
        stages, in_planes = residual_stages(block, blocks, width, bias, affine)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(in_planes, num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stem(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        # no BN/ReLU here (see the module docstring); the paper's avg-pool 4 on the 4×4 map of a
        # 32×32 input, adaptive so that 28×28 MNIST works too
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


class PreActResNet18(PreActResNet):
    def __init__(self, *, input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10,
                 width: int = 64, bias: bool = False, affine: bool = False):
        super().__init__(PreActBasicBlock, (2, 2, 2, 2), input_shape=input_shape, num_classes=num_classes,
                         width=width, bias=bias, affine=affine)


class PreActResNet50(PreActResNet):
    def __init__(self, *, input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10,
                 width: int = 64, bias: bool = False, affine: bool = False):
        super().__init__(PreActBottleneck, (3, 4, 6, 3), input_shape=input_shape, num_classes=num_classes,
                         width=width, bias=bias, affine=affine)
