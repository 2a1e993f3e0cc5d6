"""Faults a scheduler brings: a run killed outright, SIGTERM and the preemption signal under
submitit (hydra/launcher=local runs the same submitit job code as SLURM, as subprocesses of this
machine), and the exit status a job leaves for the scheduler's records.

Each test watches what a user would: the run's summary.json, the job's log and exit status.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

from agd.results import EPOCH_COLUMNS, load_runs, write_json, write_rows

QUIET = ["logger=none", "progress=false", "device=cpu"]


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _sweep(args, runs: Path, env_extra=None) -> subprocess.Popen:
    env = dict(os.environ, AGD_RUNS_DIR=str(runs), WANDB_MODE="offline", PYTHONUNBUFFERED="1",
               OMP_NUM_THREADS="1", **(env_extra or {}))
    return subprocess.Popen([sys.executable, str(REPO / "experiments" / "train.py"), "-m", *args,
                             "hydra/launcher=local"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _wait(predicate, proc, what: str, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended before {what}: {proc.stdout.read()[-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"no {what} within {timeout} s")


def _owner_pid(run_dir: Path) -> int | None:
    try:
        text = (run_dir / ".lock").read_text().strip()
    except OSError:
        return None
    return int(text) if text else None


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)


def _job_logs(runs: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(runs.rglob(".submitit/**/*_log.out")))


# ------------------------------------------------------------ killed outright: reads as interrupted

HOLD = "import sys, time\nfrom experiments.run_store import RunStore\nwith RunStore(sys.argv[1]).owned():\n" \
       "    print('held', flush=True)\n    time.sleep(600)\n"


def test_a_running_status_whose_lock_is_free_reads_as_interrupted(tmp_path):
    run_dir = tmp_path / "runs" / "g" / "killed"
    write_json(run_dir / "config.json", {"seed": 0})
    write_rows(run_dir / "metrics.csv", [{c: 1 for c in EPOCH_COLUMNS}], EPOCH_COLUMNS)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], cwd=REPO, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        write_json(run_dir / "summary.json", {"status": "running"})
        assert list(load_runs(tmp_path / "runs")["status"]) == ["running"]  # its owner is alive
    finally:
        holder.send_signal(signal.SIGKILL)  # killed the way SLURM kills: no handler runs
        holder.wait(timeout=30)
    assert list(load_runs(tmp_path / "runs")["status"]) == ["interrupted"]
    assert _summary(run_dir)["status"] == "running"  # reading changes nothing


# ------------------------------------------------------------ SIGTERM under submitit

LONG = ["epochs=100000", "model.width=64", *QUIET]


def test_sigterm_under_submitit_ends_the_run_interrupted_with_one_sentence(tmp_path):
    runs = tmp_path / "runs"
    sweep = _sweep(LONG, runs)
    try:
        checkpoint = _wait(lambda: next(runs.rglob("checkpoint.pt"), None), sweep, "checkpoint")
        run_dir = checkpoint.parent
        pid = _owner_pid(run_dir)
        os.kill(pid, signal.SIGTERM)  # what `scancel` and `scontrol requeue` send first
        _wait(lambda: _summary(run_dir)["status"] != "running", sweep, "final status", timeout=120)
        deadline = time.monotonic() + 60
        while _owner_pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _owner_pid_alive(pid), "the job kept training after SIGTERM"
    finally:
        _stop(sweep)
    state = _summary(run_dir)
    assert state["status"] == "interrupted", state
    assert state["error"].startswith(f"{run_dir} stopped by SIGTERM after epoch ")
    assert state["error"].endswith("; rerun the same command to resume from its last checkpoint.")
    log = _job_logs(runs)
    assert f"interrupted: {state['error']}" in log
    assert "Traceback" not in log, log[-3000:]


def _owner_pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by submitit's controller) has finished too
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


# ------------------------------------------------------------ the preemption signal requeues

def test_the_preemption_signal_checkpoints_requeues_and_the_job_resumes(tmp_path):
    runs = tmp_path / "runs"
    epochs = 6  # width 1024: a few seconds an epoch, so the signal lands mid-run
    sweep = _sweep([f"epochs={epochs}", "model.width=1024", *QUIET], runs)
    try:
        checkpoint = _wait(lambda: next(runs.rglob("checkpoint.pt"), None), sweep, "checkpoint")
        run_dir = checkpoint.parent
        first = _owner_pid(run_dir)
        os.kill(first, signal.SIGUSR2)  # submitit's signal before a time limit or a preemption
        out, _ = sweep.communicate(timeout=300)
    finally:
        _stop(sweep)
    assert sweep.returncode == 0, out[-3000:]
    assert _summary(run_dir)["status"] == "complete"
    assert list(load_runs(runs)["epoch"]) == list(range(1, epochs + 1))  # none twice, none missing
    log = _job_logs(runs)
    stopped = f"interrupted: {run_dir} stopped by SIGUSR2 after epoch "
    assert stopped in log and "; submitit requeued the job, which resumes from its last checkpoint." in log
    assert "Traceback" not in log, log[-3000:]
    assert _owner_pid(run_dir) != first  # a new process finished it


# ------------------------------------------------------------ exit status for the scheduler

RECORD_EXITS = """
import json, os, sys
_real_exit = os._exit
def _recording_exit(code):
    with open(os.path.join({folder!r}, f"{{os.getpid()}}.json"), "w") as f:
        json.dump({{"code": code, "argv": sys.argv}}, f)
    _real_exit(code)
os._exit = _recording_exit
"""


def test_a_failed_job_under_submitit_exits_non_zero(tmp_path):
    """SLURM records a job's state from its exit status: a job whose run failed returns its status
    to the sweep and then exits with the run's exit status, so the record reads FAILED."""
    site, exits = tmp_path / "site", tmp_path / "exits"
    site.mkdir()
    exits.mkdir()
    (site / "sitecustomize.py").write_text(RECORD_EXITS.format(folder=str(exits)))
    runs = tmp_path / "runs"
    sweep = _sweep(["model.depth=0,2", "epochs=1", *QUIET], runs,
                   env_extra={"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])})
    try:
        out, _ = sweep.communicate(timeout=300)
    finally:
        _stop(sweep)
    assert sweep.returncode == 1, out[-3000:]  # the sweep's verdict: a job failed
    assert "sweep: 1 of 2 jobs did not complete" in out
    recorded = [json.loads(p.read_text()) for p in exits.glob("*.json")]
    assert [r["code"] for r in recorded] == [2], recorded  # the failed job, with a usage error's 2
    assert "submitit" in " ".join(recorded[0]["argv"])


def test_exit_status_at_end_runs_the_other_exit_handlers_first(tmp_path):
    script = ("import atexit\nfrom experiments.signals import exit_status_at_end\n"
              f"atexit.register(lambda: open({str(tmp_path / 'ran')!r}, 'w').write('yes'))\n"
              "exit_status_at_end(3)\nprint('returned normally')\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3 and proc.stdout == "returned normally\n"
    assert (tmp_path / "ran").read_text() == "yes"


# ------------------------------------------------------------ submitit's handler, chained

def test_the_preemption_signal_waits_for_the_checkpoint_then_goes_to_submitit(monkeypatch):
    from experiments import signals

    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    calls = []

    def submitit_requeues(signum, frame):  # as submitit's checkpoint_and_try_requeue: requeue, exit
        calls.append(signum)
        sys.exit(-1)

    previous = signal.signal(signal.SIGUSR2, submitit_requeues)
    try:
        guard = signals.StopOnSignal()
        with guard:
            with pytest.raises(signals.Interrupted) as stop:
                with guard.critical():
                    os.kill(os.getpid(), signal.SIGUSR2)
                    time.sleep(0.05)
                    assert calls == []  # held while the checkpoint is written
            assert calls == [signal.SIGUSR2] and stop.value.requeued and stop.value.code == -1
        assert signal.getsignal(signal.SIGUSR2) is submitit_requeues  # submitit's handler is back
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_a_job_submitit_will_not_requeue_returns_interrupted_to_the_sweep(compose, tmp_path, monkeypatch):
    from experiments import pipeline

    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")

    def submitit_gives_up(signum, frame):
        raise RuntimeError("Job not requeued because: timed-out too many times.")

    def train_until_signalled(*args, on_epoch=None, **kwargs):
        os.kill(os.getpid(), signal.SIGUSR2)
        time.sleep(5)

    previous = signal.signal(signal.SIGUSR2, submitit_gives_up)
    monkeypatch.setattr(pipeline, "train", train_until_signalled)
    run_dir = tmp_path / "run"
    try:
        result = pipeline.run(compose(["epochs=2", *QUIET, "model.width=16"]), run_dir, multirun=True)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert result["status"] == "interrupted" and result["exit_code"] == 75
    assert result["error"] == (f"{run_dir} stopped by SIGUSR2 after epoch 0 and not requeued (Job not requeued "
                               "because: timed-out too many times); rerun the same command to resume from its "
                               "last checkpoint.")
    assert _summary(run_dir) == {**_summary(run_dir), "status": "interrupted", "error": result["error"]}
