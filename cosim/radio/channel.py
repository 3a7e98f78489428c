"""Large-scale channel from every cell to any position: a function of the position, so two
vehicles at the same spot, or one vehicle coming back, see the same channel (3GPP TR 38.901
§7.6.3.1 spatial consistency).

- Path loss: 38.901 UMa / UMi street canyon (``pathloss.py``), or free space / log-distance.
- LOS state: ``stochastic``, the §7.6.3.3 procedure: LOS where a spatially consistent uniform
  field of the cell (correlation distance of Table 7.6.3.1-2) lies below Pr_LOS(d2D); or
  ``geometry``: LOS unless buildings block the line to the cell (``buildings.py``); or fixed.
- Shadow fading: sigma(LOS state) x a unit Gaussian field of the cell (correlation distances of
  Table 7.5-6), correlated across sites (``fields.py``).
- Antenna: a sector antenna's attenuation off boresight (``antenna.py``).
- Vehicle penetration loss: one draw per vehicle, N(9, 5^2) dB (§7.4.3.2): the car, not the place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from cosim.radio.antenna import attenuation_db
from cosim.radio.cells import Cells
from cosim.radio.fast_channel import CellGeometry
from cosim.radio.pathloss import (
    SHADOW_SIGMA_DB,
    free_space_db,
    log_distance_db,
    los_probability,
    thermal_noise_dbm,
)
from cosim.scenario import ChannelConfig

if TYPE_CHECKING:
    from cosim.radio.buildings import StreetLOS
    from cosim.radio.fields import CellFields

Bounds = tuple[float, float, float, float]  # xmin, ymin, xmax, ymax


class Channel:
    """Per-RE RSRP of every cell at given positions, for the vehicles in given slots."""

    def __init__(self, cells: Cells, cfg: ChannelConfig, rng: np.random.Generator, bounds: Bounds,
                 net: Any = None, dtype: type = np.float32):
        self.cells, self.cfg, self.rng, self.dtype = cells, cfg, rng, dtype
        self.n_subcarriers = cells.bandwidth_hz / (cfg.subcarrier_khz * 1e3)
        # Per-resource-element EIRP on boresight (dBm): what RSRP is measured against (per RE).
        self.eirp_re_dbm = (cells.tx_power_dbm + cells.antenna_gain_dbi
                            - 10 * np.log10(self.n_subcarriers)).astype(dtype)
        self.re_to_total_db: np.ndarray = (10 * np.log10(self.n_subcarriers)).astype(dtype)
        self.noise_dbm = thermal_noise_dbm(cells.bandwidth_hz, cfg.noise_figure_db)
        self.noise_mw = 10 ** (self.noise_dbm / 10)
        scen = np.array(cells.scenario)
        self.groups = {s: np.flatnonzero(scen == s) for s in ("uma", "umi") if (scen == s).any()}
        self.sigma_los: np.ndarray = np.array([SHADOW_SIGMA_DB[s][0] for s in scen], dtype=dtype)
        self.sigma_nlos: np.ndarray = np.array([SHADOW_SIGMA_DB[s][1] for s in scen], dtype=dtype)
        self.height_diff: np.ndarray = (cells.height_m - cfg.ue_height_m).astype(dtype)
        stochastic = cfg.model == "38.901" and (cfg.los == "stochastic" or cfg.shadowing)
        self.fields: CellFields | None = None
        if stochastic:
            from cosim.radio.fields import CellFields

            self.fields = CellFields(cells.scenario, bounds, rng, cfg.shadow_site_correlation)
        self.street_los: StreetLOS | None = None
        if cfg.model == "38.901" and cfg.los == "geometry":
            self.street_los = _street_los(cfg, cells, bounds, net)
        self.penetration_db: np.ndarray = np.zeros(64, dtype=dtype)
        self.geometry = CellGeometry(cells.scenario, cells.x, cells.y, cells.height_m, cells.carrier_ghz,
                                     cells.azimuth_deg, cells.downtilt_deg, self.eirp_re_dbm,
                                     cfg.ue_height_m)

    def add_vehicles(self, slots: np.ndarray) -> None:
        """Draw the penetration loss of vehicles that just entered (their car body)."""
        if len(slots) == 0:
            return
        if slots.max() >= len(self.penetration_db):
            grown: np.ndarray = np.zeros(max(int(slots.max()) + 1, 2 * len(self.penetration_db)), self.dtype)
            grown[: len(self.penetration_db)] = self.penetration_db
            self.penetration_db = grown
        pen = self.rng.normal(self.cfg.penetration_mean_db, self.cfg.penetration_std_db, len(slots))
        self.penetration_db[slots] = np.maximum(pen, 0.0)  # a car body does not amplify

    def _distances(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """dx, dy and 2-D distance (N, C) from every cell to positions (N,), in the channel's dtype."""
        dt = self.dtype
        dx = x[:, None] - self.cells.x.astype(dt)
        dy = y[:, None] - self.cells.y.astype(dt)
        return dx, dy, np.sqrt(dx * dx + dy * dy)

    def los(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """LOS state (N, C) of every cell at positions (N,)."""
        cfg = self.cfg
        shape = (len(x), len(self.cells))
        if cfg.model != "38.901" or cfg.los == "always":
            return np.ones(shape, dtype=bool)
        if cfg.los == "never":
            return np.zeros(shape, dtype=bool)
        if cfg.los == "geometry":
            assert self.street_los is not None  # built for 38.901 with los: geometry
            return self.street_los.los(x, y)
        d2d = self._distances(x, y)[2]
        p_los: np.ndarray = np.empty(shape, dtype=self.dtype)
        for scen, g in self.groups.items():
            p_los[:, g] = los_probability(scen, d2d[:, g], cfg.ue_height_m)
        assert self.fields is not None  # built for 38.901 with los: stochastic
        return self.fields.los_uniform(x, y) < p_los

    def rsrp_dbm(self, slots: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per-RE RSRP (dBm) of every cell at positions ``x, y`` (N,) of the vehicles in ``slots``:
        (N, C)."""
        cells, cfg, dt = self.cells, self.cfg, self.dtype
        x = np.asarray(x, dtype=dt)
        y = np.asarray(y, dtype=dt)
        if cfg.model == "38.901":  # one compiled pass (fast_channel), same formulas as pathloss.py
            los = self.los(x, y)
            if cfg.shadowing:
                assert self.fields is not None  # built for 38.901 with shadowing
                shadow = self.fields.shadow_db(x, y, los, self.sigma_los, self.sigma_nlos)
            else:
                shadow = np.zeros(los.shape, dtype=np.float32)
            return self.geometry.rsrp(x, y, los, shadow, self.penetration_db[slots])
        else:
            dx, dy, d2d = self._distances(x, y)
            d3d = np.sqrt(d2d * d2d + self.height_diff * self.height_diff)
            fc: np.ndarray = cells.carrier_ghz.astype(dt)
            loss = (free_space_db(d3d, fc) if cfg.model == "free_space"
                    else log_distance_db(d3d, fc, cfg.log_distance_exponent)).astype(dt)
        loss += self.penetration_db[slots, None]
        gain = attenuation_db(dx, dy, d2d, self.height_diff, cells.azimuth_deg, cells.downtilt_deg)
        return self.eirp_re_dbm + gain - loss

    def received_mw(self, rsrp_dbm: np.ndarray) -> np.ndarray:
        """Total received power over each cell's bandwidth (mW), from per-RE RSRP."""
        return np.power(self.dtype(10.0), (rsrp_dbm + self.re_to_total_db) * self.dtype(0.1))


def _street_los(cfg: ChannelConfig, cells: Cells, bounds: Bounds, net: Any) -> StreetLOS:
    from cosim.radio.buildings import StreetLOS, read_buildings

    if cfg.buildings is not None:
        polygons = read_buildings(cfg.buildings, tuple(cfg.building_types), net)
        return StreetLOS.from_polygons(polygons, bounds, cells.x, cells.y)
    if net is None:
        raise ValueError("los: geometry needs the SUMO network (or radio.channel.buildings)")
    return StreetLOS.from_network(net, cells.x, cells.y, sidewalk_m=cfg.sidewalk_m)
