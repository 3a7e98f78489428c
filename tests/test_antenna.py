"""Sector antenna gain against 3GPP TR 38.901 Table 7.3-1, worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from cosim.radio.antenna import THREE_SECTOR_BEARINGS_DEG, attenuation_db, element_attenuation_db


@pytest.mark.parametrize(("phi", "theta", "tilt", "expected"), [
    (0.0, 90.0, 0.0, 0.0),  # boresight
    (32.5, 90.0, 0.0, -3.0),  # half the 65 degree beamwidth: 12 (1/2)^2
    (65.0, 90.0, 0.0, -12.0),
    (90.0, 90.0, 0.0, -12.0 * (90 / 65) ** 2),  # -23.0
    (180.0, 90.0, 0.0, -30.0),  # front-to-back ratio
    (0.0, 90.0 + 12.0 + 32.5, 12.0, -3.0),  # vertical, around the tilted boresight
    (0.0, 180.0, 0.0, -12.0 * (90 / 65) ** 2),  # straight down, untilted: 90 degrees off
    (65.0, 90.0 + 32.5, 0.0, -15.0),  # A_H + A_V
    (120.0, 170.0, 0.0, -30.0),  # the sum is capped at A_max
])
def test_element_pattern_of_table_7_3_1(phi, theta, tilt, expected):
    assert element_attenuation_db(np.array(phi), np.array(theta), np.array(tilt)) == pytest.approx(expected)


def test_a_vehicle_in_front_of_a_sector_sees_its_peak_and_one_beside_it_does_not():
    az = np.array([90.0, np.nan])  # a sector facing east, and an omnidirectional cell
    tilt = np.array([0.0, 0.0])
    dx, dy = np.array([[1000.0], [0.0]]), np.array([[0.0], [1000.0]])  # due east, due north
    d2d = np.hypot(dx, dy)
    a = attenuation_db(dx, dy, d2d, np.array([0.0, 0.0]), az, tilt)
    assert a[0, 0] == pytest.approx(0.0)  # east: boresight, at the horizon
    assert a[1, 0] == pytest.approx(-12.0 * (90 / 65) ** 2)  # north: 90 degrees off
    assert (a[:, 1] == 0).all()  # omni


def test_downtilt_points_the_beam_below_the_horizon():
    # a 25 m mast, UE at 1.5 m: 23.5 m down; at 111.6 m the UE is 11.9 degrees below the horizon
    dx, dy = np.array([111.6]), np.array([0.0])
    a = attenuation_db(dx[:, None], dy[:, None], dx[:, None], np.array([23.5]), np.array([90.0]),
                       np.array([12.0]))
    assert a[0, 0] == pytest.approx(-12 * (0.1 / 65) ** 2, abs=1e-3)  # on the tilted boresight


def test_three_sectors_cover_the_circle():
    bearings = np.arange(0.0, 360.0, 5.0)
    dx, dy = np.sin(np.radians(bearings))[:, None], np.cos(np.radians(bearings))[:, None]
    az = np.array(THREE_SECTOR_BEARINGS_DEG)
    a = attenuation_db(dx * 300, dy * 300, np.full_like(dx, 300.0), np.zeros(3), az, np.zeros(3))
    best = a.max(axis=1)
    # the worst direction is half-way between two sectors, 60 degrees off both: -12 (60/65)^2
    assert best.min() == pytest.approx(-12 * (60 / 65) ** 2, abs=0.01)
