"""How a published number is measured from run groups, and judged on the mean over seeds with its
spread. Each claim of the figure registry (registry.py) names one measure built here: a function
(ctx, claim) -> Result or None (None: its runs are not there).

A run's value is its final value in the sense of rundata.final_means: the mean over its last
FINAL_EPOCHS (3) epochs, the last epoch's own value shown beside it where it differs. Spread:
the sample standard deviation over seeds (ddof=1; 0 with a single seed). Verdicts:

    held          the claim holds by more than the spread
    did not hold  the claim fails by more than the spread
    within noise  the deciding difference is no larger than the spread: for A-vs-B claims
                  |mean(A) - mean(B)| <= max(std(A), std(B)); for a threshold claim (near
                  chance, within a tolerance) |mean - threshold| <= std
    shown         an absolute number at small/mini scale: stand-in data, not comparable with the
                  paper's number (the claims it supports are judged in their own rows)
    not judged    the runs behind it mix budgets (different epochs in one group)
    undecided (not converged)  a group it rests on fails the convergence criterion
                  (convergence.py); report.judge applies it to every claim
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from experiments.analysis import convergence as conv
from experiments.analysis import memory_table
from experiments.analysis import rundata as rd

HELD, FAILED, NOISE, SHOWN = "held", "did not hold", "within noise", "shown"
CHANCE = 10.0  # % for the 10-class sets of showcase-a
NEAR_CHANCE_MARGIN = 10.0  # points above chance still called "near chance"


@dataclass
class Stat:
    """One quantity over seeds: its per-seed values (final_means: the mean of each run's last
    epochs), the runs they come from, and each run's last-epoch value when known."""
    values: list[float]
    runs: list[str] = field(default_factory=list)
    last: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if self.n > 1 else 0.0

    def last_text(self, digits: int = 1) -> str:
        """'; last epoch X' when the last epoch's mean differs from the window's at this rounding."""
        if len(self.last) != self.n or not self.last:
            return ""
        last = f"{statistics.fmean(self.last):.{digits}f}"
        return "" if last == f"{self.mean:.{digits}f}" else f"; last epoch {last}"

    def text(self, digits: int = 1) -> str:
        spread = f" ± {self.std:.{digits}f}" if self.n > 1 else ""
        return f"{self.mean:.{digits}f}{spread} (n={self.n}{self.last_text(digits)})"


Measure = Callable[["Ctx", "Claim"], "Result | None"]


@dataclass(frozen=True)
class Claim:
    """One published number of the paper and how our runs measure it.

    id         `<figure>.<what>`, the row of REPORT.md
    quantity   what is measured, in words
    published  the paper's value as the paper states it ("65.5", "1e-4", "depth 4 / widest",
               "true" for a qualitative claim)
    unit       "%", "points", "lr", "x"; "claim" and "cell" for the qualitative rows
    measure    (ctx, claim) -> Result, or None when its runs are not there
    tolerance  how far a number may sit from `published` (or a gap from 0) and still hold
    note       where the published value comes from, when the paper does not state it plainly
    """
    id: str
    quantity: str
    published: str
    unit: str
    measure: Measure
    tolerance: float | None = None
    note: str = ""


@dataclass
class Result:
    text: str
    verdict: str
    runs: list[str]
    mean: float | str | None = None


def compare(a: Stat, b: Stat, lower: bool = True) -> str:
    """Is a's mean below (lower=True) or above b's by more than the larger seed spread?"""
    diff = a.mean - b.mean
    if abs(diff) <= max(a.std, b.std):
        return NOISE
    return HELD if (diff < 0) == lower else FAILED


def against(s: Stat, limit: float, below: bool = True) -> str:
    """Is s's mean below (or above) a fixed limit by more than its seed spread?"""
    if abs(s.mean - limit) <= s.std:
        return NOISE
    return HELD if (s.mean < limit) == below else FAILED


def within(distance: float, tolerance: float, noise: float) -> str:
    """A distance that should be at most `tolerance`, judged against the spread `noise`."""
    if abs(distance - tolerance) <= noise:
        return NOISE
    return HELD if distance <= tolerance else FAILED


def combine(verdicts: list[str]) -> str:
    if not verdicts:
        return NOISE
    return FAILED if FAILED in verdicts else NOISE if NOISE in verdicts else HELD


class Ctx:
    """The run groups of one scale (or their follow-up replacements), loaded once each.

    `points` holds what the claims measured since the caller last cleared it: (group, epochs)
    pairs, epochs None for the whole runs or E for their first E epochs (a budget read from a
    longer run's prefix); report.judge requires each to meet the convergence criterion."""

    def __init__(self, root, scale: str, rename: Callable[[str], str] | None = None, store: dict | None = None):
        self.root, self.scale, self.rename = root, scale, rename
        store = {} if store is None else store  # contexts of one root may share what they loaded
        self.cache: dict = store.setdefault("frames", {})
        self.checks: dict = store.setdefault("checks", {})
        self.touched: set[str] = set()  # every group read so far
        self.used: set[str] = set()  # the groups read since the caller last cleared it
        self.points: set[tuple[str, int | None]] = set()
        self.all_points: set[tuple[str, int | None]] = set()  # every (group, epochs) measured so far

    def name(self, base: str) -> str:
        return self.rename(base) if self.rename else f"{base}_{self.scale}"

    def rows(self, base: str, steps: bool = False):
        return self.rows_of(self.name(base), steps)

    def rows_of(self, group: str, steps: bool = False, epochs: int | None = None):
        """Complete runs' epoch rows (every recorded step with steps=True) of one group; with
        `epochs`, only its first `epochs` epochs (what a run of that budget would have given)."""
        self.touched.add(group)
        self.used.add(group)
        if (group, steps) not in self.cache:
            df = rd.load_group(group, self.root, steps=steps)
            self.cache[(group, steps)] = df if steps else rd.complete(df)
        df = self.cache[(group, steps)]
        if not df.empty:
            self.points.add((group, epochs))
            self.all_points.add((group, epochs))
        return df if epochs is None or df.empty else df[df.epoch <= epochs]

    def convergence(self, group: str, epochs: int | None = None) -> conv.GroupCheck:
        """The convergence criterion on a group's runs (their first `epochs` epochs when given)."""
        if (group, epochs) not in self.checks:
            rows = self.rows_of(group, epochs=epochs) if epochs is None else self.cache[(group, False)]
            rows = rows if epochs is None else rows[rows.epoch <= epochs]
            self.checks[(group, epochs)] = conv.check_group(rows, group)
        return self.checks[(group, epochs)]

    def unconverged(self) -> list[str]:
        """The points measured since `points` was last cleared that fail the criterion."""
        return [point_name(g, e) for g, e in sorted(self.points, key=str) if not self.convergence(g, e).converged]

    def final(self, base: str):
        """One row per run: its final values (rundata.final_means)."""
        return rd.final_means(self.rows(base))


def point_name(group: str, epochs: int | None) -> str:
    return f"`{group}`" + (f" (first {epochs} epochs)" if epochs is not None else "")


def stat_of(rows, column: str) -> Stat | None:
    rows = rows.dropna(subset=[column])
    if rows.empty:
        return None
    factor = 100.0 if column.endswith("acc") else 1.0
    last = [factor * float(v) for v in rows[f"{column}_last"]] if f"{column}_last" in rows else []
    return Stat([factor * float(v) for v in rows[column]], list(rows.run), last)


def final_stat(ctx: Ctx, base: str, column: str, **match) -> Stat | None:
    final = ctx.final(base)
    for key, value in match.items():
        if final.empty or key not in final:
            return None
        final = final[final[key] == value]
    return None if final.empty else stat_of(final, column)


def tuned_stat(ctx: Ctx, base: str, opt: str, column: str) -> Stat | None:
    best = rd.tuned(ctx.rows(base), opt)
    return None if best.empty else stat_of(best, column)


# ---- judging a Stat against a claim's published number (registry.Claim) ----

def judge_number(ctx: Ctx, claim, s: Stat | None) -> Result | None:
    if s is None:
        return None
    if ctx.scale != "paper":
        return Result(s.text(), SHOWN, s.runs, s.mean)
    distance = abs(s.mean - float(claim.published))
    return Result(s.text(), within(distance, claim.tolerance or 0.0, s.std), s.runs, s.mean)


def judge_gap(claim, a: Stat | None, b: Stat | None, what: str) -> Result | None:
    """a - b should be within ±tolerance (the paper's "comparable")."""
    if a is None or b is None:
        return None
    diff = a.mean - b.mean
    verdict = within(abs(diff), claim.tolerance, max(a.std, b.std))
    return Result(f"{diff:+.1f} ({what} {a.text()} vs {b.text()})", verdict, a.runs + b.runs, diff)


def near_chance(base: str, opt: str, column: str):
    def measure(ctx: Ctx, claim) -> Result | None:
        s = final_stat(ctx, base, column, opt=opt)
        if s is None:
            return None
        return Result(s.text(), against(s, CHANCE + NEAR_CHANCE_MARGIN), s.runs, s.mean)
    return measure


def number(base: str, column: str, **match):
    return lambda ctx, claim: judge_number(ctx, claim, final_stat(ctx, base, column, **match))


def tuned_number(base: str, opt: str, column: str):
    return lambda ctx, claim: judge_number(ctx, claim, tuned_stat(ctx, base, opt, column))


def agd_vs_tuned(base: str, opt: str):
    """AGD's final test accuracy minus the tuned baseline's (points)."""
    return lambda ctx, claim: judge_gap(claim, tuned_stat(ctx, base, "agd", "test_acc"),
                                       tuned_stat(ctx, base, opt, "test_acc"), "AGD")


def showcase_b_gap(ctx: Ctx, claim) -> Result | None:
    """AGD against the best-tuned of Adam and SGD: each tuned by rundata.tuned (lowest training
    objective), then the one of the two with the lower training objective; never chosen on test."""
    rows = ctx.rows("showcase_b")
    candidates = [t for t in (rd.tuned(rows, opt) for opt in ("adam", "sgd")) if not t.empty]
    if not candidates:
        return None
    best = min(candidates, key=lambda t: t.train_loss.mean())
    return judge_gap(claim, tuned_stat(ctx, "showcase_b", "agd", "test_acc"), stat_of(best, "test_acc"),
                     "AGD")


def tuned_lr(base: str, opt: str):
    """The tuned learning rate; within noise when the paper's lr is as good within the spread."""
    def measure(ctx: Ctx, claim) -> Result | None:
        best = rd.tuned(ctx.rows(base), opt)
        if best.empty:
            return None
        lr, chosen = float(best["optimizer.lr"].iloc[0]), stat_of(best, "train_loss")
        final = rd.complete(ctx.final(base))
        paper = final[(final.opt == opt) & final["optimizer.lr"].map(
            lambda v: math.isclose(float(v), float(claim.published)))]
        runs = chosen.runs
        if math.isclose(lr, float(claim.published)):
            verdict = HELD
        elif paper.empty or paper.train_loss.isna().all():
            verdict = FAILED
        else:
            other = stat_of(paper, "train_loss")
            verdict = NOISE if compare(other, chosen, lower=True) == NOISE else FAILED
            runs = runs + other.runs
        return Result(f"{lr:g} (n={chosen.n})", verdict, runs, lr)
    return measure


def below(base: str, opt: str, other: str):
    """opt's tuned final objective below other's."""
    def measure(ctx: Ctx, claim) -> Result | None:
        a, b = tuned_stat(ctx, base, opt, "train_loss"), tuned_stat(ctx, base, other, "train_loss")
        if a is None or b is None:
            return None
        return Result(f"{a.text(3)} vs {b.text(3)}", compare(a, b), a.runs + b.runs, a.mean - b.mean)
    return measure


def fig3_cells(ctx: Ctx, column: str) -> dict[tuple[int, int], Stat]:
    final = ctx.final("fig3")
    if final.empty:
        return {}
    return {(int(d), int(w)): stat_of(rows, column)
            for (d, w), rows in final.groupby(["model.depth", "model.width"])}


def describe_cell(key: tuple[int, int], widths: list[int]) -> str:
    depth, width = key
    tag = "widest" if width == max(widths) else "narrowest" if width == min(widths) else "middle width"
    return f"depth {depth} / {tag} (width {width})"


def fig3_extreme(best: bool, cell: bool):
    """The grid cell with the best (or worst) mean final test accuracy: its accuracy, or where it
    is (within noise when a cell of the paper's description is as good within the spread)."""
    def measure(ctx: Ctx, claim) -> Result | None:
        stats = fig3_cells(ctx, "test_acc")
        if not stats:
            return None
        key = (max if best else min)(stats, key=lambda k: stats[k].mean)
        if not cell:
            return judge_number(ctx, claim, stats[key])
        widths = sorted({w for _, w in stats})
        want_depth, want_width = claim.published.split(" / ")
        matches = [k for k in stats if describe_cell(k, widths).startswith(want_depth + " / " + want_width)]
        if key in matches:
            verdict = HELD
        else:
            close = [compare(stats[m], stats[key]) == NOISE for m in matches]
            verdict = NOISE if any(close) else FAILED
        where = describe_cell(key, widths)
        return Result(f"{where}: {stats[key].text()}", verdict, stats[key].runs, where)
    return measure


def fig3_wider(ctx: Ctx, claim) -> Result | None:
    """At every depth, each wider net reaches a lower mean final train loss than the next narrower."""
    stats = fig3_cells(ctx, "train_loss")
    if not stats:
        return None
    verdicts = []
    for depth in sorted({d for d, _ in stats}):
        widths = sorted(w for d, w in stats if d == depth)
        verdicts += [compare(stats[(depth, b)], stats[(depth, a)]) for a, b in zip(widths, widths[1:], strict=False)]
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in (HELD, NOISE, FAILED) if v in verdicts)
    return Result(f"adjacent width pairs: {counts}", combine(verdicts),
                  sorted({r for s in stats.values() for r in s.runs}), counts)


def fig3_depth(ctx: Ctx, claim) -> Result | None:
    """Depth 8 and 16 reach a lower mean final train loss than depth 32, at every width."""
    stats = fig3_cells(ctx, "train_loss")
    widths = [w for w in sorted({w for _, w in stats}) if all((d, w) in stats for d in (8, 16, 32))]
    if not widths:
        return None
    verdicts = [compare(stats[(d, w)], stats[(32, w)]) for w in widths for d in (8, 16)]
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in (HELD, NOISE, FAILED) if v in verdicts)
    return Result(f"(depth, width) pairs: {counts}", combine(verdicts),
                  sorted({r for s in stats.values() for r in s.runs}), counts)


def fig4_dip(ctx: Ctx, claim) -> Result | None:
    """η's early dip (min η over the recorded early steps / η of the first step) per batch size:
    deepest (smallest) at the largest batch, and below 1 there. Over every recorded early step,
    not only epoch 1: at the largest batch epoch 1 can be a single step, with no dip to measure."""
    steps = ctx.rows("fig4", steps=True)
    if steps.empty:
        return None
    dips: dict = {}
    for (batch, run), rows in steps.groupby(["batch_size", "run"]):
        rows = rows.sort_values("step")
        dips.setdefault(int(batch), Stat([])).values.append(float(rows.eta.min() / rows.eta.iloc[0]))
        dips[int(batch)].runs.append(run)
    if len(dips) < 2:
        return None
    top = max(dips)
    verdict = combine([compare(dips[top], dips[b]) for b in dips if b != top] + [against(dips[top], 1.0)])
    text = "; ".join(f"batch {b}: {dips[b].text(2)}" for b in sorted(dips))
    return Result(text, verdict, sorted(r for s in dips.values() for r in s.runs), dips[top].mean)


def memory_rows() -> list[dict]:
    return memory_table.table()


def table1(opt: str):
    """Measured memory multiple (memory_table.py); it has no scale: the paper column only."""
    def measure(ctx: Ctx, claim) -> Result | None:
        if ctx.scale != "paper":
            return None
        for row in memory_rows():
            if row["optimizer"] == opt:
                same = math.isclose(float(row["total_x"]), float(claim.published), abs_tol=0.01)
                return Result(f"{row['total_x']:.2f}× (measured, {row['model']})", HELD if same else FAILED,
                              [], row["total_x"])
        return None
    return measure
