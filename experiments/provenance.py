"""What made a run: the code (git commit, uncommitted changes), the package versions, the
machine and the scheduler's job. Recorded in facts.json at every start of a run (summary.json
keeps `commit` and `dirty`, so agd.results.load_runs has them as columns).

The training code is agd/, experiments/ and conf/: `dirty` and `diff_sha256` describe changes
there only (a README edit does not make a run's numbers come from other code). Without git (a
tarball install, no git binary) the commit reads "unknown" and `git_note` says why; a run never
fails for want of provenance.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from experiments.paths import REPO_ROOT

# the code that decides what a run computes, as git pathspecs: the results layer and the
# benchmarks only read runs, so an edit there neither dirties a run nor makes its evidence stale
TRAINING_CODE = ("agd", "conf", "experiments", ":!experiments/analysis", ":!experiments/bench")
GIT_TIMEOUT_S = 10.0
BASE_PACKAGES = ("torch", "torchvision", "numpy")
SLURM_VARIABLES = {"job_id": "SLURM_JOB_ID", "array_job_id": "SLURM_ARRAY_JOB_ID",
                   "array_task_id": "SLURM_ARRAY_TASK_ID", "node": "SLURMD_NODENAME",
                   "restart_count": "SLURM_RESTART_COUNT"}


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=GIT_TIMEOUT_S, check=True)
    return done.stdout.decode(errors="replace")


def git_facts(repo: Path | None = None) -> dict:
    """commit (full sha), dirty, diff_sha256 (of `git diff HEAD` over the training code, None when
    clean) and the untracked files there; commit "unknown" with `git_note` when git cannot say.
    `repo` defaults to this checkout."""
    repo = Path(repo or REPO_ROOT)
    try:
        top = Path(_git(repo, "rev-parse", "--show-toplevel").strip())
        if top.resolve() != repo.resolve():  # an unpacked copy inside some other repository
            raise subprocess.SubprocessError(f"its git repository is {top}, which is not this checkout")
        commit = _git(repo, "rev-parse", "HEAD").strip()
        diff = _git(repo, "diff", "HEAD", "--no-color", "--no-ext-diff", "--", *TRAINING_CODE)
        untracked = _git(repo, "ls-files", "--others", "--exclude-standard", "--", *TRAINING_CODE).split("\n")
    except (OSError, subprocess.SubprocessError) as err:
        reason = err.stderr.decode(errors="replace").strip() if getattr(err, "stderr", None) else str(err)
        first = reason.splitlines()[0] if reason else type(err).__name__
        return {"commit": "unknown", "dirty": None, "diff_sha256": None, "untracked": [],
                "git_note": f"no git commit recorded: {repo} is not a readable git checkout ({first})"}
    untracked = sorted(name for name in untracked if name)
    return {"commit": commit, "dirty": bool(diff or untracked),
            "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None,
            "untracked": untracked}


def _distribution(module: str) -> str | None:
    """The installed distribution that provides the top-level module `module`."""
    names = importlib.metadata.packages_distributions().get(module, [])
    return names[0] if names else None


def package_versions(targets=()) -> dict:
    """Python, torch, torchvision, numpy, and the distribution of each `_target_` module given
    (the optimiser's: prodigyopt, dadaptation, schedulefree, dog-optimizer, or agd itself)."""
    names = list(BASE_PACKAGES)
    for target in targets:
        dist = _distribution(str(target).split(".")[0])
        if dist and dist not in names:
            names.append(dist)
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def host_facts(device: torch.device) -> dict:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "gpu": gpu, "torch_threads": torch.get_num_threads(),
            "platform": sys.platform}


def slurm_facts(environ=None) -> dict | None:
    """The SLURM job this process runs in (None outside SLURM); restart_count is the number of
    times the job was requeued."""
    env = os.environ if environ is None else environ
    if "SLURM_JOB_ID" not in env:
        return None
    facts = {key: env.get(name) for key, name in SLURM_VARIABLES.items()}
    facts["restart_count"] = int(facts["restart_count"] or 0)
    return facts


def collect(optimizer_target: str, device: torch.device) -> dict:
    """Every provenance fact of one start of a run, for facts.json."""
    return {"git": git_facts(), "versions": package_versions([optimizer_target]), "host": host_facts(device),
            "slurm": slurm_facts()}
