"""Seeds until the answer is clear: a compare that adds one seed at a time (a new recording and
its replays) until every pair of interest is decided on the chosen measures, the seed limit is
reached, or the time budget would be overrun by one more seed.

Looking at the data after every seed and stopping when it decides would inflate the false-decision
rate; the pairs are tested at ``alpha / looks`` (Bonferroni over the looks the plan allows,
cosim.analysis.paired), which keeps it at or below ``alpha``. The time-to-target levels are fixed
at the first look, so a measure means the same at every look.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from cosim.analysis.paired import UNDECIDED
from cosim.analysis.pairs import check_measure_names
from cosim.errors import InputError
from cosim.names import COMPARE_DEFAULTS

DEFAULT_MEASURES = ("completion_rate", "area", "time_to_target")
STOP_DECIDED, STOP_MAX_SEEDS, STOP_BUDGET = "decided", "max_seeds", "budget"


@dataclass(frozen=True)
class AutoSeeds:
    min_seeds: int = COMPARE_DEFAULTS.min_seeds
    max_seeds: int = COMPARE_DEFAULTS.max_seeds
    budget_min: float | None = None  # wall minutes; None: no budget
    decide: tuple[str, ...] = ()  # the cells whose pairs must be decided (none: every pair)
    measures: tuple[str, ...] = DEFAULT_MEASURES  # summary columns, or their prefixes

    def __post_init__(self) -> None:
        for name, value in (("--min-seeds", self.min_seeds), ("--max-seeds", self.max_seeds)):
            if not isinstance(value, int) or isinstance(value, bool):  # the Python API's too
                raise InputError(None, name, f"{value!r}: a whole number of seeds")
        if self.budget_min is not None and (not isinstance(self.budget_min, int | float)
                                            or isinstance(self.budget_min, bool)
                                            or not math.isfinite(self.budget_min)):
            raise InputError(None, "--budget-min", f"{self.budget_min!r}: a number of minutes")
        if self.min_seeds < 2:
            raise InputError(None, "--min-seeds", "a paired test needs at least 2 seeds")
        if self.max_seeds < self.min_seeds:
            raise InputError(None, "--max-seeds", f"must be at least --min-seeds "
                             f"({self.min_seeds}), got {self.max_seeds}")
        if self.budget_min is not None and not self.budget_min > 0:
            raise InputError(None, "--budget-min", "must be a positive number of minutes")
        check_measure_names(self.measures, "--decide-on")

    def check_cells(self, policies: tuple[str, ...], aggregations: tuple[str, ...]) -> None:
        """--decide names cells of the grid, as the pairs table labels them."""
        labels = ([*policies] if len(aggregations) == 1
                  else [f"{p}/{a}" for p in policies for a in aggregations])
        unknown = [c for c in self.decide if c not in labels]
        if unknown:
            raise InputError(None, "--decide", f"{unknown[0]!r} is not a cell of the grid "
                             f"(cells: {', '.join(labels)})")
        if len(self.decide) == 1:
            raise InputError(None, "--decide", "name at least two cells: a pair")

    @property
    def looks(self) -> int:
        """How often the data may be looked at: after each seed from min_seeds to max_seeds."""
        return self.max_seeds - self.min_seeds + 1

    def settings(self) -> dict[str, object]:
        return {"min_seeds": self.min_seeds, "max_seeds": self.max_seeds,
                "budget_min": self.budget_min, "decide": list(self.decide),
                "measures": list(self.measures)}


def of_interest(pairs: pd.DataFrame, plan: AutoSeeds) -> pd.DataFrame:
    """The rows of the pairs table the plan must decide."""
    rows = pairs[pairs.seeds > 0]  # measures the runs do not have (no target) cannot decide
    keep = rows.measure.map(lambda m: any(m == x or m.startswith(f"{x}_") for x in plan.measures))
    rows = rows[keep]
    if plan.decide:
        rows = rows[rows.a.isin(plan.decide) & rows.b.isin(plan.decide)]
    return rows


def stop_reason(pairs: pd.DataFrame, plan: AutoSeeds, seeds: int, elapsed_s: float,
                per_seed_s: float) -> str | None:
    """Why to stop after ``seeds`` seeds, or None to add one more."""
    rows = of_interest(pairs, plan)
    if len(rows) and not (rows.decision == UNDECIDED).any():
        return STOP_DECIDED
    if seeds >= plan.max_seeds:
        return STOP_MAX_SEEDS
    if plan.budget_min is not None and elapsed_s + per_seed_s > plan.budget_min * 60:
        return STOP_BUDGET
    return None


def describe(reason: str, seeds: int, pairs: pd.DataFrame, plan: AutoSeeds) -> str:
    rows = of_interest(pairs, plan)
    undecided = int((rows.decision == UNDECIDED).sum())
    if reason == STOP_DECIDED:
        return f"every pair of interest decided after {seeds} seeds ({len(rows)} comparisons)"
    what = (f"the limit of {plan.max_seeds} seeds reached" if reason == STOP_MAX_SEEDS
            else f"one more seed would overrun the budget of {plan.budget_min} min")
    return f"{what}; {undecided} of {len(rows)} comparisons still undecided"
