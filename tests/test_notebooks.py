"""Execute both notebooks end to end (nbclient) on mini data; a failing cell fails the test."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.parametrize("name", ["inspect_runs.ipynb", "agd_walkthrough.ipynb"])
def test_notebook_runs(name, tmp_path, monkeypatch):
    # an empty runs root: inspect_runs trains its two tiny runs there (and reads the committed evidence)
    monkeypatch.setenv("AGD_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    outputs = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    if name == "agd_walkthrough.ipynb":
        assert "by-hand step matches agd.AGD" in outputs
    else:
        assert "2 runs" in outputs and "per-step rows" in outputs
        assert "runs in fig2_small" in outputs  # the committed evidence, read through the package
