"""GPU checks: training steps never synchronise with the host (the paper's AGD in the loop, and
whole-model AGD with its variants), the AGD step runs inside a CUDA graph and under
torch.compile, and the foreach step matches the readable one (`foreach=False`) on the GPU for
every kind and variant.

Run with `pytest -m gpu tests/test_gpu.py` on a machine with CUDA; everything here is skipped
without it (and deselected by the default `-m 'not slow and not gpu'`).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from training import WHOLE_MODEL, agd_for, batches_for, initialised_model, largest_difference, square_loss_etas

from agd import AGD, init_weights
from agd.data import DeviceLoader
from agd.losses import SquareLoss
from agd.models import FCN
from agd.train import train

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

CUDA = torch.device("cuda")


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16, affine=False), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.ReLU(),
            nn.Conv2d(32, 32, 1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(32, 10, bias=False)

    def forward(self, x):
        return self.head(self.body(x).flatten(1))


def _model(kind: str) -> nn.Module:
    torch.manual_seed(0)
    model = FCN(depth=8, width=256, input_shape=(3, 32, 32), num_classes=10) if kind == "fcn" else SmallCNN()
    return init_weights(model, torch.Generator().manual_seed(0)).to(CUDA)


def _twins(kind: str, foreach=(None, None)) -> list[tuple[nn.Module, AGD]]:
    """Two equal models of `kind`, each with its AGD (`foreach` of each, as the loop runs it)."""
    models = _model(kind), _model(kind)
    return [(model, AGD(model.parameters(), check_finite=False, foreach=f))
            for model, f in zip(models, foreach, strict=True)]


def _largest_difference(a: nn.Module, b: nn.Module) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a.parameters(), b.parameters(), strict=True))


def _cifar_like(n: int = 1024):
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    common = dict(mean=(0.49, 0.48, 0.45), std=(0.2, 0.2, 0.2), device=CUDA)
    return (DeviceLoader(x, y, 128, shuffle=True, augment=True, **common),
            DeviceLoader(x[:256], y[:256], 256, **common))


class SyncErrorAfterFirstBatch:
    """A loader whose batches 2..n are consumed under torch.cuda.set_sync_debug_mode("error"):
    any host sync in the training step of those batches raises. Batch 1 runs normally (the
    per-epoch permutation is copied to the device, AGD builds and caches its plan)."""

    def __init__(self, inner):
        self.inner = inner
        self.batches_checked = 0

    def set_epoch(self, epoch):
        self.inner.set_epoch(epoch)

    def __len__(self):
        return len(self.inner)

    def __iter__(self):
        batches = iter(self.inner)
        yield next(batches)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for batch in batches:
                yield batch
                self.batches_checked += 1
        finally:
            torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("kind", ["fcn", "cnn"])
def test_training_steps_never_sync_with_the_host(kind):
    model = _model(kind)
    channels_last = kind == "cnn"
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = AGD(model.parameters(), check_finite=False)
    train_loader, test_loader = _cifar_like()
    checked = SyncErrorAfterFirstBatch(train_loader)
    rows = train(model, opt, checked, test_loader, SquareLoss(10), 2, progress=False,
                 amp_dtype=torch.bfloat16 if kind == "cnn" else None, channels_last=channels_last)
    assert checked.batches_checked == 2 * (len(train_loader) - 1)
    assert rows[-1]["eta_min"] > 0 and rows[-1]["update_min"] > 0


def test_sync_debug_mode_does_catch_a_sync():
    # the check above can fail: a .item() in a step raises under the same mode
    x = torch.ones(3, device=CUDA)
    torch.cuda.set_sync_debug_mode("error")
    try:
        with pytest.raises(RuntimeError):
            x.sum().item()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("kind", ["fcn", "cnn"])
def test_fast_step_matches_the_reference_on_cuda(kind):
    (ours, opt), (ref, ref_opt) = _twins(kind, foreach=(True, False))
    gen = torch.Generator(device=CUDA).manual_seed(1)
    loss_fn = SquareLoss(10)
    for _ in range(10):
        x = torch.randn(64, 3, 32, 32, device=CUDA, generator=gen)
        y = torch.randint(0, 10, (64,), device=CUDA, generator=gen)
        for model, step in ((ours, opt.step), (ref, ref_opt.step)):
            model.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            step()
    assert _largest_difference(ours, ref) <= 1e-6


def test_whole_training_step_replays_in_a_cuda_graph():
    (eager, opt_e), (graphed, opt_g) = _twins("fcn")
    loss_fn = SquareLoss(10)
    gen = torch.Generator(device=CUDA).manual_seed(2)
    batches = [(torch.randn(128, 3, 32, 32, device=CUDA, generator=gen),
                torch.randint(0, 10, (128,), device=CUDA, generator=gen)) for _ in range(8)]
    static_x, static_y = batches[0][0].clone(), batches[0][1].clone()

    def step(model, opt, x, y):
        loss = loss_fn(model(x), y)
        loss.backward()
        return opt.step()

    # warm up on a side stream (plan cached, allocator primed), as torch.cuda.graphs advises;
    # the eager twin takes the same warm-up steps so both start the timed steps equal
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for x, y in batches[:3]:
            for model, opt in ((eager, opt_e), (graphed, opt_g)):
                opt.zero_grad(set_to_none=True)
                step(model, opt, x, y)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt_g.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_eta = step(graphed, opt_g, static_x, static_y)
    etas = []
    for x, y in batches[3:]:
        static_x.copy_(x)
        static_y.copy_(y)
        graph.replay()
        etas.append(static_eta.item())
        # eager twin: grads accumulate into fresh tensors each step, as in the graph
        opt_e.zero_grad(set_to_none=True)
        eta_e = step(eager, opt_e, x, y).item()
        assert etas[-1] == pytest.approx(eta_e, rel=1e-5)
    assert _largest_difference(eager, graphed) <= 1e-6


def test_compiled_step_matches_eager_on_cuda():
    (eager, opt_e), (compiled, opt_c) = _twins("cnn")
    loss_fn = SquareLoss(10)

    def train_step(model, opt, x, y):
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        return opt.step()

    compiled_step = torch.compile(train_step)
    gen = torch.Generator(device=CUDA).manual_seed(3)
    for _ in range(4):
        x = torch.randn(32, 3, 32, 32, device=CUDA, generator=gen)
        y = torch.randint(0, 10, (32,), device=CUDA, generator=gen)
        assert compiled_step(compiled, opt_c, x, y).item() == pytest.approx(
            train_step(eager, opt_e, x, y).item(), rel=1e-4)
    assert _largest_difference(eager, compiled) <= 1e-5


@pytest.mark.parametrize("variant", [dict(), dict(momentum=0.9), dict(orthogonalize=True)],
                         ids=["paper", "momentum", "spectral"])
def test_whole_model_agd_steps_never_sync_with_the_host(variant):
    # a GPT (embeddings, LayerNorm gains, biases) under whole-model AGD: after the first step has
    # built its plan (and its averages), no step may synchronise with the host
    from agd.models.gpt import GPT

    torch.manual_seed(0)
    model = GPT(input_shape=(64,), num_classes=64, width=128, depth=2, heads=4)
    init_weights(model, torch.Generator().manual_seed(0), extensions=True)
    model.to(CUDA)
    opt = AGD(model, extensions=True, check_finite=False, **variant)
    opt.measure_update_size = True
    gen = torch.Generator(device=CUDA).manual_seed(0)
    etas = []
    for step in range(4):
        x = torch.randint(0, 64, (12, 64), device=CUDA, generator=gen)
        y = torch.randint(0, 64, (12 * 64,), device=CUDA, generator=gen)
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        torch.cuda.synchronize()
        if step:
            torch.cuda.set_sync_debug_mode("error")
        try:
            etas.append(opt.step())
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert all(eta.item() > 0 for eta in etas) and opt.state["update_size"].item() > 0


@pytest.mark.parametrize("kind", ["fcn", "cnn", *WHOLE_MODEL])
@pytest.mark.parametrize("variant", [dict(), dict(momentum=0.9, orthogonalize=True, gain=2.0)],
                         ids=["paper", "variants"])
def test_every_kind_and_variant_matches_the_reference_on_cuda(kind, variant):
    ours, ref = initialised_model(kind).to(CUDA), initialised_model(kind).to(CUDA)
    fast, slow = agd_for(ours, kind, foreach=True, **variant), agd_for(ref, kind, foreach=False, **variant)
    batches = [(x.to(CUDA), y.to(CUDA)) for x, y in batches_for(kind, 8)]
    assert square_loss_etas(ours, fast, batches) == pytest.approx(square_loss_etas(ref, slow, batches), rel=1e-4)
    assert largest_difference(ours, ref) <= 1e-5
