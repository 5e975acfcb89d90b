"""One Ray Tune trial: a normal beatlab training run on the shared split, reported per epoch.

The split (train and validation only; trials never see the test part) reaches every trial
through Ray's object store. Balancing is a hyperparameter, so each trial balances its own copy.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ray import tune

from beatlab.data.balance import balance
from beatlab.data.dataset import Dataset
from beatlab.training.config import TrainConfig
from beatlab.training.data import apply_limit
from beatlab.training.run import train_run


def trial_dataset(shared: Dataset, config: TrainConfig) -> Dataset:
    """What `dataset_for(config)` gives, from the unbalanced split: balance, then limit, in the
    same order, so that `beatlab train --config` with the trial's config sees the same beats."""
    train, info = balance(shared.train, config.balance, config.seed, shared.num_classes)
    ds = Dataset(train, shared.valid, shared.test, shared.classes, {**shared.meta, **info})
    return apply_limit(ds, config.limit, config.seed)


def plain(values: dict[str, Any]) -> dict[str, Any]:
    """Searchers may hand out NumPy scalars; configs, JSON and TOML want Python ones."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in values.items()}


def run_trial(params: dict[str, Any], *, shared: Dataset, threads: int) -> None:
    """Train one configuration and report every epoch, so that ASHA can stop it early.

    The last epoch is reported only after the run directory is written, together with it as
    the trial's checkpoint: a scheduler that stops the trial on that report (ASHA does at
    `max_t`) then no longer cuts the run short. If early stopping ends training sooner, that
    epoch's row is reported a second time, with the checkpoint.
    """
    torch.set_num_threads(threads)
    config = TrainConfig.from_dict(plain(params))
    rows: list[dict[str, float]] = []

    def on_epoch(epoch: int, row: dict[str, float]) -> None:
        rows.append(row)
        if epoch < config.epochs:
            tune.report(row)

    with tempfile.TemporaryDirectory(prefix="beatlab-trial-") as tmp:
        run_dir = train_run(
            config,
            Path(tmp),
            name="run",
            tracking_uri="none",  # the driver logs every trial to MLflow
            dataset=trial_dataset(shared, config),
            on_epoch=on_epoch,
            progress=False,
        )
        tune.report(rows[-1], checkpoint=tune.Checkpoint.from_directory(run_dir))
