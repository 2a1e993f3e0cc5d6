"""Pull runs from Weights & Biases into a local runs tree in the run-directory schema, so that
every plot script and scripts/report.py read them exactly like runs trained here.

    python scripts/pull_wandb.py project=agd-reproduction [entity=<team>] [group=fig3_paper] \
        out=wandb_runs
    python scripts/plot_fig3.py scale=paper runs=wandb_runs

Each W&B run becomes <out>/<group>/<run name>/ with config.json (the config the run logged),
metrics.csv (one row per epoch, agd.results.EPOCH_COLUMNS), steps.csv where per-step rows were
logged (fig4), and summary.json (status "complete" for finished runs). `step` of an epoch row is
not logged to W&B; it is recovered from the run's own config when the run logged per-step rows,
and left empty otherwise. wandb is imported only here, and only when the script runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from agd.results import EPOCH_COLUMNS, STEP_COLUMNS, write_json, write_rows
from experiments.analysis.args import entry, parse_keys

# W&B key -> schema column (the inverse of experiments/loggers.py WANDB_KEYS)
EPOCH_KEYS = {
    "train/loss": "train_loss", "train/acc": "train_acc", "test/loss": "test_loss",
    "test/acc": "test_acc", "agd/eta_mean": "eta_mean", "agd/eta_min": "eta_min",
    "agd/eta_max": "eta_max", "agd/update_mean": "update_mean", "agd/update_min": "update_min",
    "agd/update_max": "update_max", "time_s": "time_s", "epoch": "epoch",
}
STEP_KEYS = {"step/step": "step", "step/train_loss": "train_loss", "step/eta": "eta",
             "step/update": "update"}
STATUS = {"finished": "complete", "running": "running", "crashed": "failed", "failed": "failed",
          "killed": "failed"}


def convert(history: list[dict]) -> tuple[list[dict], list[dict]]:
    """Split a W&B history (list of logged dicts) into epoch rows and step rows of the schema."""
    epochs, steps = [], []
    for logged in history:
        if "epoch" in logged and "train/loss" in logged:
            row = {column: logged.get(key) for key, column in EPOCH_KEYS.items()}
            row["epoch"] = int(row["epoch"])
            row["step"] = ""
            epochs.append(row)
        elif "step/step" in logged:
            row = {column: logged.get(key) for key, column in STEP_KEYS.items()}
            row["step"] = int(row["step"])
            steps.append(row)
    epochs.sort(key=lambda r: r["epoch"])
    steps.sort(key=lambda r: r["step"])
    if steps and epochs:
        # steps are numbered from 1 over the whole run; an epoch's last step is epoch*steps/epoch,
        # known only when per-step rows cover at least the whole first epoch
        per_epoch = None
        first_epoch_rows = [r for r in steps if r.get("epoch") in (None, 1)]
        if len(steps) > len(first_epoch_rows) or epochs[0]["epoch"] > 1:
            per_epoch = len(first_epoch_rows)
        for row in epochs:
            row["step"] = row["epoch"] * per_epoch if per_epoch else ""
    for row in steps:
        row.setdefault("epoch", 1)
        row.setdefault("train_acc", "")
    return epochs, steps


def write_run(out: Path, group: str, name: str, config: dict, state: str, history: list[dict]) -> Path:
    run_dir = out / group / name
    epochs, steps = convert(history)
    write_json(run_dir / "config.json", config)
    write_rows(run_dir / "metrics.csv", epochs, EPOCH_COLUMNS)
    if steps:
        write_rows(run_dir / "steps.csv", steps, STEP_COLUMNS)
    final = epochs[-1] if epochs else {}
    write_json(run_dir / "summary.json", {
        "status": STATUS.get(state, state), "source": "wandb",
        **{k: final.get(k) for k in ("train_loss", "train_acc", "test_loss", "test_acc")}})
    return run_dir


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def list_runs(path: str, filters: dict) -> list:
    """The project's runs through the W&B API, or one sentence and exit 2 when W&B cannot be
    reached (no API key, no network, no such project)."""
    try:
        import wandb
    except ImportError:
        fail("pull_wandb needs the wandb package: pip install wandb.")
    try:
        return list(wandb.Api(timeout=60).runs(path, filters=filters))
    except Exception as err:  # noqa: BLE001 - wandb raises many types; each gets the same answer
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if "api key" in reason.lower():
            fail(f"W&B has no API key here ({reason}); run `wandb login` or set WANDB_API_KEY, on a "
                 "machine that can reach api.wandb.ai.")
        fail(f"could not read the W&B project {path!r} ({reason}); check the project and entity names "
             "and the network.")


def _main(argv: list[str]) -> int:
    args = parse_keys(argv, {"project": "agd-reproduction", "entity": None, "group": None,
                                "out": "wandb_runs"})
    path = f"{args['entity']}/{args['project']}" if args["entity"] else args["project"]
    filters = {"group": args["group"]} if args["group"] else {}
    out = Path(args["out"])
    runs = list_runs(path, filters)
    for run in runs:
        history = list(run.scan_history())
        config = {k: v for k, v in run.config.items() if not k.startswith("_")}
        group = run.group or config.get("group") or "ungrouped"
        write_run(out, group, run.name or run.id, config, run.state, history)
    print(f"pulled {len(runs)} runs from {path} into {out}")
    return 0


def main(argv: list[str]) -> int:
    """scripts/pull_wandb.py: a bad argument is one sentence on stderr and exit 2."""
    return entry(_main, argv, "pull_wandb.py")
