"""Beyond the paper (docs/beyond.md): three figures per scale, means over seeds with min–max bands.

* beyond_bias_<scale>: per network, test (dotted) and train (solid) accuracy against epochs,
  the paper's bias-free AGD against whole-model AGD (biases, affine BatchNorm);
* beyond_gpt_<scale>: the GPT's validation loss against steps and against wall time (AGD, AdamW
  at its best peak learning rate, the parameter-free peers), AdamW's final validation loss over
  its learning-rate grid with AGD as a flat band, and AGD's η per epoch (mean, min–max band);
* beyond_transfer_<scale>: final validation loss against width (AGD; AdamW at the learning rate
  tuned at the narrowest width; AdamW retuned per width), and AdamW's grid per width.

    python scripts/plot_beyond.py scale=mini|small|paper [runs=<runs root>] [out=<dir>] [publish=true]
"""

from __future__ import annotations

from experiments.analysis import report_beyond as rb
from experiments.analysis import rundata as rd
from experiments.analysis.plots import style as ps

WHOLE_COLOR, ADAMW_COLOR = ps.color("agd"), ps.color("adamw")


def wall_time_line(ax, runs_df, color, label=None) -> None:
    """Validation loss against wall time: per epoch, the seeds' mean time and mean loss, with the
    loss's min–max band across seeds."""
    per_epoch = runs_df.groupby("epoch").agg(t=("time_s", "mean"), mean=("test_loss", "mean"),
                                             low=("test_loss", "min"), high=("test_loss", "max"))
    ps.band(ax, per_epoch.t, per_epoch["mean"], per_epoch.low, per_epoch.high, color, label=label)


def bias_figure(scale: str, runs, out):
    name, df = ps.figure_runs("beyond_bias", scale, runs)
    df = rd.complete(df)
    if df.empty:
        return ps.no_runs_figure("beyond_bias", scale, out, runs)
    nets = sorted(df["model._target_"].unique())
    fig, axes = ps.plt.subplots(1, len(nets), figsize=(3.3 * len(nets), 2.4), squeeze=False)
    for ax, target in zip(axes[0], nets, strict=True):
        rows = df[df["model._target_"] == target]
        for opt, color, text in ((rb.AGD_PAPER, ps.color("sgd"), "bias-free (paper)"),
                                 (rb.AGD_WHOLE, WHOLE_COLOR, "whole model (extensions)")):
            r = rows[rows.opt == opt]
            if r.empty:
                continue
            ps.seed_line(ax, r, "train_acc", color, factor=100, label=f"{text}, {ps.seeds_text(r)}", **ps.TRAIN_STYLE)
            ps.seed_line(ax, r, "test_acc", color, factor=100, **ps.TEST_STYLE)
        ax.set_title(f"{rb.NETWORKS.get(str(target).rsplit('.', 1)[-1], target)}, AGD")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)")
    axes[0][0].legend(handles=axes[0][0].get_legend_handles_labels()[0] + ps.split_legend(axes[0][0]),
                      loc="lower right")
    cfg = df.iloc[0]
    fig.suptitle(f"{ps.dataset_name(cfg['data._target_'])}, width {cfg['model.width']}, batch {cfg['batch_size']}",
                 y=1.02)
    fig.tight_layout()
    ps.scale_note(fig, scale, problems=rd.budget_problems(df, name))
    return ps.save(fig, name, out, runs)


def gpt_curves(axes, df, final, base: int) -> None:
    """Validation loss against steps and wall time for AGD, best-tuned AdamW and the peers."""
    at_base = df[df["model.width"] == base]
    best = rb.best_lr(rb.adamw_by_lr(final, base))
    chosen = [(rb.AGD_WHOLE, at_base[at_base.opt == rb.AGD_WHOLE], WHOLE_COLOR, "AGD, whole model (no lr)")]
    if best is not None:
        adamw = at_base[(at_base.opt == rb.ADAMW) & (at_base["optimizer.lr"] == best)]
        chosen.append((rb.ADAMW, adamw, ADAMW_COLOR, f"AdamW warm-up+cosine, best lr {best:g}"))
    for opt in sorted(set(at_base.opt) - {rb.AGD_WHOLE, rb.ADAMW}):
        chosen.append((opt, at_base[at_base.opt == opt], ps.color(opt), ps.label(opt)))
    for _, r, color, text in chosen:
        if r.empty:
            continue
        ps.seed_line(axes[0], r, "test_loss", color, x="step", label=f"{text}, {ps.seeds_text(r)}")
        wall_time_line(axes[1], r, color)
    axes[0].set_xlabel("step")
    axes[1].set_xlabel("wall time (s)")
    for ax in axes[:2]:
        ax.set_ylabel("validation loss (nats/char)")


def gpt_grid(ax, final, base: int) -> None:
    """AdamW's final validation loss per peak lr (mean, min–max bars); AGD as a flat band."""
    rows = rb.final_at(final, rb.ADAMW, base)
    if not rows.empty:
        s = rows.groupby("optimizer.lr").test_loss.agg(["mean", "min", "max"]).reset_index()
        ax.errorbar(s["optimizer.lr"], s["mean"], yerr=[s["mean"] - s["min"], s["max"] - s["mean"]],
                    color=ADAMW_COLOR, marker="o", markersize=2.5, capsize=1.5, elinewidth=0.6, label="AdamW")
        ax.set_xscale("log")
    agd = rb.final_at(final, rb.AGD_WHOLE, base).test_loss
    if len(agd):
        ax.axhspan(agd.min(), agd.max(), color=WHOLE_COLOR, alpha=0.15, linewidth=0)
        ax.axhline(agd.mean(), color=WHOLE_COLOR, label="AGD (no lr)")
    ax.set_xlabel("AdamW peak learning rate")
    ax.set_ylabel("final validation loss")
    ax.legend(loc="best")


def gpt_figure(scale: str, runs, out):
    name, df = ps.figure_runs("beyond_gpt", scale, runs)
    df = rd.complete(df)
    final = rd.final_rows(df)
    if rb.final_at(final, rb.AGD_WHOLE).empty:
        return ps.no_runs_figure("beyond_gpt", scale, out, runs)
    base = max(rb.widths(rb.final_at(final, rb.AGD_WHOLE)))
    fig, axes = ps.plt.subplots(1, 4, figsize=(10.0, 2.4))
    gpt_curves(axes, df, final, base)
    gpt_grid(axes[2], final, base)
    agd = df[(df.opt == rb.AGD_WHOLE) & (df["model.width"] == base)]
    ps.envelope(axes[3], agd, "eta", WHOLE_COLOR)
    axes[3].set_xlabel("epoch")
    axes[3].set_ylabel("AGD's η (mean, min–max)")
    cfg = agd.iloc[0]
    blocks = int(cfg["model.depth"])
    fig.suptitle(f"GPT width {base}, {blocks} block{'s' if blocks > 1 else ''}, context {cfg['data.context']}, batch "
                 f"{cfg['batch_size']}, character-level Jargon File", y=1.03)
    fig.tight_layout()
    fig.legend(handles=axes[0].get_legend_handles_labels()[0], loc="center left", bbox_to_anchor=(1.0, 0.5))
    ps.scale_note(fig, scale, text="GPT on the Jargon File; wall time as recorded, on a CPU shared with other jobs",
                  problems=rd.budget_problems(df, name))
    return ps.save(fig, name, out, runs)


def transfer_figure(scale: str, runs, out):
    ps.setup()
    name = f"beyond_transfer_{scale}"
    final = rb.transfer_final(runs, scale)
    sizes = rb.widths(rb.final_at(final, rb.ADAMW)) if not final.empty else []
    if len(sizes) < 2:
        return ps.no_runs_figure("beyond_transfer", scale, out, runs)
    tuned = rb.best_lr(rb.adamw_by_lr(final, sizes[0]))
    fig, axes = ps.plt.subplots(1, 2, figsize=(6.6, 2.4))
    lines = {"AGD (no lr)": ([], WHOLE_COLOR, "-"), f"AdamW at lr {tuned:g} (tuned at width {sizes[0]})":
             ([], ADAMW_COLOR, "--"), "AdamW retuned per width": ([], ADAMW_COLOR, "-")}
    shades = ps.plt.cm.viridis([i / max(len(sizes) - 1, 1) for i in range(len(sizes))])
    for width, shade in zip(sizes, shades, strict=True):
        grid = rb.adamw_by_lr(final, width)
        agd = rb.final_at(final, rb.AGD_WHOLE, width)
        points = [agd.test_loss.mean() if not agd.empty else None,
                  grid[tuned].mean if tuned in grid else None, grid[rb.best_lr(grid)].mean if grid else None]
        for (values, _, _), value in zip(lines.values(), points, strict=True):
            values.append((width, value))
        if grid:
            lrs = sorted(grid)
            axes[1].plot(lrs, [grid[lr].mean for lr in lrs], marker="o", markersize=2.5, color=shade,
                         label=f"AdamW, width {width}")
        if not agd.empty:
            axes[1].axhline(agd.test_loss.mean(), color=shade, linestyle=":", linewidth=1.0)
    for text, (values, color, style) in lines.items():
        kept = [(w, v) for w, v in values if v is not None]
        axes[0].plot([w for w, _ in kept], [v for _, v in kept], color=color, linestyle=style, marker="o",
                     markersize=2.5, label=text)
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel("width")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("AdamW peak learning rate (dotted: AGD at that width)")
    for ax in axes:
        ax.set_ylabel("final validation loss")
        ax.legend(loc="best", fontsize=6)
    fig.suptitle("GPT at several widths: does the step size transfer? (means over seeds)", y=1.03)
    fig.tight_layout()
    ps.scale_note(fig, scale)
    return ps.save(fig, name, out, runs)


def plot(scale: str = "mini", runs: str | None = None, out: str | None = None):
    """Draw the three beyond figures of `scale` into `out` (default: the runs root's figures/)."""
    return [*bias_figure(scale, runs, out), *gpt_figure(scale, runs, out), *transfer_figure(scale, runs, out)]
