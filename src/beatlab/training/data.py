"""The dataset a TrainConfig names: the built MIT-BIH beats, or the user's own prepared files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from beatlab import CLASSES
from beatlab.data.balance import balance as balance_beats
from beatlab.data.build import Beats
from beatlab.data.dataset import Dataset, load_dataset
from beatlab.data.formats import NO_RR, read_beats
from beatlab.data.layouts import FILE_LAYOUTS, BuildParams, get_layout, layout_params
from beatlab.data.splits import carve
from beatlab.errors import BeatlabError
from beatlab.output import warn
from beatlab.training.config import TrainConfig

PTB_CLASSES = ("normal", "abnormal")
FAR = 10.0
"""A sample further than FAR times the width of the training range outside it is "far": the
model never saw anything like it, so its class is a guess however confident it looks."""


def check_float32(x: np.ndarray, path: Path | str) -> None:
    """Beats are float32 from here on: a value finite in the file but beyond float32's range
    (1e39, say) would become inf and silently poison every probability of its row."""
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad.size:
        raise BeatlabError(
            f"values beyond the float32 range (about ±3.4e38) in {bad.size} rows "
            f"(first at row {bad[0]}, 0-based)",
            path,
        )


def warn_outside(x: np.ndarray, train_range: list[float] | None, where: Path | str) -> int:
    """Warn (one line) about rows with samples far outside the training range (default [0, 1],
    the beats' normalisation); returns how many."""
    low, high = train_range if train_range else (0.0, 1.0)
    width = max(high - low, 1e-6)
    far = ((x < low - FAR * width) | (x > high + FAR * width)).any(axis=1)
    count = int(far.sum())
    if count:
        largest = float(np.abs(x[far]).max())
        warn(
            f"{count} of {len(x)} rows hold values far outside the training range "
            f"[{low:.3g}, {high:.3g}] (up to {largest:.3g}); their classes are unreliable",
            where,
        )
    return count


def read_files(spec: str) -> Beats:
    """One or more comma-separated Kaggle CSV / course Parquet files, as one set of beats."""
    xs, ys, names = [], [], []
    for item in spec.split(","):
        path = Path(item.strip())
        with np.errstate(over="ignore"):  # the cast's overflow is what check_float32 reports
            x, y = read_beats(path)
        check_float32(x, path)
        xs.append(x)
        ys.append(y)
        names.append(np.full(len(y), path.name))
    y = np.concatenate(ys)
    return Beats(
        np.concatenate(xs),
        y,
        np.zeros((len(y), 3), np.float32),
        np.concatenate(names),
        np.concatenate([np.arange(len(part)) for part in ys]),
    )


def classes_for(labels: np.ndarray) -> tuple[str, ...]:
    """5 classes for arrhythmia labels (0..4), 2 for PTB (0 normal, 1 abnormal)."""
    return PTB_CLASSES if labels.max(initial=0) <= 1 else CLASSES


def file_dataset(config: TrainConfig) -> Dataset:
    """Train/valid/test from files; missing parts are carved (stratified, seeded) from train."""
    assert config.train_file is not None
    train = read_files(config.train_file)
    valid = read_files(config.valid_file) if config.valid_file else None
    test = read_files(config.test_file) if config.test_file else None
    classes = classes_for(train.y)
    for spec, part in ((config.valid_file, valid), (config.test_file, test)):
        if part is not None and classes_for(part.y) != classes:
            raise BeatlabError(
                f"labels {sorted(set(part.y.tolist()))} do not match the "
                f"{len(classes)}-class task of the training file",
                spec,
            )
    if test is None:
        rest, carved = carve(np.arange(len(train)), train.y, 0.2, config.seed)
        train, test = train.take(rest), train.take(carved)
    if valid is None and not config.validate:
        valid = train.take(np.arange(0))
    elif valid is None:
        rest, carved = carve(np.arange(len(train)), train.y, 0.1, config.seed)
        train, valid = train.take(rest), train.take(carved)
    train, info = balance_beats(train, config.built_balance, config.seed, len(classes))
    meta = {
        "source": "files",
        "train_file": config.train_file,
        "valid_file": config.valid_file,
        "test_file": config.test_file,
        "split": "files",
        "seed": config.seed,
        **info,
    }
    return Dataset(train, valid, test, classes=classes, meta=meta)


def dataset_for(config: TrainConfig, layout: BuildParams | None = None) -> Dataset:
    """The dataset of a config, with the training part cut to `limit` beats if set; its beats
    in `layout` (a run's stored layout) or the config's layout as registered. The layout's
    parameters go into `meta`, and so into run.json, for the run to read new records the same
    way whatever a later beatlab registers."""
    params = layout or get_layout(config.layout)
    if config.train_file:
        if config.hparams.get("use_rr"):
            raise BeatlabError(NO_RR, config.train_file)
        if config.layout not in FILE_LAYOUTS:
            raise BeatlabError(
                f"beat files hold beats in the kaggle layout (close to kachuee), not "
                f"{config.layout!r}",
                config.train_file,
            )
        ds = file_dataset(config)
    elif config.valid_file or config.test_file:
        raise BeatlabError("--valid-file and --test-file need --train-file")
    else:
        ds = load_dataset(
            Path(config.data_dir) if config.data_dir else None,
            db=config.db,
            layout=params,
            lead=config.lead,
            split=config.split,
            balance=config.built_balance,
            seed=config.seed,
            folds=config.folds,
            fold=config.fold,
            valid_fold=config.valid_fold,
            validate=config.validate,
        )
    ds.meta["layout_params"] = layout_params(params)
    return apply_limit(ds, config.limit, config.seed)


def apply_limit(ds: Dataset, limit: int | None, seed: int) -> Dataset:
    """Cut the training and validation parts to `limit` beats each (seeded); test stays whole.
    Shared with tuning, whose trials balance a shared split themselves and then cut it."""
    if limit is not None:
        rng = np.random.default_rng(seed)
        for part in ("train", "valid"):
            beats = ds.part(part)
            if len(beats) > limit:
                keep = np.sort(rng.choice(len(beats), limit, replace=False))
                setattr(ds, part, beats.take(keep))
        ds.meta["limit"] = limit
    return ds
