"""SIGINT and SIGTERM end a run as an interruption, even when the signal lands in a C callback.

The handler raises KeyboardInterrupt at once; Python drops an exception raised inside a ctypes
callback (numba's JIT compiler runs such callbacks), so the request is also remembered and the
run's clock checks it at every progress tick. A second signal while the run cleans up is ignored,
so SUMO and the trace files are still closed properly.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

_requested = False


def _handler(signum, frame) -> None:
    global _requested
    if _requested:
        return  # already ending: let the clean-up finish
    _requested = True
    raise KeyboardInterrupt


@contextmanager
def handled() -> Iterator[None]:
    """Install the handler for SIGINT and SIGTERM for the duration of a command."""
    global _requested
    _requested = False
    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _requested = False


def check() -> None:
    """Raise KeyboardInterrupt if a signal asked to stop and its own raise was lost."""
    if _requested:
        raise KeyboardInterrupt
