"""PAPER.md §5 fig3: AGD on an FCN grid. One row per depth; columns η (mean with min–max band),
objective, train accuracy, test accuracy; one colour per width (darker = wider).

    python scripts/plot_fig3.py scale=mini|paper [runs=<runs root>] [out=figures]
"""

from __future__ import annotations

import sys

import plot_style as ps

GROUP = "fig3"


def plot(scale: str = "mini", runs: str | None = None, out: str | None = None):
    name, df = ps.figure_runs(GROUP, scale, runs)
    if df.empty:
        return ps.no_runs_figure(GROUP, scale, out)
    depths = sorted(df["model.depth"].unique())
    widths = sorted(df["model.width"].unique())
    cmap = ps.plt.get_cmap("viridis_r")
    colors = {w: cmap(0.1 + 0.85 * i / max(1, len(widths) - 1)) for i, w in enumerate(widths)}
    fig, axes = ps.plt.subplots(len(depths), 4, figsize=(7.0, 1.45 * len(depths) + 0.4),
                                sharex=True, squeeze=False)
    titles = [r"automatic learning rate $\eta$", "objective (train)", "train accuracy (%)",
              "test accuracy (%)"]
    for row, depth in enumerate(depths):
        for width in widths:
            r = df[(df["model.depth"] == depth) & (df["model.width"] == width)].sort_values("epoch")
            if r.empty:
                continue
            c = colors[width]
            ps.band(axes[row, 0], r.epoch, r.eta_mean, r.eta_min, r.eta_max, c, label=f"{width}")
            axes[row, 1].plot(r.epoch, r.train_loss, color=c)
            axes[row, 2].plot(r.epoch, 100 * r.train_acc, color=c)
            axes[row, 3].plot(r.epoch, 100 * r.test_acc, color=c, **ps.TEST_STYLE)
        axes[row, 0].set_ylabel(f"depth {depth}", fontweight="bold")
        axes[row, 1].set_yscale("log")
        for col in (2, 3):
            axes[row, col].set_ylim(0, 102)
    for col, title in enumerate(titles):
        axes[0, col].set_title(title)
        ps.log_epochs(axes[-1, col])
    for ax in axes[:-1].ravel():
        ax.set_xlabel("")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, title="width", loc="center left", bbox_to_anchor=(1.0, 0.5))
    cfg = df.iloc[0]
    fig.suptitle(f"AGD, FCN depth × width, {ps.dataset_name(cfg['data._target_'])}, "
                 f"batch {cfg['batch_size']}", y=1.0)
    fig.tight_layout()
    ps.scale_note(fig, scale)
    return ps.save(fig, name, out)


if __name__ == "__main__":
    ps.cli(plot, sys.argv[1:])
