"""The database registry: MIT-BIH, SVDB and INCART as specs, built, checked and pooled."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED, run_cli, serve, write_record

from beatlab.data.build import CHECKSUMS, cache_path, ensure_beats, read_cache_metadata
from beatlab.data.databases import (
    MITDB,
    SVDB,
    find_lead,
    get_database,
    list_databases,
    parse_databases,
)
from beatlab.data.dataset import load_dataset
from beatlab.data.fetch import fetch_database
from beatlab.data.layouts import CENTRED
from beatlab.errors import BeatlabError
from beatlab.io import sha256_file

REAL_SVDB = SHARED / "svdb"
INCART_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def checksum_list(folder: Path) -> None:
    """Write a PhysioNet-style SHA256SUMS.txt over the folder's record files."""
    lines = [
        f"{sha256_file(p)}  {p.name}\n"
        for p in sorted(folder.iterdir())
        if p.suffix in (".hea", ".dat", ".atr")
    ]
    (folder / CHECKSUMS).write_text("".join(lines))


def test_registry_lists_and_names_databases() -> None:
    assert list_databases() == ["incartdb", "mitdb", "svdb"]
    assert get_database("svdb").fs == (128.0,) and get_database("incartdb").leads == ("II",)
    with pytest.raises(BeatlabError, match="did you mean 'svdb'"):
        get_database("svbd")
    with pytest.raises(BeatlabError, match="twice"):
        parse_databases("mitdb,mitdb")
    assert MITDB.patient("201") == MITDB.patient("202") != MITDB.patient("203")


def test_svdb_builds_to_the_annotation_counts() -> None:
    if not REAL_SVDB.is_dir():
        pytest.skip(f"SVDB is not at {REAL_SVDB} (../shared/data beside the repo)")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "svdb").symlink_to(REAL_SVDB)
        beats, path, rebuilt = ensure_beats(root, db=SVDB)
        # every annotated beat of the 58 records, none dropped at record edges (J counts as S)
        assert rebuilt and beats.counts().tolist() == [123_417, 4_003, 3_538, 23, 47]
        assert len(np.unique(beats.record)) == 58 and path.name == "svdb-kachuee.parquet"
        meta = read_cache_metadata(path)
        assert meta is not None and set(meta["leads"].values()) == {"ECG1"}


def test_incartdb_downloads_and_builds_at_257_hz(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """INCART has no shipped checksum list: PhysioNet's SHA256SUMS.txt comes with the records."""
    served = tmp_path / "served"
    served.mkdir()
    rng = np.random.default_rng(1)
    for name in ("I01", "I02"):
        write_record(name, served, rng, fs=257, leads=INCART_LEADS)
    checksum_list(served)
    root = tmp_path / "data"
    requests: list[str] = []
    with serve(served, requests) as url:
        code, out, err = run_cli(
            capsys, "data", "fetch", "--db", "incartdb", "--url", url, "--data-dir", str(root)
        )
    assert code == 0, err
    assert requests[0] == f"/{CHECKSUMS}" and len(requests) == 7
    assert "INCART" in out and sorted(p.name for p in (root / "incartdb").glob("I0*")) == [
        f"I0{i}.{e}" for i in (1, 2) for e in ("atr", "dat", "hea")
    ]
    code, out, err = run_cli(capsys, "data", "build", "--db", "incartdb", "--data-dir", str(root))
    assert code == 0, err
    assert "incartdb: built: 50 beats" in out and "lead II" in out
    beats, _, rebuilt = ensure_beats(root, db=get_database("incartdb"))
    assert not rebuilt and beats.counts().tolist() == [36, 0, 14, 0, 0]


def test_lead_names_match_whatever_their_case() -> None:
    assert find_lead(("MLII", "II", "V5"), ["i", "ii", "v5"]) == "ii"  # PTB's names, kept
    assert find_lead(("aVR",), ["AVR", "aVR"]) == "AVR"  # the record's first of that name
    assert find_lead(("V1",), ["ECG1", "ECG2"]) is None


def test_incartdb_patients_come_from_the_headers(tmp_path: Path) -> None:
    """INCART's 75 records are 32 people: each header's `# patient N` keeps a person's records
    on one side of every patient-wise split; a header without it is one line, not a guess."""
    db = tmp_path / "data" / "incartdb"
    db.mkdir(parents=True)
    rng = np.random.default_rng(0)
    whose = {"I01": "1", "I02": "1", "I03": "2", "I04": "3", "I05": "3", "I06": "4"}
    for name, patient in whose.items():
        comments = ["<age>: 65 <sex>: F ", f"patient {patient}", "PVCs, noise"]
        write_record(name, db, rng, fs=257, leads=INCART_LEADS, comments=comments)
    seen = set()
    for fold in range(3):
        ds = load_dataset(tmp_path / "data", db="incartdb", folds=3, fold=fold)
        parts = [set(ds.part(p).record) for p in ("train", "valid", "test")]
        for one in ({"I01", "I02"}, {"I04", "I05"}):
            assert sum(bool(one & part) for part in parts) == 1, (fold, parts)
        seen |= parts[2]
    assert seen == set(whose)  # every record is tested once
    write_record("I02", db, rng, fs=257, leads=INCART_LEADS, comments=["<age>: 65 <sex>: F "])
    with pytest.raises(BeatlabError, match="no comment matching") as err:
        load_dataset(tmp_path / "data", db="incartdb", folds=3)
    assert err.value.path is not None and err.value.path.endswith("I02.hea")


def test_a_record_without_the_specs_leads_is_an_error_unless_a_lead_is_named(
    tmp_path: Path,
) -> None:
    db = tmp_path / "data" / "svdb"
    db.mkdir(parents=True)
    write_record("800", db, np.random.default_rng(0), fs=128, leads=("ECG1", "B"))
    write_record("801", db, np.random.default_rng(1), fs=128, leads=("A", "B"))
    with pytest.raises(BeatlabError, match="record 801 has none of the leads ECG1, ECG2") as err:
        ensure_beats(tmp_path / "data", db=SVDB)
    assert err.value.path is not None and err.value.path.endswith("801.hea")
    beats, path, _ = ensure_beats(tmp_path / "data", db=SVDB, lead="B")
    assert len(beats) == 50 and path != cache_path(tmp_path / "data", "svdb")
    meta = read_cache_metadata(path)
    assert meta is not None and meta["lead"] == "B" and meta["leads"] == {"800": "B", "801": "B"}
    with pytest.raises(BeatlabError, match="record 800 has none of the leads A"):
        ensure_beats(tmp_path / "data", db=SVDB, lead="A")


def test_a_folder_of_another_database_is_refused(
    tiny_mitdb: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tiny_mitdb.parent
    (root / "svdb").symlink_to(tiny_mitdb)
    code, _, err = run_cli(capsys, "data", "build", "--db", "svdb", "--data-dir", str(root))
    assert code == 2 and "sampled at 360 Hz, but svdb records are at 128 Hz" in err
    assert len(err.strip().splitlines()) == 1
    assert not (root / "beats").exists()


def test_half_fetched_or_damaged_folder_is_refused(tmp_path: Path, tiny_mitdb: Path) -> None:
    served = tiny_mitdb
    checksum_list(served)
    listed = (served / CHECKSUMS).read_text()
    (served / CHECKSUMS).write_text(listed + f"{'0' * 64}  102.hea\n{'0' * 64}  102.dat\n")
    with pytest.raises(BeatlabError, match=r"incomplete mitdb: 1 record\(s\).*\(102\)"):
        ensure_beats(served.parent)
    (served / CHECKSUMS).write_text(listed)
    with open(served / "101.dat", "r+b") as f:
        f.write(b"\x00\x01")
    with pytest.raises(BeatlabError, match="checksum mismatch") as err:
        ensure_beats(served.parent)
    assert err.value.path is not None and err.value.path.endswith("101.dat")
    assert not cache_path(served.parent).exists()


def test_fetch_writes_its_checksum_list_first(tmp_path: Path, tiny_mitdb: Path) -> None:
    """An interrupted fetch leaves a folder that `data build` recognises as incomplete."""
    sums = {p.name: sha256_file(p) for p in sorted(tiny_mitdb.glob("10[01].*"))}
    sums["102.hea"] = "f" * 64  # not in the source: the fetch stops there
    dest = tmp_path / "copy" / "mitdb"
    with pytest.raises(BeatlabError):
        fetch_database(dest, MITDB, source=tiny_mitdb, checksums=sums, progress=False)
    assert (dest / CHECKSUMS).is_file()
    with pytest.raises(BeatlabError, match="incomplete mitdb"):
        ensure_beats(dest.parent)


def test_building_one_database_never_touches_anothers_cache(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for db, fs, leads in (("mitdb", 360, ("MLII", "V1")), ("svdb", 128, ("ECG1", "ECG2"))):
        (root / db).mkdir(parents=True)
        write_record(
            "800" if db == "svdb" else "100",
            root / db,
            np.random.default_rng(0),
            fs=fs,
            leads=leads,
        )
    _, mit_cache, _ = ensure_beats(root)
    before = hashlib.sha256(mit_cache.read_bytes()).hexdigest()
    _, sv_cache, _ = ensure_beats(root, db=SVDB)
    _, sv_centred, _ = ensure_beats(root, CENTRED, db=SVDB)
    assert sv_centred != sv_cache
    assert sv_cache != mit_cache
    assert hashlib.sha256(mit_cache.read_bytes()).hexdigest() == before
    assert not ensure_beats(root)[2]  # still up to date


def test_pooled_databases_split_by_patient(tmp_path: Path) -> None:
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    (root / "mitdb").mkdir(parents=True)
    (root / "svdb").mkdir(parents=True)
    for name in ("100", "101", "201", "202", "203"):
        write_record(name, root / "mitdb", rng)
    for name in ("800", "801", "802"):
        write_record(name, root / "svdb", rng, fs=128, leads=("ECG1", "ECG2"))
    for fold in range(3):
        ds = load_dataset(root, db="mitdb,svdb", folds=3, fold=fold)
        parts = [set(ds.part(p).record) for p in ("train", "valid", "test")]
        assert all(r.startswith(("mitdb:", "svdb:")) for part in parts for r in part)
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        for part in parts:  # 201 and 202 are one patient: always on the same side
            assert ("mitdb:201" in part) == ("mitdb:202" in part) or not (
                {"mitdb:201", "mitdb:202"} & set().union(*parts)
            ) <= part
    assert ds.meta["source"] == "mitdb,svdb"
