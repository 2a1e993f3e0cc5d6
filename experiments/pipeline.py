"""Turn a composed config into objects, run agd.train, and keep the run directory current.

Kept apart from experiments/train.py (the thin Hydra entry point) so that tests, the reproduce
driver and the SLURM launcher all call the same code.
"""

from __future__ import annotations

import inspect
import io
import logging
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from agd import distributed
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
from experiments.loggers import NullLogger

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
    if _amp_setting(cfg) not in ("auto", "bf16", "off"):
        raise ConfigError(f"amp must be auto, bf16 or off, got {cfg.get('amp')!r}.")
    if cfg.get("channels_last", "auto") not in ("auto", True, False):
        raise ConfigError(f"channels_last must be auto, true or false, got {cfg.get('channels_last')!r}.")
    if not isinstance(cfg.get("compile", False), bool):
        raise ConfigError(f"compile must be true or false, got {cfg.get('compile')!r}.")


def _amp_setting(cfg: DictConfig) -> str:
    amp = cfg.get("amp", "off")
    return "off" if amp is False else amp  # YAML reads a bare `off` as false


def speed_settings(cfg: DictConfig, model: torch.nn.Module, device: torch.device):
    """(autocast dtype or None, channels_last) for this model on this device: `auto` turns both
    on for a CNN on CUDA only. AGD's norms and η are fp32 either way (the weights and their
    gradients stay fp32 under autocast)."""
    cnn = any(p.dim() == 4 for p in model.parameters())
    auto = cnn and device.type == "cuda"
    amp = _amp_setting(cfg)
    amp_dtype = torch.bfloat16 if amp == "bf16" or (amp == "auto" and auto) else None
    channels_last = cfg.get("channels_last", "auto")
    return amp_dtype, cnn and (auto if channels_last == "auto" else channels_last)


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
    try:
        validate(cfg)
        # SIGTERM/SIGUSR1 end the run between checkpoint writes (agd/distributed.py)
        with distributed.StopOnSignal() as guard:
            summary = _run(cfg, run_dir, guard)
        return summary
    except (ConfigError, FileNotFoundError, FloatingPointError) as err:
        message = str(err)
        if isinstance(err, FloatingPointError) and not message.startswith("the training"):
            message = f"training stopped: {message}"
        if distributed.detect().is_main:
            write_json(run_dir / SUMMARY_FILE, {"status": "failed", "error": message})
        print(f"error: {message}", file=sys.stderr)
        if multirun:
            return {"status": "failed", "error": message}
        sys.exit(2)
    except Exception as err:
        # a bug or a resource failure (out of memory, disk full): keep the traceback, but leave
        # the run marked failed rather than "running"; relaunching resumes from its checkpoint
        if distributed.detect().is_main and run_dir.exists():
            write_json(run_dir / SUMMARY_FILE, {"status": "failed", "error": f"{type(err).__name__}: {err}"})
        raise


def _rng_states() -> dict:
    """Every global generator a run may touch. The data order and the paper init use their own
    generators seeded from (seed, epoch) and seed, so they need no saving."""
    np_state = np.random.get_state()
    return {"torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python_rng": random.getstate(),
            "numpy_rng": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": np_state[2],
                          "has_gauss": np_state[3], "gauss": np_state[4]}}


def _set_rng_states(checkpoint: dict) -> None:
    torch.set_rng_state(checkpoint["torch_rng"])
    if checkpoint.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
    if "python_rng" in checkpoint:
        version, state, gauss = checkpoint["python_rng"]
        random.setstate((version, tuple(state), gauss))
    if "numpy_rng" in checkpoint:
        saved = checkpoint["numpy_rng"]
        np.random.set_state(("MT19937", saved["key"].numpy().astype(np.uint32), saved["pos"],
                             saved["has_gauss"], saved["gauss"]))


def _run(cfg: DictConfig, run_dir: Path, guard: distributed.StopOnSignal | None = None) -> dict:
    config = OmegaConf.to_container(cfg, resolve=True)
    guard = guard or distributed.StopOnSignal()  # not entered: its critical() is a no-op
    # data parallel: one process per rank, global batch = batch_size (each rank takes a slice)
    dist_env = distributed.detect()
    if cfg.batch_size % dist_env.world_size:
        raise ConfigError(f"batch_size {cfg.batch_size} must be a multiple of the "
                          f"{dist_env.world_size} data-parallel ranks so each holds an equal slice.")
    device = distributed.device_for(dist_env, resolve_device(cfg.device))
    dist_env = distributed.setup(device, dist_env)
    main = dist_env.is_main  # only rank 0 writes files and talks to W&B
    ckpt_path = run_dir / CHECKPOINT_FILE
    checkpoint, previous = None, {}
    if cfg.resume and (run_dir / CONFIG_FILE).exists():
        stored = read_json(run_dir / CONFIG_FILE)
        if semantic_config(stored) != semantic_config(config):
            raise ConfigError(
                f"{run_dir} already holds a run with a different config; pass resume=false to "
                "overwrite it or choose another directory.")
        summary_path = run_dir / SUMMARY_FILE
        previous = read_json(summary_path) if summary_path.exists() else {}
        if previous.get("status") == "complete":
            if main:
                print(f"already complete: {run_dir} (pass resume=false to train again)")
            return previous
        if ckpt_path.exists():
            checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    distributed.barrier()  # every rank has read the run dir before rank 0 changes it

    torch.manual_seed(cfg.seed)
    data = _build("data", cfg.data)
    model = build_model(cfg.model, data)
    if cfg.optimizer.init == "paper":
        init_weights(model, torch.Generator().manual_seed(cfg.seed))
    model.to(device)
    amp_dtype, channels_last = speed_settings(cfg, model, device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg.optimizer, model)
    loss_fn = _build("loss", cfg.loss, num_classes=data.num_classes)
    train_loader, test_loader = make_loaders(data, cfg.batch_size, seed=cfg.seed, device=device,
                                             rank=dist_env.rank, world_size=dist_env.world_size)

    rows, step_rows, start_epoch, time_offset = [], [], 0, 0.0
    # the W&B id survives in summary.json from the first second, in the checkpoint after epoch 1
    wandb_id, logged_epoch = previous.get("wandb_id"), previous.get("logged_epoch", 0)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        _set_rng_states(checkpoint)
        rows, step_rows = checkpoint["rows"], checkpoint["step_rows"]
        start_epoch, wandb_id = checkpoint["epoch"], checkpoint.get("wandb_id") or wandb_id
        time_offset = rows[-1]["time_s"] if rows else 0.0
        log.info("resuming %s from epoch %d", run_dir, start_epoch)
        if main:  # the tables follow the checkpoint, whatever was written after it
            with guard.critical():
                write_rows(run_dir / METRICS_FILE, rows, EPOCH_COLUMNS)
                if step_rows:
                    write_rows(run_dir / STEPS_FILE, step_rows, STEP_COLUMNS)
                else:  # written for an epoch the checkpoint never recorded
                    (run_dir / STEPS_FILE).unlink(missing_ok=True)
    elif main:
        logged_epoch = 0
        for stale in (METRICS_FILE, STEPS_FILE, CHECKPOINT_FILE):
            (run_dir / stale).unlink(missing_ok=True)
    if main:
        for leftover in run_dir.glob(".*.tmp"):  # temp files of a write that was killed
            leftover.unlink(missing_ok=True)
        write_json(run_dir / CONFIG_FILE, config)
    train_model = distributed.wrap_model(model, dist_env)  # DDP: gradients averaged over ranks
    if cfg.get("compile", False):  # checkpoints keep saving `model`, so their keys do not change
        train_model = torch.compile(train_model)

    logger = _build("logger", cfg.logger) if main else NullLogger()
    wandb_id = logger.start(config, str(run_dir), group=cfg.group, tags=cfg.tags, run_id=wandb_id)

    def write_running(epoch: int) -> None:
        if main:
            write_json(run_dir / SUMMARY_FILE,
                       {"status": "running", "wandb_id": wandb_id, "logged_epoch": epoch})

    for row in rows:  # rows checkpointed but not yet mirrored to W&B when the run was killed
        if row["epoch"] > logged_epoch:
            logger.log(row, step=row["epoch"])
    write_running(rows[-1]["epoch"] if rows else 0)
    exit_code = 1
    try:
        def on_steps(new_rows):
            step_rows.extend(new_rows)
            if main:
                with guard.critical():
                    write_rows(run_dir / STEPS_FILE, step_rows, STEP_COLUMNS)
                logger.log_steps(new_rows)

        def on_epoch(row):
            rows.append(row)
            if not main:
                return
            with guard.critical():  # a SIGTERM waits until checkpoint and table agree
                save_checkpoint(run_dir, {
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "epoch": row["epoch"], "rows": rows, "step_rows": step_rows,
                    "wandb_id": wandb_id, **_rng_states()})
                write_rows(run_dir / METRICS_FILE, rows, EPOCH_COLUMNS)
                logger.log(row, step=row["epoch"])
                write_running(row["epoch"])

        started = time.perf_counter()
        train(train_model, optimizer, train_loader, test_loader, loss_fn, cfg.epochs,
              start_epoch=start_epoch, step_rows=cfg.step_rows, time_offset=time_offset,
              track_update_size=cfg.track_update_size, on_epoch=on_epoch,
              on_steps=on_steps if cfg.step_rows else None, progress=cfg.progress and main,
              amp_dtype=amp_dtype, channels_last=channels_last)
        final = rows[-1]
        summary = {"status": "complete", "epochs": final["epoch"],
                   "train_loss": final["train_loss"], "train_acc": final["train_acc"],
                   "test_loss": final["test_loss"], "test_acc": final["test_acc"],
                   "time_s": final["time_s"], "wall_s_this_session": time.perf_counter() - started,
                   "run_dir": str(run_dir), "wandb_id": wandb_id, "world_size": dist_env.world_size}
        if main:
            write_json(run_dir / SUMMARY_FILE, summary)
            print(f"done: {run_dir} | epochs {final['epoch']} | train acc {final['train_acc']:.4f} | "
                  f"test acc {final['test_acc']:.4f} | {final['time_s']:.1f} s")
        exit_code = 0
        return summary
    finally:
        logger.finish(exit_code)
