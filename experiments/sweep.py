"""A `-m` sweep's verdict: its exit status says whether every job succeeded.

Hydra runs the jobs of a sweep in this process (the basic launcher) or in other processes, on
other machines (submitit: local subprocesses or SLURM array tasks), and keeps going past a job
that failed; by itself it exits 0 whatever the jobs did. `SweepOutcome` (a Hydra callback,
conf/config.yaml) gives the sweep a folder of outcomes under its sweep directory, named in an
environment variable that every job inherits; each job writes its status there (`record`), and
when the sweep ends the callback reads them all and exits:
    0  every job completed (or was already complete)
    1  some job failed (a bad config, a busy run directory, a full disk, ...)
    75 no job failed but some were stopped before their end (scancel, a time limit reached too
       often): rerun the same command to resume them, as for a single run stopped by a signal
    3  no job failed or stopped but some diverged (a non-finite loss: in a learning-rate sweep,
       a result)
A SLURM job that never reports (cancelled, killed) gets its outcome from SLURM's accounting
instead (experiments/slurm.py).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from hydra.experimental.callback import Callback

from agd.results import read_json, write_json
from experiments.signals import EXIT_INTERRUPTED

LEDGER_ENV = "AGD_SWEEP_OUTCOMES"
EXIT_FAILED, EXIT_DIVERGED = 1, 3


def record(summary: dict, job_num: int) -> None:
    """Called by each job of a sweep: leave its status where the sweep will read it."""
    ledger = os.environ.get(LEDGER_ENV)
    if ledger and Path(ledger).is_dir():
        write_json(Path(ledger) / f"{job_num}.json",
                   {k: summary.get(k) for k in ("status", "error", "run_dir")})


def recorded_outcomes() -> dict[int, dict]:
    """The outcomes the jobs of the running sweep have left so far, by job number."""
    ledger = Path(os.environ.get(LEDGER_ENV, ""))
    if not ledger.name or not ledger.is_dir():
        return {}
    return {int(p.stem): read_json(p) for p in ledger.glob("*.json") if p.stem.isdigit()}


def verdict(outcomes: list[dict]) -> tuple[int, str]:
    """(exit status, one line) for a sweep's job outcomes: a failure outranks a stop."""
    bad = [o for o in outcomes if o.get("status") not in ("complete", "diverged")]
    diverged = [o for o in outcomes if o.get("status") == "diverged"]
    if bad:
        failed = [o for o in bad if o.get("status") != "interrupted"]
        first = (failed or bad)[0]
        return EXIT_FAILED if failed else EXIT_INTERRUPTED, (
            f"sweep: {len(bad)} of {len(outcomes)} jobs did not complete; first: "
            f"{first.get('run_dir')}: {first.get('status')}: {first.get('error')}")
    if diverged:
        return EXIT_DIVERGED, (f"sweep: {len(diverged)} of {len(outcomes)} jobs diverged (a non-finite loss: "
                               "each run's summary.json says where) and none failed")
    return 0, f"sweep: all {len(outcomes)} jobs completed"


def discard_outcomes() -> None:
    ledger = os.environ.pop(LEDGER_ENV, "")
    if ledger:
        shutil.rmtree(ledger, ignore_errors=True)


class SweepOutcome(Callback):
    """Collects every job's status and turns them into the sweep's exit status."""

    def on_multirun_start(self, config, **kwargs) -> None:
        ledger = Path(str(config.hydra.sweep.dir)) / f".sweep-outcomes-{os.getpid()}-{time.time_ns()}"
        ledger.mkdir(parents=True, exist_ok=True)
        os.environ[LEDGER_ENV] = str(ledger)

    def on_multirun_end(self, config, **kwargs) -> None:
        ledger = Path(os.environ.pop(LEDGER_ENV, ""))
        if not ledger.name:
            return
        outcomes = [read_json(p) for p in sorted(ledger.glob("*.json"))]
        shutil.rmtree(ledger, ignore_errors=True)
        code, line = verdict(outcomes)
        print(line, file=sys.stderr if code else sys.stdout, flush=True)
        if code:
            sys.exit(code)
