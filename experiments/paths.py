"""Where things live: the repository, the runs root and the committed figures. The one home of
these paths; every module that needs one imports it from here."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"
FIGURES_DIR = REPO_ROOT / "figures"
EVIDENCE_DIR = FIGURES_DIR / "data"
# the scales every experiment is written at (conf/scale/<experiment>/<scale>.yaml)
SCALES = ("paper", "small", "mini")


def runs_root(arg: str | os.PathLike | None = None) -> Path:
    """The runs root: an explicit argument (`runs=<dir>`), else $AGD_RUNS_DIR, else <repo>/runs."""
    return Path(arg or os.environ.get("AGD_RUNS_DIR") or REPO_ROOT / "runs")
