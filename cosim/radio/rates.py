"""Link rates: co-channel cells' activity, and each vehicle's single-user rate down and up
(efficiency x bandwidth share x log2(1 + SINR), capped at the peak spectral efficiency)."""

from __future__ import annotations

import numpy as np

from cosim.radio.cells import Cells
from cosim.radio.handoff import BlockLinks
from cosim.scenario import InterferenceConfig, RateConfig


def cell_activity(cfg: InterferenceConfig, serving: np.ndarray, n_cells: int,
                  background: np.ndarray | None = None) -> np.ndarray:
    """How busy each cell is (the share of its power that interferes): fixed, or growing with
    the vehicles it serves (and its active background users, when there are any)."""
    if cfg.activity == "fixed":
        return np.full(n_cells, cfg.fixed_activity)
    load = np.bincount(serving[serving >= 0], minlength=n_cells)
    if background is not None:
        load = load + background
    return np.clip(load / cfg.full_load_vehicles, cfg.min_activity, 1.0)


class LinkRates:
    """Single-user rates of a block of radio steps."""

    def __init__(self, cfg: RateConfig, cells: Cells, noise_dbm: float):
        self.cfg = cfg
        self.bandwidth = np.stack([cells.bandwidth_hz * cfg.downlink.resource_share,
                                   cells.bandwidth_hz * cfg.uplink.resource_share])
        # uplink SNR from the downlink's received power: the UE's power instead of the cell's
        self.ul_offset_db = (cfg.ue_tx_power_dbm - cells.tx_power_dbm - noise_dbm
                             - cfg.uplink_interference_margin_db)

    def __call__(self, links: BlockLinks, received_mw: np.ndarray) -> np.ndarray:
        """Single-user rate (bit/s) down and up for each radio step: (2, K, N)."""
        cfg = self.cfg
        on = links.serving >= 0
        s = np.where(on, links.serving, 0)
        sinr = 10 ** (np.where(on, links.sinr_db, -99.0) / 10)  # capped at the receiver's limit
        se_dl = np.minimum(cfg.efficiency * np.log2(1 + sinr), cfg.max_spectral_efficiency)
        K, n = s.shape
        rx = received_mw[np.arange(K)[:, None], np.arange(n)[None, :], s]
        snr_ul = 10 ** ((10 * np.log10(rx) + self.ul_offset_db[s]) / 10)
        se_ul = np.minimum(cfg.efficiency * np.log2(1 + snr_ul), cfg.max_spectral_efficiency)
        rates = np.stack([se_dl * self.bandwidth[0, s], se_ul * self.bandwidth[1, s]])
        return np.where(on, rates, 0.0)
