"""38.901 path loss against values computed by hand from the Table 7.4.1-1 formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cosim.radio.pathloss import (
    free_space_db,
    los_probability,
    path_loss_db,
    thermal_noise_dbm,
)

C = 299_792_458.0


def _d3d(d2d, h_bs, h_ut):
    return math.sqrt(d2d**2 + (h_bs - h_ut) ** 2)


def _dbp(fc, h_bs, h_ut):  # 4 h'_BS h'_UT fc / c, h_E = 1 m
    return 4 * (h_bs - 1) * (h_ut - 1) * fc * 1e9 / C


@pytest.mark.parametrize("d2d", [60.0, 400.0, 900.0, 2500.0])
def test_uma_los_both_sides_of_breakpoint(d2d):
    fc, hb, hu = 3.5, 25.0, 1.5
    dbp = _dbp(fc, hb, hu)  # ~560 m
    d3 = _d3d(d2d, hb, hu)
    if d2d <= dbp:
        expected = 28.0 + 22 * math.log10(d3) + 20 * math.log10(fc)
    else:
        expected = (28.0 + 40 * math.log10(d3) + 20 * math.log10(fc)
                    - 9 * math.log10(dbp**2 + (hb - hu) ** 2))
    assert path_loss_db("uma", True, d2d, fc, hb, hu) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("d2d", [60.0, 400.0, 900.0, 2500.0])
def test_uma_nlos_is_max_of_los_and_nlos_prime(d2d):
    fc, hb, hu = 3.5, 25.0, 1.5
    los = path_loss_db("uma", True, d2d, fc, hb, hu)
    prime = 13.54 + 39.08 * math.log10(_d3d(d2d, hb, hu)) + 20 * math.log10(fc) - 0.6 * (hu - 1.5)
    assert path_loss_db("uma", False, d2d, fc, hb, hu) == pytest.approx(max(los, prime), abs=1e-9)
    assert prime > los  # NLOS is the larger term at these distances


@pytest.mark.parametrize("d2d", [30.0, 150.0, 400.0, 1200.0])
def test_umi_los_and_nlos(d2d):
    fc, hb, hu = 3.7, 10.0, 1.5
    dbp = _dbp(fc, hb, hu)  # ~224 m
    d3 = _d3d(d2d, hb, hu)
    if d2d <= dbp:
        los = 32.4 + 21 * math.log10(d3) + 20 * math.log10(fc)
    else:
        los = (32.4 + 40 * math.log10(d3) + 20 * math.log10(fc)
               - 9.5 * math.log10(dbp**2 + (hb - hu) ** 2))
    nlos = max(los, 35.3 * math.log10(d3) + 22.4 + 21.3 * math.log10(fc) - 0.3 * (hu - 1.5))
    assert path_loss_db("umi", True, d2d, fc, hb, hu) == pytest.approx(los, abs=1e-9)
    assert path_loss_db("umi", False, d2d, fc, hb, hu) == pytest.approx(nlos, abs=1e-9)


def test_breakpoint_is_continuous_and_vectorised():
    fc, hb, hu = 3.5, 25.0, 1.5
    dbp = _dbp(fc, hb, hu)
    below, above = path_loss_db("uma", True, np.array([dbp - 1e-6, dbp + 1e-6]), fc, hb, hu)
    assert above - below == pytest.approx(0.0, abs=1e-3)
    d = np.linspace(20, 3000, 50).astype(np.float32)
    los = np.arange(50) % 2 == 0
    f32 = np.float32
    out = path_loss_db("umi", los, d, f32(fc), f32(10.0), f32(hu))
    assert out.dtype == np.float32 and out.shape == (50,)
    assert np.all(np.diff(path_loss_db("uma", False, d, fc, hb, hu)) > 0)


def test_los_probability_table_7_4_2_1():
    assert los_probability("umi", 10.0) == 1.0
    d = 100.0
    assert los_probability("umi", d) == pytest.approx(18 / d + math.exp(-d / 36) * (1 - 18 / d))
    assert los_probability("uma", d) == pytest.approx(18 / d + math.exp(-d / 63) * (1 - 18 / d))


def test_free_space_and_noise():
    # Friis at 1 km, 3.5 GHz: 20 log10(4 pi d f / c)
    expected = 20 * math.log10(4 * math.pi * 1000 * 3.5e9 / C)
    assert free_space_db(1000.0, 3.5) == pytest.approx(expected, abs=0.01)
    assert thermal_noise_dbm(20e6, 9.0) == pytest.approx(-174 + 10 * math.log10(20e6) + 9)
