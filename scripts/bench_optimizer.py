"""Time one optimiser step: reference AGD, our AGD, SGD, SGD+momentum, Adam (BENCHMARKS.md).

    python scripts/bench_optimizer.py                       # CPU, all three models
    python scripts/bench_optimizer.py --device cuda         # on a GPU (adds CUDA-graph AGD)
    python scripts/bench_optimizer.py --compile             # also torch.compile'd AGD step

Gradients are filled once (random, the weights' shapes) and only `step()` is timed. Rounds
visit the optimisers in random order, each running a short burst of steps, so machine load hits
all of them alike; the table gives the median over all timed steps and the ratios are taken
within this one run. On CUDA a repeat
times `--inner` consecutive steps between two synchronisations and divides.

`ReferenceAGD` below is the straightforward implementation of PAPER.md §1 that the issue asks
us to beat: a Python loop over tensors, `norm(dim=(0, 1))` per conv, η as a Python float (one
device-to-host sync per step), and the update written as the formula reads. It is here for
comparison only; tests/test_speed_optim.py checks that it and `agd.AGD` agree.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agd import AGD, init_weights  # noqa: E402
from agd.models import FCN  # noqa: E402


class ReferenceAGD:
    """PAPER.md §1 step by step, one tensor at a time (comparison only, not for training)."""

    def __init__(self, params, gain: float = 1.0):
        self.params = list(params)
        self.gain = gain

    @staticmethod
    def _scale(shape) -> float:
        if len(shape) == 2:
            return math.sqrt(shape[0] / shape[1])
        return math.sqrt(shape[0] / shape[1]) / math.sqrt(shape[2] * shape[3])

    @torch.no_grad()
    def step(self) -> float:
        depth = len(self.params)
        norms, summary = [], 0.0
        for p in self.params:
            if p.grad is None:
                norms.append(None)
                continue
            # Frobenius norm of the matrix, or of each kernel position of a conv (§1.1)
            norm = p.grad.norm() if p.dim() == 2 else p.grad.norm(dim=(0, 1))
            norms.append(norm)
            summary = summary + self._scale(p.shape) * norm.sum()
        summary = float(summary) / depth  # η as a Python float: a host sync
        eta = math.log((1 + math.sqrt(1 + 4 * summary)) / 2)
        for p, norm in zip(self.params, norms, strict=True):
            if norm is None:
                continue
            # a zero block has a zero gradient, so dividing by a tiny number keeps it 0 (§1.2)
            update = p.grad / norm.clamp_min(torch.finfo(norm.dtype).tiny)
            p -= eta / depth * self._scale(p.shape) * self.gain * update
        return eta


# ---------------------------------------------------------------- models

def vgg16(num_classes: int = 10) -> tuple[nn.Module, str]:
    from agd.models import VGG16
    return VGG16(num_classes=num_classes), "agd.models.VGG16"


def build(name: str) -> tuple[nn.Module, str]:
    if name == "fcn8x256":
        return FCN(8, 256, 3072, 10), "agd.models.FCN(8, 256, 3072, 10)"
    if name == "fcn16x512":
        return FCN(16, 512, 3072, 10), "agd.models.FCN(16, 512, 3072, 10)"
    if name == "vgg16":
        return vgg16()
    raise ValueError(f"unknown model {name!r}; choose fcn8x256, fcn16x512 or vgg16.")


# ---------------------------------------------------------------- timing

def optimisers(params, device, use_compile: bool, use_graph: bool) -> dict:
    made = {
        "ref AGD": ReferenceAGD(params),
        "AGD": AGD(params, check_finite=False),
        "SGD": torch.optim.SGD(params, lr=0.1, foreach=True),
        "SGD+mom": torch.optim.SGD(params, lr=0.1, momentum=0.9, foreach=True),
    }
    try:
        made["Adam (fused)"] = torch.optim.Adam(params, lr=1e-3, fused=True)
    except (RuntimeError, ValueError):
        made["Adam (foreach)"] = torch.optim.Adam(params, lr=1e-3, foreach=True)
    steps = {name: opt.step for name, opt in made.items()}
    if use_compile:
        opt = AGD(params, check_finite=False)
        steps["AGD compiled"] = torch.compile(opt.step)
    if use_graph and device.type == "cuda":
        steps["AGD CUDA graph"] = cuda_graph_step(AGD(params, check_finite=False))
    return steps


def cuda_graph_step(opt: AGD):
    """Capture one AGD step in a CUDA graph; replaying it is the step."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # warm-up outside the capture (allocator, lazy init)
            opt.step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        opt.step()
    return graph.replay


def time_steps(steps: dict, device, repeats: int, inner: int, warmup: int, burst: int) -> dict:
    """Median seconds per step of each entry of `steps`.

    Each round visits the optimisers in a fresh random order; each runs a burst of `burst`
    timed steps after one untimed one, so a step finds its own tensors as the previous step
    left them (as in consecutive training steps) rather than evicted by another optimiser.
    """
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    sync()
    times = {name: [] for name in steps}
    order = list(steps)
    shuffle = random.Random(0).shuffle
    for _ in range(max(1, repeats // burst)):
        shuffle(order)
        for name in order:
            fn = steps[name]
            fn()
            for _ in range(burst):
                sync()
                start = time.perf_counter()
                for _ in range(inner):
                    fn()
                sync()
                times[name].append((time.perf_counter() - start) / inner)
    return {name: statistics.median(ts) for name, ts in times.items()}


def bench_model(name: str, device, args) -> tuple[dict, str, int]:
    torch.manual_seed(0)
    model, source = build(name)
    init_weights(model)
    model.to(device)
    params = [p for p in model.parameters()]
    for p in params:  # gradients of the weights' shapes, filled once; only step() is timed
        p.grad = torch.randn_like(p) * 1e-3
    steps = optimisers(params, device, args.compile, args.cuda_graph)
    medians = time_steps(steps, device, args.repeats, args.inner, args.warmup, args.burst)
    return medians, source, sum(p.numel() for p in params)



def select_device(name: str, threads: int | None) -> torch.device:
    """--device auto|cpu|cuda and --threads, shared by both benchmark scripts."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for but CUDA is not available.")
    if threads:
        torch.set_num_threads(threads)
    return device

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--models", default="fcn8x256,fcn16x512,vgg16")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--burst", type=int, default=5, help="timed steps per optimiser per round")
    parser.add_argument("--inner", type=int, default=None, help="steps per timing (CUDA: 20)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(AGD.step)")
    parser.add_argument("--no-cuda-graph", dest="cuda_graph", action="store_false")
    args = parser.parse_args(argv)
    device = select_device(args.device, args.threads)
    if args.inner is None:
        args.inner = 20 if device.type == "cuda" else 1
    hardware = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    print(f"# AGD step benchmark: {device.type} ({hardware}), torch {torch.__version__}, "
          f"median of {args.repeats} repeats x {args.inner} step(s), "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    rows = []
    for name in args.models.split(","):
        medians, source, numel = bench_model(name, device, args)
        rows.append((name, source, numel, medians))
        print(f"#   {name}: {source}, {numel / 1e6:.2f}M weights", flush=True)
    columns = list(rows[0][3])
    sgdm = "SGD+mom"
    print()
    print("| model | " + " | ".join(f"{c} (ms)" for c in columns)
          + " | ref AGD / AGD | AGD / SGD+mom |")
    print("|---" * (len(columns) + 3) + "|")
    for name, _, _, medians in rows:
        cells = " | ".join(f"{medians[c] * 1e3:.3f}" for c in columns)
        print(f"| {name} | {cells} | {medians['ref AGD'] / medians['AGD']:.2f}x | "
              f"{medians['AGD'] / medians[sgdm]:.2f}x |")


if __name__ == "__main__":
    main()
