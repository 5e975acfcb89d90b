"""The memory `beatlab predict` needs for a Holter-length recording, against reading it.

    python benchmarks/predict_memory.py [--run runs/new_patients] [--record data/mitdb/100]
        [--hours 6 24]

One long recording per `--hours`: the `--record` (every lead, as stored) repeated to that length
and written without annotations, so the QRS detector finds the beats, as for a new recording.
Two processes of their own, side by side, each first importing what `predict` imports (torch
among it): one reads the recording with `wfdb.rdrecord`, every lead in float64, which is what a
script does first; the other classifies it with `predict_record(..., detector=True)`, which is
what `beatlab predict --record` runs. Prints each one's peak resident memory, what it grew by
over what the imports hold, and the ratio of the two growths (the reading is the baseline), with
the seconds `predict` took. Linux (`ru_maxrss` and /proc). About 2 minutes for a 24-hour
recording on 2 cores.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import wfdb

from beatlab.errors import BeatlabError, script


def holter(record: Path, hours: float, folder: Path) -> Path:
    """`record`'s digital samples repeated to `hours`, as a WFDB record in `folder`."""
    rec = wfdb.rdrecord(str(record), physical=False)
    n = round(hours * 3600 * rec.fs)
    reps = -(-n // len(rec.d_signal))
    wfdb.wrsamp(
        f"holter{hours:g}h",
        fs=rec.fs,
        units=rec.units,
        sig_name=rec.sig_name,
        d_signal=np.tile(rec.d_signal, (reps, 1))[:n],
        fmt=rec.fmt,
        adc_gain=rec.adc_gain,
        baseline=rec.baseline,
        write_dir=str(folder),
    )
    return folder / f"holter{hours:g}h"


def peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def resident_kb() -> int:
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


def measure(task: str, run_dir: Path, path: Path) -> tuple[int, int, float, int]:
    """In a fresh process: the memory held after the imports, the peak after `task`, its
    seconds, and the beats it classified (0 for a read)."""
    from beatlab.deploy.predict import predict_record
    from beatlab.training.runs import load_run

    run = load_run(run_dir) if task == "predict" else None
    imported = resident_kb()
    start = time.perf_counter()
    beats = 0
    if run is None:
        wfdb.rdrecord(str(path))
    else:
        beats = len(predict_record(run, path, detector=True))
    return imported, peak_kb(), time.perf_counter() - start, beats


def in_own_process(task: str, run_dir: Path, path: Path) -> tuple[int, int, float, int]:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(measure, task, run_dir, path).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, default=Path("runs/new_patients"))
    parser.add_argument("--record", type=Path, default=Path("data/mitdb/100"))
    parser.add_argument("--hours", type=float, nargs="+", default=[6.0, 24.0])
    args = parser.parse_args()
    if not (args.run / "run.json").exists():
        raise BeatlabError("no run.json: train a run first (make demo)", args.run)
    if not args.record.with_suffix(".hea").exists():
        raise BeatlabError("no such record", args.record.with_suffix(".hea"))
    if min(args.hours) <= 0:
        raise BeatlabError("--hours must be above 0")
    print(
        f"{'hours':>6} {'samples':>12} {'read: peak MB':>14} {'grew':>6} "
        f"{'predict: peak MB':>17} {'grew':>6} {'ratio':>6} {'beats':>8} {'predict s':>10}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for hours in args.hours:
            path = holter(args.record, hours, Path(tmp))
            header = wfdb.rdheader(str(path))
            samples = int(header.sig_len) * int(header.n_sig)
            read_base, read_peak, _, _ = in_own_process("read", args.run, path)
            base, peak, seconds, beats = in_own_process("predict", args.run, path)
            read_grew, grew = (read_peak - read_base) / 1024, (peak - base) / 1024
            print(
                f"{hours:>6g} {samples:>12,} {read_peak / 1024:>14,.0f} {read_grew:>6,.0f} "
                f"{peak / 1024:>17,.0f} {grew:>6,.0f} {grew / read_grew:>6.2f} {beats:>8,} "
                f"{seconds:>10.1f}",
                flush=True,
            )


if __name__ == "__main__":
    script(main)
