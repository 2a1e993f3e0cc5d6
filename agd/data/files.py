"""Where dataset files live, and the one download attempt made when they are missing.

Root: the `root` argument (config `data.root`), else the DATA_DIR environment variable, else
`data/` in the repository. Files are fetched only through torchvision's own downloaders, under a
socket timeout, so an offline machine fails in seconds with a message saying where to put them.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

REPO_DATA = Path(__file__).resolve().parents[2] / "data"
DOWNLOAD_TIMEOUT_S = 15.0


def resolve_root(root: str | os.PathLike | None, env: str = "DATA_DIR") -> Path:
    """`root` if given, else $`env`, else <repo>/data; `~` expanded, not required to exist."""
    if root not in (None, ""):
        return Path(root).expanduser()
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    return REPO_DATA


def try_download(fetch: Callable[[], object]) -> str | None:
    """Run `fetch` (a torchvision dataset constructor with download=True); return None on
    success or a one-line reason on failure (offline, timeout, bad archive)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        fetch()
    except Exception as err:  # any failure means "not available": the caller says where to put files
        return f"{type(err).__name__}: {err}".splitlines()[0][:200]
    finally:
        socket.setdefaulttimeout(previous)
    return None
