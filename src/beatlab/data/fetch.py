"""Get a registered PhysioNet database onto disk, verified file by file against SHA-256 sums.

The checksum list (the one shipped for the database, else PhysioNet's SHA256SUMS.txt) is written
into the folder first, so that a fetch that stops half-way leaves a folder `data build` knows to be
incomplete. Every file is written to a temporary path and checked before it is renamed into
place, so a directory that `fetch_database` has touched never holds a corrupt or half-downloaded
file. A file already there that differs from the database's (someone's edited annotations, say),
or a checksum list or RECORDS file that says otherwise, is never replaced: the fetch stops before
writing anything and names it.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from beatlab.data.databases import MITDB, DatabaseSpec
from beatlab.errors import BeatlabError
from beatlab.io import atomic_path, refuse_unless, sha256_file

CHECKSUMS = "SHA256SUMS.txt"

USER_AGENT = "beatlab"
TIMEOUT_S = 60.0


def load_checksums(path: Path | None = None, spec: DatabaseSpec = MITDB) -> dict[str, str]:
    """Read a `<sha256> <filename>` list; the one shipped for `spec` pins exactly what we train
    on."""
    if path is None:
        assert spec.checksums is not None
        text = (resources.files("beatlab.data") / spec.checksums).read_text("utf-8")
        where: Path | str = f"beatlab.data/{spec.checksums}"
    else:
        try:
            text = Path(path).read_text("utf-8")
        except FileNotFoundError:
            raise BeatlabError("no such checksum list", path) from None
        where = path
    sums: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        name = parts[-1].lstrip("*")  # `sha256sum -b` marks binary files with '*'
        digest = parts[0].lower()
        if len(parts) != 2 or len(digest) != 64 or not _is_hex(digest) or not _is_plain(name):
            raise BeatlabError(f"line {lineno}: expected '<sha256> <filename>'", where)
        sums[name] = digest
    if not sums:
        raise BeatlabError("checksum list is empty", where)
    return sums


def fetch_database(
    dest: Path,
    spec: DatabaseSpec = MITDB,
    *,
    source: Path | None = None,
    base_url: str | None = None,
    checksums: dict[str, str] | None = None,
    progress: bool = True,
) -> Path:
    """Make `dest` hold every listed file of `spec`, verified; copy from `source` or download
    (from `base_url`, default the database's PhysioNet home) otherwise.

    Files already present with the right hash are left alone, so re-running is cheap and an
    interrupted fetch resumes where it stopped.
    """
    base_url = base_url or spec.url
    if not base_url.endswith("/"):
        base_url += "/"
    if source is not None and not Path(source).is_dir():
        raise BeatlabError("no such directory", source)
    sums = checksums if checksums is not None else _checksums_for(spec, source, base_url, dest)
    for name in sums:
        if not _is_plain(name):  # a custom list must not write outside dest
            raise BeatlabError("not a plain file name in checksum list", name)
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise BeatlabError("not a directory", dest)
    missing = _missing_files(dest, sums, spec)
    records = sorted({name[: -len(".hea")] for name in sums if name.endswith(".hea")})
    listed = "RECORDS" not in sums  # a listed RECORDS is fetched and verified like any other file
    again = "; move it away and run data fetch again"
    refuse_unless(
        dest / CHECKSUMS,
        lambda path: _agrees(path, sums),
        f"lists other checksums than {spec.name}'s{again}",
    )
    if listed:
        refuse_unless(
            dest / "RECORDS",
            lambda path: _lines(path) == records,
            f"lists other records than {spec.name}'s{again}",
        )
    dest.mkdir(parents=True, exist_ok=True)
    if not (dest / CHECKSUMS).exists():  # first: `data build` can tell a partial fetch
        with atomic_path(dest / CHECKSUMS) as tmp:
            tmp.write_text("".join(f"{d}  {n}\n" for n, d in sums.items()), "utf-8")

    with _progress_bar(progress) as bar:
        task = bar.add_task("", total=len(sums))
        for name, expected in sums.items():
            bar.update(task, description=f"{spec.name} {name}")
            target = dest / name
            if name in missing:
                with atomic_path(target) as tmp:
                    if source is not None:
                        _copy(Path(source) / name, tmp)
                    else:
                        _download(base_url + name, tmp)
                    got = sha256_file(tmp)
                    if got != expected:
                        raise BeatlabError(
                            f"checksum mismatch: expected {expected}, got {got}", target
                        )
            bar.advance(task)

    if listed and not (dest / "RECORDS").exists():
        with atomic_path(dest / "RECORDS") as tmp:
            tmp.write_text("".join(f"{r}\n" for r in records), "utf-8")
    return dest


def _missing_files(dest: Path, sums: dict[str, str], spec: DatabaseSpec) -> set[str]:
    """The listed files `dest` lacks; one it holds that differs from the list is someone's file,
    which a fetch must not replace (it writes only verified files, so never leaves one)."""
    stale = verify_database(dest, sums, spec=spec)
    foreign = [name for name in stale if (dest / name).exists()]
    if foreign:
        more = f" (and {len(foreign) - 1} other file(s) here)" if len(foreign) > 1 else ""
        raise BeatlabError(
            f"differs from the {spec.title}'s file{more}, and data fetch replaces no file it did "
            "not write: move it away and run it again",
            dest / foreign[0],
        )
    return set(stale)


def _agrees(path: Path, sums: dict[str, str]) -> bool:
    """Whether a checksum list gives each of `sums`' files the same digest (PhysioNet's own list
    of the database does, and may list more)."""
    try:
        theirs = load_checksums(path)
    except (BeatlabError, OSError):  # unreadable: not a list that agrees
        return False
    return all(theirs.get(name) == digest for name, digest in sums.items())


def _lines(path: Path) -> list[str] | None:
    """A RECORDS file's names, sorted (None where it cannot be read)."""
    try:
        text = path.read_text("utf-8", errors="replace")
    except OSError:
        return None
    return sorted(line.strip() for line in text.splitlines() if line.strip())


def _checksums_for(
    spec: DatabaseSpec, source: Path | None, base_url: str, dest: Path
) -> dict[str, str]:
    """The shipped list of `spec`, else PhysioNet's SHA256SUMS.txt of the database (from the
    source folder or online), kept to the records' header, signal and annotation files."""
    if spec.checksums is not None:
        return load_checksums(spec=spec)
    with tempfile.TemporaryDirectory(prefix="beatlab-fetch-") as tmp:
        listing = Path(tmp) / CHECKSUMS
        if source is not None:
            _copy(Path(source) / CHECKSUMS, listing)
        else:
            _download(base_url + CHECKSUMS, listing)
        sums = load_checksums(listing)
    exts = (".hea", ".dat", f".{spec.annotator}")
    kept = {n: d for n, d in sums.items() if n.endswith(exts) and "/" not in n}
    if not kept:
        raise BeatlabError(f"{CHECKSUMS} lists no records", base_url + CHECKSUMS)
    return kept


def verify_database(
    dir: Path, checksums: dict[str, str] | None = None, *, spec: DatabaseSpec = MITDB
) -> list[str]:
    """Names of listed files that are missing or differ; empty means the data is exactly ours."""
    sums = load_checksums(spec=spec) if checksums is None else checksums
    root = Path(dir)
    return [
        name
        for name, expected in sums.items()
        if not (root / name).is_file() or sha256_file(root / name) != expected
    ]


def _copy(src: Path, tmp: Path) -> None:
    try:
        shutil.copyfile(src, tmp)
    except FileNotFoundError:
        raise BeatlabError("no such file in source directory", src) from None
    except OSError as e:
        raise BeatlabError(f"cannot copy: {e.strerror or e}", src) from e


def _download(url: str, tmp: Path) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(tmp, "wb") as f:
            shutil.copyfileobj(response, f)
    except urllib.error.HTTPError as e:
        raise BeatlabError(f"download failed: HTTP {e.code} {e.reason}", url) from e
    except urllib.error.URLError as e:
        raise BeatlabError(f"download failed: {e.reason}", url) from e
    except OSError as e:  # timeouts and resets while reading the body
        raise BeatlabError(f"download failed: {e}", url) from e


def _progress_bar(enabled: bool) -> Progress:
    """One bar over files on stderr, so stdout stays clean for anything piped."""
    return Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def _is_hex(s: str) -> bool:
    return all(c in "0123456789abcdef" for c in s)


def _is_plain(name: str) -> bool:
    return bool(name) and Path(name).name == name and name not in (".", "..")
