"""CIFAR-10/100 pickles, MNIST IDX and an ImageFolder of JPEGs, written in their official formats
into a tmp dir and read back through the real loaders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datafiles import CLASS_COLOURS, cifar_images, write_cifar10, write_cifar100, write_imagefolder, write_mnist

from agd.data import cifar, imagenet, make_loaders, mnist
from agd.data.torch_loader import EpochDataLoader


def test_cifar10_reads_all_batches_in_order(tmp_path):
    write_cifar10(tmp_path, per_batch=4, test=3)
    d = cifar.load_cifar10(root=str(tmp_path), download=False)
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_train.dtype == torch.uint8
    assert d.x_test.shape == (3, 3, 32, 32) and d.num_classes == 10
    # batch b contributes labels (b + i) % 10, in file order 1..5
    assert d.y_train.tolist() == [(b + i) % 10 for b in range(1, 6) for i in range(4)]
    assert d.y_train.dtype == torch.long
    # row layout: 1024 red, 1024 green, 1024 blue, row-major 32×32
    assert d.x_train[:, :, 0, 0].tolist() == [[0, 10, 20]] * 20
    assert d.x_train[5, 1, 3, 7].item() == 21  # batch 2 (start 20), image 1 -> value 21
    assert torch.equal(d.x_test.reshape(3, -1), torch.from_numpy(cifar_images(3, 200)))
    assert d.mean == (0.4914, 0.4822, 0.4465) and d.std == (0.2023, 0.1994, 0.2010)
    assert d.augment and d.pixel_scale == 255.0 and d.loader == "device"


def test_cifar100_uses_fine_labels(tmp_path):
    write_cifar100(tmp_path, train=6, test=3)
    d = cifar.load_cifar100(root=str(tmp_path), download=False, augment=False)
    assert d.num_classes == 100 and d.x_train.shape == (6, 3, 32, 32)
    assert d.y_train.tolist() == [99, 98, 97, 96, 95, 94]  # fine, not coarse (i % 20)
    assert d.mean == (0.5071, 0.4867, 0.4408) and d.std == (0.2675, 0.2565, 0.2761)
    assert not d.augment


def test_data_dir_environment_variable_is_the_default_root(tmp_path, monkeypatch):
    write_cifar10(tmp_path / "elsewhere")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "elsewhere"))
    assert len(cifar.load_cifar10(download=False).x_train) == 20


@pytest.mark.parametrize("loader, folder", [
    (lambda root: cifar.load_cifar10(root=root, download=False), "cifar-10-batches-py"),
    (lambda root: cifar.load_cifar100(root=root, download=False), "cifar-100-python"),
    (lambda root: mnist.load(root=root, download=False), "MNIST/raw"),
    (lambda root: imagenet.load(root=root), "train"),
])
def test_missing_files_say_where_to_put_them(tmp_path, loader, folder):
    with pytest.raises(FileNotFoundError) as err:
        loader(str(tmp_path))
    message = str(err.value)
    assert str(tmp_path / folder) in message and "data.root" in message
    assert "\n" not in message


def test_mnist_reads_idx_gz_and_plain(tmp_path):
    write_mnist(tmp_path, train=6, test=4, gz_train=True)
    d = mnist.load(root=str(tmp_path), download=False)
    assert d.x_train.shape == (6, 1, 28, 28) and d.x_test.shape == (4, 1, 28, 28)
    rng = np.random.default_rng(0)  # same draws as the writer
    assert torch.equal(d.x_train[:, 0], torch.from_numpy(rng.integers(0, 256, (6, 28, 28)).astype(np.uint8)))
    assert d.y_train.tolist() == [0, 1, 2, 3, 4, 5] and d.y_test.tolist() == [3, 4, 5, 6]
    assert d.mean == (0.1307,) and d.std == (0.3081,) and not d.augment and d.in_dim == 784


def test_mnist_rejects_a_file_that_is_not_idx(tmp_path):
    folder = write_mnist(tmp_path, gz_train=False)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x09\x99" + bytes(8))
    with pytest.raises(ValueError, match="not a uint8 IDX file"):
        mnist.load(root=str(tmp_path), download=False)


def test_imagefolder_imagenet_through_the_dataloader(tmp_path, monkeypatch):
    write_imagefolder(tmp_path / "inet", per_class=3)
    monkeypatch.setenv("IMAGENET_PATH", str(tmp_path / "inet"))
    d = imagenet.load(crop_size=16, resize_size=20, num_workers=0)
    assert d.num_classes == 2 and d.input_shape == (3, 16, 16) and d.in_dim == 768
    train, test = make_loaders(d, 4, seed=0, device="cpu")
    assert isinstance(train, EpochDataLoader) and len(train) == 2 and len(test) == 2
    train.set_epoch(0)
    xs, ys = zip(*train, strict=True)
    assert [x.shape for x in xs] == [(4, 3, 16, 16), (2, 3, 16, 16)] and xs[0].dtype == torch.float32
    assert sorted(torch.cat(ys).tolist()) == [0, 0, 0, 1, 1, 1]
    # test images: resize + centre crop of a solid colour, normalised with the ImageNet mean/std
    mean, std = torch.tensor(imagenet.IMAGENET_MEAN), torch.tensor(imagenet.IMAGENET_STD)
    for x, y in test:
        for image, label in zip(x, y, strict=True):
            colour = torch.tensor(CLASS_COLOURS[["n01", "n02"][label]], dtype=torch.float32) / 255
            expected = ((colour - mean) / std)[:, None, None].expand(3, 16, 16)
            torch.testing.assert_close(image, expected, atol=0.06, rtol=0)  # JPEG rounding


def test_cifar_torchvision_loader_option(tmp_path):
    write_cifar10(tmp_path)
    d = cifar.load_cifar10(root=str(tmp_path), download=False, loader="torchvision")
    train, test = make_loaders(d, 8, seed=1, device="cpu")
    assert isinstance(train, EpochDataLoader) and len(train) == 3
    x, _ = next(iter(test))
    raw = d.x_test.float() / 255
    mean, std = torch.tensor(d.mean)[:, None, None], torch.tensor(d.std)[:, None, None]
    torch.testing.assert_close(x, (raw - mean) / std)
    with pytest.raises(ValueError, match="loader must be one of"):
        cifar.load_cifar10(root=str(tmp_path), download=False, loader="dali")


def test_download_is_tried_through_torchvision_when_files_are_missing(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    def fake_cifar10(root, train, download):  # stands in for the network: writes the files
        calls.append((root, train, download))
        write_cifar10(tmp_path)

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake_cifar10)
    d = cifar.load_cifar10(root=str(tmp_path))
    assert calls == [(str(tmp_path), True, True)] and len(d.x_train) == 20
    cifar.load_cifar10(root=str(tmp_path))  # files present: no second download
    assert len(calls) == 1


def test_offline_download_failure_is_one_clear_sentence(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.datasets

    def offline(**kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(FileNotFoundError) as err:
        mnist.load(root=str(tmp_path))
    message = str(err.value)
    assert message.startswith("MNIST not found") and "name resolution" in message and "\n" not in message
    assert str(tmp_path / "MNIST" / "raw") in message
