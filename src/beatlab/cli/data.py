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
    Db,
    Fold,
    Folds,
    Layout,
    Lead,
    Seed,
    Split,
    console,
    print_table,
)
from beatlab.errors import BeatlabError
from beatlab.training.config import check_options

if TYPE_CHECKING:
    from beatlab.data.dataset import Dataset

app = typer.Typer(
    help="Get PhysioNet databases (MIT-BIH, SVDB, INCART) and build the heartbeat datasets.",
    no_args_is_help=True,
)


@app.command()
def fetch(
    data_dir: DataDir = None,
    db: Annotated[str, typer.Option(help="Database (see `beatlab data databases`).")] = "mitdb",
    source: Annotated[
        Path | None,
        typer.Option(
            "--from", help="Copy from a local copy of the database instead of downloading."
        ),
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="Base URL of the database (default: its PhysioNet home).")
    ] = None,
) -> None:
    """Download (or copy) a database into DATA_DIR/DB, verifying every SHA-256."""
    from beatlab.data.databases import get_database
    from beatlab.data.dataset import resolve_data_dir
    from beatlab.data.fetch import fetch_database

    spec = get_database(db)
    dest = fetch_database(resolve_data_dir(data_dir) / spec.name, spec, source=source, base_url=url)
    console.print(f"{spec.title} v{spec.version} verified in [bold]{dest}[/]")


@app.command()
def databases() -> None:
    """List the registered databases."""
    from beatlab.data.databases import get_database, list_databases

    rows = []
    for name in list_databases():
        spec = get_database(name)
        rows.append(
            {
                "db": name,
                "database": f"{spec.title} v{spec.version}",
                "Hz": ", ".join(f"{f:g}" for f in spec.fs),
                "leads": ", ".join(spec.leads),
                "splits": ", ".join(spec.splits) or "-",
            }
        )
    print_table(rows)


def _print_dataset(ds: Dataset) -> None:
    print_table(
        ds.summary(),
        title=f"split {ds.meta['split']}"
        + (f" fold {ds.meta['fold']}/{ds.meta['folds']}" if ds.meta.get("folds") else "")
        + f", balance {ds.meta['balance']}, seed {ds.meta['seed']}",
    )
    console.print(f"database: {ds.meta['source']}, layout {ds.meta['layout']}")
    console.print(f"cache: {ds.meta['cache']}")


def _print_sources(caches: list[Path]) -> None:
    """Which lead each record's beats were cut from, grouped by lead, and the beats left out
    over invalid samples."""
    from beatlab.data.build import read_cache_metadata

    for cache in caches:
        meta = read_cache_metadata(cache) or {}
        by_lead: dict[str, list[str]] = {}
        for record, lead in (meta.get("leads") or {}).items():
            by_lead.setdefault(lead, []).append(record)
        for lead, records in sorted(by_lead.items(), key=lambda kv: -len(kv[1])):
            shown = ", ".join(records) if len(records) <= 8 else f"{len(records)} records"
            console.print(f"{meta.get('db', '?')} lead {lead}: {shown}")
        left_out = meta.get("left_out") or {}
        if left_out:
            where = ", ".join(f"{record}: {n:,}" for record, n in left_out.items())
            console.print(
                f"[yellow]{meta.get('db', '?')}: left out {sum(left_out.values()):,} beats whose "
                f"window holds invalid samples (a lead off) ({where})[/]"
            )


@app.command()
def build(
    data_dir: DataDir = None,
    db: Db = "mitdb",
    layout: Layout = "kachuee",
    lead: Lead = None,
    force: Annotated[bool, typer.Option(help="Rebuild even when the cache is up to date.")] = False,
) -> None:
    """Build the beat dataset of DATA_DIR/DB (cached as Parquet, one cache per database and
    layout)."""
    from beatlab.data.build import ensure_beats
    from beatlab.data.databases import parse_databases
    from beatlab.data.dataset import resolve_data_dir
    from beatlab.data.layouts import get_layout

    params = get_layout(layout)
    root = resolve_data_dir(data_dir)
    for spec in parse_databases(db):
        start = time.perf_counter()
        beats, path, rebuilt = ensure_beats(root, params, db=spec, lead=lead, force=force)
        took = time.perf_counter() - start
        counts = ", ".join(f"{c} {n:,}" for c, n in zip(CLASSES, beats.counts(), strict=True))
        console.print(
            f"{spec.name}: {'built' if rebuilt else 'up to date'}: {len(beats):,} beats "
            f"({counts}) in {took:.2f} s -> {path}"
        )
        _print_sources([path])


@app.command()
def info(
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="Kaggle CSV or course Parquet files to summarise instead."),
    ] = None,
    data_dir: DataDir = None,
    db: Db = "mitdb",
    layout: Layout = "kachuee",
    lead: Lead = None,
    split: Split = "intra",
    balance: Balance = "none",
    seed: Seed = 0,
    folds: Folds = None,
    fold: Fold = 0,
) -> None:
    """Beats per class and records per part of a split, with balancing, leads and cache."""
    from beatlab.data.dataset import load_dataset
    from beatlab.data.formats import read_beats

    check_options(
        {"seed": seed, "split": split, "balance": balance, "folds": folds, "fold": fold, "db": db}
    )

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
    ds = load_dataset(
        data_dir,
        db=db,
        layout=layout,
        lead=lead,
        split=split,
        balance=balance,
        seed=seed,
        folds=folds,
        fold=fold,
    )
    _print_dataset(ds)
    _print_sources([Path(c) for c in ds.meta["cache"].split(",")])


@app.command()
def export(
    out: Annotated[Path, typer.Option(help="Directory to write the files into.")],
    fmt: Annotated[str, typer.Option("--format", help="kaggle-csv or mads-parquet.")],
    data_dir: DataDir = None,
    db: Db = "mitdb",
    split: Split = "intra",
    balance: Balance = "none",
    seed: Seed = 0,
    folds: Folds = None,
    fold: Fold = 0,
) -> None:
    """Write a split in the Kaggle CSV or course Parquet layout (one file per part)."""
    from beatlab.data.dataset import load_dataset
    from beatlab.data.formats import FORMATS, write_beats

    check_options(
        {"seed": seed, "split": split, "balance": balance, "folds": folds, "fold": fold, "db": db}
    )

    if fmt not in FORMATS:
        raise BeatlabError(f"unknown format '{fmt}' (choose from {', '.join(FORMATS)})")
    stem, suffix = ("mitbih", "csv") if fmt == "kaggle-csv" else ("heart_big", "parq")
    paths = {part: out / f"{stem}_{part}.{suffix}" for part in ("train", "valid", "test")}
    for path in paths.values():  # Kaggle's own files have these names, and nothing tells them
        if path.exists():  # apart from ours: an existing file is never replaced
            raise BeatlabError("exists: choose another --out folder, or move it away", path)
    ds = load_dataset(
        data_dir, db=db, split=split, balance=balance, seed=seed, folds=folds, fold=fold
    )
    for part, path in paths.items():
        beats = ds.part(part)
        write_beats(path, beats.x, beats.y, fmt)
        console.print(f"{part}: {len(beats):,} beats -> {path}")
