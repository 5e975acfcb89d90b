"""Beat builder: raw WFDB records of a registered database -> fixed-size beats with AAMI labels.

Per record: the first of the database's preferred leads that the record has (or the lead the user
names), cut into beats at the reference annotations' R peaks by a beat layout
(`beatlab.data.layouts`), labelled by the database's symbol map. One cache per database, layout
and lead choice, holding the build parameters, the symbol map, the lead used per record and the
SHA-256 of every source file; it is rebuilt only when one of these changes, and building one never
touches another.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import wfdb

from beatlab import CLASSES, __version__
from beatlab.data.databases import MITDB, DatabaseSpec, find_lead
from beatlab.data.layouts import KACHUEE, BuildParams, get_layout, segment_clear
from beatlab.data.recordings import is_multi_segment, segment_names
from beatlab.errors import BeatlabError
from beatlab.io import atomic_path, sha256_file

RR_FEATURES = ("rr_prev", "rr_next", "rr_local")
"""R-R context kept per beat (its meaning depends on the layout: see `layouts.RR_MEANING`)."""
CHECKSUMS = "SHA256SUMS.txt"
"""PhysioNet's checksum list in a database folder; `beatlab data fetch` writes it first."""

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


@dataclass
class Beats:
    """A set of beats held whole in memory: the unit every later stage slices."""

    x: np.ndarray  # (n, 187) float32, each beat in [0, 1], zero-padded
    y: np.ndarray  # (n,) int64 class labels
    rr: np.ndarray  # (n, 3) float32 R-R context ((n, channels, 3) with x's channels)
    record: np.ndarray  # (n,) str record id ("" for synthetic beats)
    sample: np.ndarray  # (n,) int64 R-peak sample index at the record's own rate (-1: synthetic)
    median: np.ndarray | None = None
    """(n, length) float32: the median beat a deviation layout took from each beat's record, for
    jitter that moves the R peak; None for other layouts, several leads and SMOTE's beats."""

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> Beats:
        """The beats at `index` (an integer or boolean array), as a new Beats."""
        return Beats(
            self.x[index],
            self.y[index],
            self.rr[index],
            self.record[index],
            self.sample[index],
            None if self.median is None else self.median[index],
        )

    @staticmethod
    def join(parts: list[Beats]) -> Beats:
        """The beats of `parts` one after the other (a median only where every part has one)."""
        x, y, rr, record, sample = (
            np.concatenate([getattr(p, f) for p in parts]) for f in BEAT_FIELDS
        )
        medians = [p.median for p in parts if p.median is not None]
        median = np.concatenate(medians) if len(medians) == len(parts) else None
        return Beats(x, y, rr, record, sample, median)

    def counts(self, num_classes: int = len(CLASSES)) -> np.ndarray:
        return np.bincount(self.y, minlength=num_classes)


BEAT_FIELDS = ("x", "y", "rr", "record", "sample")
"""The arrays every set of beats has."""


def record_names(data_dir: Path) -> list[str]:
    """Records listed in PhysioNet's RECORDS file, else every header in the directory but those
    of a multi-segment record's segments (read as part of it)."""
    if not data_dir.is_dir():
        raise BeatlabError("no such directory", data_dir)
    listing = data_dir / "RECORDS"
    if listing.exists():
        names = listing.read_text().split()
    else:
        names = sorted(p.stem for p in data_dir.glob("*.hea"))
        parts = {
            part
            for name in names
            if is_multi_segment(data_dir / name)
            for part in segment_names(data_dir / name)
        }
        names = [name for name in names if name not in parts]
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
    if isinstance(header, wfdb.MultiRecord):
        raise BeatlabError(
            f"a multi-segment record ({len(header.seg_name)} segments): join its segments into "
            "one record first (wfdb.rdrecord, then wfdb.wrsamp)",
            base.with_suffix(".hea"),
        )
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


def record_patients(data_dir: Path, spec: DatabaseSpec, records: Iterable[str]) -> dict[str, str]:
    """Each record's patient: from its header's comment where the database's headers say whose
    a record is (`spec.patient_comment`), else as the spec declares. A header without that
    comment is an error naming it, since guessing would put one person on both sides of a
    split."""
    if spec.patient_comment is None:
        return {r: spec.patient(r) for r in records}
    pattern = re.compile(spec.patient_comment)
    found = {}
    for record in records:
        comments = wfdb.rdheader(str(data_dir / record)).comments
        match = next((m for m in map(pattern.search, comments) if m), None)
        if match is None:
            raise BeatlabError(
                f"no comment matching {spec.patient_comment!r}: every {spec.name} header says "
                "whose record it is, and patient-wise splits need it",
                data_dir / f"{record}.hea",
            )
        found[record] = f"{spec.name}:{match.group(1)}"
    return found


CHANNEL_SEPARATOR = "|"
"""Joins the leads of an ensemble whose members read different leads (`MLII|V1,V2`): its beats
are cut from each, one channel per lead."""


def channel_leads(lead: str | None) -> list[str | None]:
    """One lead choice per channel of `lead` (None: the database's preferred leads)."""
    return [part.strip() or None for part in (lead or "").split(CHANNEL_SEPARATOR)]


def asked_lead(own: str | None, asked: str | None) -> str | None:
    """The lead(s) a run reads a record from: `asked` (`--lead`) if given, one choice per
    channel of the run's own lead, else the run's own."""
    channels = [choice or "the preferred lead" for choice in channel_leads(own)]
    if asked and len(channel_leads(asked)) != len(channels):
        raise BeatlabError(
            f"the run reads {len(channels)} lead(s) ({'; '.join(channels)}): give one choice "
            f"per lead, joined by '{CHANNEL_SEPARATOR}'",
            "--lead",
        )
    return asked or own


def lead_choices(lead: str) -> tuple[str, ...]:
    """`--lead V1,V2,V5`: a record uses the first of these it has (one name: that lead only)."""
    return tuple(name.strip() for name in lead.split(",") if name.strip())


class LeadOff(BeatlabError):
    """A lead with no valid sample: it came off for the whole recording."""

    def __init__(self, lead: str, path: Path) -> None:
        super().__init__(f"lead {lead} holds no valid samples", path)
        self.lead = lead


def read_lead(
    base: Path, header: wfdb.Record, leads: tuple[str, ...], lead: str | None = None
) -> tuple[np.ndarray, str, np.ndarray]:
    """The digital samples of the first of `lead`'s choices the record has if given, else of
    the first of `leads` it has, its name, and which samples are invalid (WFDB's missing-value
    marker): those are bridged linearly, so that a filter does not ring around a gap."""
    wanted = lead_choices(lead) if lead else leads
    found = find_lead(wanted, header.sig_name or [])
    if found is None:
        raise BeatlabError(
            f"record {base.name} has none of the leads {', '.join(wanted)} "
            f"(it has {', '.join(map(str, header.sig_name or []))}; name one with --lead)",
            base.with_suffix(".hea"),
        )
    try:
        rec = wfdb.rdrecord(str(base), channels=[header.sig_name.index(found)], physical=False)
    except Exception as err:
        raise BeatlabError(f"unreadable record: {err}", base) from None
    signal = narrowest(rec.d_signal[:, 0])
    invalid = np.isnan(rec.dac(return_res=32)[:, 0])
    if invalid.all():
        raise LeadOff(found, base.with_suffix(".dat"))
    if invalid.any():
        valid = np.flatnonzero(~invalid)
        bridged = np.interp(np.flatnonzero(invalid), valid, signal[valid])
        signal[invalid] = np.rint(bridged).astype(signal.dtype)
    return signal, found, invalid


def narrowest(samples: np.ndarray) -> np.ndarray:
    """Digital samples as int16 where they fit (MIT-BIH's 11-bit format 212, every format of 16
    bits or fewer), else int32, else as they are: wfdb reads them as int64, four times the memory
    of a 24-hour Holter lead, and the layouts compute in floating point whatever they are given."""
    if samples.size == 0:
        return samples.astype(np.int16)
    lo, hi = samples.min(), samples.max()
    for kind in (np.int16, np.int32):
        if np.iinfo(kind).min <= lo and hi <= np.iinfo(kind).max:
            return samples.astype(kind)
    return samples


def read_annotations(
    base: Path, spec: DatabaseSpec = MITDB, length: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """R-peak samples and AAMI labels of the annotated beats; other annotations are dropped."""
    peaks, labels, _, _ = read_annotation_marks(base, spec, length)
    return peaks, labels


def read_annotation_marks(
    base: Path, spec: DatabaseSpec = MITDB, length: int | None = None, annotator: str = ""
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """R-peak samples and AAMI labels of the annotated beats of `annotator` (default: the
    database's), the samples of every annotation (rhythm changes and noise marks too: the
    kaggle layout's beats end by them), and the ventricular flutter / fibrillation episodes it
    marks (`vf_episodes`). Beats outside the signal (`length` samples) make the file unreadable,
    not a crash later."""
    annotator = annotator or spec.annotator
    path = base.with_suffix(f".{annotator}")
    try:
        ann = wfdb.rdann(str(base), annotator)
    except Exception as err:
        raise BeatlabError(f"unreadable annotations: {err}", path) from None
    symbols = np.asarray(ann.symbol, dtype=object)
    samples = np.asarray(ann.sample, dtype=np.int64)
    is_beat = np.isin(symbols, list(spec.symbols))
    labels = np.array([spec.symbols[s] for s in symbols[is_beat]], dtype=np.int64)
    peaks = samples[is_beat]
    if len(peaks) and (
        np.any(np.diff(peaks) < 0) or peaks[0] < 0 or (length and peaks[-1] >= length)
    ):
        raise BeatlabError("annotations out of order or outside the signal", path)
    return peaks, labels, samples, vf_episodes(symbols, samples, length)


VF_ON, VF_OFF = "[", "]"
"""PhysioNet's marks of the start and end of ventricular flutter or fibrillation (MIT-BIH 207)."""


def vf_episodes(symbols: np.ndarray, samples: np.ndarray, length: int | None) -> np.ndarray:
    """(k, 2) first and last sample of each ventricular flutter / fibrillation episode the
    annotation `symbols` at `samples` mark: AAMI EC57 scores VF apart from beats, as its waves
    are no beats. An episode left open runs to the record's end (`length` samples; without it,
    the last annotation); a first end with no start, from the record's start (an excerpt that
    begins in VF)."""
    episodes: list[tuple[int, int]] = []
    start: int | None = None
    for i in np.flatnonzero(np.isin(symbols, [VF_ON, VF_OFF])):
        if symbols[i] == VF_ON and start is None:
            start = int(samples[i])
        elif symbols[i] == VF_OFF and (start is not None or not episodes):
            episodes.append((0 if start is None else start, int(samples[i])))
            start = None
    if start is not None:
        episodes.append((start, length - 1 if length else int(samples[-1])))
    return np.array(episodes, dtype=np.int64).reshape(-1, 2)


def within(samples: np.ndarray, episodes: np.ndarray) -> np.ndarray:
    """Which `samples` lie in one of the (sorted, disjoint) `episodes`, ends included."""
    which = np.searchsorted(episodes[:, 0], samples, side="right") - 1
    ends = episodes[np.maximum(which, 0), 1] if len(episodes) else np.zeros(len(samples))
    return (which >= 0) & (samples <= ends)


def check_rate(header: wfdb.Record, spec: DatabaseSpec, base: Path) -> float:
    fs = float(header.fs)
    if not any(math.isclose(fs, allowed) for allowed in spec.fs):
        raise BeatlabError(
            f"sampled at {fs:g} Hz, but {spec.name} records are at "
            f"{', '.join(f'{f:g}' for f in spec.fs)} Hz (a record of another database?)",
            base.with_suffix(".hea"),
        )
    return fs


@dataclass
class Record:
    """One record's lead, as read for building: the signal, its rate, beats and lead name."""

    signal: np.ndarray
    fs: float
    peaks: np.ndarray
    labels: np.ndarray
    lead: str
    marks: np.ndarray
    """Samples of every annotation, beats or not."""
    invalid: np.ndarray
    """Which samples of the lead were invalid (bridged; see `read_lead`)."""


def read_record(
    data_dir: Path,
    name: str,
    spec: DatabaseSpec = MITDB,
    lead: str | None = None,
    first_lead: bool = False,
) -> Record:
    """One record's lead (`lead`, else its first signal with `first_lead`, else the first of
    the database's preferred leads it has), rate, beat positions and AAMI labels, with input
    checked file by file."""
    base = data_dir / name
    for ext in ("hea", spec.annotator):
        if not base.with_suffix(f".{ext}").exists():
            raise BeatlabError(f"record {name} has no .{ext} file", base.with_suffix(f".{ext}"))
    header = read_header(base)
    fs = check_rate(header, spec, base)
    leads = tuple(header.sig_name[:1]) if first_lead else spec.leads
    signal, used, invalid = read_lead(base, header, leads, lead)
    peaks, labels, marks, _ = read_annotation_marks(base, spec, len(signal))
    return Record(signal, fs, peaks, labels, used, marks, invalid)


def build_beats(
    data_dir: Path,
    spec: DatabaseSpec = MITDB,
    params: BuildParams = KACHUEE,
    lead: str | None = None,
    workers: int | None = None,
) -> tuple[Beats, dict[str, str], dict[str, int]]:
    """Build every record's beats, and say which lead each record used and how many beats of
    which records were left out over invalid samples; records are read in parallel threads
    (wfdb and numpy release the GIL for most of the work)."""
    names = record_names(data_dir)

    def one(name: str) -> tuple[Beats, str, int]:
        rec = read_record(data_dir, name, spec, lead, params.first_lead)
        x, rr, kept = segment_clear([rec.signal], rec.fs, rec.peaks, params, rec.marks, rec.invalid)
        median = None
        if params.deviation:  # what it took from the beats, for jitter that moves the R peak
            plain = replace(params, deviation=False)
            whole, _, _ = segment_clear(
                [rec.signal], rec.fs, rec.peaks, plain, rec.marks, rec.invalid
            )
            usual = np.median(whole - x, axis=0) if len(x) else np.zeros(x.shape[1:])
            median = np.broadcast_to(usual.astype(np.float32), x.shape)
        peaks = rec.peaks[kept].astype(np.int64)
        beats = Beats(x, rec.labels[kept], rr, np.full(len(x), name), peaks, median)
        return beats, rec.lead, int((~kept).sum())

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        parts = list(pool.map(one, names))
    beats = Beats.join([p for p, _, _ in parts])
    leads = {name: used for name, (_, used, _) in zip(names, parts, strict=True)}
    left_out = {name: left for name, (_, _, left) in zip(names, parts, strict=True) if left}
    return beats, leads, left_out


def read_checksum_list(path: Path) -> dict[str, str]:
    """A folder's `<sha256> <file>` list (PhysioNet's SHA256SUMS.txt), or {} without one."""
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text("utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def source_checksums(data_dir: Path, spec: DatabaseSpec = MITDB) -> dict[str, str]:
    """SHA-256 of every file the build reads, so the cache knows when its sources changed.

    A folder with a checksum list (what `beatlab data fetch` and PhysioNet write) must hold every
    record it lists, each file as listed: a half-finished fetch or a damaged file is an error
    naming it, not a smaller dataset."""
    names = record_names(data_dir)
    listed = read_checksum_list(data_dir / CHECKSUMS)
    exts = ("hea", "dat", spec.annotator)
    if listed:
        missing = sorted(
            {
                f.rsplit(".", 1)[0]
                for f in listed
                if f.endswith(exts) and not (data_dir / f).exists()
            }
        )
        if missing:
            raise BeatlabError(
                f"incomplete {spec.name}: {len(missing)} record(s) of {CHECKSUMS} missing "
                f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); "
                f"run `beatlab data fetch --db {spec.name}` again",
                data_dir,
            )
    sums = {}
    for name in names:
        for ext in exts:
            path = data_dir / f"{name}.{ext}"
            if path.exists():
                sums[path.name] = sha256_file(path)
                if path.name in listed and listed[path.name] != sums[path.name]:
                    raise BeatlabError(f"checksum mismatch with {CHECKSUMS}", path)
    return sums


def _metadata(
    spec: DatabaseSpec, params: BuildParams, lead: str | None, checksums: dict[str, str]
) -> dict[str, Any]:
    return {
        "db": spec.name,
        "params": asdict(params),
        "lead": lead,
        "sources": checksums,
        "classes": list(CLASSES),
        "symbols": dict(spec.symbols),
    }


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
    if beats.median is not None:  # one a record
        names, first = np.unique(beats.record.astype(str), return_index=True)
        meta["medians"] = {n: beats.median[i].tolist() for n, i in zip(names, first, strict=True)}
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
    record = table.column("record").to_numpy().astype(str)
    medians = json.loads((table.schema.metadata or {}).get(b"beatlab", b"{}")).get("medians")
    median = None
    if medians is not None:
        names, where = np.unique(record, return_inverse=True)
        rows = np.array([medians[name] for name in names], dtype=np.float32)
        median = rows.reshape(len(names), -1)[where]
    return Beats(
        x=x.values.to_numpy().reshape(n, -1).astype(np.float32, copy=False),
        y=table.column("label").to_numpy().astype(np.int64),
        rr=np.stack([table.column(f).to_numpy() for f in RR_FEATURES], axis=1).astype(np.float32),
        record=record,
        sample=table.column("sample").to_numpy().astype(np.int64),
        median=median,
    )


def cache_path(
    data_dir: Path, db: str = "mitdb", params: BuildParams = KACHUEE, lead: str | None = None
) -> Path:
    """DATA_DIR/beats/<db>-<layout>.parquet; parameters other than the registered layout's or an
    explicit lead get a suffix of their own, so no build ever replaces another's cache."""
    name = f"{db}-{params.name}"
    if params != get_layout(params.name) or lead:
        key = json.dumps([asdict(params), lead], sort_keys=True).encode()
        name += "-" + hashlib.sha256(key).hexdigest()[:8]
    return data_dir / "beats" / f"{name}.parquet"


def ensure_beats(
    data_dir: Path,
    params: BuildParams = KACHUEE,
    *,
    db: DatabaseSpec = MITDB,
    lead: str | None = None,
    force: bool = False,
) -> tuple[Beats, Path, bool]:
    """The beats of `data_dir/<db>`, from the cache when its parameters and sources match.

    Returns (beats, cache path, whether it was rebuilt); the lead used per record, and the beats
    left out over invalid samples per record, are in the cache's metadata
    (`read_cache_metadata(path)["leads"]`, `["left_out"]`)."""
    source = data_dir / db.name
    if not source.is_dir():
        raise BeatlabError(
            f"no {db.title} records here; run `beatlab data fetch --db {db.name}` first", source
        )
    path = cache_path(data_dir, db.name, params, lead)
    meta = _metadata(db, params, lead, source_checksums(source, db))
    cached = read_cache_metadata(path)
    fresh = cached is not None and all(cached.get(k) == v for k, v in meta.items())
    if not force and fresh and (not params.deviation or "medians" in (cached or {})):
        return load_beats(path), path, False
    beats, leads, left_out = build_beats(source, db, params, lead)
    save_beats(beats, path, {**meta, "leads": leads, "left_out": left_out})
    return beats, path, True


def ensure_channel_beats(
    data_dir: Path, params: BuildParams, *, db: DatabaseSpec = MITDB, lead: str | None = None
) -> tuple[Beats, list[Path], dict[str, str]]:
    """`ensure_beats` for each channel of `lead`: with several, the beats of every lead stacked
    into (n, channels, length) beats and their R-R into (n, channels, 3), cut at the same R
    peaks (those every lead has: a beat over invalid samples of one lead is left out of all).
    Returns the beats, their caches and the lead(s) each record's beats were cut from
    (`MLII|V1` with two channels)."""
    parts, paths, leads = [], [], []
    for choice in channel_leads(lead):
        beats, path, _ = ensure_beats(data_dir, params, db=db, lead=choice)
        parts.append(beats)
        paths.append(path)
        leads.append((read_cache_metadata(path) or {}).get("leads", {}))
    if len(parts) == 1:
        return parts[0], paths, leads[0]
    keys = [
        np.char.add(np.char.add(b.record.astype(str), ":"), b.sample.astype(str)) for b in parts
    ]
    common = reduce(np.intersect1d, keys)
    parts = [
        b if len(k) == len(common) else b.take(np.isin(k, common))
        for b, k in zip(parts, keys, strict=True)
    ]
    first = parts[0]
    joined = {r: CHANNEL_SEPARATOR.join(str(m.get(r, "?")) for m in leads) for r in leads[0]}
    x, rr = (np.stack([getattr(b, k) for b in parts], axis=1) for k in ("x", "rr"))
    return Beats(x, first.y, rr, first.record, first.sample), paths, joined
