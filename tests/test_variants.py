"""The AGD variants beyond the paper (docs/beyond.md, "Variants"): momentum, spectral updates and a
gain above 1, each off by default. Values are worked by hand (the Newton–Schulz reference goes
through an SVD, not the optimiser's iteration), and the fast step is tested equal to the readable
one for every variant and every kind."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from training import (
    WHOLE_MODEL,
    agd_for,
    batches_for,
    build,
    initialised_model,
    largest_difference,
    random_regression_etas,
    square_loss_etas,
)

from agd import AGD
from agd.functional import orthogonalize

CONF = Path(__file__).resolve().parents[1] / "conf" / "optimizer"


@pytest.fixture(params=[False, True], ids=["readable", "foreach"])
def foreach(request):
    return request.param


def eta_of(summary: float) -> float:
    return math.log((1 + math.sqrt(1 + 4 * summary)) / 2)


def newton_schulz_by_svd(x: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """What five quintic Newton–Schulz steps do to x, computed on its singular values: x / ||x||_F
    keeps its singular vectors, and each singular value s goes to a·s + b·s³ + c·s⁵, five times."""
    u, s, vh = torch.linalg.svd(x.double(), full_matrices=False)
    s = s / s.norm()
    for _ in range(steps):
        s = 3.4445 * s - 4.7750 * s ** 3 + 2.0315 * s ** 5
    return (u * s) @ vh


# ---------------------------------------------------------------- momentum

def test_momentum_two_steps_by_hand(foreach):
    w = nn.Parameter(torch.zeros(2, 2))
    opt = AGD([w], momentum=0.5, foreach=foreach)
    w.grad = torch.tensor([[3.0, 0.0], [0.0, 4.0]])  # ||.||_F = 5, scale 1, L = 1
    eta1 = opt.step().item()
    # the first step's average is the gradient itself: the paper's step
    assert eta1 == pytest.approx(eta_of(5.0), rel=1e-6)
    after1 = -eta1 * torch.tensor([[0.6, 0.0], [0.0, 0.8]])
    torch.testing.assert_close(w.data, after1)
    w.grad = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    eta2 = opt.step().item()
    # d = 0.5·g1 + 0.5·g2 = diag(1.5, 2.5), ||d|| = sqrt(8.5) = 2.9155: G and the direction both read d
    d = torch.tensor([[1.5, 0.0], [0.0, 2.5]])
    assert eta2 == pytest.approx(eta_of(math.sqrt(8.5)), rel=1e-6)
    torch.testing.assert_close(w.data, after1 - eta2 * d / math.sqrt(8.5))
    torch.testing.assert_close(opt.state[w]["momentum"], d)


def test_momentum_is_off_by_default_and_keeps_no_state():
    w = nn.Parameter(torch.ones(2, 2))
    w.grad = torch.ones(2, 2)
    opt = AGD([w])
    opt.step()
    assert opt.defaults["momentum"] == 0.0 and opt.defaults["orthogonalize"] is False
    assert w not in opt.state


def _mlp(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8, bias=False), nn.ReLU(), nn.Linear(8, 3, bias=False))


def test_momentum_round_trips_through_a_state_dict(foreach):
    model = _mlp(0)
    opt = AGD(model.parameters(), momentum=0.9, orthogonalize=True, foreach=foreach)
    random_regression_etas(model, opt, 3, seed=10)
    # a deep copy, as torch.save makes: a state dict holds the live averages, which later steps update in place
    saved_model, saved_opt = {k: v.clone() for k, v in model.state_dict().items()}, copy.deepcopy(opt.state_dict())
    assert set(saved_opt["state"][0]) == {"momentum"}
    etas = random_regression_etas(model, opt, 4, seed=11)
    clone = _mlp(1)
    clone.load_state_dict(saved_model)
    restored = AGD(clone.parameters(), foreach=foreach)  # the settings come back with the state dict
    restored.load_state_dict(saved_opt)
    assert restored.param_groups[0]["momentum"] == 0.9 and restored.param_groups[0]["orthogonalize"] is True
    assert random_regression_etas(clone, restored, 4, seed=11) == etas
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), clone.parameters(), strict=True))


def test_a_state_dict_from_before_the_variants_loads_with_the_paper_settings():
    model = _mlp(0)
    opt = AGD(model.parameters())
    random_regression_etas(model, opt, 1, seed=1)
    old = opt.state_dict()
    for group in old["param_groups"]:  # as AGD saved it before it had the variants
        del group["momentum"], group["orthogonalize"]
    fresh = AGD(model.parameters())
    fresh.load_state_dict(old)
    assert fresh.param_groups[0]["momentum"] == 0.0 and fresh.param_groups[0]["orthogonalize"] is False
    random_regression_etas(model, fresh, 1, seed=2)


@pytest.mark.parametrize("check_finite", [True, False])
def test_a_nonfinite_step_leaves_the_moving_average_as_it_was(check_finite, foreach):
    w = nn.Parameter(torch.zeros(2, 2))
    opt = AGD([w], momentum=0.5, check_finite=check_finite, foreach=foreach)
    w.grad = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
    opt.step()
    kept, weights = opt.state[w]["momentum"].clone(), w.detach().clone()
    w.grad = torch.tensor([[float("nan"), 0.0], [0.0, 1.0]])
    if check_finite:
        with pytest.raises(FloatingPointError):
            opt.step()
    else:
        assert opt.step().item() == 0.0
    assert torch.equal(opt.state[w]["momentum"], kept) and torch.equal(w.data, weights)


def test_a_compiled_step_skips_a_nonfinite_gradient_without_touching_the_average():
    # under torch.compile nothing is read on the host: the average is kept by a lerp of weight 0
    w, conv = nn.Parameter(torch.zeros(3, 2)), nn.Parameter(torch.zeros(2, 2, 3, 3))
    opt = AGD([w, conv], momentum=0.9, orthogonalize=True, check_finite=False, foreach=True)
    step = torch.compile(opt.step, backend="aot_eager")
    w.grad, conv.grad = torch.ones(3, 2), torch.ones(2, 2, 3, 3)
    step()
    kept = [opt.state[p]["momentum"].clone() for p in (w, conv)]
    weights = [p.detach().clone() for p in (w, conv)]
    conv.grad[1, 0, 2, 2] = float("inf")
    assert step().item() == 0.0 and opt.state["nonfinite_steps"].item() == 1
    assert all(torch.equal(opt.state[p]["momentum"], k) for p, k in zip((w, conv), kept, strict=True))
    assert all(torch.equal(p.data, k) for p, k in zip((w, conv), weights, strict=True))


def test_a_tensor_without_a_gradient_keeps_its_average_and_stays(foreach):
    a, b = nn.Parameter(torch.zeros(2, 2)), nn.Parameter(torch.zeros(2, 2))
    opt = AGD([a, b], momentum=0.9, foreach=foreach)
    a.grad, b.grad = torch.ones(2, 2), torch.eye(2)
    opt.step()
    kept, where = opt.state[b]["momentum"].clone(), b.detach().clone()
    b.grad = None
    opt.step()
    assert torch.equal(opt.state[b]["momentum"], kept) and torch.equal(b.data, where)


# ---------------------------------------------------------------- spectral updates

@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 4)])
def test_newton_schulz_matches_its_action_on_the_singular_values(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(orthogonalize(x).double(), newton_schulz_by_svd(x), rtol=1e-4, atol=1e-5)
    assert torch.equal(orthogonalize(torch.zeros(shape)), torch.zeros(shape))  # 0/0 := 0


def test_newton_schulz_brings_every_singular_value_near_one():
    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(1))
    s = torch.linalg.svdvals(orthogonalize(x))
    assert s.min() > 0.6 and s.max() < 1.25  # Muon's coefficients trade exactness for speed


def test_spectral_step_by_hand(foreach):
    gen = torch.Generator().manual_seed(2)
    start = torch.randn(3, 2, generator=gen)
    w = nn.Parameter(start.clone())
    w.grad = torch.randn(3, 2, generator=gen)
    eta = AGD([w], orthogonalize=True, foreach=foreach).step().item()
    # G is the paper's (Frobenius norms); the direction is the orthogonalised gradient
    scale = math.sqrt(3 / 2)
    assert eta == pytest.approx(eta_of(scale * w.grad.norm().item()), rel=1e-6)
    expected = start.double() - eta * scale * newton_schulz_by_svd(w.grad)
    torch.testing.assert_close(w.data.double(), expected, rtol=1e-4, atol=1e-5)


def test_spectral_conv_orthogonalises_each_kernel_position(foreach):
    gen = torch.Generator().manual_seed(3)
    conv = nn.Parameter(torch.zeros(4, 2, 3, 3))
    conv.grad = torch.randn(4, 2, 3, 3, generator=gen)
    eta = AGD([conv], orthogonalize=True, foreach=foreach).step().item()
    scale = math.sqrt(4 / 2) / 3
    norms = sum(conv.grad[:, :, i, j].norm().item() for i in range(3) for j in range(3))
    assert eta == pytest.approx(eta_of(scale * norms), rel=1e-6)
    for i in range(3):
        for j in range(3):
            torch.testing.assert_close(conv.data[:, :, i, j].double(),
                                       -eta * scale * newton_schulz_by_svd(conv.grad[:, :, i, j]),
                                       rtol=1e-4, atol=1e-5)


def test_spectral_leaves_biases_gains_and_embeddings_on_the_frobenius_rule(foreach):
    model = nn.Sequential(nn.Embedding(3, 2), nn.LayerNorm(2), nn.Linear(2, 2))
    for p in model.parameters():
        nn.init.zeros_(p)
        p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(p.dim()))
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    eta = AGD(model, extensions=True, orthogonalize=True, foreach=foreach).step().item()
    depth = 2  # the embedding and the linear weight
    moved = {name: p.detach() for name, p in model.named_parameters()}
    scales = {"0.weight": math.sqrt(2 / 3), "1.weight": 1.0, "1.bias": math.sqrt(2), "2.bias": math.sqrt(2)}
    for name, scale in scales.items():  # Frobenius-normalised, as in the paper's rule
        torch.testing.assert_close(moved[name], -eta / depth * scale * grads[name] / grads[name].norm())
    torch.testing.assert_close(moved["2.weight"].double(), -eta / depth * newton_schulz_by_svd(grads["2.weight"]),
                               rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- gain, and the two steps agree

@pytest.mark.parametrize("variant", [dict(), dict(momentum=0.9), dict(orthogonalize=True)])
def test_gain_scales_every_variant_update(variant, foreach):
    def delta(gain):
        w, conv = nn.Parameter(torch.zeros(3, 2)), nn.Parameter(torch.zeros(2, 2, 3, 3))
        w.grad = torch.arange(6.0).reshape(3, 2)
        conv.grad = torch.linspace(-1, 1, 36).reshape(2, 2, 3, 3)
        AGD([w, conv], gain=gain, foreach=foreach, **variant).step()
        return w.data, conv.data
    for big, small in zip(delta(10.0), delta(1.0), strict=True):
        torch.testing.assert_close(big, 10 * small)


VARIANTS = {"momentum": dict(momentum=0.9), "spectral": dict(orthogonalize=True),
            "both": dict(momentum=0.9, orthogonalize=True), "gain10": dict(gain=10.0, momentum=0.5)}


@pytest.mark.parametrize("kind", ["fcn", "cnn", *WHOLE_MODEL])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_fast_step_matches_the_readable_one_for_every_variant(kind, variant):
    ours, ref = initialised_model(kind), initialised_model(kind)
    fast, slow = agd_for(ours, kind, foreach=True, **VARIANTS[variant]), \
        agd_for(ref, kind, foreach=False, **VARIANTS[variant])
    fast.measure_update_size = slow.measure_update_size = True
    batches = batches_for(kind, 6)
    assert square_loss_etas(ours, fast, batches) == pytest.approx(square_loss_etas(ref, slow, batches), rel=1e-5)
    # rounding differences between the two orders of summation move with the step, gain times larger
    assert largest_difference(ours, ref) <= 1e-5 * VARIANTS[variant].get("gain", 1.0)
    assert largest_difference(ours, initialised_model(kind)) > 1e-2
    assert fast.state["update_size"].item() == pytest.approx(slow.state["update_size"].item(), rel=1e-5)


@pytest.mark.parametrize("kind", ["cnn", "gpt"])
def test_variants_read_nothing_on_the_host_off_the_cpu(kind):
    # the meta device raises on any host read, as a sync would on a GPU (tests/test_speed_optim.py)
    model = build(kind).to("meta")
    opt = agd_for(model, kind, check_finite=False, momentum=0.9, orthogonalize=True)
    opt.measure_update_size = True
    for _ in range(2):
        for p in model.parameters():
            p.grad = torch.empty_like(p)
        eta = opt.step()
    assert eta.device.type == "meta" and opt.state["step"] == 2


# ---------------------------------------------------------------- the configs

@pytest.mark.parametrize(("name", "expected"), [
    ("agd_momentum", dict(momentum=0.9, orthogonalize=False, gain=1.0)),
    ("agd_spectral", dict(momentum=0.0, orthogonalize=True, gain=1.0)),
    ("agd_gain10", dict(momentum=0.0, orthogonalize=False, gain=10.0)),
    ("agd_whole_model_momentum", dict(momentum=0.9, orthogonalize=False, gain=1.0)),
    ("agd_whole_model_spectral", dict(momentum=0.0, orthogonalize=True, gain=1.0)),
    ("agd_whole_model_gain10", dict(momentum=0.0, orthogonalize=False, gain=10.0)),
])
def test_each_variant_config_builds_its_optimiser(compose, name, expected):
    from experiments.build import build_optimizer

    text = (CONF / f"{name}.yaml").read_text()
    assert text.startswith("# Outside the paper") and "docs/beyond.md" in text.splitlines()[0]
    cfg = compose([f"optimizer={name}"])
    whole = name.startswith("agd_whole_model")
    model = build("gpt" if whole else "fcn")
    opt = build_optimizer(cfg.optimizer, model)
    assert {key: opt.defaults[key] for key in expected} == expected
    assert opt.extensions is whole and cfg.optimizer.init == "paper"
