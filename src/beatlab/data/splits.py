"""Train / validation / test splits: beat-wise (intra), patient-wise (inter) and grouped folds.

The test part is fixed by the split and seed alone; validation is carved from what is left, so
tuning and early stopping never see a test beat.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from beatlab.data.build import Beats
from beatlab.data.databases import MITDB
from beatlab.errors import BeatlabError

DS1, DS2 = MITDB.splits["inter"].train, MITDB.splits["inter"].test
"""de Chazal et al. 2004: training records (train + validation in `inter`) and test records."""
PACED = MITDB.excluded
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


VALID_FOLDS_SEED = 0
"""Shuffles every patient fold of a run given a `valid_fold`, whatever its seed: runs of several
seeds share their test folds, and with valid_fold 0, 1, ... validate on disjoint patients, so an
ensemble of them learns from all."""


def carve_patients(
    index: np.ndarray,
    y: np.ndarray,
    patients: np.ndarray,
    frac: float,
    seed: int,
    fold: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Patient-grouped, class-stratified, seeded split of `index` into (rest, carved): whole
    patients only, so validation measures patients never trained on.

    Rare classes sit in a few patients (MIT-BIH DS1 has nearly all its F beats in record 208),
    so of the 1/frac candidate folds the one whose share of every class (of 100 beats or more:
    a handful cannot be shared out) is closest to `frac` is carved: neither part loses a class
    wholesale when another fold would keep it. With `fold`, that fold is carved instead,
    balanced or not."""
    groups = patients[index]
    n_patients = len(np.unique(groups))
    if n_patients < 2:
        raise BeatlabError(
            f"a patient-wise validation part needs at least 2 training patients, got {n_patients}"
        )
    folds = min(max(2, round(1 / frac)), n_patients)
    if fold is not None and fold >= folds:
        raise BeatlabError(
            f"valid_fold must be below {folds} (the patient folds of {n_patients} training "
            f"patients), got {fold}"
        )
    kfold = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    totals = np.bincount(y[index])
    present = totals >= 100

    def deviation(carved: np.ndarray) -> float:
        share = np.bincount(y[index[carved]], minlength=len(totals))[present] / totals[present]
        return float(np.abs(share - frac).max(initial=0.0))

    with warnings.catch_warnings():  # "least populated class has only n members": known, fine
        warnings.simplefilter("ignore", UserWarning)
        candidates = list(kfold.split(index, y[index], groups=groups))
    rest, carved = (
        candidates[fold] if fold is not None else min(candidates, key=lambda c: deviation(c[1]))
    )
    return np.sort(index[rest]), np.sort(index[carved])


def split_indices(
    beats: Beats,
    split: str = "intra",
    *,
    seed: int = 0,
    test_frac: float = 0.2,
    valid_frac: float = 0.1,
    folds: int | None = None,
    fold: int = 0,
    patients: np.ndarray | None = None,
    named: tuple[np.ndarray, np.ndarray] | None = None,
    valid_fold: int | None = None,
    validate: bool = True,
) -> dict[str, np.ndarray]:
    """Indices of the train, valid and test parts.

    intra: stratified random test part (20%), Kaggle-style; validation a stratified `valid_frac`
    of the rest (72/8/20). inter: the database's named patient-wise split (`named`: boolean
    masks of its train and test beats; default MIT-BIH DS1 -> DS2, paced records dropped).
    With `folds`, test is fold `fold` of a patient-grouped, class-stratified K-fold: over every
    patient, or with `inter` over the training patients of the named split only (patient-wise
    cross-validation on DS1 that never reads DS2). In the patient-wise cases validation is
    held-out training *patients* (about `valid_frac` of the beats), so early stopping and model
    selection see no patient of the training part; `valid_fold` names which patients, and fixes
    every patient fold whatever the seed (`VALID_FOLDS_SEED`). `validate=False` carves none: what
    would validate trains too, and the valid part is empty.
    `patients` gives each beat's patient (default: its record).
    """
    every = np.arange(len(beats))
    groups = beats.record if patients is None else patients
    shuffle = seed if valid_fold is None else VALID_FOLDS_SEED  # of every patient fold
    if split == "inter" and named is None:
        named = (np.isin(beats.record, DS1), np.isin(beats.record, DS2))
    if folds is not None:
        if folds < 2 or not 0 <= fold < folds:
            raise BeatlabError(
                f"need folds >= 2 and 0 <= fold < folds, got folds={folds}, fold={fold}"
            )
        pool = every if named is None else every[named[0]]
        n_patients = len(np.unique(groups[pool]))
        if folds > n_patients:
            raise BeatlabError(f"{folds} folds but only {n_patients} patients")
        kfold = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=shuffle)
        rest, test = (
            pool[part] for part in list(kfold.split(pool, beats.y[pool], groups=groups[pool]))[fold]
        )
    elif split == "intra":
        if valid_fold is not None:
            raise BeatlabError(
                "valid_fold needs patient-wise validation: --split inter or --folds K"
            )
        rest, test = carve(every, beats.y, test_frac, seed)
    elif split == "inter" and named is not None:
        rest, test = every[named[0]], every[named[1]]
        if len(rest) == 0 or len(test) == 0:
            raise BeatlabError("the inter split needs the MIT-BIH records of DS1 and DS2")
    else:
        raise BeatlabError(f"unknown split '{split}' (choose from {', '.join(SPLITS)})")
    if not validate:
        train, valid = np.sort(rest), every[:0]
    elif split == "intra" and folds is None:  # beat-wise, like its test part
        train, valid = carve(np.asarray(rest), beats.y, valid_frac, seed)
    else:
        train, valid = carve_patients(
            np.asarray(rest), beats.y, groups, valid_frac, shuffle, valid_fold
        )
    return {"train": train, "valid": valid, "test": np.sort(test)}
