"""What one learning curve (a headline metric over simulated time) says, in numbers a paired
comparison can use: the final value, the mean of the last evaluations, the normalised area under
the curve and the time to reach a level.

The time to reach a level is interpolated linearly between the two evaluations that straddle it,
so it does not move in steps of the evaluation period. A level never reached is *right-censored*
at the run's end: the time is the horizon and a flag says so, which is the restricted-time
convention of survival analysis (the paired difference of restricted times is defined for every
seed, so a policy that never gets there is not dropped from the comparison, it is counted as
reaching it no sooner than the end).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LAST_K = 3  # evaluations averaged in "last-k mean"


def last_k_mean(values: np.ndarray, k: int = LAST_K) -> float:
    """Mean of the last ``k`` evaluations (fewer if the run has fewer): the final value with less
    of one evaluation's noise."""
    return float(np.mean(values[-k:])) if len(values) else math.nan


def normalised_area(times: np.ndarray, values: np.ndarray, horizon: float) -> float:
    """Area under the curve from the first evaluation to ``horizon``, divided by that span: the
    metric's time average (trapezoids between evaluations, the last value held to the horizon).
    A model that learns sooner has the larger area at the same final value."""
    if len(values) == 0:
        return math.nan
    t = np.asarray(times, dtype=float)
    v = np.asarray(values, dtype=float)
    end = max(float(horizon), float(t[-1]))
    if end <= t[0]:
        return float(v[-1])
    area = float(np.sum((t[1:] - t[:-1]) * (v[1:] + v[:-1]) / 2)) + (end - t[-1]) * float(v[-1])
    return area / (end - float(t[0]))


@dataclass(frozen=True)
class Reached:
    time_s: float  # when the curve first reaches the level, or the horizon if it never does
    censored: bool  # never reached before the horizon


def time_to_reach(times: np.ndarray, values: np.ndarray, level: float, horizon: float,
                  higher_is_better: bool = True) -> Reached:
    """First simulated time the curve reaches ``level``, linearly interpolated between the
    evaluations before and at the crossing; right-censored at ``horizon`` if never."""
    t = np.asarray(times, dtype=float)
    v = np.asarray(values, dtype=float)
    sign = 1.0 if higher_is_better else -1.0
    ok = np.isfinite(v) & (sign * v >= sign * level)
    hit = np.flatnonzero(ok)
    if not math.isfinite(level) or len(hit) == 0:
        return Reached(float(max(horizon, t[-1] if len(t) else horizon)), True)
    i = int(hit[0])
    if i == 0 or not math.isfinite(v[i - 1]) or v[i] == v[i - 1]:
        return Reached(float(t[i]), False)
    share = (level - v[i - 1]) / (v[i] - v[i - 1])
    return Reached(float(t[i - 1] + share * (t[i] - t[i - 1])), False)
