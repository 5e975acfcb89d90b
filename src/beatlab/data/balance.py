"""Class balancing of the training part only: validation and test keep the real class mix."""

from __future__ import annotations

from typing import Any

import numpy as np
from imblearn.over_sampling import SMOTE, RandomOverSampler
from sklearn.utils.class_weight import compute_class_weight

from beatlab.data.build import Beats
from beatlab.errors import BeatlabError

BALANCING = ("none", "weights", "oversample", "smote")


def class_weights(y: np.ndarray, num_classes: int) -> list[float]:
    """'balanced' weights (n / (k * count)) for the classes present; 1.0 for absent ones."""
    present = np.unique(y)
    weights = np.ones(num_classes)
    weights[present] = compute_class_weight("balanced", classes=present, y=y)
    return [float(w) for w in weights]


def balance(train: Beats, method: str, seed: int, num_classes: int) -> tuple[Beats, dict[str, Any]]:
    """Return the (possibly resampled) training beats and what was done, for the metadata.

    SMOTE interpolates in the joint space of samples and R-R features so both stay consistent;
    synthetic beats get record "" and sample -1. Beats of several leads, (n, leads, length), are
    resampled as one row each.
    """
    info: dict[str, Any] = {"balance": method, "balance_seed": seed}
    if method == "none":
        return train, info
    if method == "weights":
        info["class_weights"] = class_weights(train.y, num_classes)
        return train, info
    if method == "oversample":
        sampler = RandomOverSampler(random_state=seed)
        sampler.fit_resample(train.y[:, None], train.y)  # only the drawn indices are used
        return train.take(np.sort(sampler.sample_indices_)), info
    if method == "smote":
        counts = np.bincount(train.y)
        k = int(min(5, counts[counts > 0].min() - 1))
        if k < 1:
            raise BeatlabError("SMOTE needs at least two training beats of every class")
        flat = train.x.reshape(len(train), -1)
        features = np.concatenate([flat, train.rr], axis=1)
        smote = SMOTE(random_state=seed, k_neighbors=k)
        fx, fy = smote.fit_resample(features, train.y)
        n_new = len(fy) - len(train)
        width = flat.shape[1]
        return Beats(
            x=np.ascontiguousarray(fx[:, :width].reshape(-1, *train.x.shape[1:]), np.float32),
            y=np.asarray(fy, dtype=np.int64),
            rr=np.ascontiguousarray(fx[:, width:], dtype=np.float32),
            record=np.concatenate([train.record, np.full(n_new, "")]),
            sample=np.concatenate([train.sample, np.full(n_new, -1, dtype=np.int64)]),
        ), info
    raise BeatlabError(f"unknown balancing '{method}' (choose from {', '.join(BALANCING)})")
