"""The foreach AGD step (agd/optim_fast.py) computes the same numbers as the readable one
(agd/optim.py, docs/algorithm.md steps 1-3), for every kind of the rule table, through training,
layouts and torch.compile, and reads nothing on the host off the CPU."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn
from training import WHOLE_MODEL, agd_for, batches_for, build, initialised_model, largest_difference, square_loss_etas

from agd import AGD
from agd.optim_fast import kernel_norms

ReferenceAGD = partial(AGD, foreach=False)
FastAGD = partial(AGD, foreach=True)


@pytest.mark.parametrize("kind", ["fcn", "cnn", *WHOLE_MODEL])
@pytest.mark.parametrize("check_finite", [True, False])
def test_fast_step_matches_the_reference_after_ten_steps(kind, check_finite):
    ours, ref = initialised_model(kind), initialised_model(kind)
    batches = batches_for(kind, 10)
    etas = square_loss_etas(ours, agd_for(ours, kind, check_finite=check_finite, foreach=True), batches)
    ref_etas = square_loss_etas(ref, agd_for(ref, kind, foreach=False), batches)
    assert etas == pytest.approx(ref_etas, rel=1e-5)
    assert largest_difference(ours, ref) <= 1e-6
    assert largest_difference(ours, initialised_model(kind)) > 1e-2  # the weights did move
    with torch.no_grad():  # the same network (in training mode: a BatchNorm normalises by the batch's mean)
        x = batches[0][0]
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)


def test_channels_last_conv_weights_match_the_reference():
    ours, ref = initialised_model("cnn"), initialised_model("cnn")
    ours.to(memory_format=torch.channels_last)
    assert ours.body[2].weight.is_contiguous(memory_format=torch.channels_last)
    assert not ours.body[2].weight.is_contiguous()
    batches = batches_for("cnn", 10)
    etas = square_loss_etas(ours, FastAGD(ours.parameters()), batches, channels_last=True)
    assert ours.body[2].weight.grad.is_contiguous(memory_format=torch.channels_last)
    ref_etas = square_loss_etas(ref, ReferenceAGD(ref.parameters()), batches)
    assert etas == pytest.approx(ref_etas, rel=1e-5)
    assert largest_difference(ours, ref) <= 1e-6


def test_gradients_that_come_and_go_rebuild_the_plan():
    # which tensors have a gradient changes between steps; every step must match the reference
    ours, ref = initialised_model("cnn"), initialised_model("cnn")
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
    assert largest_difference(ours, ref) <= 1e-6


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


@pytest.mark.parametrize("kind", ["cnn", *WHOLE_MODEL])
def test_measured_update_size_agrees_between_the_two_steps(kind):
    ours, ref = initialised_model(kind), initialised_model(kind)
    fast, slow = agd_for(ours, kind, foreach=True), agd_for(ref, kind, foreach=False)
    fast.measure_update_size = slow.measure_update_size = True
    batches = batches_for(kind, 3)
    square_loss_etas(ours, fast, batches)
    square_loss_etas(ref, slow, batches)
    assert fast.state["update_size"].item() == pytest.approx(slow.state["update_size"].item(), rel=1e-5)
    assert fast.state["update_size"].item() > 0


def _compiledsquare_loss_etas(backend: str, steps: int = 3, foreach: bool = True):
    eager, compiled = initialised_model("fcn"), initialised_model("fcn")
    opt_e = AGD(eager.parameters(), check_finite=False, foreach=foreach)
    opt_c = AGD(compiled.parameters(), check_finite=False, foreach=foreach)
    batches = batches_for("fcn", steps)

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
    assert largest_difference(eager, compiled) <= 1e-6
    assert opt_c.state["step"] == steps


@pytest.mark.parametrize("foreach", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["foreach", "readable"])
def test_forward_backward_and_step_trace_under_torch_compile(foreach):
    # dynamo + AOT autograd (functionalisation of the in-place update) without C++ codegen
    _compiledsquare_loss_etas("aot_eager", foreach=foreach)


@pytest.mark.slow
def test_forward_backward_and_step_compile_with_inductor():
    # the full inductor path (C++ code generation: slow on a cold cache, hence marked slow)
    _compiledsquare_loss_etas("inductor", steps=4)


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


@pytest.mark.parametrize("kind", ["fcn", "cnn", *WHOLE_MODEL])
def test_off_the_cpu_the_default_step_reads_nothing_on_the_host(kind):
    # On the meta device every host read raises, as a host sync would on a GPU: the default
    # step (foreach=None picks the fast step off the CPU) must run for every kind, biases,
    # norm gains and embeddings included, and report η and the update size as device tensors.
    with pytest.raises(RuntimeError, match="meta"):
        bool(torch.ones((), device="meta") > 0)  # the check can fail
    model = build(kind).to("meta")
    opt = agd_for(model, kind, check_finite=False)
    opt.measure_update_size = True
    for p in model.parameters():
        p.grad = torch.empty_like(p)
    for _ in range(2):  # the first step builds the plan, the second reuses it
        eta = opt.step()
    assert eta.device.type == "meta" and opt.state["update_size"].device.type == "meta"
    assert opt.state["step"] == 2


def test_whole_model_step_traces_as_one_graph():
    # fullgraph=True: any host read (a graph break) in the step is an error
    model = initialised_model("gpt")
    opt = agd_for(model, "gpt", check_finite=False, foreach=True)
    ref = initialised_model("gpt")
    ref_opt = agd_for(ref, "gpt", foreach=False)
    step = torch.compile(opt.step, backend="aot_eager", fullgraph=True)
    torch._dynamo.reset()
    gen = torch.Generator().manual_seed(5)
    for _ in range(2):
        for a, b in zip(model.parameters(), ref.parameters(), strict=True):
            a.grad = torch.randn(a.shape, generator=gen)
            b.grad = a.grad.clone()
        assert step().item() == pytest.approx(ref_opt.step().item(), rel=1e-5)
    assert largest_difference(model, ref) <= 1e-6
