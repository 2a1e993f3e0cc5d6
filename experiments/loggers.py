"""Experiment loggers. W&B is imported lazily and can never block or break a run."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

# results-schema column (agd.results EPOCH_COLUMNS, STEP_COLUMNS) -> W&B key, one map per kind of
# row. scripts/pull_wandb.py reads W&B runs back through the inverse (`wandb_columns`), so a key is
# named here once for both directions.
WANDB_KEYS = {
    "train_loss": "train/loss", "train_acc": "train/acc",
    "test_loss": "test/loss", "test_acc": "test/acc",
    "eta_mean": "agd/eta_mean", "eta_min": "agd/eta_min", "eta_max": "agd/eta_max",
    "update_mean": "agd/update_mean", "update_min": "agd/update_min",
    "update_max": "agd/update_max", "time_s": "time_s", "epoch": "epoch",
    "step": "train/step",  # optimiser steps taken by the end of the epoch
}
WANDB_STEP_KEYS = {
    "epoch": "step/epoch", "step": "step/step", "train_loss": "step/train_loss",
    "train_acc": "step/train_acc", "eta": "step/eta", "update": "step/update",
}


def wandb_columns(keys: dict[str, str]) -> dict[str, str]:
    """The inverse of a key map: W&B key -> results-schema column."""
    return {key: column for column, key in keys.items()}


class NullLogger:
    """Logs nothing (tests, or when files alone are wanted)."""

    run_id: str | None = None

    def start(self, config: dict, run_dir: str, group: str | None = None, tags=(),
              run_id: str | None = None) -> str | None:
        return None

    def log(self, row: dict, step: int) -> None:
        pass

    def log_steps(self, rows: list[dict]) -> None:
        pass

    def finish(self, exit_code: int = 0) -> None:
        pass


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


class WandbLogger(NullLogger):
    """Mirror the metric rows to W&B under train/, test/ and agd/ keys."""

    def __init__(self, project: str = "agd-reproduction", entity: str | None = None,
                 mode: str | None = None, init_timeout: float = 20):
        self.project, self.entity, self.init_timeout = project, entity, init_timeout
        self.mode = mode or os.environ.get("WANDB_MODE") or ("online" if _has_api_key() else "offline")
        self.run = None

    def start(self, config, run_dir, group=None, tags=(), run_id=None):
        try:
            import wandb
        except ImportError:
            log.warning("wandb is not installed; logging to files only.")
            return None
        kwargs = dict(project=self.project, entity=self.entity, config=config, dir=run_dir,
                      group=group, tags=list(tags), id=run_id, resume="allow" if run_id else None,
                      reinit="finish_previous",
                      settings=wandb.Settings(init_timeout=self.init_timeout, silent=True,
                                              console="off"))
        try:
            self.run = wandb.init(mode=self.mode, **kwargs)
        except Exception as err:  # noqa: BLE001 - any failure of an optional integration
            if self.mode == "offline":
                log.warning("W&B could not start (%s); logging to files only.", err)
                return None
            log.warning("W&B online start failed (%s); continuing offline.", err)
            try:
                self.run = wandb.init(mode="offline", **kwargs)
            except Exception as err2:  # noqa: BLE001
                log.warning("W&B offline start failed too (%s); logging to files only.", err2)
                return None
        self.run.define_metric("epoch")
        for key in WANDB_KEYS.values():
            if key != "epoch":
                self.run.define_metric(key, step_metric="epoch")
        return self.run.id

    def log(self, row, step):
        if self.run is not None:
            self.run.log({WANDB_KEYS[k]: v for k, v in row.items() if k in WANDB_KEYS})

    def log_steps(self, rows):
        if self.run is not None:
            for row in rows:
                self.run.log({WANDB_STEP_KEYS[k]: v for k, v in row.items() if k in WANDB_STEP_KEYS})

    def finish(self, exit_code=0):
        if self.run is not None:
            try:
                self.run.finish(exit_code=exit_code)
            finally:
                self.run = None
