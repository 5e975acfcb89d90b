"""Beat builder after Kachuee et al. 2018: raw WFDB records -> 187-sample beats with AAMI labels.

Per record: lead MLII (the first lead where a record has none: 102 and 104), resampled to 125 Hz,
cut into 10 s windows each min-max normalised to [0, 1]; the nominal period T of a window is the
median R-R interval of the annotated beats in it; each beat starts at its R peak, spans 1.2 T and is
zero-padded or cut to 187 samples. R peaks and labels come from the reference annotations.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import wfdb
from scipy.signal import resample_poly

from beatlab import BEAT_LENGTH, CLASSES, __version__
from beatlab.errors import BeatlabError
from beatlab.io import atomic_path, sha256_file

AAMI: dict[str, int] = {
    **dict.fromkeys("NLRej", 0),
    **dict.fromkeys("AaJS", 1),
    **dict.fromkeys("VE", 2),
    "F": 3,
    **dict.fromkeys("/fQ", 4),
}
"""AAMI EC57 mapping of MIT-BIH beat symbols to class labels; any other symbol is not a beat."""

RR_FEATURES = ("rr_prev", "rr_next", "rr_local")
"""R-R context kept per beat, in seconds: previous, next, and mean of the last 10 intervals."""

_BYTES_PER_SAMPLE = {
    "8": 1.0,
    "16": 2.0,
    "24": 3.0,
    "32": 4.0,
    "61": 2.0,
    "80": 1.0,
    "160": 2.0,
    "212": 1.5,
    "310": 4 / 3,
    "311": 4 / 3,
}


@dataclass(frozen=True)
class BuildParams:
    """Everything that changes the built beats; stored in the cache so a change forces a rebuild."""

    lead: str = "MLII"
    fs: int = 125
    window_s: float = 10.0
    period_factor: float = 1.2
    length: int = BEAT_LENGTH
    rr_local_beats: int = 10


@dataclass
class Beats:
    """A set of beats held whole in memory: the unit every later stage slices."""

    x: np.ndarray  # (n, 187) float32, each beat in [0, 1], zero-padded
    y: np.ndarray  # (n,) int64 class labels
    rr: np.ndarray  # (n, 3) float32 R-R context in seconds
    record: np.ndarray  # (n,) str record id ("" for synthetic beats)
    sample: np.ndarray  # (n,) int64 R-peak sample index at the record's own rate (-1: synthetic)

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> Beats:
        """The beats at `index` (an integer or boolean array), as a new Beats."""
        return Beats(
            self.x[index], self.y[index], self.rr[index], self.record[index], self.sample[index]
        )

    def counts(self, num_classes: int = len(CLASSES)) -> np.ndarray:
        return np.bincount(self.y, minlength=num_classes)


def segment_beats(
    signal: np.ndarray, fs: float, peaks: np.ndarray, params: BuildParams = BuildParams()
) -> tuple[np.ndarray, np.ndarray]:
    """Cut one lead into beats at the given R peaks (sample indices at `fs`).

    Returns the (n, length) beats and their (n, 3) R-R context in seconds. Shared by the dataset
    builder and `beatlab predict`, so a new recording is segmented exactly like the training data.
    """
    ratio = Fraction(params.fs / fs).limit_denominator(1000)
    sig = resample_poly(np.asarray(signal, dtype=np.float32), ratio.numerator, ratio.denominator)
    r = np.minimum(np.rint(np.asarray(peaks) * params.fs / fs).astype(np.int64), len(sig) - 1)

    win = int(round(params.window_s * params.fs))
    starts = np.arange(0, len(sig), win)
    lo = np.minimum.reduceat(sig, starts)
    span = np.maximum.reduceat(sig, starts) - lo
    span[span == 0] = 1.0
    w_sig = np.arange(len(sig)) // win
    norm = ((sig - lo[w_sig]) / span[w_sig]).astype(np.float32)

    # Nominal period per window: median R-R of consecutive beats inside it; windows with fewer
    # than two beats fall back to the record's median R-R.
    w_r = r // win
    rr_samples = np.diff(r)
    same = w_r[1:] == w_r[:-1]
    fallback = (
        float(np.median(rr_samples)) if len(rr_samples) else params.length / params.period_factor
    )
    period = np.full(len(starts), fallback)
    if same.any():
        medians = pd.Series(rr_samples[same]).groupby(w_r[1:][same]).median()
        period[medians.index.to_numpy()] = medians.to_numpy()
    span_len = np.minimum(np.rint(params.period_factor * period[w_r]), params.length).astype(int)

    offsets = np.arange(params.length)
    idx = r[:, None] + offsets[None, :]
    keep = (offsets[None, :] < span_len[:, None]) & (idx < len(sig))
    x = np.where(keep, norm[np.minimum(idx, len(sig) - 1)], np.float32(0.0))

    rr_s = np.diff(np.asarray(peaks, dtype=np.float64)) / fs
    if len(rr_s) == 0:
        rr_s = np.zeros(1)
    prev = np.concatenate([rr_s[:1], rr_s])[: len(r)]
    nxt = np.concatenate([rr_s, rr_s[-1:]])[: len(r)]
    local = pd.Series(prev).rolling(params.rr_local_beats, min_periods=1).mean().to_numpy()
    rr = np.stack([prev, nxt, local], axis=1).astype(np.float32)
    return x.astype(np.float32), rr


def record_names(data_dir: Path) -> list[str]:
    """Records listed in PhysioNet's RECORDS file, else every header in the directory."""
    if not data_dir.is_dir():
        raise BeatlabError("no such directory", data_dir)
    listing = data_dir / "RECORDS"
    names = (
        listing.read_text().split()
        if listing.exists()
        else sorted(p.stem for p in data_dir.glob("*.hea"))
    )
    if not names:
        raise BeatlabError("no WFDB records (no RECORDS file and no .hea files)", data_dir)
    return names


def read_header(base: Path) -> wfdb.Record:
    """A record's header, checked against its signal files, so a bad download fails by name."""
    name = base.name
    if not base.with_suffix(".hea").exists():
        raise BeatlabError(f"record {name} has no .hea file", base.with_suffix(".hea"))
    try:
        header = wfdb.rdheader(str(base))
    except Exception as err:  # wfdb raises many types for a bad header
        raise BeatlabError(f"malformed header: {err}", base.with_suffix(".hea")) from None
    if not header.sig_name or not header.sig_len or not header.fs:
        raise BeatlabError(
            "malformed header: no signals, length or sampling rate", base.with_suffix(".hea")
        )
    for file_name in set(header.file_name):
        dat = base.parent / file_name
        per_frame = sum(
            _BYTES_PER_SAMPLE.get(str(f), 2.0)
            for f, n in zip(header.fmt, header.file_name, strict=True)
            if n == file_name
        )
        expected = math.ceil(header.sig_len * per_frame)
        size = dat.stat().st_size if dat.exists() else -1
        if size < 0:
            raise BeatlabError(f"record {name} has no signal file", dat)
        if size < expected:
            raise BeatlabError(f"truncated signal file: {size} bytes, header needs {expected}", dat)
    return header


def read_lead(base: Path, header: wfdb.Record, lead: str) -> tuple[np.ndarray, str]:
    """The digital samples of `lead` (the first lead where the record has none) and its name."""
    channel = header.sig_name.index(lead) if lead in header.sig_name else 0
    try:
        rec = wfdb.rdrecord(str(base), channels=[channel], physical=False)
    except Exception as err:
        raise BeatlabError(f"unreadable record: {err}", base) from None
    return rec.d_signal[:, 0], header.sig_name[channel]


def read_annotations(base: Path) -> tuple[np.ndarray, np.ndarray]:
    """R-peak samples and AAMI labels of the annotated beats; other annotations are dropped."""
    try:
        ann = wfdb.rdann(str(base), "atr")
    except Exception as err:
        raise BeatlabError(f"unreadable record: {err}", base) from None
    symbols = np.asarray(ann.symbol)
    is_beat = np.isin(symbols, list(AAMI))
    labels = np.array([AAMI[s] for s in symbols[is_beat]], dtype=np.int64)
    return np.asarray(ann.sample)[is_beat], labels


def read_record(
    data_dir: Path, name: str, lead: str
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """One record's lead, rate, beat positions and AAMI labels, with input checked file by file."""
    base = data_dir / name
    for ext in ("hea", "atr"):
        if not base.with_suffix(f".{ext}").exists():
            raise BeatlabError(f"record {name} has no .{ext} file", base.with_suffix(f".{ext}"))
    header = read_header(base)
    signal, _ = read_lead(base, header, lead)
    peaks, labels = read_annotations(base)
    return signal, float(header.fs), peaks, labels


def build_beats(
    data_dir: Path, params: BuildParams = BuildParams(), workers: int | None = None
) -> Beats:
    """Build every record's beats; records are read in parallel threads (wfdb and numpy release
    the GIL for most of the work)."""
    names = record_names(data_dir)

    def one(name: str) -> Beats:
        signal, fs, peaks, labels = read_record(data_dir, name, params.lead)
        x, rr = segment_beats(signal, fs, peaks, params)
        return Beats(x, labels, rr, np.full(len(labels), name), peaks.astype(np.int64))

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        parts = list(pool.map(one, names))
    return Beats(
        *(
            np.concatenate([getattr(p, f) for p in parts])
            for f in ("x", "y", "rr", "record", "sample")
        )
    )


def source_checksums(data_dir: Path) -> dict[str, str]:
    """SHA-256 of every file the build reads, so the cache knows when its sources changed."""
    return {
        f"{n}.{e}": sha256_file(data_dir / f"{n}.{e}")
        for n in record_names(data_dir)
        for e in ("hea", "dat", "atr")
        if (data_dir / f"{n}.{e}").exists()
    }


def _metadata(params: BuildParams, checksums: dict[str, str]) -> dict[str, Any]:
    return {"params": asdict(params), "sources": checksums, "classes": list(CLASSES)}


def save_beats(beats: Beats, path: Path, meta: dict[str, Any]) -> None:
    """Write beats as Parquet (one fixed-size list column for the samples), atomically."""
    flat = pa.array(beats.x.reshape(-1), type=pa.float32())
    table = pa.table(
        {
            "record": pa.array(beats.record.astype(str)),
            "sample": pa.array(beats.sample, type=pa.int64()),
            "label": pa.array(beats.y, type=pa.int8()),
            **{f: pa.array(beats.rr[:, i], type=pa.float32()) for i, f in enumerate(RR_FEATURES)},
            "beat": pa.FixedSizeListArray.from_arrays(flat, beats.x.shape[1]),
        }
    )
    meta = {**meta, "beatlab_version": __version__, "counts": beats.counts().tolist()}
    table = table.replace_schema_metadata({"beatlab": json.dumps(meta)})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", use_dictionary=["record"])


def read_cache_metadata(path: Path) -> dict[str, Any] | None:
    """The build metadata of a cached dataset, or None when there is no readable cache."""
    try:
        raw = pq.read_schema(path).metadata or {}
        return dict(json.loads(raw[b"beatlab"]))
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None


def load_beats(path: Path) -> Beats:
    table = pq.read_table(path)
    x = table.column("beat").combine_chunks()
    n = len(table)
    return Beats(
        x=x.values.to_numpy().reshape(n, -1).astype(np.float32, copy=False),
        y=table.column("label").to_numpy().astype(np.int64),
        rr=np.stack([table.column(f).to_numpy() for f in RR_FEATURES], axis=1).astype(np.float32),
        record=table.column("record").to_numpy().astype(str),
        sample=table.column("sample").to_numpy().astype(np.int64),
    )


def cache_path(data_dir: Path) -> Path:
    return data_dir / "beats.parquet"


def ensure_beats(
    data_dir: Path, params: BuildParams = BuildParams(), *, force: bool = False
) -> tuple[Beats, Path, bool]:
    """The dataset of `data_dir/mitdb`, from the cache when its parameters and sources match.

    Returns (beats, cache path, whether it was rebuilt).
    """
    source = data_dir / "mitdb"
    if not source.is_dir():
        raise BeatlabError("no MIT-BIH records here; run `beatlab data fetch` first", source)
    path = cache_path(data_dir)
    checksums = source_checksums(source)
    meta = _metadata(params, checksums)
    cached = read_cache_metadata(path)
    if not force and cached is not None and all(cached.get(k) == v for k, v in meta.items()):
        return load_beats(path), path, False
    beats = build_beats(source, params)
    save_beats(beats, path, meta)
    return beats, path, True
