"""The pairs table of a compare: every pair of grid cells (policy x aggregation), every measure,
the paired difference over seeds, its interval, a Holm-corrected test and a verdict.

The statistics are in :mod:`cosim.analysis.paired`; this module decides what is compared: which
summary columns are measures, which way is better, the default equivalence margins, and what a
seed (the unit of pairing) is.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from cosim.analysis.curves import LAST_K
from cosim.analysis.paired import (
    A_BETTER,
    ALPHA,
    B_BETTER,
    EQUIVALENT,
    paired_test,
    verdicts,
)
from cosim.errors import InputError
from cosim.names import HEADLINE, TASK_INFO
from cosim.registry import did_you_mean

# Equivalence margins (absolute) when --margin does not give one: one point of a headline
# metric, two points of completion, a minute of simulated time; bytes have none by default.
DEFAULT_MARGINS: dict[str, float] = {**{t: 0.01 for t in HEADLINE}, "completion": 0.02,
                                     "time": 60.0}
MARGIN_KEYS = (*HEADLINE, "completion", "time", "bytes")

# Seeds a pair is matched on: the connectivity and data seeds the grid varies; training seeds
# nested within them are averaged first. A grid that varies only training seeds pairs on those.
UNIT_COLUMNS = ("seed", "data_seed")
NESTED_COLUMN = "training_seed"
METHOD = ("paired t over seeds (training seeds averaged within a connectivity and data seed), "
          "Holm across the pairs of a measure; equivalence: two one-sided t-tests against ±margin")


@dataclass(frozen=True)
class Measure:
    column: str  # in summary.parquet
    label: str  # as printed
    higher_is_better: bool
    margin_key: str  # which --margin applies
    task: str | None = None
    censored_column: str | None = None


def measures(columns: list[str]) -> list[Measure]:
    """The measures a summary holds, in the order they are reported."""
    return [m for m in _every_measure() if m.column in columns]


def check_measure_names(names: tuple[str, ...], option: str) -> None:
    """Each name is a measure's summary column, or a prefix of some (``area``: every task's
    area): a name that matches none would decide nothing, whatever the runs give."""
    every = _every_measure()
    columns = [m.column for m in every]
    families = list(dict.fromkeys(m.column[:m.column.index(f"_{m.task}")] if m.task else m.column
                                  for m in every))
    for name in names:
        if not any(c == name or c.startswith(f"{name}_") for c in columns):
            raise InputError(None, option, f"unknown measure {name!r}"
                             f"{did_you_mean(name, [*families, *columns])} (known: "
                             f"{', '.join(families)}; or one task's, as area_{next(iter(HEADLINE))})")


def _every_measure() -> list[Measure]:
    """Every measure a summary can hold, in the order they are reported."""
    out = [Measure("completion_rate", "completion rate", True, "completion"),
           Measure("bytes_up", "bytes up", False, "bytes")]
    for task, metric in HEADLINE.items():
        higher = TASK_INFO[task].higher_is_better
        out += [Measure(f"final_{task}", f"{task} {metric} final", higher, task, task),
                Measure(f"last{LAST_K}_{task}", f"{task} {metric} last-{LAST_K} mean", higher, task,
                        task),
                Measure(f"area_{task}", f"{task} {metric} area", higher, task, task),
                Measure(f"time_to_target_{task}_s", f"{task} time to target (s)", False, "time",
                        task, f"censored_target_{task}"),
                Measure(f"time_to_lookup_{task}_s", f"{task} time to beat lookup (s)", False,
                        "time", task, f"censored_lookup_{task}")]
    return out


def margins_with_defaults(given: Mapping[str, float] | None) -> dict[str, float]:
    return {**DEFAULT_MARGINS, **(given or {})}


def cell_label(policy: str, aggregation: str, aggregations: int) -> str:
    return policy if aggregations == 1 else f"{policy}/{aggregation}"


def pairs_table(summary: pd.DataFrame, margins: Mapping[str, float] | None = None,
                alpha: float = ALPHA, looks: int = 1) -> pd.DataFrame:
    """One row per (measure, pair of cells): A - B over the seeds both have."""
    margins = margins_with_defaults(margins)
    units = unit_columns(summary)
    cells = list(dict.fromkeys(zip(summary.policy, summary.aggregation, strict=True)))
    n_aggregations = len({c[1] for c in cells})
    rows = []
    for m in measures(list(summary.columns)):
        per_cell = {cell: _per_unit(summary, cell, m.column, units) for cell in cells}
        censored = {cell: _censored(summary, cell, m.censored_column, units) for cell in cells}
        pairs, diffs, tests = [], [], []
        for a, b in itertools.combinations(cells, 2):
            joined = pd.concat([per_cell[a], per_cell[b]], axis=1, join="inner").dropna()
            d = (joined.iloc[:, 0] - joined.iloc[:, 1]).to_numpy()
            pairs.append((a, b))
            diffs.append(d)
            tests.append(paired_test(d, 1 - alpha / max(1, looks)))
        margin = margins.get(m.margin_key)
        for (a, b), test, verdict in zip(pairs, tests, verdicts(
                tests, diffs, m.higher_is_better, margin, alpha, looks), strict=True):
            la, lb = (cell_label(*c, n_aggregations) for c in (a, b))
            rows.append({
                "measure": m.column, "label": m.label, "task": m.task, "a": la, "b": lb,
                "higher_is_better": m.higher_is_better, "seeds": test.n,
                "mean_a_minus_b": test.mean, "sd": test.sd, "ci_low": test.low,
                "ci_high": test.high, "ci_level": 1 - alpha / max(1, looks), "p": test.p,
                "p_holm": verdict.p_holm, "margin": margin if margin else math.nan,
                "p_equivalent_holm": verdict.p_equivalent_holm, "decision": verdict.decision,
                "verdict": verdict_text(verdict.decision, la, lb, margin, verdict.seeds_needed,
                                        test.n, test.mean),
                "seeds_needed": verdict.seeds_needed,
                "censored_a": censored[a], "censored_b": censored[b],
            })
    return pd.DataFrame(rows)


def unit_columns(summary: pd.DataFrame) -> list[str]:
    """What a pair is matched on (see UNIT_COLUMNS)."""
    varied = [c for c in UNIT_COLUMNS if c in summary and summary[c].nunique() > 1]
    if varied:
        return varied
    if NESTED_COLUMN in summary and summary[NESTED_COLUMN].nunique() > 1:
        return [NESTED_COLUMN]
    return ["seed"]


def _per_unit(summary: pd.DataFrame, cell: tuple[str, str], column: str, units: list[str]
              ) -> pd.Series:
    rows = summary[(summary.policy == cell[0]) & (summary.aggregation == cell[1])]
    return rows.groupby(units)[column].mean()  # nested training seeds: their mean


def _censored(summary: pd.DataFrame, cell: tuple[str, str], column: str | None,
              units: list[str]) -> int | None:
    """Seeds (units of pairing) in which a run of the cell never reached the level."""
    if column is None or column not in summary:
        return None
    rows = summary[(summary.policy == cell[0]) & (summary.aggregation == cell[1])]
    return int(rows[column].fillna(False).astype(bool).groupby([rows[u] for u in units]).any().sum())


def verdict_text(decision: str, a: str, b: str, margin: float | None, needed: int | None,
                 n: int, mean: float) -> str:
    if decision == A_BETTER:
        return f"{a} better"
    if decision == B_BETTER:
        return f"{b} better"
    if decision == EQUIVALENT:
        return f"equivalent within ±{margin:g}"
    if n == 0:
        return "not measured in these runs"
    if n < 2:
        return "undecided: needs at least 2 seeds"
    if needed is None:
        if mean == 0.0 or not math.isfinite(mean):
            return "undecided: no difference seen" + ("" if margin else "; give a --margin")
        return f"undecided: more than {10_000} seeds"
    return f"undecided: about {needed - n} more seed{'s' * (needed - n > 1)} would decide"
