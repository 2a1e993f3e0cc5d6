"""Time AGD against SGD, SGD+momentum and Adam: one optimiser step, or a whole training iteration.

    python scripts/bench_optimizer.py --threads 1                    # step only, CPU, three models
    python scripts/bench_optimizer.py --threads 1 --whole-iteration  # forward + backward + step
    python scripts/bench_optimizer.py --device cuda                  # on a GPU (adds CUDA-graph AGD)
    python scripts/bench_optimizer.py --compile                      # also torch.compile'd AGD step

Step only: gradients are filled once (random, the weights' shapes) and only `step()` is timed.
Whole iteration: zero_grad, forward, square loss, backward and step on one fixed batch, each
optimiser training its own copy of the same initialised model. Either way, rounds visit the
contenders in a fresh random order, each running a short burst, so machine load hits all of them
alike; the table gives medians and the ratios are taken within this one run (the load average
before and after is printed). On CUDA a timing spans `--inner` consecutive steps between two
synchronisations.

"AGD" is the readable step (`foreach=False`, docs/algorithm.md steps 1-3, one tensor at a time);
"AGD foreach" is agd/optim_fast.py, the same numbers over all tensors at once.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import random
import statistics
import time

import torch
from torch import nn

from agd import AGD, init_weights
from agd.losses import SquareLoss
from agd.models import FCN, VGG16, PreActResNet18

_CIFAR = dict(input_shape=(3, 32, 32), num_classes=10)

# the benchmark models, CIFAR-shaped with 10 classes, by the name --models takes
MODELS = {"fcn8x256": lambda: FCN(depth=8, width=256, **_CIFAR),
          "fcn16x512": lambda: FCN(depth=16, width=512, **_CIFAR),
          "vgg16": lambda: VGG16(**_CIFAR),
          "resnet18": lambda: PreActResNet18(**_CIFAR)}


# ---------------------------------------------------------------- models

def build(name: str) -> tuple[nn.Module, str]:
    """The benchmark model `name` and how the tables name it."""
    model = MODELS[name]()
    depth_width = f"(depth={model.depth}, width={model.width})" if isinstance(model, FCN) else ""
    return model, f"agd.models.{type(model).__name__}{depth_width}"


def model_names(parser: argparse.ArgumentParser, names: str) -> list[str]:
    """--models as a list; an unknown name is an argument error (exit 2) naming the choices."""
    names = names.split(",")
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        parser.error(f"--models: unknown model {unknown[0]!r}; choose from {', '.join(MODELS)}.")
    return names


# ---------------------------------------------------------------- timing

def optimisers(params, device, use_compile: bool, use_graph: bool) -> dict:
    made = {
        "AGD": AGD(params, check_finite=False, foreach=False),
        "AGD foreach": AGD(params, check_finite=False, foreach=True),
        "SGD": torch.optim.SGD(params, lr=0.1, foreach=True),
        "SGD+mom": torch.optim.SGD(params, lr=0.1, momentum=0.9, foreach=True),
    }
    try:
        made["Adam (fused)"] = torch.optim.Adam(params, lr=1e-3, fused=True)
    except (RuntimeError, ValueError):
        made["Adam (foreach)"] = torch.optim.Adam(params, lr=1e-3, foreach=True)
    steps = {name: opt.step for name, opt in made.items()}
    if use_compile:
        opt = AGD(params, check_finite=False, foreach=True)
        steps["AGD compiled"] = torch.compile(opt.step)
    if use_graph and device.type == "cuda":
        steps["AGD CUDA graph"] = cuda_graph_step(AGD(params, check_finite=False, foreach=True))
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


def whole_iterations(model: nn.Module, device, batch: int) -> dict:
    """name -> one training iteration (zero_grad, forward, loss, backward, step) of its own
    copy of `model` on one fixed batch."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (batch,), generator=gen).to(device)
    loss_fn = SquareLoss(10)
    makers = {
        "SGD+mom": lambda ps: torch.optim.SGD(ps, lr=1e-3, momentum=0.9, foreach=True),
        "AGD": lambda ps: AGD(ps, check_finite=False, foreach=False),
        "AGD foreach": lambda ps: AGD(ps, check_finite=False, foreach=True),
    }
    iterations = {}
    for name, make in makers.items():
        copy_ = copy.deepcopy(model)
        opt = make(copy_.parameters())

        def iteration(model=copy_, opt=opt):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()
        iterations[name] = iteration
    return iterations


def bench_model(name: str, device, args) -> tuple[dict, str, int]:
    torch.manual_seed(0)
    model, source = build(name)
    init_weights(model)
    model.to(device)
    params = [p for p in model.parameters()]
    if args.whole_iteration:
        steps = whole_iterations(model, device, args.batch)
    else:
        for p in params:  # gradients of the weights' shapes, filled once; only step() is timed
            p.grad = torch.randn_like(p) * 1e-3
        steps = optimisers(params, device, args.compile, args.cuda_graph)
    medians = time_steps(steps, device, args.repeats, args.inner, args.warmup, args.burst)
    return medians, source, sum(p.numel() for p in params)


def select_device(name: str, threads: int | None) -> torch.device:
    """--device auto|cpu|cuda and --threads, shared by both benchmarks."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for but CUDA is not available.")
    if threads:
        torch.set_num_threads(threads)
    return device


def hardware(device: torch.device) -> str:
    """The GPU's name, or the CPU and the torch threads, for the tables' header line."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def main(argv=None) -> int:
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
    parser.add_argument("--whole-iteration", action="store_true",
                        help="time forward + backward + step instead of the step alone")
    parser.add_argument("--batch", type=int, default=128, help="batch size for --whole-iteration")
    args = parser.parse_args(argv)
    names = model_names(parser, args.models)
    device = select_device(args.device, args.threads)
    if args.inner is None:
        args.inner = 20 if device.type == "cuda" else 1
    what = f"whole iteration, batch {args.batch}" if args.whole_iteration else "step"
    print(f"# AGD {what} benchmark: {device.type} ({hardware(device)}), torch {torch.__version__}, "
          f"median of {args.repeats} repeats x {args.inner}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.2f}")
    rows = []
    for name in names:
        medians, source, numel = bench_model(name, device, args)
        rows.append((name, source, numel, medians))
        print(f"#   {name}: {source}, {numel / 1e6:.2f}M weights", flush=True)
    print(f"# load average after: {os.getloadavg()[0]:.2f}")
    print_table(rows)
    return 0


def print_table(rows: list) -> None:
    columns = list(rows[0][3])
    ratios = [c for c in ("AGD", "AGD foreach") if c in columns]
    print()
    print("| model | " + " | ".join(f"{c} (ms)" for c in columns) + " | "
          + " | ".join(f"{c} / SGD+mom" for c in ratios) + " |")
    print("|---" * (len(columns) + len(ratios) + 1) + "|")
    for name, _, _, medians in rows:
        cells = " | ".join(f"{medians[c] * 1e3:.3f}" for c in columns)
        print(f"| {name} | {cells} | " + " | ".join(f"{medians[c] / medians['SGD+mom']:.3f}x" for c in ratios)
              + " |")
