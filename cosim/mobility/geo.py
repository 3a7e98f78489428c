"""Network metres to longitude/latitude: on a local tangent plane at the scenario's geo origin,
or through the network's own projection (a network converted from OpenStreetMap carries it)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cosim.errors import MissingDependencyError

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)


def xy_to_lonlat(x: np.ndarray, y: np.ndarray, lat0: float, lon0: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Equirectangular projection about (lat0, lon0): metres-accurate over a few kilometres."""
    lat = lat0 + np.degrees(y / EARTH_RADIUS_M)
    lon = lon0 + np.degrees(x / (EARTH_RADIUS_M * np.cos(np.radians(lat0))))
    return lon, lat


@dataclass(frozen=True)
class GeoReference:
    """How the trace's x, y become lon/lat: a tangent plane about ``origin`` (lat, lon), or the
    network's projection (SUMO's ``projParameter``: the PROJ string its coordinates were projected
    with, before ``netOffset`` was added). Picklable: a pipelined SUMO child builds rows too."""

    origin: tuple[float, float] | None = None
    projection: str | None = None
    offset: tuple[float, float] = (0.0, 0.0)

    def lonlat(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.projection is None:
            assert self.origin is not None
            return xy_to_lonlat(x, y, *self.origin)
        lon, lat = _inverse(self.projection)(np.asarray(x, float) - self.offset[0],
                                             np.asarray(y, float) - self.offset[1])
        return np.asarray(lon, float), np.asarray(lat, float)


@functools.lru_cache(maxsize=4)
def _inverse(projection: str) -> Callable:
    try:
        import pyproj
    except ImportError:
        raise MissingDependencyError("lon/lat through the network's projection needs pyproj: "
                                     "pip install pyproj") from None
    return pyproj.Transformer.from_crs(pyproj.CRS.from_proj4(projection), "EPSG:4326",
                                       always_xy=True).transform
