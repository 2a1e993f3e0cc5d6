"""MNIST-1D and digits: real offline data, deterministic, through the device loader."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from agd.data import DeviceLoader, digits, make_loaders, mnist1d


@pytest.fixture(scope="module")
def mnist1d_data():
    return mnist1d.load()


def test_mnist1d_shapes_classes_and_normalisation(mnist1d_data):
    d = mnist1d_data
    assert d.x_train.shape == (4000, 40) and d.x_test.shape == (1000, 40)
    assert d.num_classes == 10 and set(d.y_train.unique().tolist()) == set(range(10))
    loader = DeviceLoader(d.x_train, d.y_train, 4000, mean=d.mean, std=d.std, pixel_scale=d.pixel_scale)
    x, _ = next(iter(loader))
    assert abs(x.mean().item()) < 1e-4 and x.std().item() == pytest.approx(1.0, abs=1e-3)


def test_mnist1d_is_deterministic_and_keeps_global_rng(mnist1d_data):
    random.seed(123)
    np.random.seed(123)
    expected_py, expected_np = random.random(), np.random.rand()
    random.seed(123)
    np.random.seed(123)
    again = mnist1d.load()
    assert random.random() == expected_py and np.random.rand() == expected_np
    assert torch.equal(again.x_train, mnist1d_data.x_train)


def test_digits_split_sizes_and_image_modes():
    flat = digits.load()
    assert flat.x_train.shape == (1300, 1, 8, 8) and flat.x_test.shape == (497, 1, 8, 8)
    assert flat.x_train.dtype == torch.uint8 and flat.in_dim == 64
    big = digits.load(image_size=32, channels=3, augment=True)
    assert big.input_shape == (3, 32, 32) and big.augment
    # same split whatever the image size
    assert torch.equal(flat.y_test, big.y_test)
    overlap = set(map(tuple, flat.x_train.flatten(1).tolist())) & set(map(tuple, flat.x_test.flatten(1).tolist()))
    assert len(overlap) < 20  # digits has a few duplicate images; the split itself is disjoint by index


@pytest.mark.parametrize(("kwargs", "match"), [(dict(image_size=4), "image_size"),
                                               (dict(test_size=0), "test_size")])
def test_digits_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        digits.load(**kwargs)


def test_loader_visits_every_sample_once_and_order_depends_on_seed_and_epoch():
    x = torch.arange(103, dtype=torch.float32)[:, None]
    y = torch.arange(103)
    loader = DeviceLoader(x, y, 10, mean=(0.0,), std=(1.0,), pixel_scale=1.0, shuffle=True, seed=3)

    def order(epoch):
        loader.set_epoch(epoch)
        return torch.cat([b for _, b in loader]).tolist()

    first = order(0)
    assert sorted(first) == list(range(103)) and len(loader) == 11
    assert order(0) == first and order(1) != first
    other = DeviceLoader(x, y, 10, mean=(0.0,), std=(1.0,), pixel_scale=1.0, shuffle=True, seed=4)
    assert torch.cat([b for _, b in other]).tolist() != first


def test_make_loaders_test_split_is_unshuffled_and_unaugmented():
    d = digits.load(image_size=32, channels=3, augment=True)
    train, test = make_loaders(d, 64, seed=0, device="cpu")
    assert train.augment and not test.augment and not test.shuffle
    assert torch.equal(torch.cat([b for _, b in test]), d.y_test)
