"""showcase-c (docs/experiments.md): ResNet-50 (ImageNet layout), cross-entropy; AGD against
SGD(0.1, no decay); train (solid) and test (dotted) top-1 accuracy per epoch, mean over seeds
with a min–max band across them.

    python scripts/plot_showcase_c.py scale=mini|small|paper [runs=<runs root>] [out=<dir>] [publish=true]
"""

from __future__ import annotations

from experiments.analysis import rundata as rd
from experiments.analysis.plots import style as ps

GROUP = "showcase_c"


def plot(scale: str = "mini", runs: str | None = None, out: str | None = None):
    name, df = ps.figure_runs(GROUP, scale, runs)
    if df.empty:
        return ps.no_runs_figure(GROUP, scale, out, runs)
    done = rd.complete(df)
    fig, ax = ps.plt.subplots(figsize=(3.4, 2.5))
    for opt in ("agd", "sgd"):
        r = done[done.opt == opt]
        if r.empty:
            continue
        text = ps.label(opt) + (" (lr 0.1, no decay)" if opt == "sgd" else "") + f", {ps.seeds_text(r)}"
        ps.seed_line(ax, r, "train_acc", ps.color(opt), factor=100, label=text, **ps.TRAIN_STYLE)
        ps.seed_line(ax, r, "test_acc", ps.color(opt), factor=100, **ps.TEST_STYLE)
    cfg = df.iloc[0]
    title = f"ResNet-50 (ImageNet layout), {ps.dataset_name(cfg['data._target_'])}, batch {cfg['batch_size']}"
    return ps.finish_accuracy_figure(fig, ax, df, title=title, ylabel="top-1 accuracy (%)", name=name,
                                     scale=scale, out=out, runs=runs)
