"""TR 37.885 V2V large-scale channel against ns-3's test vectors and values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cosim.radio.v2v_pathloss import (
    LOS,
    NLOS,
    NLOSV,
    SHADOW_DCOR_M,
    SHADOW_SIGMA_DB,
    nlosv_blockage_db,
    shadow_sigma_db,
    sidelink_rate_bps,
    sidelink_snr_db,
    v2v_los_probability,
    v2v_path_loss_db,
    v2v_state_from_uniform,
    v2v_state_probabilities,
)

# ns-3-dev src/propagation/test/three-gpp-propagation-loss-model-test-suite.cc,
# ThreeGppV2v{Urban,Highway}PropagationLossModelTestCase: both nodes at z = 1.6 m (so d3D = d2D),
# f = 5 GHz, Pt = 0 dBm, shadowing off, expected Pr in dBm (the loss is -Pr). "LOS" there means
# LOS/NLOSv without the blockage term; ns-3 checks to within 5e-2 dB.
NS3_V2V = [
    # (environment, distance m, LOS/NLOSv (True) or NLOS (False), expected Pr dBm)
    ("urban", 10.0, True, -68.1913),
    ("urban", 100.0, True, -84.8913),
    ("urban", 1000.0, True, -101.5913),
    ("urban", 10.0, False, -80.0605),
    ("urban", 100.0, False, -110.0605),
    ("urban", 1000.0, False, -140.0605),
    ("highway", 10.0, True, -66.3794),
    ("highway", 100.0, True, -86.3794),
    ("highway", 1000.0, True, -106.3794),
    ("highway", 10.0, False, -80.0605),
    ("highway", 100.0, False, -110.0605),
    ("highway", 1000.0, False, -140.0605),
]


@pytest.mark.parametrize(("env", "d", "los", "pr_dbm"), NS3_V2V)
def test_path_loss_matches_ns3_test_vectors(env, d, los, pr_dbm):
    states = (LOS, NLOSV) if los else (NLOS,)
    for state in states:
        assert v2v_path_loss_db(env, state, d, 5.0) == pytest.approx(-pr_dbm, abs=1e-3)


def test_path_loss_by_hand():
    # highway LOS, 200 m, 5.9 GHz: 32.4 + 20*log10(200) + 20*log10(5.9)
    #   = 32.4 + 20*2.3010300 + 20*0.7708520 = 32.4 + 46.020600 + 15.417040 = 93.837640
    assert v2v_path_loss_db("highway", LOS, 200.0, 5.9) == pytest.approx(93.837640, abs=1e-5)
    # urban LOS, 50 m, 5.9 GHz: 38.77 + 16.7*log10(50) + 18.2*log10(5.9)
    #   = 38.77 + 16.7*1.6989700 + 18.2*0.7708520 = 38.77 + 28.372799 + 14.029507 = 81.172306
    assert v2v_path_loss_db("urban", LOS, 50.0, 5.9) == pytest.approx(81.172306, abs=1e-5)
    # urban NLOS, 300 m, 6 GHz: 36.85 + 30*log10(300) + 18.9*log10(6)
    #   = 36.85 + 30*2.4771213 + 18.9*0.7781513 = 36.85 + 74.313638 + 14.707059 = 125.870696
    assert v2v_path_loss_db("urban", NLOS, 300.0, 6.0) == pytest.approx(125.870696, abs=1e-5)


def test_minimum_distance_and_vectorised_states():
    # below 3 m the loss is the loss at 3 m: 32.4 + 20*log10(3) + 20*log10(5.9)
    #   = 32.4 + 9.542425 + 15.417040 = 57.359465
    near = v2v_path_loss_db("highway", LOS, np.array([0.0, 1.0, 3.0]), 5.9)
    assert near == pytest.approx([57.359465] * 3, abs=1e-5)
    d = np.array([20.0, 20.0, 20.0, 400.0], dtype=np.float32)
    s = np.array([LOS, NLOSV, NLOS, NLOS])
    out = v2v_path_loss_db("urban", s, d, np.float32(5.9))
    assert out.dtype == np.float32 and out.shape == (4,)
    assert out[0] == out[1] < out[2] < out[3]
    # NLOS is 30 dB/decade, LOS 16.7 dB/decade: 20 m -> 200 m adds exactly those
    decade = v2v_path_loss_db("urban", np.array([LOS, NLOS]), 200.0, 5.9) - v2v_path_loss_db(
        "urban", np.array([LOS, NLOS]), 20.0, 5.9)
    assert decade == pytest.approx([16.7, 30.0], abs=1e-9)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="environment"):
        v2v_path_loss_db("rural", LOS, 100.0, 5.9)
    with pytest.raises(ValueError, match="state"):
        v2v_path_loss_db("urban", 3, 100.0, 5.9)
    with pytest.raises(ValueError, match="environment"):
        v2v_los_probability("freeway", 100.0)


def test_blockage_cases_by_hand():
    h = 1.5  # both antennas
    # blocker taller than both antennas (a 3 m truck), d <= 544 m: max(0, 9 + 4.5 z)
    assert nlosv_blockage_db(1.0, 100.0, h, h, 3.0) == pytest.approx(13.5)  # 9 + 4.5
    assert nlosv_blockage_db(-3.0, 100.0, h, h, 3.0) == 0.0  # 9 - 13.5 < 0 -> 0
    # at 1000 m the mean grows by 15*log10(1000) - 41 = 45 - 41 = 4 dB: 13 - 4.5 = 8.5
    assert nlosv_blockage_db(-1.0, 1000.0, h, h, 3.0) == pytest.approx(8.5)
    # blocker between the antennas (1.6 m car, antennas 1.5 m and 2.0 m): max(0, 5 + 4 z)
    assert nlosv_blockage_db(1.0, 100.0, 1.5, 2.0, 1.6) == pytest.approx(9.0)
    assert nlosv_blockage_db(-2.0, 100.0, 1.5, 2.0, 1.6) == 0.0  # 5 - 8 < 0 -> 0
    assert nlosv_blockage_db(0.5, 1000.0, 1.5, 2.0, 1.6) == pytest.approx(11.0)  # 5 + 4 + 2
    # equal heights are "otherwise" too (ns-3's test geometry: antennas and car all at 1.6 m)
    assert nlosv_blockage_db(0.0, 100.0, 1.6, 1.6, 1.6) == pytest.approx(5.0)
    # both antennas above the blocker: no loss whatever the draw
    assert nlosv_blockage_db(3.0, 100.0, 1.6, 2.0, 1.5) == 0.0
    # vectorised over blockers
    out = nlosv_blockage_db(np.zeros(3), 100.0, h, h, np.array([1.0, 1.5, 3.0]))
    assert out == pytest.approx([0.0, 5.0, 9.0])


def test_blockage_never_negative():
    z = np.random.default_rng(7).standard_normal(20_000) * 3.0
    d = np.geomspace(1.0, 3000.0, z.size)
    hb = np.where(np.arange(z.size) % 3 == 0, 3.0, 1.6)
    out = nlosv_blockage_db(z, d, 1.5, 1.5, hb)
    assert out.min() == 0.0 and np.all(out >= 0.0)
    assert np.mean(out > 0.0) > 0.5


def test_shadowing_tables():
    # Table 6.2.1-1 (ns-3 GetShadowingStd): 3 dB LOS and NLOSv, 4 dB NLOS
    assert SHADOW_SIGMA_DB["urban"] == (3.0, 3.0, 4.0)
    assert SHADOW_SIGMA_DB["highway"] == (3.0, 3.0, 4.0)
    # Table 6.2.3-1 (ns-3 GetShadowingCorrelationDistance): 10 m LOS, 13 m NLOSv and NLOS
    assert SHADOW_DCOR_M["urban"] == (10.0, 13.0, 13.0)
    assert shadow_sigma_db("urban", np.array([NLOS, LOS, NLOSV])) == pytest.approx([4.0, 3.0, 3.0])


def test_los_probability_published_points():
    # urban: 1.05*exp(-0.0114*d); 1 up to ln(1.05)/0.0114 = 4.27984 m
    assert v2v_los_probability("urban", [0.0, 4.27]) == pytest.approx([1.0, 1.0])
    assert v2v_los_probability("urban", 4.3) < 1.0
    # 100 m: 1.05*exp(-1.14) = 1.05*0.3198190 = 0.3358100; 300 m: 1.05*exp(-3.42) = 0.0343481
    assert v2v_los_probability("urban", [100.0, 300.0]) == pytest.approx([0.3358100, 0.0343481], abs=1e-6)
    # highway, d <= 475 m: 2.1013e-6 d^2 - 0.002 d + 1.0193, capped at 1 (up to 9.7499 m)
    #   100 m: 0.021013 - 0.2 + 1.0193 = 0.840313; 300 m: 0.189117 - 0.6 + 1.0193 = 0.608417
    #   475 m: 0.4741058 - 0.95 + 1.0193 = 0.5434058
    hw = v2v_los_probability("highway", [0.0, 9.7, 100.0, 300.0, 475.0])
    assert hw == pytest.approx([1.0, 1.0, 0.840313, 0.608417, 0.5434058], abs=1e-6)
    assert v2v_los_probability("highway", 9.8) < 1.0
    # d > 475 m: 0.54 - 0.001 (d - 475): 476 m -> 0.539, 800 m -> 0.215, zero from 1015 m
    far = v2v_los_probability("highway", [476.0, 800.0, 1015.0, 2000.0])
    assert far == pytest.approx([0.539, 0.215, 0.0, 0.0], abs=1e-9)


@pytest.mark.parametrize("env", ["highway", "urban"])
def test_los_probability_monotone_and_bounded(env):
    d = np.linspace(0.0, 3000.0, 30_001)
    p = v2v_los_probability(env, d)
    assert np.all(np.diff(p) <= 0.0)
    assert p.min() >= 0.0 and p.max() == 1.0


def test_state_split():
    d = np.array([50.0, 100.0, 100.0])
    blocked = np.array([False, False, True])
    p_los, p_nlosv, p_nlos = v2v_state_probabilities("urban", d, blocked)
    assert p_los[1] == pytest.approx(0.3358100, abs=1e-6)
    assert p_nlosv[1] == pytest.approx(1 - 0.3358100, abs=1e-6)
    assert (p_los[2], p_nlosv[2], p_nlos[2]) == (0.0, 0.0, 1.0)
    assert np.all(p_nlos[:2] == 0.0)
    assert p_los + p_nlosv + p_nlos == pytest.approx(np.ones(3))
    # highway, no buildings: LOS or NLOSv only
    p_los, p_nlosv, p_nlos = v2v_state_probabilities("highway", [100.0, 2000.0])
    assert p_los == pytest.approx([0.840313, 0.0], abs=1e-6)
    assert p_nlosv == pytest.approx([0.159687, 1.0], abs=1e-6)
    assert np.all(p_nlos == 0.0)


def test_state_from_uniform():
    # urban 100 m: p_LOS = 0.33581
    s = v2v_state_from_uniform("urban", 100.0, np.array([0.0, 0.33, 0.34, 0.99]))
    assert s.tolist() == [LOS, LOS, NLOSV, NLOSV]
    s = v2v_state_from_uniform("urban", [1.0, 1.0], [0.0, 0.0], building_blocked=[False, True])
    assert s.tolist() == [LOS, NLOS]
    u = np.random.default_rng(3).random(50_000)
    frac = np.mean(v2v_state_from_uniform("highway", 300.0, u) == LOS)
    assert frac == pytest.approx(0.608417, abs=0.01)


def test_link_budget_by_hand():
    # 23 dBm + 3 dBi + 3 dBi - 100 dB = -71 dBm received;
    # noise -174 + 10*log10(10e6) + 9 = -174 + 70 + 9 = -95 dBm; SNR = 24 dB
    assert sidelink_snr_db(100.0, 23.0, 10e6, 9.0, antenna_gain_dbi=3.0) == pytest.approx(24.0)
    assert sidelink_snr_db(100.0) == pytest.approx(24.0)  # the 37.885 / 36.885 defaults
    # 20 MHz costs 10*log10(2) = 3.0103 dB of noise
    assert sidelink_snr_db(100.0, bandwidth_hz=20e6) == pytest.approx(24.0 - 3.0103, abs=1e-4)
    # rate at 24 dB: 10^2.4 = 251.1886; log2(252.1886) = 7.978359; * 0.75 = 5.983770 bit/s/Hz
    assert sidelink_rate_bps(24.0, 10e6, 0.75, 7.4) == pytest.approx(59.83770e6, rel=1e-6)
    # capped at 4.8 bit/s/Hz (64-QAM): 48 Mbit/s
    assert sidelink_rate_bps(24.0, 10e6, 0.75, 4.8) == pytest.approx(48e6)
    # 0 dB SNR: log2(2) = 1 -> 0.75 * 10 MHz
    rates = sidelink_rate_bps(np.array([0.0, -300.0]), 10e6, 0.75, 4.8)
    assert rates == pytest.approx([7.5e6, 0.0], abs=1e-3)
    assert math.isclose(sidelink_rate_bps(24.0, 20e6, 0.75, 4.8), 96e6)
