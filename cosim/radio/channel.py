"""Channel state per vehicle x cell and the vectorised evaluation of received power.

Stochastic, spatially consistent parts live here: per vehicle-cell pair a LOS process and a
shadow-fading process, both Gaussian and correlated along the vehicle's trajectory as
exp(-dx / d_cor) (38.901 7.5 / 7.6.3); LOS where Phi(z_los) < Pr_LOS(d2D); and one vehicle
penetration loss per vehicle (7.4.3.2). They change with distance travelled, so they are updated
once per SUMO step; path loss and received power are evaluated at every radio step with
interpolated positions, for a whole block of radio steps at once.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from cosim.radio.cells import Cells
from cosim.radio.pathloss import (
    LOS_DCOR_M,
    SHADOW_DCOR_M,
    SHADOW_SIGMA_DB,
    free_space_db,
    log_distance_db,
    los_probability,
    path_loss_db,
    thermal_noise_dbm,
)
from cosim.scenario import ChannelConfig


class Channel:
    """Large-scale channel of every vehicle slot to every cell."""

    def __init__(self, cells: Cells, cfg: ChannelConfig, rng: np.random.Generator,
                 dtype: type = np.float32):
        self.cells = cells
        self.cfg = cfg
        self.rng = rng
        self.dtype = dtype
        c = len(cells)
        self.n_subcarriers = cells.bandwidth_hz / (cfg.subcarrier_khz * 1e3)
        # Per-resource-element EIRP (dBm): what RSRP is measured against (3GPP RSRP is per RE).
        self.eirp_re_dbm = (cells.tx_power_dbm + cells.antenna_gain_dbi
                            - 10 * np.log10(self.n_subcarriers)).astype(dtype)
        self.re_to_total_db = (10 * np.log10(self.n_subcarriers)).astype(dtype)
        self.noise_dbm = thermal_noise_dbm(cells.bandwidth_hz, cfg.noise_figure_db)
        self.noise_mw = 10 ** (self.noise_dbm / 10)
        self.groups = {s: np.flatnonzero(np.array(cells.scenario) == s) for s in ("uma", "umi")}
        self.groups = {s: g for s, g in self.groups.items() if len(g)}
        scen = np.array(cells.scenario)
        self.sigma_los = np.where(scen == "uma", SHADOW_SIGMA_DB["uma"][0], SHADOW_SIGMA_DB["umi"][0])
        self.sigma_nlos = np.where(scen == "uma", SHADOW_SIGMA_DB["uma"][1], SHADOW_SIGMA_DB["umi"][1])
        self.dcor_sf_los = np.where(scen == "uma", SHADOW_DCOR_M["uma"][0], SHADOW_DCOR_M["umi"][0])
        self.dcor_sf_nlos = np.where(scen == "uma", SHADOW_DCOR_M["uma"][1], SHADOW_DCOR_M["umi"][1])
        self.dcor_los = np.where(scen == "uma", LOS_DCOR_M["uma"], LOS_DCOR_M["umi"])
        capacity = 64
        self.z_los = np.zeros((capacity, c))
        self.z_sf = np.zeros((capacity, c))
        self.penetration_db = np.zeros(capacity)
        self.last_x = np.zeros(capacity)
        self.last_y = np.zeros(capacity)
        self.los = np.ones((capacity, c), dtype=bool)
        self.shadow_db = np.zeros((capacity, c), dtype=dtype)

    def _grow(self, needed: int) -> None:
        capacity = len(self.penetration_db)
        if needed <= capacity:
            return
        new = max(needed, 2 * capacity)
        for name in ("z_los", "z_sf", "penetration_db", "last_x", "last_y", "los", "shadow_db"):
            old = getattr(self, name)
            grown = np.zeros((new, *old.shape[1:]), dtype=old.dtype)
            grown[:capacity] = old
            setattr(self, name, grown)

    def add_vehicles(self, slots: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        """Fresh, independent channel processes for vehicles that just entered."""
        if len(slots) == 0:
            return
        self._grow(int(slots.max()) + 1)
        c = len(self.cells)
        self.z_los[slots] = self.rng.standard_normal((len(slots), c), dtype=np.float32)
        self.z_sf[slots] = self._site_correlated(len(slots))
        pen = self.rng.normal(self.cfg.penetration_mean_db, self.cfg.penetration_std_db, len(slots))
        self.penetration_db[slots] = np.maximum(pen, 0.0)  # a car body does not amplify
        self.last_x[slots], self.last_y[slots] = x, y
        self._set_state(slots, x, y)

    def move(self, slots: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        """Advance the correlated processes by the distance each vehicle travelled."""
        moved = np.hypot(x - self.last_x[slots], y - self.last_y[slots])
        keep = moved > 0  # a parked or waiting vehicle keeps its channel state
        slots, x, y, moved = slots[keep], x[keep], y[keep], moved[keep]
        if len(slots) == 0:
            return
        dx = moved[:, None]
        n = len(slots), len(self.cells)
        rho = np.exp(-dx / self.dcor_los)
        self.z_los[slots] = rho * self.z_los[slots] + np.sqrt(1 - rho**2) * self.rng.standard_normal(
            n, dtype=np.float32)
        dcor = np.where(self.los[slots], self.dcor_sf_los, self.dcor_sf_nlos)
        rho = np.exp(-dx / dcor)
        self.z_sf[slots] = rho * self.z_sf[slots] + np.sqrt(1 - rho**2) * self._site_correlated(n[0])
        self.last_x[slots], self.last_y[slots] = x, y
        self._set_state(slots, x, y)

    def _site_correlated(self, n: int) -> np.ndarray:
        """Unit normals for n vehicles x C cells, correlated ``shadow_site_correlation`` across
        cells (one vehicle's surroundings shadow every site alike in part)."""
        rho = self.cfg.shadow_site_correlation
        common = self.rng.standard_normal((n, 1), dtype=np.float32)
        own = self.rng.standard_normal((n, len(self.cells)), dtype=np.float32)
        return np.sqrt(rho) * common + np.sqrt(1.0 - rho) * own

    def _set_state(self, slots: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        cfg = self.cfg
        if cfg.model != "38.901" or cfg.los == "always":
            los = np.ones((len(slots), len(self.cells)), dtype=bool)
        elif cfg.los == "never":
            los = np.zeros((len(slots), len(self.cells)), dtype=bool)
        else:
            d2d = np.hypot(x[:, None] - self.cells.x, y[:, None] - self.cells.y)
            p_los = np.empty_like(d2d)
            for scen, g in self.groups.items():
                p_los[:, g] = los_probability(scen, d2d[:, g], cfg.ue_height_m)
            los = ndtr(self.z_los[slots]) < p_los
        self.los[slots] = los
        if cfg.shadowing and cfg.model == "38.901":
            sigma = np.where(los, self.sigma_los, self.sigma_nlos)
            self.shadow_db[slots] = sigma * self.z_sf[slots]
        else:
            self.shadow_db[slots] = 0.0

    def rsrp_dbm(self, slots: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per-RE RSRP (dBm) of every cell for positions ``x, y`` of shape (K, N): (K, N, C)."""
        cells, cfg, dt = self.cells, self.cfg, self.dtype
        x = x.astype(dt, copy=False)[..., None]
        y = y.astype(dt, copy=False)[..., None]
        dx = x - cells.x.astype(dt)
        dy = y - cells.y.astype(dt)
        d2d = np.sqrt(dx * dx + dy * dy)
        if cfg.model == "38.901":
            loss = np.empty(d2d.shape, dtype=dt)
            los = self.los[slots]
            for scen, g in self.groups.items():
                loss[..., g] = path_loss_db(scen, los[:, g], d2d[..., g], cells.carrier_ghz[g].astype(dt),
                                            cells.height_m[g].astype(dt), dt(cfg.ue_height_m))
        else:
            dh = (cells.height_m - cfg.ue_height_m).astype(dt)
            d3d = np.sqrt(d2d * d2d + dh * dh)
            fc = cells.carrier_ghz.astype(dt)
            loss = (free_space_db(d3d, fc) if cfg.model == "free_space"
                    else log_distance_db(d3d, fc, cfg.log_distance_exponent)).astype(dt)
        loss += self.shadow_db[slots]
        loss += self.penetration_db[slots, None].astype(dt)
        return self.eirp_re_dbm - loss

    def received_mw(self, rsrp_dbm: np.ndarray) -> np.ndarray:
        """Total received power over each cell's bandwidth (mW), from per-RE RSRP."""
        return np.power(self.dtype(10.0), (rsrp_dbm + self.re_to_total_db) * self.dtype(0.1))
