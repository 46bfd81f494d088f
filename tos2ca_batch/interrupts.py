"""Signals that arrive where raising would break the code they interrupt are held till it ends.

The CLI turns SIGINT/SIGTERM into an exception raised in the main thread, wherever it is. Inside
``concurrent.futures.wait`` that is unsafe: it takes each future's lock one by one in Python code
and an exception between two of them leaves the first held, so the pool's manager thread, and
with it the process's exit, wait for that lock forever (seen: a ``run`` sent SIGTERM under load
hung at exit). Code that must not be interrupted runs inside :func:`held`; a signal arriving
meanwhile is raised when it ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

_holding = 0
_held: list[Callable[[], None]] = []


@contextmanager
def held() -> Iterator[None]:
    """Run the block with signal actions held; raise the first one held, if any, at its end."""
    global _holding
    _holding += 1
    try:
        yield
    finally:
        _holding -= 1
        if not _holding and _held:
            action = _held[0]
            _held.clear()
            action()


def hold_or_run(action: Callable[[], None]) -> None:
    """What a signal handler calls: ``action`` now, or when the :func:`held` block ends."""
    if _holding:
        _held.append(action)
    else:
        action()
