"""What an ensemble over two leads loses on a record without its first lead. Held-out DS1
patients, each classified by patient_cv.py's fold runs that never saw them, three ways side by
side: every member on its own lead; only the members of the second lead, as `beatlab predict`
classifies a record without any of the first channel's leads (the European ST-T Database's MLIII
and V4, say); and every member reading the second lead.

    python benchmarks/missing_lead.py --mean-of TAG TAG ... [--decision-weights 1,4,1,1,1]
        [--out reports/cv] [--data-dir DATA_DIR]

Prints accuracy, N Se, and S and V Se / +P of each reading over every annotated held-out beat
(no AF gate).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from generalization import record_signals  # beside this script
from patient_cv import ec57, fold_ensembles

from beatlab.data.dataset import resolve_data_dir
from beatlab.data.layouts import segment_leads
from beatlab.deploy.predict import classify
from beatlab.errors import BeatlabError, script
from beatlab.models.ensemble import over_leads
from beatlab.training.runs import Run

READINGS = ("each its own lead", "the second lead's members alone", "all on the second lead")


def readings(run: Run, data_dir: Path, records: tuple[str, ...]) -> dict[str, tuple]:
    """Each reading's labels and probabilities over the annotated beats of `records`."""
    if not over_leads(run.model) or run.model.beat_shape[0] != 2:
        raise BeatlabError("--mean-of takes tags whose runs read two leads between them")
    second = run.model.reading([1])
    out: dict[str, tuple[list, list]] = {name: ([], []) for name in READINGS}
    for name in records:
        rec, (first, other) = record_signals(data_dir, name, run.config.lead)
        cut = {
            READINGS[0]: (run.model, [first, other]),
            READINGS[1]: (second, [other]),
            READINGS[2]: (run.model, [other, other]),
        }
        for reading, (model, signals) in cut.items():
            x, rr = segment_leads(signals, rec.fs, rec.peaks, run.layout)
            out[reading][0].append(rec.labels)
            out[reading][1].append(classify(model, x, rr))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mean-of", nargs="+", required=True, help="patient_cv.py tags")
    parser.add_argument("--decision-weights", default="", help="one per class, comma-separated")
    parser.add_argument("--out", type=Path, default=Path("reports/cv"))
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    weights = [float(w) for w in args.decision_weights.split(",") if w.strip()]
    data_dir = resolve_data_dir(args.data_dir)
    pooled: dict[str, tuple[list, list]] = {name: ([], []) for name in READINGS}
    for fold, records, run in fold_ensembles(args.out, args.mean_of, weights):
        for reading, (y, proba) in readings(run, data_dir, records).items():
            pooled[reading][0].extend(y)
            pooled[reading][1].extend(proba)
        print(f"{fold}: {len(records)} records", flush=True)
    rows = [
        {"reading": reading, **ec57(np.concatenate(y), np.concatenate(proba))}
        for reading, (y, proba) in pooled.items()
    ]
    columns = ["reading", "beats", "accuracy", "N Se", "S Se", "S +P", "V Se", "V +P"]
    print(f"held-out DS1 patients, the ensemble of {', '.join(args.mean_of)}, no AF gate")
    print(pd.DataFrame(rows)[columns].to_markdown(index=False))


if __name__ == "__main__":
    script(main)
