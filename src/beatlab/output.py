"""Where beatlab's messages go: the terminal, or a log file or pipe that must get whole lines."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

PIPE_WIDTH = 10_000
"""Columns when not writing to a terminal: wide enough that no line or table is ever cut."""


def make_console(*, stderr: bool = False) -> Console:
    """A rich console that wraps only on a terminal. Written to a file or a pipe, rich would
    otherwise wrap every line at 80 columns and squeeze tables until their numbers read "0.…"."""
    console = Console(stderr=stderr)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, width=PIPE_WIDTH, soft_wrap=True)


def warn(problem: str, path: Path | str | None = None) -> None:
    """One warning line on stderr, in the same form as an error line."""
    where = f"{path}: " if path is not None else ""
    print(f"beatlab: warning: {where}{problem}", file=sys.stderr, flush=True)


class RecordingBars:
    """Progress while recordings are read: a bar over the recordings (a spinner for one), and
    one of how far the QRS detector has read the current recording while it runs. GQRS takes
    about 5 s an hour of ECG at 360 Hz here, so a 24-hour Holter lead would otherwise be two
    minutes of a spinner. `detector` is the callback `predict_record(progress=...)` takes;
    `advance` counts a recording done. Nothing is left on the screen afterwards."""

    def __init__(
        self,
        description: str,
        total: int | None = None,
        *,
        console: Console | None = None,
        disable: bool = False,
    ) -> None:
        self.bars = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn() if total else TaskProgressColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=disable,
        )
        self.recordings = self.bars.add_task(description, total=total)
        self.reading: TaskID | None = None

    def __enter__(self) -> RecordingBars:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def detector(self, share: float) -> None:
        if self.reading is None:
            self.reading = self.bars.add_task("finding beats (QRS detector)", total=1.0)
        self.bars.update(self.reading, completed=share)
        if share >= 1.0:  # read: the bar goes, the beats are classified under the spinner
            self.bars.remove_task(self.reading)
            self.reading = None

    def advance(self) -> None:
        self.bars.advance(self.recordings)


@contextmanager
def counting_bar(
    description: str, total: int, *, disable: bool = False
) -> Iterator[Callable[[int], None]]:
    """A bar over `total` items, told how many more are done, and gone when they all are:
    classifying a database's beats takes tens of seconds, which without it look like a hang."""
    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
        disable=disable,
    )
    task = bars.add_task(description, total=total)
    with bars:
        yield lambda n: bars.advance(task, n)
