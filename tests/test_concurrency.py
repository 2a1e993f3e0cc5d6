"""Two reproductions on one runs root share the work and agree: a run the other process is
training is waited for and counted complete once it is, each process writes its own logs, and
both exit 0 when every run ends complete. Trained for real on a tiny budget (showcase-a at mini
scale, seed 0, 2 epochs: three runs of a few seconds)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from agd.results import read_json, run_is_live
from experiments import paths
from experiments.analysis import planner, reproduce

REPO = paths.REPO_ROOT
BUDGET = ["seed=0", "epochs=2"]


def env(root):
    return dict(os.environ, AGD_RUNS_DIR=str(root), WANDB_MODE="offline", OMP_NUM_THREADS="1",
                AGD_FIG_DPI="40", PYTHONUNBUFFERED="1")


def reproduction(root, log):
    return subprocess.Popen([sys.executable, str(REPO / "scripts" / "reproduce.py"), "figure=showcase_a", "scale=mini",
                             *BUDGET, f"runs={root}"], cwd=root.parent, env=env(root), stdout=log,
                            stderr=subprocess.STDOUT, text=True)


def planned(root):
    jobs = planner.plan([("showcase_a", reproduce.launch_overrides("mini", BUDGET))], "mini", root)
    return [job.run_dir for job in jobs["showcase_a"]]


def wait_until(condition, timeout=300):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def trained_by(*logs) -> list[str]:
    """The run directories each `done:` line names, over every log given."""
    return [line.split()[1] for text in logs for line in text.splitlines() if line.startswith("done: ")]


def test_a_run_held_by_another_process_is_waited_for_and_counts_complete(tmp_path):
    """The first run is being trained by another process (stopped with SIGSTOP while it holds
    the run's lock): the reproduction trains the other two, waits, and exits 0 once it ends."""
    root = tmp_path / "runs"
    dirs = planned(root)
    first = dirs[0]
    other = subprocess.Popen([sys.executable, str(REPO / "experiments" / "train.py"), "experiment=showcase_a",
                              "scale=mini", "optimizer=agd", *BUDGET, "logger=none", "progress=false"],
                             cwd=tmp_path, env=env(root), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_until(lambda: run_is_live(first))
    os.kill(other.pid, signal.SIGSTOP)  # holds the lock, trains nothing, until SIGCONT
    with open(tmp_path / "reproduce.out", "w") as log:
        proc = reproduction(root, log)
        wait_until(lambda: "waiting for" in (tmp_path / "reproduce.out").read_text() or proc.poll() is not None)
        assert proc.poll() is None, (tmp_path / "reproduce.out").read_text()
        os.kill(other.pid, signal.SIGCONT)
        assert other.wait(timeout=300) == 0
        assert proc.wait(timeout=300) == 0, (tmp_path / "reproduce.out").read_text()
    assert all(read_json(d / "summary.json")["status"] == "complete" for d in dirs)
    logs = [p.read_text() for p in (root / ".reproduce-logs").iterdir()]
    assert sorted(trained_by(*logs)) == sorted(map(str, dirs[1:]))  # the first run was the other's


def test_two_reproductions_on_one_root_train_each_run_once_and_both_exit_0(tmp_path):
    root = tmp_path / "runs"
    dirs = planned(root)
    with open(tmp_path / "a.out", "w") as log_a, open(tmp_path / "b.out", "w") as log_b:
        a = reproduction(root, log_a)
        wait_until(lambda: run_is_live(dirs[0]) or a.poll() is not None)
        b = reproduction(root, log_b)
        codes = a.wait(timeout=600), b.wait(timeout=600)
    assert codes == (0, 0), (tmp_path / "a.out").read_text() + (tmp_path / "b.out").read_text()
    assert all(read_json(d / "summary.json")["status"] == "complete" for d in dirs)
    logs = sorted((root / ".reproduce-logs").iterdir())
    assert len(logs) == 2  # one per process, never one file written by both
    assert sorted(trained_by(*(p.read_text() for p in logs))) == sorted(map(str, dirs))  # each once
    assert {p.name.rsplit("-", 1)[1].removesuffix(".log") for p in logs} == {str(a.pid), str(b.pid)}
