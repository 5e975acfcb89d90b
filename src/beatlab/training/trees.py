"""Fitting a tree model (`gbt`): scikit-learn boosts the trees, the validation part picks the round.

Every round is fitted at once (HistGradientBoosting's own early stopping would hold out a random
share of training *beats*); then each round is scored on the validation part, as an epoch of a
network would be, and the best by the run's `monitor` is kept (the last one without validation).
So the history, learning curves, MLflow metrics and Ray Tune reports read as for a network, with
rounds for epochs. Epochs, batches, optimizer, learning-rate schedule and early stopping do not
apply. Augmentation comes as `augment_copies` perturbed copies of the training beats, drawn once.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import replace
from itertools import repeat

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from beatlab.data.build import Beats
from beatlab.errors import BeatlabError
from beatlab.models.trees import BoostedTrees, BoostedTreesConfig
from beatlab.output import make_console
from beatlab.training.augment import augment, augment_rr
from beatlab.training.config import TrainConfig
from beatlab.training.metrics import classification_metrics
from beatlab.training.trainer import (
    EpochCallback,
    FitResult,
    Tensors,
    improved,
    validation_scores,
)


def tree_features(model: BoostedTrees, beats: Beats) -> np.ndarray:
    """What the trees split on, computed by the model's own `features`: training and inference
    cannot drift apart."""
    data = Tensors.from_beats(beats)
    return model.features(data.x, data.rr).numpy()


def with_copies(train: Beats, config: TrainConfig) -> Beats:
    """The training beats followed by `augment_copies` copies perturbed by the config's augment_*
    settings, drawn from `seed`: the trees fit one table, so augmentation is more rows. The
    beats carry their records' median beats where jitter at the R peak needs them (`fit` keeps
    them only there)."""
    if not config.augment_copies:
        return train
    data = Tensors.from_beats(train)
    generator = torch.Generator().manual_seed(config.seed)
    copies = [replace(train, median=None)]
    for _ in range(config.augment_copies):
        x = augment(data.x, config, generator, data.median)
        rr = augment_rr(data.rr, config, generator)
        copies.append(replace(train, x=x.numpy(), rr=rr.numpy(), median=None))
    return Beats.join(copies)


def weighted_nll(y: np.ndarray, proba: np.ndarray, weights: np.ndarray) -> float:
    """The class-weighted negative log-likelihood, as the networks' validation loss."""
    w = weights[y]
    return float(np.sum(w * -np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, None))) / w.sum())


def staged(
    estimator: HistGradientBoostingClassifier, x: np.ndarray, num_classes: int
) -> Iterator[np.ndarray]:
    """Each round's probabilities over all `num_classes` (absent classes: 0)."""
    for proba in estimator.staged_predict_proba(x):
        full = np.zeros((len(x), num_classes))
        full[:, estimator.classes_] = proba
        yield full


def fit_trees(
    model: BoostedTrees,
    train: Beats,
    valid: Beats,
    config: TrainConfig,
    classes: tuple[str, ...],
    *,
    class_weights: list[float] | None = None,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
) -> FitResult:
    """Fit `model` in place on `train`, keep the round `valid` scores best on; the history has a
    row per round."""
    if len(np.unique(train.y)) < 2 or (config.validate and len(valid) == 0):
        raise BeatlabError(
            f"trees need training beats of two classes or more and a validation beat, got "
            f"{len(train)} beats of {len(np.unique(train.y))} class(es) and {len(valid)}"
        )
    c = model.config
    assert isinstance(c, BoostedTreesConfig)
    estimator = HistGradientBoostingClassifier(
        max_iter=c.rounds,
        learning_rate=c.learning_rate,
        max_leaf_nodes=c.max_leaf_nodes,
        min_samples_leaf=c.min_samples_leaf,
        l2_regularization=c.l2_regularization,
        early_stopping=False,
        random_state=config.seed % 2**32,
    )
    weights = np.asarray(class_weights or [1.0] * len(classes), dtype=np.float64)
    train = with_copies(train, config)
    x_train = tree_features(model, train)
    console = make_console()
    start = time.perf_counter()
    with (
        threadpool_limits(limits=config.threads, user_api="openmp"),
        console.status(f"fitting {c.rounds} rounds of trees on {len(train)} beats", spinner="dots")
        if progress
        else contextlib.nullcontext(),
    ):
        estimator.fit(x_train, train.y, sample_weight=weights[train.y])
    fitted = time.perf_counter() - start
    result = FitResult()
    x_valid = tree_features(model, valid) if config.validate else x_train[:0]
    valid_rounds = staged(estimator, x_valid, len(classes)) if config.validate else repeat(None)
    rounds = zip(staged(estimator, x_train, len(classes)), valid_rounds, strict=False)
    for r, (train_proba, valid_proba) in enumerate(rounds, start=1):
        val_start = time.perf_counter()
        val, loss = {}, math.nan
        if valid_proba is not None:
            val = classification_metrics(valid.y, valid_proba, classes)
            loss = weighted_nll(valid.y, valid_proba, weights)
        scores = validation_scores(loss, val)
        row = {
            "epoch": r,
            "train_loss": weighted_nll(train.y, train_proba, weights),
            **scores,
            "lr": c.learning_rate,
            "seconds": fitted / c.rounds,
            "val_seconds": time.perf_counter() - val_start,
        }
        result.history.append(row)
        score = row[config.monitor]
        if not config.validate or r == 1 or improved(score, result.best_score, config.direction):
            result.best_score, result.best_epoch, result.best_metrics = score, r, val
        if progress and (r % 10 == 0 or r == c.rounds):
            scored = (
                f" val_loss {row['val_loss']:.4f} val_acc {row['val_accuracy']:.4f} "
                f"val_recall {row['val_macro_recall']:.4f}"
                if val
                else ""
            )
            console.print(f"round {r}/{c.rounds}: loss {row['train_loss']:.4f}{scored}")
        if on_epoch is not None:
            on_epoch(r, row)
    model.load_estimator(estimator, result.best_epoch)
    result.best_state = {k: v.clone() for k, v in model.state_dict().items()}
    if progress:
        console.print(f"kept round {result.best_epoch} of {c.rounds} ({config.monitor})")
    return result
