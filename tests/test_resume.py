"""Runs survive being killed: relaunching the same command finishes with exactly the metrics of an
uninterrupted run, no epoch duplicated or missing, and W&B continues the same run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO, run_train

from experiments import signals
from experiments.pipeline import run

EPOCHS = 4
ARGS = [f"epochs={EPOCHS}", "logger=none", "progress=false", "model.width=64", "device=cpu"]
RUN = f"epochs={EPOCHS},model.width=64"


def _metrics_without_time(run_dir):
    """metrics.csv as text rows minus the wall-clock column (the one thing a resume changes)."""
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name != "time_s"]
    return [[cells[i] for i in keep] for cells in (line.split(",") for line in lines)]


def _start(runs_dir):
    env = dict(os.environ, AGD_RUNS_DIR=str(runs_dir), WANDB_MODE="offline", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, str(REPO / "experiments" / "train.py"), *ARGS], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_epoch(proc, checkpoint, epoch, timeout=180):
    """Block until checkpoint.pt holds at least `epoch` finished epochs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before epoch {epoch}: {proc.stdout.read()[-2000:]}")
        if checkpoint.exists():
            try:
                if torch.load(checkpoint, weights_only=True)["epoch"] >= epoch:
                    return
            except (RuntimeError, EOFError):  # never torn (atomic rename), but be safe
                pass
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no checkpoint of epoch {epoch} within {timeout} s")


def _finish_and_compare(runs, reference):
    """Relaunch the same command; the finished table equals the uninterrupted one."""
    final = run_train(ARGS, runs)
    assert final.returncode == 0, final.stderr[-2000:]
    run_dir = runs / "train" / RUN
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "complete"
    got = _metrics_without_time(run_dir)
    assert [row[0] for row in got[1:]] == [str(e) for e in range(1, EPOCHS + 1)]  # none missing, none twice
    expected = _metrics_without_time(reference / "train" / RUN)
    assert got == expected  # bit for bit on the CPU, every column but time_s
    assert not list(run_dir.glob(".*.tmp"))


def test_sigkill_mid_epoch_then_relaunch_equals_uninterrupted_run(tmp_path):
    reference, runs = tmp_path / "ref", tmp_path / "runs"
    checkpoint = runs / "train" / RUN / "checkpoint.pt"
    uninterrupted = _start(reference)  # side by side: both see the same code and seed
    proc = _start(runs)
    try:
        _wait_for_epoch(proc, checkpoint, 1)
        time.sleep(0.05)  # into epoch 2
        proc.send_signal(signal.SIGKILL)  # no handler, no cleanup, no final write
        proc.wait(timeout=30)
        assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stdout.read()[-2000:]
    finally:
        for p in (proc, uninterrupted):
            p.kill()
            p.communicate()
    killed_at = torch.load(checkpoint, weights_only=True)["epoch"]
    status = json.loads((checkpoint.parent / "summary.json").read_text())["status"]
    assert killed_at < EPOCHS and status == "running", "the kill landed after the last epoch"
    _finish_and_compare(runs, reference)


@pytest.mark.slow
def test_sigterm_stops_at_once_with_exit_75_and_the_run_resumes(tmp_path):
    """What SLURM sends before killing a job (torchrun and `kill` too)."""
    reference, runs = tmp_path / "ref", tmp_path / "runs"
    checkpoint = runs / "train" / RUN / "checkpoint.pt"
    uninterrupted = _start(reference)
    proc = _start(runs)
    try:
        _wait_for_epoch(proc, checkpoint, 2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == signals.EXIT_INTERRUPTED, out[-2000:]
        assert uninterrupted.wait(timeout=300) == 0
    finally:
        for p in (proc, uninterrupted):
            p.kill()
            p.communicate()
    assert 2 <= torch.load(checkpoint, weights_only=True)["epoch"] < EPOCHS
    _finish_and_compare(runs, reference)


def test_signal_inside_a_critical_block_waits_for_its_end():
    guard = signals.StopOnSignal(signals=(signal.SIGUSR1,))
    written = []
    with guard:
        with pytest.raises(signals.Interrupted) as stop:
            with guard.critical():
                os.kill(os.getpid(), signal.SIGUSR1)
                time.sleep(0.01)  # the handler has run by now, and deferred
                written.append("checkpoint")
                written.append("metrics")
        assert stop.value.code == signals.EXIT_INTERRUPTED
        with pytest.raises(signals.Interrupted):  # outside a block it stops at once
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(1)
    assert written == ["checkpoint", "metrics"]
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # handlers restored


class RecordingLogger:
    """Stands in for W&B: records the run id it is started with and every row it receives."""

    events: list = []

    def start(self, config, run_dir, group=None, tags=(), run_id=None):
        RecordingLogger.events.append(("start", run_id))
        return run_id or "wandb-run-1"

    def log(self, row, step):
        RecordingLogger.events.append(("log", row["epoch"]))

    def log_steps(self, rows):
        pass

    def finish(self, exit_code=0):
        RecordingLogger.events.append(("finish", exit_code))


def test_wandb_continues_the_same_run_and_gets_every_row_once(compose, tmp_path):
    cfg = compose(["logger=none", f"logger._target_={__name__}.RecordingLogger", "epochs=2", "data=digits",
                   "progress=false", "model.width=32", "device=cpu"])
    run_dir = tmp_path / "run"
    events = RecordingLogger.events
    events.clear()
    assert run(cfg, run_dir)["status"] == "complete"
    assert events == [("start", None), ("log", 1), ("log", 2), ("finish", 0)]
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert checkpoint["wandb_id"] == "wandb-run-1"
    assert {"torch_rng", "python_rng", "numpy_rng", "cuda_rng", "optimizer", "rows"} <= set(checkpoint)

    # killed after epoch 2's checkpoint but before W&B received the row
    summary = {"status": "running", "wandb_id": "wandb-run-1", "logged_epoch": 1}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    events.clear()
    assert run(cfg, run_dir)["status"] == "complete"
    assert events == [("start", "wandb-run-1"), ("log", 2), ("finish", 0)]
    assert (run_dir / "metrics.csv").read_text().count("\n") == 3  # header + 2 epochs

    # killed before the first checkpoint: the id still comes back from summary.json
    for name in ("checkpoint.pt", "metrics.csv"):
        (run_dir / name).unlink()
    summary["logged_epoch"] = 0
    (run_dir / "summary.json").write_text(json.dumps(summary))
    events.clear()
    assert run(cfg, run_dir)["status"] == "complete"
    assert events == [("start", "wandb-run-1"), ("log", 1), ("log", 2), ("finish", 0)]
