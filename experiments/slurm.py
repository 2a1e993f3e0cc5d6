"""A SLURM sweep that goes wrong, said in one sentence instead of submitit's traceback.

Hydra's submitit launcher (conf/hydra/launcher/slurm.yaml, slurm_cpu.yaml) submits a sweep as
one job array and waits for every task's result. Three ways out reach the entry point as
exceptions of submitit's, and `launch_errors_as_sentences` (around experiments/train.py's main)
turns each into one line on stderr and an exit status:
- sbatch refused the array at submission (no such partition, a GPU on a CPU-only cluster, more
  cores or memory than a node has): which `hydra.launcher.<key>` to change, quoting sbatch's
  reason; exit 2, nothing ran;
- a task ended without a result (scancel, killed for memory, a node failure, a run that exits
  non-zero): the other tasks of the array are waited for, then the sweep's verdict
  (experiments/sweep.py) covers every task, from the outcomes the jobs left and, for a task that
  left none, from what SLURM recorded for it (sacct) and the run's last sentence in its log;
  exit 75 when the only problems are stopped runs (rerun the same command to resume them:
  complete runs are skipped), 1 when a run failed;
- a task reached its time limit more than `max_num_timeout` times, so submitit stopped requeuing
  it: which keys to raise; exit 75.
Only submitit's exceptions are touched; any other error keeps its traceback.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from experiments import sweep
from experiments.signals import EXIT_INTERRUPTED

EXIT_USAGE, EXIT_FAILED = 2, 1

TOO_MANY_TIMEOUTS = ("reached its time limit more than hydra.launcher.max_num_timeout times, so it was not "
                     "requeued again; raise hydra.launcher.timeout_min or max_num_timeout and rerun the same "
                     "command to resume it")
NODE = "what a node of the partition offers (sinfo -o '%P %c %m %G': cores, MB, GPUs)"
# sbatch's reasons for refusing a job (SLURM's wording, lower case) -> the launcher key and the fix;
# the first match wins ("Invalid account or account/partition combination" is the account's)
REFUSALS = (
    ("generic resource", "gpus_per_node", f"to {NODE}; on a CPU partition choose hydra/launcher=slurm_cpu"),
    ("gres", "gpus_per_node", f"to {NODE}; on a CPU partition choose hydra/launcher=slurm_cpu"),
    ("--ntasks-per-node", "tasks_per_node", "to 1 or more (it follows gpus_per_node, and is at least 1), "
                                            "or choose hydra/launcher=slurm_cpu"),
    ("more processors requested than permitted", "cpus_per_task", f"(cores per task) to {NODE}"),
    ("memory specification", "mem_gb", f"(GB per node) to {NODE}"),
    ("account", "account", "to an account you may charge (sacctmgr show associations user=$USER)"),
    ("partition", "partition", "to one of the cluster's partitions (sinfo -s)"),
    ("qos", "qos", "to a QOS you may use (sacctmgr show associations user=$USER format=qos)"),
    ("time limit", "timeout_min", "(minutes) to the partition's limit or less (sinfo -o '%P %l')"),
    ("node count", "nodes", "to the number of nodes the partition has (sinfo -s) or fewer"),
    ("feature", "constraint", "to a feature the partition's nodes have (sinfo -o '%P %f')"),
)


def sbatch_reason(stderr: str) -> str:
    """sbatch's own reason from its error lines; the first is the most specific (a second is
    often the generic "Requested node configuration is not available")."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    reasons = [line.split("error:", 1)[1].strip() for line in lines if "error:" in line] or lines
    reason = reasons[0] if reasons else "no reason given"
    return reason.removeprefix("Batch job submission failed:").strip().rstrip(".")


def refusal(stderr: str) -> str:
    """One sentence: what sbatch said and which `hydra.launcher.<key>` to change, to what."""
    reason = sbatch_reason(stderr)
    for needle, key, fix in REFUSALS:
        if needle in reason.lower():
            return f"SLURM refused the sweep's job array (sbatch: {reason}); set hydra.launcher.{key} {fix}."
    return (f"SLURM refused the sweep's job array (sbatch: {reason}); compare the hydra.launcher settings "
            "(python experiments/train.py hydra/launcher=slurm --cfg hydra -p hydra.launcher) with "
            f"{NODE}.")


def sacct_tasks(array_id: str) -> dict[int, tuple[str, str]]:
    """{task index: (State, ExitCode)} of a job array's tasks as accounting recorded them."""
    try:
        out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", array_id, "-o", "JobID,State,ExitCode"],
                             capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    tasks = {}
    for line in out.splitlines():
        job, state, exit_code = (line.split("|") + ["", "", ""])[:3]
        task = job.partition("_")[2] or ("0" if job.isdigit() else "")  # a sweep of one run is a lone job
        if task.isdigit():  # pending tasks are listed as one range, e.g. 12_[3-5]
            tasks[int(task)] = (state.split()[0] if state else "UNKNOWN", exit_code)
    return tasks


def wait_for_array(array_id: str, poll_s: float = 5.0) -> None:
    """Until no task of the array is pending, running or requeued (squeue lists none)."""
    for polls in itertools.count():
        try:
            listed = subprocess.run(["squeue", "-h", "-j", array_id, "-o", "%i"], capture_output=True,
                                    text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return
        if listed.returncode or not listed.stdout.strip():
            return
        if not polls:
            print(f"waiting for the other jobs of array {array_id} (squeue -j {array_id})", flush=True)
        time.sleep(poll_s)


def _read(log: Path) -> str:
    try:
        return log.read_text(errors="replace")
    except OSError:
        return ""


def last_word(log: Path) -> str | None:
    """The run's own last sentence in its job log ("interrupted: ..." or "error: ...")."""
    for line in reversed(_read(log).splitlines()):
        for prefix in ("interrupted: ", "error: "):
            if line.startswith(prefix):
                return line[len(prefix):].strip().rstrip(".")
    return None


def task_outcome(job_id: str, state: str, exit_code: str, log: Path) -> dict:
    """The sweep outcome of an array task that left none: what SLURM recorded, and where the
    run stopped when its last sentence in the log says so ("<run dir> stopped by <signal>
    after epoch <n>; ...", experiments/pipeline.py)."""
    said, text = last_word(log), _read(log)
    stopped = re.match(r"(/\S+) stopped by \S+ after epoch (\d+)", said or "")
    job = f"SLURM job {job_id}" + (f" (after epoch {stopped.group(2)})" if stopped else "")
    resume = "rerun the same command to resume it"
    if "timed-out too many times" in text:  # submitit's reason for not requeuing, in the job's log
        status, what = "interrupted", f"{job} {TOO_MANY_TIMEOUTS}"
    elif state == "CANCELLED":
        status, what = "interrupted", f"{job} was cancelled before its run finished; {resume}"
    elif state in ("TIMEOUT", "DEADLINE"):
        status, what = "interrupted", (f"{job} reached its time limit; raise hydra.launcher.timeout_min or "
                                       f"max_num_timeout and {resume}")
    elif state == "OUT_OF_MEMORY":
        status, what = "failed", f"{job} ran out of memory; raise hydra.launcher.mem_gb and {resume}"
    elif exit_code.split(":")[0] == str(EXIT_INTERRUPTED):  # the run stopped on a signal and said so
        status, what = "interrupted", f"{job} was stopped by a signal; {resume}"
    else:
        status, what = "failed", f"{job} ended {state} (exit {exit_code or '?'}) without a result; see {log}"
    if said and not stopped:
        what += f" (the run said: {said})"
    return {"status": status, "run_dir": stopped.group(1) if stopped else f"SLURM job {job_id}", "error": what}


def settle(message: str) -> tuple[int, str] | None:
    """A task of the sweep's array ended without a result (submitit's `message` names it and its
    files): wait for the array's other tasks, then the sweep's verdict over every task, from the
    outcomes the jobs left and, for those that left none, from SLURM's accounting."""
    found = re.search(r"Job (\d+)(_\d+)? \(task: \d+\) with path (\S+)", message)
    if found is None:
        return None
    # a sweep of several runs is one array (tasks <id>_<index>), a sweep of one run a lone job <id>
    array_id, lone, result = found.group(1), found.group(2) is None, Path(found.group(3))
    wait_for_array(array_id)
    recorded = sweep.recorded_outcomes()
    outcomes = []
    for task, (state, exit_code) in sorted(sacct_tasks(array_id).items()):
        # the array task's index is its job number in a one-batch sweep; a run's own outcome is
        # the most specific, except for a stop, where SLURM's record says what stopped it
        own = recorded.get(task)
        if own and own.get("status") != "interrupted":
            outcomes.append(own)
            continue
        job_id = array_id if lone else f"{array_id}_{task}"
        log = result.parent.parent / job_id / f"{job_id}_0_log.out"  # submitit's <folder>/<job id>/ layout
        outcome = task_outcome(job_id, state, exit_code, log)
        outcomes.append({**outcome, "run_dir": (own or {}).get("run_dir") or outcome["run_dir"]})
    return sweep.verdict(outcomes) if outcomes else None


def explain(err: BaseException) -> tuple[int, str] | None:
    """(exit status, the one line to print) for submitit's exceptions; None for anything else."""
    if not type(err).__module__.startswith("submitit"):
        return None
    from submitit.core.utils import FailedJobError, UncompletedJobError

    cause = err.__cause__
    if isinstance(err, FailedJobError) and isinstance(cause, subprocess.CalledProcessError):
        if "sbatch" in " ".join(map(str, cause.cmd if isinstance(cause.cmd, list) else [cause.cmd])):
            return EXIT_USAGE, f"error: {refusal(cause.stderr or str(err))}"
    if isinstance(err, UncompletedJobError) and "timed-out too many times" in str(err):
        return EXIT_INTERRUPTED, f"error: a job of the sweep {TOO_MANY_TIMEOUTS}."
    if isinstance(err, UncompletedJobError) and not isinstance(err, FailedJobError):
        return settle(str(err))
    return None


@contextmanager
def launch_errors_as_sentences():
    """Around a Hydra main: submitit's exceptions become one line on stderr and an exit."""
    try:
        yield
    except Exception as err:
        explained = explain(err)
        if explained is None:
            raise
        code, line = explained
        print(line, file=sys.stderr, flush=True)
        raise SystemExit(code) from None
