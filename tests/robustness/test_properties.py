"""Property-based tests (hypothesis): random malformed input to the file readers and to the
command line gives one clear error naming the file or option, never a traceback, never a
partial output. Example counts are small so that the suite stays fast."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli, write_record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beatlab.data.build import read_annotations, read_header, read_record
from beatlab.data.formats import read_beats
from beatlab.errors import BeatlabError
from beatlab.training.data import read_files

QUICK = settings(  # BEATLAB_EXAMPLES=500 for a deeper search
    max_examples=int(os.environ.get("BEATLAB_EXAMPLES", "30")),
    deadline=None,
    derandomize=True,  # the same examples every run: a failure is a finding, not a flake
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@contextmanager
def folder() -> Iterator[Path]:
    """A fresh folder per example (pytest's tmp_path is one per test, not per example)."""
    path = Path(tempfile.mkdtemp(prefix="beatlab-hyp-"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


def assert_names(err: BeatlabError, *paths: Path) -> None:
    """One line, naming one of the files."""
    text = str(err)
    assert "\n" not in text
    assert any(str(p) in text or p.name in text for p in paths), text


# --- Kaggle CSV and course Parquet -----------------------------------------------------------

odd_cells = st.sampled_from(
    ["", "nan", "NaN", "inf", "-inf", "1e39", "-1e39", "1e400", "0x10", "1,0", " ", "abc", '"1"']
)
cell = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.text(st.characters(codec="utf-8"), max_size=4),
    odd_cells,
)


@st.composite
def csv_text(draw: st.DrawFn) -> str:
    """Kaggle-like rows (187 samples + label) with a few cells, lengths or rows broken."""
    rows = []
    for _ in range(draw(st.integers(0, 4))):
        values = [f"{v:.3f}" for v in draw(st.lists(st.floats(0, 1), min_size=187, max_size=187))]
        values.append(f"{draw(st.integers(-1, 6))}.0")
        for _ in range(draw(st.integers(0, 3))):
            values[draw(st.integers(0, 187))] = draw(cell)
        cut = draw(st.integers(0, 3))
        if cut == 1:
            values = values[: draw(st.integers(0, 187))]
        elif cut == 2:
            values += draw(st.lists(cell, min_size=1, max_size=3))
        rows.append(",".join(values))
    sep = draw(st.sampled_from(["\n", "\r\n", "\n\n"]))
    return sep.join(rows) + draw(st.sampled_from(["", "\n", "\x00", "garbage"]))


def check_beats_file(path: Path) -> None:
    """The reader's contract: valid beats, or one BeatlabError naming the file."""
    before = sorted(path.parent.iterdir())
    try:
        x, y = read_beats(path)
    except BeatlabError as err:
        assert_names(err, path)
    else:
        assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == 187
        assert y.dtype == np.int64 and y.shape == (len(x),) and set(y.tolist()) <= set(range(5))
    try:
        beats = read_files(str(path))  # training's path: float32-checked too
    except BeatlabError as err:
        assert_names(err, path)
    else:
        assert np.isfinite(beats.x).all()
    assert sorted(path.parent.iterdir()) == before  # a reader writes nothing


@QUICK
@given(text=csv_text())
def test_kaggle_csv_reader(text: str) -> None:
    with folder() as tmp:
        path = tmp / "beats.csv"
        path.write_text(text)
        check_beats_file(path)


@QUICK
@given(data=st.binary(max_size=2000))
def test_csv_and_parquet_readers_on_random_bytes(data: bytes) -> None:
    with folder() as tmp:
        for name in ("beats.csv", "beats.parquet"):
            (tmp / name).write_bytes(data)
            check_beats_file(tmp / name)


column = st.one_of(
    st.sampled_from([str(i) for i in range(187)] + ["target", "Unnamed: 0"]),
    st.text(max_size=3),
)
values = st.one_of(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=3, max_size=3),
    st.lists(st.integers(-5, 9), min_size=3, max_size=3),
    st.lists(st.text(max_size=3), min_size=3, max_size=3),
    st.lists(st.booleans(), min_size=3, max_size=3),
    st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=3, max_size=3),
)


@QUICK
@given(
    drop=st.lists(st.integers(0, 187), max_size=3),
    changed=st.dictionaries(column, values, max_size=4),
    rows=st.integers(0, 3),
)
def test_course_parquet_reader(
    drop: list[int], changed: dict[str, list[object]], rows: int
) -> None:
    """Course-like Parquet files ("0".."186" + target) with columns missing, added or of
    another type, values NaN or infinite, or no rows at all."""
    table = {str(i): [0.5, 0.25, 0.0] for i in range(187)}
    table["target"] = [0.0, 1.0, 4.0]
    names = list(table)
    for i in drop:
        table.pop(names[i], None)
    table.update(changed)
    with folder() as tmp:
        path = tmp / "beats.parquet"
        try:
            pd.DataFrame(table).head(rows).to_parquet(path)
        except Exception:  # pandas/Arrow cannot store this mix at all: nothing to read
            return
        check_beats_file(path)


# --- WFDB header, annotations, signal --------------------------------------------------------


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid generated record, 100 (.hea, .dat, .atr), to damage."""
    root = tmp_path_factory.mktemp("wfdb")
    write_record("100", root, np.random.default_rng(0), seconds=5)
    return root


def damaged(record: Path, tmp: Path, ext: str, content: bytes) -> Path:
    """A copy of the record in `tmp` with its .EXT replaced by `content`; its base path."""
    for part in record.iterdir():
        shutil.copy(part, tmp)
    (tmp / f"100.{ext}").write_bytes(content)
    return tmp / "100"


def check_record(base: Path) -> None:
    """read_header / read_annotations / read_record: a result, or one error naming a file."""
    files = [base.with_suffix(f".{e}") for e in ("hea", "dat", "atr")] + [base]
    before = sorted(base.parent.iterdir())
    try:
        header = read_header(base)
    except BeatlabError as err:
        assert_names(err, *files)
    else:
        assert header.sig_len > 0 and header.fs > 0
    try:
        peaks, labels = read_annotations(base, length=1800)
    except BeatlabError as err:
        assert_names(err, *files)
    else:
        assert len(peaks) == len(labels) and np.all(np.diff(peaks) >= 0)
        assert set(labels.tolist()) <= set(range(5))
    try:
        rec = read_record(base.parent, base.name)
    except BeatlabError as err:
        assert_names(err, *files)
    else:
        assert len(rec.signal) > 0 and len(rec.peaks) == len(rec.labels)
        assert rec.peaks.size == 0 or 0 <= rec.peaks.min() <= rec.peaks.max() < len(rec.signal)
    assert sorted(base.parent.iterdir()) == before


header_token = st.one_of(
    st.sampled_from(["100", "2", "360", "1800", "212", "200", "1024", "MLII", "V1", "0", "-1"]),
    st.text(st.characters(codec="ascii", exclude_characters="\n"), max_size=6),
    st.integers(-(10**12), 10**12).map(str),
)


@QUICK
@given(data=st.data())
def test_wfdb_header(record: Path, data: st.DataObject) -> None:
    """Headers with tokens replaced, lines dropped or added, or cut short."""
    lines = (record / "100.hea").read_text().splitlines()
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(lines) - 1))
        tokens = lines[i].split(" ")
        action = data.draw(st.sampled_from(["token", "drop", "add", "cut"]))
        if action == "token":
            tokens[data.draw(st.integers(0, len(tokens) - 1))] = data.draw(header_token)
            lines[i] = " ".join(tokens)
        elif action == "drop":
            lines.pop(i)
        elif action == "add":
            lines.insert(i, " ".join(data.draw(st.lists(header_token, max_size=6))))
        else:
            lines[i] = lines[i][: data.draw(st.integers(0, len(lines[i])))]
        if not lines:
            lines = [""]
    with folder() as tmp:
        check_record(damaged(record, tmp, "hea", "\n".join(lines).encode()))


def test_wfdb_header_without_signal_names(record: Path, tmp_path: Path) -> None:
    lines = (record / "100.hea").read_text().splitlines()
    lines[1] = "100.dat 212"  # the signal's gain, ..., description (its name) cut off
    base = damaged(record, tmp_path, "hea", "\n".join(lines).encode())
    with pytest.raises(BeatlabError):
        read_record(base.parent, base.name)


@QUICK
@given(data=st.data())
def test_wfdb_annotations(record: Path, data: st.DataObject) -> None:
    """Annotation files cut short, with bytes flipped, or random."""
    valid = (record / "100.atr").read_bytes()
    kind = data.draw(st.sampled_from(["cut", "flip", "random"]))
    if kind == "cut":
        content = valid[: data.draw(st.integers(0, len(valid)))]
    elif kind == "flip":
        raw = bytearray(valid)
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        content = bytes(raw)
    else:
        content = data.draw(st.binary(max_size=400))
    with folder() as tmp:
        check_record(damaged(record, tmp, "atr", content))


@QUICK
@given(data=st.data())
def test_wfdb_signal(record: Path, data: st.DataObject) -> None:
    """Signal files cut short, padded, or random."""
    valid = (record / "100.dat").read_bytes()
    kind = data.draw(st.sampled_from(["cut", "pad", "random"]))
    if kind == "cut":
        content = valid[: data.draw(st.integers(0, len(valid)))]
    elif kind == "pad":
        content = valid + data.draw(st.binary(min_size=1, max_size=50))
    else:
        content = data.draw(st.binary(min_size=len(valid), max_size=len(valid)))
    with folder() as tmp:
        check_record(damaged(record, tmp, "dat", content))


# --- the command line ------------------------------------------------------------------------

SETTINGS = [
    "epochs",
    "batch",
    "batch_size",
    "lr",
    "seed",
    "limit",
    "factor",
    "balance",
    "split",
    "optimizer",
    "monitor",
    "mode",
    "folds",
    "fold",
    "hparams",
    "filters",
    "dropout",
    "use_rr",
    "init_from",
    "train_file",
    "freeze_backbone",
    "augment_noise",
]
set_value = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["-1", "0", "1e39", "NaN", "Infinity", "[1, 2]", "{}", "null", "true", '"x"']),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**12), 10**12).map(str),
)
set_item = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(SETTINGS), set_value),
    st.text(max_size=12),
)
OPTIONS = ["--epochs", "--batch-size", "--lr", "--seed", "--limit", "--folds", "--fold", "--model"]
OPTIONS += ["--split", "--balance", "--config", "--init-from", "--train-file", "--name", "--set"]
option_token = st.one_of(st.sampled_from(OPTIONS), set_value, st.sampled_from(["--", "-x", "="]))


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder without data: whatever the options, training cannot start here."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BEATLAB_DATA_DIR", str(tmp_path / "no-data"))
    return tmp_path


def check_cli(capsys: pytest.CaptureFixture[str], empty: Path, *args: str) -> None:
    runs = empty / "runs"
    code, out, err = run_cli(
        capsys,
        "train",
        *args,
        "--data-dir",
        str(empty / "no-data"),
        "--runs-dir",
        str(runs),
        "--tracking-uri",
        "none",
    )
    lines = err.strip().splitlines()
    assert code == 2, (args, err)
    assert "Traceback" not in out + err
    assert len(lines) == 1 and lines[0].startswith("beatlab: error: "), (args, err)
    assert not runs.exists() or not any(runs.rglob("*")), args  # no partial output


@QUICK
@given(items=st.lists(set_item, min_size=1, max_size=3))
def test_set_options(capsys: pytest.CaptureFixture[str], empty: Path, items: list[str]) -> None:
    check_cli(capsys, empty, *(arg for item in items for arg in ("--set", item)))


@QUICK
@given(tokens=st.lists(option_token, min_size=1, max_size=6))
def test_option_lists(capsys: pytest.CaptureFixture[str], empty: Path, tokens: list[str]) -> None:
    if any(t in ("--help", "-h") for t in tokens):
        return
    check_cli(capsys, empty, *tokens)
