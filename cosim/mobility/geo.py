"""Network metres to longitude/latitude on a local tangent plane at the scenario's geo origin."""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)


def xy_to_lonlat(x: np.ndarray, y: np.ndarray, lat0: float, lon0: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Equirectangular projection about (lat0, lon0): metres-accurate over a few kilometres."""
    lat = lat0 + np.degrees(y / EARTH_RADIUS_M)
    lon = lon0 + np.degrees(x / (EARTH_RADIUS_M * np.cos(np.radians(lat0))))
    return lon, lat
