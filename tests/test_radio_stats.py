"""The radio statistics of run.json from hand-made events and motion."""

from __future__ import annotations

import numpy as np
import pytest

from cosim.radio.handoff import LinkEvent
from cosim.radio.stats import RadioStats


def test_rates_returns_and_quantiles_by_hand():
    st = RadioStats()
    for _ in range(60):  # one minute: two vehicles at 10 m/s, one parked
        st.motion(np.array([10.0, 10.0, 0.0]), np.array([10.0, 10.0, 0.0]), 1.0)
    st.event(LinkEvent(0, "handoff", 0, 1, 0.05, False))  # A -> B
    st.event(LinkEvent(0, "handoff", 1, 0, 0.05, False, return_s=1.5))  # B -> A after 1.5 s
    st.event(LinkEvent(1, "handoff", 2, 3, 0.05, False, return_s=np.inf))
    st.event(LinkEvent(1, "rlf", 3, -1, 0.0, False))
    st.sinr(np.array([np.nan, *np.arange(-10.0, 30.0, 0.1)]))
    out = st.summary([2.0, 4.0, 6.0, 8.0, 10.0], sim_s=60.0)
    assert out["km_driven"] == pytest.approx(1.2)  # 2 x 600 m
    assert out["handoffs_per_km"] == pytest.approx(3 / 1.2)
    assert out["moving_vehicle_minutes"] == pytest.approx(2.0)
    assert out["handoffs_per_moving_vehicle_minute"] == pytest.approx(1.5)
    assert out["returns_within_s"] == {"1": 0, "2": 1, "5": 1}
    assert out["return_share_within_5s"] == pytest.approx(1 / 3)
    assert out["rlf_per_hour"] == pytest.approx(60.0)
    assert out["rlf_per_vehicle_hour"] == pytest.approx(1 / (3 / 60))
    assert out["time_of_stay_s"]["p50"] == pytest.approx(6.0) and out["time_of_stay_s"]["n"] == 5
    assert out["sinr_db"]["p50"] == pytest.approx(10.0, abs=0.3)  # bins of 0.25 dB
    assert out["sinr_db"]["p95"] <= out["sinr_db"]["max"] == pytest.approx(29.9)
