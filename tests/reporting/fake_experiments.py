"""Tiny experiment directories as `beatlab tune` writes them (see beatlab.reporting.sources).

Not a conftest.py: a second conftest module would shadow tests/conftest.py for `from conftest
import ...`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from beatlab.training.metrics import classification_metrics

SPACE = """\
# the study's 1D CNN + GRU search (issue 4), in the forms the report reads
gru_hidden = { choice = [32, 64, 128, 256, 512] }
batch = [16, 32, 48, 60]
num_layers = [2, 3, 4]
dropout = [0.2, 0.3, 0.4]
optimizer = ["adam", "adamw"]
training_set = ["smote", "oversample"]
factor = { uniform = [0.1, 0.4] }

[hparams]
num_blocks = { type = "randint", low = 1, high = 5 }
hidden = 64
"""
TUNED = (
    "gru_hidden",
    "batch",
    "num_layers",
    "dropout",
    "optimizer",
    "training set",
    "factor",
    "num_blocks",
)
TRIALS = 8

BEST_CONFIG = """\
model = "cnn1d_gru"
balance = "smote"
batch_size = 32
factor = 0.2

[hparams]
hidden = 16
gru_hidden = 32
num_layers = 2
num_blocks = 2
dropout = 0.3
"""


def trials(ray_names: bool) -> pd.DataFrame:
    """Eight trials with the study's columns, or with Ray Tune's names for the same things."""
    rng = np.random.default_rng(1)
    table = pd.DataFrame(
        {
            "iterations": rng.integers(1, 4, TRIALS),
            "accuracy": rng.uniform(0.85, 0.99, TRIALS).round(4),
            "recall macro": rng.uniform(0.6, 0.95, TRIALS).round(4),
            "batch": rng.choice([16, 32, 48, 60], TRIALS),
            "hidden": 64,
            "dropout": rng.choice([0.2, 0.3, 0.4], TRIALS),
            "num_layers": rng.choice([2, 3, 4], TRIALS),
            "num_blocks": rng.integers(1, 6, TRIALS),
            "factor": rng.uniform(0.1, 0.4, TRIALS).round(3),
            "gru_hidden": rng.choice([32, 64, 128, 256, 512], TRIALS),
            "training set": rng.choice(["smote", "oversample"], TRIALS),
            "optimizer": rng.choice(["adam", "adamw"], TRIALS),
            "trial": [f"t{i}" for i in range(TRIALS)],
        }
    )
    if not ray_names:
        return table
    kept = {
        "iterations": "training_iteration",
        "accuracy": "val_accuracy",
        "recall macro": "val_macro_recall",
        "trial": "trial_id",
    }
    params = {"batch": "batch_size", "training set": "training_set"}
    return table.rename(columns=lambda c: kept.get(c) or f"config/{params.get(c, c)}")


def make_experiment(path: Path, *, best_run: Path | None, ray_names: bool = False) -> Path:
    """An experiment directory as `beatlab tune` writes it (see beatlab.reporting.sources)."""
    path.mkdir(parents=True)
    trials(ray_names).to_csv(path / "results.csv", index=False)
    (path / ("space.toml" if ray_names else "search_space.toml")).write_text(SPACE)
    summary: dict[str, object] = {"metric": "val_macro_recall", "mode": "max"}
    if best_run is not None:
        shutil.copytree(best_run, path / "best_run")
        shutil.copy(best_run / "config.json", path / "best_config.json")
        test = json.loads((best_run / "metrics.json").read_text())["test"]
        summary["test"] = {k: test[k] for k in ("n", "accuracy", "macro_recall", "macro_f1")}
    else:
        (path / "best_config.toml").write_text(BEST_CONFIG)
        rng = np.random.default_rng(2)
        y = rng.integers(0, 5, 300)
        proba = np.eye(5)[np.where(rng.random(300) < 0.8, y, rng.integers(0, 5, 300))]
        summary["test"] = classification_metrics(y, proba, ("N", "S", "V", "F", "Q"))
    (path / "summary.json").write_text(json.dumps(summary))
    return path
