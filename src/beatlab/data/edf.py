"""EDF and BDF files (Holter, sleep and wearable exports) read as WFDB records.

beatlab's record readers are WFDB's, so an EDF/BDF file is written, for as long as it is being
classified, as a WFDB record in a temporary folder (`beatlab.data.recordings.as_wfdb`): its ECG
signals at one sampling rate, in physical units, named as EDF+ names them (`ECG II` is lead
`II`). Every other step then reads it exactly as it reads a PhysioNet record.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from beatlab.data.wfdb_files import write_physical
from beatlab.errors import BeatlabError

EDF_SUFFIXES = {".edf", ".bdf"}
_ECG_TYPES = ("ecg", "ekg")  # EDF+ labels start with the signal's type: "ECG II", "EKG V5"


def is_edf(path: Path) -> bool:
    return path.suffix.lower() in EDF_SUFFIXES


def lead_name(label: str) -> str:
    """EDF+ writes a label as type then specification ("ECG II"): the lead is the specification;
    a label of the type alone ("ECG") or of no known type is kept as it is."""
    kind, _, spec = label.strip().partition(" ")
    return spec.strip() if kind.casefold() in _ECG_TYPES and spec.strip() else label.strip()


def is_ecg(label: str) -> bool:
    return label.strip().casefold().startswith(_ECG_TYPES)


def discontinuous(path: Path) -> bool:
    """Whether an EDF+/BDF+ file says it has gaps: its header's reserved field (bytes 192 on)
    starts EDF+D or BDF+D, where a continuous one has EDF+C and plain EDF nothing."""
    try:
        with open(path, "rb") as f:
            head = f.read(197)
    except OSError:
        return False
    return head[192:197] in {b"EDF+D", b"BDF+D"}


def ecg_signals(labels: list[str], rates: list[float]) -> list[int]:
    """The signals to read: those whose label says ECG, else all (the user names one with
    --lead); of those, the ones at the first one's sampling rate, as a WFDB record has one."""
    chosen = [i for i, label in enumerate(labels) if is_ecg(label)] or list(range(len(labels)))
    return [i for i in chosen if rates[i] == rates[chosen[0]]]


def write_wfdb(path: Path, folder: Path) -> Path:
    """Write the ECG signals of the EDF/BDF file at `path` as a WFDB record in `folder`, named
    after the file, and return the record's base path."""
    import pyedflib

    if discontinuous(path):
        raise BeatlabError(
            "an EDF+D/BDF+D file (discontinuous): beatlab reads continuous recordings, as its "
            "R-R intervals would span the gaps; export it as EDF+C, or as one file per part",
            path,
        )
    try:
        with pyedflib.EdfReader(str(path)) as edf:
            labels = [str(label) for label in edf.getSignalLabels()]
            if not labels:
                raise BeatlabError("an EDF/BDF file with no signals", path)
            rates = [float(edf.getSampleFrequency(i)) for i in range(len(labels))]
            chosen = ecg_signals(labels, rates)
            units = [str(edf.getPhysicalDimension(i)).strip() for i in chosen]
            signals = [edf.readSignal(i) for i in chosen]
            bits = "24" if path.suffix.lower() == ".bdf" else "16"
    except OSError as err:
        problem = str(err).replace(f"{path}: ", "")  # pyedflib names the file itself
        raise BeatlabError(f"unreadable EDF/BDF file: {problem}", path) from None
    length = min(len(s) for s in signals)
    names = [lead_name(labels[i]) for i in chosen]
    if len(set(n.casefold() for n in names)) < len(names):
        names = [labels[i].strip() for i in chosen]  # two leads of one name: keep the labels
    names = [name or f"signal {i + 1}" for name, i in zip(names, chosen, strict=True)]  # unlabelled
    base = folder / (re.sub(r"[^-\w]", "_", path.stem) or "record")  # WFDB's record names
    return write_physical(
        folder,
        base.name,
        rates[chosen[0]],
        [u.replace("\u00b5", "u").replace("\u03bc", "u") or "mV" for u in units],
        names,
        np.column_stack([s[:length] for s in signals]),
        bits,
    )
