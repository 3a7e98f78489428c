"""The 38.901 RSRP of every cell at every position in one compiled pass: path loss (Table 7.4.1-1,
UMa / UMi street canyon, LOS / NLOS), the sector antenna's attenuation (Table 7.3-1), shadowing
and penetration. It computes what ``pathloss.path_loss_db`` and ``antenna.attenuation_db`` (the
tested reference functions) compute, without numpy temporaries; ``tests/test_channel.py`` checks
the two agree.

The geometry of a site (distances, their logarithm, bearing and elevation: the transcendental
part of the work) is computed once for the sectors that share its mast."""

from __future__ import annotations

import math

import numba
import numpy as np

from cosim.radio.antenna import A_MAX_DB, PHI_3DB_DEG, SLA_V_DB, THETA_3DB_DEG
from cosim.radio.pathloss import MIN_D2D_M, breakpoint_distance_m

UMA, UMI = 0, 1


class CellGeometry:
    """Per-cell constants of the compiled pass."""

    def __init__(self, scenario: tuple[str, ...], x, y, height_m, carrier_ghz, azimuth_deg, downtilt_deg,
                 eirp_re_dbm, ue_height_m: float):
        self.scen = np.array([UMA if s == "uma" else UMI for s in scenario], dtype=np.int64)
        self.x, self.y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        self.dh = np.asarray(height_m, np.float64) - ue_height_m
        self.log_fc = np.log10(np.asarray(carrier_ghz, np.float64))
        d_bp = breakpoint_distance_m(np.asarray(carrier_ghz, np.float64), np.asarray(height_m, np.float64),
                                     ue_height_m)
        self.d_bp = np.asarray(d_bp, np.float64)
        self.log_bp = np.log10(self.d_bp * self.d_bp + self.dh * self.dh)
        self.sectored = ~np.isnan(np.asarray(azimuth_deg, np.float64))
        self.azimuth = np.nan_to_num(np.asarray(azimuth_deg, np.float64))
        self.tilt = np.asarray(downtilt_deg, np.float64)
        self.eirp = np.asarray(eirp_re_dbm, np.float64)
        self.h_ut = float(ue_height_m)
        # Sites: cells at one position and height, in order of first appearance (CSR layout).
        keys = list(zip(self.x.tolist(), self.y.tolist(), self.dh.tolist(), strict=True))
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        site_of = np.array([sorted(set(first.values())).index(first[k]) for k in keys], np.int64)
        self.site_cells = np.argsort(site_of, kind="stable").astype(np.int64)
        self.site_start = np.searchsorted(site_of[self.site_cells], np.arange(site_of.max() + 2))

    def rsrp(self, x: np.ndarray, y: np.ndarray, los: np.ndarray, shadow_db: np.ndarray,
             penetration_db: np.ndarray) -> np.ndarray:
        out = np.empty(los.shape, dtype=np.float32)
        _rsrp(np.asarray(x, np.float64), np.asarray(y, np.float64), np.ascontiguousarray(los),
              np.ascontiguousarray(shadow_db, np.float32), np.asarray(penetration_db, np.float64),
              self.scen, self.x, self.y, self.dh, self.log_fc, self.d_bp, self.log_bp, self.sectored,
              self.azimuth, self.tilt, self.eirp, self.h_ut, self.site_cells, self.site_start, out)
        return out


@numba.njit(cache=True)
def _rsrp(x, y, los, shadow, penetration, scen, cx, cy, dh, log_fc, d_bp, log_bp, sectored, azimuth,
          tilt, eirp, h_ut, site_cells, site_start, out):  # pragma: no cover - compiled
    for i in range(x.shape[0]):
        for s in range(site_start.shape[0] - 1):
            first = site_cells[site_start[s]]
            dx, dy = x[i] - cx[first], y[i] - cy[first]
            d2d_raw = math.sqrt(dx * dx + dy * dy)
            d2d = max(d2d_raw, MIN_D2D_M)
            log_d3d = math.log10(math.sqrt(d2d * d2d + dh[first] * dh[first]))
            bearing = theta = 0.0
            for j in range(site_start[s], site_start[s + 1]):
                if sectored[site_cells[j]]:
                    bearing = math.degrees(math.atan2(dx, dy)) % 360.0
                    theta = 90.0 + math.degrees(math.atan2(dh[first], d2d_raw))
                    break
            for j in range(site_start[s], site_start[s + 1]):
                c = site_cells[j]
                if scen[c] == UMA:
                    if d2d <= d_bp[c]:
                        pl = 28.0 + 22.0 * log_d3d + 20.0 * log_fc[c]
                    else:
                        pl = 28.0 + 40.0 * log_d3d + 20.0 * log_fc[c] - 9.0 * log_bp[c]
                    if not los[i, c]:
                        pl = max(pl, 13.54 + 39.08 * log_d3d + 20.0 * log_fc[c] - 0.6 * (h_ut - 1.5))
                else:
                    if d2d <= d_bp[c]:
                        pl = 32.4 + 21.0 * log_d3d + 20.0 * log_fc[c]
                    else:
                        pl = 32.4 + 40.0 * log_d3d + 20.0 * log_fc[c] - 9.5 * log_bp[c]
                    if not los[i, c]:
                        pl = max(pl, 35.3 * log_d3d + 22.4 + 21.3 * log_fc[c] - 0.3 * (h_ut - 1.5))
                gain = 0.0
                if sectored[c]:
                    phi = (bearing - azimuth[c] + 180.0) % 360.0 - 180.0
                    a_v = -min(12.0 * ((theta - 90.0 - tilt[c]) / THETA_3DB_DEG) ** 2, SLA_V_DB)
                    a_h = -min(12.0 * (phi / PHI_3DB_DEG) ** 2, A_MAX_DB)
                    gain = -min(-(a_v + a_h), A_MAX_DB)
                out[i, c] = eirp[c] + gain - pl - shadow[i, c] - penetration[i]
