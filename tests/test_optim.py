"""AGD against values computed by hand from docs/algorithm.md (steps 1-3 and the edge cases),
written out here without the optimiser's own helpers. Each hand-worked test runs both the
readable step and the foreach step (`foreach` fixture)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from training import random_regression_etas

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


def test_a_bias_passed_without_its_module_names_the_call_that_works():
    # model.parameters() loses the modules: a 1-D tensor could be a bias or a norm gain
    with pytest.raises(ValueError, match=r"shape \(4,\).*bias=False.*AGD\(model, extensions=True\)"):
        AGD(nn.Linear(3, 4).parameters())
    # and extensions=True cannot help without the modules: the same call is named
    with pytest.raises(ValueError, match=r"extensions=True needs the model itself.*AGD\(model, extensions=True\)"):
        AGD(nn.Linear(3, 4).parameters(), extensions=True)
    assert AGD(nn.Linear(3, 4), extensions=True).depth == 1  # the call named works


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


def test_state_dict_round_trip_continues_bit_identically(foreach):
    model = _mlp(0)
    opt = AGD(model.parameters(), foreach=foreach)
    random_regression_etas(model, opt, 3, seed=10)
    saved_model = {k: v.clone() for k, v in model.state_dict().items()}
    saved_opt = opt.state_dict()
    etas_a = random_regression_etas(model, opt, 4, seed=11)

    clone = _mlp(1)
    clone.load_state_dict(saved_model)
    opt_b = AGD(clone.parameters(), foreach=foreach)
    opt_b.load_state_dict(saved_opt)
    assert opt_b.state["step"] == 3
    etas_b = random_regression_etas(clone, opt_b, 4, seed=11)
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


# ---------------------------------------------------------------- what the optimiser refuses


@pytest.mark.parametrize(("make", "message"), [
    (lambda: AGD(nn.Sequential()), r"Sequential with no parameters: .*AGD\(model\)"),
    (lambda: AGD(nn.Sequential().parameters()), r"no parameters .*AGD\(model\), or a fresh model\.parameters\(\)"),
    (lambda: AGD([]), r"no parameters"),
    (lambda: AGD([{"params": []}]), r"param group 0 has no parameters"),
])
def test_no_parameters_is_refused_with_the_call_that_works(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_single_tensor_is_refused_not_split_into_rows():
    with pytest.raises(TypeError, match=r"one tensor, not a list.*AGD\(\[weight\]\)"):
        AGD(nn.Parameter(torch.ones(3, 4, 5)))


def test_a_used_up_parameter_generator_is_refused():
    model = _mlp(0)
    params = model.parameters()
    AGD(params)
    with pytest.raises(ValueError, match="already used up"):
        AGD(params)


def _weights(*shapes):
    return [nn.Parameter(torch.ones(shape)) for shape in shapes]


def test_a_tensor_given_twice_is_refused():
    a, b = _weights((2, 2), (3, 2))
    with pytest.raises(ValueError, match=r"parameter 1 of group 0 is also parameter 0 of group 0.*move it twice"):
        AGD([a, a])
    with pytest.raises(ValueError, match=r"parameter 0 of group 1 is also parameter 0 of group 0.*one group"):
        AGD([{"params": [a]}, {"params": [a, b]}])
    opt = AGD([a])
    with pytest.raises(ValueError, match="also parameter 0 of group 0"):
        opt.add_param_group({"params": [a]})
    assert len(opt.param_groups) == 1


def test_tensors_over_the_same_memory_are_refused():
    storage = torch.ones(4, 3)
    with pytest.raises(ValueError, match="shares memory with parameter 0 of group 0.*clone"):
        AGD([nn.Parameter(storage[:3]), nn.Parameter(storage[2:])])  # row 2 in both
    weight = nn.Parameter(torch.ones(2, 2))
    with pytest.raises(ValueError, match="shares memory"):
        AGD([weight, nn.Parameter(weight)])  # nn.Parameter of a parameter shares its storage
    AGD([nn.Parameter(storage[:2]), nn.Parameter(storage[2:])])  # disjoint halves move once each


def test_a_weight_tied_between_two_modules_is_refused():
    model = nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 5, bias=False))
    model[1].weight = model[0].weight  # (5, 4) both: an embedding's rule or a matrix's?
    with pytest.raises(ValueError, match=r"1\.weight is the same tensor as 0\.weight.*untie it"):
        AGD(model, extensions=True)
    with pytest.raises(ValueError, match="tied between two modules"):
        init_weights(model, extensions=True)


def test_only_biases_and_gains_to_train_is_refused():
    # they add no depth: L = 0 would divide by zero
    with pytest.raises(ValueError, match=r"add no depth \(L = 0\).*unfreeze a layer"):
        AGD(nn.LayerNorm(4), extensions=True)
    model = nn.Linear(3, 4)
    model.weight.requires_grad_(False)
    with pytest.raises(ValueError, match="L = 0"):
        AGD(model, extensions=True)


@pytest.mark.parametrize(("options", "message"), [
    (dict(gain=-1.0), "gain must be a positive finite number, got -1.0"),
    (dict(gain=float("inf")), "gain must be a positive finite number"),
    (dict(momentum=1.0), r"momentum must be a number in \[0, 1\)"),
    (dict(momentum=-0.1), "momentum must be"),
    (dict(orthogonalize=1), "orthogonalize must be true or false, got 1"),
])
def test_bad_settings_are_refused_for_the_optimiser_and_for_a_group(options, message):
    with pytest.raises(ValueError, match=message):
        AGD(_weights((2, 2)), **options)
    with pytest.raises(ValueError, match=f"param group 0: AGD's {message}"):
        AGD([{"params": _weights((2, 2)), **options}])


def test_kinds_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError, match="2 tensors but 1 kinds"):
        AGD([{"params": _weights((2, 2), (2, 2)), "kinds": ["matrix"]}])


@pytest.mark.parametrize("other", [
    lambda ps: torch.optim.Adam(ps, lr=1e-3),
    lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
])
def test_a_state_dict_of_another_optimiser_is_refused_before_anything_changes(other):
    model = _mlp(0)
    foreign = other(model.parameters())
    ((model(torch.randn(4, 6)) - 1) ** 2).mean().backward()
    foreign.step()
    opt = AGD(model.parameters())
    random_regression_etas(model, opt, 2, seed=2)
    before = opt.state_dict()
    with pytest.raises(ValueError, match="not AGD's.*load it into the optimiser that saved it"):
        opt.load_state_dict(foreign.state_dict())
    assert opt.state_dict() == before and opt.param_groups[0]["kinds"] == ["matrix", "matrix"]
    random_regression_etas(model, opt, 1, seed=3)  # and it still steps


def test_a_state_dict_of_another_model_is_refused():
    small = AGD(_weights((2, 2)))
    with pytest.raises(ValueError, match=r"groups of \[1\] tensors and this optimiser \[2\]"):
        AGD(_weights((2, 2), (3, 2))).load_state_dict(small.state_dict())
    conv = AGD([{"params": _weights((2, 2, 3, 3)), "kinds": ["conv"]}])
    with pytest.raises(ValueError, match="given the kind 'conv'"):
        AGD(_weights((2, 2))).load_state_dict(conv.state_dict())
