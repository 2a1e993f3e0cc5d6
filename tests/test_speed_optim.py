"""The foreach AGD step (agd/optim_fast.py) computes the same numbers as the readable one
(agd/optim.py, docs/algorithm.md steps 1-3), through training, layouts and torch.compile."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
from torch import nn

from agd import AGD, init_weights
from agd.models import FCN
from agd.optim_fast import kernel_norms

ReferenceAGD = partial(AGD, foreach=False)
FastAGD = partial(AGD, foreach=True)


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


def _model(kind: str) -> nn.Module:
    torch.manual_seed(0)
    model = FCN(depth=4, width=32, input_shape=(20,), num_classes=10) if kind == "fcn" else SmallCNN()
    return init_weights(model, torch.Generator().manual_seed(0))


def _batches(kind: str, n: int):
    gen = torch.Generator().manual_seed(1)
    shape = (16, 20) if kind == "fcn" else (16, 3, 8, 8)
    return [(torch.randn(*shape, generator=gen), torch.randint(0, 10, (16,), generator=gen))
            for _ in range(n)]


def _train(model, opt, batches, channels_last=False):
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


def _max_diff(a: nn.Module, b: nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize("kind", ["fcn", "cnn"])
@pytest.mark.parametrize("check_finite", [True, False])
def test_fast_step_matches_the_reference_after_ten_steps(kind, check_finite):
    ours, ref = _model(kind), _model(kind)
    batches = _batches(kind, 10)
    etas = _train(ours, FastAGD(ours.parameters(), check_finite=check_finite), batches)
    ref_etas = _train(ref, ReferenceAGD(ref.parameters()), batches)
    assert etas == pytest.approx(ref_etas, rel=1e-5)
    assert _max_diff(ours, ref) <= 1e-6
    assert _max_diff(ours, _model(kind)) > 1e-2  # the weights did move


def test_channels_last_conv_weights_match_the_reference():
    ours, ref = _model("cnn"), _model("cnn")
    ours.to(memory_format=torch.channels_last)
    assert ours.body[2].weight.is_contiguous(memory_format=torch.channels_last)
    assert not ours.body[2].weight.is_contiguous()
    batches = _batches("cnn", 10)
    etas = _train(ours, FastAGD(ours.parameters()), batches, channels_last=True)
    assert ours.body[2].weight.grad.is_contiguous(memory_format=torch.channels_last)
    ref_etas = _train(ref, ReferenceAGD(ref.parameters()), batches)
    assert etas == pytest.approx(ref_etas, rel=1e-5)
    assert _max_diff(ours, ref) <= 1e-6


def test_gradients_that_come_and_go_rebuild_the_plan():
    # which tensors have a gradient changes between steps; every step must match the reference
    ours, ref = _model("cnn"), _model("cnn")
    opt, ref_opt = FastAGD(ours.parameters()), ReferenceAGD(ref.parameters())
    gen = torch.Generator().manual_seed(3)
    for step in range(6):
        for k, (p, q) in enumerate(zip(ours.parameters(), ref.parameters(), strict=True)):
            if (k + step) % 3 == 0:
                p.grad = q.grad = None
            else:
                g = torch.randn(p.shape, generator=gen)
                p.grad, q.grad = g.clone(), g.clone()
        assert opt.step().item() == pytest.approx(ref_opt.step().item(), rel=1e-5)
    assert _max_diff(ours, ref) <= 1e-6


def test_gain_change_between_steps_is_honoured():
    p, q = nn.Parameter(torch.ones(4, 3)), nn.Parameter(torch.ones(4, 3))
    opt = FastAGD([p])
    for gain in (1.0, 3.0):
        opt.param_groups[0]["gain"] = gain
        ref = ReferenceAGD([q], gain=gain)
        p.grad = q.grad = torch.arange(12.0).reshape(4, 3)
        opt.step()
        ref.step()
        torch.testing.assert_close(p.data, q.data, rtol=0, atol=1e-6)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
def test_kernel_norms_for_every_layout(layout):
    gen = torch.Generator().manual_seed(4)
    grad = torch.randn(6, 5, 3, 2, generator=gen)
    if layout == "channels_last":
        grad = grad.contiguous(memory_format=torch.channels_last)
    elif layout == "strided":
        grad = torch.randn(6, 10, 3, 2, generator=gen)[:, ::2]
    expected = torch.stack([grad[:, :, i, j].double().norm() for i in range(3) for j in range(2)])
    torch.testing.assert_close(kernel_norms(grad, torch.float32).double(), expected, rtol=1e-6, atol=0)


def test_measured_update_size_agrees_between_the_two_steps():
    ours, ref = _model("cnn"), _model("cnn")
    fast, slow = FastAGD(ours.parameters()), ReferenceAGD(ref.parameters())
    fast.measure_update_size = slow.measure_update_size = True
    batches = _batches("cnn", 3)
    _train(ours, fast, batches)
    _train(ref, slow, batches)
    assert fast.state["update_size"].item() == pytest.approx(slow.state["update_size"].item(), rel=1e-5)
    assert fast.state["update_size"].item() > 0


def _compiled_train(backend: str, steps: int = 3, foreach: bool = True):
    eager, compiled = _model("fcn"), _model("fcn")
    opt_e = AGD(eager.parameters(), check_finite=False, foreach=foreach)
    opt_c = AGD(compiled.parameters(), check_finite=False, foreach=foreach)
    batches = _batches("fcn", steps)

    def train_step(model, opt, x, y):
        loss = ((model(x) - nn.functional.one_hot(y, 10).float()) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        return opt.step()

    step_c = torch.compile(train_step, backend=backend)
    torch._dynamo.reset()
    for x, y in batches:
        eta_e = train_step(eager, opt_e, x, y)
        eta_c = step_c(compiled, opt_c, x, y)
        assert eta_c.item() == pytest.approx(eta_e.item(), rel=1e-5)
    assert _max_diff(eager, compiled) <= 1e-6
    assert opt_c.state["step"] == steps


@pytest.mark.parametrize("foreach", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["foreach", "readable"])
def test_forward_backward_and_step_trace_under_torch_compile(foreach):
    # dynamo + AOT autograd (functionalisation of the in-place update) without C++ codegen
    _compiled_train("aot_eager", foreach=foreach)


@pytest.mark.slow
def test_forward_backward_and_step_compile_with_inductor():
    # the full inductor path (C++ code generation: slow on a cold cache, hence marked slow)
    _compiled_train("inductor", steps=4)


def test_compiled_step_skips_a_nonfinite_gradient_without_reading_it_on_the_host():
    # under torch.compile (as on a GPU) the foreach step never reads G on the host: a non-finite
    # gradient must still leave the weights untouched, with η = 0 and the step counted
    a, conv = nn.Parameter(torch.ones(3, 2)), nn.Parameter(torch.ones(2, 2, 3, 3))
    opt = FastAGD([a, conv], check_finite=False)
    step = torch.compile(opt.step, backend="aot_eager", fullgraph=False)
    a.grad, conv.grad = torch.ones(3, 2), torch.ones(2, 2, 3, 3)
    conv.grad[0, 1, 2, 0] = float("nan")
    assert step().item() == 0.0
    assert torch.equal(a.data, torch.ones(3, 2)) and torch.equal(conv.data, torch.ones(2, 2, 3, 3))
    assert opt.state["nonfinite_steps"].item() == 1
    conv.grad[0, 1, 2, 0] = 1.0
    assert step().item() > 0 and opt.state["nonfinite_steps"].item() == 1
