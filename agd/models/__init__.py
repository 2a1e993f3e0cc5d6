"""The paper's architectures (docs/models.md): bias-free, batch norm without affine parameters.

Every model takes the keywords `input_shape` (the dataset's per-example shape: (C, H, W) for
images; the FCN also takes a flat (D,)) and `num_classes`, plus its own options, among them
`bias` (and, for the CNNs, `affine`): off by default, as in the paper."""

from agd.models.fcn import FCN
from agd.models.resnet_cifar import PreActResNet18, PreActResNet50
from agd.models.resnet_imagenet import ResNet50ImageNet
from agd.models.vgg import VGG16

__all__ = ["FCN", "PreActResNet18", "PreActResNet50", "ResNet50ImageNet", "VGG16"]
