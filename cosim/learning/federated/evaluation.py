"""Scoring the global model on the held-out segments, into the metrics trace."""

from __future__ import annotations

import time

from cosim.learning.local import evaluate
from cosim.learning.model import M3TModel
from cosim.names import HEADLINE
from cosim.scenario import EvaluationConfig
from cosim.traces import TraceTable


class GlobalEvaluation:
    """Evaluates a global state and appends one metrics row per (task, metric)."""

    def __init__(self, model: M3TModel, batches: list, settings: EvaluationConfig, table: TraceTable):
        self.model, self.batches, self.settings, self.table = model, batches, settings, table
        self.tasks = [t for t in (settings.tasks or model.heads) if t in model.heads]
        self.last_t = 0.0
        self.last_line = ""  # the headline metrics, for the progress bar
        self._wall0 = time.perf_counter()
        # wall-clock seconds at each evaluation: run.json, not the metrics trace, which must be
        # byte-identical between runs of the same scenario and seed
        self.wall_s: list[float] = []

    def __call__(self, state: dict, round_: int, now: float) -> None:
        self.last_t = now
        results = evaluate(self.model, state, self.batches, tasks=self.tasks, settings=self.settings)
        rows = [(t, m, v) for t, metrics in results.items() for m, v in metrics.items()]
        self.wall_s.append(round(time.perf_counter() - self._wall0, 3))
        self.table.append({"round": [round_] * len(rows), "sim_time_s": [now] * len(rows),
                           "task": [r[0] for r in rows],
                           "metric": [r[1] for r in rows], "value": [float(r[2]) for r in rows],
                           "client": [None] * len(rows), "model": [None] * len(rows)})
        self.last_line = " ".join(f"{t} {results[t][m]:.3f}" for t, m in HEADLINE.items()
                                  if t in results and m in results[t])
