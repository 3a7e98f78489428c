"""How much each stream of randomness alone moves a measure: connectivity (the scenario's seed),
data (learning.data.seed) and training (learning.seed), set beside the differences between
policies, so a reader sees whether a difference is larger than the noise that could make it.

For a stream the grid varies, the spread is the sample standard deviation of the measure over
that stream's seeds with the other two held fixed, pooled (root mean variance) over the other
streams' combinations and over the grid's cells.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cosim.analysis.pairs import measures

STREAMS = {"connectivity": "seed", "data": "data_seed", "training": "training_seed"}


def stream_spread(summary: pd.DataFrame, pairs: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per measure: each varied stream's pooled standard deviation, and the largest
    |mean difference| between two cells (from the pairs table) for comparison."""
    varied = {name: col for name, col in STREAMS.items()
              if col in summary and summary[col].nunique() > 1}
    rows = []
    for m in measures(list(summary.columns)):
        row: dict[str, object] = {"measure": m.column, "label": m.label}
        for name, col in STREAMS.items():
            row[f"{name}_sd"] = _pooled_sd(summary, m.column, col) if name in varied else math.nan
            row[f"{name}_seeds"] = int(summary[col].nunique()) if col in summary else 0
        if pairs is not None and len(pairs):
            diffs = pairs.loc[pairs.measure == m.column, "mean_a_minus_b"].abs()
            row["largest_policy_difference"] = float(diffs.max()) if diffs.notna().any() else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _pooled_sd(summary: pd.DataFrame, column: str, stream: str) -> float:
    held = ["policy", "aggregation", *(c for c in STREAMS.values() if c in summary and c != stream)]
    variances = [g[column].var(ddof=1) for _, g in summary.groupby(held) if g[column].notna().sum() > 1]
    variances = [v for v in variances if np.isfinite(v)]
    return float(math.sqrt(np.mean(variances))) if variances else math.nan
