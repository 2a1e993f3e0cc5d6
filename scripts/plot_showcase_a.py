"""PAPER.md §5 showcase-a: depth-32 FCN, train (solid) and test (dotted) accuracy per epoch for
AGD, Adam(1e-3) and SGD(0.1) with default initialisation.

    python scripts/plot_showcase_a.py scale=mini|paper [runs=<runs root>] [out=figures]
"""

from __future__ import annotations

import sys

import plot_style as ps

GROUP = "showcase_a"


def plot(scale: str = "mini", runs: str | None = None, out: str | None = None):
    name, df = ps.figure_runs(GROUP, scale, runs)
    if df.empty:
        return ps.no_runs_figure(GROUP, scale, out)
    df = df.assign(opt=ps.optimizer_name(df))
    fig, ax = ps.plt.subplots(figsize=(3.4, 2.5))
    for opt in ("agd", "adam", "sgd"):
        runs_ = df[df.opt == opt]
        if runs_.empty:
            continue
        r = runs_.sort_values("epoch")
        lr = r["optimizer.lr"].iloc[0] if "optimizer.lr" in r and opt != "agd" else None
        label = ps.OPTIMIZER_LABELS[opt] + (f" (lr {lr:g})" if lr == lr and lr is not None else "")
        ps.train_test(ax, r.epoch, 100 * r.train_acc, 100 * r.test_acc, ps.OPTIMIZER_COLORS[opt], label)
    classes = 10
    ax.axhline(100 / classes, color="0.5", linewidth=0.6, linestyle="--")
    ax.text(0.01, 100 / classes + 1.5, "chance", fontsize=6, color="0.4",
            transform=ax.get_yaxis_transform())
    ps.log_epochs(ax)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 102)
    cfg = df.iloc[0]
    ax.set_title(f"FCN depth {cfg['model.depth']} width {cfg['model.width']}, "
                 f"{ps.dataset_name(cfg['data._target_'])}")
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles + ps.split_legend(ax), loc="center left", bbox_to_anchor=(1.0, 0.5))
    ps.scale_note(fig, scale)
    return ps.save(fig, name, out)


if __name__ == "__main__":
    ps.cli(plot, sys.argv[1:])
