"""Pull runs from Weights & Biases into a local runs tree in the run-directory schema, so that
every plot and scripts/report.py read them exactly like runs trained here.

    python scripts/pull_wandb.py project=agd-reproduction [entity=<team>] [group=fig3_paper] \
        out=wandb_runs
    python scripts/plot_fig3.py scale=paper runs=wandb_runs

Each W&B run becomes <out>/<group>/<run name>/ with config.json (the config the run logged),
metrics.csv (one row per epoch, agd.results.EPOCH_COLUMNS), steps.csv where per-step rows were
logged (fig4), and summary.json (status "complete" for finished runs). The W&B keys are read
back through the inverse of experiments/loggers.py's maps, so every column a run logged comes
back under its own name. Runs logged before the epoch rows carried `train/step` and the step rows
`step/epoch` lack those two: an epoch row's `step` is then left empty, and a step row's `epoch`
is taken from the epoch rows' step ranges where they have them (epoch e holds the steps after
epoch e-1's last step, up to its own), else left empty. wandb is imported only when the script
runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from agd.results import EPOCH_COLUMNS, STEP_COLUMNS, write_json, write_rows
from experiments.analysis.args import entry, parse_keys
from experiments.loggers import WANDB_KEYS, WANDB_STEP_KEYS, wandb_columns

STATUS = {"finished": "complete", "running": "running", "crashed": "failed", "failed": "failed",
          "killed": "failed"}


def _rows(logged: list[dict], keys: dict[str, str]) -> list[dict]:
    """Logged W&B dicts as schema rows: every column of `keys`, empty where not logged, with the
    epoch and step counters as whole numbers."""
    rows = []
    for item in logged:
        row = {column: item.get(key, "") for key, column in wandb_columns(keys).items()}
        for counter in ("epoch", "step"):
            if row[counter] not in ("", None):
                row[counter] = int(row[counter])
        rows.append(row)
    return rows


def _epochs_of_steps(steps: list[dict], epochs: list[dict]) -> None:
    """Give each step row that lacks its epoch the epoch whose step range holds it (from the
    epoch rows' last steps); steps past the last known epoch end keep an empty epoch."""
    ends = sorted((row["step"], row["epoch"]) for row in epochs if row["step"] != "")
    for row in steps:
        if row["epoch"] == "":
            row["epoch"] = next((epoch for end, epoch in ends if row["step"] <= end), "")


def convert(history: list[dict]) -> tuple[list[dict], list[dict]]:
    """Split a W&B history (list of logged dicts) into epoch rows and step rows of the schema."""
    is_epoch = [WANDB_KEYS["epoch"] in h and WANDB_KEYS["train_loss"] in h for h in history]
    epochs = _rows([h for h, e in zip(history, is_epoch, strict=True) if e], WANDB_KEYS)
    steps = _rows([h for h, e in zip(history, is_epoch, strict=True) if not e and WANDB_STEP_KEYS["step"] in h],
                  WANDB_STEP_KEYS)
    epochs.sort(key=lambda r: r["epoch"])
    steps.sort(key=lambda r: r["step"])
    _epochs_of_steps(steps, epochs)
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
