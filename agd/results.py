"""One schema for a run's results, written by training and read by plots and notebooks.

A run directory holds:
    config.json    the resolved config (nested dict)
    metrics.csv    one row per epoch, columns EPOCH_COLUMNS
    steps.csv      one row per optimiser step for the first N steps, if asked (STEP_COLUMNS)
    summary.json   status and why: "running", "complete", "failed" (with `error`), "diverged"
                   (the loss became non-finite; `error` says where), "interrupted" (with `error`:
                   the signal); final metrics, wall time, the precision the run used
    facts.json     how the run was executed: device, precision, channels_last, ranks, overrides
    checkpoint.pt  model, optimiser and every row so far, for resuming (written by the entry point)
    samples.txt    text data only, when sample_chars > 0: characters sampled from the trained model
    .lock          held (flock) by the process training the run, released by the system when it
                   dies: a summary that still says "running" with its lock free is a run that
                   was killed, and reads as "interrupted"
Every file is written to a temporary name and renamed, so a crash never leaves a torn file.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
from pathlib import Path

EPOCH_COLUMNS = [
    "epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc",
    "eta_mean", "eta_min", "eta_max", "update_mean", "update_min", "update_max", "time_s",
]
STEP_COLUMNS = ["epoch", "step", "train_loss", "train_acc", "eta", "update"]

CONFIG_FILE, METRICS_FILE, STEPS_FILE, SUMMARY_FILE, FACTS_FILE, CHECKPOINT_FILE = (
    "config.json", "metrics.csv", "steps.csv", "summary.json", "facts.json", "checkpoint.pt")
SAMPLES_FILE = "samples.txt"
RUN_FILES = (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, CHECKPOINT_FILE)
LOCK_FILE = ".lock"


def run_is_live(run_dir: str | os.PathLike) -> bool:
    """Whether a live process holds the run's lock. Takes a shared lock for an instant and
    releases it (the owner's exclusive lock is retried briefly for that reason); never writes."""
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk, a signal: the old file stays whole, no temp file stays
        tmp.unlink(missing_ok=True)
        raise


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
    """Every run directory below root (one holding a config, a table, a summary or a checkpoint),
    sorted."""
    found = {p.parent for name in RUN_FILES for p in Path(root).rglob(name)}
    return sorted(found)


def checkpoint_rows(run_dir: str | os.PathLike, steps: bool = False) -> list[dict] | None:
    """The epoch (or step) rows a run's checkpoint holds, or None when it has none readable."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.exists():
        return None
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a torn or foreign file: the caller says why it is skipped
        return None
    return checkpoint.get("step_rows" if steps else "rows")


def _run_table(run_dir: Path, steps: bool):
    """The run's table as a DataFrame, from the CSV or else from its checkpoint; or the reason
    it has none."""
    import pandas as pd

    table = run_dir / (STEPS_FILE if steps else METRICS_FILE)
    columns = STEP_COLUMNS if steps else EPOCH_COLUMNS
    if table.exists():
        try:
            frame = pd.read_csv(table)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
            return None, f"{table.name} is unreadable ({err})"
        lacking = [c for c in columns if c not in frame.columns]
        if lacking:
            return None, f"{table.name} is unreadable (it lacks the columns {', '.join(lacking)})"
        return frame, None
    rows = checkpoint_rows(run_dir, steps)
    if rows:
        return pd.DataFrame(rows)[columns], None
    return None, f"no {table.name} and no {CHECKPOINT_FILE} holding its rows"


def _read_object(path: Path) -> tuple[dict | None, str | None]:
    """(the JSON object, None); (None, None) when the file is absent; (None, why) when it cannot
    be read (empty, torn, not an object)."""
    if not path.exists():
        return None, None
    try:
        content = read_json(path)
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None, f"{path.name} is unreadable ({type(err).__name__}: {err})"
    if not isinstance(content, dict):
        return None, f"{path.name} is unreadable (it holds a JSON {type(content).__name__}, not an object)"
    return content, None


def _run_meta(run_dir: Path) -> tuple[dict | None, str | None]:
    """The run's flattened config, status, code and facts; or why it cannot be read."""
    (config, bad_config), (summary, bad_summary), (facts, bad_facts) = (
        _read_object(run_dir / name) for name in (CONFIG_FILE, SUMMARY_FILE, FACTS_FILE))
    if bad_config or (config is None and bad_summary):
        return None, bad_config or bad_summary
    if config is None:
        reason = f"no {CONFIG_FILE}"
        if (summary or {}).get("status"):
            reason += f" (status {summary['status']}: {summary.get('error', '')})".replace(": )", ")")
        return None, reason
    if bad_summary or bad_facts:
        return None, bad_summary or bad_facts
    summary = summary or {}
    meta = flatten(config)
    meta["status"] = summary.get("status")
    if meta["status"] == "running" and not run_is_live(run_dir):  # its process was killed
        meta["status"] = "interrupted"
    # the code that trained it (experiments/provenance.py): the commit of its last session, whether
    # that tree had uncommitted changes, and whether sessions of different code trained it
    for key in ("commit", "dirty", "mixed_code"):
        meta[key] = summary.get(key)
    meta.update(flatten(facts or {}, "facts."))
    meta["run_dir"] = str(run_dir)
    return meta, None


def load_runs(root: str | os.PathLike, steps: bool = False):
    """Read every run below `root` into one pandas DataFrame: one row per run × epoch (or per
    run × step with steps=True), with the run's flattened config keys, its summary status (a
    "running" run whose process is gone reads "interrupted"), `commit`, `dirty` and `mixed_code`
    (the code that trained it), its facts (as `facts.<key>`) and `run_dir` as columns. A run whose
    metrics.csv is gone is read from its checkpoint. Runs that cannot be read (a damaged
    config.json, summary.json, facts.json or table among them) are left out and listed, each with
    the reason, in `df.attrs["skipped"]` ({run_dir: reason}); the rest are read."""
    import pandas as pd

    frames, skipped = [], {}
    for run_dir in find_runs(root):
        meta, reason = _run_meta(run_dir)
        frame = None
        if meta is not None:
            frame, reason = _run_table(run_dir, steps)
        if frame is None:
            skipped[str(run_dir)] = reason
            continue
        for key, value in meta.items():
            if key not in frame.columns:
                frame[key] = value
        frames.append(frame)
    columns = (STEP_COLUMNS if steps else EPOCH_COLUMNS) + ["run_dir", "status", "commit", "dirty", "mixed_code"]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    df.attrs["skipped"] = skipped
    return df
