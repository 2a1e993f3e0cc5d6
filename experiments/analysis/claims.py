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

import pandas as pd

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


# ---- the scaling figure (plots/scaling.py): AGD's test accuracy minus tuned Adam's, as width,
# step budget and augmentation change, per model; docs/experiments.md, "scaling" ----

SCALING_TARGETS = {"resnet18": "agd.models.PreActResNet18", "vgg16": "agd.models.VGG16", "fcn": "agd.models.FCN"}
SCALING_NAMES = {"resnet18": "ResNet-18", "vgg16": "VGG-16", "fcn": "FCN"}
PAPER_WIDTH = {"resnet18": 64, "vgg16": 64, "fcn": 512}  # the paper's widths (docs/models.md)
PAPER_GAP = {"resnet18": -1.7, "vgg16": -2.3, "fcn": -0.8}  # AGD − tuned Adam at that width (fig1)
BUDGET_FRACTIONS = (8, 4, 2, 1)  # the step axis: the first 1/8, 1/4, 1/2 and all of the budget group's epochs


@dataclass
class GapPoint:
    """AGD's test accuracy minus tuned Adam's at one point of an axis (points; each side a Stat)."""
    x: float
    label: str
    agd: Stat
    adam: Stat
    lr: float
    edge: bool  # Adam's tuned lr is the smallest or largest of a grid of 3 or more there
    epochs: int

    @property
    def gap(self) -> float:
        return self.agd.mean - self.adam.mean

    @property
    def spread(self) -> float:
        return max(self.agd.std, self.adam.std)

    @property
    def seeds(self) -> int:
        return min(self.agd.n, self.adam.n)

    def text(self) -> str:
        spread = f" ± {self.spread:.1f}" if self.seeds > 1 else ""
        edge = ", the grid's edge" if self.edge else ""
        return f"{self.label}: {self.gap:+.1f}{spread} (n={self.seeds}, Adam lr {self.lr:g}{edge})"


def model_rows(ctx: Ctx, base: str, model: str, epochs: int | None = None, judged: bool = True):
    """The complete epoch rows of one model in the scaling group `base`, its first `epochs` epochs
    when given; judged=False reads them without requiring them to converge (a shorter budget of the
    step axis, truncated on purpose)."""
    group = ctx.name(base)
    df = ctx.rows_of(group, epochs=epochs)
    if not judged:
        ctx.points.discard((group, epochs))
    if df.empty or "model._target_" not in df:
        return df.iloc[0:0]
    return df[df["model._target_"] == SCALING_TARGETS[model]]


def gap_point(rows, x: float, label: str) -> GapPoint | None:
    """AGD against Adam tuned by the one rule (rundata.tuned) on the same rows."""
    agd, adam = rd.tuned(rows, "agd"), rd.tuned(rows, "adam")
    if agd.empty or adam.empty:
        return None
    lrs = sorted(rows[rows.opt == "adam"]["optimizer.lr"].dropna().unique())
    lr = float(adam["optimizer.lr"].iloc[0])
    edge = len(lrs) > 2 and lr in (lrs[0], lrs[-1])  # a two-point grid brackets nothing: its lr is shown
    return GapPoint(x, label, stat_of(agd, "test_acc"), stat_of(adam, "test_acc"), lr, edge, int(rows.epoch.max()))


def group_epochs(ctx: Ctx, base: str) -> int | None:
    df = ctx.rows_of(ctx.name(base))
    ctx.points.discard((ctx.name(base), None))  # read for its length only
    return int(df.epochs.max()) if not df.empty and "epochs" in df else None


def width_points(ctx: Ctx, model: str) -> list[GapPoint]:
    """One point per width at the width axis' budget: the scaling_width group's epochs, the budget
    group's first that many epochs giving its own width; the FCN's widths all come from the
    scaling_fcn group's first that many epochs (1/8 of its epochs without a scaling_width group)."""
    if model == "fcn":
        total = group_epochs(ctx, "scaling_fcn")
        if total is None:
            return []
        cnn = group_epochs(ctx, "scaling_width")  # the CNNs' width budget where there is one
        rows = model_rows(ctx, "scaling_fcn", model, min(total, cnn or max(1, total // BUDGET_FRACTIONS[0])))
        return [p for w, r in rows.groupby("model.width") if (p := gap_point(r, float(w), f"width {int(w)}"))]
    epochs = group_epochs(ctx, "scaling_width")
    if epochs is None:
        return []
    frames = [model_rows(ctx, "scaling_budget", model, epochs), model_rows(ctx, "scaling_width", model),
              model_rows(ctx, "scaling_width_top", model)]
    points = []
    for frame in frames:
        if frame.empty:
            continue
        for w, r in frame.groupby("model.width"):
            if (p := gap_point(r, float(w), f"width {int(w)}")) is not None:
                points.append(p)
    return sorted(points, key=lambda p: p.x)


def step_points(ctx: Ctx, model: str) -> list[GapPoint]:
    """The budget group's first 1/8, 1/4, 1/2 and all of its epochs (at the widest FCN width);
    only the full budget is required to converge."""
    base = "scaling_fcn" if model == "fcn" else "scaling_budget"
    total = group_epochs(ctx, base)
    if total is None:
        return []
    points = []
    for fraction in BUDGET_FRACTIONS:
        epochs = max(1, total // fraction)
        rows = model_rows(ctx, base, model, epochs, judged=fraction == 1)
        if rows.empty:
            continue
        rows = rows[rows["model.width"] == rows["model.width"].max()]
        steps = int(rows[rows.epoch == epochs].step.max())
        if (p := gap_point(rows, float(steps), f"{steps:,} steps")) is not None:
            points.append(p)
    return points


def augment_points(ctx: Ctx, model: str) -> list[GapPoint]:
    """No augmentation, the default crop padding (the budget group's prefix) and the augment
    group's padding, at the augment group's epochs; x is the padding over the image side (0: none)."""
    epochs = group_epochs(ctx, "scaling_augment")
    if epochs is None or model == "fcn":
        return []
    points = {}
    for frame in (model_rows(ctx, "scaling_budget", model, epochs), model_rows(ctx, "scaling_augment", model)):
        if frame.empty:
            continue
        for _, rows in frame.groupby(frame.config_id.map(conv.family)):
            first = rows.iloc[0]
            size = int(first["data.image_size"])
            pad = first.get("data.pad")
            pad = size // 8 if pad is None or pd.isna(pad) else int(pad)  # null: CIFAR's proportion
            on = str(first["data.augment"]).lower() == "true"
            label = f"pad {pad}/{size}" if on else "none"
            if (p := gap_point(rows, pad / size if on else 0.0, label)) is not None:
                points[label] = p
    return sorted(points.values(), key=lambda p: p.x)


SCALING_AXES = {"width": width_points, "steps": step_points, "augment": augment_points}
MIN_SEEDS = 3  # a trend verdict rests only on points with at least this many seeds


def _runs(points: list[GapPoint]) -> list[str]:
    return sorted({r for p in points for r in p.agd.runs + p.adam.runs})


def scaling_trend(model: str, axis: str):
    """Does AGD gain on tuned Adam along an axis? width and steps: the gap at the last point with
    MIN_SEEDS seeds minus the gap at the first; augment: the gap without augmentation minus the
    gap at the default padding (held: augmentation costs AGD more than Adam). Judged against the
    larger seed spread of the two points; with fewer than two such points the values are shown."""
    def measure(ctx: Ctx, claim) -> Result | None:
        points = SCALING_AXES[axis](ctx, model)
        if not points:
            return None
        text = "; ".join(p.text() for p in points)
        judged = [p for p in points if p.seeds >= MIN_SEEDS]
        if axis == "augment":
            judged = [p for p in judged if p.label == "none"] + [p for p in judged if p.label.startswith("pad")
                                                                and p.x == 0.125][:1]
        if len(judged) < 2:
            return Result(text, SHOWN, _runs(points), None)
        first, last = judged[0], judged[-1]
        diff = (first.gap - last.gap) if axis == "augment" else (last.gap - first.gap)
        noise = max(first.spread, last.spread)
        verdict = NOISE if abs(diff) <= noise else HELD if diff > 0 else FAILED
        return Result(f"{text} (change {diff:+.1f})", verdict, _runs(points), diff)
    return measure


def scaling_at_paper_width(model: str):
    """The gap at the paper's width: measured where the width axis reaches it (judged as fig1's
    'comparable', within the tolerance), else read off a least-squares line in log2(width)
    through the width points (shown: an extrapolation, not a measurement)."""
    def measure(ctx: Ctx, claim) -> Result | None:
        points = width_points(ctx, model)
        if not points:
            return None
        width = PAPER_WIDTH[model]
        at = [p for p in points if int(p.x) == width]
        if at:
            p = at[0]
            return Result(p.text(), within(abs(p.gap), claim.tolerance or 0.0, p.spread), _runs(at), p.gap)
        if len(points) < 2:
            return Result(f"{points[0].text()} (one width: no line)", SHOWN, _runs(points), None)
        xs, ys = [math.log2(p.x) for p in points], [p.gap for p in points]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
        value = my + slope * (math.log2(width) - mx)
        return Result(f"{value:+.1f} at width {width} (a line through widths {int(points[0].x)}–{int(points[-1].x)}: "
                      f"{slope:+.1f} points per doubling)", SHOWN, _runs(points), value)
    return measure
