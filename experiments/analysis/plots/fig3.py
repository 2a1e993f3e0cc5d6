"""fig3 (docs/experiments.md): AGD on an FCN grid. One row per depth; columns η (mean with min–max
band), objective, train accuracy, test accuracy; one colour per width (darker = wider). Each
cell's lines are means over its seeds, bands min–max across them.

    python scripts/plot_fig3.py scale=mini|small|paper [runs=<runs root>] [out=<dir>] [publish=true]
"""

from __future__ import annotations

from experiments.analysis import rundata as rd
from experiments.analysis.plots import style as ps

GROUP = "fig3"
TITLES = [r"automatic learning rate $\eta$", "objective (train)", "train accuracy (%)",
          "test accuracy (%)"]


def draw_row(axes, df, depth, colors) -> None:
    for width, c in colors.items():
        r = df[(df["model.depth"] == depth) & (df["model.width"] == width)]
        if r.empty:
            continue
        ps.envelope(axes[0], r, "eta", c, label=f"{width}")
        ps.seed_line(axes[1], r, "train_loss", c)
        ps.seed_line(axes[2], r, "train_acc", c, factor=100)
        ps.seed_line(axes[3], r, "test_acc", c, factor=100, **ps.TEST_STYLE)
    axes[0].set_ylabel(f"depth {depth}", fontweight="bold")
    axes[1].set_yscale("log")
    for col in (2, 3):
        axes[col].set_ylim(0, 102)


def plot(scale: str = "mini", runs: str | None = None, out: str | None = None):
    name, df = ps.figure_runs(GROUP, scale, runs)
    df = rd.complete(df)
    if df.empty:
        return ps.no_runs_figure(GROUP, scale, out, runs)
    depths = sorted(df["model.depth"].unique())
    widths = sorted(df["model.width"].unique())
    cmap = ps.plt.get_cmap("viridis_r")
    colors = {w: cmap(0.1 + 0.85 * i / max(1, len(widths) - 1)) for i, w in enumerate(widths)}
    fig, axes = ps.plt.subplots(len(depths), 4, figsize=(7.0, 1.45 * len(depths) + 0.4),
                                sharex=True, squeeze=False)
    for row, depth in enumerate(depths):
        draw_row(axes[row], df, depth, colors)
    for col, title in enumerate(TITLES):
        axes[0, col].set_title(title)
        ps.log_epochs(axes[-1, col])
    for ax in axes[:-1].ravel():
        ax.set_xlabel("")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, title="width", loc="center left", bbox_to_anchor=(1.0, 0.5))
    cfg = df.iloc[0]
    fig.suptitle(f"AGD, FCN depth × width, {ps.dataset_name(cfg['data._target_'])}, "
                 f"batch {cfg['batch_size']}, {ps.seeds_text(df[df.config_id == cfg.config_id])} per cell",
                 y=1.0)
    fig.tight_layout()
    ps.scale_note(fig, scale, problems=rd.budget_problems(df, name))
    return ps.save(fig, name, out, runs)
