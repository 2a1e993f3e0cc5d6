"""Has a run group stopped learning? The one convergence criterion every verdict of REPORT.md
requires (docs/experiments.md, "Convergence"); a verdict drawn from a group that fails it reads
"undecided (not converged)".

What is judged. In a run group, each optimiser at each of its settings apart from the optimiser's
own keys (each fig3 cell, each fig4 batch size, each width) is represented by its tuned setting
(rundata.tuned: lowest training objective); its curves are averaged over seeds, epoch by epoch.

The criterion, for a curve of E epochs: the last quarter is its last q = ceil(E / 4) epochs, and
each end is a window of k = min(FINAL_EPOCHS, q) epochs (3: curves swing from epoch to epoch):

    end     mean over epochs E-k+1 .. E
    start   mean over epochs E-q-k+1 .. E-q        (the k epochs before the last quarter)
    loss fall  (start - end) train loss / train loss of epoch 1   <  LOSS_FALL = 5%
    acc rise   end - start test accuracy, in points                <  ACC_RISE  = 0.5

Why against epoch 1's loss, not the loss itself: a net that fits its training set drives the
square loss towards 0 geometrically, so its relative fall never settles (in the committed
evidence, tuned Adam on fig2 at twice the small budget still loses 41% of its train loss over
the last quarter, at 99% train accuracy, while its test accuracy moves by 0.1 point). Measured
against the whole curve's scale, 5% means the last quarter removes less than a twentieth of the
loss the run started from: a curve flat to the eye on a linear axis. 0.5 points of test accuracy
is a sixth of the ±3-point tolerance of the paper's "comparable" claims (registry.py), so a
group that passes cannot move a gap across that tolerance in another quarter at that pace. A
curve of one epoch cannot be judged (not converged).

`converged_from` scans a curve's prefixes: with no schedule tied to the budget (AGD, Adam and SGD
at a constant learning rate), the first E' epochs of a run are what a run of budget E' would
have given, so the smallest E' from which every longer prefix passes is the budget the group
needed (a 2x-epochs run extends the scan to twice the budget).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from experiments.analysis import rundata as rd

LOSS_FALL = 0.05  # fraction of epoch 1's train loss the last quarter may still remove
ACC_RISE = 0.5  # points of test accuracy the last quarter may still add
UNDECIDED = "undecided (not converged)"


@dataclass
class Check:
    """The criterion on one setting's seed-mean curves."""
    group: str
    opt: str
    setting: str
    epochs: int
    seeds: int
    loss_fall: float | None  # fraction of epoch 1's train loss
    acc_rise: float | None  # points
    test_window: float | None  # %, mean over the last k epochs
    test_last: float | None  # %, the last epoch
    converged_from: int | None = None  # epochs; None when no prefix converges for good
    scheduled: bool = False  # the optimiser's schedule follows the budget: no prefix scan

    @property
    def converged(self) -> bool:
        return (self.loss_fall is not None and self.acc_rise is not None
                and self.loss_fall < LOSS_FALL and self.acc_rise < ACC_RISE)


@dataclass
class GroupCheck:
    group: str
    checks: list[Check] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return bool(self.checks) and all(c.converged for c in self.checks)


def seed_mean_curve(rows: pd.DataFrame) -> pd.DataFrame:
    """train_loss and test_acc per epoch, mean over the runs (seeds) of one setting."""
    return rows.groupby("epoch")[["train_loss", "test_acc"]].mean().sort_index()


def criterion(curve: pd.DataFrame) -> tuple[float | None, float | None]:
    """(loss fall as a fraction of epoch 1's loss, test-accuracy rise in points) over the last
    quarter of `curve` (seed-mean, indexed by epoch 1..E); (None, None) with fewer than 2 epochs."""
    epochs = len(curve)
    if epochs < 2:
        return None, None
    quarter = math.ceil(epochs / 4)
    k = min(rd.FINAL_EPOCHS, quarter)
    end, start = curve.iloc[epochs - k:], curve.iloc[max(0, epochs - quarter - k):epochs - quarter]
    first = float(curve.train_loss.iloc[0])
    fall = (start.train_loss.mean() - end.train_loss.mean()) / first if first > 0 else None
    rise = 100.0 * (end.test_acc.mean() - start.test_acc.mean())
    return (None if fall is None or math.isnan(fall) else float(fall)), (None if math.isnan(rise) else float(rise))


def passes(curve: pd.DataFrame) -> bool:
    fall, rise = criterion(curve)
    return fall is not None and rise is not None and fall < LOSS_FALL and rise < ACC_RISE


def converged_from(curve: pd.DataFrame) -> int | None:
    """The smallest budget E' such that the curve's first E'' epochs pass for every E' <= E'' <= E."""
    found = None
    for epochs in range(len(curve), 1, -1):
        if not passes(curve.iloc[:epochs]):
            break
        found = epochs
    return found


def family(config_id: str) -> str:
    """A setting's name without the optimiser's own keys: the settings one tuned choice covers."""
    name = config_id.rsplit("/", 1)[-1]
    kept = [kv for kv in name.split(",") if not kv.startswith("optimizer") and not kv.startswith("seed=")]
    return ",".join(kept)


def _scheduled(rows: pd.DataFrame) -> bool:
    return "optimizer.total_steps" in rows and rows["optimizer.total_steps"].notna().any()


def check_setting(group: str, opt: str, family: str, rows: pd.DataFrame) -> Check:
    """The criterion on one setting's runs (its seeds), with its prefix scan."""
    curve = seed_mean_curve(rows)
    fall, rise = criterion(curve)
    last = rd.final_means(rows)
    scheduled = _scheduled(rows)
    return Check(group, opt, family or "—", len(curve), rows.run.nunique(), fall, rise,
                 100.0 * float(last.test_acc.mean()), 100.0 * float(last.test_acc_last.mean()),
                 None if scheduled else converged_from(curve), scheduled)


def check_group(df: pd.DataFrame, group: str) -> GroupCheck:
    """Every optimiser of a group (complete runs), each at its tuned setting per family."""
    result = GroupCheck(group)
    rows = rd.complete(df)
    if rows.empty or "opt" not in rows:
        return result
    families = rows.config_id.map(family)
    for opt in sorted(rows.opt.unique()):
        for name in sorted(families[rows.opt == opt].unique()):
            chosen = rd.tuned(rows[(rows.opt == opt) & (families == name)], opt)
            if not chosen.empty:
                result.checks.append(check_setting(group, opt, name, rows[rows.run.isin(chosen.run)]))
    return result
