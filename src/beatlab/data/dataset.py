"""A ready-to-train dataset: the three parts of a split, balanced on train, with its provenance."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from beatlab import CLASSES
from beatlab.data.balance import balance as balance_beats
from beatlab.data.build import Beats, BuildParams, ensure_beats
from beatlab.data.splits import PARTS, split_indices

DEFAULT_DATA_DIR = Path("data")
"""Default data directory, relative to where beatlab runs (raw records in `mitdb/`)."""


def resolve_data_dir(data_dir: Path | None = None) -> Path:
    """--data-dir, else $BEATLAB_DATA_DIR, else ./data."""
    if data_dir is not None:
        return data_dir
    env = os.environ.get("BEATLAB_DATA_DIR")
    return Path(env) if env else DEFAULT_DATA_DIR


@dataclass
class Dataset:
    """Train, valid and test beats plus everything needed to rebuild them (`meta`)."""

    train: Beats
    valid: Beats
    test: Beats
    classes: tuple[str, ...] = CLASSES
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def part(self, name: str) -> Beats:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]

    def summary(self) -> list[dict[str, Any]]:
        """One row per part: beats per class and number of source records."""
        rows = []
        for name in PARTS:
            beats = self.part(name)
            counts = beats.counts(self.num_classes)
            records = len(np.unique(beats.record[beats.record != ""]))
            rows.append(
                {
                    "part": name,
                    **dict(zip(self.classes, counts.tolist(), strict=True)),
                    "total": len(beats),
                    "records": records,
                }
            )
        return rows


def load_dataset(
    data_dir: Path | None = None,
    *,
    split: str = "intra",
    balance: str = "none",
    seed: int = 0,
    folds: int | None = None,
    fold: int = 0,
    params: BuildParams = BuildParams(),
) -> Dataset:
    """The MIT-BIH beat dataset of `data_dir`, built or read from cache, split and balanced."""
    beats, cache, _ = ensure_beats(resolve_data_dir(data_dir), params)
    return make_dataset(
        beats, cache, split=split, balance=balance, seed=seed, folds=folds, fold=fold
    )


def make_dataset(
    beats: Beats,
    cache: Path,
    *,
    split: str = "intra",
    balance: str = "none",
    seed: int = 0,
    folds: int | None = None,
    fold: int = 0,
) -> Dataset:
    """Split built beats and balance the training part."""
    index = split_indices(beats, split, seed=seed, folds=folds, fold=fold)
    train, info = balance_beats(beats.take(index["train"]), balance, seed, len(CLASSES))
    meta = {
        "source": "mitdb",
        "cache": str(cache.resolve()),
        "split": split,
        "seed": seed,
        "folds": folds,
        "fold": fold if folds else None,
        **info,
    }
    return Dataset(train, beats.take(index["valid"]), beats.take(index["test"]), meta=meta)
