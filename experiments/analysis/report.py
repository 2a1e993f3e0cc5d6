"""Write REPORT.md: every published number of the figure registry (registry.py) next to what our
runs give, at each scale (columns paper | small | mini), judged on the mean over seeds with its
spread.

    python scripts/report.py [runs=<runs root or evidence folder>] [source=evidence] [out=<dir>] [publish=true]

The report goes to `<runs root>/figures/REPORT.md` unless publish=true (figures/REPORT.md) or
out= is given. How each number is measured and judged lives in claims.py (its docstring defines
the verdict words, and REPORT.md repeats the definitions). Each claim that did not hold at small
scale gets a follow-up line: its double-budget group (`<group>_x2`, from `reproduce.py
check=double`) and the groups figures/followups.csv names for it; a ResNet-18, VGG-16 or FCN
claim also cites the scaling figure (figures/scaling_small.png) and its trend rows. Every claim
requires the groups it rests on to meet the convergence criterion (convergence.py), else it reads
"undecided (not converged)"; the criterion's numbers per group are printed, and each group's
commit and whether that training code is the code at HEAD. The beyond-the-paper section shows
each parameter-free peer at its raw defaults and at its recommended setting, then the rows of
report_beyond.py. Nothing in REPORT.md is typed by hand.

A module the report needs that is not installed (a peer optimiser package table 1 measures, the
plotting stack) stops it with one sentence naming the module; nothing is written.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from experiments import paths
from experiments.analysis import claims as cl
from experiments.analysis import convergence as conv
from experiments.analysis import journal, registry
from experiments.analysis import rundata as rd
from experiments.analysis.args import check_choice, entry, parse_keys
from experiments.analysis.plots import style as ps

PEERS = ("prodigy", "dadapt_adam", "schedulefree_adamw", "dog")
DEFINITIONS = [
    "**How to read a cell.** `mean ± std (n=seeds)`: the mean over the seeds of a setting and the sample "
    "standard deviation over those seeds (no ± with one seed), then the verdict:",
    "",
    "* **held**: the claim holds by more than the seeds' spread;",
    "* **did not hold**: the claim fails by more than the seeds' spread;",
    "* **within noise**: the deciding difference is no larger than the spread: for an A-vs-B claim "
    "|mean(A) − mean(B)| ≤ max(std(A), std(B)); for a threshold claim (near chance, within a tolerance) "
    "|mean − threshold| ≤ std. With one seed the spread is 0, so only an exact tie is within noise;",
    "* **shown**: an absolute number at small or mini scale (stand-in data); it is not comparable with "
    "the paper's number, and the qualitative claims it supports are judged in their own rows;",
    "* **not judged**: the runs behind the value mix budgets (different epochs in one run group);",
    f"* **{conv.UNDECIDED}**: a run group the claim rests on fails the convergence criterion below, so "
    "neither held nor did not hold can be said.",
    "",
    f"**Final values.** A run's final value is the mean over its last {rd.FINAL_EPOCHS} epochs (a CNN's test "
    "accuracy swings by many points from one epoch to the next); where the last epoch alone differs at the "
    "printed rounding it follows as `last epoch`. **Tuned** (every figure, verdict and the beyond rows): the "
    f"setting with the lowest training objective, the mean over seeds of each run's train loss over its last "
    f"{rd.FINAL_EPOCHS} epochs; the test split is never used to choose.",
    "",
    f"**Convergence** (experiments/analysis/convergence.py). For each optimiser of a group at its tuned "
    f"setting (per model, width or batch size), on the curves averaged over seeds, over the last quarter of "
    f"the epochs (windows of {rd.FINAL_EPOCHS} epochs at each end): the train loss falls by less than "
    f"{conv.LOSS_FALL:.0%} of its first-epoch value and the test accuracy rises by less than "
    f"{conv.ACC_RISE} points. A group converges when all its optimisers do.",
    "",
    "**Scales.** `paper`: the paper's settings (GPU cluster). `small`: real stand-in data (Fashion-MNIST in "
    "every figure of the paper, for CIFAR-10/100 and ImageNet alike), seeds 0, 1, 2, on a CPU. "
    "`mini`: offline stand-ins on a CPU budget (MNIST-1D for most FCN figures, Fashion-MNIST for fig4 and, "
    "in small subsets, the CNNs), a smoke run of every figure. Neither small nor mini is a paper-scale "
    "reproduction. Experiments: docs/experiments.md; scales: conf/scale/.",
    "",
    "**small, 2× epochs (seed 0).** Each small experiment once more with seed 0 at twice its epochs "
    "(`python scripts/reproduce.py figure=<id> scale=small check=double`, groups `<group>_x2`): does "
    "more training flip a verdict? One seed, so its spread is 0. Where only the tuned learning rates were "
    "rerun (the baselines' grids), a 'tuned learning rate' cell there restates the small-scale choice.",
]


def judge(ctx: cl.Ctx, claim: cl.Claim) -> cl.Result | None:
    """The measure of one claim in one context; 'not judged' if its groups mix budgets,
    'undecided (not converged)' if a group it rests on fails the convergence criterion."""
    ctx.used.clear()
    ctx.points.clear()
    result = claim.measure(ctx, claim)
    if result is None:
        return None
    for group in sorted(ctx.used):
        mixed = [p for p in rd.budget_problems(ctx.rows_of(group), group) if p.startswith("mixed")]
        if mixed:
            return cl.Result(result.text, f"not judged: {group} has {mixed[0]}", result.runs, result.mean)
    if result.verdict in (cl.HELD, cl.FAILED, cl.NOISE) and ctx.unconverged():
        return cl.Result(result.text, conv.UNDECIDED, result.runs, result.mean)
    return result


def cell(result: cl.Result | None) -> str:
    return "not run" if result is None else f"{result.text} **{result.verdict}**"


def claim_table(contexts: dict[str, cl.Ctx], double: cl.Ctx) -> tuple[list[str], list[dict]]:
    lines = ["| id | quantity | published | paper | small | small, 2× epochs (seed 0) | mini |",
             "|---|---|---|---|---|---|---|"]
    records = []
    for figure, claim in registry.claims():
        unit = claim.unit if claim.unit not in ("claim", "cell") else ""
        cells = []
        for scale in paths.SCALES:
            result = judge(contexts[scale], claim)
            no_scale = not figure.has_scale and scale != "paper"
            cells.append("— (no scale)" if no_scale else cell(result))
            records.append({"id": claim.id, "scale": scale, "figure": figure.id,
                            "value": None if result is None else result.text,
                            "mean": None if result is None else result.mean,
                            "verdict": "not run" if result is None else result.verdict})
        cells.insert(2, "— (no scale)" if not figure.has_scale else cell(judge(double, claim)))
        published = f"{claim.published} {unit}".strip()
        lines.append(f"| {claim.id} | {claim.quantity} | {published} | " + " | ".join(cells) + " |")
    return lines, records


def followup_contexts(root: Path, record: dict, store: dict | None = None) -> list[tuple[str, cl.Ctx]]:
    """(what it tests, context) for the double-budget run and each followups.csv row of a claim."""
    out = [("double budget (seed 0, 2× epochs)", cl.Ctx(root, "small", lambda b: f"{b}_small_x2", store))]
    for row in rd.followups():
        if row["claim"] != record["id"]:
            continue
        def rename(base: str, group: str = row["group"]) -> str:  # the follow-up replaces its base's group
            return group if group.startswith(base + "_") else f"{base}_small"
        out.append((row["tests"], cl.Ctx(root, "small", rename, store)))
    return out


# which scaling-figure model a claim is about (its trend rows are cited in the claim's follow-up)
SCALING_MODELS = {"showcase_b.": "resnet18", "fig1.resnet18": "resnet18", "fig1.vgg16": "vgg16", "fig1.fcn": "fcn"}
SCALING_FIGURE = "figures/scaling_small.png"


def scaling_line(claim_id: str, records: list[dict]) -> list[str]:
    """The follow-up line citing the scaling figure and its trend rows for the claim's model."""
    model = next((m for prefix, m in SCALING_MODELS.items() if claim_id.startswith(prefix)), None)
    if model is None:
        return []
    rows = [r for r in records if r["scale"] == "small" and r["id"].startswith(f"scaling.{model}_")]
    ran = [f"`{r['id']}` {r['value']} **{r['verdict']}**" for r in rows if r["verdict"] != "not run"]
    found = "; ".join(ran) if ran else ("not run yet (`python scripts/reproduce.py figure=scaling scale=small`)")
    return [f"  * the trend with width, steps and augmentation ({SCALING_FIGURE}): {found}"]


def followup_lines(root: Path, claims: dict[str, cl.Claim], records: list[dict],
                   store: dict | None = None) -> list[str]:
    lines = []
    for record in records:
        if record["scale"] != "small" or record["verdict"] not in (cl.FAILED, conv.UNDECIDED):
            continue
        if record["id"].startswith("scaling."):
            continue
        word = "did not hold" if record["verdict"] == cl.FAILED else "is undecided (not converged)"
        lines.append(f"* `{record['id']}` {word} at small scale ({record['value']}).")
        for what, ctx in followup_contexts(root, record, store):
            result = judge(ctx, claims[record["id"]])
            groups = ", ".join(f"`{g}`" for g in sorted(ctx.touched)) or "—"
            if result is None:
                lines.append(f"  * {what}, {groups}: not run yet (`python scripts/reproduce.py "
                             f"figure={record['figure']} scale=small check=double`)")
            else:
                lines.append(f"  * {what}, {groups}: {result.text} **{result.verdict}**")
        lines += scaling_line(record["id"], records)
    return lines or ["No claim did not hold or is undecided at small scale (or small scale has not been run)."]


def group_lines(root: Path, groups: set[str]) -> list[str]:
    """One row per run group behind the report: runs, seeds, epochs, precision, budget notes, and
    the code that trained it (commit; whether that training code is the code at HEAD)."""
    lines = ["| group | runs | seeds | epochs | precision | last written | budget | commit | code as at HEAD |",
             "|---|---|---|---|---|---|---|---|---|"]
    stale = []
    for group in sorted(groups):
        df = rd.load_group(group, root)
        if df.empty:
            continue
        runs = df.drop_duplicates("run")
        seeds = sorted({int(s) for s in runs.seed.dropna()}) if "seed" in runs else []
        epochs = sorted({int(e) for e in runs.epochs.dropna()}) if "epochs" in runs else []
        precision = sorted({str(p) for p in runs.precision.dropna()}) if "precision" in runs else []
        date = max(str(d) for d in runs.date.dropna()) if "date" in runs and runs.date.notna().any() else ""
        problems = "; ".join(rd.budget_problems(df, group)) or "as declared"
        commit, at_head = rd.group_code(df)
        stale += [] if at_head == "yes" else [f"`{group}` ({at_head})"]
        lines.append(f"| `{group}` | {len(runs)} | {','.join(map(str, seeds))} | {'/'.join(map(str, epochs))} | "
                     f"{'/'.join(precision) or 'not recorded'} | {date} | {problems} | {commit} | {at_head} |")
    if stale:
        lines += ["", f"**Stale or unstamped evidence** ({len(stale)} of {len(lines) - 2} groups): trained by code "
                      "that is not the training code at HEAD, or before runs recorded their commit: "
                      + ", ".join(stale) + "."]
    return lines


def _worst(checks: list[conv.Check]) -> conv.Check:
    """The setting furthest from meeting the criterion (its numbers stand for an optimiser's settings)."""
    def badness(c: conv.Check) -> float:
        if c.loss_fall is None or c.acc_rise is None:
            return float("inf")
        return max(c.loss_fall / conv.LOSS_FALL, c.acc_rise / conv.ACC_RISE)
    return max(checks, key=badness)


def _from_text(checks: list[conv.Check]) -> str:
    if any(c.scheduled for c in checks):
        return "— (its schedule follows the budget)"
    if any(c.converged_from is None for c in checks):
        return f"not within {max(c.epochs for c in checks)}"
    return str(max(c.converged_from for c in checks))


def convergence_lines(contexts: list[cl.Ctx]) -> list[str]:
    """The criterion's numbers for every (group, epochs) a claim measured, per optimiser."""
    lines = ["| group | optimiser | settings (converged) | loss fall, last quarter (% of epoch 1) | "
             "test-acc rise (points) | test acc, last 3 epochs (last epoch) | converged | converges from epoch |",
             "|---|---|---|---|---|---|---|---|"]
    seen = set()
    for ctx in contexts:
        for group, epochs in sorted(ctx.all_points, key=str):
            if (group, epochs) in seen:
                continue
            seen.add((group, epochs))
            checks = ctx.convergence(group, epochs).checks
            for opt in sorted({c.opt for c in checks}):
                mine = [c for c in checks if c.opt == opt]
                w = _worst(mine)
                fall = "—" if w.loss_fall is None else f"{100 * w.loss_fall:.1f}"
                rise = "—" if w.acc_rise is None else f"{w.acc_rise:+.2f}"
                where = f"; worst: {w.setting}" if len(mine) > 1 else ""
                ok = "yes" if all(c.converged for c in mine) else "no"
                lines.append(f"| {cl.point_name(group, epochs)} | {ps.label(opt)} | {len(mine)} "
                             f"({sum(c.converged for c in mine)}){where} | {fall} | {rise} | "
                             f"{w.test_window:.1f} ({w.test_last:.1f}) | {ok} | {_from_text(mine)} |")
    return lines


def peer_label(opt: str) -> str:
    base = opt.removesuffix("_recommended")
    if base not in PEERS:
        return ps.label(opt)
    return ps.label(base) + (" — recommended setting" if opt != base else " — raw defaults")


def beyond_table(root: Path) -> list[str]:
    """AGD against each parameter-free peer (raw defaults and recommended setting), per scale."""
    lines = ["| setting | scale | optimiser | train acc (%) | test acc (%) | train loss |",
             "|---|---|---|---|---|---|"]
    for setting, peers_base in (("showcase_a", "beyond_showcase_a"), ("fig2", "beyond_fig2")):
        for scale in paths.SCALES:
            ctx = cl.Ctx(root, scale)
            agd, peers = ctx.final(setting), ctx.final(peers_base)
            agd = agd[agd.opt == "agd"] if not agd.empty else agd
            if agd.empty and peers.empty:
                lines.append(f"| {setting} | {scale} | — | not run | | |")
                continue
            for opt, rows in ([("agd", agd)] if not agd.empty else []) + (
                    sorted(peers.groupby("opt")) if not peers.empty else []):
                stats = [cl.stat_of(rows, c) for c in ("train_acc", "test_acc", "train_loss")]
                texts = [s.text(3 if c == "train_loss" else 1) if s else "—"
                         for s, c in zip(stats, ("train_acc", "test_acc", "train_loss"), strict=True)]
                lines.append(f"| {setting} | {scale} | {peer_label(opt)} | " + " | ".join(texts) + " |")
            ran = set(peers.opt) if not peers.empty else set()
            missing = [p for p in PEERS if p not in ran]
            if missing:
                lines.append(f"| {setting} | {scale} | {', '.join(missing)} (raw defaults) | not run | | |")
    return lines


def beyond_extra(root: Path) -> list[str]:
    """The rows of report_beyond.py (biases, a transformer, transfer), per scale."""
    report_beyond = importlib.import_module("experiments.analysis.report_beyond")
    return [line for scale in paths.SCALES for line in report_beyond.rows(root, scale)]


def build(root: Path) -> tuple[str, list[dict]]:
    """The report's Markdown and one record per (claim, scale): value, mean, verdict."""
    store: dict = {}  # the groups and convergence checks every context below reads, loaded once
    contexts = {scale: cl.Ctx(root, scale, store=store) for scale in paths.SCALES}
    double = cl.Ctx(root, "small", lambda base: f"{base}_small_x2", store)
    table, records = claim_table(contexts, double)
    beyond = registry.FIGURES.get("beyond")  # a registry without the beyond figure has no beyond groups
    beyond_bases = sorted({rd.group_base(e) for e in (beyond.experiments if beyond else ())})
    for ctx in contexts.values():  # the beyond section's groups join the convergence and provenance tables
        for base in beyond_bases:
            ctx.rows(base)
    groups = set().union(*(c.touched for c in contexts.values()))
    source = "the committed evidence" if rd.is_evidence(root) else "the runs"
    lines = [
        "# What our runs give for every published number", "",
        f"Generated by `python scripts/report.py` from {source} under `{root.name}/`; do not edit by hand. "
        "Published numbers: the figure registry (`experiments/analysis/registry.py`); what each experiment "
        "runs: docs/experiments.md.", "",
        *DEFINITIONS, "", *table, "",
        "## Follow-ups of the claims that did not hold or are undecided at small scale", "",
        *followup_lines(root, {claim.id: claim for _, claim in registry.claims()}, records, store), "",
        "## Convergence of the run groups behind these numbers", "",
        "One row per optimiser of each group a claim or the beyond section measured (a group read for its first "
        "epochs only is named so; a GPT's test accuracy is its next-character accuracy on the validation "
        "windows); where an optimiser has several settings (fig3's cells, fig4's batch sizes) the numbers are those "
        "of the setting furthest from the criterion. *Converges from epoch*: the smallest budget from which "
        "every longer prefix of the curves passes (the first E epochs of a run without a schedule are what a "
        "run of E epochs gives).", "",
        *convergence_lines([*contexts.values(), double]), "",
        "## Run groups behind these numbers", "",
        "Budget: `as declared` when every run has the epochs and seeds its experiment declares and no other "
        "override; otherwise what differs. Precision as the runs recorded it. Commit: the one that trained the "
        "runs (several: each with its runs); code as at HEAD: `yes` when the tree was clean and no file "
        "changed since that commit can change the runs: nothing under agd/ or experiments/ (the results layer "
        "and benchmarks aside), and under conf/ no YAML file of the group's scale (conf/scale/<other "
        "scale>.yaml and conf/scale/*/<other scale>.yaml are not read) whose parsed content or `# @package` "
        "header differs; `not "
        "recorded` for runs made before runs recorded their commit, `unknown` where git cannot say.", "",
        *group_lines(root, groups), "",
        "## Beyond the paper: AGD against parameter-free peers", "",
        "Same settings as showcase-a and fig2; each peer at its raw defaults (conf/optimizer/<peer>.yaml) and, "
        "where it has one, at its recommended setting (conf/optimizer/<peer>_recommended.yaml). Final values "
        f"(mean of the last {rd.FINAL_EPOCHS} epochs).", "",
        *beyond_table(root), "", *beyond_extra(root), "",
    ]
    return "\n".join(lines), records


def write(root: Path, out: Path) -> Path | None:
    """Write <out>/REPORT.md; a report with no runs at all never replaces an existing one."""
    text, records = build(root)
    path = Path(out) / "REPORT.md"
    ran = [r for r in records if r["verdict"] != "not run" and registry.FIGURES[r["figure"]].has_scale]
    if not ran and path.exists():
        print(f"no runs under {root}: kept the existing {path}")
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    journal.write_bytes(path, text.encode())  # a temporary name, then renamed: never a torn report
    print(f"wrote {journal.published_path(path)}")
    return path


def _main(argv: list[str]) -> int:
    args = parse_keys(argv, {"runs": None, "out": None, "publish": "false", "source": "runs"})
    check_choice("publish", args["publish"], ("true", "false"))
    check_choice("source", args["source"], ("runs", "evidence"))
    evidence = args["source"] == "evidence" and not args["runs"]
    root = paths.EVIDENCE_DIR if evidence else paths.runs_root(args["runs"])
    write(root, rd.output_dir(args["out"], args["publish"], root))
    return 0


def main(argv: list[str]) -> int:
    """scripts/report.py: a bad argument is one sentence on stderr and exit 2; a module the
    report needs that is missing is one sentence naming it and exit 1 (nothing written)."""
    try:
        return entry(_main, argv, "report.py")
    except ModuleNotFoundError as err:
        print(f"report.py: the report needs the Python module {err.name!r}, which is not installed; "
              "install the requirements (`pip install -r requirements.txt`) and run it again.", file=sys.stderr)
        return 1
