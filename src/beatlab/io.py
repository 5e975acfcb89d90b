"""Small file helpers shared by every stage: nothing half-written is ever left behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from beatlab.errors import BeatlabError


@contextlib.contextmanager
def atomic_path(path: Path | str, *, parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    `parents` creates missing folders above it: right for the folders beatlab owns (run
    directories, the data cache), wrong for a file the user named, where a mistyped folder
    would silently become a new directory tree; there `parents=False` is an error instead."""
    path = Path(path)
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise FileNotFoundError(2, f"no such directory {path.parent}")
    if path.is_dir():
        raise IsADirectoryError(21, "it is a directory")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp
        # mkstemp's 0600 (or that of a writer that replaced the file) would outlive the rename
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def writing(path: Path | str, *, parents: bool = True) -> Iterator[Path]:
    """`atomic_path` for user-facing outputs: a failed write (disk full, no permission, a
    missing folder with `parents=False`) becomes one line naming the file, not a traceback."""
    try:
        with atomic_path(path, parents=parents) as tmp:
            yield tmp
    except OSError as err:
        raise BeatlabError(f"cannot write: {err.strerror or err}", path) from err


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so large records never sit twice in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def refuse_unless(path: Path, accepted: Callable[[Path], bool], problem: str) -> None:
    """A file already at `path` that `accepted` does not recognise is an error naming it, before
    any work: a command leaves alone what it cannot tell to be its own."""
    if path.exists() and not (path.is_file() and accepted(path)):
        raise BeatlabError(problem, path)


def refuse_foreign(path: Path, ours: Callable[[Path], bool], what: str) -> None:
    """An output may replace only a file beatlab wrote, which `ours` recognises (a re-run
    updating its own `what`); any other file there, the command's own input say, is an error
    naming it before any work."""
    refuse_unless(
        path, ours, f"exists and is not {what} beatlab wrote: choose another name, or move it away"
    )


def head_holds(path: Path, marks: tuple[bytes, ...], within: int = 4096) -> bool:
    """Whether the first `within` bytes of a file hold one of `marks` (a writer's signature)."""
    try:
        with open(path, "rb") as f:
            head = f.read(within)
    except OSError:
        return False
    return any(mark in head for mark in marks)
