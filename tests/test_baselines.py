"""Every optimiser config steps inside the real training loop (agd.train.train) on MNIST-1D and
lowers the loss; configs are read from conf/optimizer/ and built as a run builds them."""

import dataclasses

import pytest
import torch
from conftest import CONF
from omegaconf import OmegaConf

from agd import init_weights
from agd.data import make_loaders, mnist1d
from agd.losses import SquareLoss
from agd.models import FCN
from agd.train import evaluate, train
from experiments.pipeline import build_optimizer

NAMES = ["agd", "sgd", "adam", "adamw", "prodigy", "dadapt_adam", "schedulefree_adamw", "dog"]


@pytest.fixture(scope="module")
def data():
    full = mnist1d.load()
    # a quarter of the set keeps the eight runs to seconds on a shared CPU
    return dataclasses.replace(full, x_train=full.x_train[:1024], y_train=full.y_train[:1024],
                               x_test=full.x_test[:500], y_test=full.y_test[:500])


def test_every_optimizer_config_is_listed():
    assert sorted(p.stem for p in (CONF / "optimizer").glob("*.yaml")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_optimizer_lowers_the_loss_in_the_training_loop(name, data):
    node = OmegaConf.load(CONF / "optimizer" / f"{name}.yaml")
    assert node.init == ("paper" if name == "agd" else "default")
    torch.manual_seed(0)
    model = FCN(depth=3, width=64, in_dim=data.in_dim, out_dim=data.num_classes)
    if node.init == "paper":
        init_weights(model, torch.Generator().manual_seed(0))
    optimizer = build_optimizer(node, model)
    loss_fn = SquareLoss(data.num_classes)
    train_loader, test_loader = make_loaders(data, 64, seed=0, device="cpu")
    initial, _ = evaluate(model, test_loader, loss_fn)
    rows = train(model, optimizer, train_loader, test_loader, loss_fn, 5, progress=False,
                 track_update_size=False)
    assert len(rows) == 5 and all(torch.isfinite(torch.tensor(r["train_loss"])) for r in rows)
    assert rows[-1]["train_loss"] < 0.95 * rows[0]["train_loss"], [r["train_loss"] for r in rows]
    assert rows[-1]["test_loss"] < 0.95 * initial.item()
