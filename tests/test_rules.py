"""The rule table (agd/rules.py): kinds, scales, blocks and refusals, on values worked by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from agd import AGD, init_weights
from agd.rules import RULES, classify, rule_for


def eta_of(summary: float) -> float:
    return math.log((1 + math.sqrt(1 + 4 * summary)) / 2)


def test_kinds_come_from_the_module_not_only_the_rank():
    model = nn.Sequential(nn.Embedding(1000, 16), nn.Linear(16, 8, bias=False), nn.LayerNorm(8),
                          nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    # a norm layer's gain is "norm"; its shift, like any bias, is "bias" (docs/beyond.md)
    assert classify(model) == {"0.weight": "embedding", "1.weight": "matrix", "2.weight": "norm", "2.bias": "bias",
                               "3.weight": "conv", "3.bias": "bias", "4.weight": "norm", "4.bias": "bias"}
    # without a module, a tensor is known by its rank alone
    assert [rule_for(torch.ones(s)).kind for s in [(1000, 16), (4, 1, 3, 3)]] == ["matrix", "conv"]


@pytest.mark.parametrize(("kind", "shape", "scale", "blocks"), [
    ("matrix", (64, 16), 2.0, 1),                       # sqrt(64/16)
    ("matrix", (10, 40), 0.5, 1),                       # sqrt(10/40)
    ("conv", (8, 2, 3, 3), 2.0 / 3.0, 9),               # sqrt(8/2) / sqrt(9)
    ("conv", (6, 6, 1, 5), 1 / math.sqrt(5), 5),        # sqrt(1) / sqrt(5)
    ("embedding", (1000, 16), math.sqrt(16 / 1000), 1),  # maps vocab 1000 -> dim 16: 0.1265, not 7.9
])
def test_scale_and_block_count_per_kind(kind, shape, scale, blocks):
    assert RULES[kind].scale(shape) == pytest.approx(scale, rel=1e-12)
    assert RULES[kind].blocks(shape) == blocks


def test_a_conv_block_is_one_kernel_position():
    grad = torch.zeros(2, 1, 1, 2)
    grad[:, 0, 0, 0] = torch.tensor([3.0, 4.0])   # position (0, 0): norm 5
    grad[:, 0, 0, 1] = torch.tensor([0.0, 2.0])   # position (0, 1): norm 2
    torch.testing.assert_close(RULES["conv"].norms(grad), torch.tensor([[5.0, 2.0]]))
    torch.testing.assert_close(RULES["matrix"].norms(torch.tensor([[3.0, 4.0]])), torch.tensor(5.0))


@pytest.mark.parametrize(("model", "message"), [
    (nn.Sequential(nn.Linear(3, 4)), r"1?0\.bias has shape \(4,\): it is a bias.*bias=False, or pass extensions=True"),
    (nn.Sequential(nn.Linear(3, 4, bias=False), nn.LayerNorm(4, bias=False)),
     r"1\.weight has shape \(4,\): .*normalisation.*elementwise_affine=False"),
    (nn.Sequential(nn.Embedding(1000, 16)), r"0\.weight has shape \(1000, 16\): it is an nn\.Embedding weight"),
])
def test_kinds_outside_the_paper_are_refused_by_init_and_by_agd(model, message):
    with pytest.raises(ValueError, match=message):
        init_weights(model)
    with pytest.raises(ValueError, match=message):
        AGD(model)
    # with extensions=True they have rules (agd/extensions.py): accepted by both
    init_weights(model, extensions=True)
    AGD(model, extensions=True)


@pytest.mark.parametrize("extensions", [False, True])
def test_a_vector_of_unknown_role_is_refused_by_design_with_the_reason(extensions):
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 4, bias=False)
            self.temperature = nn.Parameter(torch.ones(4))

    # not "not available yet": no rule can size the step of a map AGD does not know
    message = r"temperature has shape \(4,\): .*neither a bias nor .* cannot tell which map.*another optimiser"
    with pytest.raises(ValueError, match=message):
        AGD(Scaled(), extensions=extensions)
    with pytest.raises(ValueError, match=message):
        init_weights(Scaled(), extensions=extensions)


def test_every_kind_with_a_rule_has_a_fast_step_layout():
    # the fast step lays out both views, so no kind falls back to the per-tensor step
    from agd import optim_fast

    assert {rule.view for rule in RULES.values()} <= set(optim_fast.VIEWS)
    assert [kind for kind, rule in RULES.items() if rule.fans is None] == ["vector", "loose"]


def test_a_given_kind_must_fit_the_tensor():
    with pytest.raises(ValueError, match=r"shape \(3, 2\) but is given the kind 'conv'.*rank \(4,\)"):
        AGD([{"params": [nn.Parameter(torch.ones(3, 2))], "kinds": ["conv"]}])
    with pytest.raises(ValueError, match="given the kind 'dense'"):
        AGD([{"params": [nn.Parameter(torch.ones(3, 2))], "kinds": ["dense"]}])


@pytest.mark.parametrize(("tensor", "message"), [
    (torch.ones(5), r"shape \(5,\): it is a 1-D tensor"),
    (torch.ones(2, 3, 4), r"shape \(2, 3, 4\) \(rank 3\)"),
    (torch.ones(()), r"shape \(\) \(rank 0\)"),
    (torch.ones(0, 3), r"empty"),
    (torch.ones(2, 2, dtype=torch.int64), r"dtype torch\.int64"),
])
def test_bare_tensors_without_a_rule_are_refused(tensor, message):
    with pytest.raises(ValueError, match=message):
        AGD([tensor])


@pytest.mark.parametrize("foreach", [False, True], ids=["readable", "foreach"])
def test_frozen_parameters_are_left_out_of_depth_and_never_move(foreach):
    trained, frozen = nn.Parameter(torch.ones(2, 2)), nn.Parameter(torch.ones(2, 2), requires_grad=False)
    trained.grad = torch.tensor([[3.0, 0.0], [0.0, 4.0]])  # ||.||_F = 5, scale 1
    frozen.grad = torch.ones(2, 2)  # set by hand: still not trained
    opt = AGD([trained, frozen], foreach=foreach)
    assert opt.depth == 1
    # L = 1: G = 5, η = log((1 + sqrt(21)) / 2) = 1.0265 (counting the frozen one would give 0.7693)
    assert opt.step().item() == pytest.approx(eta_of(5.0), rel=1e-6)
    assert eta_of(5.0) == pytest.approx(1.0265, abs=1e-4)
    assert torch.equal(frozen.data, torch.ones(2, 2))


@pytest.mark.parametrize("foreach", [False, True], ids=["readable", "foreach"])
def test_float64_weights_step_in_float64(foreach):
    p = nn.Parameter(torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64))
    p.grad = torch.tensor([[0.3, 0.0], [0.0, 0.4]], dtype=torch.float64)  # ||.||_F = 0.5
    conv = nn.Parameter(torch.zeros(1, 1, 1, 2, dtype=torch.float64))  # scale sqrt(1/1)/sqrt(2)
    conv.grad = torch.tensor([[[[0.0, 0.1]]]], dtype=torch.float64)  # blocks of norm 0 and 0.1
    # L = 2: G = (0.5 + (0 + 0.1)/sqrt(2)) / 2; exact to float64 rounding, not float32's 1e-7
    summary = (0.5 + 0.1 / math.sqrt(2)) / 2
    eta = AGD([p, conv], foreach=foreach).step()
    assert eta.dtype == torch.float64 and eta.item() == pytest.approx(eta_of(summary), rel=1e-14)
    expected = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64) - eta_of(summary) / 2 * p.grad / 0.5
    torch.testing.assert_close(p.data, expected, rtol=1e-14, atol=1e-14)
    moved = -eta_of(summary) / 2 / math.sqrt(2)  # the second position moves by (η/L)·scale, the first not
    assert conv.data[0, 0, 0].tolist() == pytest.approx([0.0, moved], rel=1e-14)


def test_sparse_gradient_is_refused_with_the_fix():
    p = nn.Parameter(torch.ones(4, 3))
    p.grad = torch.ones(4, 3).to_sparse()
    with pytest.raises(ValueError, match="sparse gradient.*sparse=False"):
        AGD([p]).step()
    assert torch.equal(p.data, torch.ones(4, 3))


def test_a_tied_parameter_is_classified_once():
    first = nn.Linear(4, 4, bias=False)
    model = nn.Sequential(first, nn.ReLU(), first)
    assert classify(model) == {"0.weight": "matrix"}
    assert AGD(model).depth == 1


def test_an_optimiser_built_from_a_model_round_trips_through_a_state_dict():
    model = nn.Sequential(nn.Conv2d(2, 3, 3, bias=False), nn.Flatten(), nn.Linear(3, 2, bias=False))
    opt = AGD(model)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    eta = opt.step()
    restored = AGD(model.parameters())
    restored.load_state_dict(opt.state_dict())
    assert restored.param_groups[0]["kinds"] == ["conv", "matrix"]
    assert restored.state["step"] == 1 and torch.equal(restored.state["eta"], eta)
