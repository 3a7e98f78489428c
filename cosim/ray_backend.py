"""Ray as a second backend for ``cosim compare``: the same ``run_one`` per run, as a Ray task.

Why: the spawn process pool stops at one machine; a Ray cluster spreads a large grid over many, and a
local Ray instance behaves like the pool (one fresh worker process per run, for libsumo and torch).
Ray is optional (``pip install -e ".[ray]"``), imported only when this backend is asked for.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable
from types import TracebackType
from typing import Any

from cosim.compare_job import RunJob, run_one
from cosim.errors import InputError, MissingDependencyError

INSTALL_HINT = 'ray is missing (needed by --backend ray): pip install -e ".[ray]" (or pip install ray)'


def import_ray() -> Any:
    """The ``ray`` module, or cosim's one-line missing-dependency error."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(INSTALL_HINT) from None
    return ray


def _run_in(cwd: str, job: RunJob) -> str:
    # the job's paths may be relative to the driver's folder; a worker starts elsewhere
    if os.path.isdir(cwd):
        os.chdir(cwd)
    return run_one(job)


class RayRunner:
    """Runs batches of the grid as Ray tasks; a context manager owning Ray's lifetime.

    ``address`` None (and no ``RAY_ADDRESS``): a local instance with ``jobs`` CPUs, each run getting
    ``cores // jobs`` torch threads like the process pool. An address (``auto``, ``ray://host:10001``):
    that cluster's free CPUs bound the parallelism, and each run gets 1 torch thread (it reserves one
    CPU). Ray is shut down on exit only if this runner started it.
    """

    def __init__(self, jobs: int, address: str | None = None) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.jobs = max(jobs, 1)
        if self.address is None:
            self.threads = max(1, (os.cpu_count() or 1) // self.jobs)
        else:
            self.threads = 1
        self._ray = import_ray()  # a missing Ray fails here, before anything starts
        self._started = False

    def __enter__(self) -> RayRunner:
        ray = self._ray
        if not ray.is_initialized():
            quiet: dict[str, Any] = {"log_to_driver": False, "configure_logging": True,
                                     "logging_level": logging.ERROR}
            if self.address is None:
                quiet.update(num_cpus=self.jobs, include_dashboard=False)
            sigterm = signal.getsignal(signal.SIGTERM)
            try:
                ray.init(address=self.address, **quiet)
            except (ConnectionError, ValueError) as exc:
                raise InputError(None, "--ray-address", f"cannot connect to Ray at {self.address!r}: "
                                 f"{exc}") from None
            finally:  # ray.init installs its own SIGTERM exit; keep the CLI's (exit 130)
                if sigterm is not None:
                    signal.signal(signal.SIGTERM, sigterm)
            self._started = self.address is None
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._started:
            self._ray.shutdown()
        self._started = False

    def run(self, batch: list[RunJob], on_done: Callable[[str], None] | None,
            on_progress: Callable[[str, float, float], None] | None = None) -> None:
        """Every job of ``batch`` as a task; ``on_done(out)`` as each finishes; the first error
        re-raised here naming its run folder (the others are cancelled). ``on_progress`` is not
        fed: a run's progress stays in its Ray worker (Ray's dashboard shows the tasks)."""
        ray = self._ray
        task = ray.remote(num_cpus=1, max_calls=1)(_run_in)  # a fresh worker process per run
        cwd = os.getcwd()
        pending = {task.remote(cwd, job): job for job in batch}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    job = pending.pop(ref)
                    try:
                        ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        raise _driver_error(exc, job) from exc
                    if on_done:
                        on_done(job.out)
        finally:
            for ref in pending:  # after an error or Ctrl-C: don't leave runs going on a cluster
                with contextlib.suppress(Exception):  # best effort: finished or gone already
                    ray.cancel(ref, force=True)


def _driver_error(exc: Exception, job: RunJob) -> Exception:
    """The worker's error for the driver, naming the run folder; input and dependency errors keep
    their kind (exit codes as with the local backend)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, InputError):
        return InputError(cause.file, cause.field, f"{cause.message} (run {job.out})")
    if isinstance(cause, MissingDependencyError):
        return MissingDependencyError(f"run {job.out}: {cause}")
    if cause is not None:
        return RuntimeError(f"run {job.out} failed in a Ray worker: {type(cause).__name__}: {cause}")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return RuntimeError(f"run {job.out} failed in a Ray worker: {type(exc).__name__}: {first}")
