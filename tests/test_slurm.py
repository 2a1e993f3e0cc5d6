"""SLURM through Hydra's submitit launcher, without a cluster: the configs compose (with the
git-ignored local file), a multi-node multi-GPU sweep renders one sbatch array script with the
requested resources (captured by a fake `sbatch` on PATH: one CPU node cannot run it), sbatch's
refusals and SLURM's records of a job that left no result become one sentence each
(experiments/slurm.py), and the local submitit launcher runs a sweep end to end, a failing job
included, and skips finished runs when relaunched. Sweeps on a real cluster:
tests/test_slurm_cluster.py."""

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

from experiments import slurm, sweep

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


def test_cpu_profile_asks_for_one_process_without_gpu(compose, tmp_path):
    cpu = compose(["hydra/launcher=slurm_cpu"], return_hydra_config=True).hydra.launcher
    assert (cpu.gpus_per_node, cpu.tasks_per_node, cpu.cpus_per_task, cpu.nodes) == (0, 1, 1, 1)
    assert cpu.mem_gb <= 4 and cpu.max_num_timeout > 0
    assert list(cpu.setup) == ["export OMP_NUM_THREADS=1"]  # torch's threads = the cores SLURM gave
    # its own local file (the CPU partition's name), not the GPU profile's
    conf = tmp_path / "site_conf"
    (conf / "local").mkdir(parents=True)
    (conf / "local" / "slurm_cpu.yaml").write_text("partition: cpuq\naccount: acct2\n")
    (conf / "local" / "slurm.yaml").write_text("partition: gpuq\n")
    site = compose(["hydra/launcher=slurm_cpu", f"hydra.searchpath=[file://{conf}]"],
                   return_hydra_config=True).hydra.launcher
    assert (site.partition, site.account, site.gpus_per_node) == ("cpuq", "acct2", 0)


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


# sbatch's stderr as SLURM 22.05 prints it for each refusal (collected on the test cluster, and the
# wording of slurm_strerror for account and time limit), with the launcher key the sentence names
SBATCH_REFUSALS = [
    ("sbatch: error: Invalid generic resource (gres) specification\n", "gpus_per_node",
     "Invalid generic resource (gres) specification"),
    ('sbatch: error: Invalid numeric value "0" for --ntasks-per-node.\n', "tasks_per_node",
     'Invalid numeric value "0" for --ntasks-per-node'),
    ("sbatch: error: Batch job submission failed: More processors requested than permitted\n", "cpus_per_task",
     "More processors requested than permitted"),
    ("sbatch: error: Memory specification can not be satisfied\nsbatch: error: Batch job submission failed: "
     "Requested node configuration is not available\n", "mem_gb", "Memory specification can not be satisfied"),
    ("sbatch: error: invalid partition specified: gpu\nsbatch: error: Batch job submission failed: Invalid "
     "partition name specified\n", "partition", "invalid partition specified: gpu"),
    ("sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified\n",
     "account", "Invalid account or account/partition combination specified"),
    ("sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds some "
     "limit)\n", "timeout_min", "Requested time limit is invalid (missing or exceeds some limit)"),
]


@pytest.mark.parametrize("stderr, key, reason", SBATCH_REFUSALS, ids=[k for _, k, _ in SBATCH_REFUSALS])
def test_sbatch_refusal_is_one_sentence_naming_the_key(stderr, key, reason):
    from submitit.core.utils import FailedJobError

    refused = subprocess.CalledProcessError(1, ["sbatch", "/x/.submission_file_1.sh"], stderr=stderr.strip())
    try:
        raise FailedJobError(stderr.strip()) from refused
    except FailedJobError as err:
        code, line = slurm.explain(err)
    assert code == 2 and "\n" not in line
    assert line.startswith(f"error: SLURM refused the sweep's job array (sbatch: {reason}); "
                           f"set hydra.launcher.{key} "), line
    assert line.endswith(".")


def test_only_submitit_errors_are_translated(capsys):
    from submitit.core.utils import UncompletedJobError

    assert slurm.explain(ValueError("a bug")) is None
    with pytest.raises(ValueError):  # any other error keeps its traceback
        with slurm.launch_errors_as_sentences():
            raise ValueError("a bug")
    with pytest.raises(SystemExit) as stopped:
        with slurm.launch_errors_as_sentences():
            raise UncompletedJobError("Job not requeued because: timed-out too many times.")
    assert stopped.value.code == 75
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "max_num_timeout" in err and "rerun the same command" in err


def test_a_job_that_left_no_result_gets_its_outcome_from_slurm(tmp_path):
    log = tmp_path / "12_3_0_log.out"
    log.write_text("submitit INFO - Starting\ninterrupted: /runs/train/x stopped by SIGTERM after epoch 3; rerun "
                   "the same command to resume from its last checkpoint.\n")
    cancelled = slurm.task_outcome("12_3", "CANCELLED", "0:15", log)
    assert cancelled == {"status": "interrupted", "run_dir": "/runs/train/x",
                         "error": "SLURM job 12_3 (after epoch 3) was cancelled before its run finished; rerun the "
                                  "same command to resume it"}
    assert slurm.task_outcome("12_3", "OUT_OF_MEMORY", "0:125", tmp_path / "none.out")["status"] == "failed"
    assert "hydra.launcher.mem_gb" in slurm.task_outcome("12_3", "OUT_OF_MEMORY", "0:125", log)["error"]
    assert slurm.task_outcome("12_3", "FAILED", "75:0", log)["status"] == "interrupted"
    crashed = slurm.task_outcome("12_3", "FAILED", "1:0", tmp_path / "none.out")
    assert crashed["status"] == "failed" and "ended FAILED (exit 1:0)" in crashed["error"]
    log.write_text("Job not requeued because: timed-out too many times.\n")
    assert "max_num_timeout" in slurm.task_outcome("12_3", "FAILED", "75:0", log)["error"]


def test_sweep_verdict_a_failure_outranks_a_stopped_run():
    stopped = {"status": "interrupted", "run_dir": "a", "error": "cancelled"}
    failed = {"status": "failed", "run_dir": "b", "error": "bad gain"}
    done = {"status": "complete", "run_dir": "c"}
    assert sweep.verdict([done, stopped])[0] == 75  # stopped only: rerun to resume
    code, line = sweep.verdict([stopped, failed, done])
    assert code == 1 and line == "sweep: 2 of 3 jobs did not complete; first: b: failed: bad gain"
