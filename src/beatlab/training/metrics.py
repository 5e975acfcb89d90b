"""Classification metrics in the AAMI EC57 style: what a cardiologist asks of a beat classifier."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    recall_score,
    roc_auc_score,
)


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, classes: tuple[str, ...]
) -> dict[str, Any]:
    """Accuracy, macro recall and F1, per-class Se / +P / specificity / F1, confusion matrix.

    For two classes, also ROC AUC and the sensitivity / specificity of the positive class (1).
    Classes absent from `y_true` get Se = 0 by scikit-learn's convention (zero_division=0) and are
    left out of the macro averages, which run over the classes present.
    """
    labels = np.arange(len(classes))
    y_pred = proba.argmax(axis=1)
    present = np.unique(y_true)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    tn = cm.sum() - cm.sum(axis=0) - cm.sum(axis=1) + np.diag(cm)
    fp = cm.sum(axis=0) - np.diag(cm)
    specificity = np.divide(tn, tn + fp, out=np.zeros(len(labels)), where=(tn + fp) > 0)
    out: dict[str, Any] = {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_recall": float(
            recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
        ),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
        ),
        "per_class": {
            name: {
                "Se": float(recall[i]),
                "+P": float(precision[i]),
                "Sp": float(specificity[i]),
                "F1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "confusion_matrix": cm.tolist(),
        "classes": list(classes),
    }
    if len(classes) == 2:
        out["sensitivity"] = float(recall[1])
        out["specificity"] = float(specificity[1])
        out["roc_auc"] = float(roc_auc_score(y_true, proba[:, 1])) if len(present) == 2 else None
    return out


MEASURED_BEATS = 50
"""Fewest reference beats for a class's sensitivity to count in `measured_recall`."""


def measured_recall(metrics: dict[str, Any], least: int = MEASURED_BEATS) -> float:
    """Macro recall over the classes with at least `least` reference beats (all present ones if
    none has). A few held-out patients hold a rare class's beats by the dozen (MIT-BIH DS1's
    validation patients: 21 F beats): its sensitivity then swings by 0.05 a beat, and as a
    quarter of the macro recall it would pick the kept epoch."""
    values = metrics["per_class"].values()
    counted = [v["Se"] for v in values if v["support"] >= least]
    return float(np.mean(counted)) if counted else float(metrics["macro_recall"])


def per_class_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-class part as table rows (for printing and reports). A class with no reference
    beat has no Se (None, shown "n/a"); one that was never predicted has no +P."""
    rows = []
    predicted = np.asarray(metrics["confusion_matrix"]).sum(axis=0)
    for (name, values), said in zip(metrics["per_class"].items(), predicted, strict=True):
        row = {"class": name, **values}
        if values["support"] == 0:
            row["Se"] = row["F1"] = None
        if said == 0:
            row["+P"] = None
        rows.append(row)
    return rows


PER_RECORD_CLASSES = ("S", "V")
"""The classes whose per-record Se / +P a table of records shows (the ones that vary)."""


def per_record(
    records: np.ndarray, y: np.ndarray, predicted: np.ndarray, classes: tuple[str, ...]
) -> list[dict[str, Any]]:
    """One row per record: beats, and Se / +P of S and V (None: no reference / no predicted
    beat of that class in the record, so the figure does not exist)."""
    rows = []
    for record in np.unique(records):
        mine = records == record
        row: dict[str, Any] = {"record": str(record), "beats": int(mine.sum())}
        for name in PER_RECORD_CLASSES:
            c = classes.index(name)
            truth, said = y[mine] == c, predicted[mine] == c
            hits = int((truth & said).sum())
            row[f"{name} ref"] = int(truth.sum())
            row[f"{name} Se"] = hits / int(truth.sum()) if truth.any() else None
            row[f"{name} +P"] = hits / int(said.sum()) if said.any() else None
        rows.append(row)
    return rows
