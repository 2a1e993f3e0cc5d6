"""Sampling text from a character-level model (agd/textgen.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from agd.data.text import TokenData
from agd.models.gpt import GPT
from agd.textgen import generate

VOCAB = "\n abcdefgh."  # 11 characters


def _data(context: int = 8) -> TokenData:
    tokens = torch.arange(40) % len(VOCAB)
    return TokenData(name="toy", train_tokens=tokens, val_tokens=tokens, vocab=VOCAB, context=context,
                     steps_per_epoch=1, val_windows=0)


def _gpt(context: int = 8) -> GPT:
    torch.manual_seed(0)
    return GPT(input_shape=(context,), num_classes=len(VOCAB), width=16, depth=1, heads=2)


class OneCharacter(nn.Module):
    """Logits that put all the mass on one token at every position; records the mode it ran in."""

    def __init__(self, token: int):
        super().__init__()
        self.token, self.context, self.modes = token, 8, []
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        assert ids.shape[0] == 1 and ids.shape[1] <= self.context
        logits = torch.full((ids.numel(), len(VOCAB)), -1e4) * self.scale
        logits[:, self.token] = 0.0
        return logits


def test_a_seed_gives_the_same_text_and_another_seed_other_text():
    model, data = _gpt(), _data()
    first = generate(model, data, 60, seed=3)
    assert generate(model, data, 60, seed=3) == first
    assert generate(model, data, 60, seed=4) != first


def test_the_sample_has_the_asked_length_in_the_vocabulary_past_the_context():
    model, data = _gpt(context=8), _data(context=8)
    text = generate(model, data, 50, seed=0, prompt="abc abc abc")  # prompt and sample exceed T = 8
    assert len(text) == 50
    assert set(text) <= set(VOCAB)
    assert generate(model, data, 0, seed=0) == ""


def test_a_model_that_always_predicts_one_character_writes_only_that_character():
    model = OneCharacter(VOCAB.index("e"))
    model.train()
    assert generate(model, _data(), 20, seed=0) == "e" * 20
    assert model.modes and not any(model.modes)   # sampled in eval mode
    assert model.training                         # and the caller's mode is restored


def test_sampling_leaves_the_global_random_state_alone():
    model, data = _gpt(), _data()
    before = torch.get_rng_state()
    generate(model, data, 30, seed=1)
    assert torch.equal(torch.get_rng_state(), before)


def test_low_temperature_concentrates_on_the_likeliest_character():
    model, data = _gpt(), _data()
    with torch.no_grad():
        model.head.bias.zero_()
        model.head.bias[VOCAB.index("h")] = 2.0   # the likeliest character everywhere, but not by far
    hot = generate(model, data, 200, seed=0, temperature=1.0)
    cold = generate(model, data, 200, seed=0, temperature=0.05)
    assert cold.count("h") > 190 > hot.count("h")


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(prompt="xyz"), "not in the corpus"),
    (dict(prompt=""), "prompt must be a non-empty string"),
    (dict(temperature=0.0), "temperature must be a finite number > 0"),
    (dict(n_chars=-1), "n_chars must be an integer >= 0"),
])
def test_bad_arguments_name_the_fix(kwargs, message):
    arguments = {"n_chars": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(_gpt(), _data(), seed=0, **arguments)
