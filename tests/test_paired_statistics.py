"""The compare's statistics against reference implementations (scipy, statsmodels, numpy) and
against simulated cases whose answer is known: planted differences, nulls, equivalence margins,
censored times, and adding seeds until decided."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cosim.analysis.curves import normalised_area, time_to_reach
from cosim.analysis.paired import (
    A_BETTER,
    B_BETTER,
    EQUIVALENT,
    UNDECIDED,
    holm,
    paired_test,
    seeds_to_decide,
    tost_p,
    verdicts,
)
from cosim.analysis.pairs import pairs_table

statsmodels = pytest.importorskip("statsmodels")
from statsmodels.stats.multitest import multipletests  # noqa: E402
from statsmodels.stats.weightstats import ttost_paired  # noqa: E402


def test_paired_t_matches_scipy_ttest_rel():
    rng = np.random.default_rng(3)
    for n in (2, 3, 5, 8, 20):
        a, b = rng.normal(0.3, 0.05, n), rng.normal(0.28, 0.05, n)
        ours = paired_test(a - b, 0.95)
        ref = stats.ttest_rel(a, b)
        low, high = ref.confidence_interval(0.95)
        assert ours.p == pytest.approx(ref.pvalue, rel=1e-9)
        assert (ours.low, ours.high) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))
        assert ours.sd == pytest.approx(np.std(a - b, ddof=1))


def test_tost_matches_statsmodels():
    rng = np.random.default_rng(4)
    for n, shift, margin in ((4, 0.0, 0.05), (6, 0.01, 0.02), (10, -0.03, 0.05), (3, 0.2, 0.1)):
        a = rng.normal(0.5, 0.03, n)
        b = a - shift - rng.normal(0, 0.02, n)
        p_ref, _, _ = ttost_paired(a, b, -margin, margin)
        assert tost_p(a - b, margin) == pytest.approx(p_ref, rel=1e-9)


def test_holm_matches_statsmodels():
    rng = np.random.default_rng(5)
    for m in (1, 2, 3, 6, 15):
        p = rng.uniform(0, 0.2, m)
        _, ref, _, _ = multipletests(p, method="holm")
        assert holm(p) == pytest.approx(ref.tolist(), rel=1e-12)
    assert math.isnan(holm([0.01, math.nan, 0.02])[1])
    assert holm([0.01, math.nan, 0.02])[0] == pytest.approx(0.02)  # a family of two, not three


def _summary(effects: dict[str, float], seeds: int, sd: float, rng, noise_seed_sd: float = 0.05
             ) -> pd.DataFrame:
    """A compare summary: each seed a shared level (the connectivity), each policy an effect."""
    rows = []
    for s in range(seeds):
        level = rng.normal(0.3, noise_seed_sd)
        for policy, effect in effects.items():
            rows.append({"policy": policy, "aggregation": "sync", "seed": s,
                         "final_seg3d": level + effect + rng.normal(0, sd),
                         "completion_rate": 0.8 + rng.normal(0, 0.01)})
    return pd.DataFrame(rows)


def test_a_planted_difference_is_found_with_its_sign():
    rng = np.random.default_rng(6)
    pairs = pairs_table(_summary({"good": 0.05, "bad": 0.0, "same": 0.0}, 8, 0.01, rng))
    seg = pairs[pairs.measure == "final_seg3d"].set_index(["a", "b"])
    assert seg.loc[("good", "bad"), "decision"] == A_BETTER
    assert seg.loc[("good", "same"), "decision"] == A_BETTER
    assert seg.loc[("bad", "same"), "decision"] != A_BETTER
    assert seg.loc[("good", "bad"), "ci_low"] > 0.02 and seg.loc[("good", "bad"), "ci_high"] < 0.08
    assert seg.loc[("good", "bad"), "verdict"] == "good better"


def test_lower_is_better_measures_turn_the_verdict():
    test = paired_test([10.0, 12.0, 11.0, 9.0, 10.5])  # A takes longer
    [v] = verdicts([test], [[10.0, 12.0, 11.0, 9.0, 10.5]], higher_is_better=False, margin=None)
    assert v.decision == B_BETTER


@pytest.mark.slow
def test_null_comparisons_rarely_call_a_winner():
    """>= 200 simulated grids of three equal policies: a false 'better' in at most 7 % of them."""
    rng = np.random.default_rng(7)
    false = 0
    trials = 300
    for i in range(trials):
        seeds = 3 + i % 6  # 3 to 8 seeds
        pairs = pairs_table(_summary({"p": 0.0, "q": 0.0, "r": 0.0}, seeds, 0.02, rng))
        decided = pairs[pairs.measure == "final_seg3d"].decision.isin([A_BETTER, B_BETTER])
        false += bool(decided.any())
    assert false / trials <= 0.07


def test_equivalence_is_declared_only_inside_the_margin():
    rng = np.random.default_rng(8)
    margin, inside, outside = 0.01, 0, 0
    for _ in range(300):
        d_in = rng.normal(0.0, 0.005, 8)  # a true difference of 0, well inside +-0.01
        d_edge = rng.normal(margin, 0.005, 8)  # a true difference exactly at the margin
        [v_in, v_edge] = verdicts([paired_test(d_in), paired_test(d_edge)], [d_in, d_edge], True,
                                  margin)
        inside += v_in.decision == EQUIVALENT
        outside += v_edge.decision == EQUIVALENT
    assert inside / 300 > 0.5  # equivalence is reachable at this spread
    assert outside / 300 <= 0.07  # and at the margin it is (almost) never declared


def test_undecided_says_how_many_seeds_would_decide():
    d = [0.02, -0.01, 0.03]  # mean 0.0133, sd 0.0208
    [v] = verdicts([paired_test(d)], [d], True, margin=None)
    assert v.decision == UNDECIDED
    needed = seeds_to_decide(np.mean(d), np.std(d, ddof=1), 0.05)
    assert v.seeds_needed == needed
    # the estimate is the smallest n the normal-approximation formula allows: check against it
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert needed >= math.ceil((z * np.std(d, ddof=1) / np.mean(d)) ** 2)
    # simulate: at that many seeds, a difference of this size and spread is found ~80 % of the time
    rng = np.random.default_rng(9)
    found = sum(paired_test(rng.normal(np.mean(d), np.std(d, ddof=1), needed)).p < 0.05
                for _ in range(400))
    assert 0.7 <= found / 400 <= 0.92


def test_a_never_reached_target_is_censored_not_dropped():
    times, horizon = np.array([0.0, 600.0, 1200.0, 1800.0]), 3600.0
    reached = time_to_reach(times, np.array([0.1, 0.2, 0.3, 0.4]), 0.25, horizon)
    assert (reached.time_s, reached.censored) == (pytest.approx(900.0), False)
    assert reached.time_s == pytest.approx(np.interp(0.25, [0.1, 0.2, 0.3, 0.4], times))
    never = time_to_reach(times, np.array([0.1, 0.2, 0.2, 0.2]), 0.25, horizon)
    assert (never.time_s, never.censored) == (horizon, True)
    rows = []
    for s in range(5):  # A reaches at ~900 s, B never: every seed counts, B is slower
        rows += [{"policy": "A", "aggregation": "sync", "seed": s,
                  "time_to_target_seg3d_s": 900.0 + 10 * s, "censored_target_seg3d": False},
                 {"policy": "B", "aggregation": "sync", "seed": s,
                  "time_to_target_seg3d_s": horizon, "censored_target_seg3d": True}]
    [row] = pairs_table(pd.DataFrame(rows)).to_dict("records")
    assert row["seeds"] == 5 and row["censored_b"] == 5 and row["censored_a"] == 0
    assert row["decision"] == A_BETTER


def test_normalised_area_is_the_time_average():
    times, values = np.array([0.0, 100.0, 300.0]), np.array([0.0, 0.5, 0.5])
    expected = (np.trapezoid(values, times) + 0.5 * 100.0) / 400.0
    assert normalised_area(times, values, 400.0) == pytest.approx(expected)


@pytest.mark.slow
def test_adding_seeds_until_decided_keeps_the_false_decision_rate():
    """Optional stopping on a null: look after every seed from 3 to 8, stop at the first
    'better'; with the level split over the looks, false decisions stay <= 7 %."""
    rng = np.random.default_rng(10)
    looks = 6
    false = 0
    trials = 300
    for _ in range(trials):
        d = rng.normal(0, 1, 8)
        for n in range(3, 9):
            [v] = verdicts([paired_test(d[:n], 1 - 0.05 / looks)], [d[:n]], True, None,
                           looks=looks)
            if v.decision in (A_BETTER, B_BETTER):
                false += 1
                break
    assert false / trials <= 0.07
