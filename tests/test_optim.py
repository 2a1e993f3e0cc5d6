"""AGD against values computed by hand from docs/algorithm.md (steps 1-3 and the edge cases),
written out here without the optimiser's own helpers. Each hand-worked test runs both the
readable step and the foreach step (`foreach` fixture)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from agd import AGD, init_weights


@pytest.fixture(params=[False, True], ids=["readable", "foreach"])
def foreach(request):
    return request.param


def frob(values):
    return math.sqrt(sum(v * v for v in values))


def eta_of(summary: float) -> float:
    return math.log((1 + math.sqrt(1 + 4 * summary)) / 2)


def test_two_layer_step_matches_hand_computation(foreach):
    w1 = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # (out 3, in 2)
    w2 = torch.tensor([[1.0, -1.0, 0.5], [0.0, 2.0, 1.0]])  # (out 2, in 3)
    p1, p2 = nn.Parameter(w1.clone()), nn.Parameter(w2.clone())
    p1.grad = torch.tensor([[3.0, 0.0], [0.0, 4.0], [0.0, 0.0]])  # ||.||_F = 5
    p2.grad = torch.tensor([[1.0, 2.0, 2.0], [0.0, 0.0, 0.0]])  # ||.||_F = 3
    opt = AGD([p1, p2], foreach=foreach)
    eta = opt.step()

    # G = 1/L Σ sqrt(d_k/d_{k-1}) ||∇W_k||_F with L = 2
    summary = 0.5 * (math.sqrt(3 / 2) * 5 + math.sqrt(2 / 3) * 3)
    expected_eta = eta_of(summary)
    assert opt.state["gradient_summary"].item() == pytest.approx(summary, rel=1e-6)
    assert eta.item() == pytest.approx(expected_eta, rel=1e-6)
    # G = 4.2866, 1 + 4G = 18.146, sqrt = 4.2598, log(5.2598/2) = 0.9670
    assert expected_eta == pytest.approx(0.9670, abs=1e-4)
    # W_k <- W_k - (η/L) sqrt(d_k/d_{k-1}) ∇W_k/||∇W_k||_F
    new1 = w1 - (expected_eta / 2) * math.sqrt(3 / 2) * p1.grad / 5
    new2 = w2 - (expected_eta / 2) * math.sqrt(2 / 3) * p2.grad / 3
    torch.testing.assert_close(p1.data, new1, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(p2.data, new2, rtol=1e-6, atol=1e-6)


def test_conv_kernel_positions_are_separate_blocks(foreach):
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(2, 3, 3, 3, generator=gen)
    grad = torch.randn(2, 3, 3, 3, generator=gen)
    matrix = torch.randn(4, 2, generator=gen)
    matrix_grad = torch.randn(4, 2, generator=gen)
    pc, pm = nn.Parameter(weight.clone()), nn.Parameter(matrix.clone())
    pc.grad, pm.grad = grad.clone(), matrix_grad.clone()
    opt = AGD([pc, pm], foreach=foreach)
    eta = opt.step()

    conv_scale = math.sqrt(2 / 3) / math.sqrt(9)
    norms = [[frob(grad[:, :, i, j].flatten().tolist()) for j in range(3)] for i in range(3)]
    matrix_norm = frob(matrix_grad.flatten().tolist())
    summary = (conv_scale * sum(sum(r) for r in norms) + math.sqrt(4 / 2) * matrix_norm) / 2
    expected_eta = eta_of(summary)
    assert eta.item() == pytest.approx(expected_eta, rel=1e-6)
    expected = weight.clone()
    for i in range(3):
        for j in range(3):
            expected[:, :, i, j] -= (expected_eta / 2) * conv_scale * grad[:, :, i, j] / norms[i][j]
    torch.testing.assert_close(pc.data, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        pm.data, matrix - (expected_eta / 2) * math.sqrt(2) * matrix_grad / matrix_norm)


@pytest.mark.parametrize("summary", [0.0, 1e-4, 0.3, 2.0, 17.5, 1e3])
def test_eta_is_the_positive_root_in_g(summary, foreach):
    p = nn.Parameter(torch.zeros(1, 1))
    p.grad = torch.tensor([[summary]])  # L = 1, scale 1, so G = |grad|
    eta = AGD([p], foreach=foreach).step().item()
    assert eta == pytest.approx(eta_of(summary), rel=1e-6, abs=1e-7)
    # (e^η − 1) e^η = G  (docs/algorithm.md, step 2)
    assert (math.exp(eta) - 1) * math.exp(eta) == pytest.approx(summary, rel=1e-5, abs=1e-6)


def test_every_update_has_norm_eta_over_l_times_scale(foreach):
    gen = torch.Generator().manual_seed(2)
    shapes = [(5, 3), (7, 5), (4, 2, 3, 3), (1, 7)]
    params = [nn.Parameter(torch.randn(*s, generator=gen)) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen)
    before = [p.detach().clone() for p in params]
    eta = AGD(params, foreach=foreach).step().item()
    for p, old, shape in zip(params, before, shapes, strict=True):
        delta = p.detach() - old
        if len(shape) == 2:
            assert delta.norm().item() == pytest.approx(eta / 4 * math.sqrt(shape[0] / shape[1]), rel=1e-5)
        else:
            scale = math.sqrt(shape[0] / shape[1]) / 3
            for i in range(3):
                for j in range(3):
                    assert delta[:, :, i, j].norm().item() == pytest.approx(eta / 4 * scale, rel=1e-5)


def test_zero_gradient_gives_no_nan_and_leaves_the_layer(foreach):
    a = nn.Parameter(torch.ones(3, 2))
    b = nn.Parameter(torch.ones(2, 3))
    conv = nn.Parameter(torch.ones(2, 2, 3, 3))
    a.grad = torch.zeros(3, 2)
    b.grad = torch.ones(2, 3)
    conv.grad = torch.ones(2, 2, 3, 3)
    conv.grad[:, :, 1, 1] = 0  # one kernel position with zero gradient
    eta = AGD([a, b, conv], foreach=foreach).step()
    assert torch.isfinite(eta)
    for p in (a, b, conv):
        assert torch.isfinite(p).all()
    assert torch.equal(a.data, torch.ones(3, 2))
    assert torch.equal(conv.data[:, :, 1, 1], torch.ones(2, 2))
    assert not torch.equal(conv.data[:, :, 0, 0], torch.ones(2, 2))


def test_all_zero_gradients_give_eta_zero(foreach):
    a = nn.Parameter(torch.ones(3, 2))
    a.grad = torch.zeros(3, 2)
    assert AGD([a], foreach=foreach).step().item() == 0.0
    assert torch.equal(a.data, torch.ones(3, 2))


def test_degenerate_two_by_one_network_trains_without_nan():
    # users of the authors' release reported NaN on a 2x1 network (docs/algorithm.md, edge cases)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 1, bias=False))
    init_weights(model)
    opt = AGD(model.parameters())
    x, y = torch.randn(16, 2), torch.randn(16, 1)
    for _ in range(20):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.isfinite(model[0].weight).all()
    assert ((model(x) - y) ** 2).mean().item() < ((torch.zeros_like(y) - y) ** 2).mean().item()


def test_missing_gradient_counts_as_zero_but_still_counts_in_depth(foreach):
    a, b = nn.Parameter(torch.ones(2, 2)), nn.Parameter(torch.ones(2, 2))
    b.grad = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
    opt = AGD([a, b], foreach=foreach)
    eta = opt.step().item()
    assert opt.depth == 2
    assert eta == pytest.approx(eta_of(5.0 / 2), rel=1e-6)  # G = (0 + 1*5)/2
    assert torch.equal(a.data, torch.ones(2, 2))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_gradient_raises_and_leaves_weights(bad, foreach):
    a, b = nn.Parameter(torch.ones(3, 2)), nn.Parameter(torch.ones(2, 3))
    a.grad = torch.ones(3, 2)
    b.grad = torch.ones(2, 3)
    b.grad[0, 1] = bad
    with pytest.raises(FloatingPointError, match=r"non-finite gradient.*shape \(2, 3\)"):
        AGD([a, b], foreach=foreach).step()
    assert torch.equal(a.data, torch.ones(3, 2)) and torch.equal(b.data, torch.ones(2, 3))


def test_nonfinite_gradient_without_check_skips_the_step(foreach):
    # check_finite=False: no exception, η = 0, the step is counted, no NaN reaches the weights
    a = nn.Parameter(torch.ones(3, 2))
    conv = nn.Parameter(torch.ones(2, 2, 3, 3))
    a.grad = torch.ones(3, 2)
    conv.grad = torch.ones(2, 2, 3, 3)
    conv.grad[0, 0, 0, 0] = float("inf")
    opt = AGD([a, conv], check_finite=False, foreach=foreach)
    eta = opt.step()
    assert eta.item() == 0.0
    assert opt.state["nonfinite_steps"].item() == 1
    assert torch.equal(a.data, torch.ones(3, 2)) and torch.equal(conv.data, torch.ones(2, 2, 3, 3))
    conv.grad[0, 0, 0, 0] = 1.0  # a finite step afterwards moves the weights again
    assert opt.step().item() > 0
    assert opt.state["nonfinite_steps"].item() == 1
    assert not torch.equal(a.data, torch.ones(3, 2))


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), ()])
def test_unsupported_parameter_rank_is_refused_with_its_shape(shape):
    with pytest.raises(ValueError, match=rf"shape {tuple(shape)}".replace("(", r"\(").replace(")", r"\)")):
        AGD([nn.Parameter(torch.ones(shape))])


def test_bias_in_a_model_is_refused():
    with pytest.raises(ValueError, match=r"shape \(4,\).*bias=False"):
        AGD(nn.Linear(3, 4).parameters())


def test_gain_scales_the_update_and_must_be_positive(foreach):
    def delta(gain):
        p = nn.Parameter(torch.zeros(2, 2))
        p.grad = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
        AGD([p], gain=gain, foreach=foreach).step()
        return p.data
    torch.testing.assert_close(delta(2.0), 2 * delta(1.0))
    with pytest.raises(ValueError, match="gain"):
        AGD([nn.Parameter(torch.zeros(2, 2))], gain=0)


def test_depth_counts_tensors_across_param_groups():
    groups = [{"params": [nn.Parameter(torch.ones(2, 2))]},
              {"params": [nn.Parameter(torch.ones(3, 2)), nn.Parameter(torch.ones(2, 3))]}]
    assert AGD(groups).depth == 3


def _mlp(seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8, bias=False), nn.ReLU(), nn.Linear(8, 3, bias=False))
    return init_weights(model)


def _steps(model, opt, n, seed):
    gen = torch.Generator().manual_seed(seed)
    etas = []
    for _ in range(n):
        x, y = torch.randn(10, 6, generator=gen), torch.randn(10, 3, generator=gen)
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        etas.append(opt.step().item())
    return etas


def test_state_dict_round_trip_continues_bit_identically(foreach):
    model = _mlp(0)
    opt = AGD(model.parameters(), foreach=foreach)
    _steps(model, opt, 3, seed=10)
    saved_model = {k: v.clone() for k, v in model.state_dict().items()}
    saved_opt = opt.state_dict()
    etas_a = _steps(model, opt, 4, seed=11)

    clone = _mlp(1)
    clone.load_state_dict(saved_model)
    opt_b = AGD(clone.parameters(), foreach=foreach)
    opt_b.load_state_dict(saved_opt)
    assert opt_b.state["step"] == 3
    etas_b = _steps(clone, opt_b, 4, seed=11)
    assert etas_a == etas_b
    for a, b in zip(model.parameters(), clone.parameters(), strict=True):
        assert torch.equal(a, b)


def test_closure_is_evaluated_and_zero_grad_clears():
    model = _mlp(0)
    opt = AGD(model.parameters())
    x, y = torch.randn(4, 6), torch.randn(4, 3)

    def closure():
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        return loss

    assert opt.step(closure).item() > 0
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_update_size_is_the_mean_relative_change_over_depth(foreach):
    a, b = nn.Parameter(torch.ones(2, 2)), nn.Parameter(torch.ones(2, 2))  # ||W||_F = 2 each
    a.grad = torch.tensor([[3.0, 0.0], [0.0, 4.0]])  # b has no gradient: moves 0, counts in L
    opt = AGD([a, b], foreach=foreach)
    opt.measure_update_size = True
    eta = opt.step().item()
    assert eta == pytest.approx(eta_of(5.0 / 2), rel=1e-6)
    # ||ΔW_a||_F = (η/L)·scale = η/2, relative to ||W_a|| = 2; b adds 0; mean over L = 2: η/8
    assert opt.state["update_size"].item() == pytest.approx(eta / 8, rel=1e-6)
    assert (a.data - 1).norm().item() == pytest.approx(eta / 2, rel=1e-6)
