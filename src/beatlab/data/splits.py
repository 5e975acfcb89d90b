"""Train / validation / test splits: beat-wise (intra), patient-wise (inter) and grouped folds.

The test part is fixed by the split and seed alone; validation is carved from what is left, so
tuning and early stopping never see a test beat.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from beatlab.data.build import Beats
from beatlab.errors import BeatlabError

DS1 = (
    "101",
    "106",
    "108",
    "109",
    "112",
    "114",
    "115",
    "116",
    "118",
    "119",
    "122",
    "124",
    "201",
    "203",
    "205",
    "207",
    "208",
    "209",
    "215",
    "220",
    "223",
    "230",
)
"""de Chazal et al. 2004 training records (train + validation in the `inter` split)."""
DS2 = (
    "100",
    "103",
    "105",
    "111",
    "113",
    "117",
    "121",
    "123",
    "200",
    "202",
    "210",
    "212",
    "213",
    "214",
    "219",
    "221",
    "222",
    "228",
    "231",
    "232",
    "233",
    "234",
)
"""de Chazal et al. 2004 test records."""
PACED = ("102", "104", "107", "217")
"""Paced records, excluded from the patient-wise split as in de Chazal et al."""

SPLITS = ("intra", "inter")
PARTS = ("train", "valid", "test")


def carve(
    index: np.ndarray, y: np.ndarray, frac: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split of `index` into (rest, carved)."""
    labels = y[index]
    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min(initial=0) >= 2 else None
    rest, carved = train_test_split(index, test_size=frac, random_state=seed, stratify=stratify)
    return np.sort(rest), np.sort(carved)


def split_indices(
    beats: Beats,
    split: str = "intra",
    *,
    seed: int = 0,
    test_frac: float = 0.2,
    valid_frac: float = 0.1,
    folds: int | None = None,
    fold: int = 0,
) -> dict[str, np.ndarray]:
    """Indices of the train, valid and test parts.

    intra: stratified random test part (20%), Kaggle-style. inter: DS1 -> train + valid, DS2 ->
    test, paced records dropped. With `folds`, test is fold `fold` of a patient-grouped,
    class-stratified K-fold over all records. Validation is always a stratified `valid_frac` of
    the non-test part (so intra defaults to 72/8/20).
    """
    every = np.arange(len(beats))
    if folds is not None:
        if folds < 2 or not 0 <= fold < folds:
            raise BeatlabError(
                f"need folds >= 2 and 0 <= fold < folds, got folds={folds}, fold={fold}"
            )
        n_records = len(np.unique(beats.record))
        if folds > n_records:
            raise BeatlabError(f"{folds} folds but only {n_records} records")
        kfold = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        rest, test = list(kfold.split(every, beats.y, groups=beats.record))[fold]
    elif split == "intra":
        rest, test = carve(every, beats.y, test_frac, seed)
    elif split == "inter":
        rest = every[np.isin(beats.record, DS1)]
        test = every[np.isin(beats.record, DS2)]
        if len(rest) == 0 or len(test) == 0:
            raise BeatlabError("the inter split needs the MIT-BIH records of DS1 and DS2")
    else:
        raise BeatlabError(f"unknown split '{split}' (choose from {', '.join(SPLITS)})")
    train, valid = carve(np.asarray(rest), beats.y, valid_frac, seed)
    return {"train": train, "valid": valid, "test": np.sort(test)}
