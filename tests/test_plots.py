"""Plot scripts and the report on a small synthetic runs tree written in the real schema.

No training: each run directory is written with agd.results' own writers, with metrics chosen so
that the report's verdicts are known in advance (and one case where a claim must fail).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agd.results import EPOCH_COLUMNS, STEP_COLUMNS, write_json, write_rows

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

OPT = {"agd": "agd.optim.AGD", "adam": "torch.optim.Adam", "sgd": "torch.optim.SGD",
       "prodigy": "prodigyopt.Prodigy"}


def make_run(root, group, name, *, opt="agd", lr=None, depth=4, width=64, batch=128, epochs=4,
             final_acc=0.9, final_loss=0.1, data="agd.data.mnist1d.load", steps=0, status="complete"):
    run_dir = root / group / name
    optimizer = {"_target_": OPT[opt], "init": "paper" if opt == "agd" else "default"}
    if lr is not None:
        optimizer["lr"] = lr
    write_json(run_dir / "config.json", {
        "epochs": epochs, "batch_size": batch, "seed": 0, "scale": "mini", "group": group,
        "model": {"_target_": "agd.models.FCN", "depth": depth, "width": width},
        "data": {"_target_": data}, "optimizer": optimizer})
    rows = []
    for e in range(1, epochs + 1):
        f = e / epochs
        rows.append({"epoch": e, "step": e * 10, "train_loss": 1 - (1 - final_loss) * f,
                     "train_acc": 0.1 + (final_acc - 0.1) * f, "test_loss": 1 - 0.5 * f,
                     "test_acc": 0.1 + (final_acc - 0.2) * f, "eta_mean": 0.2, "eta_min": 0.1,
                     "eta_max": 0.3, "update_mean": 0.01, "update_min": 0.005, "update_max": 0.02,
                     "time_s": float(e)})
    write_rows(run_dir / "metrics.csv", rows, EPOCH_COLUMNS)
    if steps:
        write_rows(run_dir / "steps.csv", [
            {"epoch": 1, "step": s, "train_loss": 1.0, "train_acc": 0.1,
             "eta": 0.3 - 0.2 * (s == 2) * (batch / 4096), "update": 0.01}
            for s in range(1, steps + 1)], STEP_COLUMNS)
    write_json(run_dir / "summary.json", {"status": status})
    return run_dir


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    g = "showcase_a_mini"
    make_run(root, g, "optimizer=agd", final_acc=0.95, depth=32)
    make_run(root, g, "optimizer=adam", opt="adam", lr=1e-3, final_acc=0.11, depth=32)
    make_run(root, g, "optimizer=sgd", opt="sgd", lr=0.1, final_acc=0.35, depth=32)  # trained
    make_run(root, "beyond_showcase_a_mini", "optimizer=prodigy", opt="prodigy", lr=1.0, depth=32)
    g = "fig2_mini"
    make_run(root, g, "optimizer=agd", final_loss=0.05, depth=8)
    for lr, loss in ((1e-4, 0.04), (1e-3, 0.2)):
        make_run(root, g, f"adam-{lr}", opt="adam", lr=lr, final_loss=loss, depth=8)
    for lr, loss in ((1e-2, 0.5), (1e-1, 0.3)):
        make_run(root, g, f"sgd-{lr}", opt="sgd", lr=lr, final_loss=loss, depth=8)
    for depth in (8, 16, 32):
        for i, width in enumerate((8, 16, 32)):
            # wider -> lower loss everywhere except depth 32, where width 32 is worse than 16
            loss = 0.5 / (i + 1) if not (depth == 32 and width == 32) else 0.6
            make_run(root, "fig3_mini", f"d{depth}-w{width}", depth=depth, width=width,
                     final_loss=loss + (0.1 if depth == 32 else 0), final_acc=0.5 + 0.1 * i - depth / 800)
    for batch in (32, 4096):
        make_run(root, "fig4_mini", f"b{batch}", batch=batch, steps=5)
    for opt, lr, acc in (("agd", None, 0.9), ("adam", 1e-3, 0.95), ("sgd", 1e-1, 0.8), ("adam", 1e-6, 0.2)):
        make_run(root, "showcase_b_mini", f"{opt}-{lr}", opt=opt, lr=lr, final_acc=acc,
                 data="agd.data.digits.load")
    make_run(root, "showcase_b_mini", "sgd-10", opt="sgd", lr=10.0, status="failed")
    make_run(root, "showcase_c_mini", "agd", data="agd.data.digits.load")
    make_run(root, "fig1_fcn_mini", "agd", depth=16)
    make_run(root, "fig1_fcn_mini", "adam", opt="adam", lr=1e-3, depth=16)
    return root


@pytest.mark.parametrize("module", ["plot_showcase_a", "plot_showcase_b", "plot_showcase_c",
                                    "plot_fig1", "plot_fig2", "plot_fig3", "plot_fig4"])
def test_each_plot_writes_png_and_pdf(runs, tmp_path, module, monkeypatch):
    import importlib

    monkeypatch.setenv("AGD_FIG_DPI", "60")  # layout and content are the same; rendering is faster
    plot = importlib.import_module(module).plot
    paths = plot(scale="mini", runs=str(runs), out=str(tmp_path / "fig"))
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert all(p.stat().st_size > 3_000 for p in paths), [p.stat().st_size for p in paths]


def test_plot_without_runs_says_so(tmp_path):
    import plot_fig3

    paths = plot_fig3.plot(scale="paper", runs=str(tmp_path / "empty"), out=str(tmp_path / "fig"))
    assert paths[0].name == "fig3_paper.png" and paths[0].exists()


def test_fig2_picks_the_lowest_final_train_loss(runs):
    import plot_fig2
    import plot_style as ps

    df = ps.load_group("fig2_mini", runs)
    chosen, lrs = plot_fig2.tuned(df.assign(opt=ps.optimizer_name(df)))
    assert lrs == {"adam": 1e-4, "sgd": 1e-1}
    assert set(chosen) == {"agd", "adam", "sgd"}


def test_report_verdicts_and_scale_labels(runs, monkeypatch):
    import report

    monkeypatch.setattr(report, "_memory_rows", lambda: [])  # table1 tested elsewhere
    text, records = report.build(runs)
    got = {(r["id"], r["scale"]): r for r in records}
    # paper scale was not run: every paper row says so
    assert all(r["verdict"] == "not run" for r in records if r["scale"] == "paper")
    assert got[("showcase_a.agd_train_acc", "mini")]["verdict"].startswith("mini stand-in")
    assert got[("showcase_a.adam_train_acc", "mini")]["verdict"] == "held at mini scale"
    assert got[("showcase_a.sgd_train_acc", "mini")]["verdict"].startswith("did not hold")
    assert got[("fig2.adam_tuned_lr", "mini")]["value"] == 1e-4
    assert got[("fig2.agd_below_sgd", "mini")]["verdict"] == "held at mini scale"
    assert got[("fig3.wider_trains_better", "mini")]["verdict"] == "did not hold at mini scale"
    assert got[("fig3.depth_8_16_beat_32", "mini")]["verdict"] == "held at mini scale"
    assert got[("fig3.best_cell", "mini")]["value"].startswith("depth 8 / widest")
    assert got[("fig4.eta_dips_more_at_large_batch", "mini")]["verdict"] == "held at mini scale"
    assert got[("showcase_b.agd_vs_best_test", "mini")]["value"] == pytest.approx(-5.0)
    # no mini row is ever called a reproduction
    assert not any(r["verdict"].startswith("reproduced") for r in records if r["scale"] == "mini")
    assert "| MINI |" in text and "Beyond the paper" in text and "Prodigy" in text


def test_pull_wandb_writes_the_run_schema(tmp_path):
    import pull_wandb

    from agd.results import load_runs

    history = [{"step/step": s, "step/train_loss": 1.0 / s, "step/eta": 0.2, "step/update": 0.01}
               for s in range(1, 4)]
    history += [{"epoch": e, "train/loss": 1.0 / e, "train/acc": 0.5, "test/loss": 1.0,
                 "test/acc": 0.4, "agd/eta_mean": 0.2, "agd/eta_min": 0.1, "agd/eta_max": 0.3,
                 "agd/update_mean": 0.01, "agd/update_min": 0.0, "agd/update_max": 0.02,
                 "time_s": float(e)} for e in (2, 1)]
    config = {"optimizer": {"_target_": "agd.optim.AGD"}, "model": {"depth": 4}, "batch_size": 32}
    pull_wandb.write_run(tmp_path, "fig4_paper", "run-a", config, "finished", history)
    df = load_runs(tmp_path / "fig4_paper")
    assert list(df.epoch) == [1, 2] and df["model.depth"].iloc[0] == 4
    assert (df.status == "complete").all()
    steps = load_runs(tmp_path / "fig4_paper", steps=True)
    assert list(steps.step) == [1, 2, 3]
