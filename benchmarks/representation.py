"""Which beat layout generalises to new patients, chosen on MIT-BIH DS1 alone.

    python benchmarks/representation.py [--data-dir DATA_DIR] [--layouts kachuee centred deviation]

For each layout, a gradient-boosted tree classifier (scikit-learn's HistGradientBoosting, balanced
class weights) on the beat's R-R context plus every 6th sample of the beat is cross-validated
over DS1 *patients* (5 folds grouped by patient: every beat is scored by a model that never saw
its patient). DS2 is never read. A fast, fixed learner makes the comparison about the
representation, not about a network's training run; the table it prints (Se / +P of S and V, Se
of N, accuracy, pooled over the folds) is what chose the layout of configs/new_patients.toml.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import GroupKFold

from beatlab.data.build import ensure_beats
from beatlab.data.databases import MITDB
from beatlab.data.dataset import resolve_data_dir
from beatlab.data.layouts import get_layout
from beatlab.errors import script


def cross_validate(x: np.ndarray, y: np.ndarray, patients: np.ndarray) -> dict[str, float]:
    """Se / +P of the four classes DS1 holds, pooled over patient-grouped folds."""
    predicted = np.zeros(len(y), dtype=np.int64)
    for train, test in GroupKFold(n_splits=5).split(x, y, patients):
        model = HistGradientBoostingClassifier(
            class_weight="balanced", max_iter=150, random_state=0
        )
        predicted[test] = model.fit(x[train], y[train]).predict(x[test])
    cm = confusion_matrix(y, predicted, labels=[0, 1, 2, 3])
    se = np.diag(cm) / np.maximum(cm.sum(axis=1), 1)
    ppv = np.diag(cm) / np.maximum(cm.sum(axis=0), 1)
    return {
        "accuracy": round(float(np.trace(cm) / cm.sum()), 3),
        "N Se": round(float(se[0]), 3),
        "S Se": round(float(se[1]), 3),
        "S +P": round(float(ppv[1]), 3),
        "V Se": round(float(se[2]), 3),
        "V +P": round(float(ppv[2]), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--layouts", nargs="*", default=["kachuee", "centred", "deviation"])
    parser.add_argument(
        "--features", choices=["both", "rr", "beat"], default="both", help="rows to compute"
    )
    args = parser.parse_args()
    rows = []
    for name in args.layouts:
        beats, _, _ = ensure_beats(resolve_data_dir(args.data_dir), get_layout(name))
        ds1 = np.isin(beats.record, MITDB.splits["inter"].train)
        patients = np.array([MITDB.patient(r) for r in beats.record[ds1]])
        variants = {
            "rr": ("R-R only", beats.rr[ds1]),
            "beat": ("R-R + beat", np.hstack([beats.rr[ds1], beats.x[ds1][:, ::6]])),
        }
        chosen = list(variants) if args.features == "both" else [args.features]
        for features, x in (variants[key] for key in chosen):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores = cross_validate(x, beats.y[ds1], patients)
            rows.append({"layout": name, "features": features, **scores})
            print(rows[-1], flush=True)
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    script(main)
