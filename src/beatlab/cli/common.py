"""Options and printing shared by the sub-commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from beatlab.output import make_console

console = make_console()  # whole lines and full tables when written to a file or pipe

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default: $BEATLAB_DATA_DIR, else ./data)."),
]
Db = Annotated[
    str, typer.Option(help="Database(s): mitdb, svdb, incartdb; comma-separated to pool them.")
]
Layout = Annotated[
    str,
    typer.Option(
        help="Beat layout: kachuee (the study's), kaggle (as the Kaggle files were built), or "
        "centred, deviation, deviation_median_rr (for new patients)."
    ),
]
Lead = Annotated[
    str | None,
    typer.Option(
        help="Use this lead for every record, or the first of a comma-separated list each record "
        "has (V1,V2,V5); default: the database's preferred ones."
    ),
]
Annotator = Annotated[
    str,
    typer.Option(
        help="The annotation file of the record's reference beats, by extension: atr (PhysioNet's "
        "reference; without it the QRS detector finds the beats), or another annotator's (qrs, "
        "the MIT-BIH AF Database's beats; your own), which must exist."
    ),
]
RunDir = Annotated[Path, typer.Option("--run", help="A run directory (from `beatlab train`).")]
Detector = Annotated[
    bool,
    typer.Option(
        "--detector",
        "--no-annotations",
        help="Find beats with the QRS detector even when the record has annotations (.atr, or "
        "--annotator's file), which then still give the reference labels.",
    ),
]
Jobs = Annotated[
    int,
    typer.Option(
        "--jobs",
        "-j",
        help="With --records: classify this many recordings at once, each in its own process "
        "(the QRS detector reads a lead on one core).",
    ),
]
Seed = Annotated[int, typer.Option(help="Random seed for splits, balancing and training.")]
Split = Annotated[str, typer.Option(help="intra (beat-wise) or inter (patient-wise, de Chazal).")]
Balance = Annotated[str, typer.Option(help="none, weights, oversample or smote (train only).")]
Folds = Annotated[int | None, typer.Option(help="Patient-grouped K-fold instead of --split.")]
Fold = Annotated[int, typer.Option(help="Which fold is the test part (with --folds).")]


def print_table(rows: list[dict[str, Any]], title: str | None = None) -> None:
    """Print a list of same-keyed dicts as a rich table (numbers right-aligned)."""
    table = Table(title=title)
    for key in rows[0] if rows else []:
        numeric = all(isinstance(r[key], int | float | None) for r in rows)
        table.add_column(str(key), justify="right" if numeric else "left")
    for row in rows:
        table.add_row(
            *(
                "n/a"
                if v is None
                else f"{v:,}"
                if isinstance(v, int)
                else f"{v:.4f}"
                if isinstance(v, float)
                else str(v)
                for v in row.values()
            )
        )
    console.print(table)


def print_decision_weights(hparams: dict[str, Any], classes: tuple[str, ...] | list[str]) -> None:
    """Say when a model does not decide by plain argmax: its per-class numbers depend on it."""
    weights = hparams.get("decision_weights") or []
    shown = [f"{c} ×{w:g}" for c, w in zip(classes, weights, strict=False) if w != 1]
    if shown:
        console.print(
            f"deciding with {', '.join(shown)} on the class probabilities "
            "(decision_weights in the run's config)"
        )
