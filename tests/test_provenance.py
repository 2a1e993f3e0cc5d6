"""Every run records what made it: the git commit and whether the training code had uncommitted
changes (with a hash of them), the package versions, the machine, the SLURM job; summary.json
keeps commit and dirty so load_runs has them as columns. Without git a run still runs."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import signal
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO

from agd.results import load_runs
from experiments import pipeline, provenance, signals
from experiments.analysis import rundata as rd

QUIET = ["epochs=1", "logger=none", "progress=false", "device=cpu", "model.width=16"]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def test_a_run_records_its_commit_versions_machine_and_threads(compose, tmp_path):
    run_dir = tmp_path / "run"
    pipeline.run(compose(QUIET), run_dir)
    facts = json.loads((run_dir / "facts.json").read_text())
    git = facts["git"]
    assert git["commit"] == _git(REPO, "rev-parse", "HEAD").strip() and len(git["commit"]) == 40
    diff = _git(REPO, "diff", "HEAD", "--no-color", "--no-ext-diff", "--", "agd", "conf", "experiments",
                ":!experiments/analysis", ":!experiments/bench")
    untracked = sorted(_git(REPO, "ls-files", "--others", "--exclude-standard", "--", "agd", "experiments",
                            "conf").split())
    assert git["diff_sha256"] == (hashlib.sha256(diff.encode()).hexdigest() if diff else None)
    assert git["untracked"] == untracked and git["dirty"] == bool(diff or untracked)
    versions = facts["versions"]
    for name in ("torch", "torchvision", "numpy", "agd"):  # agd: the optimiser's own package
        assert versions[name] == importlib.metadata.version(name)
    assert facts["host"]["torch_threads"] == torch.get_num_threads() and facts["host"]["cpu"]
    assert facts["host"]["gpu"] is None and facts["slurm"] is None
    state = json.loads((run_dir / "summary.json").read_text())
    assert (state["commit"], state["dirty"], state["mixed_code"]) == (git["commit"], git["dirty"], False)
    df = load_runs(run_dir)
    assert (df["commit"] == git["commit"]).all() and (df["dirty"] == git["dirty"]).all()
    assert (df["facts.git.commit"] == git["commit"]).all()


def test_the_optimiser_package_of_the_config_is_recorded():
    versions = provenance.package_versions(["prodigyopt.Prodigy", "dog.DoG", "torch.optim.Adam"])
    assert versions["prodigyopt"] == importlib.metadata.version("prodigyopt")
    assert versions["dog-optimizer"] == importlib.metadata.version("dog-optimizer")  # module dog
    assert set(versions) == {"python", "torch", "torchvision", "numpy", "prodigyopt", "dog-optimizer"}


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    for name in ("agd/optim.py", "conf/config.yaml", "README.md"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("v1\n")
    _git(repo.parent, "init", "-q", str(repo))
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    return repo


def test_dirty_means_changed_training_code_and_the_diff_is_hashed(tmp_path):
    repo = _repo(tmp_path)
    clean = provenance.git_facts(repo)
    assert clean["commit"] == _git(repo, "rev-parse", "HEAD").strip()
    assert (clean["dirty"], clean["diff_sha256"], clean["untracked"]) == (False, None, [])
    (repo / "README.md").write_text("v2\n")  # not training code
    (repo / "notes.txt").write_text("x\n")
    (repo / "experiments" / "analysis").mkdir(parents=True, exist_ok=True)
    (repo / "experiments" / "analysis" / "report.py").write_text("x\n")  # reads runs, trains nothing
    assert provenance.git_facts(repo)["dirty"] is False
    (repo / "agd" / "optim.py").write_text("v2\n")
    (repo / "conf" / "new.yaml").write_text("x: 1\n")
    dirty = provenance.git_facts(repo)
    diff = _git(repo, "diff", "HEAD", "--", "agd", "experiments", "conf")
    assert dirty["dirty"] is True and dirty["diff_sha256"] == hashlib.sha256(diff.encode()).hexdigest()
    assert dirty["untracked"] == ["conf/new.yaml"]


@pytest.mark.parametrize("where", ["no repository", "inside another repository", "no git program"])
def test_without_git_the_commit_is_unknown_and_says_why(tmp_path, monkeypatch, where):
    folder = tmp_path / "unpacked"
    folder.mkdir()
    if where == "inside another repository":
        folder = _repo(tmp_path) / "agd"
    if where == "no git program":
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    facts = provenance.git_facts(folder)
    assert facts["commit"] == "unknown" and facts["dirty"] is None
    assert facts["git_note"].startswith(f"no git commit recorded: {folder} is not a readable git checkout (")


def test_a_run_without_git_runs_and_says_so(compose, tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "REPO_ROOT", tmp_path)  # as a tarball install sees it
    run_dir = tmp_path / "run"
    assert pipeline.run(compose(QUIET), run_dir)["status"] == "complete"
    git = json.loads((run_dir / "facts.json").read_text())["git"]
    assert git["commit"] == "unknown" and "not a readable git checkout" in git["git_note"]
    assert json.loads((run_dir / "summary.json").read_text())["commit"] == "unknown"


def test_slurm_facts_name_the_job_array_task_node_and_requeues():
    env = {"SLURM_JOB_ID": "1042", "SLURM_ARRAY_JOB_ID": "1040", "SLURM_ARRAY_TASK_ID": "2",
           "SLURMD_NODENAME": "node7", "SLURM_RESTART_COUNT": "3"}
    assert provenance.slurm_facts(env) == {"job_id": "1042", "array_job_id": "1040", "array_task_id": "2",
                                           "node": "node7", "restart_count": 3}
    assert provenance.slurm_facts({"SLURM_JOB_ID": "7"})["restart_count"] == 0
    assert provenance.slurm_facts({}) is None


def test_a_run_resumed_by_other_code_says_its_code_is_mixed(compose, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    cfg = compose([*QUIET[1:], "epochs=2"])
    real_train = pipeline.train

    def stopped_after_epoch_one(*args, on_epoch, **kwargs):
        def then_stop(row):
            on_epoch(row)
            raise signals.Interrupted(signal.SIGTERM)
        return real_train(*args, on_epoch=then_stop, **kwargs)

    code_a = {"commit": "a" * 40, "dirty": False, "diff_sha256": None, "untracked": []}
    monkeypatch.setattr(provenance, "git_facts", lambda repo=None: code_a)
    monkeypatch.setattr(pipeline, "train", stopped_after_epoch_one)
    with pytest.raises(SystemExit):
        pipeline.run(cfg, run_dir)
    code_b = {"commit": "b" * 40, "dirty": True, "diff_sha256": "c" * 64, "untracked": []}
    monkeypatch.setattr(provenance, "git_facts", lambda repo=None: code_b)
    monkeypatch.setattr(pipeline, "train", real_train)
    assert pipeline.run(cfg, run_dir)["status"] == "complete"
    state = json.loads((run_dir / "summary.json").read_text())
    assert (state["commit"], state["dirty"], state["mixed_code"]) == ("b" * 40, True, True)
    facts = json.loads((run_dir / "facts.json").read_text())
    assert facts["trained_by"] == [{"commit": "a" * 40, "diff_sha256": None},
                                   {"commit": "b" * 40, "diff_sha256": "c" * 64}]


# ---- which changes since a run's commit bear on it ----

def _commit(repo: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "step")
    return _git(repo, "rev-parse", "HEAD").strip()


@pytest.mark.parametrize("change, mini, small", [
    ({"conf/scale/fig2/mini.yaml": "# @package _global_\nepochs: 5\n"}, "no", "yes"),  # the other scale's block
    ({"conf/scale/small.yaml": "# @package _global_\nscale: small\nx: 1\n"}, "yes", "no"),
    ({"conf/scale/fig2/small.yaml": "# @package _global_\n# a note on the budget\nepochs:   20\n"}, "yes", "yes"),
    ({"conf/scale/fig2/small.yaml": "# @package _group_\nepochs: 20\n"}, "yes", "no"),  # the header counts
    ({"conf/scale/fig2/small.yaml": "# @package _global_\nepochs: 20.0\n"}, "yes", "no"),
    ({"conf/model/fcn.yaml": "width: 8\n# wider next time\n"}, "yes", "yes"),  # a comment only
    ({"conf/model/fcn.yaml": "width: 16\n"}, "no", "no"),  # composed at every scale
    ({"conf/scale/README.md": "how scales work\n"}, "yes", "yes"),  # Hydra reads YAML only
    ({"conf/model/new.yaml": "width: 4\n"}, "no", "no"),
    ({"agd/optim.py": "# a comment, but Python\n"}, "no", "no"),
])
def test_a_change_counts_against_the_runs_it_can_change(tmp_path, change, mini, small):
    repo = _repo(tmp_path)
    base = _commit(repo, {"conf/scale/fig2/mini.yaml": "# @package _global_\nepochs: 2\n",
                          "conf/scale/fig2/small.yaml": "# @package _global_\nepochs: 20\n",
                          "conf/scale/small.yaml": "# @package _global_\nscale: small\n",
                          "conf/model/fcn.yaml": "width: 8\n"})
    assert rd.same_code_as_head(base, "small", repo) == "yes"
    _commit(repo, change)
    rd.changed_training_files.cache_clear()
    rd.same_code_as_head.cache_clear()
    assert (rd.same_code_as_head(base, "mini", repo), rd.same_code_as_head(base, "small", repo)) == (mini, small)
    assert rd.same_code_as_head(base, None, repo) == ("yes" if mini == small == "yes" else "no")
    assert rd.same_code_as_head("f" * 40, "small", repo) == "unknown"  # a commit git does not have


def test_no_config_reaches_another_scales_block():
    """What lets a change to one scale's files leave the other scales' evidence standing: Hydra
    reaches conf/scale/ only through defaults lists, and every entry there that names the scale
    group picks it by ${scale} (experiments) or is config.yaml's default `scale: mini`, which the
    command line's scale= replaces."""
    for path in sorted((REPO / "conf").rglob("*.yaml")):
        defaults = (yaml.safe_load(path.read_text()) or {}).get("defaults", [])  # an empty file loads as None
        for entry in defaults:
            items = entry.items() if isinstance(entry, dict) else [(entry, None)]
            for key, value in items:
                key = str(key).removeprefix("override ").strip()
                if "scale" not in key.split("@")[0].split("/"):
                    continue
                where = f"{path.relative_to(REPO)}: {entry}"
                if path == REPO / "conf" / "config.yaml":
                    assert (key, value) == ("scale", "mini"), where
                else:
                    assert path.parent.name == "experiment" and value == "${scale}", where
