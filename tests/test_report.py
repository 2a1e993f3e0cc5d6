"""The report on seeded synthetic runs (tests/runtrees.py): mean ± spread, the verdict words,
follow-ups, budgets, precision, and the evidence round trip (runs tree -> committed CSVs -> the
same report rows)."""

from __future__ import annotations

import pytest
from runtrees import make_run, seeded, small_tree

from experiments import paths
from experiments.analysis import claims, evidence, report, report_beyond
from experiments.analysis import rundata as rd


@pytest.fixture(autouse=True)
def _no_memory_measurement(monkeypatch):
    monkeypatch.setattr(claims, "memory_rows", lambda: [])  # table 1: no measurement here


def records_of(root):
    text, records = report.build(root)
    return text, {(r["id"], r["scale"]): r for r in records}


def test_seeded_claims_give_mean_spread_and_the_right_word(tmp_path):
    text, got = records_of(small_tree(tmp_path / "runs"))
    adam = got[("showcase_a.adam_train_acc", "small")]
    # Adam's final train accuracy over 3 seeds: 10.6, 11.0, 10.2 % -> mean 10.6, sample std 0.4
    assert adam["value"] == "10.6 ± 0.4 (n=3)" and adam["verdict"] == "held"  # clear win (near chance)
    assert got[("showcase_a.sgd_train_acc", "small")]["verdict"] == "did not hold"  # clear loss: 35 %
    # AGD 0.20 ± 0.10 against tuned SGD 0.25 ± 0.03: the 0.05 gap is inside the spread
    assert got[("fig2.agd_below_sgd", "small")]["verdict"] == "within noise"
    assert got[("fig2.adam_below_sgd", "small")]["verdict"] == "held"
    assert got[("fig2.sgd_tuned_lr", "small")]["mean"] == 0.1
    assert got[("fig3.wider_trains_better", "small")]["verdict"] == "did not hold"
    assert got[("showcase_a.agd_train_acc", "small")]["verdict"] == "shown"
    assert got[("showcase_a.agd_train_acc", "small")]["value"] == "96.0 ± 1.0 (n=3)"
    assert all(r["verdict"] == "not run" for k, r in got.items() if k[1] in ("paper", "mini"))
    assert "**within noise**: the deciding difference is no larger than the spread" in text
    # precision as the runs recorded it, per group
    assert "| `fig2_small` | 15 | 0,1,2 | 4 | bf16 |" in text
    assert "| `showcase_a_small` | 9 | 0,1,2 | 4 | fp32 |" in text


def test_each_did_not_hold_has_a_follow_up_line(tmp_path, monkeypatch):
    root = small_tree(tmp_path / "runs")
    text, _ = records_of(root)
    section = text.split("## Follow-ups")[1].split("## Run groups")[0]
    assert "`fig3.wider_trains_better` did not hold at small scale" in section
    assert "`fig3_small_x2`: not run yet (`python scripts/reproduce.py figure=fig3 scale=small check=double`)" \
        in section
    # the double-budget run, and a follow-up group named in followups.csv, each get their verdict
    for depth in (8, 16, 32):
        for i, width in enumerate((8, 16, 32)):
            make_run(root, "fig3_small_x2", f"epochs=8,model.depth={depth},model.width={width},seed=0",
                     epochs=8, depth=depth, width=width, final_loss=0.5 / (i + 1), scale="small")
            make_run(root, "fig3_small_wide", f"model.depth={depth},model.width={4 * width}",
                     depth=depth, width=4 * width, final_loss=0.6 - 0.1 * i, scale="small")
    followups = tmp_path / rd.FOLLOWUPS_FILE
    followups.write_text("claim,group,tests\nfig3.wider_trains_better,fig3_small_wide,four times the widths\n")
    monkeypatch.setattr(paths, "FIGURES_DIR", tmp_path)
    section = records_of(root)[0].split("## Follow-ups")[1].split("## Run groups")[0]
    assert "double budget (seed 0, 2× epochs), `fig3_small_x2`: adjacent width pairs: 6 held **held**" in section
    assert "four times the widths, `fig3_small_wide`: adjacent width pairs: 6 held **held**" in section
    # every claim also has a double-budget cell in the claim table, next to its small-scale cell
    row = next(line for line in records_of(root)[0].splitlines() if line.startswith("| fig3.wider_trains_better"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4].endswith("**did not hold**") and cells[5] == "adjacent width pairs: 6 held **held**"


def test_mixed_budgets_are_not_judged(tmp_path):
    root = tmp_path / "runs"
    seeded(root, "showcase_a_small", "optimizer=agd", [{}] * 3, epochs=4, depth=32)
    seeded(root, "showcase_a_small", "optimizer=sgd", [{"final_acc": 0.11}] * 3, opt="sgd", lr=0.1,
           epochs=2, depth=32)
    _, got = records_of(root)
    verdict = got[("showcase_a.sgd_train_acc", "small")]["verdict"]
    assert verdict == "not judged: showcase_a_small has mixed budgets: agd 4 epochs, sgd 2 epochs"


def test_peers_at_raw_defaults_and_recommended_setting(tmp_path):
    root = tmp_path / "runs"
    seeded(root, "showcase_a_small", "optimizer=agd", [{}] * 2, depth=32)
    seeded(root, "beyond_showcase_a_small", "optimizer=dadapt_adam", [{"final_acc": 0.3}] * 2,
           opt="dadapt_adam", lr=1.0, depth=32)
    seeded(root, "beyond_showcase_a_small", "optimizer=dadapt_adam_recommended",
           [{"final_acc": a} for a in (0.8, 0.9)], opt="dadapt_adam_recommended", lr=1.0, depth=32)
    text, _ = records_of(root)
    assert "| showcase_a | small | D-Adapt Adam — raw defaults | 30.0 (n=2) |" not in text  # spread shown
    assert "| showcase_a | small | D-Adapt Adam — raw defaults | 30.0 ± 0.0 (n=2) |" in text
    assert "| showcase_a | small | D-Adapt Adam — recommended setting | 85.0 ± 7.1 (n=2) |" in text
    assert "| showcase_a | small | prodigy, schedulefree_adamw, dog (raw defaults) | not run |" in text


def test_evidence_round_trip_gives_identical_report_rows(tmp_path):
    root = small_tree(tmp_path / "runs")
    for batch in (32, 4096):  # per-step rows travel too
        make_run(root, "fig4_small", f"batch_size={batch}", batch=batch, steps=5, scale="small")
    out = tmp_path / "data"
    groups = sorted(p.name for p in root.iterdir())
    written = evidence.export(root, "small", groups, out)
    assert {(r["group"], r["kind"]) for r in written} >= {("fig2_small", "epochs"), ("fig4_small", "steps")}
    assert rd.is_evidence(out) and not rd.is_evidence(root)
    text_runs, from_runs = report.build(root)
    text_evidence, from_evidence = report.build(out)
    assert from_runs == from_evidence
    strip = slice(1, None)  # the first lines name the source
    assert text_runs.splitlines()[3:][strip] == text_evidence.splitlines()[3:][strip]
    # exporting again gives the same bytes (stable order, no timestamps inside)
    before = {p: p.read_bytes() for p in out.rglob("*.csv*")}
    evidence.export(root, "small", groups, out)
    assert before == {p: p.read_bytes() for p in out.rglob("*.csv*")}


def test_large_groups_are_gzipped(tmp_path, monkeypatch):
    root = small_tree(tmp_path / "runs")
    monkeypatch.setattr(evidence, "GZIP_OVER", 1_000)
    evidence.export(root, "small", ["fig3_small"], tmp_path / "data")
    assert (tmp_path / "data" / "small" / "fig3_small.csv.gz").exists()
    df = rd.load_group("fig3_small", tmp_path / "data")
    assert df.run.nunique() == 27 and sorted(df.seed.unique()) == [0, 1, 2]


def test_rows_of_report_beyond_are_included_per_scale(tmp_path, monkeypatch):
    monkeypatch.setattr(report_beyond, "rows", lambda runs_root, scale: [f"| gpt | {scale} | {runs_root.name} |"])
    assert report.beyond_extra(tmp_path / "runs") == ["| gpt | paper | runs |", "| gpt | small | runs |",
                                                      "| gpt | mini | runs |"]


def test_beyond_groups_join_the_convergence_and_provenance_tables(tmp_path):
    root = tmp_path / "runs"
    seeded(root, "showcase_a_small", "optimizer=agd", [{}] * 2, depth=32)
    seeded(root, "beyond_showcase_a_small", "optimizer=prodigy", [{"final_acc": 0.5}] * 2, opt="prodigy",
           lr=1.0, depth=32)
    text = report.build(root)[0]
    convergence = text.split("## Convergence of the run groups")[1].split("\n## ")[0]
    provenance = text.split("## Run groups behind these numbers")[1].split("\n## ")[0]
    assert "| `beyond_showcase_a_small` | Prodigy | 1 (" in convergence
    assert "| `beyond_showcase_a_small` | 2 | 0,1 |" in provenance
