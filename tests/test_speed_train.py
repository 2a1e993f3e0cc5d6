"""The fast training loop keeps its metrics' meaning: the relative update size that AGD
reports from its own step equals the measured ||W_after − W_before|| / ||W_before||, the buffered
fallback equals the original clone-every-step arithmetic, and amp / channels_last / compile are
wired through the config."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from agd import AGD, init_weights
from agd.data import DeviceLoader
from agd.functional import relative_update_size
from agd.losses import SquareLoss
from agd.metrics import UpdateSizeMeter
from agd.models import FCN
from agd.train import train


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(8, 8, 1, bias=False)
        self.head = nn.Linear(8, 10, bias=False)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.head(x.mean(dim=(2, 3)))


def _model(kind):
    torch.manual_seed(0)
    model = FCN(depth=3, width=16, input_shape=(3, 8, 8), num_classes=10) if kind == "fcn" else TinyCNN()
    return init_weights(model, torch.Generator().manual_seed(0))


def _loaders(n=96, batch=32):
    gen = torch.Generator().manual_seed(5)
    x = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    common = dict(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    return (DeviceLoader(x, y, batch, shuffle=True, seed=0, **common),
            DeviceLoader(x[:32], y[:32], 32, **common))


@pytest.mark.parametrize("kind", ["fcn", "cnn"])
@pytest.mark.parametrize("idle", ["no_gradient", "frozen"])
def test_agd_reports_the_measured_relative_update_size(kind, idle):
    # params[1] stays put either way: with no gradient this step it still counts in L (a 0 in the
    # mean over all tensors); frozen, it is left out of L (the mean is over the trained tensors)
    model = _model(kind)
    params = list(model.parameters())
    if idle == "frozen":
        params[1].requires_grad_(False)
    counted = range(len(params)) if idle == "no_gradient" else [0, *range(2, len(params))]
    opt = AGD(params)
    opt.measure_update_size = True
    x = torch.randn(8, 3, 8, 8)
    for _ in range(3):
        before = [p.detach().clone() for p in params]
        opt.zero_grad()
        model(x).square().mean().backward()
        params[1].grad = None
        opt.step()
        assert torch.equal(params[1], before[1])
        measured = relative_update_size([before[i] for i in counted], [params[i].detach() for i in counted])
        assert opt.state["update_size"].item() == pytest.approx(measured.item(), rel=1e-3)
        assert measured.item() > 0


def test_buffered_fallback_equals_the_clone_arithmetic():
    model = _model("cnn")
    weights = list(model.parameters())
    opt = torch.optim.SGD(weights, lr=0.1)
    meter = UpdateSizeMeter(opt, weights)
    assert not meter.native
    x = torch.randn(8, 3, 8, 8)
    for _ in range(3):
        before = [w.detach().clone() for w in weights]
        meter.before_step()
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
        expected = relative_update_size(before, [w.detach() for w in weights])
        assert meter.after_step().item() == pytest.approx(expected.item(), rel=1e-5)


def test_native_meter_only_when_the_optimiser_holds_exactly_the_weights():
    model = _model("fcn")
    weights = list(model.parameters())
    assert UpdateSizeMeter(AGD(weights), weights).native
    assert not UpdateSizeMeter(AGD(weights[1:]), weights).native  # L would differ
    assert not UpdateSizeMeter(AGD(weights), weights, enabled=False).native


def test_copy_fallback_counts_the_tensors_agd_counts():
    # a frozen tensor is left out of the mean by the weight copy as by AGD's own report
    x = torch.randn(8, 3, 8, 8)
    sizes = []
    for wrap in (False, True):
        model = _model("fcn")
        weights = list(model.parameters())
        weights[1].requires_grad_(False)
        opt = AGD(weights)
        meter = UpdateSizeMeter(_Opaque(opt) if wrap else opt, weights)
        assert meter.native is not wrap
        model(x).square().mean().backward()
        meter.before_step()
        opt.step()
        sizes.append(meter.after_step().item())
    assert sizes[0] > 0 and sizes[1] == pytest.approx(sizes[0], rel=1e-4)


class _Opaque(torch.optim.Optimizer):
    """AGD seen through a wrapper without `measure_update_size`: forces the copy fallback."""

    def __init__(self, inner):
        self.inner = inner
        self.param_groups, self.state, self.defaults = inner.param_groups, inner.state, inner.defaults

    def step(self, closure=None):
        return self.inner.step(closure)

    def zero_grad(self, set_to_none=True):
        self.inner.zero_grad(set_to_none)


@pytest.mark.parametrize("kind", ["fcn", "cnn"])
def test_epoch_update_metric_is_the_same_with_and_without_the_copy(kind):
    rows = []
    for wrap in (False, True):
        model = _model(kind)
        opt = AGD(model.parameters(), check_finite=False)
        train_loader, test_loader = _loaders()
        rows.append(train(model, opt if not wrap else _Opaque(opt), train_loader, test_loader,
                          SquareLoss(10), 2, progress=False))
    for native, copied in zip(*rows, strict=True):
        for key in ("update_mean", "update_min", "update_max"):
            assert native[key] == pytest.approx(copied[key], rel=1e-3)
        assert native["update_min"] > 0
        assert native["train_loss"] == pytest.approx(copied["train_loss"], rel=1e-5)


def test_bf16_autocast_and_channels_last_train_with_fp32_agd():
    model = _model("cnn").to(memory_format=torch.channels_last)
    opt = AGD(model.parameters(), check_finite=False)
    opt.measure_update_size = True
    train_loader, test_loader = _loaders()
    rows = train(model, opt, train_loader, test_loader, SquareLoss(10), 2, progress=False,
                 amp_dtype=torch.bfloat16, channels_last=True)
    assert all(math.isfinite(r["train_loss"]) and r["eta_min"] > 0 for r in rows)
    assert opt.state["eta"].dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_speed_keys_resolve_per_model_and_device(compose):
    from experiments.pipeline import ConfigError, speed_settings, validate

    cfg = compose(["logger=none"])
    assert cfg.compile is False and cfg.amp == "auto" and cfg.channels_last == "auto"
    cnn, fcn = TinyCNN(), FCN(depth=2, width=4, input_shape=(8,), num_classes=2)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert speed_settings(cfg, cnn, cpu) == (None, False)
    assert speed_settings(cfg, cnn, cuda) == (torch.bfloat16, True)
    assert speed_settings(cfg, fcn, cuda) == (None, False)
    assert speed_settings(compose(["logger=none", "amp=bf16"]), fcn, cpu) == (torch.bfloat16, False)
    assert speed_settings(compose(["logger=none", "amp=off", "channels_last=false"]), cnn, cuda) == (None, False)
    with pytest.raises(ConfigError, match="amp must be"):
        validate(compose(["logger=none", "amp=fp8"]))
    with pytest.raises(ConfigError, match="compile must be"):
        validate(compose(["logger=none", "compile=maybe"]))
