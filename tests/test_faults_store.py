"""Faults in what a run directory holds: a checkpoint of another run, one that cannot be loaded,
and damaged summary.json, config.json, facts.json or tables. Each is checked by its outcome: the
run's final status and tables, the one warning on stderr, what was set aside (never deleted), and
what load_runs reads of the tree.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import REPO

from agd.results import load_runs
from experiments import pipeline

QUIET = ["logger=none", "progress=false", "device=cpu"]


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def table(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv").drop(columns="time_s")


def warnings(err: str) -> list[str]:
    assert "Traceback" not in err, err[-3000:]
    return [line for line in err.splitlines() if line.startswith("warning:")]


@pytest.fixture
def finished(compose, tmp_path):
    """finished(name, overrides) -> the directory of a complete 2-epoch run of those overrides."""
    def _finished(name, overrides):
        run_dir = tmp_path / "runs" / "g" / name
        assert pipeline.run(compose(["epochs=2", *QUIET, *overrides]), run_dir)["status"] == "complete"
        return run_dir
    return _finished


def _interrupted(run_dir: Path) -> None:
    """As a run killed before its end leaves itself: status running, its process gone."""
    (run_dir / "summary.json").write_text(json.dumps({"status": "running", "logged_epoch": 1}))


# ------------------------------------------------------------ a checkpoint knows its run

@pytest.mark.parametrize(("theirs", "ours", "differs"), [
    (["model.width=16", "seed=0"], ["model.width=16", "seed=1"], "it holds a run with seed=0, this run has seed=1"),
    (["model.width=32"], ["model.width=64"], "it holds a run with model.width=32, this run has model.width=64"),
])
def test_a_checkpoint_of_another_run_is_set_aside_and_the_run_trains_afresh(
        compose, finished, capsys, theirs, ours, differs):
    other, run_dir = finished("other", theirs), finished("ours", ours)
    reference = table(run_dir)
    foreign = (other / "checkpoint.pt").read_bytes()
    shutil.copy(other / "checkpoint.pt", run_dir / "checkpoint.pt")  # copied over by hand
    _interrupted(run_dir)
    capsys.readouterr()
    assert pipeline.run(compose(["epochs=2", *QUIET, *ours]), run_dir)["status"] == "complete"
    (line,) = warnings(capsys.readouterr().err)
    assert line.startswith(f"warning: {run_dir / 'checkpoint.pt'} belongs to another run ({differs}); set aside "
                           "as checkpoint.pt.foreign-")
    assert line.endswith(", training this run afresh from epoch 0.")
    (aside,) = run_dir.glob("checkpoint.pt.foreign-*")
    assert aside.read_bytes() == foreign  # kept, not deleted
    pd.testing.assert_frame_equal(table(run_dir), reference)  # this run's own numbers, not the other's


def test_a_checkpoint_that_cannot_be_loaded_is_set_aside_and_the_run_trains_afresh(compose, finished, capsys):
    run_dir = finished("ours", ["model.width=16"])
    reference = table(run_dir)
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    adam = torch.optim.Adam([torch.zeros(2, requires_grad=True)])
    checkpoint["optimizer"] = adam.state_dict()  # this run's identity, another optimiser's state
    torch.save(checkpoint, run_dir / "checkpoint.pt")
    _interrupted(run_dir)
    capsys.readouterr()
    assert pipeline.run(compose(["epochs=2", *QUIET, "model.width=16"]), run_dir)["status"] == "complete"
    (line,) = warnings(capsys.readouterr().err)
    assert line.startswith(f"warning: {run_dir / 'checkpoint.pt'} could not be loaded into this run's objects (")
    assert line.endswith(", training this run afresh from epoch 0.")
    pd.testing.assert_frame_equal(table(run_dir), reference)  # built afresh: the same numbers from epoch 0


@pytest.mark.parametrize("change", ["no identity", "other shapes"])
def test_an_old_or_reshaped_checkpoint_is_set_aside(compose, finished, capsys, change):
    run_dir = finished("ours", ["model.width=16"])
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    if change == "no identity":  # written before checkpoints carried their run's identity
        del checkpoint["identity"]
        reason = "was written before checkpoints recorded which run they belong to"
    else:  # the same config, but the model's code changed its tensors since
        name = next(iter(checkpoint["identity"]["shapes"]))
        here = checkpoint["identity"]["shapes"][name]
        checkpoint["identity"]["shapes"][name] = [1, 1]
        reason = f"holds tensors of other shapes than this run's model ({name}: [1, 1] there, {here} here)"
    torch.save(checkpoint, run_dir / "checkpoint.pt")
    _interrupted(run_dir)
    capsys.readouterr()
    assert pipeline.run(compose(["epochs=2", *QUIET, "model.width=16"]), run_dir)["status"] == "complete"
    (line,) = warnings(capsys.readouterr().err)
    assert line.startswith(f"warning: {run_dir / 'checkpoint.pt'} {reason}; set aside as checkpoint.pt.foreign-")


def test_a_failure_while_resuming_leaves_a_status_that_says_why(compose, finished, monkeypatch, capsys):
    run_dir = finished("ours", ["model.width=16"])
    _interrupted(run_dir)

    def full_disk(self, rows, step_rows):
        raise OSError(28, "No space left on device", str(self.path / "metrics.csv"))

    monkeypatch.setattr(pipeline.RunStore, "write_tables", full_disk)
    with pytest.raises(SystemExit) as stop:
        pipeline.run(compose(["epochs=2", *QUIET, "model.width=16"]), run_dir)
    assert stop.value.code == 1
    state = summary(run_dir)
    assert state["status"] == "failed" and state["error"].startswith("no space left on the device while writing ")


# ------------------------------------------------------------ damaged files: skipped, then repaired

def _damage(run_dir: Path, name: str, how: str) -> None:
    path = run_dir / name
    if how == "empty":
        path.write_bytes(b"")
    elif how == "torn":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:  # overwritten with something else
        path.write_bytes(b"\x00\x9f binary \xff\n")


DAMAGE = [("summary.json", "empty"), ("config.json", "torn"), ("facts.json", "empty"), ("metrics.csv", "other")]


def test_load_runs_skips_each_damaged_run_with_its_reason_and_reads_the_rest(finished):
    good = finished("good", ["model.width=16"])
    damaged = {}
    for i, (name, how) in enumerate(DAMAGE):
        run_dir = finished(f"bad{i}", ["model.width=16", f"seed={i + 1}"])
        _damage(run_dir, name, how)
        damaged[str(run_dir)] = name
    df = load_runs(good.parent)
    assert set(df["run_dir"]) == {str(good)} and list(df["epoch"]) == [1, 2]
    skipped = df.attrs["skipped"]
    assert set(skipped) == set(damaged)
    for run_dir, name in damaged.items():
        assert skipped[run_dir].startswith(f"{name} is unreadable ("), skipped[run_dir]


@pytest.mark.parametrize(("name", "how"), DAMAGE)
def test_a_rerun_repairs_a_damaged_file_with_one_warning(compose, finished, capsys, name, how):
    overrides = ["model.width=16"]
    run_dir = finished("ours", overrides)
    reference = table(run_dir)
    _damage(run_dir, name, how)
    damaged = (run_dir / name).read_bytes()
    capsys.readouterr()
    assert pipeline.run(compose(["epochs=2", *QUIET, *overrides]), run_dir)["status"] == "complete"
    (line,) = warnings(capsys.readouterr().err)
    assert line.startswith(f"warning: {run_dir / name} ") and f"set aside as {name}.corrupt" in line
    assert (run_dir / f"{name}.corrupt").read_bytes() == damaged
    assert summary(run_dir)["status"] == "complete"
    pd.testing.assert_frame_equal(table(run_dir), reference)
    assert load_runs(run_dir).attrs["skipped"] == {}


def test_agd_imports_torch_only(tmp_path):
    code = ("import sys\nimport agd, agd.results, agd.data, agd.train, agd.distributed\n"
            "print(sorted(m for m in ('pandas', 'hydra', 'omegaconf', 'wandb', 'matplotlib') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
