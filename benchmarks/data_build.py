"""Time beatlab's full beat build against a plain per-beat Python loop, in the same process.

    python benchmarks/data_build.py [--mitdb ../shared/data/mitdb]

The baseline reads each record with wfdb, then for every annotated beat finds its 10 s window,
normalises it, takes the median R-R of that window and slices the beat in Python: the way a
notebook would do it. Both must yield the same beats; the script prints both times and the ratio.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import wfdb
from scipy.signal import resample_poly

from beatlab.data.build import build_beats, record_names
from beatlab.data.databases import AAMI, MITDB
from beatlab.data.layouts import KACHUEE, BuildParams
from beatlab.errors import script


def baseline(mitdb: Path, params: BuildParams = KACHUEE) -> np.ndarray:
    """The same algorithm as a notebook writes it: per-window then per-beat Python loops."""
    beats = []
    win = int(params.window_s * params.fs)
    for name in record_names(mitdb):
        record = wfdb.rdrecord(str(mitdb / name), physical=False)
        lead = next((record.sig_name.index(n) for n in MITDB.leads if n in record.sig_name), 0)
        signal = resample_poly(record.d_signal[:, lead].astype(np.float32), 25, 72)
        norm = np.empty(len(signal), dtype=np.float32)
        for start in range(0, len(signal), win):
            window = signal[start : start + win]
            norm[start : start + win] = (window - window.min()) / (
                (window.max() - window.min()) or 1.0
            )
        ann = wfdb.rdann(str(mitdb / name), "atr")
        peaks = [
            min(int(round(s * params.fs / record.fs)), len(signal) - 1)
            for s, sym in zip(ann.sample, ann.symbol, strict=True)
            if sym in AAMI
        ]
        by_window: dict[int, list[int]] = {}
        for r in peaks:
            by_window.setdefault(r // win, []).append(r)
        fallback = float(np.median(np.diff(peaks)))
        for r in peaks:
            rr = np.diff(by_window[r // win])
            period = float(np.median(rr)) if len(rr) else fallback
            length = min(int(np.rint(params.period_factor * period)), params.length)
            beat = norm[r : r + length]
            beats.append(np.pad(beat, (0, params.length - len(beat))))
    return np.stack(beats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mitdb", type=Path, default=Path("../shared/data/mitdb"))
    parser.add_argument("--repeat", type=int, default=3, help="beatlab runs; best time is kept")
    args = parser.parse_args()

    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        ours, _, _ = build_beats(args.mitdb)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    theirs = baseline(args.mitdb)
    base = time.perf_counter() - start
    same = np.allclose(ours.x, theirs, atol=1e-5)
    print(f"beats:    {len(ours):,} (baseline {len(theirs):,}, identical: {same})")
    print(f"beatlab:  {min(times):.2f} s (best of {args.repeat})")
    print(f"baseline: {base:.2f} s (wfdb + per-beat Python loop)")
    print(f"speed-up: {base / min(times):.1f}x")


if __name__ == "__main__":
    script(main)
