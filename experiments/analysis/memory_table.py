"""Table 1 (docs/experiments.md), measured: bytes of weights plus optimiser state after one step,
as multiples of the weights' bytes, for every optimiser config in conf/optimizer/ (plus SGD with
momentum 0.9, the paper's "SGD+momentum" row). The one place table 1 is computed: the figure
(plots/table1.py) and the report read `table()`.

    python scripts/memory_table.py                     # FCN depth 8 width 256 and ResNet-18, CIFAR-10 shapes
    python scripts/memory_table.py --out table1.md     # also write the Markdown table

Each model is built from its conf/model config with the uniform keywords `input_shape` and
`num_classes`, each optimiser from its config exactly as a run builds it (experiments.pipeline
build_optimizer), its interpolations resolved against the run-level keys of the measurement
itself, a one-step run (RUN_KEYS: adamw_cosine's schedule length `schedule_steps` is 1 step).
Inputs are random tensors of CIFAR-10's shape (3×32×32, 10 classes): the state an optimiser
allocates does not depend on the data. Runs on the CPU in about a minute. Every optimiser config
is measured: one that cannot be built (its package missing, a run-level key RUN_KEYS lacks)
stops the table with the error naming it, never a table with the row left out.
"""

from __future__ import annotations

import argparse
import sys
from functools import cache
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from agd.losses import SquareLoss
from agd.memory import measure
from experiments import paths
from experiments.pipeline import build_optimizer

INPUT_SHAPE, CLASSES = (3, 32, 32), 10
# (label, conf/model file, overrides)
MODELS = [("FCN depth 8 width 256 (CIFAR-10 input)", "fcn", {"depth": 8, "width": 256}),
          ("ResNet-18 (CIFAR-10)", "resnet18", {})]
PAPER = {"agd": "1×", "sgd_momentum": "2×", "adam": "3×"}  # the paper's table 1
# the top-level keys an optimiser config may interpolate, as a one-step run sets them (an
# experiment sets schedule_steps = epochs x steps per epoch; here 1 x 1)
RUN_KEYS = {"epochs": 1, "schedule_steps": 1}


def optimizer_names() -> list[str]:
    """agd first, then SGD+momentum, then every other conf/optimizer config, sorted."""
    names = sorted(p.stem for p in (paths.CONF_DIR / "optimizer").glob("*.yaml"))
    return ["agd", "sgd_momentum"] + [n for n in names if n != "agd"]


def optimizer_node(name: str):
    """The optimiser's config as a one-step run composes it: under a root holding RUN_KEYS, so
    `${schedule_steps}` and the like resolve; resolved before the build."""
    node = OmegaConf.load(paths.CONF_DIR / "optimizer" / f"{'sgd' if name == 'sgd_momentum' else name}.yaml")
    if name == "sgd_momentum":  # table 1's "SGD+momentum": the sgd config with momentum 0.9
        node.momentum = 0.9
    root = OmegaConf.create({**RUN_KEYS, "optimizer": node})
    OmegaConf.resolve(root)
    return root.optimizer


def build_model(config: str, overrides: dict) -> torch.nn.Module:
    node = OmegaConf.merge(OmegaConf.load(paths.CONF_DIR / "model" / f"{config}.yaml"), overrides)
    return instantiate(node, input_shape=INPUT_SHAPE, num_classes=CLASSES)


def measure_row(model_label: str, model: torch.nn.Module, opt_name: str, batch: int) -> dict:
    optimizer = build_optimizer(optimizer_node(opt_name), model)
    x, y = torch.randn(batch, *INPUT_SHAPE), torch.randint(0, CLASSES, (batch,))
    report = measure(model, optimizer, x, y, SquareLoss(CLASSES))
    return {"model": model_label, "optimizer": opt_name, "weights_MB": report.parameter_bytes / 2**20,
            "state_MB": report.state_bytes / 2**20, "state_bytes": report.state_bytes,
            "cache_bytes": report.cache_bytes, "state_x": report.state_multiple,
            "total_x": report.total_multiple, "state_tensors": report.state_tensors,
            "scalar_tensors": report.scalar_tensors, "paper": PAPER.get(opt_name, "")}


@cache
def _table(batch: int, seed: int) -> tuple:
    rows = []
    for label, config, overrides in MODELS:
        for opt_name in optimizer_names():
            torch.manual_seed(seed)
            rows.append(measure_row(label, build_model(config, overrides), opt_name, batch))
    return tuple(rows)


def table(batch: int = 4, seed: int = 0) -> list[dict]:
    """One row per (model, optimiser); measured once per process (figure and report both ask)."""
    return [dict(row) for row in _table(batch, seed)]


def markdown(rows: list[dict]) -> str:
    lines = ["| model | optimizer | weights (MiB) | state (MiB) | state (bytes) | other cached tensors (bytes) "
             "| state / weights | (weights + state + cache) / weights | state tensors (of which 0-d) | paper |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['optimizer']} | {r['weights_MB']:.2f} | {r['state_MB']:.2f} | "
                     f"{r['state_bytes']:,} | {r['cache_bytes']:,} | {r['state_x']:.3f} | {r['total_x']:.3f} | "
                     f"{r['state_tensors']} ({r['scalar_tensors']}) | {r['paper']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """scripts/memory_table.py [--out FILE]: print the table (and write it to FILE)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the Markdown table to this file")
    args = parser.parse_args(argv)
    try:
        text = markdown(table())
    except ModuleNotFoundError as err:  # a peer optimiser's package: one sentence, no partial table
        print(f"memory_table.py: table 1 measures every conf/optimizer config and needs the Python module "
              f"{err.name!r}, which is not installed; install the requirements (`pip install -r "
              "requirements.txt`).", file=sys.stderr)
        return 1
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0
