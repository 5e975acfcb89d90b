"""Small file helpers shared by every stage: nothing half-written is ever left behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from beatlab.errors import BeatlabError


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
def writing(path: Path | str) -> Iterator[Path]:
    """`atomic_path` for user-facing outputs: a failed write (disk full, no permission) becomes
    one line naming the file instead of a traceback."""
    try:
        with atomic_path(path) as tmp:
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
