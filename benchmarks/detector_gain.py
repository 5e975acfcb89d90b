"""The QRS detector on recordings of another amplitude: each record's lead times a gain (a
high-gain chest lead, a low-gain recorder), detected by GQRS as it is and by beatlab's detector
path (the lead in millivolts, its one-second swing brought into `DETECTOR_SWING_MV`), side by
side in one process, against the annotated beats.

    python benchmarks/detector_gain.py [--gains 0.25 1 3] [--records 101 106 ...]
        [--db mitdb] [--workers N] [--data-dir DATA_DIR]

By default MIT-BIH's DS1 records on MLII (training patients: detection is not learnt, and the
range was chosen on them; DS2 is not read). Prints, per gain, missed beats (FN), false
detections (FP), Se and +P of each, and the ratio of their errors (FN + FP). Detections and
beats inside an annotated ventricular flutter / fibrillation episode count in neither, as in
EC57. About 3 minutes on 2 cores (a record per worker process).
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import wfdb

from beatlab.data.build import read_annotation_marks, within
from beatlab.data.databases import find_lead, get_database
from beatlab.data.dataset import resolve_data_dir
from beatlab.deploy.predict import (
    MATCH_WINDOW_S,
    UNMATCHED,
    detect_beats,
    detector_signal,
    match_reference,
)
from beatlab.errors import BeatlabError, script

WAYS = ("GQRS as is", "beatlab")


def errors(detected: np.ndarray, beats: np.ndarray, window: float) -> np.ndarray:
    """Missed beats, false detections and beats found, of `detected` against `beats`."""
    found = int(
        (
            match_reference(detected, beats, np.zeros(len(beats), np.int64), window) != UNMATCHED
        ).sum()
    )
    return np.array([len(beats) - found, len(detected) - found, found])


def record_errors(
    base: Path, leads: tuple[str, ...], gains: list[float]
) -> dict[tuple[float, str], np.ndarray]:
    """`errors` of each way at each gain on one record's first lead of `leads` (else its first)."""
    header = wfdb.rdheader(str(base))
    lead = find_lead(leads, header.sig_name) or header.sig_name[0]
    rec = wfdb.rdrecord(str(base), channels=[header.sig_name.index(lead)])
    signal, units, fs = rec.p_signal[:, 0], rec.units[0], float(rec.fs)
    beats, _, _, vf = read_annotation_marks(base, length=len(signal))
    beats = beats[~within(beats, vf)]
    counts: dict[tuple[float, str], np.ndarray] = {}
    for gain in gains:
        for way in WAYS:
            lead_signal = gain * signal
            if way == "beatlab":
                lead_signal = detector_signal(lead_signal, fs, units)[0]
            detected = detect_beats(lead_signal, fs)
            detected = detected[~within(detected, vf)]
            counts[gain, way] = errors(detected, beats, MATCH_WINDOW_S * fs)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gains", type=float, nargs="+", default=[0.25, 1.0, 3.0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--db", default="mitdb")
    parser.add_argument("--records", nargs="+", default=None, help="default: DS1's (mitdb)")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    spec = get_database(args.db)
    folder = resolve_data_dir(args.data_dir) / spec.name
    records = args.records or list(spec.splits["inter"].train if "inter" in spec.splits else [])
    if not records:
        raise BeatlabError(f"name the records of {spec.name} to use with --records")
    bases = [folder / name for name in records]
    for base in bases:
        if not base.with_suffix(".hea").exists():
            raise BeatlabError(f"record {base.name} has no .hea file", base.with_suffix(".hea"))
    totals = {(gain, way): np.zeros(3) for gain in args.gains for way in WAYS}
    with ProcessPoolExecutor(args.workers) as pool:
        jobs = {pool.submit(record_errors, b, spec.leads, args.gains): b.name for b in bases}
        for job in as_completed(jobs):
            for key, counts in job.result().items():
                totals[key] += counts
            print(f"{jobs[job]} done", flush=True)
    print(f"\n{len(records)} records of {spec.name}; FN missed beats, FP false detections")
    print(f"{'gain':>6}  " + "  ".join(f"{way:>30}" for way in WAYS) + "  errors, beatlab / as is")
    for gain in args.gains:
        cells, errs = [], []
        for way in WAYS:
            fn, fp, found = totals[gain, way]
            se, ppv = found / (found + fn), found / (found + fp)
            cells.append(f"FN {fn:5.0f} FP {fp:5.0f} Se {se:.4f} +P {ppv:.4f}")
            errs.append(fn + fp)
        print(f"{gain:>6g}  " + "  ".join(f"{c:>30}" for c in cells) + f"  {errs[1] / errs[0]:.2f}")


if __name__ == "__main__":
    script(main)
