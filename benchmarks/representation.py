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

from beatlab.data.build import Beats, channel_leads, ensure_channel_beats
from beatlab.data.databases import MITDB, get_database
from beatlab.data.dataset import resolve_data_dir
from beatlab.data.layouts import get_layout
from beatlab.errors import script


def held_out_proba(
    x: np.ndarray,
    y: np.ndarray,
    patients: np.ndarray,
    extra: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Each beat's class probabilities from the fold whose model never saw its patient; the
    `extra` beats (features, labels: another database's patients) train in every fold."""
    proba = np.zeros((len(y), int(y.max()) + 1))
    for train, test in GroupKFold(n_splits=5).split(x, y, patients):
        model = HistGradientBoostingClassifier(
            class_weight="balanced", max_iter=150, random_state=0
        )
        xs, ys = x[train], y[train]
        if extra is not None:
            xs, ys = np.vstack([xs, extra[0]]), np.concatenate([ys, extra[1]])
        model.fit(xs, ys)
        proba[np.ix_(test, model.classes_)] = model.predict_proba(x[test])
    return proba


def features(beats: Beats, keep: np.ndarray | None, which: str | int) -> np.ndarray:
    """The learner's rows: the first lead's R-R only, or R-R plus every 6th sample of lead
    `which` (an index) or of every lead, of the beats `keep` flags (all where None)."""
    beats = beats if keep is None else beats.take(np.flatnonzero(keep))
    leads = beats.x[:, None] if beats.x.ndim == 2 else beats.x
    rr = beats.rr if beats.rr.ndim == 2 else beats.rr[:, 0]
    if which == "rr":
        return rr
    if which == "every":
        return np.hstack([rr, leads[:, :, ::6].reshape(len(leads), -1)])
    return np.hstack([rr, leads[:, int(which), ::6]])


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
    parser.add_argument(
        "--also-train",
        metavar="DB",
        default=None,
        help="another database whose every patient joins each fold's training part (never "
        "scored): what more training patients are worth to DS1's held-out ones",
    )
    args = parser.parse_args()
    root, rows = resolve_data_dir(args.data_dir), []
    for name in args.layouts:
        beats, _, _ = ensure_channel_beats(root, get_layout(name), lead=args.lead)
        more = (
            ensure_channel_beats(
                root, get_layout(name), db=get_database(args.also_train), lead=args.lead
            )[0]
            if args.also_train
            else None
        )
        ds1 = np.isin(beats.record, MITDB.splits["inter"].train)
        y = beats.y[ds1]
        patients = np.array([MITDB.patient(r) for r in beats.record[ds1]])
        n_leads = 1 if beats.x.ndim == 2 else beats.x.shape[1]
        kinds: dict[str, dict[str, str | int]] = {"rr": {"R-R only": "rr"}, "beat": {}}
        for i, lead in enumerate(channel_leads(args.lead)):
            which = f", lead {lead or 'preferred'}" if n_leads > 1 else ""
            kinds["beat"][f"R-R + beat{which}"] = i
        if n_leads > 1:
            kinds["beat"]["R-R + beats of every lead"] = "every"
        chosen = list(kinds) if args.features == "both" else [args.features]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for key in chosen:
                probas = {
                    label: held_out_proba(
                        features(beats, ds1, which),
                        y,
                        patients,
                        None if more is None else (features(more, None, which), more.y),
                    )
                    for label, which in kinds[key].items()
                }
                if key == "beat" and n_leads > 1:
                    per_lead = list(probas.values())[:n_leads]
                    probas["mean of the per-lead learners"] = np.mean(per_lead, axis=0)
                for label, proba in probas.items():
                    rows.append({"layout": name, "features": label, **scores(y, proba)})
                    print(rows[-1], flush=True)
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    script(main)
