"""SIGTERM (what `kill` and job schedulers send) handled like Ctrl+C, so that every command ends
the same clean way: the SIGINT handler in force runs (Python's raises KeyboardInterrupt, Ray
Tune's saves the search), and the exit status says which signal it was (130 or 143)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

received: list[int] = []
"""The SIGTERMs received while `sigterm_as_interrupt` is in force."""
_active = [False]


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    received.append(signum)
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[list[int]]:
    """For the block: SIGTERM acts as Ctrl+C. Yields `received`, to choose the exit status."""
    received.clear()
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        yield received
        return
    _active[0] = True
    try:
        yield received
    finally:
        _active[0] = False
        signal.signal(signal.SIGTERM, previous)


def reinstall() -> None:
    """Take SIGTERM back after a library replaced the handler (Ray's installs one that aborts
    the process, which would lose the search's state)."""
    if _active[0]:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, _on_sigterm)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold Ctrl+C and SIGTERM until the block is done, so that bookkeeping that must happen
    together (an epoch's state file, its history, the count of finished epochs) is never cut
    in half; a signal that came meanwhile is acted on when the block ends. Python runs signal
    handlers in the main thread only, so the handlers are swapped (off the main thread, where
    no handler runs, nothing needs holding)."""
    held: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        held.append(signum)

    try:
        previous = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if held:
            handler = previous[signal.Signals(held[0])]
            if callable(handler):
                handler(held[0], None)
            elif handler != signal.SIG_IGN:
                raise KeyboardInterrupt
