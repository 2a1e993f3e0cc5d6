"""The launch plan of a reproduction and its bill, before anything runs.

`jobs(experiment, scale, extra)` lists the jobs of one launch
(`python experiments/train.py -m experiment=<id> scale=<scale> <extra>`) as Hydra's sweeper will
run them, each with its composed config and run directory, and checks each config with the
training command's own checks (experiments/build.py `validate`): reproduce.py refuses a bad
value before it launches anything, and waits on exactly these run directories at the end.

`bill(...)` is `reproduce.py ... dry_run=true`: per figure its runs, epochs, optimiser steps and
samples seen, and the projected wall time here (throughput measured for a few seconds on each
distinct model, input shape and batch) and on a GPU (from BENCHMARKS.md where it has a number,
else an estimate from the FLOPs of one step). Nothing is trained and nothing is written.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import get_overrides_dirname
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from agd.data import make_loaders
from agd.init import init_weights
from agd.train import LoopOptions, evaluate, train
from experiments import paths, provenance
from experiments.analysis.args import BadArgument
from experiments.build import (
    ConfigError,
    _targets_hydra,
    build_model,
    build_optimizer,
    register_resolvers,
    speed_settings,
    validate,
)

BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


@dataclass
class Job:
    """One job of a launch: its overrides as the sweeper hands them over, its config, its run."""

    experiment: str
    overrides: list[str]
    cfg: DictConfig
    run_dir: Path


def _is_group(override: Override) -> bool:
    """Whether an override picks a config group (optimizer=adam, hydra/launcher=slurm) rather
    than setting a value: those change what is composed, so they cannot be applied afterwards."""
    key = override.key_or_group
    return key.startswith("hydra/") or (paths.CONF_DIR / key).is_dir()


def _sweep(params: dict, arguments: list[str]) -> list[list[str]]:
    """Every job's overrides, as Hydra's BasicSweeper builds them: the experiment's
    hydra.sweeper.params, then the command line (a key given twice keeps its first place and
    its last value), every combination of the comma-separated values."""
    parser = OverridesParser.create()
    choices: dict[str, list[str]] = {}
    for override in parser.parse_overrides([f"{k}={v}" for k, v in params.items()] + arguments):
        key = override.get_key_element()
        if override.is_sweep_override():
            choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
    return [list(job) for job in itertools.product(*choices.values())]


def _one_sentence(err: BaseException) -> str:
    """Hydra's multi-line message as one sentence: its lines joined, the config search path
    dropped, a list of options as one list."""
    text = str(err).split("Config search path")[0]
    head, _, options = text.partition("Available options in")
    lines = [line.strip().rstrip(".:;") for line in head.strip().splitlines() if line.strip()]
    sentence = "; ".join(lines) or type(err).__name__
    if options:
        choices = options.split(":", 1)[-1].split()
        sentence += f"; choose one of: {', '.join(choices)}"
    return sentence + "."


class Composer:
    """Hydra's compose, once per distinct choice of config groups; a job that only changes
    values gets a copy of the composed config with its values set, as a sweep would compose it
    (composing every job of a 90-run grid would take about half a minute)."""

    def __init__(self):
        register_resolvers()
        self._context = initialize_config_dir(config_dir=str(paths.CONF_DIR), version_base="1.3")
        self._cache: dict[tuple, DictConfig] = {}

    def __enter__(self) -> Composer:
        self._context.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._context.__exit__(*exc)

    def compose(self, overrides: list[str]) -> DictConfig:
        parsed = OverridesParser.create().parse_overrides(overrides)
        groups = [o.input_line for o in parsed if _is_group(o) or o.is_add() or o.is_delete()]
        values = [o for o in parsed if o.input_line not in groups]
        key = tuple(groups)
        if key not in self._cache:
            self._cache[key] = compose("config", overrides=overrides, return_hydra_config=True)
            return copy.deepcopy(self._cache[key])
        cfg = copy.deepcopy(self._cache[key])
        for override in values:
            OmegaConf.update(cfg, override.key_or_group, override.value(), merge=False)
        return cfg


def _run_dir(cfg: DictConfig, overrides: list[str]) -> Path:
    """The job's run directory: hydra.sweep.dir / hydra.sweep.subdir with the job's
    override_dirname, as Hydra computes it (conf/config.yaml)."""
    naming = cfg.hydra.job.config.override_dirname
    # Hydra names the directory from the task's overrides only: `hydra/launcher=...`,
    # `hydra.launcher.*` and `local@hydra.launcher=...` configure the launcher, not the run
    task = [o for o in overrides if not _targets_hydra(o)]
    with open_dict(cfg):
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            OverridesParser.create().parse_overrides(task), exclude_keys=list(naming.exclude_keys),
            item_sep=naming.item_sep, kv_sep=naming.kv_sep)
    return Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)


def check(cfg: DictConfig) -> None:
    """The training command's checks of a config. A job that a scheduler runs elsewhere is
    checked as if on its machine: whether CUDA is there is that machine's business."""
    if cfg.hydra.launcher.get("_target_") != BASIC_LAUNCHER and cfg.get("device") == "cuda":
        cfg = copy.deepcopy(cfg)
        cfg.device = "auto"
    validate(cfg)


def jobs(composer: Composer, experiment: str, scale: str, extra: list[str]) -> list[Job]:
    """The jobs of `train.py -m experiment=<experiment> scale=<scale> <extra>`, each composed
    and checked; a config that cannot work is a BadArgument naming the experiment and the job."""
    arguments = [f"experiment={experiment}", f"scale={scale}", *extra]
    parser = OverridesParser.create()
    fixed = [o.input_line for o in parser.parse_overrides(arguments) if not o.is_sweep_override()]
    out = []
    try:
        base = composer.compose(fixed)
        params = {str(k): str(v) for k, v in (base.hydra.sweeper.params or {}).items()}
        for overrides in _sweep(params, arguments):
            cfg = composer.compose(overrides)
            check(cfg)
            out.append(Job(experiment, overrides, cfg, _run_dir(cfg, overrides)))
    except ConfigError as err:
        shown = [o for o in overrides if not o.startswith(("experiment=", "scale=", "logger=", "progress="))]
        raise BadArgument(f"experiment {experiment} at scale={scale}, job {','.join(shown)}: {err} "
                          "Nothing was launched.") from None
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        given = [o for o in extra if not o.startswith(("logger=", "progress="))]
        raise BadArgument(f"experiment {experiment} at scale={scale} does not compose with "
                          f"{' '.join(given) or 'its own settings'}: {_one_sentence(err)} Nothing was launched.") \
            from None
    return out


def plan(launches: list[tuple[str, list[str]]], scale: str, runs_root: Path) -> dict[str, list[Job]]:
    """Every launch's jobs (runs_root is where their run directories are named), in order."""
    previous = os.environ.get("AGD_RUNS_DIR")
    os.environ["AGD_RUNS_DIR"] = str(runs_root)  # the ${runs_dir:} resolver reads it
    try:
        with Composer() as composer:
            return {experiment: jobs(composer, experiment, scale, extra) for experiment, extra in launches}
    finally:
        if previous is None:
            os.environ.pop("AGD_RUNS_DIR", None)
        else:
            os.environ["AGD_RUNS_DIR"] = previous



# ---- the bill: what a launch costs, measured here, estimated for a GPU ----

MEASURE_S = 1.0  # seconds of timed training steps per distinct model, input shape and batch
# The GPU estimate where BENCHMARKS.md has no measurement: one step's FLOPs (forward + backward,
# counted by torch.utils.flop_counter) at a sustained fp32 rate, or its kernel launches, whichever
# is slower. 25 TFLOP/s is about 40% of an H100/H200's fp32 peak without tensor cores (67 TFLOP/s);
# eager PyTorch launches one kernel per aten op, at about 5 microseconds each.
GPU_NAME = "H100/H200-class GPU"
GPU_FLOPS = 25e12
GPU_LAUNCH_S = 5e-6
BENCHMARKS = paths.REPO_ROOT / "BENCHMARKS.md"
# a row of scripts/gpu_check.py's table: "| fig2: FCN 8x256, batch 128, fp32 | 12,345 (50,000 images, 4.1 s) | ..."
GPU_ROW = re.compile(r"^\|\s*(?P<experiment>\w+):[^|]*?,\s*batch\s+(?P<batch>\d+),[^|]*\|\s*(?P<value>[\d,.]+)")


@dataclass
class Cost:
    """What one distinct (model, input, batch, optimiser) costs, measured on this CPU."""

    step_s: float           # one training step (loader batch, forward, loss, backward, optimiser step)
    eval_batch_s: float     # one evaluation batch
    checkpoint_s: float     # the end-of-epoch checkpoint (serialised and written with fsync)
    build_s: float          # the model, initialisation and optimiser of a job
    step_flops: float       # one training step's FLOPs (forward + backward)
    step_ops: int           # aten ops of one training step (kernels on a GPU)
    eval_flops: float
    eval_ops: int


@dataclass
class Line:
    """One launch of the bill."""

    experiment: str
    runs: int
    epochs: str             # the epochs of its runs, e.g. "20" or "10/20"
    steps: int              # optimiser steps, all runs
    samples: int            # training samples seen, all runs (images, or tokens for text)
    unit: str
    cpu_s: float            # projected wall time here, one after another
    gpu_s: float | None     # on one GPU, one after another
    gpu_measured: bool
    note: str = ""


class _First:
    """The first `k` batches of a loader (for timing a few steps of the real loop)."""

    def __init__(self, loader, k: int):
        self.loader, self.k = loader, k

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return min(self.k, len(self.loader))

    def __iter__(self):
        return itertools.islice(iter(self.loader), len(self))


class _OpCount(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def _key(node) -> str:
    return json.dumps(OmegaConf.to_container(node, resolve=True), sort_keys=True, default=str)


def _shape_key(cfg: DictConfig) -> str:
    """What a step's cost depends on: not the learning rate, the gain or the seed."""
    optimizer = {k: v for k, v in OmegaConf.to_container(cfg.optimizer, resolve=True).items()
                 if "lr" not in k and k not in ("weight_decay", "gain")}
    return json.dumps([_key(cfg.model), _key(cfg.data), cfg.batch_size, optimizer, _key(cfg.loss),
                       cfg.track_update_size, cfg.step_rows > 0, str(cfg.get("amp")), str(cfg.get("compile"))],
                      sort_keys=True, default=str)


def _timed(fn, *args, **kwargs) -> float:
    started = time.perf_counter()
    try:
        fn(*args, **kwargs)
    except FloatingPointError:  # a learning rate that diverges costs the same per step
        pass
    return time.perf_counter() - started


def _counted(fn) -> tuple[float, int]:
    """(FLOPs, aten ops) of fn()."""
    with FlopCounterMode(display=False) as flops, _OpCount() as ops:
        try:
            fn()
        except FloatingPointError:
            pass
    return float(flops.get_total_flops()), ops.ops


def _checkpoint_s(model, optimizer) -> float:
    """Serialise the model and optimiser state and write it with fsync, as every epoch does
    (into a temporary folder, never the runs root)."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        buffer = io.BytesIO()
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
        with open(Path(folder) / "checkpoint.pt", "wb") as f:
            f.write(buffer.getvalue())
            f.flush()
            os.fsync(f.fileno())
        return time.perf_counter() - started


def _build_objects(cfg: DictConfig, data):
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, data)
    if cfg.optimizer.init == "paper":
        init_weights(model, torch.Generator().manual_seed(cfg.seed), extensions=bool(cfg.optimizer.get("extensions")))
    return model, build_optimizer(cfg.optimizer, model)


def measure(cfg: DictConfig, data) -> Cost:
    """Time the training loop (agd.train.train, the code a run executes) on this job's objects
    for about MEASURE_S seconds of steps, then count one step's FLOPs and kernels."""
    _build_objects(cfg, data)  # the first build pays for lazy imports and caches, once per process
    started = time.perf_counter()
    model, optimizer = _build_objects(cfg, data)
    build_s = time.perf_counter() - started
    loss_fn = instantiate(cfg.loss, num_classes=data.num_classes)
    amp_dtype, channels_last = speed_settings(cfg, model, torch.device("cpu"))
    train_loader, test_loader = make_loaders(data, cfg.batch_size, seed=cfg.seed, device="cpu")
    options = LoopOptions(step_rows=cfg.step_rows, track_update_size=cfg.track_update_size, progress=False,
                          amp_dtype=amp_dtype, channels_last=channels_last)

    def steps(k: int) -> float:  # k steps and one evaluation batch, through the real loop
        return _timed(train, model, optimizer, _First(train_loader, k), _First(test_loader, 1), loss_fn, 1, options)

    def evaluation() -> None:
        evaluate(model, _First(test_loader, 1), loss_fn, optimizer, amp_dtype=amp_dtype, channels_last=channels_last)

    steps(1)  # lazy allocations and caches: not what a long run pays per step
    one, k = steps(1), 2
    many = steps(k)
    while many - one < MEASURE_S / 2 and k < len(train_loader):  # the epoch's constant cancels out
        k = min(2 * k, len(train_loader))
        many = steps(k)
    step_s = max((many - one) / (k - 1), many / k / 4)
    eval_batch_s = _timed(evaluation)
    step_flops, step_ops = _counted(lambda: steps(1))
    eval_flops, eval_ops = _counted(evaluation)
    return Cost(step_s, eval_batch_s, _checkpoint_s(model, optimizer), build_s,
                step_flops - eval_flops, max(step_ops - eval_ops, 1), eval_flops, eval_ops)


def gpu_measured(cfg: DictConfig, experiment: str, text: str | None = None) -> float | None:
    """Training images/s that BENCHMARKS.md measured on a GPU for this job, or None: a row of
    `scripts/gpu_check.py`'s table (`| fig2: FCN 8x256, batch 128, fp32 | 12,345 (...) |`) below
    a `# GPU check: cuda ...` heading, for AGD at the experiment's paper settings and this batch."""
    if text is None:
        text = BENCHMARKS.read_text() if BENCHMARKS.exists() else ""
    experiment = experiment.removesuffix("_baselines")
    if cfg.get("scale") != "paper" or not str(cfg.optimizer._target_).endswith(".AGD"):
        return None
    on_gpu = False
    for line in text.splitlines():
        if line.startswith("#"):
            on_gpu = line.startswith("# GPU check: cuda")
        hit = GPU_ROW.match(line.strip())
        if on_gpu and hit and hit["experiment"] == experiment and int(hit["batch"]) == int(cfg.batch_size):
            return float(hit["value"].replace(",", ""))
    return None


class Meter:
    """Measurements shared by the jobs of a bill: datasets (and the time a job takes to load its
    own), the cost of each distinct shape, and the fixed costs of a process and of a job."""

    def __init__(self, threads: int):
        self.threads = threads
        self._data: dict[str, tuple[object, float, float]] = {}
        self._costs: dict[str, Cost] = {}
        self.job_s = self._job_overhead()
        self.process_s = self._process_start()

    def _job_overhead(self) -> float:
        """Composing a job and collecting its provenance (git, package versions)."""
        started = time.perf_counter()
        with Composer() as composer:
            composer.compose(["experiment=fig2", "scale=mini"])
        provenance.collect("agd.optim.AGD", torch.device("cpu"))
        return time.perf_counter() - started

    def _process_start(self) -> float:
        """Starting a launch: Python with torch, Hydra and the training package imported."""
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads))
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import experiments.pipeline, hydra, torch"], cwd=paths.REPO_ROOT,
                       env=env, check=True, capture_output=True)
        return time.perf_counter() - started

    def data(self, cfg: DictConfig):
        """(dataset, seconds its first load takes in a process, seconds each later job takes):
        every job loads its data, but a loader may keep a copy for the next job (MNIST-1D does)."""
        key = _key(cfg.data)
        if key not in self._data:
            first = time.perf_counter()
            instantiate(cfg.data)
            again = time.perf_counter()
            data = instantiate(cfg.data)
            self._data[key] = (data, again - first, time.perf_counter() - again)
        return self._data[key]

    def cost(self, cfg: DictConfig) -> Cost:
        key = _shape_key(cfg)
        if key not in self._costs:
            previous = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                self._costs[key] = measure(cfg, self.data(cfg)[0])
            finally:
                torch.set_num_threads(previous)
        return self._costs[key]


def gpu_step_s(flops: float, ops: int) -> float:
    return max(flops / GPU_FLOPS, ops * GPU_LAUNCH_S)


def job_bill(meter: Meter, cfg: DictConfig, experiment: str) -> tuple[int, int, float, float, bool]:
    """(steps, samples, CPU seconds, GPU seconds, GPU measured) of one job."""
    data, _, load_s = meter.data(cfg)
    cost = meter.cost(cfg)
    train_loader, test_loader = make_loaders(data, cfg.batch_size, seed=cfg.seed, device="cpu")
    epochs, steps = int(cfg.epochs), len(train_loader)
    samples = epochs * train_loader.num_samples * getattr(data, "targets_per_example", 1)
    fixed = meter.job_s + load_s + cost.build_s
    per_epoch = steps * cost.step_s + len(test_loader) * cost.eval_batch_s + cost.checkpoint_s
    measured = gpu_measured(cfg, experiment)
    if measured:
        gpu_epoch = train_loader.num_samples / measured
    else:
        gpu_epoch = steps * gpu_step_s(cost.step_flops, cost.step_ops)
    gpu_epoch += len(test_loader) * gpu_step_s(cost.eval_flops, cost.eval_ops) + cost.checkpoint_s
    return epochs * steps, samples, fixed + epochs * per_epoch, fixed + epochs * gpu_epoch, measured is not None


def _unit(data) -> str:
    if hasattr(data, "targets_per_example"):
        return "tokens"
    return "images" if len(tuple(data.input_shape)) == 3 else "samples"


def launch_line(meter: Meter, experiment: str, launch_jobs: list[Job]) -> Line:
    """The bill of one launch: a process started, its jobs one after another in it."""
    epochs = "/".join(str(e) for e in sorted({int(j.cfg.epochs) for j in launch_jobs}))
    try:
        datasets = {_key(job.cfg.data): meter.data(job.cfg) for job in launch_jobs}
        bills = [job_bill(meter, job.cfg, experiment) for job in launch_jobs]
    except (ConfigError, HydraException, OSError, ValueError, RuntimeError) as err:  # e.g. data not here
        cause = err.__cause__ or err
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        return Line(experiment, len(launch_jobs), epochs, 0, 0, "", float("nan"), None, False,
                    note=f"not measured here: {first}")
    # a dataset's first load in the process costs more than a later job's (caches)
    start = meter.process_s + sum(max(first - again, 0.0) for _, first, again in datasets.values())
    unit = _unit(next(iter(datasets.values()))[0])
    return Line(experiment, len(launch_jobs), epochs, sum(b[0] for b in bills), sum(b[1] for b in bills), unit,
                start + sum(b[2] for b in bills), start + sum(b[3] for b in bills), all(b[4] for b in bills))


def makespan(durations: list[float], slots: int) -> float:
    """Wall time of launches started in order, `slots` at a time, each as soon as one ends."""
    ends = [0.0] * max(1, slots)
    for duration in durations:
        ends[ends.index(min(ends))] += duration
    return max(ends)


def duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def count(n: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.1f}{suffix}"
    return f"{n:.0f}"


def wall_here(lines: list[Line], jobs: int, threads: int) -> float:
    """Launches `jobs` at a time; more busy threads than cores slow each one down alike."""
    crowding = max(1.0, jobs * threads / (os.cpu_count() or 1))
    return makespan([line.cpu_s * crowding for line in lines], jobs)


def row(name: str, lines: list[Line], jobs: int, threads: int) -> str:
    units = sorted({line.unit for line in lines if line.unit})
    samples = "; ".join(f"{count(sum(x.samples for x in lines if x.unit == u))} {u}" for u in units) or "—"
    measured = [line for line in lines if line.gpu_s is not None]
    gpu = sum(line.gpu_s for line in measured) if measured else None
    label = "measured" if measured and all(line.gpu_measured for line in measured) else "estimate"
    epochs = "/".join(sorted({e for line in lines for e in line.epochs.split("/")}, key=int))
    cpu = wall_here([line for line in lines if line.cpu_s == line.cpu_s], jobs, threads)
    missing = " (part not measured)" if any(line.note for line in lines) else ""
    return (f"| {name} | {sum(x.runs for x in lines)} | {epochs} | {count(sum(x.steps for x in lines))} | {samples} | "
            f"{duration(cpu)}{missing} | {duration(gpu)} ({label}) |")


def bill(per_figure: dict[str, list[tuple[str, list[str]]]], scale: str, jobs: int, runs_root: Path) -> str:
    """The bill of `reproduce.py figure=... scale=... dry_run=true`, as Markdown: one row per
    figure (and per launch below it), then the total, each experiment counted once."""
    threads = 1 if jobs > 1 else int(os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads())
    launches = list({e: (e, x) for pairs in per_figure.values() for e, x in pairs}.values())
    planned = plan(launches, scale, runs_root)
    meter = Meter(threads)
    lines = {experiment: launch_line(meter, experiment, launch_jobs) for experiment, launch_jobs in planned.items()}
    out = [f"Bill of `reproduce.py scale={scale}` (nothing run): jobs={jobs}, {threads} torch thread(s) per launch, "
           f"{os.cpu_count()} CPU cores here; a launch costs {meter.process_s:.1f} s to start and a job "
           f"{meter.job_s:.1f} s to compose and record.", "",
           f"| figure / launch | runs | epochs | optimiser steps | seen | wall time here | one {GPU_NAME} |",
           "|---|---|---|---|---|---|---|"]
    for figure, pairs in per_figure.items():
        mine = [lines[e] for e, _ in pairs]
        if not mine:
            out.append(f"| **{figure}** | 0 | | | | nothing trained (drawn from a measurement in-process) | |")
            continue
        out.append(row(f"**{figure}**", mine, jobs, threads))
        for line in mine:
            out.append(row(f"  {line.experiment}", [line], 1, threads) + (f" {line.note}" if line.note else ""))
    out.append(row("**total** (each experiment once)", list(lines.values()), jobs, threads))
    out += ["", f"Wall time here: each launch's jobs one after another, {jobs} launch(es) at a time, from throughput "
            f"measured now for {MEASURE_S:.0f} s on each distinct model, input and batch ({len(meter._costs)} of them) "
            "with the launch's thread count, plus loading its data, building, evaluating and checkpointing every "
            f"epoch. GPU: every job one after another on one GPU; 'estimate' = one step's FLOPs at "
            f"{GPU_FLOPS / 1e12:.0f} TFLOP/s fp32 or its kernels at {GPU_LAUNCH_S * 1e6:.0f} µs each, whichever is "
            "slower (BENCHMARKS.md has no GPU measurement for it), with the host's costs as measured here."]
    return "\n".join(out)
