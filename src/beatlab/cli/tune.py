"""`beatlab tune`: a Ray Tune search on validation, the best configuration tested once."""

from __future__ import annotations

import math
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from beatlab.cli.common import DataDir, Db, Fold, Folds, Layout, Lead, console, print_table
from beatlab.errors import BeatlabError

if TYPE_CHECKING:
    from beatlab.tuning import Outcome

DEFAULT_EXPERIMENTS_DIR = Path("experiments")
INTERRUPTED = 130  # the shell's status for a run ended by Ctrl+C


def tune(
    model: Annotated[str | None, typer.Option(help="Model name (see `beatlab models`).")] = None,
    space: Annotated[
        Path | None, typer.Option(help="Search-space file, e.g. configs/search/cnn1d_gru.toml.")
    ] = None,
    search: Annotated[str, typer.Option(help="hyperopt (TPE), random or grid.")] = "hyperopt",
    samples: Annotated[
        int | None,
        typer.Option(help="Trials (default 8); with grid, passes over the grid (default 1)."),
    ] = None,
    scheduler: Annotated[
        str, typer.Option(help="asha (stop poor trials early) or fifo (run all to the end).")
    ] = "asha",
    max_epochs: Annotated[int, typer.Option(help="Epochs per trial (ASHA's max_t).")] = 10,
    concurrency: Annotated[int, typer.Option(help="Trials running at the same time.")] = 2,
    cpus_per_trial: Annotated[int, typer.Option(help="CPUs (torch threads) per trial.")] = 1,
    metric: Annotated[
        str,
        typer.Option(
            help="Validation metric: val_macro_recall, val_measured_recall (over the classes "
            "with 50+ validation beats), val_macro_f1, val_accuracy or val_loss."
        ),
    ] = "val_macro_recall",
    resume_dir: Annotated[
        Path | None,
        typer.Option("--resume", help="Continue this interrupted experiment directory."),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster HOST:PORT (default: $RAY_ADDRESS, else a local Ray)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Experiment name (default: model-timestamp).")
    ] = None,
    experiments_dir: Annotated[
        Path, typer.Option(help="Where experiment directories (and mlflow.db) go.")
    ] = DEFAULT_EXPERIMENTS_DIR,
    data_dir: DataDir = None,
    split: Annotated[str, typer.Option(help="intra or inter.")] = "intra",
    db: Db = "mitdb",
    layout: Layout = "kachuee",
    lead: Lead = None,
    folds: Folds = None,
    fold: Fold = 0,
    train_file: Annotated[
        str | None,
        typer.Option(help="Tune on Kaggle CSV / course Parquet file(s), comma-separated."),
    ] = None,
    valid_file: Annotated[str | None, typer.Option()] = None,
    test_file: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[
        int | None, typer.Option(help="At most this many training (and validation) beats.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split, the searcher and training.")] = 0,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            help="MLflow tracking URI (default: sqlite:///EXPERIMENTS_DIR/mlflow.db; 'none': off)."
        ),
    ] = None,
) -> None:
    """Hypertune a model with Ray Tune on the validation part; test the best trial once."""
    from beatlab.training.runs import check_name
    from beatlab.tuning import TuneSettings, load_space, resume, start  # Ray: import on use

    began = time.perf_counter()
    if resume_dir is not None:
        if model or space:
            raise BeatlabError("--resume continues with the experiment's own --model and --space")
        outcome = resume(resume_dir.resolve(), address)
    else:
        if not model or not space:
            raise BeatlabError("beatlab tune needs --model and --space (or --resume DIR)")
        name = check_name(name or f"{model}-{datetime.now():%Y%m%d-%H%M%S}")
        settings = TuneSettings(
            model=model,
            space_file=str(space),
            search=search,
            samples=samples if samples is not None else (1 if search == "grid" else 8),
            scheduler=scheduler,
            max_epochs=max_epochs,
            concurrency=concurrency,
            metric=metric,
            split=split,
            db=db,
            layout=layout,
            lead=lead,
            folds=folds,
            fold=fold,
            seed=seed,
            limit=limit,
            data_dir=str(data_dir) if data_dir else None,
            train_file=train_file,
            valid_file=valid_file,
            test_file=test_file,
            cpus_per_trial=cpus_per_trial,
            tracking_uri=tracking_uri,
        )
        outcome = start(
            settings, load_space(space, model), (experiments_dir / name).resolve(), address
        )
    print_outcome(outcome, time.perf_counter() - began)


def print_outcome(outcome: Outcome, seconds: float) -> None:
    """The results table and the one test result; or how to continue an interrupted search."""
    trials = f"{outcome.finished} of {outcome.total} trials finished, {outcome.errored} failed"
    if not outcome.complete or outcome.table is None or outcome.summary is None:
        console.print(
            f"interrupted after {seconds:.0f} s: {trials}. "
            f"Continue with: beatlab tune --resume {outcome.exp_dir}",
            soft_wrap=True,
        )
        raise typer.Exit(INTERRUPTED)
    shown = outcome.table.dropna(axis="columns", how="all")  # the model's own columns only
    rows: list[dict[str, Any]] = [
        {
            str(k): "" if v is None or (isinstance(v, float) and math.isnan(v)) else v
            for k, v in row.items()
        }
        for row in shown.to_dict("records")
    ]
    print_table(rows, title=f"{outcome.exp_dir.name}: validation, best first")
    summary = outcome.summary
    test = summary["test"]
    console.print(
        f"best trial [bold]{summary['best_trial']}[/] ({summary['metric']} "
        f"{summary['validation'][summary['metric']]:.4f}): on test ({test['n']:,} beats) accuracy "
        f"{test['accuracy']:.4f}, macro recall {test['macro_recall']:.4f}, "
        f"macro F1 {test['macro_f1']:.4f}",
        soft_wrap=True,
    )
    if outcome.errored:
        console.print(f"{outcome.errored} trial(s) failed; --resume runs them again")
    console.print(
        f"{trials} in {seconds:.0f} s; results in [bold]{outcome.exp_dir}[/] "
        "(results.md, best_config.toml, best_run/)",
        soft_wrap=True,
    )
