"""One schema for a run's results, written by training and read by plots and notebooks.

A run directory holds:
    config.json    the resolved config (nested dict)
    metrics.csv    one row per epoch, columns EPOCH_COLUMNS
    steps.csv      one row per optimiser step for the first N steps, if asked (STEP_COLUMNS)
    summary.json   status ("running" | "complete" | "failed"), final metrics, wall time
    checkpoint.pt  model, optimiser and rows, for resuming (written by the entry point)
Every file is written to a temporary name and renamed, so a crash never leaves a torn file.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

EPOCH_COLUMNS = [
    "epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc",
    "eta_mean", "eta_min", "eta_max", "update_mean", "update_min", "update_max", "time_s",
]
STEP_COLUMNS = ["epoch", "step", "train_loss", "train_acc", "eta", "update"]

CONFIG_FILE, METRICS_FILE, STEPS_FILE, SUMMARY_FILE = (
    "config.json", "metrics.csv", "steps.csv", "summary.json")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_rows(path: str | os.PathLike, rows: list[dict], columns: list[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        missing = [c for c in columns if c not in row]
        if missing:
            raise KeyError(f"result row lacks the schema columns {missing}.")
        writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
    atomic_write_bytes(path, buffer.getvalue().encode())


def write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def read_json(path: str | os.PathLike):
    with open(path) as f:
        return json.load(f)


def flatten(config: dict, prefix: str = "") -> dict:
    """{"model": {"depth": 4}} -> {"model.depth": 4}; lists become strings."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, list) else value
    return flat


def find_runs(root: str | os.PathLike) -> list[Path]:
    """Every run directory (one holding metrics.csv) below root, sorted."""
    return sorted(p.parent for p in Path(root).rglob(METRICS_FILE))


def load_runs(root: str | os.PathLike, steps: bool = False):
    """Read every run below `root` into one pandas DataFrame: one row per run × epoch (or per
    run × step with steps=True), with the run's flattened config keys and its summary status as
    columns, plus `run_dir`. Runs without a config are skipped with their directory listed in
    `df.attrs["skipped"]`."""
    import pandas as pd

    frames, skipped = [], []
    for run_dir in find_runs(root):
        table = run_dir / (STEPS_FILE if steps else METRICS_FILE)
        if not (run_dir / CONFIG_FILE).exists() or not table.exists():
            skipped.append(str(run_dir))
            continue
        frame = pd.read_csv(table)
        meta = flatten(read_json(run_dir / CONFIG_FILE))
        summary_path = run_dir / SUMMARY_FILE
        meta["status"] = read_json(summary_path).get("status") if summary_path.exists() else None
        meta["run_dir"] = str(run_dir)
        for key, value in meta.items():
            if key not in frame.columns:
                frame[key] = value
        frames.append(frame)
    columns = (STEP_COLUMNS if steps else EPOCH_COLUMNS) + ["run_dir", "status"]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    df.attrs["skipped"] = skipped
    return df

