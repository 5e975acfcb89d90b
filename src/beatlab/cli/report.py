"""`beatlab report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report(
    sources: Annotated[
        list[Path], typer.Argument(help="Run and/or experiment directories.", show_default=False)
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Directory for report.html, report.md and the figures.")
    ],
) -> None:
    """Write the report of runs and experiments: report.html (self-contained) and report.md."""
    from beatlab.reporting import write_report

    html, markdown = write_report(sources, out)
    print(f"report: {html}")
    print(f"markdown: {markdown}")
