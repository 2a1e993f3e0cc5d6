"""fig1 (docs/experiments.md): four benchmarks side by side (columns). Top row: AGD's automatic
learning rate η (mean with min–max band, left axis) and the objective (right axis, log); bottom
row: train and test accuracy. AGD solid, tuned Adam dashed (SGD 0.1 for the ImageNet panel; tuned
= rundata.tuned, the lowest training objective); in the bottom row train is the darker,
thicker line and test the lighter one. Lines are means over seeds, bands min–max across seeds.

    python scripts/plot_fig1.py scale=mini|small|paper [runs=<runs root>] [out=<dir>] [publish=true]
"""

from __future__ import annotations

from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from experiments.analysis import rundata as rd
from experiments.analysis.plots import style as ps

# column: (title, run group, baseline optimiser); ResNet-18 reuses showcase-b, ImageNet showcase-c
PANELS = [
    ("FCN, CIFAR-10", "fig1_fcn", "adam"),
    ("ResNet-18, CIFAR-10", "showcase_b", "adam"),
    ("VGG-16, CIFAR-100", "fig1_vgg16", "adam"),
    ("ResNet-50, ImageNet", "showcase_c", "sgd"),
]


def draw_panel(top, bottom, df, baseline: str) -> None:
    """One column: η band and objective on top, accuracies below, for AGD and the baseline."""
    loss_ax = top.twinx()
    loss_ax.spines["right"].set_visible(True)
    loss_ax.grid(False)
    for opt, dashes in (("agd", "-"), (baseline, "--")):
        r = df[df.run.isin(rd.tuned(df, opt).run)]
        if r.empty:
            continue
        c = ps.color(opt)
        if opt == "agd":
            ps.envelope(top, r, "eta", "0.45", linestyle="-", linewidth=1.0)
        ps.seed_line(loss_ax, r, "train_loss", c, linestyle=dashes, linewidth=1.2)
        ps.seed_line(bottom, r, "train_acc", c, factor=100, linestyle=dashes, linewidth=1.5)
        ps.seed_line(bottom, r, "test_acc", c, factor=100, linestyle=dashes, linewidth=0.9, alpha=0.55)
    loss_ax.set_yscale("log")
    top.set_ylim(bottom=0)
    bottom.set_ylim(0, 102)
    for ax in (top, bottom, loss_ax):
        ps.log_axis(ax, "x")
    bottom.set_xlabel("epoch")
    # log ticks at 1-2-5 with short labels; no minor labels (they collide)
    loss_ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    loss_ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
    loss_ax.yaxis.set_minor_formatter(NullFormatter())
    return loss_ax


def panel_title(title: str, df, scale: str) -> str:
    if scale == "paper" or df.empty:
        return title
    model = title.split(",")[0]  # two lines: four panels side by side leave little width
    return f"{model}\n{ps.dataset_name(df['data._target_'].iloc[0])} ({scale})"


def legend_handles() -> list:
    return [
        Line2D([], [], color=ps.color("agd"), label="AGD"),
        Line2D([], [], color=ps.color("adam"), linestyle="--", label="tuned Adam"),
        Line2D([], [], color=ps.color("sgd"), linestyle="--", label="SGD lr 0.1 (ImageNet)"),
        Line2D([], [], color="0.45", label=r"AGD $\eta$ (left axis, min–max band)"),
        Line2D([], [], color="0.2", linewidth=1.5, label="train / objective"),
        Line2D([], [], color="0.2", linewidth=0.9, alpha=0.55, label="test"),
    ]


def plot(scale: str = "mini", runs: str | None = None, out: str | None = None):
    ps.setup()
    name = f"fig1_{scale}"
    fig, axes = ps.plt.subplots(2, 4, figsize=(7.4, 3.6))
    problems, drawn = [], 0
    for col, (title, group, baseline) in enumerate(PANELS):
        df = rd.complete(rd.load_group(f"{group}_{scale}", runs))
        axes[0, col].set_title(panel_title(title, df, scale))
        if df.empty:
            for ax in axes[:, col]:
                ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", color="0.5")
            continue
        drawn += 1
        loss_ax = draw_panel(axes[0, col], axes[1, col], df, baseline)
        if col == 3:
            loss_ax.set_ylabel("objective")
        problems += [f"{group}: {p}" for p in rd.budget_problems(df, f"{group}_{scale}")]
    if not drawn:
        ps.plt.close(fig)
        return ps.empty_figure(name, f"no fig1 runs: run scripts/reproduce.py figure=fig1 "
                                     f"scale={scale}", out, runs)
    axes[0, 0].set_ylabel(r"learning rate $\eta$ (AGD, grey)")
    axes[1, 0].set_ylabel("accuracy (%)")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.legend(handles=legend_handles(), loc="lower center", ncol=6, bbox_to_anchor=(0.5, 0.0))
    ps.scale_note(fig, scale, problems=problems)
    return ps.save(fig, name, out, runs)
