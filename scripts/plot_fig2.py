"""PAPER.md §5 fig2: FCN depth 8 width 256; AGD against Adam and SGD, each at the best learning
rate of its grid (lowest final train loss). Panels: objective, accuracy (train solid, test
dotted), relative update size (1/L) Σ_k ||ΔW_k||_F / ||W_k||_F (per-epoch mean, min–max band).

    python scripts/plot_fig2.py scale=mini|paper [runs=<runs root>] [out=figures]
"""

from __future__ import annotations

import sys

import plot_style as ps

GROUP = "fig2"


def tuned(df):
    """{optimizer: run_dir} for AGD and, per baseline, the run with the lowest final train loss,
    plus {optimizer: lr} of the chosen baselines."""
    final = ps.final_rows(df)
    chosen, lrs = {}, {}
    for opt, runs in final.groupby("opt"):
        finite = runs[runs.status == "complete"].dropna(subset=["train_loss"])
        if finite.empty:
            continue
        best = finite.loc[finite.train_loss.idxmin()]
        chosen[opt] = best.run_dir
        if opt != "agd" and "optimizer.lr" in best:
            lrs[opt] = float(best["optimizer.lr"])
    return chosen, lrs


def plot(scale: str = "mini", runs: str | None = None, out: str | None = None):
    name, df = ps.figure_runs(GROUP, scale, runs)
    if df.empty:
        return ps.no_runs_figure(GROUP, scale, out)
    df = df.assign(opt=ps.optimizer_name(df))
    chosen, lrs = tuned(df)
    fig, axes = ps.plt.subplots(1, 3, figsize=(7.0, 2.2))
    for opt in ("agd", "adam", "sgd"):
        if opt not in chosen:
            continue
        r = df[df.run_dir == chosen[opt]].sort_values("epoch")
        color = ps.OPTIMIZER_COLORS[opt]
        label = ps.OPTIMIZER_LABELS[opt] + (f" (tuned lr {lrs[opt]:g})" if opt in lrs else "")
        axes[0].plot(r.epoch, r.train_loss, color=color, label=label, **ps.TRAIN_STYLE)
        axes[0].plot(r.epoch, r.test_loss, color=color, **ps.TEST_STYLE)
        ps.train_test(axes[1], r.epoch, 100 * r.train_acc, 100 * r.test_acc, color)
        ps.band(axes[2], r.epoch, r.update_mean, r.update_min, r.update_max, color)
    axes[0].set_ylabel("objective (square loss)")
    axes[0].set_yscale("log")
    axes[1].set_ylabel("accuracy (%)")
    axes[2].set_ylabel("relative update size")
    axes[2].set_title(r"$\frac{1}{L}\sum_k \|\Delta W_k\|_F\,/\,\|W_k\|_F$ per step", fontsize=7.5)
    axes[2].set_yscale("log")
    for ax in axes:
        ps.log_epochs(ax)
    cfg = df.iloc[0]
    fig.suptitle(f"FCN depth {cfg['model.depth']} width {cfg['model.width']}, "
                 f"{ps.dataset_name(cfg['data._target_'])}, batch {cfg['batch_size']}", y=1.02)
    handles, _ = axes[0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(handles=handles + ps.split_legend(axes[0]), loc="center left",
               bbox_to_anchor=(1.0, 0.5))
    ps.scale_note(fig, scale)
    return ps.save(fig, name, out)


if __name__ == "__main__":
    ps.cli(plot, sys.argv[1:])
