"""How the first and last beat of a short recording fare: each lacks one R-R interval, which a
layout's `rr_edge` fills by the neighbouring interval (Kachuee's reading) or by the recording's
median R-R. Measured on 10-second excerpts of held-out DS1 patients (the length of a PTB-XL
recording), each classified by patient_cv.py's fold runs that never saw the patient, with both
readings side by side in one process.

    python benchmarks/record_edges.py --mean-of TAG TAG ... [--decision-weights 1,3,1,1,1]
        [--seconds 10] [--excerpts 10] [--seed 0] [--out reports/cv] [--data-dir DATA_DIR]

Prints, for the first, middle and last beats of the excerpts, the accuracy and the share of N
beats called something else under each reading, and the ratio of the two accuracies.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from generalization import record_signals  # beside this script
from patient_cv import fold_ensembles

from beatlab import CLASSES
from beatlab.data.dataset import resolve_data_dir
from beatlab.data.layouts import segment_leads
from beatlab.deploy.predict import classify
from beatlab.errors import script
from beatlab.training.runs import Run

EDGES = ("neighbour", "median")
POSITIONS = ("first", "middle", "last")
N = CLASSES.index("N")


def excerpt_tallies(
    run: Run,
    data_dir: Path,
    records: tuple[str, ...],
    seconds: float,
    excerpts: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """One row per annotated beat of `excerpts` random excerpts of each record: its position in
    the excerpt, its label and its class under each `rr_edge` reading."""
    params = run.layout
    rows = []
    for name in records:
        rec, signals = record_signals(data_dir, name, run.config.lead)
        n = int(seconds * rec.fs)
        for start in rng.integers(0, len(rec.signal) - n, excerpts):
            inside = (rec.peaks >= start) & (rec.peaks < start + n)
            peaks = rec.peaks[inside] - start
            if len(peaks) < 3:
                continue
            position = np.full(len(peaks), "middle", dtype=object)
            position[0], position[-1] = "first", "last"
            row = {"position": position, "label": rec.labels[inside]}
            cut = [signal[start : start + n] for signal in signals]
            for edge in EDGES:
                x, rr = segment_leads(cut, rec.fs, peaks, replace(params, rr_edge=edge))
                row[edge] = classify(run.model, x, rr).argmax(axis=1)
            rows.append(pd.DataFrame(row))
    return pd.concat(rows, ignore_index=True)


def summary(beats: pd.DataFrame) -> pd.DataFrame:
    """Accuracy and N beats called otherwise, per position and reading."""
    out = []
    for position in POSITIONS:
        part = beats[beats["position"] == position]
        normal = part["label"] == N
        acc = {edge: float((part[edge] == part["label"]).mean()) for edge in EDGES}
        row: dict[str, object] = {"position": position, "beats": len(part)}
        for edge in EDGES:
            row[f"acc, {edge}"] = round(acc[edge], 3)
            row[f"N called other, {edge}"] = round(float((part[edge][normal] != N).mean()), 3)
        row["acc ratio"] = round(acc["median"] / acc["neighbour"], 3) if acc["neighbour"] else None
        out.append(row)
    return pd.DataFrame(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mean-of", nargs="+", required=True, help="patient_cv.py tags")
    parser.add_argument("--decision-weights", default="", help="one per class, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--excerpts", type=int, default=10, help="excerpts per record")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports/cv"))
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    weights = [float(w) for w in args.decision_weights.split(",") if w.strip()]
    data_dir, rng = resolve_data_dir(args.data_dir), np.random.default_rng(args.seed)
    tallies = []
    for fold, records, run in fold_ensembles(args.out, args.mean_of, weights):
        tallies.append(excerpt_tallies(run, data_dir, records, args.seconds, args.excerpts, rng))
        print(f"{fold}: {len(tallies[-1]):,} beats", flush=True)
    print(
        f"{args.excerpts} excerpts of {args.seconds:g} s of each held-out DS1 record, "
        f"the ensemble of {', '.join(args.mean_of)}"
    )
    print(summary(pd.concat(tallies, ignore_index=True)).to_markdown(index=False))


if __name__ == "__main__":
    script(main)
