"""PAPER.md §5 fig4: AGD on a depth-4 FCN at several batch sizes, against iterations: every
recorded early step (steps.csv: at least all of epoch 1), then one point per epoch
(metrics.csv). Panels η (per step, then per-epoch mean with min–max band), objective, train
accuracy, test accuracy.

    python scripts/plot_fig4.py scale=mini|paper [runs=<runs root>] [out=figures]
"""

from __future__ import annotations

import sys

import plot_style as ps

GROUP = "fig4"


def plot(scale: str = "mini", runs: str | None = None, out: str | None = None):
    name, df = ps.figure_runs(GROUP, scale, runs)
    if df.empty:
        return ps.no_runs_figure(GROUP, scale, out)
    steps = ps.load_group(name, runs, steps=True)
    batches = sorted(df["batch_size"].unique())
    cmap = ps.plt.get_cmap("plasma")
    colors = {b: cmap(0.05 + 0.8 * i / max(1, len(batches) - 1)) for i, b in enumerate(batches)}
    fig, axes = ps.plt.subplots(1, 4, figsize=(7.4, 2.0))
    for b in batches:
        c = colors[b]
        r = df[df.batch_size == b].sort_values("epoch")
        # every recorded early step (at least epoch 1), then the per-epoch rows after them
        s = steps[steps.batch_size == b].sort_values("step") if not steps.empty else steps
        later = r[r.step > (s.step.max() if not s.empty else 0)]
        if not s.empty:
            axes[0].plot(s.step, s.eta, color=c, linewidth=0.8, label=f"{b}")
            axes[1].plot(s.step, s.train_loss, color=c, linewidth=0.8)
            axes[2].plot(s.step, 100 * s.train_acc, color=c, linewidth=0.6, alpha=0.7)
        else:
            axes[0].plot([], [], color=c, label=f"{b}")
        ps.band(axes[0], later.step, later.eta_mean, later.eta_min, later.eta_max, c)
        axes[1].plot(later.step, later.train_loss, color=c)
        axes[2].plot(r.step, 100 * r.train_acc, color=c, **ps.TRAIN_STYLE)
        axes[3].plot(r.step, 100 * r.test_acc, color=c, marker=".", markersize=2, **ps.TEST_STYLE)
    for ax, title in zip(axes, [r"$\eta$", "objective (train)", "train accuracy (%)",
                                "test accuracy (%)"], strict=True):
        ax.set_title(title)
        ps.log_epochs(ax, "iteration")
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
    ps.scale_note(fig, scale)
    return ps.save(fig, name, out)


if __name__ == "__main__":
    ps.cli(plot, sys.argv[1:])
