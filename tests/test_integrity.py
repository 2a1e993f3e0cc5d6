"""What is committed is what the code builds: figures/REPORT.md is byte for byte what the report
builds from the committed evidence (figures/data), table 1's data (figures/table1.md, .csv) what
the memory table measures; and nothing turns an error into a plausible result: an experiment that
does not compose, an optimiser table 1 cannot build, a missing module each stop with one sentence
naming it.

The figures' PNGs are not compared: they are the same bytes run to run on one machine, but not
across machines (the font rasteriser's version changes pixels), so a byte test would fail on a
clean checkout elsewhere. Their data is what the report reads, and that is compared here."""

from __future__ import annotations

import functools
import shutil
import sys

import pytest

from experiments import paths
from experiments.analysis import claims, memory_table, report
from experiments.analysis import rundata as rd
from experiments.analysis.plots import table1

REBUILD = ("rebuild it with `python scripts/report.py source=evidence publish=true` and commit it with the "
           "change that moved it")


@pytest.fixture(scope="module")
def measured_table():
    return memory_table.table()


def test_report_md_is_what_the_report_builds_from_the_evidence(measured_table):
    text, _ = report.build(paths.EVIDENCE_DIR)
    committed = (paths.FIGURES_DIR / "REPORT.md").read_text()
    if text != committed:
        new, old = text.splitlines(), committed.splitlines()
        first = next((i for i, (a, b) in enumerate(zip(new, old, strict=False)) if a != b), min(len(new), len(old)))
        pytest.fail(f"figures/REPORT.md differs from what the report builds from figures/data at line {first + 1}:\n"
                    f"  committed: {old[first] if first < len(old) else '<end>'}\n"
                    f"  built:     {new[first] if first < len(new) else '<end>'}\n{REBUILD}")


def test_table1_data_is_what_the_memory_table_measures(measured_table, tmp_path):
    table1.write_tables(memory_table.table(), tmp_path)
    for name in ("table1.md", "table1.csv"):
        assert (tmp_path / name).read_bytes() == (paths.FIGURES_DIR / name).read_bytes(), \
            f"figures/{name} is not what scripts/plot_table1.py measures now; rebuild it (publish=true)"


# ---- errors stop the report, each with one sentence naming it ----

def test_table1_measures_adamw_cosine_with_a_one_step_runs_keys():
    """adamw_cosine reads the run-level `schedule_steps`; table 1 resolves it as a one-step run
    does and measures it (it used to vanish from the table)."""
    model = memory_table.build_model("fcn", {"depth": 2, "width": 16})
    row = memory_table.measure_row("FCN", model, "adamw_cosine", 2)
    assert row["optimizer"] == "adamw_cosine" and row["total_x"] == pytest.approx(3.0, abs=1e-3)
    assert "adamw_cosine" in memory_table.optimizer_names()


def test_an_optimiser_table1_cannot_build_stops_the_table(monkeypatch, capsys):
    real = memory_table.measure_row

    def missing_peer(label, model, name, batch):
        if name == "prodigy":
            raise ModuleNotFoundError("No module named 'prodigyopt'", name="prodigyopt")
        return real(label, model, name, batch)

    monkeypatch.setattr(memory_table, "measure_row", missing_peer)
    monkeypatch.setattr(memory_table, "MODELS", [("FCN", "fcn", {"depth": 2, "width": 16})])
    # a cache of its own: the table measured earlier in the session must not answer for this one
    monkeypatch.setattr(memory_table, "_table", functools.cache(memory_table._table.__wrapped__))
    with pytest.raises(ModuleNotFoundError):
        memory_table.table(batch=3)  # never a table with the row left out
    assert memory_table.main([]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'prodigyopt'" in err and "pip install -r requirements.txt" in err


def test_a_missing_module_stops_the_report_with_one_sentence(monkeypatch, tmp_path, capsys):
    from runtrees import small_tree

    def missing(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'prodigyopt'", name="prodigyopt")

    monkeypatch.setattr(claims, "memory_rows", missing)
    assert report.main([f"runs={small_tree(tmp_path / 'runs')}", f"out={tmp_path}"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'prodigyopt'" in err
    assert not (tmp_path / "REPORT.md").exists()  # nothing written


def test_the_beyond_section_missing_stops_the_report(monkeypatch, tmp_path, capsys):
    from runtrees import small_tree

    monkeypatch.setattr(claims, "memory_rows", lambda: [])
    monkeypatch.setitem(sys.modules, "experiments.analysis.report_beyond", None)
    assert report.main([f"runs={small_tree(tmp_path / 'runs')}", f"out={tmp_path}"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "experiments.analysis.report_beyond" in err
    assert not (tmp_path / "REPORT.md").exists()


@pytest.fixture
def broken_conf(tmp_path, monkeypatch):
    """A copy of conf/ where showcase-a's small scale file is gone: `experiment=showcase_a
    scale=small` no longer composes."""
    conf = tmp_path / "conf"
    shutil.copytree(paths.CONF_DIR, conf)
    (conf / "scale" / "showcase_a" / "small.yaml").unlink()
    monkeypatch.setattr(paths, "CONF_DIR", conf)
    rd.experiment_facts.cache_clear()  # composed with the real conf/ earlier in the session
    yield conf
    rd.experiment_facts.cache_clear()


def test_an_experiment_that_does_not_compose_is_never_as_declared(broken_conf, tmp_path, monkeypatch, capsys):
    from runtrees import small_tree

    with pytest.raises(rd.DoesNotCompose, match="showcase_a.yaml does not compose at scale=small"):
        rd.experiment_facts("showcase_a", "small")
    root = small_tree(tmp_path / "runs")
    with pytest.raises(rd.DoesNotCompose):
        rd.budget_problems(rd.load_group("showcase_a_small", root), "showcase_a_small")
    # through the script: one sentence naming the config, exit 2, no report written
    monkeypatch.setattr(claims, "memory_rows", lambda: [])
    assert report.main([f"runs={root}", f"out={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "conf/experiment/showcase_a.yaml does not compose at scale=small" in err
    assert not (tmp_path / "out" / "REPORT.md").exists()
