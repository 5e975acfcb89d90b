"""A scikit-learn style estimator over beatlab's models and trainer, for notebooks and pipelines.

clf = BeatClassifier("cnn1d_resnet", epochs=5).fit(X_train, y_train)
clf.predict(X_test); clf.predict_proba(X_test); clf.score(X_test, y_test)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from beatlab import CLASSES
from beatlab.data.build import Beats
from beatlab.data.splits import carve
from beatlab.models import BeatModel, create_model
from beatlab.training.config import TrainConfig
from beatlab.training.trainer import Tensors, fit, predict_proba, seed_everything


def _beats(x: np.ndarray, y: np.ndarray | None, rr: np.ndarray | None) -> Beats:
    n = len(x)
    return Beats(
        np.asarray(x, np.float32),
        np.zeros(n, np.int64) if y is None else np.asarray(y, np.int64),
        np.zeros((n, 3), np.float32) if rr is None else np.asarray(rr, np.float32),
        np.full(n, ""),
        np.full(n, -1),
    )


class BeatClassifier(ClassifierMixin, BaseEstimator):
    """Train one of the registered models on (n, 187) beats; validation is carved from the
    training data (10 %, stratified) unless `fit` is given X_valid / y_valid."""

    def __init__(
        self,
        model: str = "cnn1d_resnet",
        hparams: dict[str, Any] | None = None,
        epochs: int = 10,
        batch_size: int = 128,
        lr: float = 1e-3,
        class_weight: list[float] | None = None,
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        self.model = model
        self.hparams = hparams
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.class_weight = class_weight
        self.seed = seed
        self.verbose = verbose

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        rr: np.ndarray | None = None,
        X_valid: np.ndarray | None = None,
        y_valid: np.ndarray | None = None,
        rr_valid: np.ndarray | None = None,
    ) -> BeatClassifier:
        y = np.asarray(y, np.int64)
        self.classes_ = np.arange(max(int(y.max()) + 1, 2))
        train = _beats(X, y, rr)
        if X_valid is None or y_valid is None:
            rest, held = carve(np.arange(len(y)), y, 0.1, self.seed)
            train, valid = train.take(rest), train.take(held)
        else:
            valid = _beats(X_valid, y_valid, rr_valid)
        config = TrainConfig(
            model=self.model,
            hparams=dict(self.hparams or {}),
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=self.seed,
        )
        config.check()  # the CLI's checks: a bad epochs or lr is one clear error, not a crash
        names = (
            CLASSES if len(self.classes_) == len(CLASSES) else tuple(str(c) for c in self.classes_)
        )
        seed_everything(self.seed)
        self.model_: BeatModel = create_model(
            self.model, num_classes=len(self.classes_), **config.hparams
        )
        self.history_ = fit(
            self.model_,
            train,
            valid,
            config,
            names,
            class_weights=self.class_weight,
            progress=self.verbose,
        ).history
        return self

    def predict_proba(self, X: np.ndarray, rr: np.ndarray | None = None) -> np.ndarray:
        return predict_proba(self.model_, Tensors.from_beats(_beats(X, None, rr)))

    def predict(self, X: np.ndarray, rr: np.ndarray | None = None) -> np.ndarray:
        return self.classes_[self.predict_proba(X, rr).argmax(axis=1)]
