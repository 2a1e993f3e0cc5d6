"""Turn a composed config into objects, run agd.train, and keep the run directory current.

Kept apart from experiments/train.py (the thin Hydra entry point) so that tests, the reproduce
driver and the SLURM launcher all call the same code.
"""

from __future__ import annotations

import inspect
import io
import logging
import os
import sys
import time
from pathlib import Path

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from agd.data import make_loaders
from agd.init import init_weights
from agd.results import (
    CONFIG_FILE,
    EPOCH_COLUMNS,
    METRICS_FILE,
    STEP_COLUMNS,
    STEPS_FILE,
    SUMMARY_FILE,
    atomic_write_bytes,
    read_json,
    write_json,
    write_rows,
)
from agd.train import train

log = logging.getLogger("agd")
REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT_FILE = "checkpoint.pt"
# keys that do not change what a run computes: a resumed run may differ in these
NON_SEMANTIC_KEYS = ("logger", "progress", "device", "resume", "tags")


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


def runs_dir() -> str:
    return os.environ.get("AGD_RUNS_DIR") or str(REPO_ROOT / "runs")


def run_name(override_dirname: str) -> str:
    return override_dirname.replace("/", "_") or "default"


def register_resolvers() -> None:
    for name, fn in (("runs_dir", runs_dir), ("run_name", run_name)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def _check_int(cfg: DictConfig, key: str, low: int) -> None:
    value = cfg.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{key} must be an integer >= {low}, got {value!r}.")


def validate(cfg: DictConfig) -> None:
    """Fail before any work on a top-level value that cannot work."""
    _check_int(cfg, "epochs", 1)
    _check_int(cfg, "batch_size", 1)
    _check_int(cfg, "seed", 0)
    _check_int(cfg, "step_rows", 0)
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {cfg.device!r}.")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda was asked for but CUDA is not available; use device=auto.")
    if cfg.optimizer.get("init") not in ("paper", "default"):
        raise ConfigError(f"optimizer.init must be 'paper' or 'default', got {cfg.optimizer.get('init')!r}.")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _build(group: str, node: DictConfig, **extra):
    """instantiate() with the constructor's own error surfaced, prefixed by the config group."""
    try:
        return instantiate(node, **extra)
    except InstantiationException as err:
        cause = err.__cause__ or err
        raise ConfigError(f"{group}: {cause}") from cause
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{group}: {err}") from err


def build_model(node: DictConfig, data) -> torch.nn.Module:
    """Pass the dataset's shape to whichever of in_dim/out_dim/in_channels/num_classes/
    input_shape the model's constructor takes."""
    params = inspect.signature(get_class(node._target_)).parameters
    facts = {"in_dim": data.in_dim, "out_dim": data.num_classes, "num_classes": data.num_classes,
             "in_channels": data.input_shape[0], "input_shape": data.input_shape}
    return _build("model", node, **{k: v for k, v in facts.items() if k in params})


def build_optimizer(node: DictConfig, model: torch.nn.Module):
    kwargs = {k: v for k, v in node.items() if k not in ("_target_", "init")}
    target = OmegaConf.create({"_target_": node._target_, **kwargs})
    return _build("optimizer", target, params=model.parameters())


def semantic_config(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in NON_SEMANTIC_KEYS}


def save_checkpoint(run_dir: Path, state: dict) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(run_dir / CHECKPOINT_FILE, buffer.getvalue())


def run(cfg: DictConfig, run_dir: str | Path, multirun: bool = False) -> dict:
    """Run one training job in `run_dir`. Returns the summary dict. User errors exit with
    status 2 in a single run; in a sweep they mark the run failed and let the others go on."""
    run_dir = Path(run_dir)
    logger = None
    try:
        validate(cfg)
        summary = _run(cfg, run_dir)
        return summary
    except (ConfigError, FileNotFoundError, FloatingPointError) as err:
        message = str(err)
        if isinstance(err, FloatingPointError) and not message.startswith("the training"):
            message = f"training stopped: {message}"
        write_json(run_dir / SUMMARY_FILE, {"status": "failed", "error": message})
        print(f"error: {message}", file=sys.stderr)
        if multirun:
            return {"status": "failed", "error": message}
        sys.exit(2)
    finally:
        if logger is not None:
            logger.finish()


def _run(cfg: DictConfig, run_dir: Path) -> dict:
    config = OmegaConf.to_container(cfg, resolve=True)
    ckpt_path = run_dir / CHECKPOINT_FILE
    checkpoint = None
    if cfg.resume and (run_dir / CONFIG_FILE).exists():
        stored = read_json(run_dir / CONFIG_FILE)
        if semantic_config(stored) != semantic_config(config):
            raise ConfigError(
                f"{run_dir} already holds a run with a different config; pass resume=false to "
                "overwrite it or choose another directory.")
        summary_path = run_dir / SUMMARY_FILE
        if summary_path.exists() and read_json(summary_path).get("status") == "complete":
            summary = read_json(summary_path)
            print(f"already complete: {run_dir} (pass resume=false to train again)")
            return summary
        if ckpt_path.exists():
            checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)

    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    data = _build("data", cfg.data)
    model = build_model(cfg.model, data)
    if cfg.optimizer.init == "paper":
        init_weights(model, torch.Generator().manual_seed(cfg.seed))
    model.to(device)
    optimizer = build_optimizer(cfg.optimizer, model)
    loss_fn = _build("loss", cfg.loss, num_classes=data.num_classes)
    train_loader, test_loader = make_loaders(data, cfg.batch_size, seed=cfg.seed, device=device)

    rows, step_rows, start_epoch, time_offset, wandb_id = [], [], 0, 0.0, None
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        torch.set_rng_state(checkpoint["torch_rng"])
        rows, step_rows = checkpoint["rows"], checkpoint["step_rows"]
        start_epoch, wandb_id = checkpoint["epoch"], checkpoint.get("wandb_id")
        time_offset = rows[-1]["time_s"] if rows else 0.0
        log.info("resuming %s from epoch %d", run_dir, start_epoch)
    else:
        for stale in (METRICS_FILE, STEPS_FILE, CHECKPOINT_FILE):
            (run_dir / stale).unlink(missing_ok=True)
    write_json(run_dir / CONFIG_FILE, config)
    write_json(run_dir / SUMMARY_FILE, {"status": "running"})

    logger = _build("logger", cfg.logger)
    wandb_id = logger.start(config, str(run_dir), group=cfg.group, tags=cfg.tags, run_id=wandb_id)
    exit_code = 1
    try:
        def on_steps(new_rows):
            step_rows.extend(new_rows)
            write_rows(run_dir / STEPS_FILE, step_rows, STEP_COLUMNS)
            logger.log_steps(new_rows)

        def on_epoch(row):
            rows.append(row)
            save_checkpoint(run_dir, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "epoch": row["epoch"], "rows": rows, "step_rows": step_rows,
                "torch_rng": torch.get_rng_state(), "wandb_id": wandb_id})
            write_rows(run_dir / METRICS_FILE, rows, EPOCH_COLUMNS)
            logger.log(row, step=row["epoch"])

        started = time.perf_counter()
        train(model, optimizer, train_loader, test_loader, loss_fn, cfg.epochs,
              start_epoch=start_epoch, step_rows=cfg.step_rows, time_offset=time_offset,
              track_update_size=cfg.track_update_size, on_epoch=on_epoch,
              on_steps=on_steps if cfg.step_rows else None, progress=cfg.progress)
        final = rows[-1]
        summary = {"status": "complete", "epochs": final["epoch"],
                   "train_loss": final["train_loss"], "train_acc": final["train_acc"],
                   "test_loss": final["test_loss"], "test_acc": final["test_acc"],
                   "time_s": final["time_s"], "wall_s_this_session": time.perf_counter() - started,
                   "run_dir": str(run_dir)}
        write_json(run_dir / SUMMARY_FILE, summary)
        print(f"done: {run_dir} | epochs {final['epoch']} | train acc {final['train_acc']:.4f} | "
              f"test acc {final['test_acc']:.4f} | {final['time_s']:.1f} s")
        exit_code = 0
        return summary
    finally:
        logger.finish(exit_code)
