"""Every model's computation, op by op, against the architecture written out in docs/models.md.

Parameter counts cannot see an op without parameters (a ReLU, or a BatchNorm without affine
parameters) in the wrong place. These tests trace each model with torch.fx, propagate a real
input through the trace to get every op's output shape, and compare the whole graph (layer
types, channels, kernels, strides, paddings, bias/affine, functional ReLUs, the √2 scaling,
pools, residual additions and which tensor each op reads) with a graph built by hand from the
description. Both graphs are put in one canonical op order first, so that the comparison does
not depend on the order in which the code happens to compute independent branches.
"""

from __future__ import annotations

import difflib
import math
import operator

import pytest
import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.nn import functional as F

from agd.models import FCN, VGG16, PreActResNet18, PreActResNet50, ResNet50ImageNet

SQRT2 = round(math.sqrt(2.0), 6)


# ---------------------------------------------------------------- the expected graph, by hand

class Spec:
    """A graph written from the description: every op is (descriptor, operand ids), and every
    descriptor ends with the op's output shape per example, computed with the usual formulas."""

    def __init__(self, input_shape: tuple[int, ...], bias: bool = False, affine: bool = False):
        self.ops: list[tuple[tuple, tuple[int, ...]]] = []
        self.shapes: list[tuple[int, ...]] = []
        self.bias, self.affine = bias, affine
        self.input = self._op(("input",), (), tuple(input_shape))

    def _op(self, desc: tuple, operands: tuple[int, ...], shape: tuple[int, ...]) -> int:
        self.ops.append((desc + (shape,), operands))
        self.shapes.append(shape)
        return len(self.ops) - 1

    def conv(self, x: int, out: int, k: int, stride: int = 1, pad: int = 0) -> int:
        c, h, w = self.shapes[x]
        size = ((h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1)
        return self._op(("conv", c, out, k, stride, pad, self.bias), (x,), (out, *size))

    def bn(self, x: int) -> int:
        return self._op(("bn", self.shapes[x][0], self.affine), (x,), self.shapes[x])

    def relu(self, x: int) -> int:
        return self._op(("relu",), (x,), self.shapes[x])

    def mul(self, x: int, factor: float) -> int:
        return self._op(("mul", round(factor, 6)), (x,), self.shapes[x])

    def add(self, a: int, b: int) -> int:
        assert self.shapes[a] == self.shapes[b], "the description adds tensors of different shapes"
        return self._op(("add",), tuple(sorted((a, b))), self.shapes[a])

    def maxpool(self, x: int, k: int, stride: int, pad: int = 0) -> int:
        c, h, w = self.shapes[x]
        size = ((h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1)
        return self._op(("maxpool", k, stride, pad), (x,), (c, *size))

    def avgpool(self, x: int) -> int:
        return self._op(("avgpool",), (x,), (self.shapes[x][0], 1, 1))

    def flatten(self, x: int) -> int:
        return self._op(("flatten",), (x,), (math.prod(self.shapes[x]),))

    def linear(self, x: int, out: int) -> int:
        return self._op(("linear", self.shapes[x][0], out, self.bias), (x,), (out,))

    def output(self, x: int) -> int:
        return self._op(("output",), (x,), ())


def fcn_spec(depth: int, width: int, input_shape, classes: int, bias: bool = False) -> Spec:
    """Input flattened; Linear(d0→w), (depth−2)×Linear(w→w), Linear(w→C); ReLU(x)·√2 after every
    layer but the last."""
    s = Spec(input_shape, bias=bias)
    h = s.flatten(s.input)
    for i in range(depth):
        h = s.linear(h, classes if i == depth - 1 else width)
        if i < depth - 1:
            h = s.mul(s.relu(h), math.sqrt(2.0))
    s.output(h)
    return s


VGG16_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def vgg16_spec(input_shape, classes: int, width: int = 64, bias: bool = False, affine: bool = False) -> Spec:
    """Each number: Conv3x3(pad 1) → BatchNorm2d → ReLU; M: MaxPool 2×2; then Linear(512→C). The
    average pool before the linear layer is the identity on the 1×1 map a 32×32 input leaves."""
    s = Spec(input_shape, bias=bias, affine=affine)
    h = s.input
    for item in VGG16_LAYOUT:
        h = s.maxpool(h, 2, 2) if item == "M" else s.relu(s.bn(s.conv(h, item * width // 64, 3, 1, 1)))
    s.output(s.linear(s.flatten(s.avgpool(h)), classes))
    return s


def preact_basic(s: Spec, x: int, planes: int, stride: int) -> int:
    pre = s.relu(s.bn(x))
    changes = stride != 1 or s.shapes[x][0] != planes
    skip = s.conv(pre, planes, 1, stride) if changes else x
    out = s.conv(pre, planes, 3, stride, 1)
    out = s.conv(s.relu(s.bn(out)), planes, 3, 1, 1)
    return s.add(out, skip)


def preact_bottleneck(s: Spec, x: int, planes: int, stride: int) -> int:
    pre = s.relu(s.bn(x))
    changes = stride != 1 or s.shapes[x][0] != 4 * planes
    skip = s.conv(pre, 4 * planes, 1, stride) if changes else x
    out = s.conv(pre, planes, 1)
    out = s.conv(s.relu(s.bn(out)), planes, 3, stride, 1)
    out = s.conv(s.relu(s.bn(out)), 4 * planes, 1)
    return s.add(out, skip)


def preact_resnet_spec(block, counts, input_shape, classes: int, width: int = 64, bias: bool = False,
                       affine: bool = False) -> Spec:
    """3×3 stem conv (stride 1), stages of widths w/2w/4w/8w with strides 1,2,2,2, every block
    BN → ReLU → conv with the 1×1 shortcut on the pre-activated input, then straight to the
    average pool and the linear layer: no BatchNorm or ReLU after the last stage."""
    s = Spec(input_shape, bias=bias, affine=affine)
    h = s.conv(s.input, width, 3, 1, 1)
    for i, (count, stride) in enumerate(zip(counts, (1, 2, 2, 2), strict=True)):
        for j in range(count):
            h = block(s, h, width * 2 ** i, stride if j == 0 else 1)
    s.output(s.linear(s.flatten(s.avgpool(h)), classes))
    return s


def post_bottleneck(s: Spec, x: int, planes: int, stride: int) -> int:
    changes = stride != 1 or s.shapes[x][0] != 4 * planes
    skip = s.bn(s.conv(x, 4 * planes, 1, stride)) if changes else x
    out = s.relu(s.bn(s.conv(x, planes, 1)))
    out = s.relu(s.bn(s.conv(out, planes, 3, stride, 1)))  # the stride sits on the 3×3 conv
    out = s.bn(s.conv(out, 4 * planes, 1))
    return s.relu(s.add(out, skip))


def resnet50_imagenet_spec(input_shape, classes: int, width: int = 64, bias: bool = False,
                           affine: bool = False) -> Spec:
    """torchvision's layout: 7×7 stride-2 stem → BN → ReLU → 3×3 stride-2 max-pool, [3,4,6,3]
    post-activation bottlenecks, global average pool, Linear(2048→C)."""
    s = Spec(input_shape, bias=bias, affine=affine)
    h = s.maxpool(s.relu(s.bn(s.conv(s.input, width, 7, 2, 3))), 3, 2, 1)
    for i, (count, stride) in enumerate(zip((3, 4, 6, 3), (1, 2, 2, 2), strict=True)):
        for j in range(count):
            h = post_bottleneck(s, h, width * 2 ** i, stride if j == 0 else 1)
    s.output(s.linear(s.flatten(s.avgpool(h)), classes))
    return s


# ---------------------------------------------------------------- the model's graph, traced

def _pair(v) -> int:
    v = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    assert v[0] == v[1], f"non-square {v} is not in any described model"
    return v[0]


def module_desc(m: nn.Module) -> tuple:
    if isinstance(m, nn.Conv2d):
        assert m.groups == 1 and _pair(m.dilation) == 1
        return ("conv", m.in_channels, m.out_channels, _pair(m.kernel_size), _pair(m.stride),
                _pair(m.padding), m.bias is not None)
    if isinstance(m, nn.BatchNorm2d):
        return ("bn", m.num_features, m.affine)
    if isinstance(m, nn.Linear):
        return ("linear", m.in_features, m.out_features, m.bias is not None)
    if isinstance(m, nn.ReLU):
        return ("relu",)
    if isinstance(m, nn.MaxPool2d):
        return ("maxpool", _pair(m.kernel_size), _pair(m.stride), _pair(m.padding))
    if isinstance(m, nn.AdaptiveAvgPool2d) and _pair(m.output_size) == 1:
        return ("avgpool",)
    return ("module", type(m).__name__)


def function_desc(node: fx.Node) -> tuple:
    target, args = node.target, node.args
    if target in (torch.relu, F.relu) or (node.op == "call_method" and target == "relu"):
        return ("relu",)
    if target in (operator.mul, torch.mul) and isinstance(args[1], float):
        return ("mul", round(args[1], 6))
    if target in (operator.add, torch.add):
        return ("add",)
    if target is F.adaptive_avg_pool2d and _pair(args[1]) == 1:
        return ("avgpool",)
    if (target is torch.flatten or target == "flatten") and args[1:] in ((1,), (1, -1)):
        return ("flatten",)
    return ("function", str(target), tuple(a for a in args if not isinstance(a, fx.Node)))


def traced_ops(model: nn.Module, input_shape) -> list[tuple[tuple, tuple[int, ...]]]:
    """(descriptor + output shape per example, operand ids) for every op of the forward pass."""
    graph = fx.symbolic_trace(model.eval())
    ShapeProp(graph).propagate(torch.randn(1, *input_shape))
    ids: dict[fx.Node, int] = {}
    ops = []
    for node in graph.graph.nodes:
        operands = tuple(ids[a] for a in node.all_input_nodes)
        if node.op == "placeholder":
            desc = ("input",)
        elif node.op == "output":
            desc = ("output",)
        elif node.op == "call_module":
            desc = module_desc(graph.get_submodule(node.target))
        else:
            desc = function_desc(node)
        if desc[0] == "add":
            operands = tuple(sorted(operands))
        shape = () if node.op == "output" else tuple(node.meta["tensor_meta"].shape[1:])
        ids[node] = len(ops)
        ops.append((desc + (shape,), operands))
    return ops


def canonical(ops: list[tuple[tuple, tuple[int, ...]]]) -> list[str]:
    """The ops renumbered in one order that depends on the graph alone: repeatedly take, of the
    ops whose operands are all placed, the one with the smallest (descriptor, operand numbers)."""
    users: dict[int, list[int]] = {i: [] for i in range(len(ops))}
    waiting = [len(set(operands)) for _, operands in ops]
    for i, (_, operands) in enumerate(ops):
        for j in set(operands):
            users[j].append(i)
    placed: dict[int, int] = {}
    ready = {i for i, n in enumerate(waiting) if n == 0}
    lines = []
    while ready:
        def key(i):
            return (repr(ops[i][0]), sorted(placed[j] for j in ops[i][1]))
        i = min(ready, key=key)
        ready.remove(i)
        placed[i] = len(placed)
        desc, operands = ops[i]
        lines.append(f"{placed[i]}: {' '.join(map(str, desc))} <- {sorted(placed[j] for j in operands)}")
        for u in users[i]:
            waiting[u] -= 1
            if waiting[u] == 0:
                ready.add(u)
    assert len(lines) == len(ops), "the graph has a cycle"
    return lines


def assert_same_graph(model: nn.Module, spec: Spec) -> None:
    got, want = canonical(traced_ops(model, spec.shapes[0])), canonical(spec.ops)
    diff = "\n".join(difflib.unified_diff(want, got, "described", "model", lineterm="", n=2))
    assert got == want, f"the model differs from its description:\n{diff}"


# ---------------------------------------------------------------- the tests

@pytest.mark.parametrize("depth, width, input_shape, classes", [
    (2, 8, (5,), 3),          # depth 2: one hidden layer
    (5, 16, (3, 4, 4), 10),   # an image input is flattened to 48
])
def test_fcn_graph_matches_description(depth, width, input_shape, classes):
    model = FCN(depth=depth, width=width, input_shape=input_shape, num_classes=classes)
    assert_same_graph(model, fcn_spec(depth, width, input_shape, classes))


@pytest.mark.parametrize("width, input_shape, classes", [
    (64, (3, 32, 32), 10),    # the paper's network
    (8, (3, 32, 32), 100),    # the mini experiments' width keeps the layout
])
def test_vgg16_graph_matches_description(width, input_shape, classes):
    model = VGG16(input_shape=input_shape, num_classes=classes, width=width)
    assert_same_graph(model, vgg16_spec(input_shape, classes, width))


@pytest.mark.parametrize("make, block, counts", [
    (PreActResNet18, preact_basic, (2, 2, 2, 2)),
    (PreActResNet50, preact_bottleneck, (3, 4, 6, 3)),
])
@pytest.mark.parametrize("width", [64, 8])
def test_cifar_preact_resnet_graph_matches_description(make, block, counts, width):
    model = make(input_shape=(3, 32, 32), num_classes=10, width=width)
    assert_same_graph(model, preact_resnet_spec(block, counts, (3, 32, 32), 10, width))


@pytest.mark.parametrize("width, input_shape, classes", [
    (64, (3, 64, 64), 1000),  # the paper's network; 64×64 keeps the CPU trace fast
    (8, (1, 40, 48), 7),
])
def test_resnet50_imagenet_graph_matches_description(width, input_shape, classes):
    model = ResNet50ImageNet(input_shape=input_shape, num_classes=classes, width=width)
    assert_same_graph(model, resnet50_imagenet_spec(input_shape, classes, width))


@pytest.mark.parametrize("bias, affine", [(True, False), (False, True), (True, True)])
def test_bias_and_affine_options_change_only_those_flags(bias, affine):
    # beyond the paper: the same graphs, with biases on every conv/linear and/or affine BN
    shape = (3, 32, 32)
    cases = [
        (VGG16, vgg16_spec(shape, 10, 8, bias, affine)),
        (PreActResNet18, preact_resnet_spec(preact_basic, (2, 2, 2, 2), shape, 10, 8, bias, affine)),
        (PreActResNet50, preact_resnet_spec(preact_bottleneck, (3, 4, 6, 3), shape, 10, 8, bias, affine)),
        (ResNet50ImageNet, resnet50_imagenet_spec(shape, 10, 8, bias, affine)),
    ]
    for make, spec in cases:
        assert_same_graph(make(input_shape=shape, num_classes=10, width=8, bias=bias, affine=affine), spec)
    fcn = FCN(depth=3, width=8, input_shape=shape, num_classes=10, bias=bias)
    assert_same_graph(fcn, fcn_spec(3, 8, shape, 10, bias))


def test_descriptions_give_the_paper_shapes():
    # spot checks of the hand-built graphs against shapes written out: a 32×32 CIFAR image leaves
    # VGG-16 as 512×1×1 and the CIFAR ResNets' last stage as 512·expansion×4×4; a 224×224
    # ImageNet image leaves the stem + max-pool as 64×56×56 and the last stage as 2048×7×7
    def before_pool(spec):
        return spec.shapes[next(i for i, (d, _) in enumerate(spec.ops) if d[0] == "avgpool") - 1]
    assert before_pool(vgg16_spec((3, 32, 32), 10)) == (512, 1, 1)
    assert before_pool(preact_resnet_spec(preact_basic, (2, 2, 2, 2), (3, 32, 32), 10)) == (512, 4, 4)
    assert before_pool(preact_resnet_spec(preact_bottleneck, (3, 4, 6, 3), (3, 32, 32), 10)) == (2048, 4, 4)
    imagenet = resnet50_imagenet_spec((3, 224, 224), 1000)
    assert before_pool(imagenet) == (2048, 7, 7)
    assert imagenet.shapes[4] == (64, 56, 56) and imagenet.ops[4][0][0] == "maxpool"
    assert sum(d[0] == "conv" for d, _ in imagenet.ops) == 53  # 1 stem + 16·3 + 4 downsample
    assert sum(d[0] == "conv" for d, _ in vgg16_spec((3, 32, 32), 10).ops) == 13


def classifier_input(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What the final linear layer reads (the average-pooled features), in training mode."""
    seen = []
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    last.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0].detach()))
    model.train()(x)
    return seen[0]


@pytest.mark.parametrize("make", [PreActResNet18, PreActResNet50])
def test_cifar_resnet_goes_straight_from_the_last_stage_to_the_pool(make):
    # The last block's output is a sum with a conv output, so it is negative in places and its
    # per-channel mean over the batch and the map is not zero. A ReLU after the last stage would
    # make every pooled value >= 0; a BatchNorm (affine-free, training mode) would make every
    # channel's mean over batch and map, which is the batch mean of the pooled value, zero.
    torch.manual_seed(0)
    model = make(input_shape=(3, 16, 16), num_classes=10, width=8)
    pooled = classifier_input(model, torch.randn(8, 3, 16, 16))
    assert (pooled < 0).any()
    assert pooled.mean(0).abs().max() > 0.05 * pooled.std()
    # and in the graph: the last residual addition feeds the average pool directly
    ops = traced_ops(model, (3, 16, 16))
    pool = next(i for i, (d, _) in enumerate(ops) if d[0] == "avgpool")
    assert ops[ops[pool][1][0]][0][0] == "add"


@pytest.mark.parametrize("make, input_shape", [(VGG16, (3, 32, 32)), (ResNet50ImageNet, (3, 64, 64))])
def test_vgg_and_imagenet_resnet_pool_rectified_features(make, input_shape):
    # both end their last stage with a ReLU (VGG: ReLU then max-pool; torchvision's ResNet:
    # ReLU after the last residual addition), so the pooled features are >= 0 and not all 0
    torch.manual_seed(0)
    pooled = classifier_input(make(input_shape=input_shape, num_classes=10, width=8),
                              torch.randn(4, *input_shape))
    assert (pooled >= 0).all() and (pooled > 0).any()
