"""A small decoder-only GPT for character-level language modelling (beyond the paper;
docs/beyond.md).

    tokens (B, T) -> token embedding + position embedding -> depth x [x + attn(LN(x)),
    x + mlp(LN(x))] -> LN -> head -> logits (B*T, vocab)

Pre-norm blocks (LayerNorm before each sublayer, one more before the head), causal multi-head
self-attention through torch's scaled_dot_product_attention, an MLP of width 4*width with GELU.
The query, key, value and output projections are separate (width, width) Linear layers, so every
projection is a plain matrix with one scale (no fused qkv matrix to split into blocks).

The head is *untied* from the token embedding: AGD treats the embedding as a (width, vocab)
matrix applied to one-hot inputs and the head as a (vocab, width) matrix applied to
unit-scale features; they have different scales and normalisations, so sharing one tensor
would give it two contradictory rules.

Logits come back flattened to (B*T, vocab) so that the ordinary training loop's
`loss_fn(out, y)` with y of shape (B*T,) is the mean per-token cross entropy and its top-1
accuracy the next-token accuracy (agd/data/text.py).

Biases and LayerNorm affine parameters are on by default (`bias=True`), as in GPT-2; AGD trains
them, and the embeddings, only with `extensions=True` (agd/extensions.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from agd.models.common import positive_int


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, bias: bool):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width, bias=bias)
        self.key = nn.Linear(width, width, bias=bias)
        self.value = nn.Linear(width, width, bias=bias)
        self.out = nn.Linear(width, width, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        # (B, T, C) -> (B, heads, T, C / heads)
        q, k, v = (proj(x).view(b, t, self.heads, c // self.heads).transpose(1, 2)
                   for proj in (self.query, self.key, self.value))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, bias: bool):
        super().__init__()
        self.attn_norm = nn.LayerNorm(width, elementwise_affine=bias, bias=bias)
        self.attn = CausalSelfAttention(width, heads, bias)
        self.mlp_norm = nn.LayerNorm(width, elementwise_affine=bias, bias=bias)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width, bias=bias), nn.GELU(),
                                 nn.Linear(4 * width, width, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))


def _context_length(input_shape) -> int:
    if (not isinstance(input_shape, Sequence) or isinstance(input_shape, str) or len(input_shape) != 1
            or not isinstance(input_shape[0], int) or isinstance(input_shape[0], bool) or input_shape[0] < 1):
        raise ValueError(f"GPT input_shape must be (context_length,) with a positive integer, got {input_shape!r}.")
    return input_shape[0]


class GPT(nn.Module):
    """Decoder-only transformer over `num_classes` tokens with windows of `input_shape[0]` tokens.

    Args:
        input_shape: (context_length,), the largest T the position embedding covers.
        num_classes: the vocabulary size (the head's output size).
        width: the residual stream's size; must be a multiple of `heads`.
        depth: the number of transformer blocks.
        heads: attention heads per block.
        bias: biases in every Linear and affine LayerNorms (GPT-2's layout) if True; with
            False the model is bias-free and its norms have no parameters.
    """

    def __init__(self, *, input_shape: tuple[int, ...], num_classes: int, width: int = 64, depth: int = 2,
                 heads: int = 4, bias: bool = True):
        super().__init__()
        context = _context_length(input_shape)
        positive_int("GPT", "num_classes", num_classes, 2)
        positive_int("GPT", "width", width)
        positive_int("GPT", "depth", depth)
        positive_int("GPT", "heads", heads)
        if width % heads:
            raise ValueError(f"GPT width {width} must be a multiple of heads {heads}.")
        self.context, self.width, self.depth = context, width, depth
        self.token_embedding = nn.Embedding(num_classes, width)
        self.position_embedding = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads, bias) for _ in range(depth))
        self.final_norm = nn.LayerNorm(width, elementwise_affine=bias, bias=bias)
        self.head = nn.Linear(width, num_classes, bias=bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.shape[1] > self.context:
            raise ValueError(f"GPT expects token ids of shape (batch, T) with T <= {self.context}, "
                             f"got {tuple(tokens.shape)}.")
        if tokens.is_floating_point():  # ids given as floats (a shape probe's zeros): whole numbers
            tokens = tokens.long()
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.final_norm(x))
        return logits.reshape(-1, logits.shape[-1])
