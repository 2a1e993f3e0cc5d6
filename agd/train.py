"""The training loop: plain arguments in, metric rows out through callbacks.

Nothing here knows about Hydra, W&B or files. Every per-step quantity (loss, correct count, η,
relative update size) stays on the device; the host reads them once per epoch, so a step never
waits for the GPU. Rows follow the schema in agd/results.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from agd.distributed import all_reduce, reduce_stats
from agd.metrics import RunningStats, UpdateSizeMeter, correct_count
from agd.rules import update_size_tensors


class NonFiniteLossError(FloatingPointError):
    """The objective became inf/NaN; the message names the epoch and step."""


def _set_optimizer_mode(optimizer, mode: str) -> None:
    # Schedule-Free optimisers keep two weight sequences and must be told which one to expose.
    switch = getattr(optimizer, mode, None)
    if callable(switch):
        switch()


def _forward(model: nn.Module, x: torch.Tensor, amp_dtype: torch.dtype | None,
             channels_last: bool) -> torch.Tensor:
    """model(x), optionally with channels_last images and autocast; the output comes back in
    float32 so the loss (and from it every gradient AGD normalises) is computed in fp32."""
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    if amp_dtype is None:
        return model(x)
    with torch.autocast(x.device.type, dtype=amp_dtype):
        out = model(x)
    return out.float()


@torch.no_grad()
def evaluate(model: nn.Module, loader, loss_fn, optimizer=None, *, amp_dtype: torch.dtype | None = None,
             channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss and accuracy over a whole loader, as device tensors (sample-weighted)."""
    model.eval()
    if optimizer is not None:
        _set_optimizer_mode(optimizer, "eval")
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.float64)
    count = 0
    for x, y in loader:
        out = _forward(model, x, amp_dtype, channels_last)
        loss_sum += loss_fn(out, y).double() * len(y)
        correct += correct_count(out, y)
        count += len(y)
    totals = all_reduce(torch.stack([loss_sum, correct, torch.tensor(float(count), device=device,
                                                                          dtype=torch.float64)]))
    return totals[0] / totals[2], totals[1] / totals[2]


@dataclass
class LoopOptions:
    """How the loop runs, apart from what it trains.

    start_epoch: epochs already done (a resumed run); the loop trains start_epoch..epochs-1.
    step_rows: also emit one row per optimiser step for the first `step_rows` steps of the run
        (docs/experiments.md, figure 4 logs every iteration of epoch 1); they reach `on_steps`
        at epoch end.
    time_offset: seconds already spent before a resume, so time_s is the run's total.
    track_update_size: measure the relative update size of every step (figure 2).
    progress: show a tqdm bar over epochs.
    amp_dtype: autocast the forward pass to this dtype (torch.bfloat16), loss in fp32.
    channels_last: feed 4-D inputs in channels_last memory format (the model should be too).
    """

    start_epoch: int = 0
    step_rows: int = 0
    time_offset: float = 0.0
    track_update_size: bool = True
    progress: bool = True
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False


@dataclass
class _EpochTotals:
    """One epoch's running sums, all on the device until the epoch ends."""

    device: torch.device
    first_step: int
    loss: RunningStats = field(init=False)
    eta: RunningStats = field(init=False)
    update: RunningStats = field(init=False)
    pending_steps: list = field(default_factory=list)  # (step, tensor of loss, acc, η, update)
    seen: int = 0

    def __post_init__(self):
        self.loss, self.eta, self.update = (RunningStats(self.device) for _ in range(3))
        self.correct = torch.zeros((), device=self.device, dtype=torch.float64)
        self.first_bad_step = torch.full((), -1, device=self.device, dtype=torch.long)
        self.step_counter = torch.full((), self.first_step, device=self.device, dtype=torch.long)

    def add(self, loss, batch_correct, batch_size: int, eta, update, record_step: int | None) -> None:
        self.loss.add(loss)
        self.eta.add(eta)
        self.update.add(update)
        self.correct += batch_correct
        self.seen += batch_size
        bad = ~torch.isfinite(loss) & (self.first_bad_step < 0)
        self.first_bad_step = torch.where(bad, self.step_counter, self.first_bad_step)
        self.step_counter += 1
        if record_step is not None:
            self.pending_steps.append((record_step, torch.stack([
                loss.double(), batch_correct.double() / batch_size, eta.double(), update.double()])))


def _divergence_hint(optimizer) -> str:
    """The optimiser's own knob for its step size: AGD has a gain and no learning rate."""
    defaults = getattr(optimizer, "defaults", {})
    if "gain" in defaults:
        return "Lower the optimizer's gain (AGD has no learning rate) or check the data."
    if "lr" in defaults:
        return "Lower the learning rate or check the data."
    return "Check the optimizer's settings and the data."


def _train_epoch(model, optimizer, loader, loss_fn, epoch: int, meter: UpdateSizeMeter,
                 options: LoopOptions) -> _EpochTotals:
    """One pass over the training set; every number stays on the device."""
    device = next(model.parameters()).device
    model.train()
    _set_optimizer_mode(optimizer, "train")
    loader.set_epoch(epoch)
    totals = _EpochTotals(device, epoch * len(loader))
    for i, (x, y) in enumerate(loader):
        step = epoch * len(loader) + i
        meter.before_step()
        out = _forward(model, x, options.amp_dtype, options.channels_last)
        loss = loss_fn(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        eta = optimizer.step()
        eta = eta.detach().float() if isinstance(eta, torch.Tensor) else torch.zeros((), device=device)
        update = meter.after_step()
        totals.add(loss.detach(), correct_count(out.detach(), y), len(y), eta, update,
                   step if step < options.step_rows else None)
    return totals


def _check_finite(totals: _EpochTotals, epoch: int, steps_per_epoch: int, optimizer) -> None:
    """Raise, naming the first bad step, when any rank saw a non-finite loss this epoch."""
    bad_step = all_reduce(totals.first_bad_step, "max").item()  # one rank's NaN stops every rank
    if bad_step >= 0:
        raise NonFiniteLossError(
            f"the training loss became non-finite at epoch {epoch + 1}, step "
            f"{bad_step - epoch * steps_per_epoch + 1} of {steps_per_epoch} (global step "
            f"{bad_step + 1}); rows up to epoch {epoch} are saved. {_divergence_hint(optimizer)}")


def _epoch_row(totals: _EpochTotals, epoch: int, steps_per_epoch: int, test, time_s: float) -> dict:
    """The schema row of one epoch: the one host read of the epoch's device tensors."""
    device = totals.device
    counts = all_reduce(torch.stack([totals.correct, torch.tensor(float(totals.seen), device=device,
                                                                  dtype=torch.float64)]))
    stats = torch.stack([totals.loss.tensors(), totals.eta.tensors(), totals.update.tensors()])
    stats = reduce_stats(stats).tolist()
    return {
        "epoch": epoch + 1,
        "step": (epoch + 1) * steps_per_epoch,
        "train_loss": stats[0][0],
        "train_acc": (counts[0] / counts[1]).item(),
        "test_loss": test[0].item(),
        "test_acc": test[1].item(),
        "eta_mean": stats[1][0], "eta_min": stats[1][1], "eta_max": stats[1][2],
        "update_mean": stats[2][0], "update_min": stats[2][1], "update_max": stats[2][2],
        "time_s": time_s,
    }


def _step_rows(totals: _EpochTotals, epoch: int) -> list[dict]:
    values = torch.stack([v for _, v in totals.pending_steps]).tolist()
    return [{"epoch": epoch + 1, "step": s + 1, "train_loss": v[0], "train_acc": v[1], "eta": v[2],
             "update": v[3]} for (s, _), v in zip(totals.pending_steps, values, strict=True)]


def train(model: nn.Module, optimizer: torch.optim.Optimizer, train_loader, test_loader,
          loss_fn: Callable, epochs: int, options: LoopOptions | None = None, *,
          on_epoch: Callable[[dict], None] | None = None,
          on_steps: Callable[[list[dict]], None] | None = None, **option_values) -> list[dict]:
    """Train from `options.start_epoch` to `epochs`; return the new epoch rows. Each row reaches
    `on_epoch` as soon as its epoch ends. The fields of LoopOptions may also be given as
    keywords (`progress=False`)."""
    from tqdm.auto import tqdm

    options = replace(options or LoopOptions(), **option_values)
    # AGD reports its own update size from the step (no weight copy); others: buffered copy
    meter = UpdateSizeMeter(optimizer, update_size_tensors(model), enabled=options.track_update_size)
    steps_per_epoch = len(train_loader)
    rows: list[dict] = []
    clock = time.perf_counter()
    bar = tqdm(range(options.start_epoch, epochs), initial=options.start_epoch, total=epochs,
               desc="epochs", disable=not options.progress, dynamic_ncols=True)
    for epoch in bar:
        totals = _train_epoch(model, optimizer, train_loader, loss_fn, epoch, meter, options)
        _check_finite(totals, epoch, steps_per_epoch, optimizer)
        test = evaluate(model, test_loader, loss_fn, optimizer, amp_dtype=options.amp_dtype,
                        channels_last=options.channels_last)
        row = _epoch_row(totals, epoch, steps_per_epoch, test,
                         options.time_offset + time.perf_counter() - clock)
        rows.append(row)
        if totals.pending_steps and on_steps is not None:
            on_steps(_step_rows(totals, epoch))
        if on_epoch is not None:
            on_epoch(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3g}", acc=f"{row['train_acc']:.3f}",
                        test=f"{row['test_acc']:.3f}", eta=f"{row['eta_mean']:.3g}")
    bar.close()
    return rows
