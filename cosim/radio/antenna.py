"""Base-station antenna gain toward a vehicle: omnidirectional, or a sector panel whose gain
falls off with the angle from its boresight as 3GPP TR 38.901 Table 7.3-1 gives for one antenna
element (65 degree half-power beamwidths, 30 dB front-to-back and side-lobe floors), tilted down
electrically.

A cell's ``antenna_gain_dbi`` is its gain on boresight; this module gives the attenuation (<= 0 dB)
off boresight. Azimuths are compass bearings: degrees clockwise from north (+y in the network
frame). The zenith angle is 90 degrees at the horizon and grows below it.
"""

from __future__ import annotations

import numpy as np

PHI_3DB_DEG = 65.0  # horizontal half-power beamwidth
THETA_3DB_DEG = 65.0  # vertical half-power beamwidth
A_MAX_DB = 30.0  # front-to-back ratio
SLA_V_DB = 30.0  # vertical side-lobe attenuation
# Sector boresights of a three-sector site: 38.901 Fig. 7.8-1's 30, 150 and 270 degrees
# (counter-clockwise from east), as compass bearings.
THREE_SECTOR_BEARINGS_DEG = (60.0, 300.0, 180.0)


def element_attenuation_db(phi_deg: np.ndarray, theta_deg: np.ndarray, downtilt_deg: np.ndarray
                           ) -> np.ndarray:
    """Table 7.3-1: -min(-(A_V + A_H), A_max), with A_V = -min(12 ((theta - 90 - tilt) / 65)^2,
    SLA_V) and A_H = -min(12 (phi / 65)^2, A_max); phi off boresight in [-180, 180] degrees."""
    a_v = -np.minimum(12.0 * ((theta_deg - 90.0 - downtilt_deg) / THETA_3DB_DEG) ** 2, SLA_V_DB)
    a_h = -np.minimum(12.0 * (phi_deg / PHI_3DB_DEG) ** 2, A_MAX_DB)
    return -np.minimum(-(a_v + a_h), A_MAX_DB)


def bearing_deg(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Compass bearing of the vector (dx, dy): 0 north (+y), 90 east (+x)."""
    return np.degrees(np.arctan2(dx, dy)) % 360.0


def attenuation_db(dx: np.ndarray, dy: np.ndarray, d2d: np.ndarray, height_diff_m: np.ndarray,
                   azimuth_deg: np.ndarray, downtilt_deg: np.ndarray) -> np.ndarray:
    """Attenuation (dB, <= 0) of each cell's antenna toward a vehicle at (dx, dy) from the cell;
    cells whose azimuth is NaN are omnidirectional (0 dB). Arrays broadcast over (..., C)."""
    out = np.zeros(np.broadcast_shapes(dx.shape, azimuth_deg.shape), dtype=dx.dtype)
    sectored = np.flatnonzero(~np.isnan(azimuth_deg))
    if not len(sectored):
        return out
    dx, dy, d2d = (np.broadcast_to(a, out.shape)[..., sectored] for a in (dx, dy, d2d))
    phi = (bearing_deg(dx, dy) - azimuth_deg[sectored] + 180.0) % 360.0 - 180.0
    theta = 90.0 + np.degrees(np.arctan2(np.broadcast_to(height_diff_m, out.shape[-1:])[sectored], d2d))
    out[..., sectored] = element_attenuation_db(phi, theta, downtilt_deg[sectored])
    return out
