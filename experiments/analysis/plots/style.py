"""The shared look and plumbing of the figures (one module per figure beside this one).

Every figure reads its run groups through rundata.load_group (a runs tree written by training
or by scripts/pull_wandb.py, or the committed evidence folder), so this module only knows how to
draw the paper's recurring elements (η as a mean with a min–max band, train solid / test dotted,
log-scaled epoch axes), how to draw a setting's seeds (mean line, min–max band across seeds),
how to flag a figure whose runs depart from the declared budget, and where to save PNG + PDF:
`<runs root>/figures/` unless the user publishes (`publish=true` -> figures/). A placeholder
("no runs") never overwrites an existing figure. No LaTeX: matplotlib's mathtext renders the
few symbols. `cli` is the command line of every scripts/plot_<figure>.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on clusters or in tests
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from experiments import paths  # noqa: E402
from experiments.analysis import journal  # noqa: E402
from experiments.analysis import rundata as rd  # noqa: E402
from experiments.analysis.args import check_choice, entry, parse_keys  # noqa: E402

# one colour per optimiser, the same in every figure
OPTIMIZER_COLORS = {
    "agd": "#1f4e9c", "adam": "#d9731a", "sgd": "#3a8f3a", "adamw": "#b8860b",
    "prodigy": "#8e44ad", "dadapt_adam": "#c0392b", "schedulefree_adamw": "#16a085", "dog": "#7f8c8d",
    "adamw_cosine": "#b8860b", "agd_whole_model": "#5b7fc7",
}
OPTIMIZER_LABELS = {
    "agd": "AGD", "adam": "Adam", "sgd": "SGD", "adamw": "AdamW", "prodigy": "Prodigy",
    "dadapt_adam": "D-Adapt Adam", "schedulefree_adamw": "Schedule-Free AdamW", "dog": "DoG",
    "adamw_cosine": "AdamW (warm-up + cosine)", "agd_whole_model": "AGD (whole model)",
    **{f"agd{scope}_{variant}": f"AGD{name} + {what}" for scope, name in (("", ""), ("_whole_model", " (whole model)"))
       for variant, what in (("momentum", "momentum"), ("spectral", "spectral updates"), ("gain10", "gain 10"))},
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


DATASET_NAMES = {"mnist1d": "MNIST-1D", "digits": "digits", "cifar10": "CIFAR-10",
                 "cifar100": "CIFAR-100", "imagenet": "ImageNet", "mnist": "MNIST",
                 "fashion_mnist": "Fashion-MNIST", "text": "text"}


def dataset_name(target: str) -> str:
    """'agd.data.mnist1d.load' -> 'MNIST-1D', 'agd.data.cifar.load_cifar100' -> 'CIFAR-100'."""
    module, func = str(target).rsplit(".", 2)[-2:]
    key = func.removeprefix("load_") if func.startswith("load_") else module
    return DATASET_NAMES.get(key, key)


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
    return [Line2D([], [], color="0.3", **TRAIN_STYLE, label="train"),
            Line2D([], [], color="0.3", **TEST_STYLE, label="test")]


def log_axis(ax, axis: str = "x") -> None:
    """Log scale with plain labels (1, 10, 100 or 2, 5 on short ranges), no minor labels."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    target.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def log_epochs(ax, label="epoch"):
    log_axis(ax, "x")
    ax.set_xlabel(label)


def color(opt: str) -> str:
    """One colour per optimiser; a peer's recommended setting shares its raw-default colour."""
    return OPTIMIZER_COLORS.get(opt.removesuffix("_recommended"), "0.3")


def label(opt: str) -> str:
    base = opt.removesuffix("_recommended")
    name = OPTIMIZER_LABELS.get(base, base)
    return name + (" (recommended)" if opt != base else "")


def seed_line(ax, runs_df, column: str, color, x: str = "epoch", factor: float = 1.0,
              label=None, **style):
    """The mean over the runs (seeds) of one setting as a line, with a min–max band across the
    seeds when there are several. Returns the number of seeds."""
    curves = rd.seed_curves(runs_df, column, x)
    n = int(curves.n.max()) if not curves.empty else 0
    if n > 1:
        ax.fill_between(curves[x], factor * curves["min"], factor * curves["max"], color=color,
                        alpha=0.18, linewidth=0)
    ax.plot(curves[x], factor * curves["mean"], color=color, label=label, **style)
    return n


def envelope(ax, runs_df, prefix: str, color, x: str = "epoch", label=None, **style):
    """The paper's η / update-size look across seeds: the mean over seeds of the per-epoch mean
    `<prefix>_mean`, in a band from the lowest `<prefix>_min` to the highest `<prefix>_max` of
    any seed (with one seed: exactly the paper's min–max band over the epoch's steps)."""
    grouped = runs_df.groupby(x)
    band(ax, grouped[f"{prefix}_mean"].mean().index, grouped[f"{prefix}_mean"].mean(),
         grouped[f"{prefix}_min"].min(), grouped[f"{prefix}_max"].max(), color, label=label, **style)


def seeds_text(runs_df) -> str:
    n = runs_df.run.nunique() if not runs_df.empty else 0
    return f"{n} seeds" if n > 1 else "1 seed"


def scale_note(fig, scale: str, text: str = "", problems: list[str] | tuple = ()) -> None:
    """Every mini/small figure says its scale, so it is never mistaken for a paper-scale result,
    and every figure whose runs depart from the declared budget says how (in red). Call last:
    the notes go just below everything already drawn, right-aligned with it."""
    notes = []
    if scale in ("mini", "small"):
        what = ("offline stand-in data, CPU budget" if scale == "mini"
                else "real stand-in data, CPU budget, seeds as bands")
        notes.append((f"{scale.upper()} SCALE ({what}): not a paper-scale reproduction"
                      + (f" — {text}" if text else ""), "0.35"))
    if problems:
        notes.append(("BUDGET differs from the experiment's: " + "; ".join(problems), "#b00000"))
    if not notes:
        return
    renderer = fig.canvas.get_renderer()
    box = fig.get_tightbbox(renderer)  # inches
    width, height = fig.get_size_inches()
    y = box.y0 / height - 0.01
    for note, shade in notes:
        fig.text(box.x1 / width, y, note, ha="right", va="top", fontsize=6, color=shade,
                 style="italic", wrap=True)
        y -= 0.07 * 2.5 / height


def save(fig, name: str, out: str | os.PathLike | None = None, runs=None,
         placeholder: bool = False) -> list[Path]:
    """Write <out>/<name>.png and .pdf and close the figure; out defaults to
    rundata.default_out(runs), never figures/ (that takes out=figures or publish=true). Each
    file is drawn under a temporary name beside its own and renamed over it, so a stopped
    process never leaves a torn figure; the PDF carries no creation date, so the same data
    gives the same bytes. A placeholder never replaces an existing figure (also when `out` is
    a publication's staging folder: journal.py): the existing files are kept."""
    out_dir = Path(out) if out else rd.default_out(runs)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    final = [journal.published_path(p) for p in paths]
    if placeholder and any(p.exists() for p in final):
        plt.close(fig)
        print(f"no runs for {name}: kept the existing {final[0]}")
        return [p for p in final if p.exists()]
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in paths:
        kind = path.suffix[1:]  # savefig would read the format from the temporary name's suffix
        journal.write_atomically(path, lambda tmp, kind=kind: fig.savefig(
            tmp, format=kind, metadata={"CreationDate": None} if kind == "pdf" else None))
    plt.close(fig)
    print(f"wrote {final[0]} and .pdf")
    return paths


def finish_accuracy_figure(fig, ax, df, *, title: str, ylabel: str, name: str, scale: str, out=None,
                           runs=None) -> list[Path]:
    """The common end of the one-panel accuracy-per-epoch figures (showcase a and c): log epoch
    axis, 0-100% accuracy, the train/test legend beside the axes, the scale and budget note, save."""
    log_epochs(ax)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 102)
    ax.set_title(title)
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles + split_legend(ax), loc="center left", bbox_to_anchor=(1.0, 0.5))
    scale_note(fig, scale, problems=rd.budget_problems(df, name))
    return save(fig, name, out, runs)


def empty_figure(name: str, message: str, out=None, runs=None) -> list[Path]:
    """A placeholder that says plainly why a figure has no data (e.g. runs not launched)."""
    setup()
    fig, ax = plt.subplots(figsize=(4, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return save(fig, name, out, runs, placeholder=True)


def figure_runs(figure: str, scale: str, runs=None, steps: bool = False):
    """setup(), then (name, runs of the figure's group) with name = <figure>_<scale> (an evidence
    folder is settled by rundata.load_group: a publication stopped part-way is finished first)."""
    setup()
    name = f"{figure}_{scale}"
    return name, rd.load_group(name, runs, steps=steps)


def no_runs_figure(figure: str, scale: str, out=None, runs=None) -> list[Path]:
    """The placeholder drawn when a figure's runs have not been launched yet."""
    name = f"{figure}_{scale}"
    return empty_figure(name, f"no runs in {name}: run scripts/reproduce.py figure={figure} "
                              f"scale={scale}", out, runs)


def _plot_main(plot, argv: list[str]) -> int:
    args = parse_keys(argv, {"scale": "mini", "runs": None, "out": None, "publish": "false"})
    check_choice("scale", args["scale"], paths.SCALES)
    check_choice("publish", args["publish"], ("true", "false"))
    out = rd.output_dir(args["out"], args["publish"], args["runs"])
    if out.resolve() != paths.FIGURES_DIR.resolve():
        plot(args["scale"], args["runs"], str(out))
        return 0
    with journal.Publication(out) as publication:  # into figures/: its PNG and PDF both, or neither
        plot(args["scale"], args["runs"], str(publication.staging))
        publication.commit()
    return 0


def cli(plot, argv: list[str]) -> int:
    """The command line shared by every plot script: scale=, runs=, out=, publish=; a bad value
    is one sentence on stderr and exit 2."""
    return entry(lambda a: _plot_main(plot, a), argv)
