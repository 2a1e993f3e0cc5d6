"""Text sampled from a trained character-level language model (the GPT of docs/beyond.md), so a
reader sees what a validation loss in nats per character means.

The model takes token ids of shape (1, T) and returns (T, vocab) logits (agd/models/gpt.py); the
next character is drawn from the softmax of the last position's logits divided by the temperature,
appended, and the window cropped to the model's context length (its position embedding covers no
more). Sampling uses its own torch.Generator, so a seed gives the same text every time and the
global random state is left as it was.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _check_arguments(n_chars: int, prompt: str, temperature: float) -> None:
    if not isinstance(n_chars, int) or isinstance(n_chars, bool) or n_chars < 0:
        raise ValueError(f"generate: n_chars must be an integer >= 0, got {n_chars!r}.")
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"generate: prompt must be a non-empty string (the model needs one character to "
                         f"start from; the default is a newline), got {prompt!r}.")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"generate: temperature must be a finite number > 0 (1.0 samples the model's own "
                         f"distribution), got {temperature!r}.")


def _device(model: nn.Module) -> torch.device:
    tensor = next(model.parameters(), None)
    if tensor is None:
        tensor = next(model.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


@torch.no_grad()
def _sample(model: nn.Module, ids: torch.Tensor, n_chars: int, context: int, vocab_size: int,
            temperature: float, generator: torch.Generator) -> list[int]:
    out: list[int] = []
    for _ in range(n_chars):
        logits = model(ids[None, -context:])[-1].float()
        if logits.shape != (vocab_size,):
            raise ValueError(f"generate: the model returned {tuple(logits.shape)} logits for the last "
                             f"position, not one per character of the {vocab_size}-character vocabulary; "
                             "sample from a model trained on this data.")
        probs = torch.softmax(logits / temperature, dim=-1)
        token = torch.multinomial(probs, 1, generator=generator)
        ids = torch.cat([ids, token])
        out.append(int(token))
    return out


def generate(model: nn.Module, data, n_chars: int, seed: int, prompt: str = "\n", temperature: float = 1.0) -> str:
    """`n_chars` characters sampled after `prompt` (the prompt itself is not returned).

    Args:
        model: maps token ids (1, T) to logits (T, vocab); its `context` attribute, when present,
            is the longest window it takes (else data.context).
        data: the text data the model was trained on (agd.data.text.TokenData): its vocabulary
            encodes the prompt and decodes the sample.
        seed: seeds the sampler's own generator; the same seed gives the same text.
        temperature: divides the logits before the softmax (below 1: more likely characters).
    """
    _check_arguments(n_chars, prompt, temperature)
    device = _device(model)
    ids = data.encode_text(prompt).to(device)
    context = getattr(model, "context", None) or data.context
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        sampled = _sample(model, ids, n_chars, context, data.num_classes, float(temperature), generator)
    finally:
        model.train(was_training)
    return data.decode(sampled)
