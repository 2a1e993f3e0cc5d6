"""The rules beyond the paper (agd/extensions.py): biases, norm affines, embeddings.

Values are worked by hand from docs/beyond.md, independently of the rule code."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from training import cross_entropy_losses

from agd.init import init_weights
from agd.optim import AGD
from agd.rules import RULES, classify


@pytest.mark.parametrize(("kind", "shape", "scale", "in_depth"), [
    ("bias", (4,), 2.0, False),                          # (4, 1) on the constant 1: sqrt(4/1)
    ("bias", (256,), 16.0, False),
    ("norm", (7,), 1.0, False),                          # diag(γ), (7, 7): sqrt(7/7)
    ("embedding", (1000, 16), math.sqrt(16 / 1000), True),  # one-hot of 1000 -> 16
])
def test_scale_and_depth_per_kind(kind, shape, scale, in_depth):
    # the entries of the one table, as agd/rules.py builds it (no registration step)
    rule = RULES[kind]
    assert rule.scale(shape) == pytest.approx(scale, rel=1e-12)
    assert rule.in_depth is in_depth and rule.in_update_size is in_depth  # biases and gains: in neither
    assert not rule.paper and rule.fans is not None and not rule.spectral


def test_module_context_decides_the_kind_of_each_parameter():
    model = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 4), nn.LayerNorm(4), nn.BatchNorm1d(4),
                          nn.Conv1d(4, 2, 1))
    assert classify(model) == {"0.weight": "embedding", "1.weight": "matrix", "1.bias": "bias",
                               "2.weight": "norm", "2.bias": "bias", "3.weight": "norm", "3.bias": "bias",
                               "4.weight": None, "4.bias": "bias"}  # a rank-3 kernel has no rule


def test_initialisation_of_each_kind():
    model = nn.Sequential(nn.Embedding(3, 8), nn.Linear(8, 4), nn.LayerNorm(4))
    for p in model.parameters():
        nn.init.constant_(p, 5.0)
    init_weights(model, torch.Generator().manual_seed(0), extensions=True)
    embedding = model[0].weight.detach()  # vocab 3 <= dim 8: orthogonal token vectors of norm sqrt(8/3)
    torch.testing.assert_close(embedding @ embedding.T, torch.eye(3) * 8 / 3)
    torch.testing.assert_close(model[1].bias.detach(), torch.zeros(4))
    torch.testing.assert_close(model[2].weight.detach(), torch.ones(4))
    torch.testing.assert_close(model[2].bias.detach(), torch.zeros(4))


def test_embedding_wider_vocabulary_than_dimension_gets_equal_token_norms():
    weight = torch.empty(10, 4)
    RULES["embedding"].init(weight, RULES["embedding"].scale(weight.shape), torch.Generator().manual_seed(1))
    # the paper's Frobenius norm sqrt(4/10) * sqrt(min(10, 4)) = 1.2649, spread equally over 10 tokens
    torch.testing.assert_close(weight.norm(dim=1), torch.full((10,), 0.4))
    assert weight.norm().item() == pytest.approx(math.sqrt(0.4) * 2, rel=1e-6)


def test_one_step_with_a_bias_by_hand():
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(2))
        layer.bias.zero_()
    layer.weight.grad = torch.tensor([[3.0, 0.0], [0.0, 4.0]])  # ||.||_F = 5, scale sqrt(2/2) = 1
    layer.bias.grad = torch.tensor([0.6, 0.8])                   # ||.|| = 1, scale sqrt(2/1)
    optimizer = AGD(layer, extensions=True)
    assert optimizer.depth == 1  # the bias adds no depth
    eta = optimizer.step().item()
    summary = (1 * 5 + math.sqrt(2) * 1) / 1  # G = (1/L) Σ scale·||grad||, over every tensor that moves
    expected_eta = math.log((1 + math.sqrt(1 + 4 * summary)) / 2)  # 1.125416...
    assert eta == pytest.approx(expected_eta, rel=1e-6)
    torch.testing.assert_close(layer.weight.detach(),
                               torch.eye(2) - expected_eta * torch.tensor([[0.6, 0.0], [0.0, 0.8]]))
    torch.testing.assert_close(layer.bias.detach(), -expected_eta * math.sqrt(2) * torch.tensor([0.6, 0.8]))


def test_one_step_with_a_norm_gain_and_an_embedding_by_hand():
    model = nn.Sequential(nn.Embedding(2, 2), nn.LayerNorm(2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2))
        model[1].weight.fill_(1.0)
    model[0].weight.grad = torch.tensor([[0.0, 2.0], [0.0, 0.0]])  # ||.||_F = 2, scale sqrt(2/2) = 1
    model[1].weight.grad = torch.tensor([-3.0, 4.0])               # ||.|| = 5, scale 1
    optimizer = AGD(model, extensions=True)
    assert optimizer.depth == 1  # the gain belongs to the embedding's layer
    eta = optimizer.step().item()
    summary = (1 * 2 + 1 * 5) / 1  # 7
    expected_eta = math.log((1 + math.sqrt(1 + 4 * summary)) / 2)  # 1.4607...
    assert eta == pytest.approx(expected_eta, rel=1e-6)
    torch.testing.assert_close(model[0].weight.detach(), torch.tensor([[1.0, -expected_eta], [0.0, 1.0]]))
    torch.testing.assert_close(model[1].weight.detach(),
                               torch.tensor([1 + expected_eta * 0.6, 1 - expected_eta * 0.8]))


def test_a_zero_bias_gradient_leaves_the_bias_in_place():
    layer = nn.Linear(2, 3)
    layer.weight.grad = torch.ones(3, 2)
    layer.bias.grad = torch.zeros(3)
    before = layer.bias.detach().clone()
    AGD(layer, extensions=True).step()
    torch.testing.assert_close(layer.bias.detach(), before)


class _OrdinaryModel(nn.Module):
    """An ordinary PyTorch model: embedding, biased linears, LayerNorm with affine parameters."""

    def __init__(self, vocab: int = 12, width: int = 32):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.norm = nn.LayerNorm(width)
        self.hidden = nn.Linear(width, width)
        self.out = nn.Linear(width, vocab)

    def forward(self, tokens):
        return self.out(torch.relu(self.hidden(self.norm(self.embed(tokens)))))


def test_an_ordinary_model_trains_with_the_two_lines():
    torch.manual_seed(0)
    tokens = torch.randint(0, 12, (256,))
    targets = (3 * tokens + 1) % 12  # a fixed map from each token to the next
    model = _OrdinaryModel()
    init_weights(model, extensions=True)                 # line 1
    optimizer = AGD(model, extensions=True)              # line 2
    losses = cross_entropy_losses(model, optimizer, tokens, targets, steps=60)
    assert losses[-1] < 0.25 * losses[0]
    assert all(math.isfinite(v) for v in losses)


def test_whole_model_update_size_averages_over_the_tensors_in_depth():
    # biases and norm gains move but are not in L: the reported (1/L) Σ_k ||ΔW_k||/||W_k|| must be
    # over the weight matrices only, equal to the change measured from copies of them
    from agd.models import FCN

    torch.manual_seed(0)
    model = FCN(depth=3, width=16, input_shape=(8,), num_classes=4, bias=True)
    init_weights(model, extensions=True)
    opt = AGD(model, extensions=True)
    opt.measure_update_size = True
    for _ in range(3):  # from step 2 on the biases are non-zero, so counting them would show
        before = [p.detach().clone() for p in model.parameters() if p.dim() == 2]
        loss = model(torch.randn(32, 8)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        after = [p.detach() for p in model.parameters() if p.dim() == 2]
        measured = sum(((a - b).norm() / b.norm()).item() for a, b in zip(after, before, strict=True)) / 3
        assert opt.state["update_size"].item() == pytest.approx(measured, rel=1e-5)
