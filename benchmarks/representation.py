"""Which beat layout generalises to new patients, chosen on MIT-BIH DS1 alone.

    python benchmarks/representation.py [--data-dir DATA_DIR] [--layouts kachuee centred deviation]

For each layout, a gradient-boosted tree classifier (scikit-learn's HistGradientBoosting, balanced
class weights) on the beat's R-R context plus every 6th sample of the beat is cross-validated
over DS1 *patients* (5 folds grouped by patient: every beat is scored by a model that never saw
its patient). DS2 is never read. A fast, fixed learner makes the comparison about the
representation, not about a network's training run; the table it prints (Se / +P of S and V, Se
of N, accuracy, pooled over the folds) is what chose the layout of configs/new_patients.toml.

    python benchmarks/representation.py --layouts deviation_median_rr --features beat \
        --lead "|V1,V2,V3,V4,V5,V6,ECG2"

asks the same of a second lead: one learner per lead, one on the beats of both, and the mean of
the per-lead learners' probabilities.
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

from beatlab.data.build import channel_leads, ensure_channel_beats
from beatlab.data.databases import MITDB
from beatlab.data.dataset import resolve_data_dir
from beatlab.data.layouts import get_layout
from beatlab.errors import script


def held_out_proba(x: np.ndarray, y: np.ndarray, patients: np.ndarray) -> np.ndarray:
    """Each beat's class probabilities from the fold whose model never saw its patient."""
    proba = np.zeros((len(y), int(y.max()) + 1))
    for train, test in GroupKFold(n_splits=5).split(x, y, patients):
        model = HistGradientBoostingClassifier(
            class_weight="balanced", max_iter=150, random_state=0
        )
        model.fit(x[train], y[train])
        proba[np.ix_(test, model.classes_)] = model.predict_proba(x[test])
    return proba


def scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Se / +P of the four classes DS1 holds, pooled over patient-grouped folds."""
    cm = confusion_matrix(y, proba.argmax(axis=1), labels=[0, 1, 2, 3])
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
    parser.add_argument(
        "--lead",
        default=None,
        help="the lead to cut beats from, or the first of comma-separated choices each record "
        "has; several leads joined by '|' (\"|V1,V2,V4,V5\") add a row per lead, one with the "
        "beats of every lead, and one averaging the per-lead learners' probabilities",
    )
    args = parser.parse_args()
    rows = []
    for name in args.layouts:
        beats, _, _ = ensure_channel_beats(
            resolve_data_dir(args.data_dir), get_layout(name), lead=args.lead
        )
        ds1 = np.isin(beats.record, MITDB.splits["inter"].train)
        y, rr = beats.y[ds1], beats.rr[ds1]
        patients = np.array([MITDB.patient(r) for r in beats.record[ds1]])
        leads = beats.x[ds1][:, None] if beats.x.ndim == 2 else beats.x[ds1]
        variants = {"rr": {"R-R only": rr}, "beat": {}}
        for i, lead in enumerate(channel_leads(args.lead)):
            which = f", lead {lead or 'preferred'}" if len(leads[0]) > 1 else ""
            variants["beat"][f"R-R + beat{which}"] = np.hstack([rr, leads[:, i, ::6]])
        if len(leads[0]) > 1:
            every = leads[:, :, ::6].reshape(len(y), -1)
            variants["beat"]["R-R + beats of every lead"] = np.hstack([rr, every])
        chosen = list(variants) if args.features == "both" else [args.features]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for key in chosen:
                probas = {
                    label: held_out_proba(x, y, patients) for label, x in variants[key].items()
                }
                if key == "beat" and len(leads[0]) > 1:
                    per_lead = list(probas.values())[: len(leads[0])]
                    probas["mean of the per-lead learners"] = np.mean(per_lead, axis=0)
                for label, proba in probas.items():
                    rows.append({"layout": name, "features": label, **scores(y, proba)})
                    print(rows[-1], flush=True)
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    script(main)
