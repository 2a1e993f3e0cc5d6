"""Every optimiser config steps inside the real training loop (agd.train.train) on MNIST-1D and
lowers the loss; the configs are every file of conf/optimizer/, each built as a run builds it."""

import dataclasses

import pytest
import torch
from conftest import CONF
from omegaconf import OmegaConf

from agd import AGD, init_weights
from agd.data import make_loaders, mnist1d
from agd.losses import SquareLoss
from agd.models import FCN
from agd.train import evaluate, train
from experiments.pipeline import build_optimizer

NAMES = sorted(path.stem for path in (CONF / "optimizer").glob("*.yaml"))
EPOCHS = 5
BATCH = 16  # 320 steps: enough for the configs whose step size starts small and grows by a capped rate
# gain 10 (a variant beyond the paper) overshoots at batch 16 and trains at 128 (docs/beyond.md, "Variants of AGD")
BATCHES = {"agd_gain10": 128, "agd_whole_model_gain10": 128}


@pytest.fixture(scope="module")
def data():
    full = mnist1d.load()
    # a quarter of the set keeps every config's run to seconds
    return dataclasses.replace(full, x_train=full.x_train[:1024], y_train=full.y_train[:1024],
                               x_test=full.x_test[:500], y_test=full.y_test[:500])


def optimizer_node(name: str, schedule_steps: int):
    """conf/optimizer/<name>.yaml with the run-level keys it may refer to (`schedule_steps`)."""
    node = OmegaConf.load(CONF / "optimizer" / f"{name}.yaml")
    return OmegaConf.merge({"schedule_steps": schedule_steps}, {"optimizer": node}).optimizer


def test_the_configs_are_found_and_agd_alone_asks_for_the_paper_init():
    assert "agd" in NAMES and "sgd" in NAMES and "adam" in NAMES
    for name in NAMES:
        node = optimizer_node(name, 1)
        assert node.init == ("paper" if node._target_ == f"{AGD.__module__}.{AGD.__name__}" else "default"), name


@pytest.mark.parametrize("name", NAMES)
def test_optimizer_lowers_the_loss_in_the_training_loop(name, data):
    torch.manual_seed(0)
    model = FCN(depth=3, width=64, input_shape=data.input_shape, num_classes=data.num_classes)
    train_loader, test_loader = make_loaders(data, BATCHES.get(name, BATCH), seed=0, device="cpu")
    node = optimizer_node(name, EPOCHS * len(train_loader))
    if node.init == "paper":
        init_weights(model, torch.Generator().manual_seed(0))
    optimizer = build_optimizer(node, model)
    loss_fn = SquareLoss(data.num_classes)
    initial, _ = evaluate(model, test_loader, loss_fn)
    rows = train(model, optimizer, train_loader, test_loader, loss_fn, EPOCHS, progress=False,
                 track_update_size=False)
    assert len(rows) == EPOCHS and all(torch.isfinite(torch.tensor(r["train_loss"])) for r in rows)
    assert rows[-1]["train_loss"] < 0.95 * rows[0]["train_loss"], [r["train_loss"] for r in rows]
    assert rows[-1]["test_loss"] < 0.95 * initial.item()
