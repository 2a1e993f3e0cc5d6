"""From a composed config to the objects a run trains with: the checks of its values, the names
and identity of a run, and the model, data, optimiser, loss and logger it builds.

Nothing here touches a run directory; experiments/pipeline.py (the run lifecycle) calls `build`
before it does, so a config error never changes what is on disk.
"""

from __future__ import annotations

import copy
import hashlib
import pickle
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from hydra.errors import HydraException, InstantiationException, MissingConfigException
from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from agd import distributed
from agd.data import make_loaders
from agd.init import init_weights
from experiments import provenance
from experiments.loggers import NullLogger
from experiments.paths import CONF_DIR, runs_root

# Settings that do not change what a run computes: a resumed run may differ in these, and they
# are left out of the run directory's name (conf/config.yaml reads this list through the
# ${run_name_excluded_keys:} resolver; this tuple is its one home). Dotted keys name one entry.
# sample_chars is among them: the samples are drawn from the trained model after training, so a
# run asked for samples is the same run (a rerun of a complete run writes samples.txt if missing).
NON_SEMANTIC_KEYS = ("logger", "logger.project", "logger.entity", "logger.mode", "logger.init_timeout",
                     "progress", "device", "resume", "tags", "data.root", "hydra.launcher", "sample_chars")
# also left out of the name because the run's group (its parent directory) already says them
GROUP_KEYS = ("experiment", "scale", "group")
NAME_MAX = 255  # bytes in one path component on Linux and macOS file systems


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


def runs_dir() -> str:
    return str(runs_root())


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
    # max: conf/hydra/launcher/slurm.yaml asks for one task per GPU, and at least one
    for name, fn in (("runs_dir", runs_dir), ("run_name", run_name),
                     ("run_name_excluded_keys", run_name_excluded_keys), ("max", lambda *values: max(values))):
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
    if cfg.get("sample_chars") is not None:
        _check_int(cfg, "sample_chars", 0)
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


def one_sentence(err: BaseException) -> str:
    """Hydra's and OmegaConf's multi-line messages as one line."""
    if isinstance(err, MissingConfigException) and getattr(err, "options", None):
        first = str(err).strip().splitlines()[0]
        return f"{first}; choose one of: {', '.join(err.options)}."
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return " ".join(line if line.endswith(".") else f"{line};" for line in lines).rstrip(";") or type(err).__name__


def _compose(overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_resolvers()
    if GlobalHydra.instance().is_initialized():  # inside a running Hydra app (a sweep's callback)
        return compose("config", overrides=overrides)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


def validate_overrides(overrides: Sequence[str]) -> None:
    """Check one job before anything is launched: its config composes from `overrides` (as on the
    command line, without sweeps) and its values can work (`validate`). Raises ConfigError with
    the one sentence a user can act on; creates nothing."""
    try:
        cfg = _compose(list(overrides))
        OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(one_sentence(err)) from None
    validate(cfg)


def sweep_jobs(config: DictConfig) -> list[list[str]]:
    """Every job's overrides of a `-m` sweep, as Hydra's basic sweeper enumerates them (the
    config's hydra.sweeper.params, then the command line's)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(arguments)
    jobs = [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    # what targets Hydra's own config (`local@hydra.launcher=<site>`) is the launcher's business
    # and cannot compose without the launcher choice, which Hydra keeps apart from the task's
    return [[o for o in job if not _targets_hydra(o)] for job in jobs]


def _targets_hydra(override: str) -> bool:
    key = override.split("=", 1)[0].lstrip("+~")
    return key.split("/")[0].split(".")[0] == "hydra" or "@hydra" in key


class ValidateSweep(Callback):
    """A `-m` sweep checks every job's config before launching any (conf/config.yaml names this
    callback first): one bad value refuses the whole sweep, exit 2, nothing created."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        jobs = sweep_jobs(config)
        for number, job in enumerate(jobs):
            try:
                validate_overrides(job)
            except ConfigError as err:
                print(f"error: {str(err).rstrip('.')} (sweep job #{number}: {' '.join(job) or 'no overrides'}); "
                      f"none of the {len(jobs)} jobs was launched.", file=sys.stderr, flush=True)
                sys.exit(2)


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
    data: object = None
    provenance: dict = field(default_factory=dict)  # experiments/provenance.py collect()

    def facts(self, cfg: DictConfig, overrides) -> dict:
        """How the run executes (facts.json, and in summary.json): none of it changes the maths
        except precision, which the report shows next to each result; and what made it (code,
        package versions, machine, SLURM job)."""
        return {"device": str(self.device), "world_size": self.dist_env.world_size,
                "precision": "bf16-autocast" if self.amp_dtype == torch.bfloat16 else "fp32",
                "channels_last": bool(self.channels_last), "compile": bool(cfg.get("compile", False)),
                "torch": torch.__version__, "overrides": list(overrides or []),
                "data_source": getattr(self.data, "source", None), **self.provenance}


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
    return Parts(model, optimizer, loss_fn, loaders, logger, device, dist_env, amp_dtype, channels_last, data,
                 provenance.collect(cfg.optimizer._target_, device))
