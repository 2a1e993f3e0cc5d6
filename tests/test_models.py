"""The CNNs of docs/models.md: output shapes, exact parameter counts, and one AGD step each."""

import re

import pytest
import torch

from agd import AGD, init_weights
from agd.models import FCN, VGG16, PreActResNet18, PreActResNet50, ResNet50ImageNet

# Expected parameter counts, derived by hand (k×k conv: c_in·c_out·k², Linear: in·out, no biases,
# BatchNorm(affine=False) holds none).
#
# VGG-16 CIFAR, conv weights over the layout 64,64,M,128,128,M,256×3,M,512×3,M,512×3,M:
#   3·64·9 = 1,728; 64·64·9 = 36,864; 64·128·9 = 73,728; 128·128·9 = 147,456; 128·256·9 = 294,912;
#   2 × 256·256·9 = 1,179,648; 256·512·9 = 1,179,648; 2 × 512·512·9 = 4,718,592;
#   3 × 512·512·9 = 7,077,888  →  convs 14,710,464;  + Linear 512·C.
#   The usual CIFAR VGG-16 with biases and affine BN has 14,728,266 for C=10: it adds the 4,224
#   conv biases (64·2+128·2+256·3+512·6 channels), 2·4,224 = 8,448 BN affine and 10 fc biases.
VGG16_CONVS = 14_710_464
# Pre-act ResNet-18 CIFAR: stem 3·64·9 = 1,728; stage1 4 × 64·64·9 = 147,456;
#   stage2 64·128·9 + 3 × 128·128·9 + 1×1 shortcut 64·128 = 73,728 + 442,368 + 8,192 = 524,288;
#   stage3 128·256·9 + 3 × 256·256·9 + 128·256 = 294,912 + 1,769,472 + 32,768 = 2,097,152;
#   stage4 256·512·9 + 3 × 512·512·9 + 256·512 = 1,179,648 + 7,077,888 + 131,072 = 8,388,608;
#   → 11,159,232 (= torchvision resnet18's 11,689,512 − fc 513,000 − BN affine 2·4,800 − its 7×7
#   stem 9,408 + the 3×3 stem 1,728), + Linear 512·C.
RESNET18_CONVS = 11_159_232
# Pre-act ResNet-50 CIFAR (bottleneck: in·w + 9w² + 4w², shortcut in·4w on the first block):
#   stem 1,728; stage1 73,728 + 2 × 69,632 = 212,992; stage2 376,832 + 3 × 278,528 = 1,212,416;
#   stage3 1,507,328 + 5 × 1,114,112 = 7,077,888; stage4 6,029,312 + 2 × 4,456,448 = 14,942,208
#   → 23,447,232, + Linear 2048·C.
RESNET50_CONVS = 23_447_232
# ResNet-50 ImageNet: torchvision resnet50 has 25,557,032 parameters. Minus the fc bias (1,000)
# and the BN affine parameters, 2 per BN channel: BN channels = stem 64
#   + stage1 3·(64+64+256) + 256 = 1,408 + stage2 4·(128+128+512) + 512 = 3,584
#   + stage3 6·(256+256+1024) + 1,024 = 10,240 + stage4 3·(512+512+2048) + 2,048 = 11,264
#   = 26,560 → 53,120 affine.  25,557,032 − 1,000 − 53,120 = 25,502,912.
RESNET50_IMAGENET = 25_502_912


def count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("make, classes, expected", [
    (VGG16, 10, VGG16_CONVS + 512 * 10),            # 14,715,584
    (VGG16, 100, VGG16_CONVS + 512 * 100),          # 14,761,664
    (PreActResNet18, 10, RESNET18_CONVS + 512 * 10),   # 11,164,352
    (PreActResNet18, 100, RESNET18_CONVS + 512 * 100),  # 11,210,432
    (PreActResNet50, 10, RESNET50_CONVS + 2048 * 10),  # 23,467,712
    (ResNet50ImageNet, 1000, RESNET50_IMAGENET),
])
def test_parameter_counts(make, classes, expected):
    model = make(num_classes=classes)
    assert count(model) == expected
    # bias-free and affine-free: every parameter is a matrix or a conv kernel
    assert all(p.dim() in (2, 4) for p in model.parameters())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) and m.affine for m in model.modules())


def _conv_and_linear_counts(model):
    convs = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    linears = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return convs, linears


@pytest.mark.parametrize("make, convs, fc_in", [
    (VGG16, VGG16_CONVS, 512), (PreActResNet18, RESNET18_CONVS, 512), (PreActResNet50, RESNET50_CONVS, 2048)])
def test_conv_weights_match_the_hand_sums_component_by_component(make, convs, fc_in):
    # the conv total and the classifier separately, so a slip in one cannot be offset by the other
    assert _conv_and_linear_counts(make(num_classes=10)) == (convs, fc_in * 10)


def test_the_depth_and_weights_table_of_docs_models_md():
    # docs/models.md: weights and L (the tensors AGD counts) for the paper's configurations
    cifar10, cifar100 = dict(input_shape=(3, 32, 32), num_classes=10), dict(input_shape=(3, 32, 32), num_classes=100)
    cases = [(FCN(depth=8, width=256, **cifar10), 1_182_208, 8), (FCN(depth=16, width=512, **cifar10), 5_248_000, 16),
             (VGG16(**cifar100), 14_761_664, 14), (PreActResNet18(**cifar10), 11_164_352, 21),
             (PreActResNet50(**cifar10), 23_467_712, 54), (ResNet50ImageNet(), 25_502_912, 54)]
    for model, weights, depth in cases:
        assert (count(model), AGD(model).depth) == (weights, depth), type(model).__name__


# Beyond the paper: bias=True adds one bias per conv/linear output channel, affine=True two
# parameters per BatchNorm channel.
#   VGG-16: conv output channels 4,224 (above) + fc C; BN channels 4,224.
#   Pre-act ResNet-18: conv output channels = torchvision resnet18's BN channels, 4,800, + fc C;
#     BN channels bn1 (block input) + bn2 per block: (64+64)·2 + (64+128) + (128+128)
#     + (128+256) + (256+256) + (256+512) + (512+512) = 3,392.
#   Pre-act ResNet-50: conv output channels = ResNet-50 ImageNet's BN channels, 26,560, + fc C;
#     BN channels bn1 (block input) + bn2 + bn3: stage1 (64+128) + 2·(256+128) = 960,
#     stage2 (256+256) + 3·(512+256) = 2,816, stage3 (512+512) + 5·(1024+512) = 8,704,
#     stage4 (1024+1024) + 2·(2048+1024) = 8,192  →  20,672.
#   ResNet-50 ImageNet: conv output channels 26,560 + fc 1,000; BN channels 26,560.
@pytest.mark.parametrize("make, classes, base, biases, bn_channels", [
    (VGG16, 10, 14_715_584, 4_224 + 10, 4_224),
    (PreActResNet18, 10, 11_164_352, 4_800 + 10, 3_392),
    (PreActResNet50, 10, 23_467_712, 26_560 + 10, 20_672),
    (ResNet50ImageNet, 1000, RESNET50_IMAGENET, 26_560 + 1000, 26_560),
])
def test_bias_and_affine_options_add_exactly_their_parameters(make, classes, base, biases, bn_channels):
    assert count(make(num_classes=classes, bias=False, affine=False)) == base
    assert count(make(num_classes=classes, bias=True)) == base + biases
    assert count(make(num_classes=classes, affine=True)) == base + 2 * bn_channels
    both = make(num_classes=classes, bias=True, affine=True)
    assert count(both) == base + biases + 2 * bn_channels
    assert sum(p.numel() for p in both.parameters() if p.dim() == 1) == biases + 2 * bn_channels
    assert all(m.bias is not None for m in both.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))


def test_option_counts_match_the_usual_models():
    # VGG-16 with both options is the usual CIFAR VGG-16 (14,728,266 parameters for 10 classes);
    # ResNet-50 ImageNet with affine BN is torchvision's resnet50 (25,557,032) less its fc bias
    assert count(VGG16(num_classes=10, bias=True, affine=True)) == 14_728_266
    torchvision = pytest.importorskip("torchvision")
    assert count(ResNet50ImageNet(affine=True)) == count(torchvision.models.resnet50()) - 1_000 == 25_556_032


def test_resnet50_imagenet_with_affine_loads_torchvision_weights():
    torchvision = pytest.importorskip("torchvision")
    state = torchvision.models.resnet50().state_dict()
    del state["fc.bias"]
    model = ResNet50ImageNet(affine=True)
    model.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 64, 64)
    reference = torchvision.models.resnet50()
    reference.load_state_dict({**state, "fc.bias": torch.zeros(1000)})
    torch.testing.assert_close(model.eval()(x), reference.eval()(x))


def test_fcn_bias_option():
    # depth 4, width 16, 12 inputs, 5 classes: weights 12·16 + 2·16·16 + 16·5 = 784, biases 3·16 + 5 = 53
    assert count(FCN(depth=4, width=16, input_shape=(12,), num_classes=5)) == 784
    model = FCN(depth=4, width=16, input_shape=(3, 2, 2), num_classes=5, bias=True)
    assert count(model) == 784 + 53
    assert model(torch.randn(2, 3, 2, 2)).shape == (2, 5)


@pytest.mark.parametrize("make, key", [(VGG16, "bias"), (PreActResNet18, "affine"), (FCN, "bias")])
def test_options_must_be_booleans(make, key):
    extra = {"depth": 2, "width": 4, "input_shape": (3,), "num_classes": 2} if make is FCN else {}
    with pytest.raises(ValueError, match=f"{make.__name__} {key} must be true or false, got 'yes'"):
        make(**extra, **{key: "yes"})


def test_mnist_channels_change_only_the_stem():
    # 1-channel input: the stem loses 2·64·9 weights (3×3) or 2·64·49 (7×7)
    assert count(VGG16(input_shape=(1, 28, 28), num_classes=10)) == 14_715_584 - 2 * 64 * 9
    assert count(PreActResNet18(input_shape=(1, 28, 28), num_classes=10)) == 11_164_352 - 2 * 64 * 9
    assert count(ResNet50ImageNet(input_shape=(1, 64, 64))) == RESNET50_IMAGENET - 2 * 64 * 49


@pytest.mark.parametrize("make", [FCN, VGG16, PreActResNet18, PreActResNet50, ResNet50ImageNet])
def test_every_model_takes_input_shape_and_num_classes(make):
    # the uniform constructor arguments every config's model is built with
    options = {"depth": 2, "width": 4} if make is FCN else {"width": 4}
    model = make(input_shape=(3, 16, 12), num_classes=7, **options)
    assert model(torch.randn(2, 3, 16, 12)).shape == (2, 7)
    first = next(m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))
    assert first.weight.shape[1] == (3 * 16 * 12 if make is FCN else 3)


def test_fcn_takes_a_flat_input_shape():
    assert FCN(depth=2, width=4, input_shape=(40,), num_classes=3)(torch.randn(5, 40)).shape == (5, 3)


@pytest.mark.parametrize("make, kwargs, words", [
    (VGG16, {"input_shape": (32, 32)}, "VGG16 input_shape must be (channels, height, width)"),
    (PreActResNet18, {"input_shape": (3, 0, 32)}, "PreActResNet18 input_shape must be"),
    (ResNet50ImageNet, {"num_classes": 0}, "ResNet50ImageNet num_classes must be an integer >= 1"),
    (PreActResNet50, {"width": 2.5}, "PreActResNet50 width must be an integer >= 1"),
    (FCN, {"depth": 3, "width": 4, "input_shape": (3, -1), "num_classes": 2}, "FCN input_shape must be"),
])
def test_bad_model_arguments_name_the_model_and_the_key(make, kwargs, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        make(**kwargs)


@pytest.mark.parametrize("make, classes, shape", [
    (VGG16, 10, (2, 1, 28, 28)),            # MNIST: ceil-mode pools end at 1×1
    (PreActResNet18, 10, (2, 1, 28, 28)),   # MNIST: 28→28/14/7/4, pooled to 1×1
])
def test_mnist_shapes(make, classes, shape):
    model = make(input_shape=shape[1:], num_classes=classes)
    assert model(torch.randn(shape)).shape == (shape[0], classes)


def test_resnet50_imagenet_matches_torchvision_names_and_shapes():
    torchvision = pytest.importorskip("torchvision")
    reference = torchvision.models.resnet50()
    kept = {k: v for k, v in reference.state_dict().items()
            if not (k.endswith(".bias") or (k.endswith(".weight") and v.dim() == 1))}
    # strict load: same module names and tensor shapes, minus biases and BN affine weights
    ResNet50ImageNet().load_state_dict(kept, strict=True)


def _agd_step(model, shape, classes):
    opt = AGD(model.parameters())
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(shape), torch.randint(0, classes, (shape[0],))
    out = model(x)
    assert out.shape == (shape[0], classes)
    torch.nn.functional.cross_entropy(out, y).backward()
    eta = opt.step()
    assert torch.isfinite(eta) and eta > 0
    moved = [not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True)]
    assert all(moved), f"{moved.count(False)} weight tensors did not move"
    assert opt.depth == len(before)


CASES = [
    (VGG16, 100, (2, 3, 32, 32)),
    (PreActResNet18, 10, (2, 3, 32, 32)),
    (PreActResNet50, 100, (2, 3, 16, 16)),  # 16×16: a quarter of the FLOPs, same weights
    (ResNet50ImageNet, 7, (2, 3, 32, 32)),  # small input keeps it fast; the layout is size-free
]


@pytest.mark.parametrize("make, classes, shape", CASES)
def test_agd_steps_every_weight(make, classes, shape):
    # AGD's step does not depend on how the weights were initialised; the paper's init of these
    # nets (one QR per kernel position of every layer) is in the slow test below.
    torch.manual_seed(0)
    _agd_step(make(input_shape=shape[1:], num_classes=classes), shape, classes)


@pytest.mark.slow
@pytest.mark.parametrize("make, classes, shape", CASES)
def test_agd_steps_after_paper_init(make, classes, shape):
    torch.manual_seed(0)
    model = init_weights(make(input_shape=shape[1:], num_classes=classes), torch.Generator().manual_seed(0))
    conv = next(p for p in model.parameters() if p.dim() == 4 and p.shape[0] == p.shape[1])
    # every kernel position of a square conv is orthogonal times sqrt(1)/sqrt(kx·ky)
    block = conv[:, :, 0, 0] * (conv.shape[2] * conv.shape[3]) ** 0.5
    torch.testing.assert_close(block @ block.T, torch.eye(conv.shape[0]), atol=1e-4, rtol=0)
    _agd_step(model, shape, classes)
