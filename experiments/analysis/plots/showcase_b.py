"""showcase-b (docs/experiments.md): ResNet-18; final train (solid) and test (dotted) accuracy of
Adam and SGD over the learning-rate grid 1e-7 ... 1e1, with AGD (no learning rate) as flat
lines. Points are means over seeds with min–max bars; AGD's band is its min–max over seeds.

    python scripts/plot_showcase_b.py scale=mini|small|paper [runs=<runs root>] [out=<dir>] [publish=true]
"""

from __future__ import annotations

from experiments.analysis import rundata as rd
from experiments.analysis.plots import style as ps

GROUP = "showcase_b"


def lr_curve(final, column: str):
    """mean, min, max of a final metric over seeds, per learning rate (in %)."""
    stats = final.groupby("optimizer.lr")[column].agg(["mean", "min", "max"]).reset_index()
    return stats.assign(**{k: 100 * stats[k] for k in ("mean", "min", "max")})


def draw_baselines(ax, final) -> None:
    for opt in ("adam", "sgd"):
        r = final[final.opt == opt]
        if r.empty:
            continue
        for column, style, text in (("train_acc", ps.TRAIN_STYLE, ps.label(opt)), ("test_acc", ps.TEST_STYLE, None)):
            s = lr_curve(r, column)
            ax.errorbar(s["optimizer.lr"], s["mean"], yerr=[s["mean"] - s["min"], s["max"] - s["mean"]],
                        color=ps.color(opt), marker="o", markersize=2.5, capsize=1.5, elinewidth=0.6,
                        label=text, **style)


def plot(scale: str = "mini", runs: str | None = None, out: str | None = None):
    name, df = ps.figure_runs(GROUP, scale, runs)
    if df.empty:
        return ps.no_runs_figure(GROUP, scale, out, runs)
    final = rd.final_rows(rd.complete(df))
    fig, ax = ps.plt.subplots(figsize=(3.6, 2.5))
    draw_baselines(ax, final)
    failed = rd.final_rows(df[df.status == "failed"])
    for _, r in failed.iterrows():  # diverged runs (non-finite loss) drawn at the bottom
        ax.plot(r["optimizer.lr"], 0, "x", color=ps.color(r.opt), markersize=4)
    agd = final[final.opt == "agd"]
    c = ps.color("agd")
    for column, style, text in (("train_acc", ps.TRAIN_STYLE, f"AGD (no lr), {ps.seeds_text(agd)}"),
                                ("test_acc", ps.TEST_STYLE, None)):
        if agd.empty:
            break
        values = 100 * agd[column]
        if len(values) > 1:
            ax.axhspan(values.min(), values.max(), color=c, alpha=0.15, linewidth=0)
        ax.axhline(values.mean(), color=c, label=text, **style)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("final accuracy (%)")
    ax.set_ylim(0, 102)
    cfg = df.iloc[0]
    ax.set_title(f"ResNet-18 (width {cfg.get('model.width', 64)}), "
                 f"{ps.dataset_name(cfg['data._target_'])}, {int(df.epoch.max())} epochs")
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles + ps.split_legend(ax), loc="center left", bbox_to_anchor=(1.0, 0.5))
    ps.scale_note(fig, scale, "× = diverged" if not failed.empty else "", rd.budget_problems(df, name))
    return ps.save(fig, name, out, runs)
