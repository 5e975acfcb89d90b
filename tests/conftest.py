"""Shared fixtures: the real data beside the project, and small generated WFDB databases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_MITDB = SHARED / "mitdb"
REAL_FORMATS = SHARED / "formats"
FS = 360


def write_record(name: str, out: Path, rng: np.random.Generator, seconds: int = 20) -> None:
    """Two-lead synthetic ECG at 360 Hz with a beat every 0.8 s, labelled N N N V ..."""
    t = np.arange(seconds * FS) / FS
    beats = np.exp(-(((t % 0.8) - 0.4) ** 2) / 2e-4)
    signal = np.stack([beats, 0.5 * beats], axis=1) + 0.01 * rng.standard_normal((t.size, 2))
    wfdb.wrsamp(
        name,
        fs=FS,
        units=["mV", "mV"],
        sig_name=["MLII", "V1"],
        p_signal=signal,
        fmt=["212", "212"],
        write_dir=str(out),
    )
    peaks = np.arange(int(0.4 * FS), t.size, int(0.8 * FS))
    symbols = ["N" if i % 4 else "V" for i in range(peaks.size)]
    wfdb.wrann(name, "atr", sample=peaks, symbol=symbols, write_dir=str(out))


@pytest.fixture
def tiny_mitdb(tmp_path: Path) -> Path:
    """A data directory whose mitdb/ holds two small generated records, 100 and 101."""
    db = tmp_path / "data" / "mitdb"
    db.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("100", "101"):
        write_record(name, db, rng)
    return db


@pytest.fixture(scope="session")
def real_mitdb() -> Path:
    if not REAL_MITDB.is_dir():
        pytest.skip(f"the MIT-BIH database is not at {REAL_MITDB} (../shared/data beside the repo)")
    return REAL_MITDB


@pytest.fixture(scope="session")
def real_formats() -> Path:
    if not REAL_FORMATS.is_dir():
        pytest.skip(f"the real format files are not at {REAL_FORMATS}")
    return REAL_FORMATS


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `beatlab ARGS` in-process through its real entry point; returns (status, out, err)."""
    import sys

    from beatlab.cli import main

    argv = sys.argv
    sys.argv = ["beatlab", *args]
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    finally:
        sys.argv = argv
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="session")
def real_data_dir(real_mitdb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory over the real database (linked, not copied) with its beats built once."""
    from beatlab.data.build import ensure_beats

    root = tmp_path_factory.mktemp("real-data")
    (root / "mitdb").symlink_to(real_mitdb)
    ensure_beats(root)
    return root
