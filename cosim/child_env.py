"""Python children that cosim spawns (multiprocessing's spawn: compare workers, training worker
processes) start with ``-c``, which puts the working folder first on their path before they
learn the parent's: a ``multiprocessing.py`` (or any module they import first) lying there would
run inside them. PYTHONSAFEPATH, set while they start, keeps the working folder off it."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@contextmanager
def safe_child_path() -> Iterator[None]:
    """Children started inside this block get no working folder on their path."""
    previous = os.environ.get("PYTHONSAFEPATH")
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PYTHONSAFEPATH", None)
        else:
            os.environ["PYTHONSAFEPATH"] = previous


def dies_with_parent(death_signal: int = signal.SIGKILL) -> None:
    """A pool worker's initializer: the kernel sends it ``death_signal`` when its parent dies
    (Linux's parent-death signal), and SIGINT or SIGTERM end it at once while it has installed
    no handlers of its own (its parent cleans up)."""
    signal.signal(signal.SIGINT, _leave)
    signal.signal(signal.SIGTERM, _leave)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, death_signal)
    if os.getppid() == 1:  # the parent died before the death signal was armed
        os._exit(1)


def _leave(signum: int, frame: object) -> None:
    os._exit(128 + signum)


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now (an error or a signal in the parent)."""
    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        with contextlib.suppress(OSError, ValueError, AssertionError):
            process.kill()
            process.join(5)
    join_pool_manager(pool)


def join_pool_manager(pool: ProcessPoolExecutor) -> None:
    """Wait for the pool's manager thread, which ends once its workers are gone: a command that
    exits while it still runs races it at interpreter exit (Python 3.11's pool wakes it through
    a pipe it may be closing), printing "Exception ignored ... Bad file descriptor" after the
    command's one line."""
    manager = getattr(pool, "_executor_manager_thread", None)
    if manager is not None:
        manager.join(5)
