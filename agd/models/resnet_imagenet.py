"""ResNet-50 for ImageNet in torchvision's layout (docs/models.md), with bias=False and
affine=False everywhere.

Layout of torchvision.models.resnet50 (post-activation, "ResNet v1.5": the stride sits on the
3×3 conv of a bottleneck): 7×7 stride-2 stem → BN → ReLU → 3×3 stride-2 max-pool, stages of
[3, 4, 6, 3] bottlenecks (widths 64/128/256/512, output 4× width), global average pool,
Linear(2048 → C). Module names follow torchvision (conv1, bn1, layer1..4, downsample, fc), so a
torchvision state dict loads after dropping its biases and BN affine parameters (or, with
`affine=True`, after dropping only the fc bias).

Beyond the paper, off by default: `bias=True` gives every conv and the linear layer a bias,
`affine=True` gives every BatchNorm its scale and shift.
"""

from __future__ import annotations

import torch
from torch import nn

from agd.models.common import cnn_arguments, residual_stages


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, bias: bool = False, affine: bool = False):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=bias)
        self.bn1 = nn.BatchNorm2d(planes, affine=affine)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=bias)
        self.bn2 = nn.BatchNorm2d(planes, affine=affine)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=bias)
        self.bn3 = nn.BatchNorm2d(out_planes, affine=affine)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_planes != out_planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=bias),
                nn.BatchNorm2d(out_planes, affine=affine))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.downsample(x) if self.downsample is not None else x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + skip)


class ResNet50ImageNet(nn.Module):
    def __init__(self, *, input_shape: tuple[int, int, int] = (3, 224, 224), num_classes: int = 1000,
                 width: int = 64, bias: bool = False, affine: bool = False):
        # width: stem/first-stage width (64 in the paper); stages keep the ratios 1:2:4:8.
        # Smaller values exist only for the CPU-sized mini experiments (conf/scale/).
        super().__init__()
        in_channels = cnn_arguments("ResNet50ImageNet", input_shape, num_classes, width, bias, affine)
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=bias)
        self.bn1 = nn.BatchNorm2d(width, affine=affine)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages, in_planes = residual_stages(Bottleneck, (3, 4, 6, 3), width, bias, affine)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))
