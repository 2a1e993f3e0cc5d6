"""PAPER.md §5 table1: optimiser memory (weights plus state) in units of the weights, measured
with agd.memory.measure after one real step, for each optimiser built from its conf/optimizer
config by the training pipeline's own builder. Writes figures/table1.md, figures/table1.csv and
a rendered table as figures/table1_<scale>.png/.pdf (the numbers do not depend on the scale;
the file name follows the driver's convention).

    python scripts/plot_table1.py [scale=mini|paper] [out=figures]
"""

from __future__ import annotations

import csv
import os
import sys
from functools import lru_cache
from pathlib import Path

import plot_style as ps

# (row name, optimizer config, extra overrides, the paper's number)
OPTIMIZERS = [
    ("agd", "agd", [], "1×"),
    ("sgd", "sgd", [], ""),
    ("sgd_momentum", "sgd", ["optimizer.momentum=0.9"], "2×"),
    ("adam", "adam", [], "3×"),
    ("adamw", "adamw", [], ""),
    ("prodigy", "prodigy", [], ""),
    ("dadapt_adam", "dadapt_adam", [], ""),
    ("schedulefree_adamw", "schedulefree_adamw", [], ""),
    ("dog", "dog", [], ""),
]
MODELS = [  # (label, model overrides, input shape, classes)
    ("FCN depth 8 width 256 (CIFAR-10 input)", ["model=fcn", "model.depth=8", "model.width=256"],
     (3, 32, 32), 10),
    ("ResNet-18 (CIFAR-10)", ["model=resnet18"], (3, 32, 32), 10),
]


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ps.REPO_ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides + ["logger=none"])


@lru_cache(maxsize=1)
def _measure_cached() -> tuple:
    return tuple(_measure())


def measure() -> list[dict]:
    """One row per (model, optimiser): bytes of weights and state, and the total multiple.
    Measured once per process (the plot and the report both ask)."""
    return [dict(row) for row in _measure_cached()]


def _measure() -> list[dict]:
    import torch
    from hydra.utils import get_class

    from agd.init import init_weights
    from agd.memory import measure as measure_memory
    from experiments.pipeline import build_optimizer, register_resolvers

    register_resolvers()
    rows = []
    for model_label, model_overrides, shape, classes in MODELS:
        for name, opt, extra, paper in OPTIMIZERS:
            try:
                cfg = _compose(model_overrides + [f"optimizer={opt}", *extra])
            except Exception as err:  # an optimizer config not (yet) in conf/optimizer
                print(f"table1: skipping {name}: {err}", file=sys.stderr)
                continue
            torch.manual_seed(0)
            node = {k: v for k, v in cfg.model.items() if k != "_target_"}
            cls = get_class(cfg.model._target_)
            import inspect

            params = inspect.signature(cls).parameters
            facts = {"in_dim": int(torch.tensor(shape).prod()), "out_dim": classes,
                     "num_classes": classes, "in_channels": shape[0], "input_shape": shape}
            model = cls(**node, **{k: v for k, v in facts.items() if k in params})
            if cfg.optimizer.init == "paper":
                init_weights(model)
            optimizer = build_optimizer(cfg.optimizer, model)
            x = torch.randn(4, *shape)
            y = torch.randint(0, classes, (4,))
            loss = torch.nn.functional.cross_entropy
            report = measure_memory(model, optimizer, x, y, loss)
            rows.append({"model": model_label, "optimizer": name,
                         "weights_MB": report.parameter_bytes / 2**20,
                         "state_MB": report.state_bytes / 2**20,
                         "ratio": report.total_multiple, "paper": paper})
    return rows


def plot(scale: str = "mini", runs: str | None = None, out: str | None = None):
    ps.setup()
    rows = measure()
    out_dir = Path(out) if out else ps.FIGURES_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "table1.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| model | optimiser | weights (MiB) | state (MiB) | weights + state (× weights) | paper |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {ps.OPTIMIZER_LABELS.get(r['optimizer'], 'SGD + momentum 0.9')} "
                     f"| {r['weights_MB']:.2f} | {r['state_MB']:.2f} | {r['ratio']:.2f}× | {r['paper']} |")
    (out_dir / "table1.md").write_text(
        "# Table 1: optimiser memory, measured (agd.memory.measure after one step)\n\n"
        + "\n".join(lines) + "\n")
    first = [r for r in rows if r["model"] == rows[0]["model"]]
    fig, ax = ps.plt.subplots(figsize=(4.0, 0.24 * len(first) + 0.6))
    ax.axis("off")
    cells = [[ps.OPTIMIZER_LABELS.get(r["optimizer"], "SGD + momentum 0.9"), f"{r['ratio']:.2f}×",
              r["paper"] or "—"] for r in first]
    table = ax.table(cellText=cells, colLabels=["optimiser", "measured", "paper"],
                     loc="center", cellLoc="center", colWidths=[0.45, 0.25, 0.2])
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.scale(1, 1.15)
    ax.set_title(f"Table 1: weights + optimiser state, in units of the weights\n"
                 f"(agd.memory after one step; {rows[0]['model']})", fontsize=7.5)
    return ps.save(fig, f"table1_{scale}", out)


def main(argv: list[str]) -> None:
    args = ps.parse_args(argv, {"scale": "mini", "runs": None, "out": None})
    os.environ.setdefault("AGD_RUNS_DIR", str(ps.runs_root(args["runs"])))
    plot(args["scale"], args["runs"], args["out"])


if __name__ == "__main__":
    main(sys.argv[1:])
