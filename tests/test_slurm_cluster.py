"""The `slurm` tier: sweeps through `hydra/launcher=slurm_cpu` on a real SLURM cluster.

The cluster is the repo's own single node (`.ci/slurm-cluster start`, which CI runs before the
tests): slurmctld, slurmd and slurmdbd with accounting, 2 CPUs, one partition. Where no such
cluster answers, every test here skips with one sentence saying how to start it.

Every run is a small FCN on MNIST-1D (logger=none) so the tier stays a few minutes: most of a
job's time is Python and torch starting. What each test holds to:
- a sweep with a failing job exits 1 with the sweep's verdict, every run's summary says what
  happened, and SLURM's accounting records the failed job as FAILED;
- a figure is drawn from runs trained through the cluster (scripts/reproduce.py);
- USR2 (preemption), `scontrol requeue` and a real time limit each requeue the job, which
  resumes to a metrics.csv identical to an uninterrupted run's, and the stopped job trains at
  most the epoch it was in after the signal;
- a time limit reached more often than max_num_timeout, `scancel`, and a request the cluster
  cannot satisfy each end the sweep with one sentence and the matching exit status;
- a run of two ranks (two tasks on the node, gloo) gives one process's metrics.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import REPO

pytestmark = pytest.mark.slurm

SLURM_DIR = Path(os.environ.get("AGD_SLURM_DIR", "/tmp/agd-slurm"))
START = ("start one with `.ci/slurm-cluster start` (as root, with the Debian packages slurm-wlm munge "
         "slurmdbd mariadb-server)")
# small enough that Python's start dominates; long enough (100 epochs, a few seconds) that a
# signal sent after the first epoch arrives mid-run
SHORT = ["logger=none", "progress=false", "device=cpu", "model.depth=2", "model.width=64", "epochs=100"]
SHORT_NAME = "epochs=100,model.depth=2,model.width=64"
# about a minute of training: a job with a 2-minute limit is signalled 30-60 s after it starts
LONG = ["logger=none", "progress=false", "device=cpu", "model.depth=4", "model.width=256", "epochs=300"]
LONG_NAME = "epochs=300,model.depth=4,model.width=256"
# a job that cannot finish inside the 2-minute limit: 3,000 epochs train for about 4 minutes on a
# quiet core (300 took 24 s), so only the limit can end it, however idle the machine is
OVERRUN = [*LONG[:-1], "epochs=3000"]
OVERRUN_NAME = "epochs=3000,model.depth=4,model.width=256"
TIME_LIMIT = ["hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=60"]
TIME_LIMIT_TEST = "test_time_limit_requeues_and_resumes_to_the_uninterrupted_metrics"


def _cluster() -> tuple[dict | None, str]:
    """(environment pointing at the repo's cluster, "") or (None, why the tier skips)."""
    conf, pid_file = SLURM_DIR / "etc" / "slurm.conf", SLURM_DIR / "run" / "slurmctld.pid"
    try:  # a stopped cluster leaves its folder: look for a live controller before asking it
        os.kill(int(pid_file.read_text()), 0)
    except (OSError, ValueError):
        return None, f"no SLURM cluster runs at {SLURM_DIR}; {START}."
    if not conf.is_file() or shutil.which("sinfo") is None:
        return None, f"no SLURM cluster answers at {SLURM_DIR}; {START}."
    env = dict(os.environ, SLURM_CONF=str(conf))
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        out = None
    if out is None or out.returncode or not set(out.stdout.split()) & {"idle", "mix", "alloc"}:
        return None, f"the SLURM cluster at {SLURM_DIR} does not answer; {START}."
    return env, ""


CLUSTER, WHY_NOT = _cluster()
if CLUSTER is None:  # one skip for the whole tier, with the sentence that says how to start it
    pytest.skip(WHY_NOT, allow_module_level=True)


@pytest.fixture(scope="module")
def cluster():
    return CLUSTER


def _slurm(cluster: dict, *args: str) -> str:
    out = subprocess.run(list(args), env=cluster, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{' '.join(args)}: {out.stderr}"
    return out.stdout


class Launch:
    """`python <script> ARGS` in its own session, output to files (a full pipe never blocks it)."""

    def __init__(self, cluster: dict, runs: Path, args: list[str], script: str = "experiments/train.py"):
        self.cluster, self.runs = cluster, runs
        runs.mkdir(parents=True, exist_ok=True)
        self.out_path, self.err_path = runs / "launch.out", runs / "launch.err"
        env = dict(cluster, AGD_RUNS_DIR=str(runs), WANDB_MODE="offline", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen([sys.executable, str(REPO / script), *args], cwd=REPO, env=env,
                                         stdout=out, stderr=err, start_new_session=True)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"still running after {timeout} s:\n{self.output()[-3000:]}") from None

    def stop(self) -> None:
        """Stop the launcher if it still runs, let the jobs it submitted leave the queue (a job
        whose result the launcher has read may still be exiting) and cancel any that remain, so
        no test leaves work queued for the next."""
        killed = self.proc.poll() is None
        if killed:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        arrays = _array_ids(self.runs)
        deadline = time.monotonic() + (0 if killed else 60)
        while arrays and time.monotonic() < deadline and subprocess.run(
                ["squeue", "-h", "-j", ",".join(arrays)], env=self.cluster, capture_output=True, text=True,
                timeout=60).stdout.strip():
            time.sleep(0.5)
        for array_id in arrays:
            subprocess.run(["scancel", array_id], env=self.cluster, capture_output=True, timeout=60)

    def output(self) -> str:
        return self.out_path.read_text() + self.err_path.read_text()

    def last_line(self) -> str:
        lines = self.err_path.read_text().strip().splitlines()
        return lines[-1] if lines else ""


def _array_ids(runs: Path) -> list[str]:
    """Ids of the submissions under `runs` (submitit's `.submitit/<id>/` folders): a sweep of
    several runs is one job array (its tasks are <id>_<index>), a sweep of one run one job <id>."""
    return sorted({p.name for p in runs.rglob(".submitit/*") if p.name.isdigit()}, key=int)


def _submitted(launch: Launch, timeout: float = 120) -> str:
    """The id of the launch's first submission, once sbatch has answered."""
    deadline = time.monotonic() + timeout
    while not _array_ids(launch.runs):
        assert launch.proc.poll() is None, f"the sweep ended before submitting:\n{launch.output()[-3000:]}"
        assert time.monotonic() < deadline, "nothing was submitted"
        time.sleep(0.1)
    return _array_ids(launch.runs)[0]


def _job_log(runs: Path, job_id: str) -> str:
    path = next(runs.rglob(f".submitit/{job_id}/{job_id}_0_log.out"), None)
    return path.read_text(errors="replace") if path else ""


UNFINISHED = {"PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "REQUEUED", "RESIZING", "SUSPENDED"}


def _accounting(cluster: dict, array_id: str, timeout: float = 60) -> dict[int, tuple[str, str]]:
    """{task: (State, ExitCode)} as slurmdbd recorded them once every task has ended (a lone job is
    task 0). The launcher may read a task's result before SLURM has closed the task (its process
    is still exiting, or slurmdbd has not been told yet), so this waits up to `timeout` s for the
    record to leave the unfinished states; what it has then is returned as it is."""
    deadline = time.monotonic() + timeout
    while True:
        out = _slurm(cluster, "sacct", "-X", "-n", "-P", "-j", array_id, "-o", "JobID,State,ExitCode")
        rows = [line.split("|") for line in out.splitlines() if line.strip()]
        states = {int(job.partition("_")[2] or 0): (state.split()[0], code) for job, state, code in rows
                  if job.partition("_")[2].isdigit() or job.isdigit()}
        if (states and not any(state in UNFINISHED for state, _ in states.values())) or time.monotonic() > deadline:
            return states
        time.sleep(1)


class Releaser(threading.Thread):
    """A requeued job waits about 120 s before it may start again (Reason=BeginTime); let it start
    now, as a real cluster would once its queue moves."""

    def __init__(self, cluster: dict, array_id: str):
        super().__init__(daemon=True)
        self.cluster, self.array_id = cluster, array_id
        self.released, self.done = 0, threading.Event()

    def run(self):
        while not self.done.wait(0.5):
            out = subprocess.run(["squeue", "-h", "-j", self.array_id, "-o", "%i|%T|%r"], env=self.cluster,
                                 capture_output=True, text=True, timeout=60).stdout
            for job, state, reason in (line.split("|") for line in out.splitlines() if line.count("|") == 2):
                if state == "PENDING" and reason == "BeginTime":
                    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=self.cluster,
                                   capture_output=True, timeout=60)
                    self.released += 1

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.join(timeout=60)


class EpochWatch(threading.Thread):
    """(wall time, epochs in metrics.csv) each time the count changes."""

    def __init__(self, run_dir: Path):
        super().__init__(daemon=True)
        self.path, self.history, self.done = run_dir / "metrics.csv", [], threading.Event()

    def epochs(self) -> int:
        try:
            return max(len(self.path.read_text().splitlines()) - 1, 0)
        except OSError:
            return 0

    def run(self):
        while not self.done.wait(0.02):
            n = self.epochs()
            if not self.history or self.history[-1][1] != n:
                self.history.append((time.time(), n))

    def at(self, when: float) -> int:
        """Epochs on disk at wall time `when`."""
        return max([n for t, n in self.history if t <= when], default=0)

    def wait_for(self, epochs: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.epochs() < epochs:
            assert time.monotonic() < deadline, f"{self.path} did not reach epoch {epochs}"
            time.sleep(0.02)
        return self.epochs()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.join(timeout=10)


def _reference(runs: Path, args: list[str]) -> subprocess.Popen:
    """The same run, uninterrupted, in this process's machine (no SLURM)."""
    env = dict(os.environ, AGD_RUNS_DIR=str(runs), WANDB_MODE="offline", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(REPO / "experiments" / "train.py"), *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _table(run_dir: Path) -> list[str]:
    """metrics.csv without time_s (its last column): what must be identical after a resume."""
    return [line.rsplit(",", 1)[0] for line in (run_dir / "metrics.csv").read_text().splitlines()]


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _resumed_from(log: str) -> list[int]:
    return [int(m) for m in re.findall(r"resuming \S+ from epoch (\d+)", log)]


def _signal_times(log: str, case: str) -> list[float]:
    """Wall times at which submitit caught its signal in the job, by its log lines."""
    stamps = re.findall(r"submitit WARNING \((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\) - Caught signal SIGUSR2 "
                        rf"on \S+: this job is {case}", log)
    # submitit's logger writes each record twice to this log (its handler and the root's)
    return sorted({datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f").timestamp() for s in stamps})


@pytest.fixture(scope="module")
def short_reference(tmp_path_factory):
    """The short run, uninterrupted, outside SLURM: what every interrupted twin must equal."""
    root = tmp_path_factory.mktemp("short_reference")
    reference = _reference(root, SHORT)
    yield reference, root / "train" / SHORT_NAME
    if reference.poll() is None:
        reference.kill()


def _interrupt_and_resume(cluster, tmp_path, short_reference, interrupt) -> tuple[Launch, Releaser, int, Path]:
    """One short run through SLURM, interrupted by `interrupt(job_id)` after its first epoch,
    requeued and resumed; it must end equal to the uninterrupted reference. Returns the launch,
    the releaser, the epochs on disk when the signal went and the run directory."""
    reference, reference_dir = short_reference
    launch = Launch(cluster, tmp_path / "runs", ["-m", "hydra/launcher=slurm_cpu", *SHORT])
    run_dir = tmp_path / "runs" / "train" / SHORT_NAME
    try:
        job_id = _submitted(launch)  # one run: a lone job, not an array
        with EpochWatch(run_dir) as watch, Releaser(cluster, job_id) as releaser:
            at_signal = watch.wait_for(1, timeout=180)
            interrupt(job_id)
            code = launch.wait(timeout=300)
        assert code == 0, launch.output()[-3000:]
        assert reference.wait(timeout=300) == 0
    finally:
        launch.stop()
    assert _table(run_dir) == _table(reference_dir)
    assert _summary(run_dir)["status"] == "complete"
    return launch, releaser, at_signal, run_dir


def test_refused_request_is_one_sentence_naming_the_key(cluster, tmp_path):
    """The GPU profile on a CPU-only cluster: sbatch refuses the gres, nothing runs."""
    launch = Launch(cluster, tmp_path / "runs", ["-m", "hydra/launcher=slurm", *SHORT])
    assert launch.wait(timeout=120) == 2, launch.output()[-3000:]
    assert "Traceback" not in launch.output()
    assert launch.last_line() == (
        "error: SLURM refused the sweep's job array (sbatch: Invalid generic resource (gres) specification); "
        "set hydra.launcher.gpus_per_node to what a node of the partition offers (sinfo -o '%P %c %m %G': "
        "cores, MB, GPUs); on a CPU partition choose hydra/launcher=slurm_cpu.")
    assert not list((tmp_path / "runs").rglob("summary.json"))


def test_array_with_a_failing_job_exits_1_and_slurm_records_it_failed(cluster, tmp_path):
    runs = tmp_path / "runs"
    launch = Launch(cluster, runs, ["-m", "hydra/launcher=slurm_cpu", *SHORT[:-1], "epochs=2",
                                    "optimizer.gain=-1,1"])
    try:
        code = launch.wait(timeout=300)
    finally:
        launch.stop()
    assert code == 1, launch.output()[-3000:]
    assert "Traceback" not in launch.output()
    assert launch.last_line().startswith("sweep: 1 of 2 jobs did not complete; first: ")
    assert "gain" in launch.last_line()
    base = "epochs=2,model.depth=2,model.width=64"
    good, bad = runs / "train" / f"{base},optimizer.gain=1", runs / "train" / f"{base},optimizer.gain=-1"
    assert _summary(good)["status"] == "complete" and len(_table(good)) == 3  # header + 2 epochs
    assert _summary(bad)["status"] == "failed" and "gain" in _summary(bad)["error"]
    states = _accounting(cluster, _array_ids(runs)[0])  # job 0 is gain=-1, job 1 gain=1
    assert states[0][0] == "FAILED" and states[0][1] != "0:0", states
    assert states[1] == ("COMPLETED", "0:0"), states


def test_figure_through_the_cluster(cluster, tmp_path):
    """scripts/reproduce.py with the CPU profile: every run of showcase-a trained as a SLURM array
    task (one seed, 2 epochs), then the figure drawn from them."""
    runs = tmp_path / "runs"
    launch = Launch(cluster, runs, ["figure=showcase_a", "scale=mini", "hydra/launcher=slurm_cpu", "seed=0",
                                    "epochs=2"], script="scripts/reproduce.py")
    try:
        code = launch.wait(timeout=400)
    finally:
        launch.stop()
    assert code == 0, launch.output()[-3000:]
    summaries = [_summary(p.parent) for p in (runs / "showcase_a_mini").glob("*/summary.json")]
    assert sorted(s["status"] for s in summaries) == ["complete"] * 3
    arrays = _array_ids(runs)
    assert len(arrays) == 1 and set(_accounting(cluster, arrays[0]).values()) == {("COMPLETED", "0:0")}
    assert list((runs / "figures").glob("showcase_a*.png")), sorted(p.name for p in (runs / "figures").iterdir())


def test_preemption_signal_requeues_and_resumes_to_the_uninterrupted_metrics(cluster, tmp_path, short_reference):
    """USR2, what SLURM sends a job it preempts (with preempt_send_user_signal), as submitit
    asks: the job checkpoints, requeues itself and resumes."""
    launch, releaser, at_signal, run_dir = _interrupt_and_resume(
        cluster, tmp_path, short_reference, lambda job: _slurm(cluster, "scancel", "--signal=USR2", job))
    job_id = _array_ids(tmp_path / "runs")[0]
    log = _job_log(tmp_path / "runs", job_id)
    assert _signal_times(log, "preempted") and releaser.released >= 1, log[-3000:]
    slurm_facts = json.loads((run_dir / "facts.json").read_text())["slurm"]  # the last start's job
    assert slurm_facts["job_id"] == job_id and slurm_facts["restart_count"] >= 1, slurm_facts
    resumed = _resumed_from(log)
    assert len(resumed) == 1 and at_signal <= resumed[0] <= at_signal + 1, (at_signal, resumed, log[-3000:])


def test_scontrol_requeue_resumes_to_the_uninterrupted_metrics(cluster, tmp_path, short_reference):
    """`scontrol requeue` stops the job with SIGTERM and queues it again: the run must stop at
    once (not train on until SIGKILL) and the requeued job resume from its checkpoint."""
    launch, releaser, at_signal, run_dir = _interrupt_and_resume(
        cluster, tmp_path, short_reference, lambda job: _slurm(cluster, "scontrol", "requeue", job))
    log = _job_log(tmp_path / "runs", _array_ids(tmp_path / "runs")[0])
    assert releaser.released >= 1, log[-3000:]
    resumed = _resumed_from(log)
    assert len(resumed) == 1 and at_signal <= resumed[0] <= at_signal + 1, (at_signal, resumed, log[-3000:])


def test_scancel_ends_the_run_interrupted_with_one_sentence(cluster, tmp_path):
    runs = tmp_path / "runs"
    launch = Launch(cluster, runs, ["-m", "hydra/launcher=slurm_cpu", *SHORT])
    run_dir = runs / "train" / SHORT_NAME
    try:
        job_id = _submitted(launch)
        with EpochWatch(run_dir) as watch:
            watch.wait_for(1, timeout=180)
            _slurm(cluster, "scancel", job_id)
            code = launch.wait(timeout=300)
    finally:
        launch.stop()
    assert code == 75, launch.output()[-3000:]  # stopped, rerun to resume: as a single run stopped by a signal
    assert "Traceback" not in launch.output()
    line = launch.last_line()
    assert line.startswith("sweep: 1 of 1 jobs did not complete; first: ") and "interrupted" in line, line
    assert "rerun the same command" in line, line
    assert _summary(run_dir)["status"] == "interrupted"
    assert _accounting(cluster, job_id)[0][0] == "CANCELLED"
    assert len(_table(run_dir)) < 101  # it stopped before its end


def test_too_many_time_limits_end_the_sweep_with_one_sentence(cluster, tmp_path):
    runs = tmp_path / "runs"
    launch = Launch(cluster, runs, ["-m", "hydra/launcher=slurm_cpu", *TIME_LIMIT, "hydra.launcher.max_num_timeout=0",
                                    *OVERRUN])
    try:
        code = launch.wait(timeout=240)
    finally:
        launch.stop()
    assert code == 75, launch.output()[-3000:]  # stopped, rerun to resume
    assert "Traceback" not in launch.output()
    line = launch.last_line()
    assert line.startswith("sweep: 1 of 1 jobs did not complete; first: "), line
    assert ("max_num_timeout" in line or "timed-out too many times" in line) and "rerun the same command" in line
    assert _summary(runs / "train" / OVERRUN_NAME)["status"] == "interrupted"


@pytest.fixture(scope="module")
def time_limit_sweep(cluster, tmp_path_factory, request):
    """The time-limit sweep takes minutes of waiting for SLURM's signal: started as soon as the
    module starts (when its test is selected), it runs beside the other tests."""
    if not any(item.name == TIME_LIMIT_TEST for item in request.session.items):
        yield None
        return
    root = tmp_path_factory.mktemp("time_limit")
    reference = _reference(root / "ref", LONG)
    # as many requeues as the profile allows (20): on a loaded machine an attempt trains 10-40 s
    launch = Launch(cluster, root / "runs", ["-m", "hydra/launcher=slurm_cpu", *TIME_LIMIT, *LONG])
    job_id = _submitted(launch)
    watch, releaser = EpochWatch(root / "runs" / "train" / LONG_NAME), Releaser(cluster, job_id)
    with watch, releaser:
        yield launch, reference, watch, releaser, root
    launch.stop()
    if reference.poll() is None:
        reference.kill()


@pytest.fixture(scope="module", autouse=True)
def _start_the_time_limit_sweep_first(time_limit_sweep):
    return time_limit_sweep


def test_time_limit_requeues_and_resumes_to_the_uninterrupted_metrics(time_limit_sweep):
    launch, reference, watch, releaser, root = time_limit_sweep
    code = launch.wait(timeout=900)
    assert code == 0, launch.output()[-3000:]
    assert reference.wait(timeout=300) == 0
    run_dir = root / "runs" / "train" / LONG_NAME
    log = _job_log(root / "runs", _array_ids(root / "runs")[0])
    signals, resumed = _signal_times(log, "timed-out"), _resumed_from(log)
    # every signal requeued the job and the next attempt resumed (a last signal may come as the
    # run finishes: that attempt finds it complete)
    assert resumed and len(signals) in (len(resumed), len(resumed) + 1), log[-3000:]
    for when, start in zip(signals, resumed, strict=False):  # each stop lost at most the epoch in progress
        assert watch.at(when) <= start <= watch.at(when) + 1, (watch.at(when), start)
    assert _table(run_dir) == _table(root / "ref" / "train" / LONG_NAME)
    assert _summary(run_dir)["status"] == "complete"


def test_two_ranks_on_the_node_give_one_process_metrics(cluster, tmp_path):
    """Two tasks of one job (srun starts both; agd/distributed.py reads SLURM_PROCID and
    SLURM_STEP_NUM_TASKS), gloo on the CPU, against one process with the same global batch."""
    args = [*SHORT[:-1], "epochs=2"]
    name = "epochs=2,model.depth=2,model.width=64"
    reference = _reference(tmp_path / "ref", args)
    launch = Launch(cluster, tmp_path / "runs", ["-m", "hydra/launcher=slurm_cpu", "hydra.launcher.tasks_per_node=2",
                                                 *args])
    try:
        code = launch.wait(timeout=300)
        assert reference.wait(timeout=300) == 0
    finally:
        launch.stop()
    assert code == 0, launch.output()[-3000:]
    job = _array_ids(tmp_path / "runs")[0]
    logs = [p.read_text() for p in (tmp_path / "runs").rglob(f".submitit/{job}/{job}_*_log.out")]
    assert len(logs) == 2 and sum(log.count("done:") for log in logs) == 1  # two ranks; rank 0 alone writes
    one, two = (root / "train" / name for root in (tmp_path / "ref", tmp_path / "runs"))
    assert json.loads((two / "facts.json").read_text())["world_size"] == 2
    pd.testing.assert_frame_equal(pd.read_csv(one / "metrics.csv").drop(columns="time_s"),
                                  pd.read_csv(two / "metrics.csv").drop(columns="time_s"), rtol=1e-5)
    w1, w2 = (torch.load(d / "checkpoint.pt", weights_only=True)["model"] for d in (one, two))
    assert max((w1[k] - v).abs().max().item() for k, v in w2.items()) < 1e-5
