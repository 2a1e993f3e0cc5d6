"""Fashion-MNIST: the shared IDX reader, the root search order, both forms, subsets, and the
message when the files are nowhere. Files are written in the real IDX format in tmp dirs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datafiles import write_idx_set

from agd.data import fashion_mnist
from agd.data.idx import read_idx


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No Fashion-MNIST on this machine: empty repo data/ and Debian folder, no DATA_DIR."""
    monkeypatch.setattr(fashion_mnist, "REPO_DATA", tmp_path / "repo_data")
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.delenv("DATA_DIR", raising=False)
    return tmp_path


def test_reads_torchvision_layout_with_train_set_normalisation(nowhere):
    folder = write_idx_set(nowhere / "root" / "FashionMNIST" / "raw", train=7, test=5, label_offset=2)
    d = fashion_mnist.load(root=str(nowhere / "root"), download=False)
    assert d.x_train.shape == (7, 1, 28, 28) and d.x_train.dtype == torch.uint8
    assert d.x_test.shape == (5, 1, 28, 28)
    assert d.y_train.tolist() == [(i + 2) % 10 for i in range(7)]
    assert d.in_dim == 784 and d.num_classes == 10
    pixels = read_idx(folder / "train-images-idx3-ubyte.gz") / 255.0
    assert d.mean[0] == pytest.approx(pixels.mean()) and d.std[0] == pytest.approx(pixels.std(ddof=1))


def test_search_order_root_then_data_dir_then_repo_then_debian(nowhere, monkeypatch):
    # each candidate holds a set told apart by its label offset; the first one present wins
    write_idx_set(nowhere / "debian", label_offset=4)
    assert fashion_mnist.load(download=False).y_train[0] == 4
    write_idx_set(nowhere / "repo_data" / "FashionMNIST" / "raw", label_offset=3)
    assert fashion_mnist.load(download=False).y_train[0] == 3
    write_idx_set(nowhere / "env" / "FashionMNIST" / "raw", label_offset=2)
    monkeypatch.setenv("DATA_DIR", str(nowhere / "env"))
    assert fashion_mnist.load(download=False).y_train[0] == 2
    write_idx_set(nowhere / "root", label_offset=1)  # files directly in the root folder
    assert fashion_mnist.load(root=str(nowhere / "root"), download=False).y_train[0] == 1


def test_missing_everywhere_says_how_to_install(nowhere):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as err:
        fashion_mnist.load(download=False)  # no root named: the implicit search, to the Debian folder
    assert str(nowhere / "debian") in str(err.value) and "\n" not in str(err.value)
    (nowhere / "root").mkdir()
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as err:
        fashion_mnist.load(root=str(nowhere / "root"), download=False)  # an empty root, named
    assert str(nowhere / "root") in str(err.value) and "\n" not in str(err.value)


def test_incomplete_folder_is_skipped(nowhere):
    folder = write_idx_set(nowhere / "debian", label_offset=4)
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError):
        fashion_mnist.load(download=False)


def test_cnn_form_resized_to_three_identical_channels(nowhere):
    write_idx_set(nowhere / "debian", train=4, test=2)
    d = fashion_mnist.load(channels=3, image_size=32, augment=True, download=False)
    assert d.x_train.shape == (4, 3, 32, 32) and d.x_test.shape == (2, 3, 32, 32)
    assert torch.equal(d.x_train[:, 0], d.x_train[:, 2]) and d.augment
    assert len(d.mean) == 3 and d.mean[0] == pytest.approx(d.mean[1])
    # resizing keeps the image: a bilinear 28 -> 32 resize preserves the mean brightness closely
    native = fashion_mnist.load(download=False)
    assert d.x_train.float().mean().item() == pytest.approx(native.x_train.float().mean().item(), rel=0.02)


def test_fixed_subsets_are_the_same_for_every_call(nowhere):
    write_idx_set(nowhere / "debian", train=20, test=10)
    a = fashion_mnist.load(train_size=8, test_size=3, download=False)
    b = fashion_mnist.load(train_size=8, test_size=3, download=False)
    full = fashion_mnist.load(download=False)
    assert len(a.y_train) == 8 and len(a.y_test) == 3
    assert torch.equal(a.x_train, b.x_train)
    # every subset image is one of the full set's images, none repeated
    rows = {tuple(x.flatten().tolist()) for x in full.x_train}
    picked = [tuple(x.flatten().tolist()) for x in a.x_train]
    assert set(picked) <= rows and len(set(picked)) == 8


@pytest.mark.parametrize("kwargs, key", [({"train_size": 0}, "train_size"), ({"test_size": 11}, "test_size"),
                                         ({"channels": 2}, "channels"), ({"image_size": 4}, "image_size")])
def test_bad_options_name_the_key(nowhere, kwargs, key):
    write_idx_set(nowhere / "debian", train=20, test=10)
    with pytest.raises(ValueError, match=key):
        fashion_mnist.load(download=False, **kwargs)


def test_truncated_gzip_names_the_file(nowhere):
    folder = write_idx_set(nowhere / "debian")
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz"):
        fashion_mnist.load(download=False)


@pytest.mark.slow
def test_real_fashion_mnist_an_fcn_learns_it_in_one_epoch():
    """Needs the real files: `apt-get install dataset-fashion-mnist` (or data/FashionMNIST/raw/)."""
    if fashion_mnist.complete_folder(fashion_mnist.candidate_folders(None)) is None:
        pytest.skip("Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist")
    from agd import AGD, init_weights
    from agd.data import make_loaders
    from agd.models import FCN

    data = fashion_mnist.load(download=False)
    assert len(data.y_train) == 60000 and len(data.y_test) == 10000
    assert np.bincount(data.y_train.numpy()).tolist() == [6000] * 10
    torch.manual_seed(0)
    model = init_weights(FCN(depth=3, width=128, input_shape=(1, 28, 28), num_classes=10))
    optimizer = AGD(model.parameters())
    train, test = make_loaders(data, 128, seed=0, device=torch.device("cpu"))
    train.set_epoch(0)
    for x, y in train:
        loss = ((model(x) - torch.nn.functional.one_hot(y, 10).float() * 10 ** 0.5) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        correct = sum((model(x).argmax(1) == y).sum().item() for x, y in test)
    assert correct / 10000 > 0.75
