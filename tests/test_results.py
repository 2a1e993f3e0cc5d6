"""The results schema: atomic tables, and reading a tree of runs back."""

from __future__ import annotations

import pytest

from agd.results import EPOCH_COLUMNS, find_runs, flatten, load_runs, write_json, write_rows


def _row(epoch, **extra):
    row = {c: float(epoch) for c in EPOCH_COLUMNS}
    row.update(epoch=epoch, step=10 * epoch, **extra)
    return row


def test_write_rows_roundtrip_and_leaves_no_temp_files(tmp_path):
    write_rows(tmp_path / "metrics.csv", [_row(1), _row(2)], EPOCH_COLUMNS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0].split(",") == EPOCH_COLUMNS and len(lines) == 3


def test_write_rows_refuses_rows_missing_schema_columns(tmp_path):
    with pytest.raises(KeyError, match="eta_mean"):
        write_rows(tmp_path / "m.csv", [{"epoch": 1}], ["epoch", "eta_mean"])
    assert not (tmp_path / "m.csv").exists()


def test_flatten_nested_config():
    assert flatten({"model": {"depth": 4, "dims": [1, 2]}, "seed": 0}) == {
        "model.depth": 4, "model.dims": "[1, 2]", "seed": 0}


def test_load_runs_joins_config_columns(tmp_path):
    for depth in (2, 4):
        run = tmp_path / f"group/model.depth={depth}"
        write_json(run / "config.json", {"model": {"depth": depth}, "seed": 0})
        write_json(run / "summary.json", {"status": "complete"})
        write_rows(run / "metrics.csv", [_row(1), _row(2), _row(3)], EPOCH_COLUMNS)
    orphan = tmp_path / "group/orphan"
    write_rows(orphan / "metrics.csv", [_row(1)], EPOCH_COLUMNS)
    df = load_runs(tmp_path)
    assert len(find_runs(tmp_path)) == 3
    assert len(df) == 6 and sorted(df["model.depth"].unique()) == [2, 4]
    assert set(EPOCH_COLUMNS) <= set(df.columns) and (df["status"] == "complete").all()
    assert df.attrs["skipped"] == {str(orphan): "no config.json"}


def test_load_runs_of_empty_tree_has_schema_columns(tmp_path):
    df = load_runs(tmp_path)
    assert df.empty and "test_acc" in df.columns
