"""Read and write the two on-disk beat tables people actually have: Kaggle CSV and course Parquet.

Both hold one beat per row: 187 samples at 125 Hz plus an integer class label. Every reader
check raises `BeatlabError` naming the file, so a bad download is a one-line message, never a
traceback from deep inside training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from beatlab import BEAT_LENGTH, CLASSES
from beatlab.errors import BeatlabError, brief
from beatlab.io import writing

BeatArray = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int64]

FORMATS: tuple[str, ...] = ("kaggle-csv", "mads-parquet")
"""Kaggle heartbeat CSV (no header, label last) and the course Parquet ("0".."186" + target)."""
NO_RR = "the model uses R-R intervals (use_rr), which prepared beat files lack"
"""Why a model with use_rr cannot train on, be evaluated on or classify these files."""

SAMPLE_COLUMNS: tuple[str, ...] = tuple(str(i) for i in range(BEAT_LENGTH))
TARGET_COLUMN = "target"

_SUFFIXES = {".csv": "kaggle-csv", ".parq": "mads-parquet", ".parquet": "mads-parquet"}
_CSV_COLUMNS = BEAT_LENGTH + 1
_SHOW = 5  # offending values / column names quoted in a message, so it stays one line


def detect_format(path: Path | str) -> str:
    """Pick the format from the suffix, because neither format carries a reliable magic header."""
    fmt = _SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise BeatlabError(
            "cannot tell the format from the suffix; use .csv (kaggle-csv) "
            "or .parq/.parquet (mads-parquet)",
            path,
        )
    return fmt


def read_beats(path: Path | str, *, classes: int | None = None) -> tuple[BeatArray, Labels]:
    """Load X (n, 187) float32 and y (n,) int64, rejecting anything training would choke on.

    Labels must be integers in 0..classes-1, or in 0..4 (the AAMI classes) when `classes` is None.
    """
    if classes is not None and classes < 1:
        raise ValueError(f"classes must be at least 1, got {classes}")
    path = Path(path)
    fmt = detect_format(path)
    if not path.exists():
        raise BeatlabError("file not found", path)
    if not path.is_file():
        raise BeatlabError("not a regular file", path)
    try:
        if path.stat().st_size == 0:
            raise BeatlabError("file is empty", path)
        table = _read_csv(path) if fmt == "kaggle-csv" else _read_parquet(path)
    except OSError as exc:
        raise BeatlabError(f"cannot read: {exc.strerror or exc}", path) from exc
    if table.shape[0] == 0:
        raise BeatlabError("file holds no beats", path)
    _check_finite(table, path)
    labels = table[:, -1]
    _check_labels(labels, len(CLASSES) if classes is None else classes, path)
    return np.ascontiguousarray(table[:, :-1], dtype=np.float32), labels.astype(np.int64)


def read_ptb_pair(normal: Path | str, abnormal: Path | str) -> tuple[BeatArray, Labels]:
    """Join Kaggle's ptbdb_normal/ptbdb_abnormal files, catching a swapped or mislabelled pair."""
    parts = []
    for path, expected, kind in ((normal, 0, "normal"), (abnormal, 1, "abnormal")):
        X, y = read_beats(path, classes=2)
        wrong = np.flatnonzero(y != expected)
        if wrong.size:
            raise BeatlabError(
                f"expected only label {expected} in the {kind} file, found "
                f"label {1 - expected} in {wrong.size} rows (first at row {wrong[0]}, 0-based)",
                path,
            )
        parts.append((X, y))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def write_beats(
    path: Path | str, X: npt.ArrayLike, y: npt.ArrayLike, fmt: str | None = None
) -> None:
    """Write beats so `read_beats` gets the same float32 values back; all or nothing on disk.

    CSV samples use the shortest float32 text that round-trips, labels look like Kaggle's (`1.0`);
    Parquet stores float64 columns and a float64 `target`, exactly like the course files.
    """
    path = Path(path)
    fmt = detect_format(path) if fmt is None else fmt
    if fmt not in FORMATS:
        raise BeatlabError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}", path)
    X32 = np.asarray(X, dtype=np.float32)
    y64 = np.asarray(y)
    if X32.ndim != 2 or X32.shape[1] != BEAT_LENGTH or y64.shape != (X32.shape[0],):
        raise ValueError(f"need X (n, {BEAT_LENGTH}) and y (n,), got {X32.shape} and {y64.shape}")
    if not np.isfinite(X32).all():
        raise ValueError("X holds NaN or infinite samples; read_beats would reject the file")
    if not np.issubdtype(y64.dtype, np.integer):
        raise ValueError(f"y must hold integer labels, got dtype {y64.dtype}")
    columns = [pa.array(X32[:, j]) for j in range(BEAT_LENGTH)]
    with writing(path) as tmp:
        if fmt == "kaggle-csv":
            _write_csv(tmp, columns, y64)
        else:
            _write_parquet(tmp, columns, y64)


def _read_csv(path: Path) -> npt.NDArray[np.float64]:
    """Parse with Arrow's threaded reader: MIT-BIH train has 87k rows, per-row Python is slow."""
    ragged: list[Any] = []

    def on_ragged(row: Any) -> str:
        ragged.append(row)
        return "error"

    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(autogenerate_column_names=True),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_ragged),
            convert_options=pacsv.ConvertOptions(
                column_types={f"f{i}": pa.float64() for i in range(_CSV_COLUMNS)}
            ),
        )
    except pa.ArrowInvalid as exc:
        if ragged:
            first, other = ragged[0].expected_columns, ragged[0].actual_columns
            found = first if first != _CSV_COLUMNS else other
            raise BeatlabError(
                _column_count_problem(found, ragged=first == _CSV_COLUMNS), path
            ) from exc
        if "Empty CSV" in str(exc):
            raise BeatlabError("file is empty", path) from exc
        raise BeatlabError(
            f"cannot parse as numbers ({brief(exc)}); Kaggle CSVs have no header row", path
        ) from exc
    if table.num_columns != _CSV_COLUMNS:
        raise BeatlabError(_column_count_problem(table.num_columns, ragged=False), path)
    return _to_matrix(table.columns)


def _column_count_problem(found: int, *, ragged: bool) -> str:
    where = "a row with " if ragged else ""
    return f"expected {_CSV_COLUMNS} columns ({BEAT_LENGTH} samples + label), found {where}{found}"


def _read_parquet(path: Path) -> npt.NDArray[np.float64]:
    """Read only the sample and target columns, so pandas' saved index and extras are ignored."""
    try:
        schema = pq.read_schema(path)
    except pa.ArrowException as exc:
        raise BeatlabError(f"not a readable Parquet file ({brief(exc)})", path) from exc
    names = set(schema.names)
    if TARGET_COLUMN not in names:
        raise BeatlabError(f"no {TARGET_COLUMN!r} column (the labels)", path)
    missing = [c for c in SAMPLE_COLUMNS if c not in names]
    if missing:
        raise BeatlabError(
            f"missing {len(missing)} of the {BEAT_LENGTH} sample columns "
            f"'0'..'{BEAT_LENGTH - 1}': {_quote(missing)}",
            path,
        )
    wanted = [*SAMPLE_COLUMNS, TARGET_COLUMN]
    for name in wanted:
        kind = schema.field(name).type
        if not (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
            raise BeatlabError(f"column {name!r} has type {kind}, expected numbers", path)
    try:
        table = pq.read_table(path, columns=wanted)
    except pa.ArrowException as exc:
        raise BeatlabError(f"not a readable Parquet file ({brief(exc)})", path) from exc
    return _to_matrix(table.columns)


def _to_matrix(columns: list[Any]) -> npt.NDArray[np.float64]:
    """Stack Arrow columns as float64; nulls become NaN so one finite check catches both."""
    return np.column_stack([col.cast(pa.float64()).to_numpy() for col in columns])


def _check_finite(table: npt.NDArray[np.float64], path: Path) -> None:
    """Finite as float64 and still finite as the float32 every model reads (1e39 is not)."""
    bad = np.flatnonzero(~np.isfinite(table).all(axis=1))
    if bad.size:
        raise BeatlabError(
            f"NaN, empty or infinite values in {bad.size} rows (first at row {bad[0]}, 0-based)",
            path,
        )
    huge = np.flatnonzero((np.abs(table) > np.finfo(np.float32).max).any(axis=1))
    if huge.size:
        raise BeatlabError(
            f"values beyond float32 in {huge.size} rows (first at row {huge[0]}, 0-based)", path
        )


def _check_labels(labels: npt.NDArray[np.float64], classes: int, path: Path) -> None:
    bad = (labels != np.round(labels)) | (labels < 0) | (labels >= classes)
    rows = np.flatnonzero(bad)
    if rows.size:
        values = [f"{v:g}" for v in np.unique(labels[rows])]
        raise BeatlabError(
            f"labels must be integers 0..{classes - 1}; found {_quote(values, quote=False)} "
            f"in {rows.size} rows (first at row {rows[0]}, 0-based)",
            path,
        )


def _write_csv(tmp: Path, columns: list[pa.Array], y: npt.NDArray[Any]) -> None:
    """Arrow's writer is ~4x faster than pandas; '.0' is added so integers look like Kaggle's."""
    cells = [_float_text(col) for col in (*columns, pa.array(y.astype(np.float64)))]
    table = pa.table(cells, names=[f"f{i}" for i in range(len(cells))])
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with open(tmp, "wb") as out:
        pacsv.write_csv(table, out, write_options=options)


def _float_text(col: pa.Array) -> pa.Array:
    """Shortest round-trip text per value; Arrow prints 1.0 as '1', Kaggle files say '1.0'."""
    text = pc.cast(col, pa.string())
    return pc.if_else(
        pc.match_substring_regex(text, r"[.eE]"),
        text,
        pc.binary_join_element_wise(text, pa.scalar(".0"), pa.scalar("")),
    )


def _write_parquet(tmp: Path, columns: list[pa.Array], y: npt.NDArray[Any]) -> None:
    """float64 everywhere, as in heart_test.parq, so course notebooks read our files unchanged."""
    data = [col.cast(pa.float64()) for col in columns] + [pa.array(y.astype(np.float64))]
    pq.write_table(pa.table(data, names=[*SAMPLE_COLUMNS, TARGET_COLUMN]), tmp)


def _quote(items: list[str], *, quote: bool = True) -> str:
    shown = [repr(s) if quote else s for s in items[:_SHOW]]
    return ", ".join(shown) + (", ..." if len(items) > _SHOW else "")
