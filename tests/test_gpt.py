"""The small GPT (agd/models/gpt.py), the AdamW warm-up + cosine baseline (agd/schedules.py), and
both through the ordinary training loop on a small text file."""

from __future__ import annotations

import gzip
import json
import math

import pytest
import torch
from conftest import run_train
from torch import nn
from training import cross_entropy_losses

from agd.init import init_weights
from agd.models.gpt import GPT
from agd.optim import AGD
from agd.rules import classify
from agd.schedules import AdamWCosine, warmup_cosine


def _model(**kwargs) -> GPT:
    torch.manual_seed(0)
    return GPT(**{"input_shape": (8,), "num_classes": 11, "width": 16, "depth": 2, "heads": 2, **kwargs})


def test_logits_are_flattened_per_token():
    model = _model()
    out = model(torch.randint(0, 11, (3, 8)))
    assert out.shape == (24, 11)
    assert model(torch.randint(0, 11, (2, 5))).shape == (10, 11)  # shorter windows work too


def test_attention_is_causal():
    model = _model().eval()
    tokens = torch.randint(0, 11, (1, 8))
    changed = tokens.clone()
    changed[0, 5] = (changed[0, 5] + 1) % 11
    before, after = model(tokens), model(changed)
    torch.testing.assert_close(before[:5], after[:5])          # positions 0..4 cannot see position 5
    assert not torch.allclose(before[5:], after[5:])


def test_kinds_of_the_parameters_with_and_without_bias():
    kinds = classify(_model())
    assert kinds["token_embedding.weight"] == kinds["position_embedding.weight"] == "embedding"
    assert kinds["blocks.0.attn.query.weight"] == kinds["head.weight"] == "matrix"
    assert kinds["blocks.0.attn_norm.weight"] == "norm"
    assert kinds["blocks.1.mlp.0.bias"] == kinds["final_norm.bias"] == "bias"
    bias_free = classify(_model(bias=False))
    assert sorted(set(bias_free.values())) == ["embedding", "matrix"]
    # per block: query, key, value, out, MLP up and down; plus head and two embeddings
    assert len(bias_free) == 2 * 6 + 3
    assert _model(bias=False).head.weight.shape == (11, 16)  # untied from the (11, 16) token embedding
    assert _model().head.weight.data_ptr() != _model().token_embedding.weight.data_ptr()


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(input_shape=(3, 8)), r"input_shape must be \(context_length,\)"),
    (dict(width=10, heads=4), "width 10 must be a multiple of heads 4"),
    (dict(num_classes=1), "num_classes must be an integer >= 2"),
    (dict(depth=0), "depth must be an integer >= 1"),
])
def test_bad_options_name_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _model(**kwargs)


def test_agd_trains_the_whole_gpt_without_a_learning_rate():
    text = torch.tensor([0, 1, 2, 0, 1, 3] * 50)  # "abcabd": every character but one determined
    x = torch.stack([text[i:i + 8] for i in range(0, 280, 7)])
    y = torch.stack([text[i + 1:i + 9] for i in range(0, 280, 7)]).reshape(-1)
    model = _model(num_classes=4)
    init_weights(model, torch.Generator().manual_seed(0), extensions=True)
    optimizer = AGD(model, extensions=True)
    losses = cross_entropy_losses(model, optimizer, x, y, steps=40)
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.45 * losses[0]  # 1.75 -> 0.59 in 40 steps; the best possible is ln(2)/6 = 0.12


def test_windows_longer_than_the_context_are_refused():
    with pytest.raises(ValueError, match="T <= 8"):
        _model()(torch.zeros(1, 9, dtype=torch.long))


def test_warmup_cosine_values_by_hand():
    # peak 1, warm-up 2 of 6 steps, floor 0.1: 0.5, 1, then cosine over 4 steps from 1 to 0.1
    values = [warmup_cosine(t, 1.0, 2, 6, 0.1) for t in range(8)]
    cosine = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert values == pytest.approx([0.5, 1.0] + cosine + [0.1, 0.1])


def test_adamw_cosine_follows_the_schedule_and_resumes_it():
    weight = nn.Parameter(torch.ones(2))
    optimizer = AdamWCosine([weight], lr=0.1, total_steps=10, warmup_fraction=0.2)  # 2 warm-up steps
    seen = []
    for _ in range(4):
        weight.grad = torch.ones(2)
        optimizer.step()
        seen.append(optimizer.param_groups[0]["lr"])
    assert seen == pytest.approx([warmup_cosine(t, 0.1, 2, 10, 0.1) for t in range(4)])
    fresh = AdamWCosine([nn.Parameter(torch.ones(2))], lr=0.1, total_steps=10, warmup_fraction=0.2)
    fresh.load_state_dict(optimizer.state_dict())
    fresh.param_groups[0]["params"][0].grad = torch.ones(2)
    fresh.step()
    assert fresh.param_groups[0]["lr"] == pytest.approx(warmup_cosine(4, 0.1, 2, 10, 0.1))


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(total_steps=0), "total_steps must be an integer >= 1"),
    (dict(warmup_fraction=1.5), "warmup_fraction must be between 0 and 1"),
    (dict(lr=0.0), "lr must be positive"),
])
def test_adamw_cosine_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdamWCosine([nn.Parameter(torch.ones(2))], **{"lr": 0.1, "total_steps": 10, **kwargs})


def test_the_gpt_trains_on_a_text_file_through_the_training_loop(tmp_path):
    corpus = tmp_path / "text.txt.gz"
    corpus.write_bytes(gzip.compress(("abcabd" * 400).encode()))
    runs = tmp_path / "runs"
    result = run_train(["model=gpt", "data=jargon", f"data.path={corpus}", "data.context=8",
                        "data.steps_per_epoch=30", "data.val_windows=8", "loss=xent", "optimizer=adamw_cosine",
                        "optimizer.lr=0.01", "+schedule_steps=60", "model.width=16", "model.depth=1",
                        "batch_size=8", "epochs=2", "logger=none", "progress=false", "track_update_size=false"],
                       runs)
    assert result.returncode == 0, result.stderr
    summary = json.loads(next(runs.glob("**/summary.json")).read_text())
    # "c" follows "ab" half the time and "d" the other half; every other character is determined:
    # next-character accuracy 5/6 is the best possible, chance over 4 symbols is 1/4
    assert summary["status"] == "complete"
    assert summary["test_acc"] > 0.6
