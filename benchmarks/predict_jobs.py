"""`beatlab predict --records` in one process and in `--jobs` processes, side by side.

    python benchmarks/predict_jobs.py --run runs/new_patients --records DIR [--jobs 2] [--detector]

Both classify every recording of DIR as `predict --records` does (`predict_records`), the run
loaded once beforehand; the `--jobs` time includes starting its worker processes, each of which
loads the run again. The script prints each wall time, their ratio, and how far the two results
are apart (beats, classes, probabilities): they must be the same recordings' same beats.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from beatlab.deploy.predict import Predictions, folder_records, predict_records
from beatlab.errors import script
from beatlab.training.runs import load_run


def timed(
    run_dir: Path, records: Path, jobs: int, detector: bool
) -> tuple[float, list[Predictions]]:
    """Wall seconds to classify every recording of `records` with `jobs` processes."""
    run = load_run(run_dir)
    paths = folder_records(records)
    start = time.perf_counter()
    done, failed = predict_records(run, paths, detector=detector, jobs=jobs, progress=False)
    seconds = time.perf_counter() - start
    if failed:
        raise SystemExit(f"could not read {len(failed)} recordings: {next(iter(failed.values()))}")
    return seconds, list(done.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--records", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--detector", action="store_true", help="find the beats with GQRS")
    args = parser.parse_args()
    one, base = timed(args.run, args.records, 1, args.detector)
    many, side = timed(args.run, args.records, args.jobs, args.detector)
    beats = sum(len(r) for r in base)
    same = all(np.array_equal(a.sample, b.sample) for a, b in zip(base, side, strict=True))
    agree = np.mean(
        np.concatenate([a.predicted == b.predicted for a, b in zip(base, side, strict=True)])
    )
    gap = max(float(np.abs(a.proba - b.proba).max()) for a, b in zip(base, side, strict=True))
    source = "the QRS detector" if args.detector else "the annotations"
    print(f"{len(base)} recordings, {beats:,} beats from {source}")
    print(f"--jobs 1: {one:7.1f} s")
    print(f"--jobs {args.jobs}: {many:7.1f} s   ratio {one / many:.2f}x")
    print(f"same beats: {same}; same class: {agree:.6f}; largest probability difference {gap:.2e}")


if __name__ == "__main__":
    script(main)
