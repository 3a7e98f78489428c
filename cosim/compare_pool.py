"""The worker processes of `cosim compare --jobs N`: they stop with the compare and die with it.

On SIGINT or SIGTERM the compare stops at once: queued runs are cancelled, each running one is
asked to end as an interruption (its run.json says ``interrupted``, ``--resume`` continues it) and
its worker exits. A worker whose parent is killed outright (SIGKILL) gets SIGTERM from the kernel
(Linux's parent-death signal) and ends its run the same way, instead of idling for ever.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cosim.child_env import dies_with_parent, join_pool_manager, safe_child_path

if TYPE_CHECKING:
    from cosim.compare_job import OnProgress, RunJob

STOP_GRACE_S = 120.0  # how long a stopped run may take to close its traces before it is killed

_feed: Any = None  # this worker's progress queue (None: nobody listens)


def run_in_pool(jobs_: list[RunJob], jobs: int, on_done: Callable[[str], None] | None,
                on_progress: OnProgress | None) -> None:
    """Run ``jobs_`` on ``jobs`` spawned worker processes; any error or signal stops them all."""
    context = multiprocessing.get_context("spawn")  # libsumo and torch want a fresh process
    with safe_child_path():  # the queue's resource tracker and the workers start here
        feed = context.Queue() if on_progress is not None else None
        pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=context,
                                      initializer=_worker_start, initargs=(feed,))
        futures = {pool.submit(_worker_run, job): job for job in jobs_}
    reader = None
    if feed is not None:  # workers report through a queue; a thread hands it on
        reader = threading.Thread(target=_drain, args=(feed, on_progress), daemon=True)
        reader.start()
    try:
        for future in cf.as_completed(futures):
            future.result()  # re-raise a worker's error here
            if on_done:
                on_done(futures[future].out)
    except BaseException:
        _stop(pool)
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        if feed is not None:
            feed.put(None)
            if reader is not None:
                reader.join(5)
            feed.close()


def _stop(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel what has not started; ask the running runs to end (SIGTERM), wait for them to close
    their traces, then kill what is left."""
    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        with contextlib.suppress(OSError, ValueError):
            if process.is_alive():
                process.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for process in workers:
        with contextlib.suppress(OSError, ValueError, AssertionError):
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(5)
    join_pool_manager(pool)


def _drain(feed: Any, on_progress: OnProgress) -> None:
    while (item := feed.get()) is not None:
        with contextlib.suppress(Exception):  # a display error must not stop the reports
            on_progress(*item)


def _worker_start(feed: Any) -> None:
    """A new worker: keep the progress queue, die with the parent, exit on a signal while idle."""
    global _feed
    _feed = feed
    dies_with_parent(signal.SIGTERM)  # a run then ends interrupted, its traces closed


def _worker_run(job: RunJob) -> str:
    """One run in a worker; a signal ends it as an interruption, then ends this worker."""
    from cosim import interrupts
    from cosim.compare_job import run_one

    try:
        with interrupts.handled():  # SIGINT/SIGTERM: the run closes as interrupted
            return run_one(job, _feed)
    except KeyboardInterrupt:
        os._exit(128 + signal.SIGTERM)  # the run is closed; this worker takes no more
