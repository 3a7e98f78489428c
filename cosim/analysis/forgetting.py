"""Forgetting under drift, from traces alone: for each task, when some client trained it (run.json's
``summary.learning.drift``), its best headline score while it was trained, and its score at the
end of the run.

Forgetting of a task no client trains at the end = best while trained - final (the standard
"maximum earlier accuracy minus final accuracy" of continual learning, Chaudhry et al. 2018, on
the task's headline metric); a task still trained at the end has none. A task never trained
(arriving later than the run ends) has no best.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cosim.analysis.summary import headline_curves, read_run_json
from cosim.names import HEADLINE


def active_intervals(drift: dict[str, Any], end_s: float) -> dict[str, list[tuple[float, float]]]:
    """Per task, the intervals of simulated time in which some client trained it."""
    changes = [(0.0, set(drift.get("initial_active_tasks", [])))]
    changes += [(float(e["at_s"]), set(e.get("active_tasks", []))) for e in drift.get("events", [])]
    out: dict[str, list[tuple[float, float]]] = {t: [] for t in HEADLINE}
    for i, (t0, active) in enumerate(changes):
        t1 = changes[i + 1][0] if i + 1 < len(changes) else end_s
        for task in active:
            spans = out.setdefault(task, [])
            if spans and spans[-1][1] == t0:
                spans[-1] = (spans[-1][0], t1)
            elif t1 > t0 or i + 1 == len(changes):
                spans.append((t0, t1))
    return out


def forgetting_table(run_dir: Path) -> pd.DataFrame:
    """One row per task: when it was trained, best while trained, final, forgetting."""
    info = read_run_json(run_dir)
    drift = ((info.get("summary") or {}).get("learning") or {}).get("drift")
    if not drift:
        return pd.DataFrame()
    end = float(info.get("sim_time_s") or info["scenario"]["duration_s"])
    spans = active_intervals(drift, end)
    curves = headline_curves(run_dir)
    rows = []
    for task, metric in HEADLINE.items():
        if task not in curves:
            continue
        _, times, values = curves[task]
        trained = np.zeros(len(times), bool)
        for t0, t1 in spans.get(task, []):
            # an evaluation at t scores what was trained up to t: it counts if the task was
            # trained at some point before it (within this interval)
            trained |= (times > t0) & (times <= t1 + 1e-9)
        best = float(values[trained].max()) if trained.any() else math.nan
        final = float(values[-1])
        still = any(t1 >= end - 1e-9 for _, t1 in spans.get(task, []))
        when = ", ".join(f"{t0:.0f}-{t1:.0f} s" for t0, t1 in spans.get(task, []))
        rows.append({"task": task, "metric": metric, "trained": when or "never",
                     "best_while_trained": best, "final": final,
                     "forgetting": math.nan if still or math.isnan(best) else best - final})
    return pd.DataFrame(rows)
