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
from beatlab.models.trees import BoostedTrees
from beatlab.training.config import TrainConfig
from beatlab.training.data import apply_limit
from beatlab.training.run import train_run
from beatlab.training.trainer import improved


def trial_dataset(shared: Dataset, config: TrainConfig) -> Dataset:
    """What `dataset_for(config)` gives, from the unbalanced split: balance, then limit, in the
    same order, so that `beatlab train --config` with the trial's config sees the same beats."""
    train, info = balance(shared.train, config.built_balance, config.seed, shared.num_classes)
    ds = Dataset(train, shared.valid, shared.test, shared.classes, {**shared.meta, **info})
    return apply_limit(ds, config.limit, config.seed)


def plain(values: dict[str, Any]) -> dict[str, Any]:
    """Searchers may hand out NumPy scalars; configs, JSON and TOML want Python ones."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in values.items()}


def run_trial(params: dict[str, Any], *, shared: Dataset, threads: int) -> None:
    """Train one configuration and report every epoch, so that ASHA can stop it early.

    Each report is the row of the epoch whose checkpoint the run keeps so far (the best on the
    experiment's metric, which is also the run's `monitor`), with `epochs_run` the epochs
    trained: so the ranking, the kept checkpoint and the tested model are the same epoch.
    The last epoch is reported only after the run directory is written, together with it as
    the trial's checkpoint: a scheduler that stops the trial on that report (ASHA does at
    `max_t`) then no longer cuts the run short. If early stopping ends training sooner, that
    report comes one epoch later. A tree model, whose rounds are scored only after all of them
    are fitted, reports once, at the end (with `epochs_run` its rounds).
    """
    torch.set_num_threads(threads)
    config = TrainConfig.from_dict(plain(params))
    kept: list[dict[str, float]] = []  # the kept epoch's row, once there is one
    trees = config.model == BoostedTrees.name  # its rounds are all fitted before the first row
    trained = [0]

    def on_epoch(epoch: int, row: dict[str, float]) -> None:
        if not kept or improved(row[config.monitor], kept[0][config.monitor], config.direction):
            kept[:] = [row]  # the same choice as the training loop's
        trained[0] = epoch
        if epoch < config.epochs and not trees:
            tune.report({**kept[0], "epochs_run": epoch})

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
        tune.report(
            {**kept[0], "epochs_run": trained[0]},
            checkpoint=tune.Checkpoint.from_directory(run_dir),
        )
