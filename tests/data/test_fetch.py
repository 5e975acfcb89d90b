"""fetch_database against a tiny generated WFDB database, served over local HTTP or copied."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import wfdb
from conftest import FS, REAL_MITDB, serve, write_record

from beatlab.data.databases import MITDB
from beatlab.data.fetch import fetch_database, load_checksums, verify_database
from beatlab.errors import BeatlabError
from beatlab.io import sha256_file

RECORDS = ("100", "101")


@pytest.fixture
def tiny_db(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A two-record database and its checksum list, like the shipped one but small."""
    db = tmp_path / "served"
    db.mkdir()
    rng = np.random.default_rng(0)
    for name in RECORDS:
        write_record(name, db, rng)
    sums = {
        f"{r}.{ext}": sha256_file(db / f"{r}.{ext}")
        for r in RECORDS
        for ext in ("hea", "dat", "atr")
    }
    return db, sums


@dataclass
class Server:
    url: str
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def server(tiny_db: tuple[Path, dict[str, str]]) -> Iterator[Server]:
    """Serve the tiny database on 127.0.0.1, recording every requested path."""
    requests: list[str] = []
    with serve(tiny_db[0], requests) as url:
        yield Server(url, requests)


def _leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir() if p.name.startswith("."))


def test_download_verifies_and_second_call_skips(
    tmp_path: Path, tiny_db: tuple[Path, dict[str, str]], server: Server
) -> None:
    db, sums = tiny_db
    dest = tmp_path / "dest"

    assert fetch_database(dest, base_url=server.url, checksums=sums, progress=True) == dest
    assert sorted(server.requests) == sorted(f"/{name}" for name in sums)
    assert verify_database(dest, sums) == []
    assert (dest / "RECORDS").read_text() == "100\n101\n"
    assert _leftovers(dest) == []
    record = wfdb.rdrecord(str(dest / "100"))
    assert record.sig_name == ["MLII", "V1"] and record.fs == FS
    assert set(wfdb.rdann(str(dest / "101"), "atr").symbol) == {"N", "V"}

    server.requests.clear()
    fetch_database(dest, base_url=server.url, checksums=sums, progress=False)
    assert server.requests == []


def test_corrupted_download_leaves_nothing(
    tmp_path: Path, tiny_db: tuple[Path, dict[str, str]], server: Server
) -> None:
    db, sums = tiny_db
    served = db / "101.dat"
    data = bytearray(served.read_bytes())
    data[100] ^= 0xFF
    served.write_bytes(bytes(data))
    dest = tmp_path / "dest"

    base = server.url
    with pytest.raises(BeatlabError, match="checksum mismatch") as err:
        fetch_database(dest, base_url=base, checksums=sums, progress=False)
    assert err.value.path is not None and err.value.path.endswith("101.dat")
    assert sums["101.dat"] in err.value.problem
    assert not (dest / "101.dat").exists()
    assert _leftovers(dest) == []
    assert verify_database(dest, sums) == ["101.dat", "101.atr"]


def test_http_404_names_the_url(
    tmp_path: Path, tiny_db: tuple[Path, dict[str, str]], server: Server
) -> None:
    db, sums = tiny_db
    (db / "100.hea").unlink()
    base = server.url
    with pytest.raises(BeatlabError, match="HTTP 404") as err:
        fetch_database(tmp_path / "dest", base_url=base, checksums=sums, progress=False)
    assert err.value.path == f"{base}100.hea"
    assert _leftovers(tmp_path / "dest") == []


def test_unreachable_server(tmp_path: Path, tiny_db: tuple[Path, dict[str, str]]) -> None:
    _, sums = tiny_db
    with pytest.raises(BeatlabError, match="download failed") as err:
        fetch_database(
            tmp_path / "d", base_url="http://127.0.0.1:9/x", checksums=sums, progress=False
        )
    assert err.value.path == "http://127.0.0.1:9/x/100.hea"


def test_copy_from_source_and_resume(tmp_path: Path, tiny_db: tuple[Path, dict[str, str]]) -> None:
    db, sums = tiny_db
    dest = tmp_path / "dest"
    fetch_database(dest, source=db, checksums=sums, progress=False)
    assert verify_database(dest, sums) == []
    assert (dest / "RECORDS").read_text() == "100\n101\n"

    (dest / "101.atr").unlink()
    assert verify_database(dest, sums) == ["101.atr"]
    fetch_database(dest, source=db, checksums=sums, progress=False)
    assert verify_database(dest, sums) == []


def test_fetch_replaces_nothing_it_did_not_write(
    tmp_path: Path, tiny_db: tuple[Path, dict[str, str]]
) -> None:
    """Someone's edited annotations, checksum list or RECORDS in the folder stop the fetch before
    it writes anything; PhysioNet's own list and RECORDS (which agree with ours) are kept as
    they are."""
    db, sums = tiny_db
    dest = tmp_path / "dest"
    dest.mkdir()
    edited = {"100.atr": b"my own annotations", "101.hea": (db / "101.hea").read_bytes()}
    for name, data in edited.items():
        (dest / name).write_bytes(data)
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    with pytest.raises(BeatlabError, match="differs from .* data fetch replaces no file") as err:
        fetch_database(dest, source=db, checksums=sums, progress=False)
    assert err.value.path == str(dest / "100.atr")
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before

    (dest / "100.atr").unlink()
    theirs = {"SHA256SUMS.txt": "0" * 64 + "  100.hea\n", "RECORDS": "100\n"}
    for name, text in theirs.items():
        (dest / name).write_text(text)
        before = {p.name: p.read_bytes() for p in dest.iterdir()}
        with pytest.raises(BeatlabError, match="lists other .* move it away") as err:
            fetch_database(dest, source=db, checksums=sums, progress=False)
        assert err.value.path == str(dest / name)
        assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
        (dest / name).unlink()

    physionet = "".join(f"{d} {n}\n" for n, d in {**sums, "ANNOTATORS": "1" * 64}.items())
    (dest / "SHA256SUMS.txt").write_text(physionet)
    (dest / "RECORDS").write_text("101\n100\n")
    fetch_database(dest, source=db, checksums=sums, progress=False)
    assert verify_database(dest, sums) == []
    assert (dest / "SHA256SUMS.txt").read_text() == physionet
    assert (dest / "RECORDS").read_text() == "101\n100\n"


def test_source_errors(tmp_path: Path, tiny_db: tuple[Path, dict[str, str]]) -> None:
    db, sums = tiny_db
    missing = tmp_path / "nowhere"
    with pytest.raises(BeatlabError, match="no such directory") as err:
        fetch_database(tmp_path / "dest", source=missing, checksums=sums, progress=False)
    assert err.value.path == str(missing)

    (db / "101.hea").unlink()
    with pytest.raises(BeatlabError, match="no such file") as err:
        fetch_database(tmp_path / "dest", source=db, checksums=sums, progress=False)
    assert err.value.path == str(db / "101.hea")
    assert not (tmp_path / "dest" / "101.hea").exists()


def test_load_checksums(tmp_path: Path) -> None:
    shipped = load_checksums()
    assert len(shipped) == 144
    assert {name.split(".")[1] for name in shipped} == {"hea", "dat", "atr"}
    assert MITDB.url.endswith("/mitdb/1.0.0/")

    custom = tmp_path / "sums.txt"
    custom.write_text(f"{'a' * 64}  100.hea\n\n{'B' * 64} *100.dat\n")
    assert load_checksums(custom) == {"100.hea": "a" * 64, "100.dat": "b" * 64}
    custom.write_text(f"{'a' * 64} ../evil\n")
    with pytest.raises(BeatlabError, match="line 1"):
        load_checksums(custom)


@pytest.mark.skipif(not REAL_MITDB.is_dir(), reason=f"real MIT-BIH database not at {REAL_MITDB}")
def test_real_database_matches_shipped_list() -> None:
    assert verify_database(REAL_MITDB) == []
