"""Verdicts that decide: the convergence criterion (experiments/analysis/convergence.py) with its
numbers by hand, a claim on an unconverged group reading 'undecided (not converged)', the one
rule for "tuned" (training objective, mean of the last 3 epochs; never the test split), each
group's commit against HEAD, and the scaling figure's points and trend claims, on synthetic runs
in the real on-disk schema (tests/runtrees.py)."""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest
from runtrees import make_run, seeded, small_tree

from experiments import paths
from experiments.analysis import claims, evidence, registry, report, scaling_claims
from experiments.analysis import convergence as conv
from experiments.analysis import rundata as rd


@pytest.fixture(autouse=True)
def _no_memory_measurement(monkeypatch):
    monkeypatch.setattr(claims, "memory_rows", lambda: [])


def records_of(root):
    text, records = report.build(root)
    return text, {(r["id"], r["scale"]): r for r in records}


# ---- the criterion ----

def curve(losses, accs) -> pd.DataFrame:
    return pd.DataFrame({"train_loss": losses, "test_acc": accs}, index=range(1, len(losses) + 1))


def test_the_criterion_by_hand():
    """8 epochs: the last quarter is epochs 7-8, windows of 2 epochs (min(3, quarter)): start =
    epochs 5-6, end = 7-8. Loss: (0.43 - 0.39) / 1.0 = 4.0% < 5%; accuracy: 72.5 - 71.0 = +1.5
    points >= 0.5: not converged; with the accuracy flat it is."""
    losses = [1.0, 0.8, 0.6, 0.5, 0.44, 0.42, 0.40, 0.38]
    fall, rise = conv.criterion(curve(losses, [0.3, 0.5, 0.6, 0.65, 0.70, 0.72, 0.72, 0.73]))
    assert fall == pytest.approx(0.04) and rise == pytest.approx(1.5)
    assert not conv.passes(curve(losses, [0.3, 0.5, 0.6, 0.65, 0.70, 0.72, 0.72, 0.73]))
    assert conv.passes(curve(losses, [0.3, 0.5, 0.6, 0.65, 0.72, 0.72, 0.722, 0.722]))
    # the loss measured against epoch 1's: 0.06 of 1.0 is not below 5%
    assert not conv.passes(curve([1.0, 0.8, 0.6, 0.5, 0.46, 0.46, 0.40, 0.40], [0.5] * 8))
    assert conv.criterion(curve([1.0], [0.5])) == (None, None)  # one epoch: nothing to judge


def test_converged_from_is_the_budget_from_which_every_longer_prefix_passes():
    losses = [1.0, 0.6, 0.4, 0.3, 0.25, 0.22, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
    accs = [0.3, 0.5, 0.6, 0.65, 0.68, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]
    found = conv.converged_from(curve(losses, accs))
    assert found is not None and all(conv.passes(curve(losses[:e], accs[:e])) for e in range(found, 13))
    assert not conv.passes(curve(losses[:found - 1], accs[:found - 1]))
    assert conv.converged_from(curve(losses[:4], accs[:4])) is None


def test_a_claim_on_an_unconverged_group_is_undecided(tmp_path):
    """Adam near chance is 'held' on converged runs; once AGD's curves of the same group still
    climb at the end, every verdict drawn from the group reads undecided, with the numbers."""
    root = tmp_path / "runs"
    kw = {"depth": 32, "scale": "small", "epochs": 12}
    seeded(root, "showcase_a_small", "optimizer=agd", [{"final_acc": a} for a in (0.95, 0.96, 0.97)],
           converged=False, **kw)
    seeded(root, "showcase_a_small", "optimizer=adam", [{"final_acc": a} for a in (0.106, 0.110, 0.102)],
           opt="adam", lr=1e-3, **kw)
    text, got = records_of(root)
    assert got[("showcase_a.adam_train_acc", "small")]["verdict"] == conv.UNDECIDED
    assert got[("showcase_a.agd_train_acc", "small")]["verdict"] == "shown"  # a number is not a verdict
    row = next(line for line in text.splitlines() if line.startswith("| `showcase_a_small` | AGD |"))
    assert row.endswith("| no | not within 12 |")
    assert "`showcase_a.adam_train_acc` is undecided (not converged) at small scale" in text


def test_final_values_are_the_mean_of_the_last_three_epochs(tmp_path):
    """A run still rising: linear to 0.96 at epoch 12, so its last three epochs average 0.90 (the
    slope is 0.86/12 per epoch) and the cell shows the last epoch beside it."""
    root = tmp_path / "runs"
    make_run(root, "showcase_a_small", "optimizer=agd", final_acc=0.96, depth=32, epochs=12, scale="small",
             converged=False)
    _, got = records_of(root)
    assert got[("showcase_a.agd_train_acc", "small")]["value"] == "88.8 (n=1; last epoch 96.0)"


# ---- the one rule for "tuned" ----

def test_tuned_is_chosen_on_the_training_objective_never_on_test_accuracy(tmp_path):
    """showcase-b: Adam 1e-3 reaches the lower train loss but the lower test accuracy; 1e-2 the
    higher test accuracy. The tuned baseline is 1e-3 (it was 1e-2: chosen on the test split)."""
    root = tmp_path / "runs"
    kw = {"scale": "small", "data": "agd.data.fashion_mnist.load"}
    seeded(root, "showcase_b_small", "optimizer=agd", [{"final_acc": 0.8}] * 3, **kw)
    seeded(root, "showcase_b_small", "optimizer.lr=0.001,optimizer=adam", [{"final_acc": 0.85, "final_loss": 0.05}] * 3,
           opt="adam", lr=1e-3, **kw)
    seeded(root, "showcase_b_small", "optimizer.lr=0.01,optimizer=adam", [{"final_acc": 0.95, "final_loss": 0.2}] * 3,
           opt="adam", lr=1e-2, **kw)
    _, got = records_of(root)
    # test accuracy is final_acc - 0.1 (runtrees): AGD 70.0, Adam at 1e-3 75.0
    assert got[("showcase_b.agd_vs_best_test", "small")]["mean"] == pytest.approx(-5.0)
    assert got[("fig1.resnet18_agd_vs_adam", "small")]["mean"] == pytest.approx(-5.0)


def test_tuned_reads_the_last_three_epochs_not_the_last_one(tmp_path):
    """lr 1e-3 ends lowest (0.10) but is still falling: its last three epochs average 0.19;
    lr 1e-4 sits at 0.15. The tuned lr is 1e-4."""
    root = tmp_path / "runs"
    make_run(root, "fig2_small", "optimizer.lr=0.001,optimizer=adam", opt="adam", lr=1e-3, final_loss=0.10,
             epochs=10, converged=False)
    make_run(root, "fig2_small", "optimizer.lr=0.0001,optimizer=adam", opt="adam", lr=1e-4, final_loss=0.15,
             epochs=10)
    best = rd.tuned(rd.load_group("fig2_small", root), "adam")
    assert list(best["optimizer.lr"]) == [1e-4]
    assert best.train_loss.iloc[0] == pytest.approx(0.15) and best.train_loss_last.iloc[0] == pytest.approx(0.15)


# ---- provenance: the commit of every group, against HEAD ----

def git(*args) -> str:
    return subprocess.run(["git", "-C", str(paths.REPO_ROOT), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def commits():
    """(HEAD, a commit whose training code differs from HEAD's)."""
    try:
        head = git("rev-parse", "HEAD")
        older = git("rev-parse", git("log", "-n", "1", "--format=%H", "--", "agd") + "^")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no git history here to compare commits with")
    return head, older


def test_each_group_shows_its_commit_and_whether_it_is_the_code_at_head(tmp_path, commits):
    head, older = commits
    root = tmp_path / "runs"
    kw = {"depth": 32, "scale": "small"}
    clean = {"commit": head, "dirty": False, "mixed_code": False}
    make_run(root, "showcase_a_small", "optimizer=agd", summary=clean, **kw)
    make_run(root, "showcase_a_small", "optimizer=sgd", opt="sgd", lr=0.1, summary=clean, **kw)
    for opt, lr, summary in (("agd", None, {"commit": older, "dirty": False}), ("adam", 1e-4, clean)):
        make_run(root, "fig2_small", f"optimizer={opt}", opt=opt, lr=lr, depth=8, summary=summary, scale="small")
    make_run(root, "fig3_small", "model.depth=8,model.width=8", depth=8, width=8, scale="small",
             summary={**clean, "dirty": True})
    text, _ = records_of(root)
    row = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| `")
           and line.count("|") == 10}
    assert row["`showcase_a_small`"].endswith(f"| {head[:10]} | yes |")
    assert f"several: {sorted([head, older])[0][:10]} (1 runs), {sorted([head, older])[1][:10]} (1 runs)" \
        in row["`fig2_small`"] and row["`fig2_small`"].endswith("| no: runs differ (no; yes) |")
    assert row["`fig3_small`"].endswith("| no (uncommitted changes) |")
    assert "**Stale or unstamped evidence** (2 of 3 groups)" in text
    # runs without a commit (made before runs recorded one), and commits git does not know
    assert rd.run_code(pd.Series({"commit": None})) == "not recorded"
    assert rd.run_code(pd.Series({"commit": "0" * 40, "dirty": False})) == "unknown"


def test_the_evidence_keeps_each_runs_commit(tmp_path, commits):
    head, _ = commits
    root = tmp_path / "runs"
    make_run(root, "fig2_small", "optimizer=agd", depth=8, scale="small",
             summary={"commit": head, "dirty": False, "mixed_code": False})
    evidence.export(root, "small", ["fig2_small"], tmp_path / "data")
    df = rd.load_group("fig2_small", tmp_path / "data")
    assert list(df.commit.unique()) == [head] and not df.dirty.any()
    assert rd.group_code(df) == (head[:10], "yes")


# ---- the scaling figure ----

def scaling_tree(root, width_epochs: int = 16):
    """ResNet-18 at small scale: the budget group (width 8, 16 epochs of 10 steps, its curves flat
    from epoch 10) and the width group (width 16, `width_epochs` epochs); at the end AGD is 10
    points under tuned Adam (lr 1e-3, the lower train loss) at width 8 and level at width 16;
    three seeds, final accuracies 1 point apart."""
    resnet = {"model": "agd.models.PreActResNet18", "scale": "small", "data": "agd.data.fashion_mnist.load"}
    for group, width, epochs, gap in (("scaling_budget_small", 8, 16, 0.10),
                                      ("scaling_width_small", 16, width_epochs, 0.0)):
        name = "model=resnet18" + (f",model.width={width}" if group == "scaling_width_small" else "")
        seeded(root, group, f"{name},optimizer=agd", [{"final_acc": 0.8 - gap + d} for d in (-0.01, 0, 0.01)],
               width=width, epochs=epochs, **resnet)
        for lr, loss in ((3e-4, 0.2), (1e-3, 0.1)):
            seeded(root, group, f"{name},optimizer.lr={lr},optimizer=adam",
                   [{"final_acc": 0.8 + d, "final_loss": loss} for d in (-0.01, 0, 0.01)], opt="adam", lr=lr,
                   width=width, epochs=epochs, **resnet)
    return root


def test_scaling_points_and_trend(tmp_path):
    root = scaling_tree(tmp_path / "runs")
    ctx = claims.Ctx(root, "small")
    widths = scaling_claims.width_points(ctx, "resnet18")
    assert [p.x for p in widths] == [8.0, 16.0] and [p.seeds for p in widths] == [3, 3]
    assert widths[0].gap == pytest.approx(-10.0) and widths[1].gap == pytest.approx(0.0) and widths[1].lr == 1e-3
    steps = scaling_claims.step_points(ctx, "resnet18")
    assert [p.x for p in steps] == [20.0, 40.0, 80.0, 160.0] and steps[-1].gap == pytest.approx(-10.0)
    _, got = records_of(root)
    width = got[("scaling.resnet18_width", "small")]
    assert width["mean"] == pytest.approx(10.0) and width["verdict"] == "held"  # +10 points, spread 1
    # the step axis: only its full budget must converge; its 2-epoch prefix is on the ramp
    # (test accuracy 0.1 + (final - 0.2) * e / 10: AGD 0.1 + 0.5 * 0.15, Adam 0.1 + 0.6 * 0.15)
    assert steps[0].gap == pytest.approx(-1.5)
    assert got[("scaling.resnet18_steps", "small")]["mean"] == pytest.approx(-8.5)
    assert got[("scaling.resnet18_steps", "small")]["verdict"] == "did not hold"
    at64 = got[("scaling.resnet18_at_paper_width", "small")]
    # a line through (8, -10) and (16, 0): +10 points per doubling, two doublings on to 64
    assert at64["verdict"] == "shown" and at64["mean"] == pytest.approx(20.0)


def test_a_width_point_read_from_an_unconverged_prefix_leaves_the_trend_undecided(tmp_path):
    """With the width axis at 4 epochs, width 8 is the budget group's first 4 epochs, still on
    their ramp: the width trend is undecided (not converged), its numbers shown."""
    root = scaling_tree(tmp_path / "runs", width_epochs=4)
    text, got = records_of(root)
    assert got[("scaling.resnet18_width", "small")]["verdict"] == conv.UNDECIDED
    assert "| `scaling_budget_small` (first 4 epochs) | AGD |" in text


def test_resnet18_and_vgg16_follow_ups_cite_the_scaling_figure(tmp_path):
    root = small_tree(tmp_path / "runs")
    seeded(root, "showcase_b_small", "optimizer=agd", [{"final_acc": 0.5}] * 3, scale="small")
    seeded(root, "showcase_b_small", "optimizer.lr=0.001,optimizer=adam", [{"final_acc": 0.9}] * 3, opt="adam",
           lr=1e-3, scale="small")
    text, got = records_of(root)
    assert got[("showcase_b.agd_vs_best_test", "small")]["verdict"] == "did not hold"
    section = text.split("## Follow-ups")[1].split("## Convergence")[0]
    block = section.split("* `fig1.resnet18_agd_vs_adam` did not hold")[1].split("\n* ")[0]
    assert "the trend with width, steps and augmentation (figures/scaling_small.png): not run yet" in block


def test_the_scaling_study_is_launched_on_its_own():
    assert "scaling" in registry.figure_ids() and "scaling" not in registry.all_ids()


def test_final_values_of_concatenated_groups_are_one_row_per_run(tmp_path):
    """Two groups read and concatenated keep their own index labels (0, 1, ... twice): still one
    final row per run, each the mean of its own last 3 epochs."""
    root = tmp_path / "runs"
    make_run(root, "fig2_small", "optimizer=agd", final_loss=0.1, epochs=6, depth=8)
    make_run(root, "beyond_fig2_small", "optimizer=agd", final_loss=0.3, epochs=6, depth=8)
    both = pd.concat([rd.load_group("fig2_small", root), rd.load_group("beyond_fig2_small", root)])
    assert both.index.duplicated().any()
    final = rd.final_means(both)
    assert len(final) == 2 and sorted(final.train_loss.round(6)) == [0.1, 0.3]
    assert len(rd.final_rows(both)) == 2
