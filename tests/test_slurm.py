"""SLURM through Hydra's submitit launcher: the configs compose (with the git-ignored local file),
a sweep renders one sbatch array script with the requested resources (captured by a fake
`sbatch` on PATH), and the local submitit launcher runs a sweep end to end, a failing job
included, and skips finished runs when relaunched."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CONF, REPO, run_train

LOCAL_SLURM = """\
partition: testpart
account: acct1
nodes: 2
gpus_per_node: 4
mem_gb: 100
timeout_min: 30
setup:
  - echo preparing-the-node
"""

FAKE_SLURM = {
    # sbatch: keep the script, answer like SLURM does
    "sbatch": '#!/bin/sh\ncp "$1" "$AGD_FAKE_SLURM_CAPTURE/$(basename "$1")"\n'
              'echo "Submitted batch job 4242"\n',
    "srun": "#!/bin/sh\nexit 0\n",
    "squeue": "#!/bin/sh\nexit 0\n",
    "scancel": "#!/bin/sh\nexit 0\n",
    # the array stays queued, so the launcher waits; the test stops it once the script is captured
    "sacct": '#!/bin/sh\necho "JobID|State|NodeList"\necho "4242_[0-1]|PENDING|None"\n',
}


def _site(tmp_path: Path) -> list[str]:
    """Overrides that add a local settings file named `testsite` (not `slurm`, so a real
    conf/local/slurm.yaml on this machine changes nothing) and select it."""
    conf = tmp_path / "site_conf"
    (conf / "local").mkdir(parents=True)
    (conf / "local" / "testsite.yaml").write_text(LOCAL_SLURM)
    return [f"hydra.searchpath=[file://{conf}]", "local@hydra.launcher=testsite"]


def test_launcher_configs_compose_with_the_local_file(compose, tmp_path):
    bare = compose(["hydra/launcher=slurm"], return_hydra_config=True).hydra.launcher
    assert bare.max_num_timeout > 0  # requeued at the time limit, not only on preemption
    assert bare.tasks_per_node == bare.gpus_per_node  # one rank per GPU
    if not (CONF / "local" / "slurm.yaml").exists():  # this machine's own settings
        assert bare.partition is None and bare.gpus_per_node == 1
    launcher = compose(["hydra/launcher=slurm", *_site(tmp_path), "hydra.launcher.cpus_per_task=3"],
                       return_hydra_config=True).hydra.launcher
    assert (launcher.partition, launcher.account, launcher.nodes, launcher.mem_gb) == (
        "testpart", "acct1", 2, 100)
    assert launcher.gpus_per_node == 4 and launcher.tasks_per_node == 4  # one rank per GPU
    assert launcher.cpus_per_task == 3  # the command line wins over the local file
    for name in ("local", "submitit_local"):
        assert compose([f"hydra/launcher={name}"], return_hydra_config=True).hydra.launcher.nodes == 1


def test_slurm_sweep_renders_one_sbatch_array_with_the_requested_resources(tmp_path):
    bin_dir, capture, runs = tmp_path / "bin", tmp_path / "captured", tmp_path / "runs"
    bin_dir.mkdir()
    capture.mkdir()
    for name, body in FAKE_SLURM.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", AGD_RUNS_DIR=str(runs),
               AGD_FAKE_SLURM_CAPTURE=str(capture), WANDB_MODE="offline")
    cmd = [sys.executable, str(REPO / "experiments" / "train.py"), "-m", "model.depth=2,4",
           "hydra/launcher=slurm", *_site(tmp_path), "hydra.launcher.cpus_per_task=3", "logger=none"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list(capture.iterdir()) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)  # let the launcher finish writing the job pickles
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
    scripts = list(capture.iterdir())
    assert len(scripts) == 1, f"expected one array submission, got {scripts}:\n{out[-3000:]}"
    script = scripts[0].read_text()
    lines = set(script.splitlines())
    for flag in ("--partition=testpart", "--account=acct1", "--nodes=2", "--gpus-per-node=4",
                 "--ntasks-per-node=4", "--cpus-per-task=3", "--mem=100GB", "--time=30",
                 "--signal=USR2@120", "--array=0-1%2", "--job-name=train"):
        assert f"#SBATCH {flag}" in lines, f"{flag} missing from\n{script}"
    assert "echo preparing-the-node" in lines
    assert "export SUBMITIT_EXECUTOR=slurm" in lines
    assert any(line.startswith("srun --unbuffered") and "submitit.core._submit" in line
               for line in lines)
    print("rendered sbatch resources:\n" + "\n".join(sorted(x for x in lines if x.startswith("#SBATCH"))))
    # two runs, each pickled with its overrides and the number of time-limit requeues it may use
    pickles = sorted((runs / "train" / ".submitit").rglob("*_submitted.pkl"))
    assert len(pickles) == 2
    with open(pickles[0], "rb") as f:
        submission = pickle.load(f)
    assert submission._timeout_countdown == 20
    assert any("model.depth=" in o for o in submission.args[0])


def _runs(runs: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in (runs / "train").glob("*/summary.json")}


SWEEP = ["-m", "hydra/launcher=local", "epochs=1", "logger=none", "progress=false", "model.width=32",
         "data=digits", "optimizer.gain=-1,1"]
OK_RUN = "data=digits,epochs=1,model.width=32,optimizer.gain=1"


def _local_sweep(runs: Path) -> None:
    """Two jobs through submitit's local executor; gain=-1 is refused by AGD, so the sweep exits 1."""
    proc = run_train(SWEEP, runs, timeout=300)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("sweep: 1 of 2 jobs did not complete; first: ")
    assert not (runs / "train" / ".submitit" / "%j").exists()  # job files in one folder, no literal %j
    summaries = _runs(runs)
    assert summaries[OK_RUN]["status"] == "complete"
    failed = summaries["data=digits,epochs=1,model.width=32,optimizer.gain=-1"]
    assert failed["status"] == "failed" and "gain" in failed["error"]
    assert (runs / "train" / OK_RUN / "metrics.csv").read_text().count("\n") == 2


def test_local_submitit_sweep_runs_both_jobs_and_a_failure_stays_contained(tmp_path):
    _local_sweep(tmp_path / "runs")


@pytest.mark.slow
def test_relaunched_local_sweep_skips_the_complete_run(tmp_path):
    runs = tmp_path / "runs"
    _local_sweep(runs)
    metrics = runs / "train" / OK_RUN / "metrics.csv"
    stamp = metrics.stat().st_mtime_ns
    again = run_train(SWEEP, runs, timeout=300)
    assert again.returncode == 1, again.stderr[-2000:]  # the refused job is refused again
    assert metrics.stat().st_mtime_ns == stamp
    logs = "".join(p.read_text() for p in (runs / "train" / ".submitit").rglob("*.out"))
    assert "already complete" in logs


def _submitit_task_pids(folder_part: str) -> list[int]:
    """The `python -m submitit.core._submit <folder>` task processes whose folder is ours."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, ValueError):
            continue
        if "submitit.core._submit" in cmdline and any(folder_part in arg for arg in cmdline):
            pids.append(int(proc.name))
    return pids


@pytest.mark.slow
def test_preempted_submitit_job_is_requeued_and_resumes_to_the_uninterrupted_metrics(tmp_path):
    """submitit's own preemption path: its signal (USR2) makes the launcher's checkpoint()
    requeue the job, which reruns the same overrides and resumes from checkpoint.pt."""
    import torch

    args = ["epochs=4", "logger=none", "progress=false", "model.width=64", "device=cpu"]
    name = "epochs=4,model.width=64"
    reference, runs = tmp_path / "ref", tmp_path / "runs"
    env = dict(os.environ, WANDB_MODE="offline", PYTHONUNBUFFERED="1")
    uninterrupted = subprocess.Popen([sys.executable, str(REPO / "experiments" / "train.py"), *args],
                                     cwd=REPO, env=dict(env, AGD_RUNS_DIR=str(reference)),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sweep = subprocess.Popen([sys.executable, str(REPO / "experiments" / "train.py"), "-m",
                              "hydra/launcher=local", *args], cwd=REPO,
                             env=dict(env, AGD_RUNS_DIR=str(runs)), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    checkpoint = runs / "train" / name / "checkpoint.pt"
    try:
        deadline = time.monotonic() + 240
        while not checkpoint.exists():
            assert sweep.poll() is None and time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        tasks = _submitit_task_pids(str(runs))
        assert len(tasks) == 1, tasks
        os.kill(tasks[0], signal.SIGUSR2)  # what SLURM sends submitit jobs at preemption
        out, _ = sweep.communicate(timeout=300)
        assert sweep.returncode == 0, out[-3000:]
        assert uninterrupted.wait(timeout=300) == 0
    finally:
        for p in (sweep, uninterrupted):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL) if p is sweep else p.kill()
            p.communicate()
    logs = "".join(p.read_text() for p in (runs / "train" / ".submitit").rglob("*.out"))
    assert "Requeued" in logs and "resuming" in logs, logs[-3000:]
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 4

    def table(root):
        lines = (root / "train" / name / "metrics.csv").read_text().splitlines()
        return [line.rsplit(",", 1)[0] for line in lines]  # all but time_s, the last column

    assert table(runs) == table(reference)
