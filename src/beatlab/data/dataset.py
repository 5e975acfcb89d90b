"""A ready-to-train dataset: the three parts of a split, balanced on train, with its provenance."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from beatlab import CLASSES
from beatlab.data.balance import balance as balance_beats
from beatlab.data.build import Beats, ensure_channel_beats, record_patients
from beatlab.data.databases import MITDB, DatabaseSpec, parse_databases
from beatlab.data.layouts import BuildParams, get_layout
from beatlab.data.splits import PARTS, split_indices
from beatlab.errors import BeatlabError

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


def load_beats_of(
    data_dir: Path | None = None,
    db: str = "mitdb",
    layout: str | BuildParams = "kachuee",
    lead: str | None = None,
) -> tuple[Beats, list[Path], np.ndarray, tuple[DatabaseSpec, ...]]:
    """The built beats of one database or several pooled (`mitdb,svdb`), with their caches,
    each beat's patient and the specs, in a registered layout (by name) or a run's own
    (`BuildParams`). Pooled records are named `<db>:<record>`."""
    specs = parse_databases(db)
    params = get_layout(layout) if isinstance(layout, str) else layout
    root = resolve_data_dir(data_dir)
    parts, caches, patients = [], [], []
    for spec in specs:
        beats, paths, _ = ensure_channel_beats(root, params, db=spec, lead=lead)
        names, where = np.unique(beats.record, return_inverse=True)
        whose = record_patients(root / spec.name, spec, names.tolist())
        patients.append(np.array([whose[n] for n in names])[where])
        if len(specs) > 1:
            beats.record = np.char.add(f"{spec.name}:", beats.record.astype(str))
        parts.append(beats)
        caches.extend(paths)
    return Beats.join(parts), caches, np.concatenate(patients), specs


def named_split(beats: Beats, specs: tuple[DatabaseSpec, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the training and test beats of the `inter` split: MIT-BIH's DS1 -> DS2, with
    every record of any other pooled database on the training side."""
    if MITDB not in specs:
        raise BeatlabError(
            "the inter split is MIT-BIH's DS1 -> DS2; for other databases use --folds K"
        )
    pooled = len(specs) > 1
    split = MITDB.splits["inter"]
    prefix = "mitdb:" if pooled else ""
    is_mitdb = (
        np.char.startswith(beats.record.astype(str), prefix)
        if pooled
        else np.ones(len(beats), bool)
    )
    train = np.isin(beats.record, [prefix + r for r in split.train]) | ~is_mitdb
    return train, np.isin(beats.record, [prefix + r for r in split.test])


def load_dataset(
    data_dir: Path | None = None,
    *,
    db: str = "mitdb",
    layout: str | BuildParams = "kachuee",
    lead: str | None = None,
    split: str = "intra",
    balance: str = "none",
    seed: int = 0,
    folds: int | None = None,
    fold: int = 0,
    valid_fold: int | None = None,
    validate: bool = True,
) -> Dataset:
    """The beat dataset of `data_dir`'s database(s), built or read from cache, split and
    balanced."""
    beats, caches, patients, specs = load_beats_of(data_dir, db, layout, lead)
    named = named_split(beats, specs) if split == "inter" else None
    index = split_indices(
        beats,
        split,
        seed=seed,
        folds=folds,
        fold=fold,
        patients=patients,
        named=named,
        valid_fold=valid_fold,
        validate=validate,
        valid_frac=0.1 if split == "intra" and folds is None else 0.2,
    )
    train, info = balance_beats(beats.take(index["train"]), balance, seed, len(CLASSES))
    meta = {
        "source": ",".join(s.name for s in specs),
        "layout": layout if isinstance(layout, str) else layout.name,
        "lead": lead,
        "cache": ",".join(str(c.resolve()) for c in caches),
        "split": split,
        "seed": seed,
        "folds": folds,
        "fold": fold if folds else None,
        "valid_patients": sorted(set(patients[index["valid"]].tolist()))
        if split == "inter" or folds
        else None,
        **info,
    }
    return Dataset(train, beats.take(index["valid"]), beats.take(index["test"]), meta=meta)
