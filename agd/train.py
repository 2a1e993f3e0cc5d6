"""The training loop: plain arguments in, metric rows out through callbacks.

Nothing here knows about Hydra, W&B or files. Every per-step quantity (loss, correct count, η,
relative update size) stays on the device; the host reads them once per epoch, so a step never
waits for the GPU. Rows follow the schema in agd/results.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from agd.metrics import RunningStats, UpdateSizeMeter, correct_count


class NonFiniteLossError(FloatingPointError):
    """The objective became inf/NaN; the message names the epoch and step."""


def _weights(model: nn.Module) -> list[torch.Tensor]:
    """The tensors whose relative update is measured: every parameter of rank >= 2."""
    return [p for p in model.parameters() if p.dim() >= 2]


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
    totals = _all_reduce(torch.stack([loss_sum, correct, torch.tensor(float(count), device=device,
                                                                          dtype=torch.float64)]))
    return totals[0] / totals[2], totals[1] / totals[2]


def _all_reduce(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """Sum (or min/max) across data-parallel ranks when torch.distributed is running; identity
    otherwise."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(t, op=getattr(torch.distributed.ReduceOp, op.upper()))
    return t


def _reduce_stats(stats: torch.Tensor) -> torch.Tensor:
    """Rows of (mean, min, max) over each rank's batches -> over all ranks' batches: the mean of
    the rank means (every rank holds an equal slice of each global batch, so this is the global
    mean), the min of the mins and the max of the maxes."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return stats
    means = _all_reduce(stats[:, 0].contiguous()) / torch.distributed.get_world_size()
    lows = _all_reduce(stats[:, 1].contiguous(), "min")
    highs = _all_reduce(stats[:, 2].contiguous(), "max")
    return torch.stack([means, lows, highs], dim=1)


def train(model: nn.Module, optimizer: torch.optim.Optimizer, train_loader, test_loader,
          loss_fn: Callable, epochs: int, *, start_epoch: int = 0, step_rows: int = 0,
          time_offset: float = 0.0, track_update_size: bool = True,
          on_epoch: Callable[[dict], None] | None = None,
          on_steps: Callable[[list[dict]], None] | None = None,
          progress: bool = True, amp_dtype: torch.dtype | None = None,
          channels_last: bool = False) -> list[dict]:
    """Train from `start_epoch` to `epochs`; return the new epoch rows.

    step_rows: also emit one row per optimiser step for the first `step_rows` steps of the run
        (PAPER.md fig4 logs every iteration of epoch 1); they reach `on_steps` at epoch end.
    time_offset: seconds already spent before a resume, so time_s is the run's total.
    amp_dtype: autocast the forward pass to this dtype (torch.bfloat16), loss in fp32.
    channels_last: feed 4-D inputs in channels_last memory format (the model should be too).
    """
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    weights = _weights(model)
    # AGD reports its own update size from the step (no weight copy); others: buffered copy
    update_meter = UpdateSizeMeter(optimizer, weights, enabled=track_update_size)
    steps_per_epoch = len(train_loader)
    rows: list[dict] = []
    clock = time.perf_counter()
    bar = tqdm(range(start_epoch, epochs), initial=start_epoch, total=epochs, desc="epochs",
               disable=not progress, dynamic_ncols=True)
    for epoch in bar:
        model.train()
        _set_optimizer_mode(optimizer, "train")
        train_loader.set_epoch(epoch)
        loss_stats, eta_stats, update_stats = (RunningStats(device) for _ in range(3))
        correct = torch.zeros((), device=device, dtype=torch.float64)
        seen = 0
        first_bad_step = torch.full((), -1, device=device, dtype=torch.long)
        pending_steps: list[tuple[int, torch.Tensor]] = []
        step_counter = torch.full((), epoch * steps_per_epoch, device=device, dtype=torch.long)
        for i, (x, y) in enumerate(train_loader):
            step = epoch * steps_per_epoch + i
            update_meter.before_step()
            out = _forward(model, x, amp_dtype, channels_last)
            loss = loss_fn(out, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            eta = optimizer.step()
            eta = eta.detach().float() if isinstance(eta, torch.Tensor) else torch.zeros((), device=device)
            update = update_meter.after_step()
            loss = loss.detach()
            batch_correct = correct_count(out.detach(), y)
            loss_stats.add(loss)
            eta_stats.add(eta)
            update_stats.add(update)
            correct += batch_correct
            seen += len(y)
            bad = ~torch.isfinite(loss) & (first_bad_step < 0)
            first_bad_step = torch.where(bad, step_counter, first_bad_step)
            step_counter += 1
            if step < step_rows:
                pending_steps.append((step, torch.stack([loss.double(), batch_correct.double() / len(y),
                                                         eta.double(), update.double()])))
        # --- one host read per epoch ---
        epoch_totals = _all_reduce(torch.stack([correct, torch.tensor(float(seen), device=device,
                                                                       dtype=torch.float64)]))
        stats = torch.stack([loss_stats.tensors(), eta_stats.tensors(), update_stats.tensors()])
        first_bad_step = _all_reduce(first_bad_step, "max")  # one rank's NaN stops every rank
        bad_step = first_bad_step.item()
        if bad_step >= 0:
            raise NonFiniteLossError(
                f"the training loss became non-finite at epoch {epoch + 1}, step "
                f"{bad_step - epoch * steps_per_epoch + 1} of {steps_per_epoch} (global step "
                f"{bad_step + 1}); rows up to epoch {epoch} are saved. "
                "Lower the learning rate or check the data."
            )
        test_loss, test_acc = evaluate(model, test_loader, loss_fn, optimizer, amp_dtype=amp_dtype,
                                       channels_last=channels_last)
        stats = _reduce_stats(stats).tolist()
        row = {
            "epoch": epoch + 1,
            "step": (epoch + 1) * steps_per_epoch,
            "train_loss": stats[0][0],
            "train_acc": (epoch_totals[0] / epoch_totals[1]).item(),
            "test_loss": test_loss.item(),
            "test_acc": test_acc.item(),
            "eta_mean": stats[1][0], "eta_min": stats[1][1], "eta_max": stats[1][2],
            "update_mean": stats[2][0], "update_min": stats[2][1], "update_max": stats[2][2],
            "time_s": time_offset + time.perf_counter() - clock,
        }
        rows.append(row)
        if pending_steps and on_steps is not None:
            values = torch.stack([v for _, v in pending_steps]).tolist()
            on_steps([
                {"epoch": epoch + 1, "step": s + 1, "train_loss": v[0], "train_acc": v[1],
                 "eta": v[2], "update": v[3]}
                for (s, _), v in zip(pending_steps, values, strict=True)
            ])
        if on_epoch is not None:
            on_epoch(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3g}", acc=f"{row['train_acc']:.3f}",
                        test=f"{row['test_acc']:.3f}", eta=f"{row['eta_mean']:.3g}")
    bar.close()
    return rows
