"""A publication stopped dead at any of its writes leaves figures/, figures/data/ and REPORT.md
all old or all new once the next command has settled the folder (experiments/analysis/journal.py).

The published folder lives in a tmp dir (paths.FIGURES_DIR and paths.EVIDENCE_DIR point there):
a stand-in built from a synthetic runs tree, or, in the slow test, a copy of the repository's
figures/. The real figures/ is never written.

Two ways to stop a publisher, both before each of its writes (journal.fault_point):
* on disk: a copy of the folder taken at that instant is exactly what kill -9 there leaves (one
  publication, every stop);
* for real: a forked copy of the test process, or a process of its own, publishing with
  AGD_PUBLISH_FAULT_AT=N ends with os._exit just before its N-th write (no clean-up, no
  `finally`), as kill -9 would end it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from runtrees import seeded, small_tree

from experiments import paths
from experiments.analysis import claims, evidence, journal, report, reproduce
from experiments.analysis import rundata as rd
from experiments.analysis.plots import fig2
from experiments.analysis.plots import style as ps


@pytest.fixture(autouse=True)
def _quick(monkeypatch):
    monkeypatch.setenv("AGD_FIG_DPI", "40")
    monkeypatch.setattr(claims, "memory_rows", lambda: [])  # table 1 is measured, not published here


def use_folder(monkeypatch, folder):
    monkeypatch.setattr(paths, "FIGURES_DIR", folder)
    monkeypatch.setattr(paths, "EVIDENCE_DIR", folder / "data")
    return folder


@pytest.fixture
def published(tmp_path, monkeypatch):
    """A published folder as reproduce leaves it, from a synthetic tree: fig2 at small, the
    evidence of fig2, fig3 and showcase-a, and REPORT.md."""
    folder = use_folder(monkeypatch, tmp_path / "figures")
    old = small_tree(tmp_path / "old_runs")
    evidence.export(old, "small", ["fig3_small", "showcase_a_small"])
    assert reproduce.main(publish_args(old)) == 0
    return folder


def snapshot(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def index_agrees(folder) -> bool:
    """Every file the evidence index lists exists and holds the rows the index states."""
    for row in evidence.read_index(folder / "data"):
        if not (folder / "data" / row["file"]).exists():
            return False
        if len(rd.read_evidence(folder / "data", row["group"], steps=row["kind"] == "steps")) != int(row["rows"]):
            return False
    return True


def new_runs(tmp_path):
    """A tree whose fig2 runs differ from the published ones: publishing it replaces
    fig2_small's figure, its evidence (fewer rows), the index and REPORT.md's fig2 rows."""
    root = small_tree(tmp_path / "runs")
    shutil.rmtree(root / "fig2_small")
    seeded(root, "fig2_small", "optimizer=agd", [{"final_loss": 0.07, "epochs": 3}] * 2, depth=8, scale="small")
    seeded(root, "fig2_small", "optimizer.lr=0.1,optimizer=sgd", [{"final_loss": 0.3, "epochs": 3}] * 2, opt="sgd",
           lr=0.1, depth=8, scale="small")
    return root


def publish_args(root):
    return ["figure=fig2", "scale=small", "plot_only=true", f"runs={root}", "publish=true"]


def stops(tmp_path, monkeypatch, folder, root) -> list:
    """Publish `root`'s fig2 into `folder`, keeping a copy of the folder as it is just before
    each write: what a publisher killed there leaves. Returns the copies, in order."""
    copies = []
    real = journal.fault_point

    def copy_then_write():
        copies.append(tmp_path / "stops" / str(len(copies) + 1))
        shutil.copytree(folder, copies[-1])
        real()

    monkeypatch.setattr(journal, "fault_point", copy_then_write)
    assert reproduce.main(publish_args(root)) == 0
    monkeypatch.setattr(journal, "fault_point", real)
    return copies


def forked(args, fault_at: int | None) -> int:
    """reproduce.main(args) in a forked copy of this process; its exit status."""
    pid = os.fork()
    if pid == 0:  # the child: publish, stopped dead at the chosen write
        code = 1
        try:
            if fault_at is not None:
                os.environ[journal.FAULT_ENV] = str(fault_at)
            code = reproduce.main(args)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_publication_stopped_at_any_write_leaves_all_old_or_all_new(tmp_path, published, monkeypatch):
    old = snapshot(published)
    copies = stops(tmp_path, monkeypatch, published, new_runs(tmp_path))
    new = snapshot(published)
    changed = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
    assert {"fig2_small.png", "fig2_small.pdf", "data/small/fig2_small.csv", "data/index.csv",
            "REPORT.md"} <= changed
    assert not changed & {"data/small/fig3_small.csv", "data/small/showcase_a_small.csv"}
    assert len(copies) >= 12  # staged files, the journal, each rename, the journal's removal
    outcomes = []
    for n, copy in enumerate(copies, 1):
        journal.settle(copy)  # what the next command does first
        after = snapshot(copy)
        assert after in (old, new), f"stopped before write {n}: a mix of old and new files"
        assert index_agrees(copy), f"stopped before write {n}: the index lists what is not there"
        outcomes.append("old" if after == old else "new")
    # every stop before the journal is written leaves the old set, every later one the new set
    assert outcomes[0] == "old" and outcomes[-1] == "new" and outcomes == sorted(outcomes, key="old new".index)


def test_a_publisher_killed_at_a_write_leaves_all_old_or_all_new(tmp_path, published, monkeypatch):
    """The same with a real process ended at the write: before anything is staged, after the
    first staged file, at the journal, between two renames, at the journal's removal."""
    root = new_runs(tmp_path)
    old = snapshot(published)
    copies = stops(tmp_path, monkeypatch, published, root)
    new = snapshot(published)
    committed = next(n for n, c in enumerate(copies, 1) if (c / journal.JOURNAL).exists())
    for n, want in ((1, old), (2, old), (committed - 1, old), (committed + 1, new), (len(copies), new)):
        shutil.rmtree(published)
        shutil.copytree(copies[0], published)  # the old set, before the first write
        assert forked(publish_args(root), n) == 137
        journal.settle(published)
        assert snapshot(published) == want, f"killed before write {n}"


def committed_copy(tmp_path, monkeypatch, published, root):
    """Leave `published` as a publisher killed just after writing its journal leaves it;
    return the folder as the publication would have left it."""
    copies = stops(tmp_path, monkeypatch, published, root)
    new = snapshot(published)
    committed = next(c for c in copies if (c / journal.JOURNAL).exists())
    shutil.rmtree(published)
    shutil.copytree(committed, published)
    return new


@pytest.mark.parametrize("later", ["reproduce", "plot", "export", "publish", "report", "notebook"])
def test_a_later_command_finishes_a_stopped_publication(tmp_path, published, monkeypatch, later):
    """The next reproduce drawing from the evidence, the next plot of it, the next export, the
    next publication, the report and a notebook reading one group each roll a stopped
    publication forward before they read."""
    root = new_runs(tmp_path)
    new = committed_copy(tmp_path, monkeypatch, published, root)
    elsewhere = tmp_path / "elsewhere"
    if later == "reproduce":
        assert reproduce.main(["figure=fig2", "scale=small", "plot_only=true", "source=evidence",
                               f"out={elsewhere}"]) == 0
    elif later == "plot":
        assert ps.cli(fig2.plot, ["scale=small", f"runs={published / 'data'}", f"out={elsewhere}"]) == 0
    elif later == "export":
        assert evidence.main(["export", "scale=small", "figure=fig2", f"runs={root}"]) == 0
    elif later == "report":
        assert report.main(["source=evidence", f"out={elsewhere}"]) == 0
    elif later == "notebook":  # notebooks/inspect_runs.ipynb reads the evidence through rundata
        assert rd.load_group("fig2_small", paths.EVIDENCE_DIR).run.nunique() == 4
    else:
        assert reproduce.main(publish_args(root)) == 0
    assert not (published / journal.JOURNAL).exists()
    assert snapshot(published) == new and index_agrees(published)


def test_a_stop_while_staging_leaves_nothing_behind_after_the_next_command(tmp_path, published):
    old = snapshot(published)
    assert forked(publish_args(new_runs(tmp_path)), 3) == 137  # a few files staged, nothing committed
    assert any(p.name.startswith(journal.STAGING_PREFIX) for p in published.iterdir())
    assert snapshot(published) != old
    assert reproduce.main(["figure=fig2", "scale=small", "plot_only=true", "source=evidence",
                           f"out={tmp_path / 'elsewhere'}"]) == 0
    assert snapshot(published) == old


def test_publishing_one_figure_rewrites_report_md_from_the_evidence(tmp_path, published):
    """REPORT.md's fig2 rows follow from the evidence the publication leaves behind."""
    before = (published / "REPORT.md").read_text()
    assert reproduce.main(publish_args(new_runs(tmp_path))) == 0
    after = (published / "REPORT.md").read_text()
    assert after != before and after == report.build(paths.EVIDENCE_DIR)[0]


def test_a_standalone_export_is_one_publication_too(tmp_path, monkeypatch):
    """scripts/evidence.py export into a folder of its own, stopped at each write."""
    out = tmp_path / "data"
    evidence.export(small_tree(tmp_path / "old"), "small", ["fig2_small", "fig3_small"], out)
    old = snapshot(out)
    copies, real = [], journal.fault_point

    def copy_then_write():
        copies.append(tmp_path / "stops" / str(len(copies) + 1))
        shutil.copytree(out, copies[-1])
        real()

    monkeypatch.setattr(journal, "fault_point", copy_then_write)
    evidence.export(new_runs(tmp_path), "small", ["fig2_small"], out)
    new = snapshot(out)
    assert new != old and len(copies) >= 6
    for copy in copies:
        journal.settle_evidence(copy)
        assert snapshot(copy) in (old, new)


@pytest.mark.slow
def test_kill_9_of_a_process_publishing_into_a_copy_of_the_committed_figures(tmp_path, monkeypatch):
    """A copy of the repository's figures/, a process of its own stopped by the environment
    variable while staging and just after its journal: all old, then all new."""
    folder = tmp_path / "figures"
    shutil.copytree(paths.REPO_ROOT / "figures", folder, ignore=shutil.ignore_patterns(journal.STAGING_PREFIX + "*"))
    pristine = tmp_path / "pristine"
    shutil.copytree(folder, pristine)
    use_folder(monkeypatch, folder)
    root, old = new_runs(tmp_path), snapshot(folder)
    writes, real = [], journal.fault_point  # in this process first: which write follows the journal

    def count():
        writes.append((folder / journal.JOURNAL).exists())
        real()

    monkeypatch.setattr(journal, "fault_point", count)
    assert reproduce.main(publish_args(root)) == 0
    monkeypatch.setattr(journal, "fault_point", real)
    new, after_journal = snapshot(folder), writes.index(True) + 1
    program = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from experiments import paths
        from experiments.analysis import claims, reproduce
        paths.FIGURES_DIR = Path({str(folder)!r}); paths.EVIDENCE_DIR = paths.FIGURES_DIR / "data"
        claims.memory_rows = lambda: []
        sys.exit(reproduce.main({publish_args(root)!r}))
    """)
    for fault_at, want in ((4, old), (after_journal, new)):
        shutil.rmtree(folder)
        shutil.copytree(pristine, folder)
        env = dict(os.environ, AGD_FIG_DPI="40", **{journal.FAULT_ENV: str(fault_at)})
        done = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 137, done.stderr
        journal.settle(folder)
        assert snapshot(folder) == want and index_agrees(folder)
