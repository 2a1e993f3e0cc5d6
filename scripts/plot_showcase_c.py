"""PAPER.md §5 showcase-c: ResNet-50 (ImageNet layout), cross-entropy; AGD against SGD(0.1, no
decay); train (solid) and test (dotted) top-1 accuracy per epoch.

    python scripts/plot_showcase_c.py scale=mini|paper [runs=<runs root>] [out=figures]
"""

from __future__ import annotations

import sys

import plot_style as ps

GROUP = "showcase_c"


def plot(scale: str = "mini", runs: str | None = None, out: str | None = None):
    name, df = ps.figure_runs(GROUP, scale, runs)
    if df.empty:
        return ps.no_runs_figure(GROUP, scale, out)
    df = df.assign(opt=ps.optimizer_name(df))
    fig, ax = ps.plt.subplots(figsize=(3.4, 2.5))
    for opt in ("agd", "sgd"):
        r = df[df.opt == opt].sort_values("epoch")
        if r.empty:
            continue
        label = ps.OPTIMIZER_LABELS[opt] + (" (lr 0.1, no decay)" if opt == "sgd" else "")
        ps.train_test(ax, r.epoch, 100 * r.train_acc, 100 * r.test_acc, ps.OPTIMIZER_COLORS[opt], label)
    ps.log_epochs(ax)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(0, 102)
    cfg = df.iloc[0]
    ax.set_title(f"ResNet-50 (ImageNet layout), {ps.dataset_name(cfg['data._target_'])}, "
                 f"batch {cfg['batch_size']}")
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles + ps.split_legend(ax), loc="center left", bbox_to_anchor=(1.0, 0.5))
    ps.scale_note(fig, scale)
    return ps.save(fig, name, out)


if __name__ == "__main__":
    ps.cli(plot, sys.argv[1:])
