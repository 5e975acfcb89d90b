"""`beatlab train`, `beatlab ensemble` and `beatlab evaluate`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from beatlab.cli.common import (
    Annotator,
    DataDir,
    Jobs,
    console,
    print_decision_weights,
    print_table,
)
from beatlab.errors import BeatlabError
from beatlab.training.config import DEFAULT_RUNS_DIR, TrainConfig, load_config, parse_sets

RunsDir = Annotated[Path, typer.Option(help="Where run directories (and mlflow.db) go.")]
TrackingUri = Annotated[
    str | None,
    typer.Option(
        help="MLflow tracking URI (default: sqlite:///RUNS_DIR/mlflow.db; 'none' turns it off)."
    ),
]


def train(
    config_file: Annotated[
        Path | None, typer.Option("--config", help="TOML/YAML/JSON config.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name (see `beatlab models`).")] = None,
    db: Annotated[
        str | None,
        typer.Option(help="Database(s): mitdb (default), svdb, ...; comma-separated pools them."),
    ] = None,
    layout: Annotated[
        str | None,
        typer.Option(
            help="Beat layout: kachuee (default, the study's), kaggle, or centred, deviation, "
            "deviation_median_rr (new patients)."
        ),
    ] = None,
    split: Annotated[str | None, typer.Option(help="intra or inter.")] = None,
    balance: Annotated[str | None, typer.Option(help="none, weights, oversample or smote.")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    lr: Annotated[float | None, typer.Option()] = None,
    folds: Annotated[int | None, typer.Option(help="Patient-grouped K-fold.")] = None,
    fold: Annotated[int | None, typer.Option()] = None,
    limit: Annotated[
        int | None, typer.Option(help="Use at most this many training (and validation) beats.")
    ] = None,
    train_file: Annotated[
        str | None,
        typer.Option(help="Train on Kaggle CSV / course Parquet file(s), comma-separated."),
    ] = None,
    valid_file: Annotated[str | None, typer.Option()] = None,
    test_file: Annotated[str | None, typer.Option()] = None,
    init_from: Annotated[
        Path | None, typer.Option(help="Start from this run's weights with a new head (transfer).")
    ] = None,
    freeze_backbone: Annotated[
        bool | None, typer.Option(help="With --init-from: train the new head only.")
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", help="key=value for any config field or model hyperparameter."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Run name, a plain folder name (default: model-timestamp).")
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            help="Replace an earlier run of this name (only a beatlab run holding nothing else)."
        ),
    ] = False,
    resume_dir: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            help="Continue this interrupted run from its last finished epoch (same result as "
            "an uninterrupted run).",
        ),
    ] = None,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
    data_dir: DataDir = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Train a model; the best checkpoint (on validation macro recall, or the config's
    `monitor`) goes to RUNS_DIR/NAME. Ctrl+C or SIGTERM keeps the finished epochs (--resume)."""
    from beatlab.training.run import Interrupted, resume_run, train_run
    from beatlab.training.runs import read_json

    config = load_config(config_file) if config_file else TrainConfig()
    given: dict[str, Any] = {
        "model": model,
        "db": db,
        "layout": layout,
        "split": split,
        "balance": balance,
        "epochs": epochs,
        "seed": seed,
        "batch_size": batch_size,
        "lr": lr,
        "folds": folds,
        "fold": fold,
        "limit": limit,
        "train_file": train_file,
        "valid_file": valid_file,
        "test_file": test_file,
        "init_from": str(init_from) if init_from else None,
        "freeze_backbone": freeze_backbone,
        "data_dir": str(data_dir) if data_dir else None,
    }
    for key, value in given.items():  # one at a time, so that an error names its option
        if value is not None:
            config = config.updated({key: value}, f"--{key.replace('_', '-')}")
    config = config.updated(parse_sets(sets or []), "--set")
    try:
        if resume_dir is not None:
            others = any(v is not None for v in given.values()) or config_file or sets or name
            if others or replace:
                raise BeatlabError(
                    "--resume continues a run with its own settings; give no other option "
                    "than --tracking-uri"
                )
            run_dir = resume_run(resume_dir, tracking_uri=tracking_uri)
        else:
            run_dir = train_run(
                config, runs_dir, name=name, tracking_uri=tracking_uri, replace=replace
            )
    except Interrupted as stop:
        print(
            f"beatlab: interrupted after {stop.epochs} of {stop.total} epochs; the run is kept: "
            f"continue with `beatlab train --resume {stop.run_dir}`",
            file=sys.stderr,
        )
        raise
    info, metrics = read_json(run_dir / "run.json"), read_json(run_dir / "metrics.json")["valid"]
    scores = (
        f"validation accuracy {metrics['accuracy']:.4f}, macro recall {metrics['macro_recall']:.4f}"
        if metrics
        else "no validation part: the last epoch is kept"
    )
    console.print(
        f"run: [bold]{run_dir}[/]  best epoch {info['best_epoch']}/"
        f"{info['epochs_run']}, {info['train_seconds']:.0f} s; {scores}"
    )


def ensemble(
    members: Annotated[
        list[Path], typer.Argument(help="Finished runs of one model and data.", show_default=False)
    ],
    name: Annotated[str, typer.Option(help="Name of the ensemble's run directory.")],
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
    decision_weights: Annotated[
        str | None,
        typer.Option(
            help="One weight per class on the mean probabilities when the ensemble decides, "
            "comma-separated (e.g. 1,4,1,1,1); '' decides by plain argmax. Default: the members'."
        ),
    ] = None,
    member_weights: Annotated[
        str | None,
        typer.Option(
            help="One weight per run, in their order, on its probabilities in the mean "
            "(e.g. 1,1,1,0.5,0.5; scikit-learn's VotingClassifier weights). Default: equal."
        ),
    ] = None,
    af_gate: Annotated[
        bool | None,
        typer.Option(
            "--af-gate/--no-af-gate",
            help="Call no beat S where a recording's R-R intervals say atrial fibrillation (its "
            "S probability goes to N), in predict and evaluate. Default: the first member's.",
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option(help="Replace an earlier run of this name (a beatlab run only).")
    ] = False,
) -> None:
    """Join finished runs (other seeds, or other folds of DS1) into one run that averages their
    class probabilities; evaluate, predict, export, view and report take it like any run."""
    from beatlab.training.ensemble import build_ensemble
    from beatlab.training.runs import read_run_files

    weights = None if decision_weights is None else parse_weights(decision_weights)
    shares = None if member_weights is None else parse_weights(member_weights, "--member-weights")
    run_dir = build_ensemble(
        members,
        runs_dir,
        name,
        decision_weights=weights,
        member_weights=shares,
        af_gate=af_gate,
        replace=replace,
    )
    console.print(f"ensemble of {len(members)} runs: [bold]{run_dir}[/]")
    config, info = read_run_files(run_dir)
    if "member_weights" in info:
        console.print(f"members weighted {', '.join(f'{w:g}' for w in info['member_weights'])}")
    print_decision_weights(config.hparams, info["classes"])
    if config.af_gate:
        console.print("no beat is called S in atrial fibrillation (af_gate)")


def parse_weights(text: str, option: str = "--decision-weights") -> list[float]:
    """`1,4,1,1,1` -> [1.0, 4.0, 1.0, 1.0, 1.0]; '' -> [] (plain argmax)."""
    try:
        return [float(w) for w in text.split(",")] if text.strip() else []
    except ValueError:
        raise BeatlabError(f"expected comma-separated numbers, got {text!r}", option) from None


def evaluate(
    run: Annotated[Path, typer.Argument(help="A run directory.")],
    split: Annotated[str, typer.Option(help="Which part: test, valid or train.")] = "test",
    test_file: Annotated[
        str | None,
        typer.Option(
            help="Evaluate on Kaggle CSV / course Parquet file(s) instead, comma-separated."
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            help="Evaluate on every annotated beat of this other database (e.g. svdb) instead."
        ),
    ] = None,
    records: Annotated[
        Path | None,
        typer.Option(
            help="Evaluate on every annotated record of this folder instead: a WFDB database "
            "with no spec in beatlab (any rate; each record read as `predict` reads it)."
        ),
    ] = None,
    lead: Annotated[
        str | None,
        typer.Option(
            help="With --db or --records: the lead to read instead of the run's own (its "
            "database's preferred one), or the first of a comma-separated list each record has; "
            "an ensemble over several leads takes one choice per lead, joined by '|'."
        ),
    ] = None,
    annotator: Annotator = "atr",
    detector: Annotated[
        bool,
        typer.Option(
            help="With --records: find the beats with the QRS detector, as on a recording "
            "without annotations, and score detection too (Se / +P within 150 ms)."
        ),
    ] = False,
    jobs: Jobs = 1,
    data_dir: DataDir = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Evaluate a run's best model once on the test part (or another part, another database, or
    a folder of records): metrics.json."""
    sources = {"--test-file": test_file, "--db": db, "--records": records}
    given = [flag for flag, value in sources.items() if value is not None]
    if len(given) > 1:
        raise BeatlabError(f"give one of {', '.join(given)}")
    if lead is not None and not (db or records):
        raise BeatlabError("--lead applies to --db and --records (the test part is cut as trained)")
    if annotator != "atr" and records is None:
        raise BeatlabError("--annotator applies to --records (a database's spec names its own)")
    if detector and records is None:
        raise BeatlabError("--detector applies to --records")
    if jobs != 1 and records is None:
        raise BeatlabError("--jobs applies to --records")
    if db is not None or records is not None:
        from beatlab.training.crossdb import evaluate_database, evaluate_records, false_detections

        metrics = (
            evaluate_records(run, records, lead, annotator, detector, jobs)
            if records is not None
            else evaluate_database(run, str(db), data_dir, lead, progress=True)
        )
        print_metrics(metrics, f"{run.name} on {metrics['database']}, {metrics['records']} records")
        print_table(metrics["per_record"], title="per record")
        if "detection" in metrics:
            found = metrics["detection"]
            console.print(
                f"detector vs annotations: Se {found['Se']:.4f} of {found['annotated']:,} "
                f"annotated beats, +P {found['+P']:.4f} of {found['detected']:,} detections; "
                "classes scored on the detections that hit an annotated beat"
            )
            console.print(false_detections(found))
        if "note" in metrics:
            console.print(f"[yellow]{metrics['note']}[/]")
    else:
        from beatlab.training.run import evaluate_run

        metrics = evaluate_run(
            run, split, test_file=test_file, tracking_uri=tracking_uri, progress=True
        )
        print_metrics(metrics, f"{run.name} on {test_file or split}")
        if "per_record" in metrics:
            print_table(metrics["per_record"], title="per record")
        if "note" in metrics:
            console.print(f"[yellow]{metrics['note']}[/]")
    from beatlab.training.runs import read_run_files

    config, _ = read_run_files(run)
    print_decision_weights(config.hparams, metrics["classes"])


def print_metrics(metrics: dict[str, Any], title: str) -> None:
    """Overall metrics, the AAMI per-class table and the confusion matrix."""
    from beatlab.training.metrics import per_class_rows

    summary = {k: metrics[k] for k in ("n", "accuracy", "macro_recall", "macro_f1")}
    for key in ("roc_auc", "sensitivity", "specificity"):
        if metrics.get(key) is not None:
            summary[key] = metrics[key]
    print_table([summary], title=title)
    print_table(
        per_class_rows(metrics),
        title="per class (Se = sensitivity, +P = positive predictive value, Sp = specificity)",
    )
    classes = metrics["classes"]
    print_table(
        [
            {"true \\ predicted": c, **dict(zip(classes, row, strict=True))}
            for c, row in zip(classes, metrics["confusion_matrix"], strict=True)
        ],
        title="confusion matrix",
    )
