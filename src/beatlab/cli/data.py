"""`beatlab data ...`: fetch the raw records, build the beats, inspect and export the splits."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer

from beatlab import CLASSES
from beatlab.cli.common import (
    Balance,
    DataDir,
    Fold,
    Folds,
    Seed,
    Split,
    console,
    print_table,
)
from beatlab.data.fetch import PHYSIONET_URL
from beatlab.errors import BeatlabError

if TYPE_CHECKING:
    from beatlab.data.dataset import Dataset

app = typer.Typer(
    help="Get the MIT-BIH records and build the heartbeat dataset.", no_args_is_help=True
)


@app.command()
def fetch(
    data_dir: DataDir = None,
    source: Annotated[
        Path | None,
        typer.Option(
            "--from", help="Copy from a local copy of the database instead of downloading."
        ),
    ] = None,
    url: Annotated[str, typer.Option(help="Base URL of the database.")] = PHYSIONET_URL,
) -> None:
    """Download (or copy) MIT-BIH v1.0.0 into DATA_DIR/mitdb, verifying every SHA-256."""
    from beatlab.data.dataset import resolve_data_dir
    from beatlab.data.fetch import fetch_mitdb

    dest = fetch_mitdb(resolve_data_dir(data_dir) / "mitdb", source=source, base_url=url)
    console.print(f"MIT-BIH Arrhythmia Database v1.0.0 verified in [bold]{dest}[/]")


def _print_dataset(ds: Dataset) -> None:
    print_table(
        ds.summary(),
        title=f"split {ds.meta['split']}"
        + (f" fold {ds.meta['fold']}/{ds.meta['folds']}" if ds.meta.get("folds") else "")
        + f", balance {ds.meta['balance']}, seed {ds.meta['seed']}",
    )
    console.print(f"cache: {ds.meta['cache']}")


@app.command()
def build(
    data_dir: DataDir = None,
    force: Annotated[bool, typer.Option(help="Rebuild even when the cache is up to date.")] = False,
) -> None:
    """Build the beat dataset from DATA_DIR/mitdb (cached as Parquet)."""
    from beatlab.data.build import ensure_beats
    from beatlab.data.dataset import make_dataset, resolve_data_dir

    start = time.perf_counter()
    beats, path, rebuilt = ensure_beats(resolve_data_dir(data_dir), force=force)
    took = time.perf_counter() - start
    console.print(
        f"{'built' if rebuilt else 'up to date'}: {len(beats):,} beats in {took:.2f} s -> {path}"
    )
    _print_dataset(make_dataset(beats, path))


@app.command()
def info(
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="Kaggle CSV or course Parquet files to summarise instead."),
    ] = None,
    data_dir: DataDir = None,
    split: Split = "intra",
    balance: Balance = "none",
    seed: Seed = 0,
    folds: Folds = None,
    fold: Fold = 0,
) -> None:
    """Beats per class and records per part of a split, with balancing and cache path."""
    from beatlab.data.dataset import load_dataset
    from beatlab.data.formats import read_beats

    if files:
        rows = []
        for path in files:
            _, y = read_beats(path)
            counts = np.bincount(y, minlength=len(CLASSES))
            rows.append(
                {
                    "file": str(path),
                    **{f"label {i}": int(n) for i, n in enumerate(counts)},
                    "total": len(y),
                }
            )
        print_table(rows, title="beats per label (0..4 = N, S, V, F, Q; PTB: 0 normal, 1 abnormal)")
        return
    _print_dataset(
        load_dataset(data_dir, split=split, balance=balance, seed=seed, folds=folds, fold=fold)
    )


@app.command()
def export(
    out: Annotated[Path, typer.Option(help="Directory to write the files into.")],
    fmt: Annotated[str, typer.Option("--format", help="kaggle-csv or mads-parquet.")],
    data_dir: DataDir = None,
    split: Split = "intra",
    balance: Balance = "none",
    seed: Seed = 0,
    folds: Folds = None,
    fold: Fold = 0,
) -> None:
    """Write a split in the Kaggle CSV or course Parquet layout (one file per part)."""
    from beatlab.data.dataset import load_dataset
    from beatlab.data.formats import FORMATS, write_beats

    if fmt not in FORMATS:
        raise BeatlabError(f"unknown format '{fmt}' (choose from {', '.join(FORMATS)})")
    ds = load_dataset(data_dir, split=split, balance=balance, seed=seed, folds=folds, fold=fold)
    stem, suffix = ("mitbih", "csv") if fmt == "kaggle-csv" else ("heart_big", "parq")
    for part in ("train", "valid", "test"):
        beats = ds.part(part)
        path = out / f"{stem}_{part}.{suffix}"
        write_beats(path, beats.x, beats.y, fmt)
        console.print(f"{part}: {len(beats):,} beats -> {path}")
