"""Faults and bad inputs a new user meets, each checked by its outcome: what is on disk, the run's
status, the one sentence on stderr and the exit status.

The rules under test (experiments/run_store.py): a run directory changes only when a run in it
makes progress; one process owns a run directory at a time; what the checkpoint can rebuild is
rebuilt; every exit of a run leaves a final status that says why.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from conftest import REPO, run_train

from agd.results import load_runs
from experiments import build, pipeline
from experiments.run_store import RunBusy, RunStore

QUIET = ["logger=none", "progress=false"]


def snapshot(run_dir: Path) -> dict:
    """Every file below run_dir (hidden ones too) with its bytes and modification time."""
    return {str(p.relative_to(run_dir)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def one_error_line(stderr: str) -> str:
    """The last line of stderr, after checking there is no traceback."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    return lines[-1]


def table_without_time(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv").drop(columns="time_s")


# ------------------------------------------------------------ 1. a finished run is never demoted

def test_refused_reruns_leave_a_finished_run_byte_for_byte(tmp_path):
    runs = tmp_path / "runs"
    assert run_train(["epochs=2", *QUIET], runs).returncode == 0
    run_dir = runs / "train" / "epochs=2"
    before = snapshot(run_dir)
    assert summary(run_dir)["status"] == "complete"
    # `device` and `logger` are left out of the directory name, so these all land on the finished run
    refusals = [(["device=gpu"], "error: device must be auto, cpu or cuda, got 'gpu'."),
                (["logger=nonexistent"], "error: In 'config': Could not find 'logger/nonexistent'")]
    if not torch.cuda.is_available():
        refusals.append((["device=cuda"], "error: device=cuda was asked for but CUDA is not available"))
    for extra, message in refusals:
        proc = run_train(["epochs=2", *QUIET, *extra], runs, timeout=120)
        assert proc.returncode == 2, (extra, proc.stderr[-2000:])
        assert one_error_line(proc.stderr).startswith(message), proc.stderr[-2000:]
        assert snapshot(run_dir) == before, f"{extra} changed the finished run"
    assert sorted(p.name for p in (runs / "train").iterdir()) == ["epochs=2"]  # no stray directory


def test_a_changed_config_is_refused_without_touching_the_run(compose, tmp_path, capsys):
    run_dir = tmp_path / "run"
    pipeline.run(compose(["epochs=1", *QUIET, "model.width=16"]), run_dir)
    before = snapshot(run_dir)
    with pytest.raises(SystemExit) as stop:  # as if conf/model/fcn.yaml had been edited since
        pipeline.run(compose(["epochs=1", *QUIET, "model.width=32"]), run_dir)
    assert stop.value.code == 2
    assert f"error: {run_dir} already holds a run with a different config" in capsys.readouterr().err
    assert snapshot(run_dir) == before


# ------------------------------------------------------------ 4. rebuilt from the checkpoint

def test_lost_metrics_are_read_from_the_checkpoint_and_rebuilt_by_a_rerun(compose, tmp_path, capsys):
    runs = tmp_path / "runs"
    run_dir = runs / "g" / "done"
    cfg = compose(["epochs=2", *QUIET, "model.width=16", "step_rows=3"])
    pipeline.run(cfg, run_dir)
    metrics, steps = (run_dir / "metrics.csv").read_text(), (run_dir / "steps.csv").read_text()
    (run_dir / "metrics.csv").unlink()
    (run_dir / "steps.csv").unlink()
    failed = runs / "g" / "refused"  # a sweep job refused before training: a status, no config
    failed.mkdir(parents=True)
    (failed / "summary.json").write_text(json.dumps({"status": "failed", "error": "model: bad depth"}))
    empty = runs / "g" / "empty"  # a config and nothing else
    empty.mkdir()
    (empty / "config.json").write_text(json.dumps({"seed": 0}))

    df = load_runs(runs)
    assert list(df["epoch"]) == [1, 2] and (df["run_dir"] == str(run_dir)).all()
    assert df.attrs["skipped"] == {
        str(empty): "no metrics.csv and no checkpoint.pt holding its rows",
        str(failed): "no config.json (status failed: model: bad depth)"}
    assert list(load_runs(runs, steps=True)["step"]) == [1, 2, 3]
    assert not (run_dir / "metrics.csv").exists()  # reading changes nothing

    capsys.readouterr()
    assert pipeline.run(cfg, run_dir)["status"] == "complete"
    out = capsys.readouterr().out
    assert f"rebuilt metrics.csv and steps.csv of {run_dir} from its checkpoint" in out
    assert "already complete" in out
    assert (run_dir / "metrics.csv").read_text() == metrics and (run_dir / "steps.csv").read_text() == steps


# ------------------------------------------------------------ 5 and 7. one owner; every exit says why

def _start(args, runs):
    env = dict(os.environ, AGD_RUNS_DIR=str(runs), WANDB_MODE="offline", PYTHONUNBUFFERED="1",
               OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(REPO / "experiments" / "train.py"), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(proc, run_dir: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not (run_dir / "checkpoint.pt").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no checkpoint appeared: {proc.communicate()[1][-2000:]}")
        time.sleep(0.05)


LONG = ["epochs=100000", *QUIET, "model.width=64", "device=cpu"]
LONG_RUN = "epochs=100000,model.width=64"


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 75), (signal.SIGINT, 130)])
def test_a_second_process_is_refused_and_a_signal_leaves_status_interrupted(tmp_path, sig, code):
    runs = tmp_path / "runs"
    run_dir = runs / "train" / LONG_RUN
    owner = _start(LONG, runs)
    try:
        _wait_for_checkpoint(owner, run_dir)
        second = run_train(LONG, runs, timeout=120)
        assert second.returncode == 2, second.stderr[-2000:]
        assert one_error_line(second.stderr) == (
            f"error: {run_dir} is being trained by another process (pid {owner.pid}); wait for it to "
            "finish or stop it, then rerun this command.")
        assert owner.poll() is None and summary(run_dir)["status"] == "running"
        owner.send_signal(sig)
        _, err = owner.communicate(timeout=120)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.communicate()
    assert owner.returncode == code, err[-2000:]
    line = one_error_line(err)
    assert line.startswith(f"interrupted: {run_dir} stopped by {sig.name} after epoch ")
    assert line.endswith("; rerun the same command to resume from its last checkpoint.")
    state = summary(run_dir)
    assert state["status"] == "interrupted" and sig.name in state["error"]
    epochs_done = torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"]
    assert f"after epoch {epochs_done};" in line and len(pd.read_csv(run_dir / "metrics.csv")) == epochs_done
    assert not list(run_dir.glob(".*.tmp"))
    with RunStore(run_dir).owned():  # the dead owner's lock went with it
        pass


def test_a_lock_held_by_a_killed_process_is_free_again(tmp_path):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom experiments.run_store import RunStore\n"
        f"with RunStore({str(run_dir)!r}).owned():\n    print('held', flush=True)\n    time.sleep(600)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunBusy, match=f"pid {holder.pid}"):
            with RunStore(run_dir).owned():
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with RunStore(run_dir).owned():
        pass


def test_a_busy_run_in_a_sweep_is_reported_busy_and_untouched(compose, tmp_path, capsys):
    run_dir = tmp_path / "run"
    cfg = compose(["epochs=1", *QUIET, "model.width=16"])
    with RunStore(run_dir).owned():  # another process's run, as far as run() can tell (flock is per open file)
        before = snapshot(run_dir)
        result = pipeline.run(cfg, run_dir, multirun=True)
        assert result["status"] == "busy" and "being trained by another process" in result["error"]
        assert snapshot(run_dir) == before
    assert capsys.readouterr().err.startswith(f"error: {run_dir} is being trained by another process")


def test_a_full_disk_leaves_status_failed_one_line_and_no_temp_files(compose, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    cfg = compose(["epochs=3", *QUIET, "model.width=16"])
    full = {"on": False}
    real_fsync, real_save = os.fsync, RunStore.save_checkpoint

    def fsync(fd):
        if full["on"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    def save_then_fill_the_disk(self, state):
        real_save(self, state)
        full["on"] = True  # epoch 1's checkpoint was the last file that fitted

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(RunStore, "save_checkpoint", save_then_fill_the_disk)
    with pytest.raises(SystemExit) as stop:
        pipeline.run(cfg, run_dir)
    assert stop.value.code == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("error: no space left on the device while writing ")
    assert line.endswith("free some space and rerun the same command to resume.")
    state = summary(run_dir)
    assert state["status"] == "failed" and state["error"].startswith("no space left on the device")
    assert not list(run_dir.glob(".*.tmp"))
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] == 1

    monkeypatch.setattr(os, "fsync", real_fsync)  # space freed: the same command resumes
    monkeypatch.setattr(RunStore, "save_checkpoint", real_save)
    assert pipeline.run(cfg, run_dir)["status"] == "complete"
    assert list(pd.read_csv(run_dir / "metrics.csv")["epoch"]) == [1, 2, 3]


# ------------------------------------------------------------ 6. a torn checkpoint

def test_a_truncated_checkpoint_is_set_aside_and_the_run_trains_again(compose, tmp_path, capsys):
    run_dir = tmp_path / "run"
    cfg = compose(["epochs=2", *QUIET, "model.width=16"])
    pipeline.run(cfg, run_dir)
    reference = table_without_time(run_dir)
    checkpoint = run_dir / "checkpoint.pt"
    torn = checkpoint.read_bytes()[: checkpoint.stat().st_size // 2]
    checkpoint.write_bytes(torn)
    (run_dir / "summary.json").write_text(json.dumps({"status": "running", "logged_epoch": 2}))
    capsys.readouterr()
    assert pipeline.run(cfg, run_dir)["status"] == "complete"
    warning = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and warning[0].startswith(f"warning: {checkpoint} is unreadable (")
    assert warning[0].endswith("); set aside as checkpoint.pt.corrupt, training this run again from epoch 0.")
    assert (run_dir / "checkpoint.pt.corrupt").read_bytes() == torn
    pd.testing.assert_frame_equal(table_without_time(run_dir), reference)


# ------------------------------------------------------------ 8. a sweep's exit status

def test_a_sweep_whose_jobs_fail_exits_1(tmp_path):
    runs = tmp_path / "runs"
    proc = run_train(["-m", "model.depth=0,1", "epochs=1", *QUIET], runs, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert one_error_line(proc.stderr).startswith("sweep: 2 of 2 jobs did not complete; first: ")
    for depth in (0, 1):
        state = summary(runs / "train" / f"epochs=1,model.depth={depth}")
        assert state == {"status": "failed", "error": f"model: FCN depth must be an integer >= 2, got {depth}."}


def test_a_sweep_whose_runs_diverge_exits_3_and_they_stay_results(tmp_path):
    runs = tmp_path / "runs"
    proc = run_train(["-m", "optimizer=sgd", "optimizer.lr=0.1,1e6", "epochs=1", *QUIET, "group=fig2_mini"],
                     runs, timeout=300)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert one_error_line(proc.stderr) == (
        "sweep: 1 of 2 jobs diverged (a non-finite loss: each run's summary.json says where) and none failed")
    # the reproduce driver tells a diverged lr-sweep point (a result) from a failure by this status
    diverged = summary(runs / "fig2_mini" / "epochs=1,optimizer.lr=1000000.0,optimizer=sgd")
    assert diverged["status"] == "diverged" and "non-finite" in diverged["error"]
    assert "Lower the learning rate" in diverged["error"]
    assert summary(runs / "fig2_mini" / "epochs=1,optimizer.lr=0.1,optimizer=sgd")["status"] == "complete"
    assert list(load_runs(runs)["optimizer.lr"].unique()) == [0.1]  # the diverged run has no rows to plot


# ------------------------------------------------------------ 9. one sentence and exit 2

def test_overrides_too_long_for_a_file_name_get_a_short_deterministic_name(tmp_path):
    assert build.run_name("epochs=2,model.depth=3") == "epochs=2,model.depth=3"  # names that fit are kept
    assert build.run_name("") == "default"
    long = ",".join(f"+extra{i}={'v' * 40}" for i in range(8))
    name = build.run_name(long)
    assert len(name.encode()) <= 255 and name.startswith("+extra0=") and name == build.run_name(long)
    assert name != build.run_name(long + "x")
    overrides = [f"+extra{i}={'v' * 40}" for i in range(8)]
    runs = tmp_path / "runs"
    proc = run_train(["epochs=1", *QUIET, "model.width=16", *overrides], runs)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = list((runs / "train").iterdir())
    assert run_dir.name == build.run_name(",".join(sorted(["epochs=1", "model.width=16", *overrides])))
    facts = json.loads((run_dir / "facts.json").read_text())
    assert set(overrides) <= set(facts["overrides"])
    assert (facts["precision"], facts["channels_last"], facts["device"]) == ("fp32", False, "cpu")
    assert summary(run_dir)["precision"] == "fp32"
    again = run_train(["epochs=1", *QUIET, "model.width=16", *overrides], runs)
    assert again.returncode == 0 and "already complete" in again.stdout


READ_ONLY = """
import errno, os, runpy, sys
root, real_mkdir = os.environ["AGD_RUNS_DIR"], os.mkdir
def mkdir(path, *args, **kwargs):
    if str(path).startswith(root):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
    return real_mkdir(path, *args, **kwargs)
os.mkdir = mkdir
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("sweep", [False, True])
def test_a_read_only_runs_root_is_one_sentence(tmp_path, sweep):
    runs = tmp_path / "runs"
    env = dict(os.environ, AGD_RUNS_DIR=str(runs), WANDB_MODE="offline")
    proc = subprocess.run([sys.executable, "-c", READ_ONLY, str(REPO / "experiments" / "train.py"),
                           *(["-m"] if sweep else []), "epochs=1", *QUIET], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = one_error_line(proc.stderr)
    assert line.startswith(f"error: cannot create {runs}") and "(Read-only file system)" in line
    assert line.endswith("set AGD_RUNS_DIR to a folder you can write, with room to spare.")


@pytest.mark.parametrize(("args", "message"), [
    (["model=nonexistent"], "error: In 'config': Could not find 'model/nonexistent'; choose one of: fcn,"),
    (["epochs==2"], "error: Error parsing override 'epochs==2';"),
    (["model.depth=[1,"], "error: no viable alternative at input '[1,';"),
    (["optimizer.lr=0.1"], "error: Could not override 'optimizer.lr'. To append to your config use"),
    (["optimizer=sgd", "optimizer.lr=abc"], "error: optimizer.lr must be a number, got 'abc'."),
    (["model=vgg16", "data=mnist1d"], "error: model: VGG16 "),
])
def test_bad_commands_are_one_sentence_and_exit_2(tmp_path, args, message):
    proc = run_train([*args, "epochs=1", *QUIET], tmp_path / "runs", timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert one_error_line(proc.stderr).startswith(message), proc.stderr[-2000:]
    assert not list((tmp_path / "runs").rglob("*.json"))


class _TinyConv(torch.nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.head = torch.nn.Linear(4, classes)

    def forward(self, x):
        return self.head(self.conv(x).mean(dim=(2, 3)))


def test_a_model_that_cannot_take_the_data_is_refused_at_build_time():
    signals = SimpleNamespace(name="mnist1d", input_shape=(40,), num_classes=10)
    with pytest.raises(build.ConfigError) as refused:
        build.check_fits(_TinyConv(), signals)
    assert str(refused.value).startswith("model: _TinyConv cannot take mnist1d inputs of shape (40,) (")
    assert str(refused.value).endswith("a convolutional network needs images (channels, height, width), "
                                       "e.g. data=digits or data=cifar10.")
    images = SimpleNamespace(name="digits", input_shape=(3, 8, 8), num_classes=10)
    model = _TinyConv(classes=7)
    with pytest.raises(build.ConfigError, match=r"outputs of shape \(7,\) for digits, which has 10 classes"):
        build.check_fits(model, images)
    assert model.training  # the check leaves the model as it found it
    build.check_fits(_TinyConv(), images)


def test_agd_blowing_up_names_its_gain_not_a_learning_rate(tmp_path):
    proc = run_train(["optimizer.gain=1e30", "epochs=2", *QUIET, "model.width=16"], tmp_path / "runs")
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = one_error_line(proc.stderr)
    assert line.startswith("error: training stopped: the training loss became non-finite at epoch 1")
    assert line.endswith("Lower the optimizer's gain (AGD has no learning rate) or check the data.")
    (run_dir,) = list((tmp_path / "runs" / "train").iterdir())
    assert summary(run_dir)["status"] == "diverged"


def test_a_corrupt_cifar_batch_is_one_sentence(tmp_path):
    from datafiles import write_cifar10

    root = tmp_path / "data"
    folder = write_cifar10(root)
    batch = folder / "data_batch_1"
    batch.write_bytes(batch.read_bytes()[:100])
    proc = run_train(["data=cifar10", f"data.root={root}", "data.download=false", "model=vgg16",
                      "epochs=1", *QUIET], tmp_path / "runs", timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = one_error_line(proc.stderr)
    assert line.startswith(f"error: data: {batch} ") and "pickle data was truncated" in line


def test_pull_wandb_without_an_api_key_is_one_sentence(tmp_path):
    pytest.importorskip("wandb")
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"}
    env.update(NETRC=str(tmp_path / "no-netrc"), WANDB_CONFIG_DIR=str(tmp_path / "wandb-config"))
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "pull_wandb.py"), "project=anything",
                           f"out={tmp_path / 'pulled'}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = one_error_line(proc.stderr)
    assert line.startswith("error: W&B has no API key here (") and "wandb login" in line
    assert not (tmp_path / "pulled").exists()


# ------------------------------------------------------------ 10. a sweep is checked before it launches

def test_a_sweep_with_one_bad_value_launches_nothing_and_exits_2(tmp_path):
    runs = tmp_path / "runs"
    proc = run_train(["-m", "epochs=1,abc", "model.width=8", *QUIET], runs, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert one_error_line(proc.stderr) == (
        "error: epochs must be an integer >= 1, got 'abc' (sweep job #1: epochs=abc model.width=8 logger=none "
        "progress=False); none of the 2 jobs was launched.")
    assert not runs.exists()  # no run directory, no multirun.yaml, no outcomes folder


def test_validate_overrides_checks_one_job_without_creating_anything(tmp_path):
    build.validate_overrides(["epochs=2", "model.width=8"])
    with pytest.raises(build.ConfigError, match=r"^epochs must be an integer >= 1, got 'abc'\.$"):
        build.validate_overrides(["epochs=abc"])
    with pytest.raises(build.ConfigError, match=r"^In 'config': Could not find 'model/nonexistent'; choose one of"):
        build.validate_overrides(["model=nonexistent"])
    with pytest.raises(build.ConfigError, match=r"^optimizer.lr must be a number, got 'x'\.$"):
        build.validate_overrides(["experiment=fig2", "scale=mini", "optimizer=sgd", "optimizer.lr=x"])
    assert not (tmp_path / "runs").exists()
