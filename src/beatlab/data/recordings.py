"""Recordings read as one WFDB record: what `predict`, `view` and `evaluate --records` classify.

beatlab's record readers are WFDB's, for records of one segment. An EDF/BDF file
(`beatlab.data.edf`) and a multi-segment WFDB record (PhysioNet's long-term and ICU recordings:
MIMIC's waveforms are segments of a few hours with gaps between them) are written, for as long
as they are classified, as a one-segment WFDB record in a temporary folder. Every other step
then reads them as it reads a PhysioNet record, and errors name the recording, never the copy.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import wfdb

from beatlab.data.edf import is_edf, write_wfdb
from beatlab.data.wfdb_files import write_physical
from beatlab.errors import BeatlabError, brief


def record_base(path: Path) -> Path:
    """`mitdb/208`, `mitdb/208.hea`, `.dat` or `.atr` all name record 208."""
    return path.with_suffix("") if path.suffix in {".hea", ".dat", ".atr"} else path


def is_multi_segment(base: Path) -> bool:
    """Whether the header at `base` is a multi-segment record's: its record line reads
    `name/segments` (WFDB's header format)."""
    header = base.with_suffix(".hea")
    if not header.is_file():
        return False
    for line in header.read_text(errors="replace").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return "/" in line.split()[0]
    return False


def segment_names(base: Path) -> list[str]:
    """The segments a multi-segment record's header names (its layout segment included)."""
    try:
        header = wfdb.rdheader(str(base))
    except Exception:  # an unreadable header is reported when the record itself is read
        return []
    return [name for name in getattr(header, "seg_name", None) or [] if name != "~"]


_PER_MILLIVOLT = {"mv": 1.0, "uv": 1e-3, "\u00b5v": 1e-3, "\u03bcv": 1e-3, "v": 1e3, "nv": 1e-6}


def per_millivolt(units: str | None) -> float | None:
    """Millivolts a unit of a signal in `units` is, or None where `units` is no voltage (a
    pressure, a pleth's `NU`). A header without units means mV."""
    return _PER_MILLIVOLT.get((units or "mV").strip().lower())


def voltage_signals(base: Path) -> list[str] | None:
    """The signals of the multi-segment record at `base` in a voltage, where it has others too
    (an ICU record's blood pressures, pleth and respiration), else None (all of them). Named by
    its layout segment, or its first segment where the layout is fixed."""
    try:
        header = wfdb.rdheader(str(base), rd_segments=True)
    except Exception:  # an unreadable header is reported when the record itself is read
        return None
    first = next((s for s in getattr(header, "segments", None) or [] if s is not None), None)
    if first is None or not first.sig_name:
        return None
    units = first.units or ["mV"] * len(first.sig_name)
    volts = [name for name, unit in zip(first.sig_name, units, strict=True) if per_millivolt(unit)]
    return volts if volts and len(volts) < len(first.sig_name) else None


def write_joined(base: Path, folder: Path) -> Path:
    """Write the multi-segment record at `base` as one record in `folder`, named as it is: its
    segments joined by wfdb (`m2s`), in physical units at 32 bits, so no sample is rounded
    again. Only its signals in volts are read where it has others (`voltage_signals`): a
    MIMIC record of days holds as many samples of pressures and pleth as of ECG. The samples of
    a gap, and of a lead a segment lacks, are marked invalid, so the beats over them are left
    out as over a lead that came off; a lead no segment has is dropped. Its annotation files
    are copied beside it."""
    header = base.with_suffix(".hea")
    try:
        record = wfdb.rdrecord(str(base), m2s=True, channel_names=voltage_signals(base))
    except Exception as err:  # wfdb raises many types for a bad segment
        raise BeatlabError(f"unreadable multi-segment record: {brief(err)}", header) from None
    signal = np.asarray(record.p_signal, dtype=np.float64)
    present = ~np.isnan(signal).all(axis=0)
    if len(signal) == 0 or not present.any():
        raise BeatlabError("a multi-segment record whose segments hold no samples", header)
    keep = np.flatnonzero(present)
    write_physical(
        folder,
        base.name,
        float(record.fs),
        [record.units[i] or "mV" for i in keep],
        [record.sig_name[i] for i in keep],
        signal if len(keep) == signal.shape[1] else signal[:, keep],
        "32",
    )
    for beside in base.parent.glob(f"{base.name}.*"):
        if beside.suffix not in {".hea", ".dat"} and beside.is_file():
            shutil.copyfile(beside, folder / beside.name)
    return folder / base.name


def is_copied(path: Path) -> bool:
    """Whether `as_wfdb` classifies `path` through a temporary one-segment copy."""
    return is_edf(path) or is_multi_segment(record_base(path))


@contextmanager
def as_wfdb(path: Path) -> Iterator[Path]:
    """`path` as a one-segment WFDB record: as it is, or for an EDF/BDF file or a multi-segment
    record its temporary copy (in a folder named like the recording's, so a page titles it
    `folder/name`), removed on leaving."""
    write: Callable[[Path, Path], Path]
    if is_edf(path):
        if not path.is_file():
            raise BeatlabError("no such file", path)
        source, write = path, write_wfdb
    elif is_multi_segment(record_base(path)):
        source, write = record_base(path), write_joined
    else:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="beatlab-") as tmp:
        folder = Path(tmp) / (source.resolve().parent.name or "recording")
        folder.mkdir()
        try:
            yield write(source, folder)
        except BeatlabError as err:
            if err.path and Path(err.path).is_relative_to(tmp):
                raise BeatlabError(err.problem, path) from None
            raise
