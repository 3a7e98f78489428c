"""Link-window predictors: the oracle reads the recorded future; history uses only the past."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cosim.radio.prediction import (
    HistoryPredictor,
    OraclePredictor,
    distance_to_exit,
    mean_residual_life,
)


def test_oracle_reads_the_recorded_windows(tmp_path):
    table = pa.table({"vehicle": ["a", "a", "a", "b"], "cell": [-1, 0, -1, -1],
                      "start": [10.0, 10.0, 50.0, 0.0], "end": [30.0, 30.0, 80.0, 5.0]})
    pq.write_table(table, tmp_path / "w.parquet")
    oracle = OraclePredictor(tmp_path / "w.parquet")
    assert oracle.remaining_s("a", 12.5) == pytest.approx(17.5)
    assert oracle.remaining_s("a", 40.0) == 0.0  # between windows
    assert oracle.remaining_s("a", 50.0) == pytest.approx(30.0)
    assert oracle.remaining_s("b", 6.0) == 0.0 and oracle.remaining_s("zz", 1.0) == 0.0


def test_mean_residual_life():
    d = np.array([10.0, 20.0, 60.0])
    assert mean_residual_life(d, 0.0, 99.0) == pytest.approx(30.0)
    assert mean_residual_life(d, 15.0, 99.0) == pytest.approx(40.0 - 15.0)
    assert mean_residual_life(d, 70.0, 99.0) == 99.0


def test_distance_to_exit_follows_the_heading():
    bounds = (0.0, 0.0, 1000.0, 500.0)
    assert distance_to_exit(100, 100, 90.0, bounds) == pytest.approx(900.0)  # east
    assert distance_to_exit(100, 100, 0.0, bounds) == pytest.approx(400.0)  # north
    assert distance_to_exit(100, 100, 225.0, bounds) == pytest.approx(100 * math.sqrt(2))


def test_history_uses_only_windows_that_already_ended():
    completed = [(50.0, 40.0), (200.0, 400.0)]  # the second ends in the future
    predictor = HistoryPredictor(
        completed=lambda: completed, connected_since=lambda v: 90.0,
        kinematics=lambda v: (500.0, 250.0, 0.0, 90.0), bounds=(0, 0, 1000, 500), prior_s=60.0)
    # at t = 100 only the 40 s window is known; the vehicle has been connected 10 s; parked
    assert predictor.remaining_s("a", 100.0) == pytest.approx(30.0)
    # moving east at 10 m/s: 50 s to leave the network bounds
    predictor.kinematics = lambda v: (500.0, 250.0, 10.0, 90.0)
    assert predictor.remaining_s("a", 100.0) == pytest.approx(30.0)
    predictor.kinematics = lambda v: (900.0, 250.0, 10.0, 90.0)
    assert predictor.remaining_s("a", 100.0) == pytest.approx(10.0)
    predictor.connected_since = lambda v: None
    assert predictor.remaining_s("a", 100.0) == 0.0
