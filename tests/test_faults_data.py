"""Data checked at the door: labels outside the classes, and an explicit root (data.root or
$DATA_DIR) that does not exist, is not a folder or holds only some of the files, each refused in
one sentence naming it (exit 2 from the command line), never replaced by another copy. Files are
written in the real formats (IDX, CIFAR pickles) in tmp dirs."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from conftest import run_train
from datafiles import idx_bytes, write_cifar10, write_idx_set, write_mnist

from agd.data import cifar, fashion_mnist, mnist
from experiments import pipeline

QUIET = ["logger=none", "progress=false", "device=cpu", "epochs=1", "model.width=16"]


@pytest.fixture
def debian(tmp_path, monkeypatch):
    """A machine whose Debian folder holds a good set (the copy an explicit root must not fall
    back to), with no repo data/ and no DATA_DIR."""
    monkeypatch.setattr(fashion_mnist, "REPO_DATA", tmp_path / "repo_data")
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.delenv("DATA_DIR", raising=False)
    write_idx_set(tmp_path / "debian", label_offset=4)
    return tmp_path


def _one_line(err) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("how", ["data.root", "$DATA_DIR"])
def test_an_explicit_root_that_does_not_exist_is_refused_not_replaced(debian, monkeypatch, how):
    root = debian / "typo"
    if how == "$DATA_DIR":
        monkeypatch.setenv("DATA_DIR", str(root))
    with pytest.raises(FileNotFoundError) as err:
        fashion_mnist.load(root=str(root) if how == "data.root" else None, download=False)
    assert _one_line(err) == (f"{how} {root} does not exist; create it and put the dataset there, or point "
                              f"{how} at the folder that holds it.")


def test_an_explicit_root_that_is_a_file_is_refused(debian):
    root = debian / "a-file"
    root.write_text("not a folder")
    with pytest.raises(NotADirectoryError) as err:
        fashion_mnist.load(root=str(root), download=False)
    assert _one_line(err).startswith(f"data.root {root} is not a folder;")


def test_an_explicit_root_with_only_the_training_files_names_what_is_missing(debian):
    folder = write_idx_set(debian / "root" / "FashionMNIST" / "raw")
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / name).unlink()
    with pytest.raises(FileNotFoundError) as err:
        fashion_mnist.load(root=str(debian / "root"), download=True)  # not downloaded over, not replaced
    assert _one_line(err).startswith(f"Fashion-MNIST in data.root is incomplete: {folder} lacks "
                                     "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (.gz or not);")


def test_the_implicit_search_still_finds_the_debian_copy_and_facts_name_it(debian, compose, tmp_path):
    assert fashion_mnist.load(download=False).y_train[0] == 4
    run_dir = tmp_path / "run"
    pipeline.run(compose(["data=fashion_mnist", *QUIET]), run_dir)
    assert json.loads((run_dir / "facts.json").read_text())["data_source"] == str(debian / "debian")


def test_an_idx_label_outside_the_classes_is_one_sentence_and_exit_2(tmp_path):
    folder = write_idx_set(tmp_path / "data", gz_train=False)
    labels = np.arange(6) % 10
    labels[3] = 200
    (folder / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    proc = run_train(["data=fashion_mnist", f"data.root={tmp_path / 'data'}", *QUIET], tmp_path / "runs", timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: data: {folder / 'train-labels-idx1-ubyte'} holds label 200 at index 3 (1 labels in all outside "
        "0..9: Fashion-MNIST has 10 classes); replace the file.")
    assert not list((tmp_path / "runs").rglob("*.json"))


def test_mnist_and_cifar_labels_outside_the_classes_name_the_file(tmp_path):
    folder = write_mnist(tmp_path / "m", gz_train=False)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([0, 1, 10, 2])))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte holds label 10 at index 2 "):
        mnist.load(root=str(tmp_path / "m"), download=False)
    batches = write_cifar10(tmp_path / "c")
    with open(batches / "data_batch_3", "rb") as f:
        entry = pickle.load(f)
    entry[b"labels"][1] = 11
    with open(batches / "data_batch_3", "wb") as f:
        pickle.dump(entry, f)
    with pytest.raises(ValueError, match=r"data_batch_3 holds label 11 at index 1 "):
        cifar.load_cifar10(root=str(tmp_path / "c"), download=False)


def test_mnist_and_cifar_refuse_a_partial_set_and_a_missing_root(tmp_path):
    folder = write_mnist(tmp_path / "m")
    (folder / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"MNIST in .* is incomplete: it lacks t10k-images-idx3-ubyte"):
        mnist.load(root=str(tmp_path / "m"), download=True)
    batches = write_cifar10(tmp_path / "c")
    (batches / "test_batch").unlink()
    with pytest.raises(FileNotFoundError, match=r"CIFAR-10 in .* is incomplete: it lacks test_batch;"):
        cifar.load_cifar10(root=str(tmp_path / "c"), download=True)
    with pytest.raises(FileNotFoundError, match=f"data.root {tmp_path / 'nowhere'} does not exist"):
        cifar.load_cifar10(root=str(tmp_path / "nowhere"))
