"""Reading and writing Kaggle CSV and course Parquet beats, checked on the real sample files."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import REAL_FORMATS

from beatlab import BEAT_LENGTH
from beatlab.data import formats
from beatlab.data.formats import detect_format, read_beats, read_ptb_pair, write_beats
from beatlab.errors import BeatlabError

DATA = REAL_FORMATS
HEART_TEST = DATA / "heart_test.parq"
PTB_NORMAL = DATA / "ptbdb_normal_sample.csv"
PTB_ABNORMAL = DATA / "ptbdb_abnormal_sample.csv"

needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"real sample files not available at {DATA}"
)


def _raises(path: Path, match: str) -> AbstractContextManager[object]:
    """Every user error must name the file, or the CLI's one-line message is useless."""
    return pytest.raises(BeatlabError, match=rf"^.*{path.name}: .*{match}")


def _csv_rows(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines()]


def _write_rows(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("".join(",".join(row) + "\n" for row in rows))
    return path


def _synthetic(n: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.random((n, BEAT_LENGTH)).astype(np.float32)
    X[:, 0], X[:, 1], X[0, 2] = 0.0, 1.0, 1e-8  # Kaggle-style exact 0/1 and a tiny value
    return X, rng.integers(0, 5, n)


def test_detect_format_by_suffix() -> None:
    assert detect_format("a/train.csv") == "kaggle-csv"
    assert detect_format("x.PARQ") == "mads-parquet"
    assert detect_format(Path("x.parquet")) == "mads-parquet"
    with pytest.raises(BeatlabError, match=r"beats\.txt: cannot tell the format"):
        detect_format("beats.txt")


@needs_data
def test_heart_test_parquet_reads_2911_beats() -> None:
    X, y = read_beats(HEART_TEST, classes=2)
    assert X.shape == (2911, BEAT_LENGTH) and X.dtype == np.float32
    assert y.shape == (2911,) and y.dtype == np.int64
    assert set(np.unique(y)) == {0, 1}


@needs_data
def test_ptb_pair_reads_200_beats() -> None:
    X, y = read_ptb_pair(PTB_NORMAL, PTB_ABNORMAL)
    assert X.shape == (200, BEAT_LENGTH) and X.dtype == np.float32
    assert y.tolist() == [0] * 100 + [1] * 100


@needs_data
def test_ptb_pair_swapped_is_rejected() -> None:
    with _raises(PTB_ABNORMAL, "expected only label 0 in the normal file, found label 1"):
        read_ptb_pair(PTB_ABNORMAL, PTB_NORMAL)


@needs_data
@pytest.mark.parametrize("suffix", [".csv", ".parq"])
def test_real_beats_round_trip(tmp_path: Path, suffix: str) -> None:
    X, y = read_beats(HEART_TEST)
    out = tmp_path / f"copy{suffix}"
    write_beats(out, X, y)
    X2, y2 = read_beats(out)
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)


@pytest.mark.parametrize("name, fmt", [("a.csv", None), ("b.parq", None), ("c.txt", "kaggle-csv")])
def test_synthetic_round_trip_is_exact(tmp_path: Path, name: str, fmt: str | None) -> None:
    X, y = _synthetic()
    write_beats(tmp_path / name, X, y, fmt=fmt)
    back = (tmp_path / name).rename(tmp_path / "back.csv") if fmt else tmp_path / name
    X2, y2 = read_beats(back)
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)


@needs_data
def test_csv_looks_like_kaggle(tmp_path: Path) -> None:
    X, y = read_beats(PTB_NORMAL)
    out = tmp_path / "normal.csv"
    write_beats(out, X, y)
    rows = _csv_rows(out)
    assert len(rows) == 100 and all(len(row) == BEAT_LENGTH + 1 for row in rows)
    assert {row[-1] for row in rows} == {"0.0"}  # label written as a float, like Kaggle's
    assert "0.0" in rows[0] and "1.0" in rows[0]


@needs_data
def test_parquet_matches_course_layout(tmp_path: Path) -> None:
    X, y = read_beats(HEART_TEST)
    out = tmp_path / "heart.parq"
    write_beats(out, X, y)
    ours, theirs = pq.read_schema(out), pq.read_schema(HEART_TEST)
    assert ours.names == [n for n in theirs.names if not n.startswith("__index")]
    assert ours.field("target").type == theirs.field("target").type
    assert ours.field("0").type == theirs.field("0").type


@needs_data
def test_csv_with_wrong_column_count(tmp_path: Path) -> None:
    bad = _write_rows(
        tmp_path / "wide.csv", [[*row, "0.5", "0.5"] for row in _csv_rows(PTB_NORMAL)]
    )
    with _raises(bad, r"expected 188 columns \(187 samples \+ label\), found 190$"):
        read_beats(bad)


@needs_data
def test_csv_with_one_ragged_row(tmp_path: Path) -> None:
    rows = _csv_rows(PTB_NORMAL)
    rows[40] = rows[40][:-3]
    bad = _write_rows(tmp_path / "ragged.csv", rows)
    with _raises(bad, "expected 188 columns .*found a row with 185$"):
        read_beats(bad)


@needs_data
def test_csv_with_nan_values(tmp_path: Path) -> None:
    rows = _csv_rows(PTB_NORMAL)
    rows[3][10], rows[7][0] = "nan", ""
    bad = _write_rows(tmp_path / "holes.csv", rows)
    with _raises(bad, r"NaN, empty or infinite values in 2 rows \(first at row 3, 0-based\)"):
        read_beats(bad)


@needs_data
def test_csv_with_text_cell(tmp_path: Path) -> None:
    rows = _csv_rows(PTB_NORMAL)
    rows[0] = [*map(str, range(BEAT_LENGTH)), "target"]
    bad = _write_rows(tmp_path / "header.csv", rows)
    with _raises(bad, "cannot parse as numbers .*'target'.*no header row"):
        read_beats(bad)


@needs_data
def test_labels_outside_class_set(tmp_path: Path) -> None:
    rows = _csv_rows(PTB_NORMAL)
    rows[5][-1], rows[9][-1] = "2.0", "7.0"
    bad = _write_rows(tmp_path / "labels.csv", rows)
    with _raises(bad, r"integers 0\.\.1; found 2, 7 in 2 rows \(first at row 5"):
        read_beats(bad, classes=2)
    with _raises(bad, r"integers 0\.\.4; found 7 in 1 rows \(first at row 9"):
        read_beats(bad)


@needs_data
def test_non_integral_labels(tmp_path: Path) -> None:
    rows = _csv_rows(PTB_NORMAL)
    rows[2][-1] = "0.5"
    bad = _write_rows(tmp_path / "half.csv", rows)
    with _raises(bad, r"integers 0\.\.4; found 0\.5 in 1 rows"):
        read_beats(bad)


@needs_data
def test_parquet_without_target(tmp_path: Path) -> None:
    bad = tmp_path / "nolabel.parq"
    pq.write_table(pq.read_table(HEART_TEST).drop_columns(["target"]), bad)
    with _raises(bad, "no 'target' column"):
        read_beats(bad)


@needs_data
def test_parquet_missing_sample_columns(tmp_path: Path) -> None:
    bad = tmp_path / "short.parq"
    pq.write_table(pq.read_table(HEART_TEST).drop_columns(["7", "186"]), bad)
    with _raises(bad, "missing 2 of the 187 sample columns .*'7', '186'$"):
        read_beats(bad)


def test_missing_empty_and_garbage_files(tmp_path: Path) -> None:
    with _raises(tmp_path / "absent.csv", "file not found"):
        read_beats(tmp_path / "absent.csv")
    empty = tmp_path / "empty.parq"
    empty.touch()
    with _raises(empty, "file is empty"):
        read_beats(empty)
    blank = tmp_path / "blank.csv"
    blank.write_text("\n\n")
    with _raises(blank, "file is empty"):
        read_beats(blank)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_text("not parquet at all")
    with _raises(garbage, "not a readable Parquet file"):
        read_beats(garbage)


@pytest.mark.parametrize("name, writer", [("out.csv", "write_csv"), ("out.parq", "write_table")])
def test_failed_write_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, writer: str
) -> None:
    def half_written(_table: object, where: object, **_: object) -> None:
        target = where if isinstance(where, str | Path) else where.name  # type: ignore[attr-defined]
        Path(target).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    module = formats.pacsv if writer == "write_csv" else formats.pq
    monkeypatch.setattr(module, writer, half_written)
    out = tmp_path / name
    with _raises(out, "cannot write: No space left on device"):
        write_beats(out, *_synthetic())
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "keep.parq"
    X, y = _synthetic()
    write_beats(out, X, y)
    before = out.read_bytes()

    def boom(*_: object, **__: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(formats.pq, "write_table", boom)
    with _raises(out, "cannot write"):
        write_beats(out, X[:3], y[:3])
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.parq"]


def test_write_rejects_bad_arrays(tmp_path: Path) -> None:
    X, y = _synthetic()
    with pytest.raises(ValueError, match="need X"):
        write_beats(tmp_path / "a.csv", X[:, :-1], y)
    X[4, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_beats(tmp_path / "a.csv", X, y)
    assert list(tmp_path.iterdir()) == []
