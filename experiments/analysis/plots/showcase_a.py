"""showcase-a (docs/experiments.md): depth-32 FCN, train (solid) and test (dotted) accuracy per
epoch for AGD, Adam(1e-3) and SGD(0.1) with default initialisation; each line is the mean over
seeds with a min–max band across them.

    python scripts/plot_showcase_a.py scale=mini|small|paper [runs=<runs root>] [out=<dir>] [publish=true]
"""

from __future__ import annotations

from experiments.analysis import rundata as rd
from experiments.analysis.plots import style as ps

GROUP = "showcase_a"
CLASSES = 10


def plot(scale: str = "mini", runs: str | None = None, out: str | None = None):
    name, df = ps.figure_runs(GROUP, scale, runs)
    if df.empty:
        return ps.no_runs_figure(GROUP, scale, out, runs)
    fig, ax = ps.plt.subplots(figsize=(3.4, 2.5))
    done = rd.complete(df)
    for opt in ("agd", "adam", "sgd"):
        r = done[done.opt == opt]
        if r.empty:
            continue
        lr = r["optimizer.lr"].iloc[0] if "optimizer.lr" in r and opt != "agd" else None
        text = ps.label(opt) + (f" (lr {lr:g})" if lr == lr and lr is not None else "")
        c = ps.color(opt)
        ps.seed_line(ax, r, "train_acc", c, factor=100, label=f"{text}, {ps.seeds_text(r)}",
                     **ps.TRAIN_STYLE)
        ps.seed_line(ax, r, "test_acc", c, factor=100, **ps.TEST_STYLE)
    ax.axhline(100 / CLASSES, color="0.5", linewidth=0.6, linestyle="--")
    ax.text(0.01, 100 / CLASSES + 1.5, "chance", fontsize=6, color="0.4",
            transform=ax.get_yaxis_transform())
    cfg = df.iloc[0]
    title = f"FCN depth {cfg['model.depth']} width {cfg['model.width']}, {ps.dataset_name(cfg['data._target_'])}"
    return ps.finish_accuracy_figure(fig, ax, df, title=title, ylabel="accuracy (%)", name=name, scale=scale,
                                     out=out, runs=runs)
