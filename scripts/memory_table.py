"""PAPER.md table1, measured: bytes of weights plus optimiser state after one step, as multiples
of the weights' bytes, for every optimiser config in conf/optimizer/.

    python scripts/memory_table.py                     # FCN depth 8 width 256 and ResNet-18, CIFAR-10 shapes
    python scripts/memory_table.py --out table1.md     # also write the Markdown table

Each optimiser is built from its config exactly as a run builds it (experiments.pipeline
build_optimizer). Inputs are random tensors of CIFAR-10's shape (3×32×32, 10 classes): the state
an optimiser allocates does not depend on the data. Runs on the CPU in about a minute.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agd.losses import SquareLoss  # noqa: E402
from agd.memory import measure  # noqa: E402
from agd.models import FCN, PreActResNet18  # noqa: E402
from experiments.pipeline import build_optimizer  # noqa: E402

OPTIMIZERS = ("agd", "sgd_momentum", "adam", "adamw", "prodigy", "dadapt_adam", "schedulefree_adamw", "dog")
MODELS = {
    "FCN depth 8 width 256 (in 3072, 10 classes)": lambda: FCN(depth=8, width=256, in_dim=3072, out_dim=10),
    "ResNet-18 (CIFAR-10)": lambda: PreActResNet18(num_classes=10),
}


def optimizer_node(name: str):
    if name == "sgd_momentum":  # table1's "SGD+momentum": the sgd config with momentum 0.9
        node = OmegaConf.load(REPO / "conf" / "optimizer" / "sgd.yaml")
        node.momentum = 0.9
        return node
    return OmegaConf.load(REPO / "conf" / "optimizer" / f"{name}.yaml")


def table(batch: int = 4, seed: int = 0) -> list[dict]:
    rows = []
    for model_name, make in MODELS.items():
        for opt_name in OPTIMIZERS:
            torch.manual_seed(seed)
            model = make()
            optimizer = build_optimizer(optimizer_node(opt_name), model)
            x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
            report = measure(model, optimizer, x, y, SquareLoss(10))
            rows.append({"model": model_name, "optimizer": opt_name, "weights_MB": report.parameter_bytes / 2**20,
                         "state_MB": report.state_bytes / 2**20, "state_bytes": report.state_bytes,
                         "cache_bytes": report.cache_bytes,
                         "state_x": report.state_multiple,
                         "total_x": report.total_multiple, "state_tensors": report.state_tensors,
                         "scalar_tensors": report.scalar_tensors})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| model | optimizer | weights (MiB) | state (MiB) | state (bytes) | other cached tensors (bytes) "
             "| state / weights | (weights + state + cache) / weights | state tensors (of which 0-d) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['optimizer']} | {r['weights_MB']:.2f} | {r['state_MB']:.2f} | "
                     f"{r['state_bytes']:,} | {r['cache_bytes']:,} | "
                     f"{r['state_x']:.3f} | {r['total_x']:.3f} | {r['state_tensors']} ({r['scalar_tensors']}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the Markdown table to this file")
    args = parser.parse_args()
    text = markdown(table())
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
