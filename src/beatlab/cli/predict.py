"""`beatlab predict` (classify every beat of a record or beat file) and `beatlab export`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from beatlab.cli.common import (
    Annotator,
    Detector,
    RunDir,
    console,
    print_decision_weights,
    print_table,
)
from beatlab.errors import BeatlabError
from beatlab.io import refuse_foreign

if TYPE_CHECKING:
    from beatlab.deploy.predict import Predictions


def predict(
    run: RunDir,
    out: Annotated[Path, typer.Option(help="Per-beat table to write: .csv or .parquet.")],
    record: Annotated[
        Path | None,
        typer.Option(help="A WFDB record, e.g. data/mitdb/208 (.hea + .dat), or an EDF/BDF file."),
    ] = None,
    csv: Annotated[Path | None, typer.Option(help="Beats in the Kaggle CSV layout.")] = None,
    parquet: Annotated[
        Path | None, typer.Option(help="Beats in the course Parquet layout.")
    ] = None,
    detector: Detector = False,
    annotator: Annotator = "atr",
    lead: Annotated[
        str | None,
        typer.Option(
            help="The record's lead to classify, or the first of a comma-separated list it has "
            "(default: the run's own, else its preferred leads); an ensemble over several leads "
            "takes one choice per lead, joined by '|'."
        ),
    ] = None,
    onnx: Annotated[
        Path | None,
        typer.Option(
            help="Classify with this export of the run (`beatlab export`, fp32 or --int8) "
            "through ONNX Runtime instead of PyTorch."
        ),
    ] = None,
) -> None:
    """Classify every beat of a WFDB record or beat file and write one row per beat."""
    from beatlab.deploy.export import runner_for
    from beatlab.deploy.predict import (
        check_beat_file,
        is_prediction_table,
        predict_file,
        predict_record,
        table_format,
        write_table,
    )
    from beatlab.training.runs import load_run

    sources = {"record": record, "csv": csv, "parquet": parquet}
    chosen = [(flag, path) for flag, path in sources.items() if path is not None]
    if len(chosen) != 1:
        raise BeatlabError("give exactly one of --record, --csv or --parquet")
    flag, source = chosen[0]
    given = {"detector": detector, "lead": lead, "annotator": annotator != "atr"}
    for option in (name for name, value in given.items() if value):
        if flag != "record":
            raise BeatlabError(f"--{option} applies to --record only")
    table_format(out)  # a bad output suffix or folder fails before any work
    check_output(out)
    refuse_foreign(out, is_prediction_table, "a prediction table")
    if flag != "record":
        check_beat_file(source, flag)
    trained = load_run(run)
    engine = runner_for(trained, onnx).predict_proba if onnx else None
    with console.status(f"classifying the beats of {source}", spinner="dots"):
        if flag == "record":
            result = predict_record(
                trained, source, detector=detector, engine=engine, lead=lead, annotator=annotator
            )
        else:
            result = predict_file(trained, source, engine=engine)
    write_table(result.table(), out)
    print_summary(result, source, annotator)
    print_decision_weights(trained.config.hparams, trained.classes)
    console.print(f"wrote {len(result):,} beats to [bold]{out}[/]")


def check_output(path: Path) -> None:
    """An output file the user named goes into a folder that exists: a mistyped folder is an
    error before any work, never a new directory tree."""
    if path.is_dir():
        raise BeatlabError("is a directory; --out names the file to write", path)
    if not path.parent.is_dir():
        raise BeatlabError(f"no such directory {path.parent}", path)


def print_summary(result: Predictions, source: Path, annotator: str = "atr") -> None:
    """Where the beats came from, beats per class, and agreement with the reference if known."""
    from beatlab.deploy.predict import MATCH_WINDOW_S
    from beatlab.training.crossdb import IN_VF_SAID

    if result.source == "file":
        console.print(f"[bold]{source}[/]: {len(result):,} beats (one per row)")
    else:
        found = "reference annotations" if result.source == "annotations" else "QRS detector"
        found += f" (.{annotator})" if annotator != "atr" and result.source == "annotations" else ""
        console.print(
            f"[bold]{source}[/]: {len(result):,} beats from the {found}, lead {result.lead}, "
            f"{result.fs:g} Hz"
        )
    if result.note:
        console.print(f"[yellow]{result.note}[/]")
    if result.matched_against:
        matched, annotated = int(result.known.sum()), result.matched_against
        console.print(
            f"detector vs annotations: {matched:,} of {annotated:,} annotated beats found within "
            f"{MATCH_WINDOW_S * 1000:.0f} ms (Se {matched / annotated:.4f}, "
            f"+P {matched / max(result.scored, 1):.4f})"
        )
    if result.scored < len(result):
        console.print(f"{len(result) - result.scored:,} {IN_VF_SAID}")
    predicted, reference = result.counts()
    metrics = result.agreement()
    rows = []
    for i, name in enumerate(result.classes):
        row: dict[str, object] = {"class": name, "predicted": int(predicted[i])}
        if metrics is not None:
            se, ppv = metrics["per_class"][name]["Se"], metrics["per_class"][name]["+P"]
            row.update(  # n/a, not 0: no reference beat to find, or none said to check
                {
                    "reference": int(reference[i]),
                    "Se": se if reference[i] else None,
                    "+P": ppv if predicted[i] else None,
                }
            )
        rows.append(row)
    print_table(rows, title="beats per class" + (" vs the reference" if metrics else ""))
    if metrics is not None:
        console.print(
            f"agreement with the reference: accuracy {metrics['accuracy']:.4f}, "
            f"macro Se {metrics['macro_recall']:.4f} on {metrics['n']:,} beats"
        )


def export(
    run: RunDir,
    fmt: Annotated[str, typer.Option("--format", help="onnx or torchscript.")] = "onnx",
    out: Annotated[
        Path | None,
        typer.Option(
            help="File to write (default: model.onnx / model.int8.onnx / model.pt in the run)."
        ),
    ] = None,
    int8: Annotated[
        bool,
        typer.Option(
            "--int8",
            help="ONNX only: quantise to int8, calibrated on the run's training beats, and "
            "compare it with the fp32 model on the validation beats.",
        ),
    ] = False,
) -> None:
    """Export a run's model (dynamic batch) for ONNX Runtime or LibTorch."""
    from beatlab.deploy.export import (
        EXPORT_FILES,
        INT8_FILE,
        check_quantizable,
        compare_int8,
        export_int8,
        export_model,
        is_export,
        max_difference,
    )
    from beatlab.training.data import dataset_for
    from beatlab.training.runs import load_run

    if fmt not in EXPORT_FILES:
        raise BeatlabError(f"unknown export format {fmt!r} (choose from {', '.join(EXPORT_FILES)})")
    if int8 and fmt != "onnx":
        raise BeatlabError("--int8 needs --format onnx")
    target = out or run / (INT8_FILE if int8 else EXPORT_FILES[fmt])
    if out is not None:
        check_output(out)
    refuse_foreign(target, is_export, "a model export")
    trained = load_run(run)
    if not int8:
        path = export_model(
            trained.model,
            trained.classes,
            fmt,
            target,
            name=run.name,
            layout=trained.layout,
        )
        diff = max_difference(trained.model, path, fmt)
        console.print(
            f"wrote [bold]{path}[/] ({path.stat().st_size / 1024:,.0f} KiB); largest |logit| "
            f"difference from PyTorch on 256 random beats: {diff:.2e}"
        )
        return
    check_quantizable(trained.model)  # before the training beats are read
    ds = dataset_for(trained.config, trained.layout)
    path = export_int8(
        trained.model,
        trained.classes,
        target,
        ds.train.x,
        ds.train.rr,
        name=run.name,
        seed=trained.config.seed,
        layout=trained.layout,
    )
    check = compare_int8(trained.model, path, ds.valid, trained.classes)
    console.print(
        f"wrote [bold]{path}[/] ({path.stat().st_size / 1024:,.0f} KiB); on {check['n']:,} "
        f"validation beats it gives PyTorch's class to {check['same_class']:.2%}: accuracy "
        f"{check['int8_accuracy']:.4f} (fp32 {check['fp32_accuracy']:.4f}), macro recall "
        f"{check['int8_macro_recall']:.4f} (fp32 {check['fp32_macro_recall']:.4f})"
    )
