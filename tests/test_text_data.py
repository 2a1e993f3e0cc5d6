"""The character-level corpus (agd/data/text.py) on small text files written here, and on the real
Debian corpus when it is installed."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

from agd.data import make_loaders
from agd.data.text import DEFAULT_PATH, encode, load, read_text

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


def test_validation_windows_tile_the_split_in_order(corpus):
    data = load(path=str(corpus), context=8, val_windows=0)
    _, val = make_loaders(data, 5, seed=0, device="cpu", eval_batch_size=16)  # 16 tokens: 2 windows a batch
    xs = [x for x, _ in val]
    assert all(len(x) <= 2 for x in xs)
    windows = torch.cat(xs)
    assert len(windows) == len(range(0, 180 - 8, 8)) == 22
    assert data.decode(windows.reshape(-1)) == TEXT[1620:1620 + 22 * 8]
    capped = load(path=str(corpus), context=8, val_windows=4)
    assert sum(len(x) for x, _ in make_loaders(capped, 5, seed=0, device="cpu")[1]) == 4


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


@pytest.mark.skipif(not Path(DEFAULT_PATH).is_file(), reason="the Debian package jargon-text is not installed")
def test_the_jargon_file_as_shipped_by_debian():
    data = load()
    assert len(data.train_tokens) + len(data.val_tokens) == 1_618_757
    assert data.num_classes == 155
    assert "hacker" in data.decode(data.val_tokens[:20_000])
