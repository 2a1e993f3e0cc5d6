"""The scaling figure's measures (plots/scaling.py, docs/experiments.md, "scaling"): AGD's test
accuracy minus tuned Adam's at each point of three axes (width, step budget, augmentation) per
model, the trend verdicts along each axis, and the gap at the paper's width. The points are
judged as claims.py judges every claim: final values (the last 3 epochs' mean) over seeds, the
larger seed spread of the two sides as the noise, and the convergence criterion on each group.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import pandas as pd

from experiments.analysis import convergence as conv
from experiments.analysis import rundata as rd
from experiments.analysis.claims import FAILED, HELD, NOISE, SHOWN, Ctx, Result, Stat, stat_of, within

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
