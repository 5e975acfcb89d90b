"""Does a model trained on the `kaggle` layout carry over to real Kaggle rows? Macro recall on the
run's own test part beside macro recall on the rows of a Kaggle MIT-BIH CSV (default: the 500
real rows of `mitbih_train.csv` in ../shared/data/formats).

    beatlab train --config configs/demo.toml --set layout=kaggle --set use_rr=false \\
        --name kaggle_intra
    python benchmarks/kaggle_model.py --run runs/kaggle_intra [--sample FILE] [--data-dir DIR]

Kaggle's own train/test split is not beatlab's, so most sample rows are beats the model trained
on. Each row is matched to its built beat (the `kaggle` layout rebuilds them exactly, see
kaggle_fidelity.py) and the rows are scored three ways: all of them, those in the run's test part
(beats it never saw, the fair comparison), and those it trained or validated on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from kaggle_fidelity import SAMPLE, nearest

from beatlab import CLASSES
from beatlab.data.build import ensure_beats
from beatlab.data.dataset import resolve_data_dir
from beatlab.data.layouts import get_layout
from beatlab.errors import BeatlabError, script
from beatlab.training.data import dataset_for, read_files
from beatlab.training.metrics import classification_metrics
from beatlab.training.runs import load_run
from beatlab.training.trainer import Tensors, predict_proba


def keys(record: np.ndarray, sample: np.ndarray) -> np.ndarray:
    return np.char.add(np.char.add(record.astype(str), "@"), sample.astype(str))


def row(name: str, y: np.ndarray, proba: np.ndarray) -> str:
    m = classification_metrics(y, proba, CLASSES)
    se = " ".join(
        f"{c} {m['per_class'][c]['Se']:.3f} ({m['per_class'][c]['support']})"
        for c in CLASSES
        if m["per_class"][c]["support"]
    )
    return f"| {name} | {m['n']} | {m['accuracy']:.4f} | {m['macro_recall']:.4f} | {se} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()

    run = load_run(args.run)
    if run.config.layout != "kaggle" or run.config.split != "intra":
        raise BeatlabError("needs a run trained on layout kaggle, split intra", args.run)
    rows = read_files(str(args.sample))  # the file's beats, no R-R, as `evaluate --test-file`
    data_dir = resolve_data_dir(args.data_dir)
    built, _, _ = ensure_beats(data_dir, get_layout("kaggle"))
    match = nearest(rows.x, built.x)
    exact = np.abs(built.x[match] - rows.x).max(axis=1) < 1e-6
    test = dataset_for(run.config.updated({"limit": None, "data_dir": str(data_dir)})).part("test")
    in_test = np.isin(
        keys(built.record[match], built.sample[match]), keys(test.record, test.sample)
    )

    proba = predict_proba(run.model, Tensors.from_beats(rows))
    print(f"{exact.sum()} of {len(rows)} rows rebuilt exactly; {in_test.sum()} in the test part\n")
    print("| beats | n | accuracy | macro recall | Se per class (beats) |")
    print("|:--|--:|--:|--:|:--|")
    print(
        row(
            f"{args.run.name}: own test part",
            test.y,
            predict_proba(run.model, Tensors.from_beats(test)),
        )
    )
    print(row("Kaggle rows, all", rows.y, proba))
    print(row("Kaggle rows in the test part", rows.y[in_test], proba[in_test]))
    print(row("Kaggle rows trained or validated on", rows.y[~in_test], proba[~in_test]))


if __name__ == "__main__":
    script(main)
