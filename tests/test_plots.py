"""The figures' plot functions and the report on small synthetic runs trees in the real schema.

No training: each run directory is written with agd.results' own writers (tests/runtrees.py),
with metrics chosen so that the report's verdicts are known in advance (and cases where a claim
must fail or be within noise).
"""

from __future__ import annotations

import pytest
from runtrees import make_run, seeded, small_tree

from agd.results import EPOCH_COLUMNS, STEP_COLUMNS, load_runs
from experiments.analysis import claims, memory_table, registry, report, wandb_pull
from experiments.analysis import rundata as rd
from experiments.analysis.plots import fig2, fig3, showcase_a, table1
from experiments.analysis.plots import style as ps
from experiments.loggers import WANDB_KEYS, WANDB_STEP_KEYS, WandbLogger


@pytest.fixture(autouse=True)
def _quick_figures(monkeypatch):
    monkeypatch.setenv("AGD_FIG_DPI", "50")  # layout and content are the same; rendering is faster


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
    for width in (32, 64):  # the scaling figure's FCN contrast: its width and step axes
        make_run(root, "scaling_fcn_mini", f"model.width={width},optimizer=agd", depth=16, width=width, epochs=8)
        make_run(root, "scaling_fcn_mini", f"model.width={width},optimizer.lr=0.001,optimizer=adam", opt="adam",
                 lr=1e-3, depth=16, width=width, epochs=8, final_acc=0.95)
    return root


# every registered figure drawn from runs (table 1 is measured, the beyond figures have their own tests)
PLOTS = [f for f in registry.figure_ids() if registry.FIGURES[f].has_scale and f != "beyond"]


@pytest.mark.parametrize("figure", PLOTS)
def test_each_plot_writes_png_and_pdf(runs, tmp_path, figure):
    paths = registry.FIGURES[figure].plot(scale="mini", runs=str(runs), out=str(tmp_path / "fig"))
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert all(p.stat().st_size > 3_000 for p in paths), [p.stat().st_size for p in paths]


def captured_figures(monkeypatch):
    """Replace style.save by a recorder of the figures' texts and filled bands."""
    seen = []

    def record(fig, name, out=None, runs=None, placeholder=False):
        texts = [t.get_text() for t in fig.texts] + [t.get_text() for ax in fig.axes for t in ax.texts]
        bands = sum(type(c).__name__ in ("PolyCollection", "FillBetweenPolyCollection")
                    for ax in fig.axes for c in ax.collections)
        seen.append({"name": name, "texts": texts, "bands": bands})
        ps.plt.close(fig)
        return []

    monkeypatch.setattr(ps, "save", record)
    return seen


def test_seeds_are_drawn_as_a_mean_with_a_band(tmp_path, monkeypatch):
    root = small_tree(tmp_path / "runs")
    seen = captured_figures(monkeypatch)
    fig2.plot("small", str(root))
    # 3 optimisers x (train loss, test loss, train acc, test acc) seed bands + 3 update-size bands
    assert seen[0]["bands"] == 15
    df = rd.load_group("fig2_small", root)
    fig, ax = ps.plt.subplots()
    n = ps.seed_line(ax, df[df.opt == "agd"], "train_loss", "k")
    line = ax.lines[0]
    assert n == 3 and line.get_ydata()[-1] == pytest.approx((0.10 + 0.30 + 0.20) / 3)
    ps.plt.close(fig)


def test_mixed_budgets_are_labelled_on_the_figure(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    make_run(root, "showcase_a_small", "optimizer=agd", epochs=4, depth=32)
    make_run(root, "showcase_a_small", "optimizer=sgd", opt="sgd", lr=0.1, epochs=2, depth=32)
    seen = captured_figures(monkeypatch)
    showcase_a.plot("small", str(root))
    problems = rd.budget_problems(rd.load_group("showcase_a_small", root), "showcase_a_small")
    assert problems[0] == "mixed budgets: agd 4 epochs, sgd 2 epochs"
    assert any("BUDGET" in t and "agd 4 epochs, sgd 2 epochs" in t for t in seen[0]["texts"])


def test_budget_against_the_declared_experiment(tmp_path):
    """fig2 at mini scale declares 10 epochs: a 4-epoch run named with the extra override is
    flagged for both; the double-budget group expects seed 0 at 20 epochs."""
    root = tmp_path / "runs"
    make_run(root, "fig2_mini", "epochs=4,optimizer=agd", epochs=4, depth=8)
    problems = rd.budget_problems(rd.load_group("fig2_mini", root), "fig2_mini")
    assert problems[0] == "epochs 4, declared 10"
    assert problems[-1] == "overrides not in the experiment: epochs=4"
    make_run(root, "fig2_mini_x2", "epochs=20,optimizer=agd", epochs=20, depth=8, seed=0)
    assert rd.budget_problems(rd.load_group("fig2_mini_x2", root), "fig2_mini_x2") == []


def test_plot_without_runs_never_replaces_a_figure(tmp_path):
    out = tmp_path / "fig"
    paths = fig3.plot(scale="paper", runs=str(tmp_path / "empty"), out=str(out))
    assert paths[0].name == "fig3_paper.png" and paths[0].exists()  # a placeholder where none was
    out.joinpath("fig3_small.png").write_bytes(b"published")
    fig3.plot(scale="small", runs=str(tmp_path / "empty"), out=str(out))
    assert out.joinpath("fig3_small.png").read_bytes() == b"published"


def test_tuned_is_the_lowest_mean_over_seeds(tmp_path):
    """lr 1e-4 has the single best run (0.01) but the worse mean (0.34 vs 0.10): 1e-3 is tuned."""
    root = tmp_path / "runs"
    seeded(root, "fig2_small", "optimizer.lr=0.0001,optimizer=adam",
           [{"final_loss": x} for x in (0.01, 0.5, 0.5)], opt="adam", lr=1e-4)
    seeded(root, "fig2_small", "optimizer.lr=0.001,optimizer=adam",
           [{"final_loss": 0.1}] * 3, opt="adam", lr=1e-3)
    best = rd.tuned(rd.final_rows(rd.load_group("fig2_small", root)), "adam")
    assert list(best["optimizer.lr"]) == [1e-3] * 3 and sorted(best.seed) == [0, 1, 2]


def test_fig2_picks_the_lowest_final_train_loss(runs):
    chosen = fig2.tuned_runs(rd.load_group("fig2_mini", runs))
    assert {opt: r["optimizer.lr"].iloc[0] for opt, r in chosen.items() if opt != "agd"} == \
        {"adam": 1e-4, "sgd": 1e-1}
    assert set(chosen) == {"agd", "adam", "sgd"}


def test_report_verdicts_at_mini_scale(runs, monkeypatch):
    monkeypatch.setattr(claims, "memory_rows", lambda: [])  # table 1 tested elsewhere
    text, records = report.build(runs)
    got = {(r["id"], r["scale"]): r for r in records}
    # paper and small scales were not run: every such row says so
    assert all(r["verdict"] == "not run" for r in records if r["scale"] in ("paper", "small"))
    assert got[("showcase_a.agd_train_acc", "mini")]["verdict"] == "shown"
    assert got[("showcase_a.adam_train_acc", "mini")]["verdict"] == "held"
    assert got[("showcase_a.sgd_train_acc", "mini")]["verdict"] == "did not hold"
    assert got[("fig2.adam_tuned_lr", "mini")]["mean"] == 1e-4
    assert got[("fig2.agd_below_sgd", "mini")]["verdict"] == "held"
    assert got[("fig3.wider_trains_better", "mini")]["verdict"] == "did not hold"
    assert got[("fig3.depth_8_16_beat_32", "mini")]["verdict"] == "held"
    assert got[("fig3.best_cell", "mini")]["mean"].startswith("depth 8 / widest")
    assert got[("fig4.eta_dips_more_at_large_batch", "mini")]["verdict"] == "held"
    assert got[("showcase_b.agd_vs_best_test", "mini")]["mean"] == pytest.approx(-5.0)
    assert "| paper | small | small, 2× epochs (seed 0) | mini |" in text
    assert "Beyond the paper" in text and "Prodigy" in text


def test_pull_wandb_writes_the_run_schema(tmp_path):
    history = [{"step/step": s, "step/train_loss": 1.0 / s, "step/eta": 0.2, "step/update": 0.01}
               for s in range(1, 4)]
    history += [{"epoch": e, "train/loss": 1.0 / e, "train/acc": 0.5, "test/loss": 1.0,
                 "test/acc": 0.4, "agd/eta_mean": 0.2, "agd/eta_min": 0.1, "agd/eta_max": 0.3,
                 "agd/update_mean": 0.01, "agd/update_min": 0.0, "agd/update_max": 0.02,
                 "time_s": float(e)} for e in (2, 1)]
    config = {"optimizer": {"_target_": "agd.optim.AGD"}, "model": {"depth": 4}, "batch_size": 32}
    wandb_pull.write_run(tmp_path, "fig4_paper", "run-a", config, "finished", history)
    df = load_runs(tmp_path / "fig4_paper")
    assert list(df.epoch) == [1, 2] and df["model.depth"].iloc[0] == 4
    assert (df.status == "complete").all()
    steps = load_runs(tmp_path / "fig4_paper", steps=True)
    assert list(steps.step) == [1, 2, 3]


class _Recorder:
    """Stands in for a wandb run: keeps what WandbLogger logs, in order."""

    def __init__(self):
        self.history = []

    def log(self, logged):
        self.history.append(dict(logged))


def test_what_the_logger_writes_to_wandb_pulls_back_as_the_same_rows():
    """One key map both ways: every schema column WandbLogger logs comes back from W&B unchanged."""
    epoch_rows = [{c: float(i + k) for k, c in enumerate(EPOCH_COLUMNS)} | {"epoch": i, "step": 4 * i}
                  for i in (1, 2)]
    step_rows = [{c: float(s + k) for k, c in enumerate(STEP_COLUMNS)} | {"epoch": 1 + (s > 4), "step": s}
                 for s in range(1, 7)]
    logger = WandbLogger(mode="disabled")
    logger.run = _Recorder()
    logger.log_steps(step_rows[:4])
    logger.log(epoch_rows[0], step=4)
    logger.log_steps(step_rows[4:])
    logger.log(epoch_rows[1], step=8)
    assert wandb_pull.convert(logger.run.history) == (epoch_rows, step_rows)
    assert set(WANDB_KEYS) == set(EPOCH_COLUMNS) and set(WANDB_STEP_KEYS) == set(STEP_COLUMNS)


def test_pull_wandb_recovers_the_epoch_of_older_step_rows():
    """Step rows logged without their epoch get it from the epoch rows' step ranges; without those
    ranges it stays unknown (empty), never a guessed 1."""
    steps = [{"step/step": s, "step/train_loss": 1.0, "step/eta": 0.2, "step/update": 0.01} for s in range(1, 8)]
    epochs = [{"epoch": e, "train/loss": 1.0, "train/step": 3 * e} for e in (1, 2)]
    _, rows = wandb_pull.convert(steps + epochs)
    assert [r["epoch"] for r in rows] == [1, 1, 1, 2, 2, 2, ""]  # step 7 is past the last epoch's end
    _, rows = wandb_pull.convert(steps + [{k: v for k, v in e.items() if k != "train/step"} for e in epochs])
    assert {r["epoch"] for r in rows} == {""}


def test_table1_figure_and_report_read_one_table(tmp_path, monkeypatch):
    """The table 1 figure and the report both take memory_table's rows (stubbed here: the
    measurement itself is agd.memory's, tested in test_memory.py)."""
    rows = [{"model": "FCN", "optimizer": opt, "weights_MB": 1.0, "state_MB": x - 1, "state_bytes": 0,
             "cache_bytes": 0, "state_x": x - 1, "total_x": x, "state_tensors": 0, "scalar_tensors": 0,
             "paper": memory_table.PAPER.get(opt, "")}
            for opt, x in (("agd", 1.00004), ("sgd_momentum", 2.0), ("adam", 2.5))]
    monkeypatch.setattr(memory_table, "table", lambda: rows)
    paths = table1.plot("mini", str(tmp_path / "runs"), str(tmp_path / "out"))
    assert paths[0].name == "table1_mini.png" and (tmp_path / "out" / "table1.csv").exists()
    assert "| FCN | adam | 1.00 | 1.50 |" in (tmp_path / "out" / "table1.md").read_text()
    _, records = report.build(tmp_path / "runs")
    got = {r["id"]: r for r in records if r["scale"] == "paper"}
    assert got["table1.agd"]["verdict"] == "held" and got["table1.sgd_momentum"]["verdict"] == "held"
    assert got["table1.adam"]["verdict"] == "did not hold"  # 2.5x measured against the paper's 3x


def _tick_labels(fig) -> list[list]:
    """Per panel, the window extents of the x tick labels drawn inside its view."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    panels = []
    for ax in fig.axes:
        low, high = sorted(ax.get_xlim())
        shown = [t for t in ax.xaxis.get_majorticklabels()
                 if t.get_visible() and t.get_text() and low <= t.get_position()[0] <= high]
        panels.append([t.get_window_extent(renderer) for t in shown])
    return panels


@pytest.mark.parametrize("scale", ["mini", "small"])
def test_fig4_every_panel_labels_its_iteration_axis_without_overlap(tmp_path, monkeypatch, scale):
    """Drawn from the committed evidence: each of the four panels has at least two labelled
    iteration ticks, and no two labels of a panel overlap."""
    from experiments import paths
    from experiments.analysis.plots import fig4

    drawn = {}

    def keep(fig, name, out=None, runs=None, placeholder=False):
        drawn["panels"] = _tick_labels(fig)
        return ps.plt.close(fig) or []

    monkeypatch.setattr(ps, "save", keep)
    fig4.plot(scale, str(paths.EVIDENCE_DIR), str(tmp_path))
    panels = drawn["panels"]
    assert len(panels) == 4
    for boxes in panels:
        assert len(boxes) >= 2
        for a, b in zip(boxes, boxes[1:], strict=False):
            assert not a.overlaps(b)


def test_table1_says_once_in_the_table_which_optimisers_it_holds(tmp_path, monkeypatch, capsys):
    rows = [{"model": "FCN", "optimizer": opt, "weights_MB": 1.0, "state_MB": 0.0, "state_bytes": 0, "cache_bytes": 0,
             "state_x": 0.0, "total_x": 1.0, "state_tensors": 0, "scalar_tensors": 0, "paper": ""}
            for opt in memory_table.optimizer_names()]
    monkeypatch.setattr(memory_table, "table", lambda: rows)
    table1.plot("mini", str(tmp_path / "runs"), str(tmp_path / "out"))
    text = (tmp_path / "out" / "table1.md").read_text()
    assert text.count("Every optimiser config of conf/optimizer/ is measured") == 1
    monkeypatch.setattr(memory_table, "table", lambda: [r for r in rows if r["optimizer"] != "adamw_cosine"])
    table1.plot("mini", str(tmp_path / "runs"), str(tmp_path / "out"))
    text = (tmp_path / "out" / "table1.md").read_text()
    assert text.count("Not in this table: adamw_cosine") == 1 and "skipped" not in capsys.readouterr().out
