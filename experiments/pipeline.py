"""Turn a composed config into objects, run agd.train, and keep the run directory current.

Kept apart from experiments/train.py (the thin Hydra entry point) so that tests, the reproduce
driver and the SLURM launcher all call the same code.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import logging
import os
import pickle
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from agd import distributed
from agd.data import make_loaders
from agd.init import init_weights
from agd.results import CONFIG_FILE
from agd.train import LoopOptions, NonFiniteLossError, train
from experiments.loggers import NullLogger
from experiments.run_store import RunBusy, RunStore

log = logging.getLogger("agd")
REPO_ROOT = Path(__file__).resolve().parents[1]
# Settings that do not change what a run computes: a resumed run may differ in these, and they
# are left out of the run directory's name (conf/config.yaml reads this list through the
# ${run_name_excluded_keys:} resolver; this tuple is its one home). Dotted keys name one entry.
NON_SEMANTIC_KEYS = ("logger", "logger.project", "logger.entity", "logger.mode", "logger.init_timeout",
                     "progress", "device", "resume", "tags", "data.root", "hydra.launcher")
# also left out of the name because the run's group (its parent directory) already says them
GROUP_KEYS = ("experiment", "scale", "group")
NAME_MAX = 255  # bytes in one path component on Linux and macOS file systems


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


def runs_dir() -> str:
    return os.environ.get("AGD_RUNS_DIR") or str(REPO_ROOT / "runs")


def run_name(override_dirname: str) -> str:
    """The run directory's name: its overrides, or, when they exceed the file system's limit on
    one name, their first ~220 bytes and a hash of the whole (deterministic; facts.json keeps
    the full list)."""
    name = override_dirname.replace("/", "_") or "default"
    if len(name.encode()) <= NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    head = name.encode()[:NAME_MAX - len(digest) - 20].decode(errors="ignore")
    return f"{head}~{digest}"


def run_name_excluded_keys() -> list[str]:
    return [*GROUP_KEYS, *NON_SEMANTIC_KEYS]


def register_resolvers() -> None:
    for name, fn in (("runs_dir", runs_dir), ("run_name", run_name),
                     ("run_name_excluded_keys", run_name_excluded_keys)):
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
    for key, value in cfg.optimizer.items():
        if key not in ("_target_", "init") and isinstance(value, str):
            raise ConfigError(f"optimizer.{key} must be a number, got {value!r}.")
    try:  # the one check that the global batch splits evenly over the data-parallel ranks
        distributed.local_batch_size(cfg.batch_size, distributed.detect())
    except ValueError as err:
        raise ConfigError(str(err)) from None


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
        if isinstance(cause, (pickle.UnpicklingError, EOFError)):  # a torn dataset file
            raise ConfigError(f"{group}: a file of {node._target_} is corrupt ({cause}); delete the "
                              "dataset's files under data.root (or $DATA_DIR) and fetch them again.") from cause
        raise ConfigError(f"{group}: {cause}") from cause
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{group}: {err}") from err


def build_model(node: DictConfig, data) -> torch.nn.Module:
    """The model for this dataset: every model takes the dataset's `input_shape` and
    `num_classes` (docs/models.md); then check_fits tries it on one sample."""
    model = _build("model", node, input_shape=tuple(data.input_shape), num_classes=data.num_classes)
    check_fits(model, data)
    return model


def check_fits(model: torch.nn.Module, data) -> None:
    """One forward pass of a zero sample, in eval mode (no state changes, no random numbers), so
    a model that cannot take the data's inputs is refused before anything runs."""
    name, shape = type(model).__name__, tuple(data.input_shape)
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *shape))
    except (RuntimeError, ValueError, IndexError) as err:
        needs = ("a convolutional network needs images (channels, height, width), e.g. data=digits "
                 "or data=cifar10" if any(p.dim() == 4 for p in model.parameters())
                 else "choose a model built for this data")
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"model: {name} cannot take {data.name} inputs of shape {shape} "
                          f"({first_line}); {needs}.") from None
    finally:
        model.train(training)
    if out.dim() != 2 or out.shape[-1] != data.num_classes:  # (batch [x positions], classes)
        raise ConfigError(f"model: {name} gives outputs of shape {tuple(out.shape)[1:]} for {data.name}, "
                          f"which has {data.num_classes} classes.")


def build_optimizer(node: DictConfig, model: torch.nn.Module):
    kwargs = {k: v for k, v in node.items() if k not in ("_target_", "init")}
    target = OmegaConf.create({"_target_": node._target_, **kwargs})
    # with extensions the optimiser gets the model, so each parameter's module decides its rule
    # (an nn.Embedding weight is the transpose of a Linear's); otherwise its tensors
    params = model if node.get("extensions") else model.parameters()
    return _build("optimizer", target, params=params)


def semantic_config(config: dict) -> dict:
    """The config without NON_SEMANTIC_KEYS: what must match for a rerun to continue a run."""
    config = copy.deepcopy(config)
    for key in NON_SEMANTIC_KEYS:
        *parents, last = key.split(".")
        node = config
        for parent in parents:
            node = node.get(parent) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return config


@dataclass
class Parts:
    """Everything a run trains with, built from the config before its directory is touched."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: object
    loaders: tuple
    logger: object
    device: torch.device
    dist_env: distributed.DistEnv
    amp_dtype: torch.dtype | None
    channels_last: bool

    def facts(self, cfg: DictConfig, overrides) -> dict:
        """How the run executes (facts.json, and in summary.json): none of it changes the maths
        except precision, which the report shows next to each result."""
        return {"device": str(self.device), "world_size": self.dist_env.world_size,
                "precision": "bf16-autocast" if self.amp_dtype == torch.bfloat16 else "fp32",
                "channels_last": bool(self.channels_last), "compile": bool(cfg.get("compile", False)),
                "torch": torch.__version__, "overrides": list(overrides or [])}


@dataclass
class Progress:
    """The rows a run holds so far and where its next epoch starts."""

    rows: list
    step_rows: list
    start_epoch: int = 0
    time_offset: float = 0.0


def build(cfg: DictConfig) -> Parts:
    """Every object of the run, in the order that fixes its random numbers (seed, data, model,
    init); any config error surfaces here, before the run directory is touched."""
    dist_env = distributed.detect()
    device = distributed.device_for(dist_env, resolve_device(cfg.device))
    torch.manual_seed(cfg.seed)
    data = _build("data", cfg.data)
    model = build_model(cfg.model, data)
    if cfg.optimizer.init == "paper":  # the optimiser's `extensions` also covers the init's rules
        init_weights(model, torch.Generator().manual_seed(cfg.seed),
                     extensions=bool(cfg.optimizer.get("extensions", False)))
    model.to(device)
    amp_dtype, channels_last = speed_settings(cfg, model, device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg.optimizer, model)
    loss_fn = _build("loss", cfg.loss, num_classes=data.num_classes)
    loaders = make_loaders(data, cfg.batch_size, seed=cfg.seed, device=device, rank=dist_env.rank,
                           world_size=dist_env.world_size)
    logger = _build("logger", cfg.logger) if dist_env.is_main else NullLogger()
    return Parts(model, optimizer, loss_fn, loaders, logger, device, dist_env, amp_dtype, channels_last)


def run(cfg: DictConfig, run_dir: str | Path, multirun: bool = False, overrides=()) -> dict:
    """Run one training job in `run_dir`; returns its summary. Every way out says why in one
    line on stderr and, once the run has started, in summary.json. Alone, a user error exits 2;
    in a sweep it is returned as the job's status (failed, diverged, busy) and the sweep goes on.
    An interruption (SIGTERM, SIGINT) always ends the process."""
    store = RunStore(run_dir, writer=distributed.detect().is_main)
    try:
        return _run(cfg, store, overrides)
    except (Exception, KeyboardInterrupt, distributed.Interrupted) as err:
        outcome = _outcome(err, store)
        if outcome is None:  # a bug: keep the traceback, and leave the run marked failed
            store.finish("failed", f"{type(err).__name__}: {err}")
            raise
        status, message, code = outcome
    store.finish(status, message)
    if not store.started and multirun and status == "failed":
        store.record_refusal(message)
    elif not store.started:
        store.remove_if_empty()
    print(f"{'interrupted' if status == 'interrupted' else 'error'}: {message}", file=sys.stderr, flush=True)
    if status == "interrupted":
        raise SystemExit(code)
    if multirun:
        return {"status": status, "error": message, "run_dir": str(store.path)}
    sys.exit(code)


def _outcome(err: BaseException, store: RunStore) -> tuple[str, str, int] | None:
    """(status, one-sentence message, exit code) for a way out a user can act on; None for a bug."""
    if isinstance(err, (distributed.Interrupted, KeyboardInterrupt)):
        name = err.signal_name if isinstance(err, distributed.Interrupted) else "SIGINT"
        code = err.code if isinstance(err, distributed.Interrupted) else 130
        done = store.state.get("logged_epoch", 0)
        return "interrupted", (f"{store.path} stopped by {name} after epoch {done}; rerun the same "
                               "command to resume from its last checkpoint."), code
    if isinstance(err, RunBusy):
        return "busy", str(err), 2
    if isinstance(err, FloatingPointError):  # NonFiniteLossError, or AGD's own finiteness check
        message = str(err) if isinstance(err, NonFiniteLossError) else f"non-finite values: {err}"
        return "diverged", f"training stopped: {message}", 2
    if isinstance(err, ConfigError):
        return "failed", str(err), 2
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return "failed", (f"no space left on the device while writing {err.filename or store.path}; "
                          "free some space and rerun the same command to resume."), 1
    if isinstance(err, OSError) and err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "failed", (f"cannot write {err.filename or store.path} ({err.strerror}); set AGD_RUNS_DIR "
                          "to a folder you can write."), 2
    if isinstance(err, FileNotFoundError):  # a missing dataset file
        return "failed", str(err), 2
    return None


def _previous_run(store: RunStore, config: dict, resume: bool) -> dict:
    """The summary of the run already in the directory ({} when none or resume=false). Refuses
    a different config. Only reads."""
    stored = store.read(CONFIG_FILE) if resume else None
    if stored is None:
        return {}
    if semantic_config(stored) != semantic_config(config):
        raise ConfigError(f"{store.path} already holds a run with a different config; pass "
                          "resume=false to overwrite it or choose another directory.")
    return store.summary()


def _already_complete(store: RunStore, previous: dict) -> dict:
    rebuilt = store.repair_tables()
    if store.writer:
        if rebuilt:
            print(f"rebuilt {' and '.join(rebuilt)} of {store.path} from its checkpoint")
        print(f"already complete: {store.path} (pass resume=false to train again)")
    return previous


def _run(cfg: DictConfig, store: RunStore, overrides) -> dict:
    validate(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    previous = _previous_run(store, config, cfg.resume)
    if previous.get("status") == "complete" and not store.tables_missing(cfg.step_rows > 0):
        return _already_complete(store, previous)
    # SIGTERM/SIGUSR1/SIGINT end the run between checkpoint writes (agd/distributed.py)
    with distributed.StopOnSignal() as guard:
        parts = build(cfg)
        with store.owned():
            previous = _previous_run(store, config, cfg.resume)  # as it is now that it is ours
            if previous.get("status") == "complete":
                return _already_complete(store, previous)
            return _train_owned(cfg, config, store, parts, previous, guard, overrides)


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


def _resume_or_start(cfg: DictConfig, config: dict, store: RunStore, parts: Parts, previous: dict,
                     guard: distributed.StopOnSignal, overrides) -> Progress:
    """Load the checkpoint into the objects (or clear a previous attempt), then mark the run
    started: config.json and facts.json written, temp files of a killed write removed."""
    distributed.setup(parts.device, parts.dist_env)
    checkpoint = store.load_checkpoint() if cfg.resume and (store.path / CONFIG_FILE).exists() else None
    distributed.barrier()  # every rank has read the run dir before rank 0 changes it
    # the W&B id survives in summary.json from the first second, in the checkpoint after epoch 1
    store.state = {"wandb_id": previous.get("wandb_id"), "logged_epoch": previous.get("logged_epoch", 0)}
    if checkpoint is None:
        store.start_fresh()
        store.state["logged_epoch"] = 0
        progress = Progress([], [])
    else:
        parts.model.load_state_dict(checkpoint["model"])
        parts.optimizer.load_state_dict(checkpoint["optimizer"])
        _set_rng_states(checkpoint)
        rows = checkpoint["rows"]
        progress = Progress(rows, checkpoint["step_rows"], checkpoint["epoch"],
                            rows[-1]["time_s"] if rows else 0.0)
        store.state["wandb_id"] = checkpoint.get("wandb_id") or store.state["wandb_id"]
        log.info("resuming %s from epoch %d", store.path, progress.start_epoch)
        with guard.critical():
            store.write_tables(progress.rows, progress.step_rows)
    store.clean_temp_files()
    store.begin(config, parts.facts(cfg, overrides))
    return progress


def _callbacks(store: RunStore, parts: Parts, progress: Progress, guard: distributed.StopOnSignal):
    """on_epoch and on_steps for agd.train: checkpoint, tables, W&B and status agree after each
    epoch (a signal waits until they do)."""
    def on_steps(new_rows):
        progress.step_rows.extend(new_rows)
        if store.writer:
            with guard.critical():
                store.write_tables(progress.rows, progress.step_rows)
            parts.logger.log_steps(new_rows)

    def on_epoch(row):
        progress.rows.append(row)
        if not store.writer:
            return
        with guard.critical():
            store.save_checkpoint({
                "model": parts.model.state_dict(), "optimizer": parts.optimizer.state_dict(),
                "epoch": row["epoch"], "rows": progress.rows, "step_rows": progress.step_rows,
                "wandb_id": store.state["wandb_id"], **_rng_states()})
            store.write_tables(progress.rows, progress.step_rows)
            parts.logger.log(row, step=row["epoch"])
            store.state["logged_epoch"] = row["epoch"]
            store.write_status("running")

    return on_epoch, on_steps


def _train_owned(cfg: DictConfig, config: dict, store: RunStore, parts: Parts, previous: dict,
                 guard: distributed.StopOnSignal, overrides) -> dict:
    """Train in a run directory this process owns, from its checkpoint if it has one."""
    progress = _resume_or_start(cfg, config, store, parts, previous, guard, overrides)
    train_model = distributed.wrap_model(parts.model, parts.dist_env)  # DDP: gradients averaged
    if cfg.get("compile", False):  # checkpoints keep saving `model`, so their keys do not change
        train_model = torch.compile(train_model)
    store.state["wandb_id"] = parts.logger.start(config, str(store.path), group=cfg.group, tags=cfg.tags,
                                                 run_id=store.state["wandb_id"])
    exit_code = 1
    try:
        for row in progress.rows:  # rows checkpointed but not yet mirrored to W&B when killed
            if row["epoch"] > store.state["logged_epoch"]:
                parts.logger.log(row, step=row["epoch"])
        store.state["logged_epoch"] = progress.rows[-1]["epoch"] if progress.rows else 0
        store.write_status("running")
        on_epoch, on_steps = _callbacks(store, parts, progress, guard)
        options = LoopOptions(start_epoch=progress.start_epoch, step_rows=cfg.step_rows,
                              time_offset=progress.time_offset, track_update_size=cfg.track_update_size,
                              progress=cfg.progress and store.writer, amp_dtype=parts.amp_dtype,
                              channels_last=parts.channels_last)
        started = time.perf_counter()
        train(train_model, parts.optimizer, *parts.loaders, parts.loss_fn, cfg.epochs, options,
              on_epoch=on_epoch, on_steps=on_steps if cfg.step_rows else None)
        summary = _complete(cfg, store, parts, progress, time.perf_counter() - started, overrides)
        exit_code = 0
        return summary
    finally:
        parts.logger.finish(exit_code)


def _complete(cfg, store: RunStore, parts: Parts, progress: Progress, wall_s: float, overrides) -> dict:
    final = progress.rows[-1]
    facts = parts.facts(cfg, overrides)
    summary = store.write_status(
        "complete", epochs=final["epoch"], train_loss=final["train_loss"], train_acc=final["train_acc"],
        test_loss=final["test_loss"], test_acc=final["test_acc"], time_s=final["time_s"],
        wall_s_this_session=wall_s, run_dir=str(store.path), world_size=parts.dist_env.world_size,
        device=facts["device"], precision=facts["precision"], channels_last=facts["channels_last"])
    if store.writer:
        print(f"done: {store.path} | epochs {final['epoch']} | train acc {final['train_acc']:.4f} | "
              f"test acc {final['test_acc']:.4f} | {final['time_s']:.1f} s")
    return summary
