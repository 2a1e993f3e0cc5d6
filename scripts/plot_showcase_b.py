"""PAPER.md §5 showcase-b: ResNet-18; final train (solid) and test (dotted) accuracy of Adam and
SGD over the learning-rate grid 1e-7 ... 1e1, with AGD (no learning rate) as flat lines.

    python scripts/plot_showcase_b.py scale=mini|paper [runs=<runs root>] [out=figures]
"""

from __future__ import annotations

import sys

import plot_style as ps

GROUP = "showcase_b"


def plot(scale: str = "mini", runs: str | None = None, out: str | None = None):
    name, df = ps.figure_runs(GROUP, scale, runs)
    if df.empty:
        return ps.no_runs_figure(GROUP, scale, out)
    df = df.assign(opt=ps.optimizer_name(df))
    final = ps.final_rows(df[df.status == "complete"])
    fig, ax = ps.plt.subplots(figsize=(3.6, 2.5))
    for opt in ("adam", "sgd"):
        r = final[final.opt == opt].sort_values("optimizer.lr")
        if r.empty:
            continue
        c = ps.OPTIMIZER_COLORS[opt]
        ax.plot(r["optimizer.lr"], 100 * r.train_acc, color=c, marker="o", markersize=2.5,
                label=ps.OPTIMIZER_LABELS[opt], **ps.TRAIN_STYLE)
        ax.plot(r["optimizer.lr"], 100 * r.test_acc, color=c, marker="o", markersize=2.5,
                **ps.TEST_STYLE)
    failed = ps.final_rows(df[df.status == "failed"])
    for _, r in failed.iterrows():  # diverged runs (non-finite loss) drawn at the bottom
        ax.plot(r["optimizer.lr"], 0, "x", color=ps.OPTIMIZER_COLORS.get(r.opt, "k"), markersize=4)
    agd = final[final.opt == "agd"]
    if not agd.empty:
        c = ps.OPTIMIZER_COLORS["agd"]
        ax.axhline(100 * agd.train_acc.iloc[0], color=c, label="AGD (no lr)", **ps.TRAIN_STYLE)
        ax.axhline(100 * agd.test_acc.iloc[0], color=c, **ps.TEST_STYLE)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("final accuracy (%)")
    ax.set_ylim(0, 102)
    cfg = df.iloc[0]
    ax.set_title(f"ResNet-18 (width {cfg.get('model.width', 64)}), "
                 f"{ps.dataset_name(cfg['data._target_'])}, {int(df.epoch.max())} epochs")
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles + ps.split_legend(ax), loc="center left", bbox_to_anchor=(1.0, 0.5))
    ps.scale_note(fig, scale, "× = diverged" if not failed.empty else "")
    return ps.save(fig, name, out)


if __name__ == "__main__":
    ps.cli(plot, sys.argv[1:])
