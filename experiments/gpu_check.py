"""One command for a machine with a GPU: every check that needs CUDA, and the numbers for
BENCHMARKS.md, in one run of at most about ten minutes on one GPU.

    python scripts/gpu_check.py                        # CUDA
    python scripts/gpu_check.py --device cpu --quick   # the same steps at small sizes (CI)

Steps, each timed, each failure reported and counted in the exit status (0 all passed, 1 not):
1. `pytest -m gpu` (tests/test_gpu.py: no host sync in a training step, the CUDA graph and
   torch.compile'd step, the fast step equal to the readable one); on a CPU all skip.
2. the benchmarks, as their CLIs run them (experiments/bench/): scripts/bench_optimizer.py
   --whole-iteration and scripts/bench_train.py, their tables printed as they come.
3. one epoch of fig2 (FCN 8x256) and of showcase-b (ResNet-18) at their paper settings (batch
   128, AGD, augmentation) through the training pipeline (experiments/pipeline.py), on synthetic
   images written in CIFAR-10's own pickle format in a temporary folder (data.root): 50,000
   train and 10,000 test images, as CIFAR-10 has (--quick: 64 and 32, batch 32). No CIFAR-10
   is needed: the timing does not depend on what the pixels show.
4. for the same two runs, measured on their own objects (experiments/build.py): the AGD step's
   share of a training iteration (forward, backward, step on one batch, against forward and
   backward alone), host syncs per optimiser step over one more epoch of the training loop
   (CUDA's sync debug mode counts every one, the once-per-epoch metric read included), and the
   peak GPU memory of that epoch.
The last table is the one to paste into BENCHMARKS.md, with the hardware line above it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from experiments import paths

RUNS = (("fig2", "FCN 8x256"), ("showcase_b", "ResNet-18"))
CIFAR_TRAIN_FILES = 5


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--quick", action="store_true", help="small sizes: seconds per step (CI keeps it working)")
    parser.add_argument("--skip-pytest", action="store_true", help="leave out step 1")
    return parser.parse_args(argv)


def write_synthetic_cifar10(root: Path, train: int, test: int, seed: int = 0) -> Path:
    """Random images and labels in CIFAR-10's official layout (agd/data/cifar.py reads it):
    <root>/cifar-10-batches-py/data_batch_1..5 and test_batch, pickled dicts of uint8 (N, 3072)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sizes = [train // CIFAR_TRAIN_FILES + (i < train % CIFAR_TRAIN_FILES) for i in range(CIFAR_TRAIN_FILES)]
    names = [f"data_batch_{i + 1}" for i in range(CIFAR_TRAIN_FILES)] + ["test_batch"]
    for name, n in zip(names, [*sizes, test], strict=True):
        entry = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, n).tolist(), b"batch_label": name.encode()}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=4)
    return folder


def compose(experiment: str, device: str, data_root: Path, quick: bool):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from experiments.build import register_resolvers

    register_resolvers()
    overrides = [f"experiment={experiment}", "scale=paper", "epochs=1", f"data.root={data_root}",
                 "data.download=false", "logger=none", "progress=false", f"device={device}", "seed=0",
                 *(["batch_size=32"] if quick else [])]
    with initialize_config_dir(config_dir=str(paths.REPO_ROOT / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def agd_share(parts, iterations: int) -> float:
    """The AGD step's share of a training iteration on the run's first batch: the median time of
    the step over the median time of the whole iteration (forward, loss, backward, step), each
    part timed between device synchronisations."""
    x, y = next(iter(parts.loaders[0]))
    model, optimizer, device = parts.model, parts.optimizer, parts.device
    if parts.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)

    def iteration() -> tuple[float, float]:
        sync(device)
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=parts.amp_dtype, enabled=parts.amp_dtype is not None):
            out = model(x)
        parts.loss_fn(out.float(), y).backward()  # the loss in fp32, as agd/train.py computes it
        sync(device)
        stepping = time.perf_counter()
        optimizer.step()
        sync(device)
        done = time.perf_counter()
        return done - stepping, done - started

    iteration()  # warm-up: kernels chosen, the optimiser's state and plans built
    timings = [iteration() for _ in range(iterations)]
    return statistics.median(t[0] for t in timings) / statistics.median(t[1] for t in timings)


def syncs_and_memory(parts) -> tuple[float | None, float | None]:
    """(host syncs per optimiser step, peak GPU memory in MB) over one epoch of agd.train's loop;
    (None, None) off CUDA, where there is no device to wait for."""
    from agd.train import train

    if parts.device.type != "cuda":
        return None, None
    train_loader, test_loader = parts.loaders
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train(parts.model, parts.optimizer, train_loader, test_loader, parts.loss_fn, 1, progress=False,
                  amp_dtype=parts.amp_dtype, channels_last=parts.channels_last)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = sum("synchroniz" in str(w.message) for w in caught)
    return syncs / len(train_loader), torch.cuda.max_memory_allocated() / 2**20


def measure_run(experiment: str, device: str, data_root: Path, runs: Path, quick: bool) -> dict:
    """One epoch through the pipeline, then the share, syncs and memory on fresh objects."""
    from experiments.build import build
    from experiments.pipeline import run

    cfg = compose(experiment, device, data_root, quick)
    try:
        summary = run(cfg, runs / experiment)
    except SystemExit as stopped:  # the pipeline's own way out; its sentence is on stderr above
        raise RuntimeError(f"{experiment}: the epoch stopped with exit status {stopped.code}") from None
    if summary.get("status") != "complete":
        raise RuntimeError(f"{experiment}: the epoch ended {summary.get('status')}: {summary.get('error')}")
    parts = build(cfg)
    share = agd_share(parts, iterations=3 if quick else 20)
    syncs, memory = syncs_and_memory(parts)
    return {"images": len(parts.data.x_train), "epoch_s": summary["time_s"], "share": share, "syncs": syncs,
            "memory": memory, "batch": cfg.batch_size, "precision": summary.get("precision")}


def bench_commands(device: str, quick: bool) -> list[list[str]]:
    """The benchmark CLIs' arguments: their defaults on CUDA, a few seconds each on a CPU."""
    if device == "cuda":
        return [["bench_optimizer", "--device", "cuda"], ["bench_optimizer", "--device", "cuda", "--whole-iteration"],
                ["bench_train", "--device", "cuda"]]
    if not quick:
        return [["bench_optimizer", "--device", "cpu", "--threads", "1"],
                ["bench_optimizer", "--device", "cpu", "--threads", "1", "--whole-iteration"],
                ["bench_train", "--device", "cpu"]]
    small = ["--device", "cpu", "--threads", "1", "--models", "fcn8x256"]
    return [["bench_optimizer", *small, "--repeats", "3", "--warmup", "1", "--burst", "1"],
            ["bench_optimizer", *small, "--repeats", "3", "--warmup", "1", "--burst", "1", "--whole-iteration",
             "--batch", "32"],
            ["bench_train", *small, "--images", "512", "--batch", "32", "--ref-workers", "0", "--skip-imagenet"]]


def run_bench(command: list[str]) -> tuple[bool, str]:
    """One benchmark through its CLI's main(), in this process; its output is echoed as it is."""
    from experiments.bench import optimizer, train

    main = {"bench_optimizer": optimizer.main, "bench_train": train.main}[command[0]]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(command[1:])
    print(out.getvalue(), flush=True)
    return code == 0, f"exit {code}"


def run_pytest(quick: bool) -> tuple[bool, str]:
    args = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
            *(["tests/test_gpu.py"] if quick else [])]
    proc = subprocess.run(args, cwd=paths.REPO_ROOT, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    tail = lines[-1].strip("= ") if lines else proc.stderr.strip()[-300:]
    if proc.returncode:
        print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n", flush=True)
    return proc.returncode == 0, tail


def step(results: list, name: str, action) -> object:
    """Run one step; record (name, passed, what it gave, seconds). A failing step is reported
    and counted, and the check goes on to the next."""
    started = time.perf_counter()
    try:
        passed, value = action()
    except Exception as err:  # noqa: BLE001 - any failure of a step is this step's result
        passed, value = False, f"failed: {type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''}"
    results.append((name, passed, value, time.perf_counter() - started))
    return value if passed else None


def print_tables(results: list, measured: dict, header: str) -> None:
    print(header)
    print()
    print("| step | result | wall (s) |")
    print("|---|---|---|")
    for name, passed, value, seconds in results:
        shown = value if isinstance(value, str) else "done"
        print(f"| {name} | {shown if passed else '**' + shown + '**'} | {seconds:.0f} |")
    print()
    print("| run (one epoch, AGD) | images/s (epoch incl. test pass) | AGD share of an iteration | "
          "host syncs / step | peak GPU memory (MB) |")
    print("|---|---|---|---|---|")
    for (experiment, model), m in measured.items():
        syncs = "n/a (CPU)" if m["syncs"] is None else f"{m['syncs']:.3f}"
        memory = "n/a (CPU)" if m["memory"] is None else f"{m['memory']:,.0f}"
        print(f"| {experiment}: {model}, batch {m['batch']}, {m['precision']} | {m['images'] / m['epoch_s']:,.0f} "
              f"({m['images']:,} images, {m['epoch_s']:.1f} s) | {100 * m['share']:.1f}% | {syncs} | {memory} |")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but CUDA is not available here; check the steps with "
              "--device cpu --quick.", file=sys.stderr)
        return 2
    from experiments.bench.optimizer import hardware

    device = torch.device(args.device)
    header = (f"# GPU check: {device.type} ({hardware(device)}), torch {torch.__version__}, "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}{', --quick sizes' if args.quick else ''}")
    results, measured = [], {}
    if not args.skip_pytest:
        step(results, "pytest -m gpu", lambda: run_pytest(args.quick))
    for command in bench_commands(args.device, args.quick):
        step(results, f"scripts/{command[0]}.py {' '.join(command[1:])}", lambda c=command: run_bench(c))
    with tempfile.TemporaryDirectory(prefix="agd-gpu-check-") as tmp:
        root = Path(tmp)
        train, test = (64, 32) if args.quick else (50_000, 10_000)
        step(results, f"synthetic CIFAR-10 files ({train:,} + {test:,} images)",
             lambda: (bool(write_synthetic_cifar10(root / "data", train, test)), "written"))
        for experiment, model in RUNS:
            value = step(results, f"{experiment} at paper settings, one epoch",
                         lambda e=experiment: (True, measure_run(e, args.device, root / "data", root / "runs",
                                                                 args.quick)))
            if value is not None:
                measured[(experiment, model)] = value
    print_tables(results, measured, header)
    return 0 if all(passed for _, passed, _, _ in results) else 1
