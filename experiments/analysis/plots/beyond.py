"""Beyond the paper (docs/beyond.md): four figures per scale, means over seeds with min–max bands.

* beyond_bias_<scale>: per network, test (dotted) and train (solid) accuracy against epochs,
  the paper's bias-free AGD against whole-model AGD (biases, affine BatchNorm);
* beyond_gpt_<scale>: the GPT's validation loss against steps and against wall time (AGD, AdamW
  tuned by the one rule over 3 seeds, the parameter-free peers), AdamW's final validation loss
  over its learning-rate grid with AGD as a flat band, and AGD's η per epoch (mean, min–max band);
  beyond_gpt, beyond_gpt_best and beyond_gpt_peers read as one;
* beyond_transfer_<scale>: final validation loss against width (AGD; AdamW at the learning rate
  tuned at the narrowest width; AdamW retuned per width; a width trained for fewer steps drawn
  hollow, outside the lines), and AdamW's grid per width;
* beyond_variants_<scale>: per task (the GPT, fig2's FCN, showcase-b's ResNet-18) the paper's AGD,
  its three variants and the tuned baseline against epochs (steps for the GPT).

Every loss panel of the GPT draws the unigram and bigram count-model floors of its validation
windows as dashed lines, read from the runs' recorded floors (or says they were not recorded).

    python scripts/plot_beyond.py scale=mini|small|paper [runs=<runs root>] [out=<dir>] [publish=true]
"""

from __future__ import annotations

from experiments.analysis import report_beyond as rb
from experiments.analysis import rundata as rd
from experiments.analysis.plots import style as ps

WHOLE_COLOR, ADAMW_COLOR = ps.color("agd"), ps.color("adamw")
FLOOR_COLORS = {"unigram": "0.55", "bigram": "0.3"}
VARIANT_COLORS = {"momentum": "#2a9d8f", "spectral": "#e76f51", "gain10": "#9b5de5"}


def draw_floors(ax, df) -> None:
    """The count-model floors as labelled dashed lines, or a note that they were not recorded."""
    values, note = rb.floors(df)
    if values is None:
        ax.text(0.98, 0.98, note, transform=ax.transAxes, ha="right", va="top", fontsize=6, color="0.4")
        return
    for name, value in values.items():
        ax.axhline(value, color=FLOOR_COLORS[name], linestyle="--", linewidth=0.8)
        ax.text(0.99, value, f"{name} floor {value:.2f}", transform=ax.get_yaxis_transform(), ha="right",
                va="bottom", fontsize=6, color=FLOOR_COLORS[name])


def wall_time_line(ax, runs_df, color, label=None) -> None:
    """Validation loss against wall time: per epoch, the seeds' mean time and mean loss, with the
    loss's min–max band across seeds."""
    per_epoch = runs_df.groupby("epoch").agg(t=("time_s", "mean"), mean=("test_loss", "mean"),
                                             low=("test_loss", "min"), high=("test_loss", "max"))
    ps.band(ax, per_epoch.t, per_epoch["mean"], per_epoch.low, per_epoch.high, color, label=label)


def budget_notes(bases, scale: str, runs) -> list[str]:
    """Each group's departures from its declared budget, named by group."""
    return [f"{base}: {p}" for base in bases
            for p in rd.budget_problems(rb.group_frame(runs, base, scale), f"{base}_{scale}")]


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


def gpt_choices(df, base: int) -> list[tuple]:
    """(epoch rows, colour, label) of AGD, tuned AdamW and each peer at width `base`."""
    here = rb.at(df, width=base)
    chosen = [(rb.at(here, rb.AGD_WHOLE), WHOLE_COLOR, "AGD, whole model (no lr)")]
    tuned = rd.tuned(rb.at(here, rb.ADAMW), rb.ADAMW)
    if not tuned.empty:
        chosen.append((here[here.run.isin(tuned.run)], ADAMW_COLOR,
                       f"AdamW warm-up+cosine, tuned lr {float(tuned['optimizer.lr'].iloc[0]):g}"))
    for opt in sorted(set(here.opt) - {rb.AGD_WHOLE, rb.ADAMW}):
        chosen.append((rb.at(here, opt), ps.color(opt), ps.label(opt)))
    return [c for c in chosen if not c[0].empty]


def gpt_curves(axes, df, base: int) -> None:
    """Validation loss against steps and wall time for AGD, tuned AdamW and the peers."""
    for rows, color, text in gpt_choices(df, base):
        ps.seed_line(axes[0], rows, "test_loss", color, x="step", label=f"{text}, {ps.seeds_text(rows)}")
        wall_time_line(axes[1], rows, color)
    axes[0].set_xlabel("step")
    axes[1].set_xlabel("wall time (s)")
    for ax in axes[:2]:
        ax.set_ylabel("validation loss (nats/char)")
        draw_floors(ax, rb.at(df, width=base))


def gpt_grid(ax, df, base: int) -> None:
    """AdamW's final validation loss per peak lr (mean, min–max bars); AGD as a flat band."""
    final = rb.final_at(df, rb.ADAMW, base)
    if not final.empty:
        s = final.groupby("optimizer.lr").test_loss.agg(["mean", "min", "max"]).reset_index()
        ax.errorbar(s["optimizer.lr"], s["mean"], yerr=[s["mean"] - s["min"], s["max"] - s["mean"]],
                    color=ADAMW_COLOR, marker="o", markersize=2.5, capsize=1.5, elinewidth=0.6, label="AdamW")
        ps.log_axis(ax, "x")
    agd = rb.final_at(df, rb.AGD_WHOLE, base).test_loss
    if len(agd):
        ax.axhspan(agd.min(), agd.max(), color=WHOLE_COLOR, alpha=0.15, linewidth=0)
        ax.axhline(agd.mean(), color=WHOLE_COLOR, label="AGD (no lr)")
    draw_floors(ax, rb.at(df, width=base))
    ax.set_xlabel("AdamW peak learning rate")
    ax.set_ylabel("final validation loss")
    ax.legend(loc="center left")


def gpt_figure(scale: str, runs, out):
    ps.setup()
    name = f"beyond_gpt_{scale}"
    df = rb.merged(runs, rb.GPT_GROUPS, scale)
    if rb.at(df, rb.AGD_WHOLE).empty:
        return ps.no_runs_figure("beyond_gpt", scale, out, runs)
    base = max(rb.widths(rb.at(df, rb.AGD_WHOLE)))
    fig, axes = ps.plt.subplots(1, 4, figsize=(10.0, 2.4))
    gpt_curves(axes, df, base)
    gpt_grid(axes[2], df, base)
    agd = rb.at(df, rb.AGD_WHOLE, base)
    ps.envelope(axes[3], agd, "eta", WHOLE_COLOR)
    axes[3].set_xlabel("epoch")
    axes[3].set_ylabel("AGD's η (mean, min–max)")
    cfg = agd.iloc[0]
    blocks = int(cfg["model.depth"])
    fig.suptitle(f"GPT width {base}, {blocks} block{'s' if blocks > 1 else ''}, context {cfg['data.context']}, batch "
                 f"{cfg['batch_size']}, {rb.steps_of(agd):,} steps, character-level Jargon File", y=1.03)
    fig.tight_layout()
    fig.legend(handles=axes[0].get_legend_handles_labels()[0], loc="center left", bbox_to_anchor=(1.0, 0.5))
    ps.scale_note(fig, scale, text="GPT on the Jargon File; wall time as recorded, on a CPU shared with other jobs",
                  problems=budget_notes(rb.GPT_GROUPS, scale, runs))
    return ps.save(fig, name, out, runs)


def transfer_widths(ax, points) -> None:
    """Final validation loss against width: AGD, AdamW at the narrowest width's lr, AdamW retuned.
    Widths trained the narrowest width's steps are joined by lines; any other is a hollow marker."""
    narrow = points[0]
    lines = (("AGD (no lr)", WHOLE_COLOR, "-", lambda p: p.agd),
             (f"AdamW at lr {narrow.tuned:g} (tuned at width {narrow.width})", ADAMW_COLOR, "--",
              lambda p: p.grid.get(narrow.tuned)),
             ("AdamW retuned per width", ADAMW_COLOR, "-", lambda p: p.retuned))
    for text, color, style, pick in lines:
        same = [(p.width, pick(p).mean) for p in points if p.steps == narrow.steps and pick(p)]
        other = [(p.width, pick(p).mean) for p in points if p.steps != narrow.steps and pick(p)]
        ax.plot([w for w, _ in same], [v for _, v in same], color=color, linestyle=style, marker="o", markersize=2.5,
                label=text)
        if other:
            ax.plot([w for w, _ in other], [v for _, v in other], color=color, linestyle="none", marker="o",
                    markersize=4, markerfacecolor="none")
    for p in points:  # say the budget beside the hollow points
        value = p.retuned or p.agd
        if p.steps != narrow.steps and value:
            ax.annotate(f"{p.steps:,} steps", (p.width, value.mean), xytext=(0, 6), textcoords="offset points",
                        fontsize=6, ha="center", color="0.35")
    ax.set_xscale("log", base=2)
    ax.set_xticks([p.width for p in points], [str(p.width) for p in points])
    ax.minorticks_off()
    ax.set_xlabel(f"width (lines: {narrow.steps:,} steps; hollow: as annotated)")


def transfer_figure(scale: str, runs, out):
    ps.setup()
    name = f"beyond_transfer_{scale}"
    df = rb.transfer_frame(runs, scale)
    points = [p for p in rb.transfer_points(df) if p.grid and p.tuned is not None and p.steps]
    if len(points) < 2:
        return ps.no_runs_figure("beyond_transfer", scale, out, runs)
    fig, axes = ps.plt.subplots(1, 2, figsize=(6.6, 2.4))
    transfer_widths(axes[0], points)
    shades = ps.plt.cm.viridis([i / max(len(points) - 1, 1) for i in range(len(points))])
    for p, shade in zip(points, shades, strict=True):
        lrs = sorted(p.grid)
        axes[1].plot(lrs, [p.grid[lr].mean for lr in lrs], marker="o", markersize=2.5, color=shade,
                     label=f"AdamW, width {p.width} ({p.steps:,} steps)")
        if p.agd:
            axes[1].axhline(p.agd.mean, color=shade, linestyle=":", linewidth=1.0)
    ps.log_axis(axes[1], "x")
    axes[1].set_xlabel("AdamW peak learning rate (dotted: AGD at that width)")
    for ax in axes:
        draw_floors(ax, df)
        ax.set_ylabel("final validation loss")
        ax.legend(loc="best", fontsize=5)
    fig.suptitle("GPT at several widths: does the step size transfer? (one seed per AdamW point)", y=1.03)
    fig.tight_layout()
    ps.scale_note(fig, scale, problems=budget_notes(rb.TRANSFER_GROUPS, scale, runs))
    return ps.save(fig, name, out, runs)


def variant_panel(ax, task, runs, scale: str) -> bool:
    """One task's curves: the paper's AGD, its variants, the tuned baseline. False when not run."""
    own, refs = rb.merged(runs, (task.group,), scale), rb.merged(runs, task.refs, scale)
    ax.set_title(task.name)
    if own.empty:
        ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", va="center")
        return False
    paper, base, note = rb.references(task, own, refs, scale)
    tuned = rd.tuned(base, task.baseline)
    curves = [(paper, ps.color(task.paper), f"{ps.label(task.paper)} (paper)")]
    curves += [(rb.at(own, f"{task.paper}_{s}"), VARIANT_COLORS[s], text) for s, text, _ in rb.VARIANTS]
    if not tuned.empty:
        curves.append((base[base.run.isin(tuned.run)], ps.color(task.baseline),
                       f"{ps.label(task.baseline)}, tuned lr {float(tuned['optimizer.lr'].iloc[0]):g}"))
    x = "step" if task.metric == "test_loss" else "epoch"
    factor = 100 if task.metric.endswith("acc") else 1
    for rows, color, text in curves:
        if not rows.empty:
            ps.seed_line(ax, rows, task.metric, color, x=x, factor=factor, label=f"{text}, {ps.seeds_text(rows)}")
    if not note.startswith("references from"):
        ax.text(0.02, 0.02, note, transform=ax.transAxes, fontsize=5, color="#b00000", wrap=True)
    if task.metric == "test_loss":
        draw_floors(ax, own)
    ax.set_xlabel(x)
    ax.set_ylabel(rb.METRICS[task.metric])
    ax.legend(loc="best", fontsize=5)
    return True


def variants_figure(scale: str, runs, out):
    ps.setup()
    name = f"beyond_variants_{scale}"
    if all(rb.group_frame(runs, t.group, scale).empty for t in rb.TASKS):
        return ps.no_runs_figure("beyond_variants", scale, out, runs)
    fig, axes = ps.plt.subplots(1, len(rb.TASKS), figsize=(3.4 * len(rb.TASKS), 2.6))
    for ax, task in zip(axes, rb.TASKS, strict=True):
        variant_panel(ax, task, runs, scale)
    fig.suptitle("AGD's variants (fixed settings, untuned) against the paper's AGD and the tuned baseline", y=1.03)
    fig.tight_layout()
    ps.scale_note(fig, scale, problems=budget_notes([t.group for t in rb.TASKS], scale, runs))
    return ps.save(fig, name, out, runs)


def plot(scale: str = "mini", runs: str | None = None, out: str | None = None):
    """Draw the four beyond figures of `scale` into `out` (default: the runs root's figures/)."""
    return [*bias_figure(scale, runs, out), *gpt_figure(scale, runs, out), *transfer_figure(scale, runs, out),
            *variants_figure(scale, runs, out)]
