"""`python experiments/train.py model=<m> data=<d> data.root=<tmp>` composes and trains on tiny
files written in the official formats (CIFAR pickles, MNIST IDX, ImageFolder JPEGs)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from conftest import run_train
from datafiles import write_cifar10, write_cifar100, write_imagefolder, write_mnist

from experiments import pipeline

CNNS = ["vgg16", "resnet18", "resnet50", "resnet50_imagenet"]
IMAGE_SETS = ["cifar10", "cifar100", "mnist", "imagenet", "digits"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_cifar10(root, per_batch=2, test=2)    # 10 train, 2 test
    write_cifar100(root, train=4, test=2)
    write_mnist(root, train=4, test=2)
    write_imagefolder(root / "imagenet", per_class=2)
    return root


def data_overrides(name: str, root) -> list[str]:
    if name == "imagenet":
        # 32 px crops from 40×48 JPEGs keep a CPU step cheap; the paper's 224/256 are the defaults
        return ["data=imagenet", f"data.root={root / 'imagenet'}", "data.crop_size=32",
                "data.resize_size=36", "data.num_workers=0", "loss=xent"]
    if name == "digits":
        # native 8×8, 7 training images (the 1,790 test images cost little without gradients)
        return ["data=digits", "data.channels=3", "+data.test_size=1790"]
    return [f"data={name}", f"data.root={root}", "data.download=false"]


def train_once(compose, tmp_path, overrides):
    run_dir = tmp_path / "run"
    # batch 5: every batch has >= 2 samples, which batch norm needs on the 1×1 maps of the
    # deepest stages (10 CIFAR-10 images -> 2 steps; 4 CIFAR-100/MNIST/ImageNet images -> 1 step)
    cfg = compose(["epochs=1", "batch_size=5", "logger=none", "progress=false", "resume=false", *overrides])
    summary = pipeline.run(cfg, run_dir)
    assert summary["status"] == "complete", summary
    rows = pd.read_csv(run_dir / "metrics.csv")
    assert list(rows["epoch"]) == [1] and rows["train_loss"].notna().all()
    return summary, json.loads((run_dir / "config.json").read_text())


@pytest.mark.parametrize("data_name", ["cifar10", "cifar100", "mnist", "imagenet"])
def test_fcn_with_agd_on_every_file_format(compose, tmp_path, data_root, data_name):
    overrides = ["model.depth=3", "model.width=16", *data_overrides(data_name, data_root)]
    _, config = train_once(compose, tmp_path, overrides)
    assert config["data"]["_target_"].startswith(f"agd.data.{'cifar' if 'cifar' in data_name else data_name}")


@pytest.mark.parametrize("model, data_name", [
    ("vgg16", "cifar100"), ("resnet18", "cifar10"), ("resnet50", "mnist"), ("resnet50_imagenet", "imagenet"),
])
def test_each_cnn_trains_a_few_steps(compose, tmp_path, data_root, model, data_name):
    # SGD keeps PyTorch's init, so the test avoids the paper init's one QR per kernel position;
    # AGD on every CNN × dataset pair is the slow test below
    train_once(compose, tmp_path, [f"model={model}", "optimizer=sgd", *data_overrides(data_name, data_root)])


@pytest.mark.parametrize("model, options", [
    ("vgg16", ["model.bias=true", "model.affine=true"]),
    ("resnet18", ["model.affine=true"]),
    ("fcn", ["model.bias=true", "model.depth=3", "model.width=16"]),
])
def test_bias_and_affine_options_reach_the_model(compose, tmp_path, data_root, model, options):
    # beyond the paper, off by default; SGD trains the 1-D parameters the options add
    _, config = train_once(compose, tmp_path, [f"model={model}", "optimizer=sgd", *options,
                                               *data_overrides("cifar10", data_root)])
    for option in options:
        key, value = option.removeprefix("model.").split("=")
        assert str(config["model"][key]).lower() == value
    # the trained weights: BatchNorm scales (1-D ".weight") iff affine, conv/linear biases iff bias
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"]
    bn_scales = {k.removesuffix(".weight") for k, v in state.items() if k.endswith(".weight") and v.dim() == 1}
    layer_biases = {k.removesuffix(".bias") for k in state if k.endswith(".bias")} - bn_scales
    assert bool(bn_scales) == ("model.affine=true" in options)
    assert bool(layer_biases) == ("model.bias=true" in options)


def test_torchvision_loader_option_runs(compose, tmp_path, data_root):
    train_once(compose, tmp_path, ["model.depth=3", "model.width=16", "data.loader=torchvision",
                                   *data_overrides("cifar10", data_root)])


def test_missing_dataset_exits_2_with_the_place_to_put_it(compose, tmp_path, capsys):
    cfg = compose(["epochs=1", "logger=none", "progress=false", "data=cifar10", f"data.root={tmp_path}",
                   "data.download=false"])
    with pytest.raises(SystemExit) as exit_info:
        pipeline.run(cfg, tmp_path / "run")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    # the pipeline prefixes the config group whose constructor failed
    assert err.startswith("error: data: CIFAR-10 not found") and str(tmp_path / "cifar-10-batches-py") in err


@pytest.mark.slow
@pytest.mark.parametrize("model", CNNS)
@pytest.mark.parametrize("data_name", IMAGE_SETS)
def test_every_cnn_on_every_image_set_with_agd(compose, tmp_path, data_root, model, data_name):
    train_once(compose, tmp_path, [f"model={model}", "optimizer=agd", *data_overrides(data_name, data_root)])


@pytest.mark.slow
def test_resnet50_imagenet_full_tiny_epoch_from_the_command_line(tmp_path):
    root = write_imagefolder(tmp_path / "imagenet", per_class=4)
    proc = run_train(["model=resnet50_imagenet", "data=imagenet", f"data.root={root}", "data.crop_size=64",
                      "data.resize_size=72", "data.num_workers=2", "loss=xent", "epochs=1", "batch_size=4",
                      "logger=none", "progress=false"], tmp_path / "runs", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "done:" in proc.stdout


@pytest.mark.parametrize("model", ["vgg16", "resnet18", "resnet50", "resnet50_imagenet"])
def test_width_is_a_key_of_every_cnn_config(compose, model):
    assert compose([f"model={model}"]).model.width == 64  # the paper's
    assert compose([f"model={model}", "model.width=8"]).model.width == 8  # no `+` needed
