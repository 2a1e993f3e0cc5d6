"""Shared fixtures: every test writes runs into its own tmp dir and never talks to W&B online."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


def pytest_configure(config):
    """Under pytest-xdist (pyproject's `-n auto`: one worker a core) each worker takes one torch
    thread, and so do the runs its tests start, instead of every process taking every core. Tests
    that set their own thread count still do."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
        os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("AGD_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture
def compose():
    """compose(overrides) -> the composed DictConfig (no hydra node), as the entry point sees it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from experiments.build import register_resolvers

    register_resolvers()

    def _compose(overrides=(), return_hydra_config=False):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return hydra_compose("config", overrides=list(overrides),
                                 return_hydra_config=return_hydra_config)

    return _compose


def run_train(args, runs_dir, timeout=300, env_overrides=None):
    """Run `python experiments/train.py ARGS` as a user would; returns CompletedProcess.
    env_overrides: variables to set, or to remove where the value is None."""
    env = dict(os.environ, AGD_RUNS_DIR=str(runs_dir), WANDB_MODE="offline", PYTHONUNBUFFERED="1")
    for key, value in (env_overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run([sys.executable, str(REPO / "experiments" / "train.py"), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def seeded():
    torch.manual_seed(0)
    return torch.Generator().manual_seed(0)
