"""Where beatlab's messages go: the terminal, or a log file or pipe that must get whole lines."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

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
