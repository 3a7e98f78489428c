"""Background users per cell follow the M/M/inf process: its stationary mean (lambda T) and its
autocorrelation exp(-tau / T) are the closed forms of queueing theory, not cosim's numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cosim.radio.background import BackgroundLoad
from cosim.scenario import BackgroundLoadConfig

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop


def test_background_users_have_the_m_m_inf_mean_and_autocorrelation():
    load = BackgroundLoad(BackgroundLoadConfig(mean_users_down=4.0, mean_users_up=1.5, holding_s=30.0),
                          n_cells=50, rng=np.random.default_rng(0))
    series = []
    for _ in range(3000):
        load.advance(1.0)
        series.append(load.users.copy())
    x = np.array(series, dtype=float)  # (T, 2, C)
    assert abs(x[:, 0].mean() - 4.0) < 0.1 and abs(x[:, 1].mean() - 1.5) < 0.05
    assert abs(x[:, 0].var() - 4.0) < 0.3, "Poisson: variance = mean"
    z = x[:, 0] - x[:, 0].mean()
    lag = 30
    rho = (z[:-lag] * z[lag:]).mean() / z.var()
    assert abs(rho - math.exp(-lag / 30.0)) < 0.05
    assert abs(load.summary()["mean_users_down"] - 4.0) < 0.1
