"""Shared look and shared plumbing of the figure scripts (scripts/plot_*.py).

Every plot script reads runs through agd.results.load_runs (from a runs tree written by training,
or from a tree written by scripts/pull_wandb.py in the same schema), so this module only knows
how to find a figure's runs, how to draw the paper's recurring elements (η as a mean with a
min–max band, train solid / test dotted, log-scaled epoch axes) and how to save PNG + PDF.
No LaTeX: matplotlib's mathtext renders the few symbols.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on clusters or in tests
import matplotlib.pyplot as plt  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # agd without installing

from agd.results import load_runs  # noqa: E402

FIGURES_DIR = REPO_ROOT / "figures"

# one colour per optimiser, the same in every figure
OPTIMIZER_COLORS = {
    "agd": "#1f4e9c", "adam": "#d9731a", "sgd": "#3a8f3a", "adamw": "#b8860b",
    "prodigy": "#8e44ad", "dadapt_adam": "#c0392b", "schedulefree_adamw": "#16a085", "dog": "#7f8c8d",
}
OPTIMIZER_LABELS = {
    "agd": "AGD", "adam": "Adam", "sgd": "SGD", "adamw": "AdamW", "prodigy": "Prodigy",
    "dadapt_adam": "D-Adapt Adam", "schedulefree_adamw": "Schedule-Free AdamW", "dog": "DoG",
}
TRAIN_STYLE = dict(linestyle="-", linewidth=1.4)
TEST_STYLE = dict(linestyle=":", linewidth=1.6)


def setup() -> None:
    """A paper-like look: small serif text, thin spines, no top/right frame, light grid."""
    plt.rcParams.update({
        "font.family": "serif",
        "font.serif": ["DejaVu Serif"],
        "mathtext.fontset": "dejavuserif",
        "font.size": 8,
        "axes.titlesize": 8.5,
        "axes.labelsize": 8,
        "legend.fontsize": 7,
        "xtick.labelsize": 7,
        "ytick.labelsize": 7,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.linewidth": 0.6,
        "axes.grid": True,
        "grid.linewidth": 0.4,
        "grid.alpha": 0.35,
        "lines.linewidth": 1.3,
        "legend.frameon": False,
        "figure.dpi": 150,
        "savefig.dpi": int(os.environ.get("AGD_FIG_DPI", 200)),  # lower it for quick previews
        "savefig.bbox": "tight",
        "pdf.fonttype": 42,
    })


def runs_root(argv_root: str | None = None) -> Path:
    """The runs tree: `runs=<dir>` on the command line, else $AGD_RUNS_DIR, else <repo>/runs."""
    return Path(argv_root or os.environ.get("AGD_RUNS_DIR") or REPO_ROOT / "runs")


def load_group(group: str, root: str | os.PathLike | None = None, steps: bool = False):
    """Every run of one group (runs/<group>/...), one row per epoch (or step). Empty frame if
    the group has no runs yet."""
    path = runs_root(root) / group
    if not path.exists():
        return load_runs(path.parent / f".missing-{group}", steps=steps)
    return load_runs(path, steps=steps)


def optimizer_name(df):
    """The optimiser's short name per row, from its `_target_` (AGD, torch.optim.Adam, ...)."""
    def short(target: str) -> str:
        name = str(target).rsplit(".", 1)[-1].lower()
        return {"dadaptadam": "dadapt_adam", "adamwschedulefree": "schedulefree_adamw",
                "schedulefreeadamw": "schedulefree_adamw", "pdog": "dog"}.get(name, name)
    return df["optimizer._target_"].map(short)


DATASET_NAMES = {"mnist1d": "MNIST-1D", "digits": "digits", "cifar10": "CIFAR-10",
                 "cifar100": "CIFAR-100", "imagenet": "ImageNet", "mnist": "MNIST"}


def dataset_name(target: str) -> str:
    """'agd.data.mnist1d.load' -> 'MNIST-1D', 'agd.data.cifar.load_cifar100' -> 'CIFAR-100'."""
    module, func = str(target).rsplit(".", 2)[-2:]
    key = func.removeprefix("load_") if func.startswith("load_") else module
    return DATASET_NAMES.get(key, key)


def final_rows(df):
    """The last epoch of every run (one row per run_dir)."""
    if df.empty:
        return df
    return df.sort_values("epoch").groupby("run_dir", as_index=False).tail(1)


def band(ax, x, mean, low, high, color, label=None, **kw):
    """A mean line with a shaded min–max band (the paper's η and update-size panels)."""
    ax.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)
    ax.plot(x, mean, color=color, label=label, **kw)


def train_test(ax, x, train, test, color, label=None):
    """Train solid, test dotted, same colour."""
    ax.plot(x, train, color=color, label=label, **TRAIN_STYLE)
    ax.plot(x, test, color=color, **TEST_STYLE)


def split_legend(ax, loc="lower right"):
    """Legend entries that explain the line styles (train solid, test dotted)."""
    from matplotlib.lines import Line2D

    return [Line2D([], [], color="0.3", **TRAIN_STYLE, label="train"),
            Line2D([], [], color="0.3", **TEST_STYLE, label="test")]


def log_axis(ax, axis: str = "x") -> None:
    """Log scale with plain labels (1, 10, 100 or 2, 5 on short ranges), no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    target.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def log_epochs(ax, label="epoch"):
    log_axis(ax, "x")
    ax.set_xlabel(label)


def scale_note(fig, scale: str, text: str = "") -> None:
    """Every mini figure says so, so it is never mistaken for a paper-scale result. Call last:
    the note goes just below everything already drawn, right-aligned with it."""
    if scale != "mini":
        return
    renderer = fig.canvas.get_renderer()
    box = fig.get_tightbbox(renderer)  # inches
    width, height = fig.get_size_inches()
    note = "MINI SCALE (offline stand-in data, CPU budget): not a paper-scale reproduction"
    fig.text(box.x1 / width, box.y0 / height - 0.01, note + (f" — {text}" if text else ""),
             ha="right", va="top", fontsize=6, color="0.35", style="italic")


def empty_figure(name: str, message: str, out: str | os.PathLike | None = None) -> list[Path]:
    """A placeholder that says plainly why a figure has no data (e.g. runs not launched)."""
    setup()
    fig, ax = plt.subplots(figsize=(4, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return save(fig, name, out)


def save(fig, name: str, out: str | os.PathLike | None = None) -> list[Path]:
    """Write <out>/<name>.png and .pdf (out defaults to figures/) and close the figure."""
    out_dir = Path(out) if out else FIGURES_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path)
    plt.close(fig)
    print(f"wrote {paths[0]} and .pdf")
    return paths


def parse_args(argv: list[str], defaults: dict) -> dict:
    """key=value arguments, Hydra style, so every script reads like the training command."""
    args = dict(defaults)
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in defaults:
            raise SystemExit(f"unknown argument {item!r}; expected key=value with key in "
                             f"{sorted(defaults)}")
        args[key] = value
    return args


def figure_runs(figure: str, scale: str, runs: str | os.PathLike | None = None, steps: bool = False):
    """setup(), then (name, runs of the figure's group) with name = <figure>_<scale>."""
    setup()
    name = f"{figure}_{scale}"
    return name, load_group(name, runs, steps=steps)


def no_runs_figure(figure: str, scale: str, out: str | os.PathLike | None = None) -> list[Path]:
    """The placeholder drawn when a figure's runs have not been launched yet."""
    name = f"{figure}_{scale}"
    return empty_figure(name, f"no runs in {name}: run scripts/reproduce.py figure={figure} "
                              f"scale={scale}", out)


def cli(plot, argv: list[str]) -> None:
    """The command line shared by every plot script: scale=, runs=, out=."""
    args = parse_args(argv, {"scale": "mini", "runs": None, "out": None})
    plot(args["scale"], args["runs"], args["out"])
