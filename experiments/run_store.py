"""One run directory on disk: who owns it, what it holds, and every change made to it.

The rules it keeps:
- a run directory changes only when a run in it makes progress: reading it (is it complete?
  does it hold the same config?) never writes, and a command refused before training leaves it
  as it was, so a finished run is never demoted by a later mistyped or refused command;
- one process owns a run directory at a time: `owned()` holds an exclusive flock on `.lock`,
  which the operating system releases when the process dies, however it dies;
- whatever the checkpoint can rebuild (metrics.csv, steps.csv) is rebuilt from it;
- a checkpoint carries its run's identity (the hash of the config that names the run, and the
  shapes of the model's tensors); one of another run, or too old to say, is set aside
  (checkpoint.pt.foreign-<time>) and the run trains afresh;
- a file that cannot be read (an empty or torn summary.json or config.json) reads as absent and
  is set aside (<name>.corrupt) once the directory is owned: nothing ever needs deleting by hand;
- every exit of a run that started leaves a final status that says why (`finish`).
The file formats are agd/results.py's.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from agd.results import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    EPOCH_COLUMNS,
    FACTS_FILE,
    LOCK_FILE,
    METRICS_FILE,
    RUN_FILES,
    STEP_COLUMNS,
    STEPS_FILE,
    SUMMARY_FILE,
    atomic_write_bytes,
    flatten,
    read_json,
    write_json,
    write_rows,
)

CORRUPT_SUFFIX = ".corrupt"
FOREIGN_SUFFIX = ".foreign-%Y%m%d-%H%M%S"  # a time.strftime pattern


def config_sha256(semantic: dict) -> str:
    """The hash of the config that names a run (experiments/build.py semantic_config)."""
    return hashlib.sha256(json.dumps(semantic, sort_keys=True, default=str).encode()).hexdigest()


def checkpoint_identity(semantic: dict, model: torch.nn.Module) -> dict:
    """What a checkpoint records of the run it belongs to."""
    return {"config_sha256": config_sha256(semantic), "config": semantic,
            "shapes": {name: list(t.shape) for name, t in model.state_dict().items()}}


def _differences(theirs: dict, ours: dict, limit: int = 3) -> str:
    a, b = flatten(theirs), flatten(ours)
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    shown = ", ".join(f"{k}={a.get(k)!r}" for k in keys[:limit]) + (", ..." if len(keys) > limit else "")
    mine = ", ".join(f"{k}={b.get(k)!r}" for k in keys[:limit])
    return f"it holds a run with {shown}, this run has {mine}"


def foreign_reason(checkpoint: dict, identity: dict) -> str | None:
    """Why the checkpoint is not this run's (checkpoint_identity), or None when it is."""
    theirs = checkpoint.get("identity")
    if not isinstance(theirs, dict):
        return "was written before checkpoints recorded which run they belong to"
    if theirs.get("config_sha256") != identity["config_sha256"]:
        return f"belongs to another run ({_differences(theirs.get('config') or {}, identity['config'])})"
    if theirs.get("shapes") != identity["shapes"]:
        names = [n for n in identity["shapes"] if (theirs.get("shapes") or {}).get(n) != identity["shapes"][n]]
        first = names[0] if names else next(iter(theirs.get("shapes") or {}), "?")
        return (f"holds tensors of other shapes than this run's model ({first}: "
                f"{(theirs.get('shapes') or {}).get(first)} there, {identity['shapes'].get(first)} here)")
    return None


class RunBusy(RuntimeError):
    """Another live process owns the run directory."""


def _table_is_whole(path: Path) -> bool:
    """A results table as write_rows leaves it: a known header, every row as long (torn, empty
    or overwritten files are not)."""
    try:
        with open(path, newline="") as f:
            lines = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return bool(lines) and lines[0] in (EPOCH_COLUMNS, STEP_COLUMNS) and all(len(r) == len(lines[0]) for r in lines)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _lock_exclusive(fd: int, patience_s: float = 0.5) -> bool:
    """The exclusive lock, retried for `patience_s`: a reader (agd.results.run_is_live) holds a
    shared one for an instant, which must not read as a live owner."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


class RunStore:
    """The files of one run. `writer` is False on data-parallel ranks other than 0: they read
    the directory but never change it."""

    def __init__(self, path: str | os.PathLike, writer: bool = True):
        self.path = Path(path)
        self.writer = writer
        self.started = False  # this process has begun changing a run here: its exit writes a status
        self.state: dict = {}  # fields every status write carries (W&B id, last epoch logged)
        self.damaged: dict[str, str] = {}  # file name -> why it could not be read

    # ------------------------------------------------------------------ reading (never writes)
    def read(self, name: str) -> dict | None:
        """The JSON file's content; None when it is absent or cannot be read (then `damaged`
        says why, and `set_aside_damaged` moves it out of the way once the run is owned)."""
        path = self.path / name
        if not path.exists():
            return None
        try:
            content = read_json(path)
        except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            self.damaged[name] = f"{type(err).__name__}: {err}"
            return None
        if not isinstance(content, dict):
            self.damaged[name] = f"it holds a JSON {type(content).__name__}, not an object"
            return None
        return content

    def summary(self) -> dict:
        return self.read(SUMMARY_FILE) or {}

    def needs_repair(self, with_steps: bool) -> list[str]:
        """The files of a finished run to rebuild or set aside: tables missing or not whole
        (rebuilt from the checkpoint), and an unreadable facts.json (set aside). Only reads."""
        tables = [METRICS_FILE, *([STEPS_FILE] if with_steps or (self.path / STEPS_FILE).exists() else [])]
        names = [name for name in tables if not _table_is_whole(self.path / name)]
        if (self.path / FACTS_FILE).exists() and self.read(FACTS_FILE) is None:
            names.append(FACTS_FILE)
        return names

    def holds_a_run(self) -> bool:
        return any((self.path / name).exists() for name in RUN_FILES)

    # ------------------------------------------------------------------ ownership
    @contextmanager
    def owned(self):
        """Hold the run directory for this process (rank 0 only), or raise RunBusy at once."""
        if not self.writer:
            yield self
            return
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _lock_exclusive(fd):
                owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise RunBusy(f"{self.path} is being trained by another process (pid {owner}); wait "
                              "for it to finish or stop it, then rerun this command.") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield self
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    # ------------------------------------------------------------------ changes (owner only)
    def set_aside(self, name: str, suffix: str) -> Path:
        """Rename a file of the run out of the way (never deleted), to a name not yet taken."""
        path = self.path / name
        aside = path.with_name(name + suffix)
        count = 1
        while aside.exists():
            count += 1
            aside = path.with_name(f"{name}{suffix}.{count}")
        if self.writer and path.exists():
            os.replace(path, aside)
        return aside

    def set_aside_damaged(self, then: str = "written anew by this run") -> None:
        """The unreadable JSON files found while reading, renamed to <name>.corrupt (owner only);
        `then` says what becomes of them."""
        for name, reason in self.damaged.items():
            if (self.path / name).exists():
                aside = self.set_aside(name, CORRUPT_SUFFIX)
                if self.writer:
                    _warn(f"{self.path / name} is unreadable ({reason}); set aside as {aside.name}, {then}.")
        self.damaged.clear()

    def set_aside_checkpoint(self, reason: str) -> None:
        aside = self.set_aside(CHECKPOINT_FILE, time.strftime(FOREIGN_SUFFIX))
        if self.writer:
            _warn(f"{self.path / CHECKPOINT_FILE} {reason}; set aside as {aside.name}, training this run "
                  "afresh from epoch 0.")

    def clean_temp_files(self) -> None:
        """Temp files of a write that was killed (their process no longer holds the lock)."""
        if self.writer:
            for leftover in self.path.glob(".*.tmp"):
                leftover.unlink(missing_ok=True)

    def load_checkpoint(self) -> dict | None:
        """The checkpoint, or None when there is none. An unreadable one (torn by a full disk or
        a copy) is set aside as checkpoint.pt.corrupt and the run starts again from epoch 0."""
        path = self.path / CHECKPOINT_FILE
        if not path.exists():
            return None
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(checkpoint, dict):
                raise TypeError(f"it holds a {type(checkpoint).__name__}, not a checkpoint")
            return checkpoint
        except Exception as err:  # noqa: BLE001 - any unreadable file gets the same treatment
            aside = self.set_aside(CHECKPOINT_FILE, CORRUPT_SUFFIX)
            _warn(f"{path} is unreadable ({type(err).__name__}); set aside as {aside.name}, "
                  "training this run again from epoch 0.")
            return None

    def write_tables(self, rows: list[dict], step_rows: list[dict]) -> None:
        """metrics.csv (and steps.csv) exactly as the rows say: a resumed or repaired run's
        tables follow its checkpoint, whatever was written after it."""
        if not self.writer:
            return
        write_rows(self.path / METRICS_FILE, rows, EPOCH_COLUMNS)
        if step_rows:
            write_rows(self.path / STEPS_FILE, step_rows, STEP_COLUMNS)
        else:  # written for an epoch the checkpoint never recorded
            (self.path / STEPS_FILE).unlink(missing_ok=True)

    def repair_tables(self, config_sha256: str, with_steps: bool) -> list[str]:
        """Rebuild a finished run's missing or torn tables from its checkpoint (a torn one is set
        aside as <name>.corrupt first), when the checkpoint is this run's (`config_sha256`,
        checkpoint_identity's); returns what was rebuilt."""
        missing = [name for name in self.needs_repair(with_steps) if name != FACTS_FILE]
        if not missing or not self.writer:
            return []
        checkpoint = self.load_checkpoint()
        if checkpoint is None:
            return []
        if (checkpoint.get("identity") or {}).get("config_sha256") != config_sha256:
            _warn(f"{self.path / CHECKPOINT_FILE} is not this run's checkpoint (or too old to say), so "
                  f"{' and '.join(missing)} cannot be rebuilt from it; pass resume=false to train the run again.")
            return []
        if STEPS_FILE in missing and not checkpoint.get("step_rows"):
            missing.remove(STEPS_FILE)
        for name, rows, columns in ((METRICS_FILE, "rows", EPOCH_COLUMNS), (STEPS_FILE, "step_rows", STEP_COLUMNS)):
            if name in missing:
                if (self.path / name).exists():
                    aside = self.set_aside(name, CORRUPT_SUFFIX)
                    _warn(f"{self.path / name} is not a whole results table; set aside as {aside.name}, "
                          "rebuilt from the checkpoint.")
                write_rows(self.path / name, checkpoint[rows], columns)
        return missing

    def start_fresh(self) -> None:
        """Remove a previous attempt's results (resume=false, or no checkpoint to resume)."""
        if self.writer:
            for stale in (METRICS_FILE, STEPS_FILE, CHECKPOINT_FILE):
                (self.path / stale).unlink(missing_ok=True)

    def begin(self, config: dict, facts: dict) -> None:
        """The run makes progress from here on: its config and facts are on disk."""
        self.started = True
        if self.writer:
            write_json(self.path / CONFIG_FILE, config)
            write_json(self.path / FACTS_FILE, facts)

    def save_checkpoint(self, state: dict) -> None:
        if self.writer:
            buffer = io.BytesIO()
            torch.save(state, buffer)
            atomic_write_bytes(self.path / CHECKPOINT_FILE, buffer.getvalue())

    def write_status(self, status: str, **fields) -> dict:
        summary = {**self.state, "status": status, **fields}
        if self.writer:
            write_json(self.path / SUMMARY_FILE, summary)
        return summary

    def finish(self, status: str, error: str) -> None:
        """The last word of a run that started and did not complete. Never raises: on a full
        disk the status may not fit either, and the error being reported matters more."""
        if not self.started or not self.writer:
            return
        try:
            self.write_status(status, error=error)
        except OSError:
            # no room for a new file: overwrite the old summary in place (its blocks are freed by
            # the truncation, and the new one is as small)
            try:
                with open(self.path / SUMMARY_FILE, "w") as f:
                    json.dump({**self.state, "status": status, "error": error}, f, indent=2, sort_keys=True)
            except OSError as err:
                _warn(f"could not record status {status!r} in {self.path / SUMMARY_FILE}: {err.strerror}.")

    def record_refusal(self, error: str) -> None:
        """In a sweep, a job refused before training leaves `failed` in its own directory, only
        when that directory holds no run (an existing run is never touched)."""
        if not self.writer or self.holds_a_run():
            return
        try:
            with self.owned():
                if not self.holds_a_run():
                    write_json(self.path / SUMMARY_FILE, {"status": "failed", "error": error})
        except (RunBusy, OSError):
            pass

    def remove_if_empty(self) -> None:
        """Hydra creates the run directory before any check; a refused command leaves no trace."""
        try:
            self.path.rmdir()
        except OSError:
            pass
