"""The QRS detector on recordings unlike MIT-BIH's: a lead of another amplitude (a high-gain
chest lead, a low-gain recorder) and short recordings (PTB-XL's are 10 s), detected by GQRS as it
is and by beatlab's detector path side by side in one process, against the annotated beats. The
detector path puts the lead's one-second swing into `DETECTOR_SWING_MV` and pads the lead before
and after (`PAD_S`), so that GQRS keeps a recording's first and last beats.

    python benchmarks/detector.py [--gains 0.25 1 3] [--seconds 10 --excerpts 20] [--seed 0]
        [--records 101 106 ...] [--db mitdb] [--workers N] [--data-dir DATA_DIR]

By default MIT-BIH's DS1 records on MLII, whole (training patients: detection is not learnt, and
both steps were chosen on them; DS2 is not read); with `--seconds`, `--excerpts` random excerpts
of each record instead. Prints, per gain, missed beats (FN), false detections (FP), Se and +P of
each way, and the ratio of their errors (FN + FP). Detections and beats inside an annotated
ventricular flutter / fibrillation episode count in neither, as in EC57. About 3 minutes on 2
cores (a record per worker process) whole, 1 minute for 20 excerpts of 10 s a record.
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import wfdb
from noise import KINDS, qrs_power  # beside this script
from noise import noise as drawn_noise

from beatlab.data.build import read_annotation_marks, within
from beatlab.data.databases import find_lead, get_database
from beatlab.data.dataset import resolve_data_dir
from beatlab.deploy.predict import (
    DETECTOR_LOWPASS_HZ,
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
    base: Path,
    leads: tuple[str, ...],
    gains: list[float],
    seconds: float | None,
    excerpts: int,
    seed: int,
    noise: tuple[str, float] | None = None,
    lowpass_hz: float | None = DETECTOR_LOWPASS_HZ,
) -> dict[tuple[float, str], np.ndarray]:
    """`errors` of each way at each gain on one record's first lead of `leads` (else its first):
    the whole record, or `excerpts` random excerpts of `seconds`; with `noise` (kind, SNR in dB)
    added to the lead first, drawn as `benchmarks/noise.py` draws it; beatlab's way reading the
    lead low-passed at `lowpass_hz`."""
    header = wfdb.rdheader(str(base))
    lead = find_lead(leads, header.sig_name) or header.sig_name[0]
    rec = wfdb.rdrecord(str(base), channels=[header.sig_name.index(lead)])
    signal, units, fs = rec.p_signal[:, 0], rec.units[0], float(rec.fs)
    beats, _, _, vf = read_annotation_marks(base, length=len(signal))
    if noise is not None:
        kind, snr = noise
        draws = np.random.default_rng([seed, *base.name.encode(), *kind.encode()])
        scale = np.sqrt(qrs_power(signal, beats, fs) / 10 ** (snr / 10))
        signal = signal + scale * drawn_noise(kind, len(signal), fs, draws)
    beats = beats[~within(beats, vf)]
    n = len(signal) if seconds is None else round(seconds * fs)
    rng = np.random.default_rng([seed, int(base.name) if base.name.isdigit() else 0])
    starts = [0] if seconds is None else rng.integers(0, len(signal) - n, excerpts).tolist()
    counts = {(gain, way): np.zeros(3) for gain in gains for way in WAYS}
    for start in starts:
        inside = beats[(beats >= start) & (beats < start + n)] - start
        for gain in gains:
            lead_signal = gain * signal[start : start + n]
            for way in WAYS:
                if way == "beatlab":
                    mv = detector_signal(lead_signal, fs, units)[0]
                    detected = detect_beats(mv, fs, lowpass_hz=lowpass_hz)
                else:
                    detected = detect_beats(lead_signal, fs, pad_s=0.0, lowpass_hz=None)
                detected = detected[~within(detected + start, vf)]
                counts[gain, way] += errors(detected, inside, MATCH_WINDOW_S * fs)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gains", type=float, nargs="+", default=[0.25, 1.0, 3.0])
    parser.add_argument("--seconds", type=float, default=None, help="excerpts this long")
    parser.add_argument("--excerpts", type=int, default=20, help="with --seconds, per record")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--db", default="mitdb")
    parser.add_argument("--records", nargs="+", default=None, help="default: DS1's (mitdb)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--noise", choices=list(KINDS), default=None, help="noise.py's kinds")
    parser.add_argument("--snr", type=float, default=12.0, help="with --noise, in dB")
    parser.add_argument("--lowpass", type=float, default=DETECTOR_LOWPASS_HZ, help="Hz")
    args = parser.parse_args()
    spec = get_database(args.db)
    folder = resolve_data_dir(args.data_dir) / spec.name
    records = args.records or list(spec.splits["inter"].train if "inter" in spec.splits else [])
    if not records:
        raise BeatlabError(f"name the records of {spec.name} to use with --records")
    bases = [folder / name for name in records]
    if args.seconds is not None and (args.seconds <= 0 or args.excerpts < 1):
        raise BeatlabError("--seconds must be above 0 and --excerpts at least 1")
    if min(args.gains) <= 0 or args.workers < 1:
        raise BeatlabError("--gains must be above 0 and --workers at least 1")
    for base in bases:
        if not base.with_suffix(".hea").exists():
            raise BeatlabError(f"record {base.name} has no .hea file", base.with_suffix(".hea"))
        header = wfdb.rdheader(str(base))
        if args.seconds is not None and header.sig_len <= args.seconds * header.fs:
            raise BeatlabError(f"record {base.name} is not longer than --seconds", base)
    totals = {(gain, way): np.zeros(3) for gain in args.gains for way in WAYS}
    with ProcessPoolExecutor(args.workers) as pool:
        jobs = {
            pool.submit(
                record_errors,
                b,
                spec.leads,
                args.gains,
                args.seconds,
                args.excerpts,
                args.seed,
                None if args.noise is None else (args.noise, args.snr),
                args.lowpass,
            ): b.name
            for b in bases
        }
        for job in as_completed(jobs):
            for key, counts in job.result().items():
                totals[key] += counts
            print(f"{jobs[job]} done", flush=True)
    what = (
        "whole"
        if args.seconds is None
        else f"{args.excerpts} excerpts of {args.seconds:g} s of each"
    )
    if args.noise is not None:
        what += f", {args.noise} noise at {args.snr:g} dB"
    if args.lowpass is not None:
        what += f", beatlab's GQRS reading the lead low-passed at {args.lowpass:g} Hz"
    print(f"\n{len(records)} records of {spec.name}, {what}; FN missed beats, FP false detections")
    print(f"{'gain':>6}  " + "  ".join(f"{way:>30}" for way in WAYS) + "  errors, beatlab / as is")
    for gain in args.gains:
        cells, errs = [], []
        for way in WAYS:
            fn, fp, found = totals[gain, way]
            se, ppv = found / max(found + fn, 1), found / max(found + fp, 1)
            cells.append(f"FN {fn:5.0f} FP {fp:5.0f} Se {se:.4f} +P {ppv:.4f}")
            errs.append(fn + fp)
        print(
            f"{gain:>6g}  "
            + "  ".join(f"{c:>30}" for c in cells)
            + f"  {errs[1] / max(errs[0], 1):.2f}"
        )


if __name__ == "__main__":
    script(main)
