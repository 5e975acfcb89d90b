"""User-facing errors: the CLI prints them as one line and exits with status 2."""

from __future__ import annotations

from pathlib import Path


class BeatlabError(Exception):
    """A problem with the user's input (a file, a flag, a config), not a bug in beatlab."""

    def __init__(self, problem: str, path: Path | str | None = None) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
