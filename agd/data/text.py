"""A character-level English text corpus for the GPT experiments (beyond the paper; docs/beyond.md).

The corpus is the Jargon File 4.4.7 (Eric S. Raymond et al.), shipped as gzip-compressed plain
text by the Debian package `jargon-text` (`apt-get install jargon-text`, as root) at
/usr/share/doc/jargon-text/jargon.txt.gz: 1,681,817 bytes of UTF-8 English prose once
decompressed. Licence: the upstream text is in the public domain ("to be freely used, shared,
and modified"; /usr/share/doc/jargon-text/copyright); the Debian packaging scripts are GPL-2.
Nothing is downloaded at run time. Any other UTF-8 text file (plain or .gz) can be used instead
through `path`.

Tokens are the corpus's distinct characters, in code-point order. The first `train_fraction` of
the characters is the training split, the rest the validation split (a contiguous tail, so no
validation window overlaps a training window).

Loaders follow the contract of agd.data.loader.DeviceLoader: set_epoch(epoch), __len__, and
__iter__ yielding device tensors (x, y) with x of shape (B, T) (token ids) and y of shape
(B*T,) (the next token at each position, flattened), so that a model returning (B*T, vocab)
logits trains under the ordinary loop with `loss=xent`: the loss is the mean per-token cross
entropy and the accuracy the next-character accuracy.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from agd.data.loader import epoch_generator

DEFAULT_PATH = "/usr/share/doc/jargon-text/jargon.txt.gz"
# Add-k smoothing of the count models behind TokenData.floors: k = 1/2 (the Krichevsky-Trofimov
# estimator, the usual choice for coding a sequence from counts) is fixed in advance rather than
# fitted on the validation split. On the Jargon File's whole validation split it gives the lowest
# bigram floor of k = 0.01, 0.1, 0.5, 1 (2.653 nats; the four differ by under 0.005), and the
# unigram floor moves by under 0.001 over that range.
SMOOTHING_K = 0.5
INSTALL_HINT = "install it with `apt-get install jargon-text` (as root) or pass data.path=<a UTF-8 text file>"


def read_text(path: str | Path) -> str:
    """The whole file as a string (gunzipped when its name ends in .gz), or one clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"The text corpus {path} is missing: {INSTALL_HINT}.")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"The text corpus {path} is not UTF-8 text ({err.reason} at byte {err.start}); "
                         "pass data.path=<a UTF-8 text file>.") from None


def encode(text: str) -> tuple[torch.Tensor, str]:
    """(token ids as int64, the vocabulary as a string whose i-th character is token i)."""
    vocab = "".join(sorted(set(text)))
    lookup = {ch: i for i, ch in enumerate(vocab)}
    ids = torch.tensor([lookup[ch] for ch in text], dtype=torch.long)
    return ids, vocab


@dataclass
class TokenData:
    """A token stream split into training and validation parts, plus the facts the pipeline
    reads (name, num_classes, input_shape, in_dim) and the loaders that serve it."""

    name: str
    train_tokens: torch.Tensor      # 1-D int64
    val_tokens: torch.Tensor        # 1-D int64
    vocab: str
    context: int                    # T, the tokens a model sees per window
    steps_per_epoch: int            # training batches in one "epoch" (random windows)
    val_windows: int                # validation windows evaluated each epoch (0 = all)

    def __post_init__(self):
        for split, tokens in (("training", self.train_tokens), ("validation", self.val_tokens)):
            if len(tokens) < self.context + 1:
                raise ValueError(f"{self.name}: the {split} split has {len(tokens)} tokens, fewer than "
                                 f"context + 1 = {self.context + 1}; lower data.context.")

    @property
    def num_classes(self) -> int:
        return len(self.vocab)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.context,)

    @property
    def in_dim(self) -> int:
        return self.context

    @property
    def targets_per_example(self) -> int:
        """A window of T tokens has T targets: a model returns (B*T, vocab) logits for (B, T) ids."""
        return self.context

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in ids)

    def encode_text(self, text: str) -> torch.Tensor:
        """The token ids (int64) of `text` under this corpus's vocabulary."""
        lookup = {ch: i for i, ch in enumerate(self.vocab)}
        missing = sorted(set(text) - lookup.keys())
        if missing:
            raise ValueError(f"{self.name}: the characters {''.join(missing)!r} are not in the corpus's "
                             f"{len(self.vocab)}-character vocabulary; use only characters of the corpus.")
        return torch.tensor([lookup[ch] for ch in text], dtype=torch.long)

    def val_starts(self) -> torch.Tensor:
        """Where the validation windows start. The split is tiled by consecutive, non-overlapping
        windows of T tokens; `val_windows` of them (all when 0) are kept, evenly spaced over the
        split, so that a capped validation set samples the whole split. The split is not
        homogeneous: on the Jargon File, a GPT's mean loss over blocks of 256 consecutive windows
        varies by 0.1 nats from block to block, so the first N windows alone would measure one part
        of the text."""
        tiles = torch.arange(0, len(self.val_tokens) - self.context, self.context)
        if not self.val_windows or self.val_windows >= len(tiles):
            return tiles
        return tiles[torch.arange(self.val_windows) * len(tiles) // self.val_windows]

    def floors(self, k: float = SMOOTHING_K) -> dict[str, float]:
        """Validation cross-entropy, in nats per character, of two count models fitted on the
        training split: {"unigram": ..., "bigram": ...}.

        Scored on exactly the targets the models' validation loss averages over: every position of
        every validation window (val_starts), T targets a window, the mean over all of them. The
        bigram model predicts each target from the character before it, which is always inside the
        window (a window's first target follows its first input). Both models are add-k (Lidstone)
        smoothed over the whole vocabulary, so a character absent from the training split gets a
        probability of at least k / (N + k V), never zero.
        """
        if not k > 0:
            raise ValueError(f"floors: the smoothing k must be > 0 (zero gives an infinite loss on characters "
                             f"unseen in training), got {k!r}.")
        v, train = self.num_classes, self.train_tokens
        index = self.val_starts()[:, None] + torch.arange(self.context + 1)
        chunk = self.val_tokens[index]                       # (windows, T + 1)
        prev, target = chunk[:, :-1].reshape(-1), chunk[:, 1:].reshape(-1)
        unigram = torch.bincount(train, minlength=v).double() + k
        bigram = torch.bincount(train[:-1] * v + train[1:], minlength=v * v).double().view(v, v) + k
        unigram_nll = -(unigram[target] / unigram.sum()).log().mean()
        bigram_nll = -(bigram[prev, target] / bigram.sum(1)[prev]).log().mean()
        return {"unigram": unigram_nll.item(), "bigram": bigram_nll.item()}

    def make_loaders(self, batch_size: int, *, seed: int, device, rank: int = 0, world_size: int = 1,
                     eval_batch_size: int = 1000, **_unused):
        """(training loader of random windows, validation loader of the fixed windows of val_starts)."""
        if batch_size < world_size:
            raise ValueError(f"batch_size {batch_size} is smaller than the {world_size} ranks.")
        train = RandomWindows(self.train_tokens, self.context, batch_size, self.steps_per_epoch,
                              seed=seed, device=device, rank=rank, world_size=world_size)
        starts = self.val_starts()
        # eval_batch_size counts examples for images; here a window of T tokens is one example
        val = FixedWindows(self.val_tokens, self.context, starts, max(eval_batch_size // self.context, 1),
                           device=device, rank=rank, world_size=world_size)
        return train, val


def windows(tokens: torch.Tensor, starts: torch.Tensor, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x[b] = tokens[s_b : s_b + T], y = tokens[s_b + 1 : s_b + T + 1] flattened to (B*T,)."""
    index = starts[:, None] + torch.arange(context + 1, device=tokens.device)
    chunk = tokens[index]
    return chunk[:, :-1], chunk[:, 1:].reshape(-1)


class RandomWindows:
    """`steps` batches per epoch of windows starting at uniformly drawn positions, drawn from a
    generator seeded by (seed, epoch), so resuming at epoch k replays what an uninterrupted run
    sees. With world_size > 1 each rank keeps its own slice of every global batch."""

    def __init__(self, tokens: torch.Tensor, context: int, batch_size: int, steps: int, *, seed: int,
                 device, rank: int = 0, world_size: int = 1):
        if batch_size < 1 or steps < 1:
            raise ValueError(f"batch_size and steps_per_epoch must be >= 1, got {batch_size} and {steps}.")
        self.device = torch.device(device)
        self.tokens = tokens.to(self.device)
        self.context, self.batch_size, self.steps, self.seed = context, batch_size, steps, seed
        self.rank, self.world_size, self.epoch = rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    @property
    def num_samples(self) -> int:
        return self.steps * self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = epoch_generator(self.seed, self.epoch)
        last_start = len(self.tokens) - self.context - 1  # inclusive
        starts = torch.randint(0, last_start + 1, (self.steps, self.batch_size), generator=gen).to(self.device)
        for row in starts:
            yield windows(self.tokens, row[self.rank::self.world_size], self.context)


class FixedWindows:
    """The same windows in the same order every epoch (the validation set)."""

    def __init__(self, tokens: torch.Tensor, context: int, starts: torch.Tensor, batch_size: int, *,
                 device, rank: int = 0, world_size: int = 1):
        self.device = torch.device(device)
        self.tokens = tokens.to(self.device)
        self.starts = starts[rank::world_size].to(self.device)
        self.context, self.batch_size = context, batch_size

    def set_epoch(self, epoch: int) -> None:
        pass

    def __len__(self) -> int:
        return math.ceil(len(self.starts) / self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.starts)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for begin in range(0, len(self.starts), self.batch_size):
            yield windows(self.tokens, self.starts[begin:begin + self.batch_size], self.context)


def load(path: str = DEFAULT_PATH, context: int = 64, train_fraction: float = 0.9, steps_per_epoch: int = 50,
         val_windows: int = 0, name: str = "jargon") -> TokenData:
    """The corpus at `path`, character-tokenised and split (first `train_fraction` for training)."""
    if not isinstance(context, int) or isinstance(context, bool) or context < 1:
        raise ValueError(f"text context must be an integer >= 1, got {context!r}.")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"text train_fraction must be between 0 and 1, got {train_fraction!r}.")
    if not isinstance(val_windows, int) or val_windows < 0:
        raise ValueError(f"text val_windows must be an integer >= 0 (0 = all), got {val_windows!r}.")
    ids, vocab = encode(read_text(path))
    cut = int(len(ids) * train_fraction)
    return TokenData(name=name, train_tokens=ids[:cut], val_tokens=ids[cut:], vocab=vocab, context=context,
                     steps_per_epoch=steps_per_epoch, val_windows=val_windows)
