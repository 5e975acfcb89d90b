"""Shared fixtures: the real data beside the project, and small generated WFDB databases."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import wfdb

# The tests train tiny models: one thread each is faster than two fighting over the cores
# (measured 1 min 48 s against 5 min 55 s for tests/training on a busy 2-core machine).
os.environ.setdefault("OMP_NUM_THREADS", "1")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_MITDB = SHARED / "mitdb"
REAL_FORMATS = SHARED / "formats"
FS = 360


def write_record(
    name: str,
    out: Path,
    rng: np.random.Generator,
    seconds: int = 20,
    fs: int = FS,
    leads: tuple[str, ...] = ("MLII", "V1"),
    comments: list[str] | None = None,
) -> None:
    """Synthetic ECG (default: MIT-BIH-like, two leads at 360 Hz) with a beat every 0.8 s,
    labelled N N N V ..., and the header's `comments`."""
    t = np.arange(seconds * fs) / fs
    beats = np.exp(-(((t % 0.8) - 0.4) ** 2) / 2e-4)
    gains = np.linspace(1.0, 0.5, len(leads))
    signal = beats[:, None] * gains + 0.01 * rng.standard_normal((t.size, len(leads)))
    wfdb.wrsamp(
        name,
        fs=fs,
        units=["mV"] * len(leads),
        sig_name=list(leads),
        p_signal=signal,
        fmt=["212"] * len(leads),
        comments=comments,
        write_dir=str(out),
    )
    peaks = np.arange(int(0.4 * fs), t.size, int(0.8 * fs))
    symbols = ["N" if i % 4 else "V" for i in range(peaks.size)]
    wfdb.wrann(name, "atr", sample=peaks, symbol=symbols, write_dir=str(out))


def write_segments(
    source: Path, out: Path, name: str, parts: list[tuple[int, int, list[int]] | int]
) -> Path:
    """A multi-segment WFDB record `name` in `out`, cut from the record at `source`: each part is
    (first sample, end sample, channels) of the source, or a gap of that many samples. With a
    gap or a part lacking a channel, the layout is WFDB's variable one (a layout segment naming
    every lead, as MIMIC writes), else the fixed one."""
    header = wfdb.rdheader(str(source))
    variable = any(isinstance(p, int) or len(p[2]) < header.n_sig for p in parts)
    names, lengths = ([f"{name}_layout"], [0]) if variable else ([], [])
    for k, part in enumerate(parts):
        if isinstance(part, int):
            names.append("~")
            lengths.append(part)
            continue
        start, end, channels = part
        segment = wfdb.rdrecord(
            str(source), sampfrom=start, sampto=end, channels=channels, physical=False
        )
        segment.record_name = f"{name}_{k + 1}"
        segment.file_name = [f"{name}_{k + 1}.dat"] * len(channels)
        segment.wrsamp(write_dir=str(out))
        names.append(segment.record_name)
        lengths.append(end - start)
    if variable:  # the layout segment: every lead, no samples
        lines = [f"{name}_layout {header.n_sig} {header.fs:g} 0"] + [
            f"~ 0 {gain:g}({baseline})/{unit} 11 0 0 0 0 {lead}"
            for gain, baseline, unit, lead in zip(
                header.adc_gain, header.baseline, header.units, header.sig_name, strict=True
            )
        ]
        (out / f"{name}_layout.hea").write_text("\n".join(lines) + "\n")
    record = wfdb.MultiRecord(
        record_name=name,
        segments=[wfdb.rdheader(str(out / n)) if n != "~" else None for n in names],
        layout="variable" if variable else "fixed",
        fs=header.fs,
        n_sig=header.n_sig,
        sig_len=sum(lengths),
        seg_name=names,
        seg_len=lengths,
    )
    record.wrheader(write_dir=str(out))
    return out / name


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


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models train 50x faster on one thread than on two busy ones (OpenMP spinning), even
    where OMP_NUM_THREADS was set before the tests started."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


@contextlib.contextmanager
def serve(folder: Path, requests: list[str] | None = None) -> Iterator[str]:
    """Serve `folder` over HTTP on 127.0.0.1 (recording each requested path); yields the URL."""
    seen = requests if requests is not None else []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


Bars = list[tuple[str, int, bool, list[int]]]


def spy_on_bars(monkeypatch: pytest.MonkeyPatch) -> Bars:
    """Every `counting_bar` the trainer opens: its description, total, whether it was hidden,
    and each count it was told."""
    from beatlab.training import trainer  # torch only after OMP_NUM_THREADS above

    bars: Bars = []
    real = trainer.counting_bar

    @contextmanager
    def spy(description: str, total: int, *, disable: bool = False) -> Iterator[Callable]:
        told: list[int] = []
        bars.append((description, total, disable, told))
        with real(description, total, disable=disable) as advance:
            yield lambda n: (told.append(n), advance(n))

    monkeypatch.setattr(trainer, "counting_bar", spy)
    return bars
