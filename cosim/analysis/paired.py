"""Paired statistics for a compare: is policy A better than B on a measure, by how much, how sure.

Every policy of a compare replays the same recorded connectivity per seed, so the unit of
comparison is the per-seed *difference* A - B, not two independent samples. For each measure and
pair of grid cells this module gives the mean difference, a Student-t confidence interval on it,
the two-sided paired t-test's p-value Holm-corrected across the pairs shown, an equivalence test
(two one-sided t-tests, TOST, against ``±margin``, Holm-corrected the same way) and a verdict. When
neither test decides, it estimates how many seeds would at the observed spread (the usual
normal-approximation sample size for power ``POWER``).

Training seeds nested inside a connectivity seed are averaged first (the unit stays the recorded
connectivity): the standard analysis of a nested design with equal replication.

With ``looks`` > 1 (a compare that adds seeds until decided looks at the data after every seed),
the level is split evenly over the looks (Bonferroni), which keeps the chance of a false decision
at or below ``alpha`` however many times the data are looked at.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05
POWER = 0.8
MAX_SEEDS = 10_000  # "more seeds than this" is reported as no finite number

A_BETTER, B_BETTER, EQUIVALENT, UNDECIDED = "a_better", "b_better", "equivalent", "undecided"


@dataclass(frozen=True)
class PairedTest:
    """The paired t statistics of one measure's differences A - B."""

    n: int
    mean: float
    sd: float  # sample standard deviation of the differences (ddof = 1)
    low: float  # confidence interval on the mean difference
    high: float
    p: float  # two-sided paired t-test of "no difference"; NaN with fewer than 2 seeds


def paired_test(diffs: Sequence[float], level: float = 1 - ALPHA) -> PairedTest:
    """Mean difference, its Student-t interval at ``level`` and the two-sided p-value."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n == 0:
        return PairedTest(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    mean = float(d.mean())
    if n < 2:
        return PairedTest(1, mean, math.nan, math.nan, math.nan, math.nan)
    sd = float(d.std(ddof=1))
    if sd == 0.0:  # every seed gave the same difference: no spread to test against
        return PairedTest(n, mean, 0.0, mean, mean, 0.0 if mean != 0.0 else 1.0)
    se = sd / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(mean) / se, n - 1))
    return PairedTest(n, mean, sd, mean - half, mean + half, p)


def tost_p(diffs: Sequence[float], margin: float) -> float:
    """p-value of two one-sided t-tests that the mean difference lies inside (-margin, margin):
    the larger of the two one-sided p-values. NaN with fewer than 2 seeds or no margin."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n < 2 or not margin > 0:
        return math.nan
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0.0:
        return 0.0 if abs(mean) < margin else 1.0
    se = sd / math.sqrt(n)
    p_low = stats.t.sf((mean + margin) / se, n - 1)  # H0: mean <= -margin
    p_high = stats.t.cdf((mean - margin) / se, n - 1)  # H0: mean >= +margin
    return float(max(p_low, p_high))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment; NaN p-values stay NaN and do not count in the family."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), math.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    running = 0.0
    for rank, i in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def seeds_to_decide(mean: float, sd: float, alpha: float, margin: float | None = None,
                    power: float = POWER) -> int | None:
    """Seeds (pairs) that would decide at this spread with the given power: the fewer of what a
    difference of ``mean`` needs and, with a margin wider than ``|mean|``, what equivalence needs.
    None when neither can (no difference seen and no margin to be inside of)."""
    if not (math.isfinite(mean) and math.isfinite(sd)):
        return None
    sizes: list[int | None] = []
    if mean != 0.0:
        sizes.append(_sample_size(abs(mean), sd, alpha / 2, power))
    if margin is not None and margin > abs(mean):
        sizes.append(_sample_size(margin - abs(mean), sd, alpha, power))
    needs = [n for n in sizes if n is not None]
    return min(needs) if needs else None


def _sample_size(effect: float, sd: float, tail: float, power: float) -> int | None:
    """Smallest n with (t_{1-tail} + t_{power}) * sd / sqrt(n) <= effect, df = n - 1."""
    if sd == 0.0:
        return 2
    for first, last in ((2, 100), (101, MAX_SEEDS)):  # most answers are small: look there first
        n = np.arange(first, last + 1)
        reach = (stats.t.ppf(1 - tail, n - 1) + stats.t.ppf(power, n - 1)) * sd / np.sqrt(n)
        enough = np.flatnonzero(reach <= effect)
        if len(enough):
            return int(n[enough[0]])
    return None


@dataclass(frozen=True)
class Verdict:
    decision: str  # A_BETTER, B_BETTER, EQUIVALENT or UNDECIDED
    p_holm: float
    p_equivalent_holm: float
    seeds_needed: int | None  # total seeds that would decide (undecided only)


def verdicts(tests: Sequence[PairedTest], diffs: Sequence[Sequence[float]],
             higher_is_better: bool, margin: float | None, alpha: float = ALPHA,
             looks: int = 1) -> list[Verdict]:
    """One family of pairs on one measure: Holm across the family, then a verdict per pair."""
    level = alpha / max(1, looks)
    p_holm = holm([t.p for t in tests])
    p_equiv = holm([tost_p(d, margin) if margin else math.nan for d in diffs])
    out = []
    for test, ph, pe in zip(tests, p_holm, p_equiv, strict=True):
        needed = None
        if ph < level:
            a_ahead = (test.mean > 0) == higher_is_better
            decision = A_BETTER if a_ahead else B_BETTER
        elif pe < level:
            decision = EQUIVALENT
        else:
            decision = UNDECIDED
            needed = seeds_to_decide(test.mean, test.sd, level, margin)
            if needed is not None:
                needed = max(needed, test.n + 1)
        out.append(Verdict(decision, ph, pe, needed))
    return out
