"""`beatlab predict` (classify every beat of a record or beat file) and `beatlab export`."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from beatlab.cli.common import (
    Annotator,
    Detector,
    Jobs,
    RunDir,
    console,
    print_decision_weights,
    print_table,
)
from beatlab.errors import BeatlabError, one_line
from beatlab.io import refuse_foreign
from beatlab.output import RecordingBars

if TYPE_CHECKING:
    from beatlab.deploy.predict import Predictions
    from beatlab.training.runs import Run


def predict(
    run: RunDir,
    out: Annotated[Path, typer.Option(help="Per-beat table to write: .csv or .parquet.")],
    record: Annotated[
        Path | None,
        typer.Option(help="A WFDB record, e.g. data/mitdb/208 (.hea + .dat), or an EDF/BDF file."),
    ] = None,
    records: Annotated[
        Path | None,
        typer.Option(
            help="A folder of recordings: its WFDB records (its RECORDS file's, else every "
            ".hea) and EDF/BDF files, classified in one go into one table with a record column."
        ),
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
    jobs: Jobs = 1,
) -> None:
    """Classify every beat of a WFDB record, EDF file, folder of them or beat file and write one
    row per beat."""
    from beatlab.deploy.export import runner_for
    from beatlab.deploy.predict import (
        check_beat_file,
        folder_records,
        is_prediction_table,
        predict_file,
        predict_record,
        table_format,
        write_table,
    )
    from beatlab.training.runs import load_run

    sources = {"record": record, "records": records, "csv": csv, "parquet": parquet}
    chosen = [(flag, path) for flag, path in sources.items() if path is not None]
    if len(chosen) != 1:
        raise BeatlabError("give exactly one of --record, --records, --csv or --parquet")
    flag, source = chosen[0]
    given = {"detector": detector, "lead": lead, "annotator": annotator != "atr"}
    for option in (name for name, value in given.items() if value):
        if flag not in {"record", "records"}:
            raise BeatlabError(f"--{option} applies to --record and --records only")
    if jobs != 1 and flag != "records":
        raise BeatlabError("--jobs applies to --records only (one recording is one job)")
    table_format(out)  # a bad output suffix or folder fails before any work
    check_output(out)
    refuse_foreign(out, is_prediction_table, "a prediction table")
    if flag in {"csv", "parquet"}:
        check_beat_file(source, flag)
    paths = folder_records(source) if flag == "records" else []
    trained = load_run(run)
    if flag == "records":
        predict_folder(trained, source, paths, out, detector, onnx, lead, annotator, jobs)
        return
    engine = runner_for(trained, onnx).predict_proba if onnx else None
    with RecordingBars(f"classifying the beats of {source}", console=console) as bars:
        if flag == "record":
            result = predict_record(
                trained,
                source,
                detector=detector,
                engine=engine,
                lead=lead,
                annotator=annotator,
                progress=bars.detector,
            )
        else:
            result = predict_file(trained, source, engine=engine)
    write_table(result.table(), out)
    print_summary(result, source, annotator)
    print_decision_weights(trained.config.hparams, trained.classes)
    console.print(f"wrote {len(result):,} beats to [bold]{out}[/]")


def predict_folder(
    trained: Run,
    folder: Path,
    paths: list[Path],
    out: Path,
    detector: bool,
    onnx: Path | None,
    lead: str | None,
    annotator: str,
    jobs: int,
) -> None:
    """`predict --records`: every recording of the folder into one table. A recording that
    cannot be read is one line on stderr and left out; the exit status is then 1 (2 where none
    could be read, and nothing is written)."""
    from beatlab.deploy.predict import (
        notes_by_recording,
        per_recording,
        pooled,
        predict_records,
        records_table,
        write_table,
    )

    done, failed = predict_records(
        trained, paths, detector=detector, onnx=onnx, lead=lead, annotator=annotator, jobs=jobs
    )
    for err in failed.values():
        print(f"beatlab: error: {one_line(str(err))}", file=sys.stderr)
    if not done:
        raise typer.Exit(2)
    write_table(records_table(done, folder), out)
    beats = sum(len(result) for result in done.values())
    sources = Counter(result.source for result in done.values())
    console.print(
        f"[bold]{folder}[/]: {beats:,} beats of {len(done):,} "
        f"recording{'s' if len(done) > 1 else ''}, from "
        + " and ".join(
            f"{n:,} {'by the QRS detector' if kind == 'detector' else 'at their annotations'}"
            for kind, n in sorted(sources.items())
        )
    )
    named = [(path.relative_to(folder).as_posix(), result) for path, result in done.items()]
    for line in notes_by_recording(named):
        console.print(f"[yellow]{line}[/]")
    print_table(per_recording(named), title="beats per class, by recording")
    print_beats(pooled(done))
    print_decision_weights(trained.config.hparams, trained.classes)
    console.print(f"wrote {beats:,} beats to [bold]{out}[/]")
    if failed:
        many = "s" if len(failed) > 1 else ""
        console.print(f"[red]left out {len(failed):,} recording{many} that could not be read[/]")
        raise typer.Exit(1)


def check_output(path: Path) -> None:
    """An output file the user named goes into a folder that exists: a mistyped folder is an
    error before any work, never a new directory tree."""
    if path.is_dir():
        raise BeatlabError("is a directory; --out names the file to write", path)
    if not path.parent.is_dir():
        raise BeatlabError(f"no such directory {path.parent}", path)


def print_summary(result: Predictions, source: Path, annotator: str = "atr") -> None:
    """Where the beats came from, beats per class, and agreement with the reference if known."""
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
    print_beats(result)


def print_beats(result: Predictions) -> None:
    """Detection against the annotations where both are known, beats per class, and per-class
    agreement with the reference where it is known."""
    from beatlab.deploy.predict import MATCH_WINDOW_S
    from beatlab.training.crossdb import IN_VF_SAID

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
