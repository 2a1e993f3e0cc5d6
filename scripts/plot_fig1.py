"""PAPER.md §5 fig1: four benchmarks side by side (columns). Top row: AGD's automatic learning
rate η (mean with min–max band, left axis) and the objective (right axis, log); bottom row:
train and test accuracy. AGD solid, tuned Adam dashed (SGD 0.1 for the ImageNet panel); in the
bottom row train is the darker, thicker line and test the lighter one.

    python scripts/plot_fig1.py scale=mini|paper [runs=<runs root>] [out=figures]
"""

from __future__ import annotations

import sys

import plot_style as ps
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

# column: (title, run group, baseline optimiser); ResNet-18 reuses showcase-b, ImageNet showcase-c
PANELS = [
    ("FCN, CIFAR-10", "fig1_fcn", "adam"),
    ("ResNet-18, CIFAR-10", "showcase_b", "adam"),
    ("VGG-16, CIFAR-100", "fig1_vgg16", "adam"),
    ("ResNet-50, ImageNet", "showcase_c", "sgd"),
]
STAND_IN = {"FCN, CIFAR-10": "FCN, MNIST-1D", "ResNet-18, CIFAR-10": "ResNet-18, digits",
            "VGG-16, CIFAR-100": "VGG-16, digits", "ResNet-50, ImageNet": "ResNet-50, digits"}


def tuned_run(df, opt):
    final = ps.final_rows(df[(df.opt == opt) & (df.status == "complete")]).dropna(subset=["train_loss"])
    return None if final.empty else final.loc[final.train_loss.idxmin()].run_dir


def plot(scale: str = "mini", runs: str | None = None, out: str | None = None):
    ps.setup()
    name = f"fig1_{scale}"
    fig, axes = ps.plt.subplots(2, 4, figsize=(7.4, 3.6))
    any_data = False
    for col, (title, group, baseline) in enumerate(PANELS):
        top, bottom = axes[0, col], axes[1, col]
        df = ps.load_group(f"{group}_{scale}", runs)
        top.set_title(STAND_IN[title] + " (mini)" if scale == "mini" else title)
        if df.empty:
            top.text(0.5, 0.5, "not run", transform=top.transAxes, ha="center", color="0.5")
            bottom.text(0.5, 0.5, "not run", transform=bottom.transAxes, ha="center", color="0.5")
            continue
        any_data = True
        df = df.assign(opt=ps.optimizer_name(df))
        loss_ax = top.twinx()
        loss_ax.spines["right"].set_visible(True)
        loss_ax.grid(False)
        for opt, dashes in (("agd", "-"), (baseline, "--")):
            run_dir = tuned_run(df, opt)
            if run_dir is None:
                continue
            r = df[df.run_dir == run_dir].sort_values("epoch")
            c = ps.OPTIMIZER_COLORS[opt]
            lr = f" lr {r['optimizer.lr'].iloc[0]:g}" if opt != "agd" else ""
            if opt == "agd":
                ps.band(top, r.epoch, r.eta_mean, r.eta_min, r.eta_max, "0.45", linestyle="-",
                        linewidth=1.0, label=r"AGD $\eta$")
            loss_ax.plot(r.epoch, r.train_loss, color=c, linestyle=dashes, linewidth=1.2,
                         label=f"{ps.OPTIMIZER_LABELS[opt]}{lr} objective")
            bottom.plot(r.epoch, 100 * r.train_acc, color=c, linestyle=dashes, linewidth=1.5,
                        label=f"{ps.OPTIMIZER_LABELS[opt]}{lr} train")
            bottom.plot(r.epoch, 100 * r.test_acc, color=c, linestyle=dashes, linewidth=0.9,
                        alpha=0.55, label=f"{ps.OPTIMIZER_LABELS[opt]}{lr} test")
        loss_ax.set_yscale("log")
        if col == 3:
            loss_ax.set_ylabel("objective")
        top.set_ylim(bottom=0)
        bottom.set_ylim(0, 102)
        for ax in (top, bottom, loss_ax):
            ps.log_axis(ax, "x")
        bottom.set_xlabel("epoch")
        # log ticks at 1-2-5 with short labels; no minor labels (they collide)
        loss_ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        loss_ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
        loss_ax.yaxis.set_minor_formatter(NullFormatter())
    axes[0, 0].set_ylabel(r"learning rate $\eta$ (AGD, grey)")
    axes[1, 0].set_ylabel("accuracy (%)")
    if not any_data:
        ps.plt.close(fig)
        return ps.empty_figure(name, f"no fig1 runs: run scripts/reproduce.py figure=fig1 "
                                     f"scale={scale}", out)
    proxies = [
        Line2D([], [], color=ps.OPTIMIZER_COLORS["agd"], label="AGD"),
        Line2D([], [], color=ps.OPTIMIZER_COLORS["adam"], linestyle="--", label="tuned Adam"),
        Line2D([], [], color=ps.OPTIMIZER_COLORS["sgd"], linestyle="--", label="SGD lr 0.1 (ImageNet)"),
        Line2D([], [], color="0.45", label=r"AGD $\eta$ (left axis, min–max band)"),
        Line2D([], [], color="0.2", linewidth=1.5, label="train / objective"),
        Line2D([], [], color="0.2", linewidth=0.9, alpha=0.55, label="test"),
    ]
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.legend(handles=proxies, loc="lower center", ncol=6, bbox_to_anchor=(0.5, 0.0))
    ps.scale_note(fig, scale)
    return ps.save(fig, name, out)


if __name__ == "__main__":
    ps.cli(plot, sys.argv[1:])
