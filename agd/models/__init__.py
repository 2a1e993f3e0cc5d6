"""Architectures of PAPER.md §3, all bias-free (batch norm without affine parameters)."""

from agd.models.fcn import FCN
from agd.models.resnet_cifar import PreActResNet18, PreActResNet50
from agd.models.resnet_imagenet import ResNet50ImageNet
from agd.models.vgg import VGG16

__all__ = ["FCN", "PreActResNet18", "PreActResNet50", "ResNet50ImageNet", "VGG16"]
