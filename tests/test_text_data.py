"""The character-level corpus (agd/data/text.py) on small text files written here, and on the real
Debian corpus when it is installed."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import pytest
import torch

from agd.data import make_loaders
from agd.data.text import DEFAULT_PATH, TokenData, encode, load, read_text
from agd.losses import CrossEntropyLoss
from agd.train import evaluate

TEXT = "the quick brown fox jumps over the lazy dog. " * 40  # 1,800 characters


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.txt.gz"
    path.write_bytes(gzip.compress(TEXT.encode("utf-8")))
    return path


def test_plain_and_gzip_files_read_the_same(tmp_path, corpus):
    plain = tmp_path / "corpus.txt"
    plain.write_text("naïve “quotes”", encoding="utf-8")
    assert read_text(plain) == "naïve “quotes”"
    assert read_text(corpus) == TEXT


def test_a_missing_corpus_says_how_to_install_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing: install it with `apt-get install jargon-text`"):
        load(path=str(tmp_path / "absent.txt.gz"))


def test_a_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8 text"):
        load(path=str(path))


def test_characters_are_tokens_in_code_point_order():
    ids, vocab = encode("cabbage")
    assert vocab == "abceg"
    assert ids.tolist() == [2, 0, 1, 1, 0, 4, 3]


def test_the_last_tenth_of_the_characters_validates(corpus):
    data = load(path=str(corpus), context=8)
    assert len(data.train_tokens) == 1620 and len(data.val_tokens) == 180
    assert data.decode(data.val_tokens) == TEXT[1620:]
    assert data.num_classes == len(set(TEXT)) == 28
    assert data.input_shape == (8,) and data.targets_per_example == 8


def test_training_windows_are_next_character_pairs_reproducible_per_seed_and_epoch(corpus):
    data = load(path=str(corpus), context=8, steps_per_epoch=3)
    train, _ = make_loaders(data, 5, seed=1, device="cpu")
    assert len(train) == 3
    batches = list(train)
    assert len(batches) == 3
    x, y = batches[0]
    assert x.shape == (5, 8) and x.dtype == torch.long and y.shape == (40,)
    text = data.decode(data.train_tokens)
    for row, targets in zip(x, y.view(5, 8), strict=True):
        start = text.index(data.decode(row))  # the text repeats: any occurrence has the same successor
        assert data.decode(targets) == text[start + 1:start + 9]
    again = list(train)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))
    train.set_epoch(1)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(batches, list(train), strict=True))


def test_validation_windows_tile_the_split_in_order_and_a_cap_spreads_them(corpus):
    data = load(path=str(corpus), context=8, val_windows=0)
    _, val = make_loaders(data, 5, seed=0, device="cpu", eval_batch_size=16)  # 16 tokens: 2 windows a batch
    xs = [x for x, _ in val]
    assert all(len(x) <= 2 for x in xs)
    windows = torch.cat(xs)
    assert len(windows) == len(range(0, 180 - 8, 8)) == 22
    assert data.decode(windows.reshape(-1)) == TEXT[1620:1620 + 22 * 8]
    capped = load(path=str(corpus), context=8, val_windows=4)
    kept = torch.cat([x for x, _ in make_loaders(capped, 5, seed=0, device="cpu")[1]])
    # 4 of the 22 tiles, evenly spaced over the split (tile i * 22 // 4), not its first 4
    assert torch.equal(kept, windows[[0, 5, 11, 16]])


def test_data_parallel_ranks_split_each_global_batch(corpus):
    data = load(path=str(corpus), context=8, steps_per_epoch=2)
    whole = [x for x, _ in make_loaders(data, 4, seed=3, device="cpu")[0]]
    parts = [[x for x, _ in make_loaders(data, 4, seed=3, device="cpu", rank=r, world_size=2)[0]] for r in (0, 1)]
    for step, batch in enumerate(whole):
        torch.testing.assert_close(torch.cat([batch[0::2], batch[1::2]]), torch.cat([parts[0][step], parts[1][step]]))


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(context=0), "context must be an integer >= 1"),
    (dict(train_fraction=1.0), "train_fraction must be between 0 and 1"),
    (dict(context=500), "fewer than context \\+ 1"),
])
def test_bad_options_name_the_key(corpus, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load(path=str(corpus), **kwargs)


def _tiny(val_windows: int = 0) -> TokenData:
    """Training split "aaba", validation split "abcab", windows of 2: 'c' never occurs in training."""
    ids = {"a": 0, "b": 1, "c": 2}
    return TokenData(name="tiny", train_tokens=torch.tensor([ids[c] for c in "aaba"]),
                     val_tokens=torch.tensor([ids[c] for c in "abcab"]), vocab="abc", context=2,
                     steps_per_epoch=1, val_windows=val_windows)


def test_count_model_floors_by_hand():
    # Validation windows start at 0 and 2: "ab"->"bc" and "ca"->"ab", so the targets are b, c, a, b
    # and the characters before them a, b, c, a. Add-1/2 smoothing over V = 3 characters:
    # unigram counts a 3, b 1, c 0 of N = 4: p = (n + 1/2) / 5.5.
    unigram = -(math.log(1.5 / 5.5) + math.log(0.5 / 5.5) + math.log(3.5 / 5.5) + math.log(1.5 / 5.5)) / 4
    # training pairs aa, ab, ba: after a, {a 1, b 1, c 0} + 1/2 over 3.5; after b, {a 1} + 1/2 over
    # 2.5; after c (never seen), uniform 1/3.
    bigram = -(math.log(1.5 / 3.5) + math.log(0.5 / 2.5) + math.log(0.5 / 1.5) + math.log(1.5 / 3.5)) / 4
    floors = _tiny().floors()
    assert floors == pytest.approx({"unigram": unigram, "bigram": bigram}, rel=1e-12)
    first_window = _tiny(val_windows=1).floors()   # targets b, c after a, b only
    assert first_window["bigram"] == pytest.approx(-(math.log(1.5 / 3.5) + math.log(0.5 / 2.5)) / 2, rel=1e-12)
    assert _tiny().floors(k=1.0)["unigram"] == pytest.approx(
        -(math.log(2 / 7) + math.log(1 / 7) + math.log(4 / 7) + math.log(2 / 7)) / 4, rel=1e-12)
    with pytest.raises(ValueError, match="k must be > 0"):
        _tiny().floors(k=0.0)


class _Bigram(torch.nn.Module):
    """A model whose logits at each position are the log bigram probabilities of its input."""

    def __init__(self, log_probs: torch.Tensor):
        super().__init__()
        self.log_probs = torch.nn.Parameter(log_probs)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.log_probs[ids.reshape(-1)]


def test_the_bigram_floor_is_the_loss_the_training_loop_reports_for_a_bigram_model(corpus):
    data = load(path=str(corpus), context=8, val_windows=5)
    v = data.num_classes
    counts = torch.bincount(data.train_tokens[:-1] * v + data.train_tokens[1:], minlength=v * v)
    probs = (counts.double().view(v, v) + 0.5) / (counts.double().view(v, v) + 0.5).sum(1, keepdim=True)
    _, val = make_loaders(data, 4, seed=0, device="cpu", eval_batch_size=16)
    loss, _ = evaluate(_Bigram(probs.log().float()), val, CrossEntropyLoss())
    assert loss.item() == pytest.approx(data.floors()["bigram"], rel=1e-5)


@pytest.mark.skipif(not Path(DEFAULT_PATH).is_file(), reason="the Debian package jargon-text is not installed")
def test_the_jargon_file_as_shipped_by_debian():
    data = load()
    assert len(data.train_tokens) + len(data.val_tokens) == 1_618_757
    assert data.num_classes == 155
    assert "hacker" in data.decode(data.val_tokens[:20_000])
    floors = data.floors()
    assert math.isfinite(floors["bigram"]) and floors["bigram"] < floors["unigram"] < math.log(155)
