"""One run directory on disk: who owns it, what it holds, and every change made to it.

The rules it keeps:
- a run directory changes only when a run in it makes progress: reading it (is it complete?
  does it hold the same config?) never writes, and a command refused before training leaves it
  as it was, so a finished run is never demoted by a later mistyped or refused command;
- one process owns a run directory at a time: `owned()` holds an exclusive flock on `.lock`,
  which the operating system releases when the process dies, however it dies;
- whatever the checkpoint can rebuild (metrics.csv, steps.csv) is rebuilt from it;
- every exit of a run that started leaves a final status that says why (`finish`).
The file formats are agd/results.py's.
"""

from __future__ import annotations

import fcntl
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
    read_json,
    write_json,
    write_rows,
)

CORRUPT_SUFFIX = ".corrupt"


class RunBusy(RuntimeError):
    """Another live process owns the run directory."""


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
        self.started = False  # this process has begun a run here (config and status written)
        self.state: dict = {}  # fields every status write carries (W&B id, last epoch logged)

    # ------------------------------------------------------------------ reading (never writes)
    def read(self, name: str) -> dict | None:
        path = self.path / name
        return read_json(path) if path.exists() else None

    def summary(self) -> dict:
        return self.read(SUMMARY_FILE) or {}

    def tables_missing(self, with_steps: bool) -> bool:
        return not (self.path / METRICS_FILE).exists() or (with_steps and not (self.path / STEPS_FILE).exists())

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
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file gets the same treatment
            aside = path.with_name(CHECKPOINT_FILE + CORRUPT_SUFFIX)
            if self.writer:
                os.replace(path, aside)
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

    def repair_tables(self) -> list[str]:
        """Rebuild a finished run's missing tables from its checkpoint; returns what was rebuilt."""
        missing = [name for name in (METRICS_FILE, STEPS_FILE) if not (self.path / name).exists()]
        if not missing or not self.writer:
            return []
        checkpoint = self.load_checkpoint()
        if checkpoint is None:
            return []
        if STEPS_FILE in missing and not checkpoint.get("step_rows"):
            missing.remove(STEPS_FILE)
        if METRICS_FILE in missing:
            write_rows(self.path / METRICS_FILE, checkpoint["rows"], EPOCH_COLUMNS)
        if STEPS_FILE in missing:
            write_rows(self.path / STEPS_FILE, checkpoint["step_rows"], STEP_COLUMNS)
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
