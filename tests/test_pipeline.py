"""End to end through the Hydra entry point, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import CONF, run_train

from agd.results import EPOCH_COLUMNS, load_runs


def test_quickstart_trains_offline_and_writes_the_schema(tmp_path):
    runs = tmp_path / "runs"
    # the quickstart config as shipped, shortened from 100 to 25 epochs to keep the suite fast
    args = ["logger=none", "progress=false", "epochs=25"]
    proc = run_train(args, runs)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = runs / "train" / "epochs=25"
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics.columns) == EPOCH_COLUMNS
    assert list(metrics["epoch"]) == list(range(1, 26))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete"
    assert summary["test_acc"] > 0.4  # chance is 0.1
    assert metrics["train_acc"].iloc[-1] > metrics["train_acc"].iloc[0]
    assert (metrics["eta_min"] <= metrics["eta_mean"]).all() and (metrics["eta_mean"] <= metrics["eta_max"]).all()
    assert (metrics["update_mean"] > 0).all()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["optimizer"]["_target_"] == "agd.optim.AGD" and config["model"]["depth"] == 4
    assert "done:" in proc.stdout

    again = run_train(args, runs)  # same command: skipped
    assert again.returncode == 0 and "already complete" in again.stdout


def test_multirun_writes_one_dir_per_job_and_reads_back(tmp_path):
    runs = tmp_path / "runs"
    proc = run_train(["-m", "model.depth=2,3", "epochs=2", "logger=none", "progress=false",
                      "model.width=32"], runs)
    assert proc.returncode == 0, proc.stderr[-2000:]
    df = load_runs(runs)
    assert sorted(df["model.depth"].unique()) == [2, 3]
    assert len(df) == 4 and (df["status"] == "complete").all()
    assert {Path(d).name for d in df["run_dir"]} == {
        "epochs=2,model.depth=2,model.width=32", "epochs=2,model.depth=3,model.width=32"}


def test_baselines_run_with_default_init(tmp_path):
    runs = tmp_path / "runs"
    for args in (["optimizer=sgd", "optimizer.lr=0.1"], ["optimizer=adam", "optimizer.momentum=0"]):
        proc = run_train([*args, "epochs=2", "logger=none", "progress=false"], runs)
        if "momentum" in args[1]:  # Adam has no momentum key: a clear error, exit 2
            assert proc.returncode != 0 and "momentum" in proc.stderr
            continue
        assert proc.returncode == 0, proc.stderr[-2000:]
    df = load_runs(runs)
    assert (df["optimizer._target_"] == "torch.optim.SGD").all() and (df["update_mean"] > 0).all()


@pytest.mark.parametrize(("args", "message"), [
    (["epochs=0"], "epochs must be an integer >= 1, got 0"),
    (["batch_size=-5"], "batch_size must be an integer >= 1"),
    (["device=tpu"], "device must be auto, cpu or cuda"),
    (["model.depth=1"], "model: FCN depth must be an integer >= 2, got 1"),
    (["model.width=0"], "model: FCN width must be an integer >= 1"),
    (["optimizer=sgd", "optimizer.lr=-1"], "optimizer: Invalid learning rate: -1"),
    (["optimizer.gain=0"], "optimizer: AGD's gain must be a positive finite number, got 0."),
    (["data=digits", "data.image_size=4"], "data: digits image_size must be >= 8"),
])
def test_bad_config_fails_before_training_with_one_sentence(tmp_path, args, message):
    proc = run_train([*args, "logger=none", "progress=false"], tmp_path / "runs", timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"error: {message}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "runs").rglob("metrics.csv"))


def test_cuda_request_without_cuda_is_a_clear_error(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    proc = run_train(["device=cuda", "logger=none"], tmp_path / "runs", timeout=120)
    assert proc.returncode == 2 and "CUDA is not available" in proc.stderr


def test_nonfinite_loss_names_epoch_and_step_and_keeps_earlier_rows(tmp_path, compose, monkeypatch, capsys):
    import torch

    import agd.losses
    from experiments import pipeline

    calls = {"n": 0}
    original = agd.losses.SquareLoss.forward

    def poisoned(self, output, target):
        loss = original(self, output, target)
        if torch.is_grad_enabled():  # training steps only, not evaluation
            calls["n"] += 1
            if calls["n"] == 2 * 32 + 5:  # epoch 3 (32 steps per epoch), step 5
                return loss * float("nan")
        return loss

    monkeypatch.setattr(agd.losses.SquareLoss, "forward", poisoned)
    cfg = compose(["epochs=5", "logger=none", "progress=false", "model.width=32"])
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        pipeline.run(cfg, run_dir)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "non-finite at epoch 3, step 5 of 32 (global step 69)" in err
    rows = pd.read_csv(run_dir / "metrics.csv")
    assert list(rows["epoch"]) == [1, 2]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged" and "non-finite at epoch 3" in summary["error"]
    assert "Lower the optimizer's gain (AGD has no learning rate)" in summary["error"]


def test_changed_config_in_same_dir_is_refused(tmp_path, compose, capsys):
    from experiments import pipeline
    run_dir = tmp_path / "run"
    pipeline.run(compose(["epochs=1", "logger=none", "progress=false", "model.width=16"]), run_dir)
    with pytest.raises(SystemExit):
        pipeline.run(compose(["epochs=1", "logger=none", "progress=false", "model.width=32"]), run_dir)
    assert "different config; pass resume=false" in capsys.readouterr().err
    summary = pipeline.run(compose(["epochs=1", "logger=none", "progress=false", "model.width=32",
                                    "resume=false"]), run_dir)
    assert summary["status"] == "complete"


def test_every_config_in_conf_composes(compose):
    groups = [p for p in CONF.iterdir() if p.is_dir() and p.name not in ("hydra", "local")]
    count = 0
    for group in groups:
        for option in sorted(group.glob("*.yaml")):
            cfg = compose([f"{group.name}={option.stem}"], return_hydra_config=True)
            assert cfg.hydra.run.dir
            count += 1
    assert count >= 8


def test_wandb_logger_offline_records_the_rows(tmp_path):
    pytest.importorskip("wandb")
    proc = run_train(["epochs=2", "logger=wandb", "progress=false", "model.width=16"], tmp_path / "runs",
                     timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    offline = list((tmp_path / "runs").rglob("offline-run-*"))
    assert offline, "no offline W&B run directory was written"
    history = list(offline[0].rglob("*.wandb"))
    assert history and history[0].stat().st_size > 0


def test_wandb_online_failure_falls_back_to_offline(tmp_path):
    pytest.importorskip("wandb")
    # a syntactically valid but fake key: the online start cannot reach any server here, or is refused
    proc = run_train(["epochs=1", "logger.mode=online", "logger.init_timeout=3", "progress=false",
                      "model.width=16"], tmp_path / "runs", timeout=240,
                     env_overrides={"WANDB_API_KEY": "0" * 40, "WANDB_MODE": None})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list((tmp_path / "runs").rglob("offline-run-*")), proc.stderr[-3000:]


def test_unexpected_exception_marks_the_run_failed_and_propagates(tmp_path, compose, monkeypatch):
    from experiments import pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("simulated out of memory")

    monkeypatch.setattr(pipeline, "train", broken)
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated out of memory"):
        pipeline.run(compose(["epochs=1", "logger=none", "progress=false", "model.width=16"]), run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["error"]) == ("failed", "RuntimeError: simulated out of memory")


def test_every_run_records_the_precision_it_used(tmp_path, compose):
    from experiments import pipeline

    for amp, precision in (("off", "fp32"), ("bf16", "bf16-autocast")):
        run_dir = tmp_path / amp
        summary = pipeline.run(compose(["epochs=1", "logger=none", "progress=false", "model.width=16",
                                        f"amp={amp}", "device=cpu"]), run_dir)
        facts = json.loads((run_dir / "facts.json").read_text())
        assert (summary["precision"], facts["precision"]) == (precision, precision)
        assert summary["channels_last"] is False and facts["channels_last"] is False  # an FCN
        assert facts["device"] == "cpu" and facts["world_size"] == 1
        df = load_runs(run_dir)
        assert (df["facts.precision"] == precision).all()


def test_the_run_name_leaves_out_the_settings_that_do_not_change_a_run(compose):
    from experiments import build

    cfg = compose(["device=cpu", "progress=false", "model.depth=3"], return_hydra_config=True)
    excluded = list(cfg.hydra.job.config.override_dirname.exclude_keys)
    assert excluded == build.run_name_excluded_keys()
    assert {"device", "progress", "resume", "logger", "tags", "data.root"} <= set(excluded)
    stored = {"device": "cuda", "progress": True, "logger": {"mode": "online"}, "data": {"root": "/a", "seed": 1}}
    moved = {"device": "cpu", "progress": False, "logger": {"mode": "offline"}, "data": {"root": "/b", "seed": 1}}
    assert build.semantic_config(stored) == build.semantic_config(moved)  # the same run, resumable
    assert build.semantic_config(stored) != build.semantic_config({**moved, "data": {"seed": 2}})


def test_a_text_run_writes_samples_and_records_its_floors(tmp_path, compose, capsys):
    from agd.data.text import load as load_text
    from experiments import pipeline

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 80)
    args = ["model=gpt", "data=jargon", "loss=xent", "optimizer=agd_whole_model", f"data.path={corpus}",
            "data.context=16", "data.steps_per_epoch=3", "data.val_windows=4", "model.width=16", "model.depth=1",
            "model.heads=2", "batch_size=8", "epochs=1", "logger=none", "progress=false", "device=cpu",
            "track_update_size=false"]
    run_dir = tmp_path / "run"
    summary = pipeline.run(compose([*args, "sample_chars=60"]), run_dir)
    data = load_text(path=str(corpus), context=16, steps_per_epoch=3, val_windows=4)
    assert (summary["floor_unigram"], summary["floor_bigram"]) == (data.floors()["unigram"], data.floors()["bigram"])
    text = (run_dir / "samples.txt").read_text()
    assert len(text) == 60 and set(text) <= set(data.vocab)
    # sample_chars changes no training: the run without samples is the same run, and a rerun that
    # asks for them writes them from its checkpoint, the same text for the same seed
    (run_dir / "samples.txt").unlink()
    capsys.readouterr()
    assert pipeline.run(compose([*args, "sample_chars=60"]), run_dir)["status"] == "complete"
    assert (run_dir / "samples.txt").read_text() == text
    assert "already complete" in capsys.readouterr().out
    pipeline.run(compose(args), tmp_path / "plain")  # sample_chars defaults to 0: no samples
    assert not (tmp_path / "plain" / "samples.txt").exists()
