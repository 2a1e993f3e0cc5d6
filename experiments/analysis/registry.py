"""The figure registry: one entry per figure (or table) of the paper, and the beyond-the-paper
figures, each declaring everything the rest of the code needs to know about it:

    experiments  conf/experiment/<name>.yaml launched for it, in order (a run group may be shared:
                 fig1's ResNet-18 panel reuses showcase-b's runs, its ImageNet panel showcase-c's,
                 the paper's settings being the same)
    plot         its plot function (plots/<id>.py): plot(scale, runs, out) -> written paths
    claims       its published numbers and how our runs measure them (claims.Claim), one row each
                 of REPORT.md, in the order given here
    has_scale    False for what is measured rather than trained (table 1): no mini/small column
    in_all       False for a study launched on its own (the scaling figure: two hours at small
                 scale), which `figure=all` leaves out (all_ids)

`python scripts/reproduce.py figure=all` takes the figures of all_ids() in this order; adding a
figure is one entry here (docs/adding_a_figure.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from experiments.analysis import claims as cl
from experiments.analysis import scaling_claims as sc
from experiments.analysis.claims import Claim
from experiments.analysis.plots import (
    beyond,
    fig1,
    fig2,
    fig3,
    fig4,
    scaling,
    showcase_a,
    showcase_b,
    showcase_c,
    table1,
)


@dataclass(frozen=True)
class Figure:
    id: str
    experiments: tuple[str, ...]
    plot: Callable
    claims: tuple[Claim, ...] = ()
    has_scale: bool = True
    in_all: bool = True


GAP = "the gap is the difference of the two published numbers"
LR_GRID = "best of {1e-5..1e-1} by final train loss"

# longest first at small scale, so two at a time finish together (conf/scale/scaling_*/small.yaml)
SCALING_EXPERIMENTS = ("scaling_budget_baselines", "scaling_width_top_baselines", "scaling_width_baselines",
                       "scaling_budget", "scaling_fcn_baselines", "scaling_width_top", "scaling_augment_baselines",
                       "scaling_width", "scaling_augment", "scaling_fcn")
TREND = "AGD − tuned Adam test gap (points)"
SCALING_CLAIMS = tuple(
    claim for model, name in sc.SCALING_NAMES.items() for claim in (
        Claim(f"scaling.{model}_width", f"{name}: {TREND} grows with width (last vs first point with 3 seeds)",
              "—", "claim", sc.scaling_trend(model, "width"),
              note="not in the paper; the paper's gap is at width " + str(sc.PAPER_WIDTH[model])),
        Claim(f"scaling.{model}_steps", f"{name}: {TREND} grows with the step budget (8x the steps at one width)",
              "—", "claim", sc.scaling_trend(model, "steps"), note="not in the paper"),
        *((Claim(f"scaling.{model}_augment", f"{name}: {TREND} is larger without augmentation than at CIFAR's "
                 "padding (augmentation costs AGD more than Adam)", "—", "claim", sc.scaling_trend(model, "augment"),
                 note="not in the paper"),) if model != "fcn" else ()),
        Claim(f"scaling.{model}_at_paper_width", f"{name}: {TREND} at the paper's width {sc.PAPER_WIDTH[model]} "
              "(measured where the width axis reaches it, else read off the width trend)",
              f"{sc.PAPER_GAP[model]:g}", "points", sc.scaling_at_paper_width(model), tolerance=3.0,
              note=f"paper: fig1's published gap; {GAP}"),
    ))

_FIGURES = [
    Figure("showcase_a", ("showcase_a",), showcase_a.plot, (
        Claim("showcase_a.agd_train_acc", "AGD final train accuracy (FCN depth 32)", "100", "%",
              cl.number("showcase_a", "train_acc", opt="agd"), tolerance=2.0, note='paper: "~100%"'),
        Claim("showcase_a.adam_train_acc", "Adam(1e-3) default init: final train accuracy", "10", "%",
              cl.near_chance("showcase_a", "adam", "train_acc"),
              note="paper: fails to train, stays near chance (10% = 1/10 classes)"),
        Claim("showcase_a.sgd_train_acc", "SGD(0.1) default init: final train accuracy", "10", "%",
              cl.near_chance("showcase_a", "sgd", "train_acc"), note="paper: fails to train, stays near chance"),
    )),
    Figure("showcase_b", ("showcase_b", "showcase_b_baselines"), showcase_b.plot, (
        Claim("showcase_b.agd_vs_best_test",
              "AGD final test accuracy minus best-tuned Adam/SGD over lr 1e-7..1e1", "0", "points",
              cl.showcase_b_gap, tolerance=3.0, note='paper: "comparable" (qualitative)'),
    )),
    Figure("showcase_c", ("showcase_c",), showcase_c.plot, (
        Claim("showcase_c.agd_top1", "AGD ResNet-50 ImageNet top-1 test accuracy after 350 epochs", "65.5", "%",
              cl.number("showcase_c", "test_acc", opt="agd"), tolerance=1.0),
    )),
    Figure("fig1", ("fig1_fcn", "fig1_fcn_baselines", "showcase_b", "showcase_b_baselines", "fig1_vgg16",
                    "fig1_vgg16_baselines", "showcase_c"), fig1.plot, (
        Claim("fig1.fcn_agd_test", "FCN depth 16 width 512 CIFAR-10: AGD final test accuracy", "52.7", "%",
              cl.number("fig1_fcn", "test_acc", opt="agd"), tolerance=1.0),
        Claim("fig1.fcn_adam_test", "FCN depth 16 width 512 CIFAR-10: tuned Adam final test accuracy", "53.5", "%",
              cl.tuned_number("fig1_fcn", "adam", "test_acc"), tolerance=1.0),
        Claim("fig1.fcn_agd_vs_adam", "FCN depth 16 width 512 CIFAR-10: AGD final test accuracy minus tuned Adam's "
              "(comparable: within ±3 points)", "-0.8", "points", cl.agd_vs_tuned("fig1_fcn", "adam"),
              tolerance=3.0, note=f"paper: AGD comparable to tuned Adam; {GAP}"),
        Claim("fig1.resnet18_agd_test", "ResNet-18 CIFAR-10: AGD final test accuracy", "91.2", "%",
              cl.number("showcase_b", "test_acc", opt="agd"), tolerance=1.0),
        Claim("fig1.resnet18_adam_test", "ResNet-18 CIFAR-10: tuned Adam final test accuracy", "92.9", "%",
              cl.tuned_number("showcase_b", "adam", "test_acc"), tolerance=1.0,
              note="a fully tuned SGD recipe with biases reaches 93.0% (not rerun here)"),
        Claim("fig1.resnet18_agd_vs_adam", "ResNet-18 CIFAR-10: AGD final test accuracy minus tuned Adam's "
              "(comparable: within ±3 points)", "-1.7", "points", cl.agd_vs_tuned("showcase_b", "adam"),
              tolerance=3.0, note=f"paper: AGD comparable to tuned Adam; {GAP}"),
        Claim("fig1.vgg16_agd_test", "VGG-16 CIFAR-100: AGD final test accuracy", "67.4", "%",
              cl.number("fig1_vgg16", "test_acc", opt="agd"), tolerance=1.0),
        Claim("fig1.vgg16_adam_test", "VGG-16 CIFAR-100: tuned Adam final test accuracy", "69.7", "%",
              cl.tuned_number("fig1_vgg16", "adam", "test_acc"), tolerance=1.0),
        Claim("fig1.vgg16_agd_vs_adam", "VGG-16 CIFAR-100: AGD final test accuracy minus tuned Adam's "
              "(comparable: within ±3 points)", "-2.3", "points", cl.agd_vs_tuned("fig1_vgg16", "adam"),
              tolerance=3.0, note=f"paper: AGD comparable to tuned Adam; {GAP}"),
        Claim("fig1.resnet50_agd_top1", "ResNet-50 ImageNet (cross-entropy batch 1024): AGD top-1 test accuracy",
              "65.5", "%", cl.number("showcase_c", "test_acc", opt="agd"), tolerance=1.0,
              note="same runs as showcase_c"),
    )),
    Figure("fig2", ("fig2", "fig2_baselines"), fig2.plot, (
        Claim("fig2.adam_tuned_lr", "FCN depth 8 width 256: tuned Adam learning rate", "1e-4", "lr",
              cl.tuned_lr("fig2", "adam"), note=LR_GRID),
        Claim("fig2.sgd_tuned_lr", "FCN depth 8 width 256: tuned SGD learning rate", "1e-1", "lr",
              cl.tuned_lr("fig2", "sgd"), note=LR_GRID),
        Claim("fig2.agd_below_sgd", "AGD final objective below tuned SGD's", "true", "claim",
              cl.below("fig2", "agd", "sgd")),
        Claim("fig2.adam_below_sgd", "tuned Adam final objective below tuned SGD's", "true", "claim",
              cl.below("fig2", "adam", "sgd")),
    )),
    Figure("fig3", ("fig3",), fig3.plot, (
        Claim("fig3.best_test", "best final test accuracy over the grid", "63.7", "%",
              cl.fig3_extreme(best=True, cell=False), tolerance=1.0, note="at depth 4 width 2048"),
        Claim("fig3.best_cell", "grid cell with the best test accuracy", "depth 4 / widest", "cell",
              cl.fig3_extreme(best=True, cell=True), note="paper: depth 4 width 2048 (the widest)"),
        Claim("fig3.worst_test", "worst final test accuracy over the grid", "42.55", "%",
              cl.fig3_extreme(best=False, cell=False), tolerance=1.0, note="at depth 2 width 64"),
        Claim("fig3.worst_cell", "grid cell with the worst test accuracy", "depth 2 / narrowest", "cell",
              cl.fig3_extreme(best=False, cell=True), note="paper: depth 2 width 64 (the narrowest)"),
        Claim("fig3.wider_trains_better", "at every depth final train loss falls as width grows", "true", "claim",
              cl.fig3_wider, note="checked on every adjacent width pair"),
        Claim("fig3.depth_8_16_beat_32",
              "depth 8 and 16 reach a lower final train loss than depth 32 (at every width)", "true", "claim",
              cl.fig3_depth),
    )),
    Figure("fig4", ("fig4",), fig4.plot, (
        *(Claim(f"fig4.test_b{batch}", f"final test accuracy at batch {batch}", published, "%",
                cl.number("fig4", "test_acc", batch_size=batch), tolerance=1.0)
          for batch, published in ((32, "55.0"), (128, "58.0"), (1024, "60.0"), (4096, "59.8"))),
        Claim("fig4.eta_dips_more_at_large_batch", "η dips early, more so at large batch (min η over the recorded "
              "first iterations / η of step 1, smallest at the largest batch)", "true", "claim", cl.fig4_dip),
    )),
    Figure("table1", (), table1.plot, (
        Claim("table1.agd", "AGD optimiser memory (weights + state) in units of #weights", "1", "x",
              cl.table1("agd")),
        Claim("table1.sgd_momentum", "SGD with momentum optimiser memory in units of #weights", "2", "x",
              cl.table1("sgd_momentum")),
        Claim("table1.adam", "Adam optimiser memory in units of #weights", "3", "x", cl.table1("adam")),
    ), has_scale=False),
    # beyond the paper: parameter-free peers on the showcase-a and fig2 settings, biases, a GPT,
    # transfer across widths and AGD's variants; judged in REPORT.md's beyond sections (report_beyond).
    # The ResNet-18 variants reuse showcase_b's runs, launched by figure=showcase_b (their mini
    # smoke run trains its own references)
    Figure("beyond", ("showcase_a", "beyond_showcase_a", "fig2", "fig2_baselines", "beyond_fig2", "beyond_bias",
                      "beyond_gpt", "beyond_gpt_baselines", "beyond_gpt_best", "beyond_gpt_peers",
                      "beyond_transfer", "beyond_transfer_baselines", "beyond_transfer_wide",
                      "beyond_transfer_wide_baselines", "beyond_variants_gpt", "beyond_variants_fcn",
                      "beyond_variants_resnet18"),
           beyond.plot),
    # beyond the paper: the trend from small to paper scale of the gap behind fig1's CNN claims
    Figure("scaling", SCALING_EXPERIMENTS, scaling.plot, SCALING_CLAIMS, in_all=False),
]
FIGURES: dict[str, Figure] = {f.id: f for f in _FIGURES}


def figure_ids() -> list[str]:
    """Every registered figure, in the registry's order: every valid `figure=` value."""
    return list(FIGURES)


def all_ids() -> list[str]:
    """The figures `figure=all` launches, draws and exports: all but those launched on their own."""
    return [f.id for f in _FIGURES if f.in_all]


def claims() -> list[tuple[Figure, Claim]]:
    """Every claim of every figure, in the registry's order (REPORT.md's rows)."""
    return [(figure, claim) for figure in FIGURES.values() for claim in figure.claims]
