"""fig4 (docs/experiments.md): AGD on a depth-4 FCN at several batch sizes, against iterations:
every recorded early step (steps.csv: at least all of epoch 1), then one point per epoch
(metrics.csv). Panels η (per step, then per-epoch mean with min–max band), objective, train
accuracy, test accuracy. Each batch size's lines are means over its seeds (bands: min–max).

    python scripts/plot_fig4.py scale=mini|small|paper [runs=<runs root>] [out=<dir>] [publish=true]
"""

from __future__ import annotations

from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from experiments.analysis import rundata as rd
from experiments.analysis.plots import style as ps

GROUP = "fig4"
TITLES = [r"$\eta$", "objective (train)", "train accuracy (%)", "test accuracy (%)"]


def draw_batch(axes, r, s, c, batch) -> None:
    """One batch size: its early steps `s`, then the epochs after them, `r` (all seeds)."""
    later = r[r.step > (s.step.max() if not s.empty else 0)]
    if not s.empty:
        ps.seed_line(axes[0], s, "eta", c, x="step", linewidth=0.8, label=f"{batch}")
        ps.seed_line(axes[1], s, "train_loss", c, x="step", linewidth=0.8)
        ps.seed_line(axes[2], s, "train_acc", c, x="step", factor=100, linewidth=0.6, alpha=0.7)
    else:
        axes[0].plot([], [], color=c, label=f"{batch}")
    if not later.empty:
        ps.envelope(axes[0], later, "eta", c, x="step")
        ps.seed_line(axes[1], later, "train_loss", c, x="step")
    ps.seed_line(axes[2], r, "train_acc", c, x="step", factor=100, **ps.TRAIN_STYLE)
    ps.seed_line(axes[3], r, "test_acc", c, x="step", factor=100, marker=".", markersize=2, **ps.TEST_STYLE)


def iterations(value: float, _=None) -> str:
    """1, 10, 100, 1k, 10k: short enough that a 2-inch panel holds a label per decade."""
    return f"{value / 1000:g}k" if value >= 1000 else f"{value:g}"


def iteration_axis(ax) -> None:
    """A log iteration axis labelled once per decade (the runs span 1 to about 10^4 or 10^5
    steps: labels at 1, 2 and 5 of every decade would overlap), minor ticks unlabelled."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0,), numticks=12))
    ax.xaxis.set_minor_locator(LogLocator(base=10, subs=tuple(range(2, 10)), numticks=12))
    ax.xaxis.set_major_formatter(FuncFormatter(iterations))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("iteration")


def plot(scale: str = "mini", runs: str | None = None, out: str | None = None):
    name, df = ps.figure_runs(GROUP, scale, runs)
    df = rd.complete(df)
    if df.empty:
        return ps.no_runs_figure(GROUP, scale, out, runs)
    steps = rd.load_group(name, runs, steps=True)
    batches = sorted(df["batch_size"].unique())
    cmap = ps.plt.get_cmap("plasma")
    fig, axes = ps.plt.subplots(1, 4, figsize=(7.4, 2.0), sharex=True)  # one iteration range, one set of ticks
    for i, b in enumerate(batches):
        s = steps[steps.batch_size == b] if not steps.empty else steps
        draw_batch(axes, df[df.batch_size == b], s, cmap(0.05 + 0.8 * i / max(1, len(batches) - 1)), b)
    for ax, title in zip(axes, TITLES, strict=True):
        ax.set_title(title)
        iteration_axis(ax)
        ax.tick_params(axis="x", labelbottom=True)
    axes[1].set_yscale("log")
    axes[2].set_ylim(0, 102)
    axes[3].set_ylim(0, 102)
    fig.legend(*axes[0].get_legend_handles_labels(), title="batch size", loc="center left",
               bbox_to_anchor=(1.0, 0.5))
    cfg = df.iloc[0]
    fig.suptitle(f"AGD, FCN depth {cfg['model.depth']} width {cfg['model.width']}, "
                 f"{ps.dataset_name(cfg['data._target_'])}: every early step, then per epoch",
                 y=1.03)
    fig.tight_layout()
    ps.scale_note(fig, scale, problems=rd.budget_problems(df, name))
    return ps.save(fig, name, out, runs)
