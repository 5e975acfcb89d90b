"""`beatlab view`: one record's classified beats on a self-contained, interactive HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from beatlab.cli.common import Annotator, Detector, RunDir, console
from beatlab.output import RecordingBars


def view(
    run: RunDir,
    record: Annotated[
        Path,
        typer.Option(help="A WFDB record, e.g. data/mitdb/208 (.hea + .dat), or an EDF/BDF file."),
    ],
    out: Annotated[Path, typer.Option(help="The page to write (.html).")],
    detector: Detector = False,
    annotator: Annotator = "atr",
    lead: Annotated[
        str | None,
        typer.Option(
            help="The lead to classify and show (default: the run's own, else its preferred "
            "lead); an ensemble over several leads takes one per lead, joined by '|', and shows "
            "the first."
        ),
    ] = None,
) -> None:
    """Write one HTML page showing every classified beat of a record on its ECG trace."""
    import time

    from beatlab.data.recordings import as_wfdb
    from beatlab.deploy.predict import predict_record
    from beatlab.reporting.view import check_output, page_for, write_page
    from beatlab.training.runs import load_run

    check_output(out)  # a bad output fails before any work
    trained = load_run(run)
    start = time.perf_counter()
    with as_wfdb(record) as base:
        with RecordingBars(f"classifying the beats of {record}", console=console) as bars:
            result = predict_record(
                trained,
                base,
                detector=detector,
                lead=lead,
                annotator=annotator,
                progress=bars.detector,
            )
        if result.note:
            console.print(f"[yellow]{result.note}[/]")
        predicted = time.perf_counter()
        page = page_for(result, base, run.name)
    write_page(page, out)
    written = time.perf_counter()
    known = result.known
    wrong = int((result.predicted[known] != result.reference[known]).sum())
    console.print(
        f"wrote [bold]{out}[/] ({out.stat().st_size / 1e6:.1f} MB): {len(result):,} beats, "
        + (f"{wrong:,} disagreements with the reference" if known.any() else "no reference")
        + f"; predict {predicted - start:.2f} s, page {written - predicted:.2f} s"
    )
