"""Where dataset files live, and the one download attempt made when they are missing.

Root: the `root` argument (config `data.root`), else the DATA_DIR environment variable, else
`data/` in the repository. A root named explicitly (the first two) must exist and be a folder,
and is the only place searched: no other copy is ever read in its stead, so config.json never
records a root that was not read. Files are fetched only through torchvision's own downloaders,
under a socket timeout, so an offline machine fails in seconds with a message saying where to put
them.
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


def explicit_root(root: str | os.PathLike | None, env: str = "DATA_DIR") -> tuple[Path, str] | None:
    """(the root, how it was named: "data.root" or "$DATA_DIR") when one was named, else None."""
    if root not in (None, ""):
        return Path(root).expanduser(), "data.root"
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser(), f"${env}"
    return None


def check_root(base: Path, named: str) -> None:
    """Refuse an explicit root that does not exist or is not a folder, in one sentence."""
    if not base.exists():
        raise FileNotFoundError(f"{named} {base} does not exist; create it and put the dataset there, or "
                                f"point {named} at the folder that holds it.")
    if not base.is_dir():
        raise NotADirectoryError(f"{named} {base} is not a folder; point {named} at the folder that holds the "
                                 "dataset.")


def missing_files(directory: Path, names) -> list[str]:
    return [name for name in names if not (directory / name).is_file()]


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
