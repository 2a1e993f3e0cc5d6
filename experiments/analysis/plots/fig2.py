"""fig2 (docs/experiments.md): FCN depth 8 width 256; AGD against Adam and SGD, each at the best
learning rate of its grid (rundata.tuned: the lowest training objective). Panels:
objective, accuracy (train solid, test dotted), relative update size (1/L) Σ_k ||ΔW_k||_F /
||W_k||_F (per-epoch mean, band from the lowest per-step minimum to the highest maximum).
Loss and accuracy lines are means over seeds with a min–max band across them.

    python scripts/plot_fig2.py scale=mini|small|paper [runs=<runs root>] [out=<dir>] [publish=true]
"""

from __future__ import annotations

from experiments.analysis import rundata as rd
from experiments.analysis.plots import style as ps

GROUP = "fig2"


def tuned_runs(df) -> dict:
    """{optimizer: epoch rows of its tuned setting (all seeds)} for AGD, Adam and SGD."""
    chosen = {}
    for opt in ("agd", "adam", "sgd"):
        best = rd.tuned(df, opt)
        if not best.empty:
            chosen[opt] = df[df.run.isin(best.run)]
    return chosen


def plot(scale: str = "mini", runs: str | None = None, out: str | None = None):
    name, df = ps.figure_runs(GROUP, scale, runs)
    if df.empty:
        return ps.no_runs_figure(GROUP, scale, out, runs)
    fig, axes = ps.plt.subplots(1, 3, figsize=(7.0, 2.2))
    for opt, r in tuned_runs(df).items():
        c = ps.color(opt)
        lr = f" (tuned lr {r['optimizer.lr'].iloc[0]:g})" if opt != "agd" else ""
        ps.seed_line(axes[0], r, "train_loss", c, label=f"{ps.label(opt)}{lr}, {ps.seeds_text(r)}",
                     **ps.TRAIN_STYLE)
        ps.seed_line(axes[0], r, "test_loss", c, **ps.TEST_STYLE)
        ps.seed_line(axes[1], r, "train_acc", c, factor=100, **ps.TRAIN_STYLE)
        ps.seed_line(axes[1], r, "test_acc", c, factor=100, **ps.TEST_STYLE)
        ps.envelope(axes[2], r, "update", c)
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
    ps.scale_note(fig, scale, problems=rd.budget_problems(df, name))
    return ps.save(fig, name, out, runs)
