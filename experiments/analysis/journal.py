"""Publishing a folder of results all at once: figures/ with its evidence (figures/data/) and
REPORT.md, or an evidence folder of its own (`scripts/evidence.py export out=<dir>`).

What a reader of the folder sees is either everything before a publication or everything after
it, whatever stopped the publisher (kill -9 included):

1. **staging**: every new file is written into a staging folder inside the published one
   (`<base>/.publish-<pid>-<ns>/`, so a rename into place stays on one file system and is
   atomic). The published subtrees a publication rewrites in part (the evidence) are mirrored
   there first as hard links, so the staged tree is the complete new state and the report can
   be built from it. Nothing outside the staging folder changes; a publisher stopped here leaves
   everything old, and its staging folder is removed by the next command that settles the
   folder.
2. **commit**: the list of renames and deletions that turn the old state into the staged one is
   written atomically to `<base>/.publish-journal.json`. From that instant the publication has
   happened: any later command that settles the folder finishes it (roll forward).
3. **apply**: the renames (evidence files first, then the index, then the figures, REPORT.md
   last) and the deletions (of evidence files the new index no longer lists, after it), then the
   journal is removed. Every step may be repeated, so rolling forward twice is harmless.

One publisher at a time: a publication holds an exclusive flock on the published folder itself
(no lock file), which the kernel releases when its process dies. `settle(base)` is what every
reader calls first: it rolls a left-over journal forward (waiting for a live publisher's commit
to end) and removes the staging folders no live publisher holds.

`AGD_PUBLISH_FAULT_AT=N` ends the process with os._exit (no clean-up, as kill -9) just before
the N-th write of a publication (counted by `fault_point`): the fault-injection tests
(tests/test_publish_faults.py) stop a publication at each of its writes in turn.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

STAGING_PREFIX = ".publish-"
JOURNAL = ".publish-journal.json"
FAULT_ENV = "AGD_PUBLISH_FAULT_AT"
FIRST = ("index.csv", "README.md")  # an evidence folder's own files, renamed after its data files
LAST = "REPORT.md"

_writes = 0  # writes since the current publication began (fault_point)


def fault_point() -> None:
    """Count one write of a publication; under AGD_PUBLISH_FAULT_AT=N stop the process dead just
    before the N-th (exit status 137, as after kill -9)."""
    global _writes
    _writes += 1
    if os.environ.get(FAULT_ENV, "") == str(_writes):
        os._exit(137)


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Run `write(tmp)` on a temporary name beside `path`, then rename it over `path`: a reader
    sees the old file or the new one, never a torn one. A failed write leaves no temp file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fault_point()
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return write_atomically(path, lambda tmp: tmp.write_bytes(data))


def published_path(path: str | os.PathLike) -> Path:
    """Where a file written into a staging folder lands once published (itself otherwise)."""
    parts = Path(path).parts
    for i, part in enumerate(parts):
        if part.startswith(STAGING_PREFIX):
            return Path(*parts[:i], *parts[i + 1:])
    return Path(path)


@contextmanager
def _locked(base: Path, blocking: bool = True) -> Iterator[bool]:
    """An exclusive flock on the folder `base` itself; yields False if another process holds it
    and blocking is False."""
    fd = os.open(base, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _files(folder: Path, skip_dot: bool) -> list[Path]:
    """Every file under `folder` (relative paths), without the staging folders and the journal
    when `skip_dot` (the folder is the published one)."""
    out = []
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        rel = path.relative_to(folder)
        if skip_dot and rel.parts[0].startswith("."):
            continue
        if path.is_file():
            out.append(rel)
    return out


def _apply(base: Path, journal: dict) -> None:
    """Carry out a committed journal (again, if it was begun): rename, delete, remove the journal."""
    staging = base / journal["staging"]
    for kind, rel in journal["ops"]:
        fault_point()
        if kind == "replace":
            if (staging / rel).exists():  # otherwise renamed before an interruption
                (base / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / rel, base / rel)
        else:
            (base / rel).unlink(missing_ok=True)
    fault_point()
    (base / JOURNAL).unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)


def _roll_forward(base: Path) -> bool:
    """With the lock held: finish a committed publication, remove abandoned staging folders."""
    journal = base / JOURNAL
    done = False
    if journal.exists():
        _apply(base, json.loads(journal.read_text()))
        done = True
    for stale in base.glob(f"{STAGING_PREFIX}*"):
        if stale.is_dir():  # a publisher stopped while staging: its files never counted
            shutil.rmtree(stale, ignore_errors=True)
    for tmp in base.glob(f".{JOURNAL}.*.tmp"):
        tmp.unlink(missing_ok=True)
    return done


def settle(base: str | os.PathLike) -> None:
    """Before reading a published folder: roll a left-over journal forward, remove staging
    folders of publishers that are gone. Leaves a live publisher's staging alone."""
    base = Path(base)
    if not base.is_dir():
        return
    pending = (base / JOURNAL).exists()
    if not pending and not any(base.glob(f"{STAGING_PREFIX}*")):
        return
    try:
        # a committed journal is finished by whoever gets the lock: wait for it (a commit takes
        # milliseconds); staging folders are only removed when no publisher is alive
        with _locked(base, blocking=pending) as held:
            if held:
                if _roll_forward(base):
                    print(f"finished an interrupted publication of {base}")
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise  # a read-only copy of a published folder can still be read as it is


def settle_evidence(root: str | os.PathLike) -> None:
    """settle() for an evidence folder: its own journal, or that of the figures/ holding it."""
    root = Path(root)
    settle(root.parent)
    settle(root)


class Publication:
    """`with Publication(base, mirror=("data",)) as pub:` write every new file under
    `pub.staging` (same layout as `base`), then `pub.commit()`. Leaving the block without a
    commit (an exception) discards the staging folder: everything stays old.

    mirror: subfolders of `base` (relative; "" for `base` itself) that the staging folder
    starts as a copy of (hard links): files there that the staged tree no longer has are
    deleted at commit. Files outside them are only ever added or replaced."""

    def __init__(self, base: str | os.PathLike, mirror: tuple[str, ...] = ()):
        self.base = Path(base)
        self.mirror = mirror
        self.staging = self.base / f"{STAGING_PREFIX}{os.getpid()}-{time.time_ns()}"
        self._lock = None
        self.changed: list[str] = []

    def __enter__(self) -> Publication:
        global _writes
        self.base.mkdir(parents=True, exist_ok=True)
        self._lock = _locked(self.base)
        self._lock.__enter__()
        try:
            _roll_forward(self.base)
            _writes = 0
            fault_point()
            self.staging.mkdir()
            for rel in self.mirror:
                for file in _files(self.base / rel, skip_dot=True):
                    link = self.staging / rel / file
                    link.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        os.link(self.base / rel / file, link)
                    except OSError:  # a file system without hard links: a copy does the same job
                        shutil.copy2(self.base / rel / file, link)
        except BaseException:  # __exit__ does not run when __enter__ fails: clean up here
            self.__exit__(None, None, None)
            raise
        return self

    def _operations(self) -> list[list[str]]:
        """The renames and deletions from the published state to the staged one, in an order
        where the evidence index only ever lists files that exist."""
        ops = []
        for rel in _files(self.staging, skip_dot=False):
            src, dst = self.staging / rel, self.base / rel
            if dst.is_file() and (os.path.samefile(src, dst) or src.read_bytes() == dst.read_bytes()):
                continue  # unchanged (a hard link of the old file, or the same bytes)
            ops.append(["replace", rel.as_posix()])
        for folder in self.mirror:
            for rel in _files(self.base / folder, skip_dot=True):
                if not (self.staging / folder / rel).exists():
                    ops.append(["delete", (Path(folder) / rel).as_posix()])
        mirrored = [Path(m).parts for m in self.mirror]

        def rank(op: list[str]) -> int:
            parts = Path(op[1]).parts
            inside = any(parts[:len(m)] == m for m in mirrored)
            if op[0] == "delete":
                return 2
            if inside:
                return 1 if parts[-1] in FIRST else 0
            return 4 if op[1] == LAST else 3
        return sorted(ops, key=rank)

    def commit(self) -> list[str]:
        """Publish the staged tree; returns the paths (relative to base) that changed."""
        ops = self._operations()
        if ops:
            journal = {"staging": self.staging.name, "ops": ops}
            write_bytes(self.base / JOURNAL, json.dumps(journal, indent=1).encode())
            _apply(self.base, journal)  # from here a stopped publisher is finished by settle()
        else:
            shutil.rmtree(self.staging, ignore_errors=True)
        self.changed = [rel for _, rel in ops]
        return self.changed

    def __exit__(self, *exc) -> None:
        try:
            if self.staging.exists():  # not committed: the published folder stays as it was
                shutil.rmtree(self.staging, ignore_errors=True)
        finally:
            self._lock.__exit__(None, None, None)
