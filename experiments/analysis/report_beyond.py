"""Verdict rows for the beyond-the-paper experiments (docs/beyond.md), for figures/REPORT.md.

`rows(runs_root, scale)` returns Markdown lines for one scale; report.py calls it per scale.
Every number is the mean ± sample standard deviation over seeds (claims.Stat), and every verdict
compares means against the larger seed spread (claims.compare):

* beyond_bias: does whole-model AGD (biases, affine BatchNorm) keep or gain test accuracy
  against the paper's bias-free AGD, per network?
* beyond_gpt: AGD's final validation loss against AdamW (warm-up + cosine) at its best peak
  learning rate (lowest mean final validation loss over seeds) and against each peer;
* beyond_transfer: AdamW tuned at the narrowest width and reused at the others, against AdamW
  retuned per width, and AGD (nothing to tune) at every width.

The selections are shared with the beyond figures (plots/beyond.py).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.analysis import claims as cl
from experiments.analysis import rundata as rd
from experiments.analysis.plots import style as ps

AGD_WHOLE, AGD_PAPER, ADAMW = "agd_whole_model", "agd", "adamw_cosine"
NETWORKS = {"VGG16": "VGG-16", "PreActResNet18": "ResNet-18"}
VERB = {cl.HELD: "gains", cl.FAILED: "loses", cl.NOISE: "keeps (within noise)"}


def group_frame(root, base: str, scale: str):
    """Complete runs of `<base>_<scale>`, one row per epoch."""
    return rd.complete(rd.load_group(f"{base}_{scale}", root))


def final_at(final, opt: str, width=None):
    """Final rows of `opt` (at `width` when given)."""
    if final.empty:
        return final
    rows = final[final.opt == opt]
    return rows if width is None else rows[rows["model.width"] == width]


def adamw_by_lr(final, width) -> dict[float, cl.Stat]:
    """{peak lr: Stat of the final validation loss} of AdamW at one width."""
    rows = final_at(final, ADAMW, width)
    return {float(lr): cl.stat_of(r, "test_loss") for lr, r in rows.groupby("optimizer.lr")} if not rows.empty else {}


def best_lr(by_lr: dict[float, cl.Stat]) -> float | None:
    """The peak learning rate with the lowest mean final validation loss."""
    return min(by_lr, key=lambda lr: by_lr[lr].mean) if by_lr else None


def widths(final) -> list[int]:
    return sorted(int(w) for w in final["model.width"].unique()) if not final.empty else []


def loss_text(s: cl.Stat | None) -> str:
    return s.text(3) if s else "—"


def bias_rows(root, scale: str) -> list[str]:
    final = rd.final_rows(group_frame(root, "beyond_bias", scale))
    if final.empty:
        return [f"beyond_bias ({scale}): not run."]
    lines = ["| network | bias-free AGD (paper) test acc (%) | whole-model AGD test acc (%) | verdict |",
             "|---|---|---|---|"]
    for target, rows in sorted(final.groupby("model._target_")):
        name = NETWORKS.get(str(target).rsplit(".", 1)[-1], target)
        paper = cl.stat_of(final_at(rows, AGD_PAPER), "test_acc") if not final_at(rows, AGD_PAPER).empty else None
        whole = cl.stat_of(final_at(rows, AGD_WHOLE), "test_acc") if not final_at(rows, AGD_WHOLE).empty else None
        verdict = VERB[cl.compare(whole, paper, lower=False)] if paper and whole else "not judged (a side missing)"
        lines.append(f"| {name} | {paper.text(1) if paper else '—'} | {whole.text(1) if whole else '—'} | "
                     f"whole-model AGD {verdict} |")
    return lines


def gpt_rows(root, scale: str) -> list[str]:
    final = rd.final_rows(group_frame(root, "beyond_gpt", scale))
    if final.empty or final_at(final, AGD_WHOLE).empty:
        return [f"beyond_gpt ({scale}): not run."]
    base = max(widths(final_at(final, AGD_WHOLE)))
    agd = cl.stat_of(final_at(final, AGD_WHOLE, base), "test_loss")
    grid = adamw_by_lr(final, base)
    lines = [f"GPT width {base}: final validation loss (mean per-character cross entropy, nats).", "",
             "| optimiser | setting | final validation loss | AGD lower? |", "|---|---|---|---|",
             f"| AGD, whole model | no learning rate | {loss_text(agd)} | |"]
    best = best_lr(grid)
    for lr in sorted(grid):
        tag = " (best)" if lr == best else ""
        lines.append(f"| AdamW warm-up + cosine | peak lr {lr:g}{tag} | {loss_text(grid[lr])} | "
                     f"{cl.compare(agd, grid[lr])} |")
    peers = final[(final.opt != AGD_WHOLE) & (final.opt != ADAMW) & (final["model.width"] == base)]
    for opt, rows in sorted(peers.groupby("opt")):
        s = cl.stat_of(rows, "test_loss")
        lines.append(f"| {ps.label(opt)} | conf/optimizer/{opt}.yaml | {loss_text(s)} | "
                     f"{cl.compare(agd, s) if s else '—'} |")
    if best is not None:
        gap = agd.mean - grid[best].mean
        verdict = cl.compare(agd, grid[best])
        lines += ["", f"Verdict, AGD's final validation loss below best-tuned AdamW's: **{verdict}** "
                      f"(AGD {agd.mean:.3f}, AdamW {grid[best].mean:.3f} at peak lr {best:g}; "
                      f"AGD − AdamW {gap:+.3f})."]
    return lines


def transfer_final(root, scale: str):
    """Final rows of every width: beyond_transfer's narrower ones and beyond_gpt's own."""
    frames = [f for f in (group_frame(root, base, scale) for base in ("beyond_gpt", "beyond_transfer")) if not f.empty]
    return rd.final_rows(pd.concat(frames, ignore_index=True)) if frames else pd.DataFrame()


def transfer_rows(root, scale: str) -> list[str]:
    final = transfer_final(root, scale)
    sizes = widths(final_at(final, ADAMW)) if not final.empty else []
    if len(sizes) < 2:
        return [f"beyond_transfer ({scale}): not run."]
    narrow = sizes[0]
    tuned = best_lr(adamw_by_lr(final, narrow))
    lines = [f"AdamW's peak learning rate tuned at width {narrow} ({tuned:g}) and reused, against AdamW retuned at "
             "each width; AGD has nothing to tune.", "",
             f"| width | AGD | AdamW at the width-{narrow} lr | AdamW retuned (its lr) | reusing the lr costs AdamW |",
             "|---|---|---|---|---|"]
    verdicts = []
    for width in sizes:
        grid = adamw_by_lr(final, width)
        own = best_lr(grid)
        agd_rows = final_at(final, AGD_WHOLE, width)
        agd = cl.stat_of(agd_rows, "test_loss") if not agd_rows.empty else None
        reused = grid.get(tuned)
        if own == tuned:
            cost = "nothing (same lr)"
        elif reused is None:
            cost = "— (not run)"
        else:
            verdict = cl.compare(grid[own], reused)
            cost = f"{reused.mean - grid[own].mean:+.3f}: " + ("beyond the spread" if verdict == cl.HELD else verdict)
        verdicts.append((width, own, cost))
        lines.append(f"| {width} | {loss_text(agd)} | {loss_text(reused)} | {loss_text(grid.get(own))} ({own:g}) | "
                     f"{cost} |")
    moved = [w for w, own, _ in verdicts if own != tuned]
    costly = [w for w, _, cost in verdicts if cost.endswith("beyond the spread")]
    agd_means = [(w, cl.stat_of(final_at(final, AGD_WHOLE, w), "test_loss")) for w in sizes
                 if not final_at(final, AGD_WHOLE, w).empty]
    improving = all(a[1].mean >= b[1].mean for a, b in zip(agd_means, agd_means[1:], strict=False))
    where = "moved at width " + ", ".join(map(str, moved)) if moved else "did not move"
    lines += ["", f"Verdict: AdamW's best learning rate {where} on this range; reusing the width-{narrow} rate "
                  "costs AdamW validation loss beyond the seed spread at "
                  f"{', '.join(map(str, costly)) if costly else 'no width'}. AGD, untuned, "
                  f"{'improves' if improving else 'does not improve'} monotonically with width "
                  f"({', '.join(f'{w}: {s.mean:.3f}' for w, s in agd_means)})."]
    return lines


def rows(runs_root: Path, scale: str) -> list[str]:
    """The beyond-the-paper section's Markdown lines for one scale (one line when nothing ran)."""
    title = f"### Beyond the paper: whole models, a small GPT, width transfer ({scale})"
    if all(group_frame(runs_root, base, scale).empty for base in ("beyond_bias", "beyond_gpt", "beyond_transfer")):
        return [title, "", f"Not run at scale {scale} (docs/beyond.md has the commands).", ""]
    return [title, "",
            "Outside the paper: docs/beyond.md (rules, GPT, corpus); `mean ± std (n=seeds)`.", "",
            "**Whole-model AGD** (biases + affine BatchNorm) against the paper's bias-free AGD, final test accuracy:",
            "", *bias_rows(runs_root, scale), "",
            "**A small GPT with no learning rate** (character-level Jargon File):", "",
            *gpt_rows(runs_root, scale), "",
            "**Width transfer** (the same GPT at narrower widths):", "", *transfer_rows(runs_root, scale), ""]
