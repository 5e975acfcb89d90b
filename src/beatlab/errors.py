"""User-facing errors: the CLI prints them as one line and exits with status 2."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable
from pathlib import Path


class BeatlabError(Exception):
    """A problem with the user's input (a file, a flag, a config), not a bug in beatlab."""

    def __init__(self, problem: str, path: Path | str | None = None) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


def unknown(what: str, name: str, known: list[str]) -> BeatlabError:
    """'unknown <what> <name>; did you mean ...? (known: ...)': one wording for every registry."""
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return BeatlabError(f"unknown {what} {name!r}{hint} (known: {', '.join(known)})")


def one_line(text: object) -> str:
    """Text as one line of a terminal: how every user error is printed."""
    return " ".join(str(text).split())


def brief(err: BaseException) -> str:
    """A library's exception as part of a one-line error: one line, at most 200 characters."""
    text = one_line(err)
    return text if len(text) <= 200 else text[:197] + "..."


def script(main: Callable[[], None]) -> None:
    """Run a benchmark script's `main` as the CLI runs a command: bad input (a mistyped `--set`,
    a missing run) ends in one line on stderr and exit status 2, not a traceback."""
    try:
        main()
    except BeatlabError as err:
        print(f"{Path(sys.argv[0]).name}: error: {one_line(err)}", file=sys.stderr)
        sys.exit(2)
