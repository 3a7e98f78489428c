"""Scoring the global model on the held-out segments, into the metrics trace.

With ``learning.evaluation.background`` the scoring runs on a thread of its own, on a replica of
the model at one torch thread, while the simulation and training go on: the global state it
scores is a snapshot (aggregation makes new states, it never changes one in place; a deferred
one is averaged on this thread, after its round's training: ``deferred.py``), and its rows
join the metrics trace in the order the evaluations were asked for, so the trace does not depend
on when a score is ready."""

from __future__ import annotations

import concurrent.futures as cf
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TypeVar

import torch

from cosim.learning.federated.deferred import snapshot
from cosim.learning.local import evaluate
from cosim.learning.model import M3TModel, replicate
from cosim.learning.tasks import SPECS, task_names
from cosim.scenario import EvaluationConfig
from cosim.traces import TraceTable

Scores = dict[str, dict[str, float]]
T = TypeVar("T")


class GlobalEvaluation:
    """Evaluates a global state and appends one metrics row per (task, metric)."""

    def __init__(self, model: M3TModel, load_batches: Callable[[], list], settings: EvaluationConfig,
                 table: TraceTable):
        """``load_batches`` gives the held-out batches, read at the first evaluation (in the
        background, on the evaluation's thread while the run goes on)."""
        self._batches: list | None
        self._load_batches, self._batches = load_batches, None
        self._loading = threading.Lock()
        self.settings, self.table = settings, table
        self.tasks = [t for t in (task_names(settings.tasks or ()) or model.heads) if t in model.heads]
        self.last_t = 0.0
        self.last_line = ""  # the headline metrics, for the progress bar
        self._wall0 = time.perf_counter()
        # wall-clock seconds at each evaluation: run.json, not the metrics trace, which must be
        # byte-identical between runs of the same scenario and seed
        self.wall_s: list[float] = []
        self.busy_s = 0.0  # wall-clock seconds spent scoring, all evaluations together
        self._pool: cf.ThreadPoolExecutor | None = None
        self.model = model
        if settings.background:
            self.model = replicate(model)  # the run's model trains while this one scores
            self._pool = cf.ThreadPoolExecutor(1, thread_name_prefix="cosim-eval",
                                               initializer=torch.set_num_threads, initargs=(1,))
        self._pending: deque[tuple[cf.Future, int, float]] = deque()

    @property
    def batches(self) -> list:
        """The held-out batches (read once, by whichever thread first needs them)."""
        with self._loading:
            if self._batches is None:
                self._batches = self._load_batches()
            return self._batches

    def __call__(self, state: Mapping[str, torch.Tensor], round_: int, now: float) -> None:
        self.last_t = now
        if self._pool is None:
            self._write(self._score(state), round_, now)
            return
        self._pending.append((self._pool.submit(self._score, snapshot(state)), round_, now))
        self._collect(wait=False)

    def later(self, work: Callable[[], T]) -> Callable[[], T]:
        """``work`` for the evaluation's thread (in the background: queued after the evaluations
        asked for so far); call what this returns for its result (in the run's thread: the work
        runs then)."""
        if self._pool is None:
            return work
        return self._pool.submit(work).result

    def poll(self) -> None:
        """Write the evaluations finished so far (in order): the progress bar's latest scores."""
        self._collect(wait=False)

    def drain(self) -> None:
        """Write every evaluation asked for (the run's end: before any other metrics rows)."""
        self._collect(wait=True)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _score(self, state: Mapping[str, torch.Tensor]) -> tuple[Scores, float]:
        batches = self.batches  # the first call reads them: not scoring time
        start = time.perf_counter()
        results = evaluate(self.model, state, batches, tasks=self.tasks, settings=self.settings)
        self.busy_s += time.perf_counter() - start
        return results, round(time.perf_counter() - self._wall0, 3)

    def _collect(self, wait: bool) -> None:
        """The finished evaluations' rows, oldest first (``wait``: every pending one)."""
        while self._pending and (wait or self._pending[0][0].done()):
            future, round_, now = self._pending.popleft()
            self._write(future.result(), round_, now)

    def _write(self, scored: tuple[Scores, float], round_: int, now: float) -> None:
        results, wall = scored
        rows = [(t, m, v) for t, metrics in results.items() for m, v in metrics.items()]
        self.wall_s.append(wall)
        self.table.append({"round": [round_] * len(rows), "sim_time_s": [now] * len(rows),
                           "task": [r[0] for r in rows],
                           "metric": [r[1] for r in rows], "value": [float(r[2]) for r in rows],
                           "client": [None] * len(rows), "model": [None] * len(rows)})
        # a metric with nothing to score (NaN, COCO's -1) is left out, not shown as a number
        headlines = ((t, SPECS[t].info.headline) for t in SPECS if t in results)
        self.last_line = " ".join(f"{t} {results[t][m]:.3f}" for t, m in headlines
                                  if m in results[t]
                                  and math.isfinite(results[t][m]) and results[t][m] >= 0)
