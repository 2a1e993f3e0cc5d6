"""Shared by the tests that train: a few full-batch cross-entropy steps, and the small models,
batches and AGD set-ups on which the optimiser's two steps and its variants are compared."""

from __future__ import annotations

import math

import torch
from torch import nn

from agd import AGD, init_weights
from agd.models import FCN
from agd.models.gpt import GPT


def cross_entropy_losses(model: nn.Module, optimizer, x, y, steps: int) -> list[float]:
    """Train `steps` full-batch steps on cross-entropy; return the loss before each step."""
    losses = []
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


class SmallCNN(nn.Module):
    """Bias-free: 3x3, 1x1 and 5x3 kernels, a stride, and a matrix head (docs/algorithm.md, convolutions)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.ReLU(),
            nn.Conv2d(16, 16, 1, bias=False), nn.ReLU(),
            nn.Conv2d(16, 12, (5, 3), padding=(2, 1), bias=False), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2))
        self.head = nn.Linear(48, 10, bias=False)

    def forward(self, x):
        return self.head(self.body(x).flatten(1))


class BiasedCNN(nn.Module):
    """Every kind a CNN can hold beyond the paper: conv and linear biases, affine BatchNorm."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
        self.head = nn.Linear(48, 10)

    def forward(self, x):
        return self.head(self.body(x).flatten(1))


def build(kind: str) -> nn.Module:
    """An uninitialised model: fcn, cnn (bias-free), or whole-model gpt and biased_cnn."""
    if kind == "fcn":
        return FCN(depth=4, width=32, input_shape=(20,), num_classes=10)
    if kind == "gpt":  # embeddings, LayerNorm gains and shifts, biases: every kind of the table
        return GPT(input_shape=(8,), num_classes=10, width=16, depth=2, heads=2)
    return BiasedCNN() if kind == "biased_cnn" else SmallCNN()


WHOLE_MODEL = ("gpt", "biased_cnn")  # trained by whole-model AGD (extensions=True)


def initialised_model(kind: str) -> nn.Module:
    """The model of `kind`, seeded, with the paper's initialisation (the extensions' for whole-model kinds)."""
    torch.manual_seed(0)
    return init_weights(build(kind), torch.Generator().manual_seed(0), extensions=kind in WHOLE_MODEL)


def agd_for(model: nn.Module, kind: str, **options) -> AGD:
    """AGD as the pipeline builds it: the model itself for whole-model AGD, else its tensors."""
    if kind in WHOLE_MODEL:
        return AGD(model, extensions=True, **options)
    return AGD(model.parameters(), **options)


def batches_for(kind: str, n: int):
    """`n` fixed (inputs, labels) batches for the model of `kind` (10 classes)."""
    gen = torch.Generator().manual_seed(1)
    if kind == "gpt":  # ids (16, 8) -> next-token targets, one per position
        return [(torch.randint(0, 10, (16, 8), generator=gen), torch.randint(0, 10, (16 * 8,), generator=gen))
                for _ in range(n)]
    shape = (16, 20) if kind == "fcn" else (16, 3, 8, 8)
    return [(torch.randn(*shape, generator=gen), torch.randint(0, 10, (16,), generator=gen))
            for _ in range(n)]


def square_loss_etas(model, opt, batches, channels_last=False) -> list[float]:
    """One step per batch on the square loss; the η of each step."""
    etas = []
    for x, y in batches:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = model(x)
        loss = ((out - nn.functional.one_hot(y, 10).float() * math.sqrt(10)) ** 2).mean()
        for p in model.parameters():
            p.grad = None
        loss.backward()
        etas.append(float(opt.step()))
    return etas


# Biases whose gradient is zero in exact arithmetic: an attention key's (softmax ignores a constant
# added to every score of a query) and a conv's right before a BatchNorm (the norm subtracts it).
# Their gradient is rounding noise, which AGD normalises to a full step (docs/beyond.md), so the
# two steps move them differently; neither changes what the network computes.
INVARIANT = ("attn.key.bias", "body.0.bias")


def largest_difference(a: nn.Module, b: nn.Module) -> float:
    """The largest entry difference over the parameters, apart from the INVARIANT biases."""
    return max((p - q).abs().max().item() for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True)
               if not name.endswith(INVARIANT))


def random_regression_etas(model: nn.Module, opt, n: int, seed: int) -> list[float]:
    """η of `n` steps of `opt` on a square loss between `model` (6 inputs, 3 outputs) and random
    targets, the batches drawn from `seed` (the same seed, the same batches)."""
    gen = torch.Generator().manual_seed(seed)
    etas = []
    for _ in range(n):
        x, y = torch.randn(10, 6, generator=gen), torch.randn(10, 3, generator=gen)
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        etas.append(opt.step().item())
    return etas
