"""Path loss of 3GPP TR 38.901 section 7.4 (UMa, UMi-Street Canyon), plus free-space and
log-distance models for tests. Pure, numpy-vectorised, no randomness: the stochastic parts (LOS
draw, shadow fading, vehicle penetration) live in the channel state.

Units: distances and heights in metres, carrier frequency in GHz, losses in dB.
"""

from __future__ import annotations

import numpy as np

SPEED_OF_LIGHT = 299_792_458.0
H_E_M = 1.0  # effective environment height: 1 m for UMi, and for UMa when h_UT < 13 m
MIN_D2D_M = 10.0  # Table 7.4.1-1 is specified from 10 m; closer distances are evaluated at 10 m

# Table 7.4.1-1: shadow fading standard deviation (dB), (LOS, NLOS).
SHADOW_SIGMA_DB = {"uma": (4.0, 6.0), "umi": (4.0, 7.82)}
# Table 7.5-6: shadow-fading decorrelation distance (m), (LOS, NLOS).
SHADOW_DCOR_M = {"uma": (37.0, 50.0), "umi": (10.0, 13.0)}
# Table 7.6.3.1-2: decorrelation distance of the spatially consistent LOS state (m).
LOS_DCOR_M = {"uma": 50.0, "umi": 50.0}


def breakpoint_distance_m(fc_ghz, h_bs_m, h_ut_m):
    """d'_BP = 4 h'_BS h'_UT f_c / c with effective heights h' = h - h_E (Table 7.4.1-1 note 1)."""
    return 4.0 * (h_bs_m - H_E_M) * (h_ut_m - H_E_M) * (np.asarray(fc_ghz) * 1e9) / SPEED_OF_LIGHT


def path_loss_db(scenario: str, los, d2d_m, fc_ghz, h_bs_m, h_ut_m):
    """38.901 path loss for ``scenario`` "uma" or "umi"; ``los`` a bool or a bool array.

    Broadcasts over its array arguments and keeps their float dtype (float32 stays float32).
    """
    d2d = np.maximum(np.asarray(d2d_m), MIN_D2D_M)
    dh = np.asarray(h_bs_m) - np.asarray(h_ut_m)
    d3d = np.sqrt(d2d * d2d + dh * dh)
    log_d3d = np.log10(d3d)
    log_fc = np.log10(fc_ghz)
    d_bp = breakpoint_distance_m(fc_ghz, h_bs_m, h_ut_m)
    if scenario == "uma":
        pl1 = 28.0 + 22.0 * log_d3d + 20.0 * log_fc
        pl2 = 28.0 + 40.0 * log_d3d + 20.0 * log_fc - 9.0 * np.log10(d_bp * d_bp + dh * dh)
    elif scenario == "umi":
        pl1 = 32.4 + 21.0 * log_d3d + 20.0 * log_fc
        pl2 = 32.4 + 40.0 * log_d3d + 20.0 * log_fc - 9.5 * np.log10(d_bp * d_bp + dh * dh)
    else:
        raise ValueError(f"unknown scenario {scenario!r} (expected 'uma' or 'umi')")
    pl_los = np.where(d2d <= d_bp, pl1, pl2)
    if np.all(los):
        return pl_los.astype(pl1.dtype, copy=False)
    if scenario == "uma":
        pl_nlos_prime = 13.54 + 39.08 * log_d3d + 20.0 * log_fc - 0.6 * (np.asarray(h_ut_m) - 1.5)
    else:
        pl_nlos_prime = 35.3 * log_d3d + 22.4 + 21.3 * log_fc - 0.3 * (np.asarray(h_ut_m) - 1.5)
    pl_nlos = np.maximum(pl_los, pl_nlos_prime)
    return np.where(los, pl_los, pl_nlos).astype(pl1.dtype, copy=False)


def los_probability(scenario: str, d2d_m, h_ut_m=1.5):
    """Table 7.4.2-1 LOS probability (outdoor UT) for "uma" or "umi"."""
    d = np.maximum(np.asarray(d2d_m, dtype=float), 1e-9)
    if scenario == "umi":
        p = 18.0 / d + np.exp(-d / 36.0) * (1.0 - 18.0 / d)
    elif scenario == "uma":
        h = np.asarray(h_ut_m, dtype=float)
        c_prime = np.where(h <= 13.0, 0.0, ((np.clip(h, 13.0, 23.0) - 13.0) / 10.0) ** 1.5)
        p = (18.0 / d + np.exp(-d / 63.0) * (1.0 - 18.0 / d)) * (
            1.0 + c_prime * 1.25 * (d / 100.0) ** 3 * np.exp(-d / 150.0)
        )
    else:
        raise ValueError(f"unknown scenario {scenario!r} (expected 'uma' or 'umi')")
    return np.where(d <= 18.0, 1.0, np.minimum(p, 1.0))


def free_space_db(d3d_m, fc_ghz):
    """Friis free-space loss: 20 log10(d) + 20 log10(f_GHz) + 32.45 (d in metres)."""
    d = np.maximum(np.asarray(d3d_m), 1.0)
    return 20.0 * np.log10(d) + 20.0 * np.log10(fc_ghz) + 32.45


def log_distance_db(d3d_m, fc_ghz, exponent: float):
    """Free-space loss at 1 m plus 10 n log10(d)."""
    d = np.maximum(np.asarray(d3d_m), 1.0)
    return 20.0 * np.log10(fc_ghz) + 32.45 + 10.0 * exponent * np.log10(d)


def thermal_noise_dbm(bandwidth_hz, noise_figure_db):
    """-174 dBm/Hz + 10 log10(B) + noise figure."""
    return -174.0 + 10.0 * np.log10(bandwidth_hz) + noise_figure_db
