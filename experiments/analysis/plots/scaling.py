"""scaling (docs/experiments.md): AGD's final test accuracy minus tuned Adam's (rundata.tuned, the
lowest training objective, at every point), in points, for ResNet-18, VGG-16 and fig1's FCN, as
one thing changes at a time: the width (as a fraction of the paper's: 64 channels, 512 units),
the step budget (the budget group's first 1/8, 1/4, 1/2 and all of its epochs) and the crop's
padding (none, then as a fraction of the image side). Points are means over seeds with bars of
the larger seed standard deviation of the two sides; a hollow marker has one seed. Stars: the
paper's gap at its width (fig1). The points are scaling_claims.width_points / step_points /
augment_points, the same the report's scaling rows judge.

    python scripts/reproduce.py figure=scaling scale=mini|small|paper
"""

from __future__ import annotations

from matplotlib.ticker import FuncFormatter

from experiments.analysis import rundata as rd
from experiments.analysis import scaling_claims as sc
from experiments.analysis.plots import style as ps

FIGURE = "scaling"
GROUPS = ("scaling_budget", "scaling_width", "scaling_width_top", "scaling_augment", "scaling_fcn")
MODEL_COLORS = {"resnet18": "#1f4e9c", "vgg16": "#c0392b", "fcn": "#3a8f3a"}
PANELS = (("width", "width / the paper's width"), ("steps", "training steps"),
          ("augment", "crop padding / image side (0: no augmentation)"))


def fraction(value: float, _=None) -> str:
    """1/8, 1/4, 1/2, 1, 2: a width over the paper's."""
    return f"1/{round(1 / value)}" if value < 1 else f"{value:g}"


def draw_points(ax, points: list[sc.GapPoint], x_of, color: str, label: str) -> None:
    xs = [x_of(p) for p in points]
    ax.plot(xs, [p.gap for p in points], color=color, linewidth=1.0, label=label)
    for x, p in zip(xs, points, strict=True):
        ax.errorbar(x, p.gap, yerr=p.spread, color=color, marker="o", markersize=3.5, capsize=1.5,
                    elinewidth=0.7, markerfacecolor=color if p.seeds > 1 else "white")


def draw_panel(ax, ctx: sc.Ctx, axis: str) -> bool:
    drawn = False
    for model, name in sc.SCALING_NAMES.items():
        points = sc.SCALING_AXES[axis](ctx, model)
        if not points:
            continue
        drawn = True
        x_of = (lambda p, m=model: p.x / sc.PAPER_WIDTH[m]) if axis == "width" else (lambda p: p.x)
        draw_points(ax, points, x_of, MODEL_COLORS[model], name)
        if axis == "width":
            ax.plot(1.0, sc.PAPER_GAP[model], marker="*", markersize=8, color=MODEL_COLORS[model], linestyle="none")
    ax.axhline(0.0, color="0.5", linewidth=0.6, linestyle="--")
    if axis in ("width", "steps"):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(fraction if axis == "width" else lambda v, _: f"{v:,.0f}"))
    if not drawn:
        ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", color="0.5")
    return drawn


def plot(scale: str = "mini", runs: str | None = None, out: str | None = None):
    ps.setup()
    name = f"{FIGURE}_{scale}"
    ctx = sc.Ctx(runs, scale)
    frames = {g: rd.load_group(f"{g}_{scale}", runs) for g in GROUPS}
    if all(f.empty for f in frames.values()):
        return ps.no_runs_figure(FIGURE, scale, out, runs)
    fig, axes = ps.plt.subplots(1, 3, figsize=(7.4, 2.4), sharey=True)
    for ax, (axis, xlabel) in zip(axes, PANELS, strict=True):
        draw_panel(ax, ctx, axis)
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel("AGD − tuned Adam, test acc. (points)")
    axes[0].set_title("width (stars: the paper's gap at its width)")
    axes[1].set_title("step budget")
    axes[2].set_title("augmentation")
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        more, names = ax.get_legend_handles_labels()
        handles += [h for h, n in zip(more, names, strict=True) if n not in labels]
        labels += [n for n in names if n not in labels]
    fig.tight_layout()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5))
    problems = [f"{g}: {p}" for g, f in frames.items() if not f.empty for p in rd.budget_problems(f, f"{g}_{scale}")]
    ps.scale_note(fig, scale, "hollow = one seed", problems)
    return ps.save(fig, name, out, runs)
