"""The mobility statistics radio researchers compare a model with: handoffs per km driven and per
moving-vehicle minute, A -> B -> A returns, time of stay on a cell, radio link failures per hour,
and the SINR distribution. Accumulated while the run goes; summarised into run.json."""

from __future__ import annotations

from typing import Any

import numpy as np

from cosim.radio.handoff import LinkEvent

MOVING_SPEED_MPS = 0.5  # a vehicle slower than this is waiting or parked, not driving
RETURN_WINDOWS_S = (1.0, 2.0, 5.0)
SINR_BIN_DB = 0.25
SINR_MIN_DB = -40.0


class RadioStats:
    def __init__(self):
        self.counts = {"handoff": 0, "rlf": 0, "attach": 0, "detach": 0, "ping_pong": 0}
        self.returns = dict.fromkeys(RETURN_WINDOWS_S, 0)
        self.driven_m = self.moving_s = self.vehicle_s = 0.0
        self.sinr_counts = np.zeros(0, dtype=np.int64)
        self.sinr_max = -np.inf

    def event(self, e: LinkEvent) -> None:
        self.counts[e.kind] += 1
        self.counts["ping_pong"] += e.ping_pong
        for window in RETURN_WINDOWS_S:
            self.returns[window] += e.kind == "handoff" and e.return_s <= window + 1e-9

    def motion(self, moved_m: np.ndarray, speed: np.ndarray, dt: float) -> None:
        """One SUMO step: how far each vehicle moves to the next, and its speed now."""
        self.driven_m += float(moved_m.sum())
        self.moving_s += float((speed > MOVING_SPEED_MPS).sum()) * dt
        self.vehicle_s += len(speed) * dt

    def sinr(self, sinr_db: np.ndarray) -> None:
        """Serving-cell SINR samples (NaN: not connected)."""
        x = sinr_db[~np.isnan(sinr_db)]
        if not len(x):
            return
        self.sinr_max = max(self.sinr_max, float(x.max()))
        bins = np.maximum(((x - SINR_MIN_DB) / SINR_BIN_DB).astype(np.int64), 0)
        counts = np.bincount(bins)
        if len(counts) > len(self.sinr_counts):
            counts[: len(self.sinr_counts)] += self.sinr_counts
            self.sinr_counts = counts
        else:
            self.sinr_counts[: len(counts)] += counts

    def summary(self, stays_s: list[float], sim_s: float) -> dict[str, Any]:
        c = self.counts
        km, moving_min = self.driven_m / 1000, self.moving_s / 60
        stays = np.array(stays_s)
        return {
            "handoffs": c["handoff"], "rlfs": c["rlf"], "attaches": c["attach"],
            "detaches": c["detach"], "ping_pongs": c["ping_pong"],
            "km_driven": round(km, 3), "moving_vehicle_minutes": round(moving_min, 2),
            "vehicle_minutes": round(self.vehicle_s / 60, 2),
            "handoffs_per_km": c["handoff"] / km if km else None,
            "handoffs_per_moving_vehicle_minute": c["handoff"] / moving_min if moving_min else None,
            "returns_within_s": {f"{w:g}": n for w, n in self.returns.items()},
            "return_share_within_5s": self.returns[5.0] / c["handoff"] if c["handoff"] else None,
            "rlf_per_hour": c["rlf"] / (sim_s / 3600) if sim_s else None,
            "rlf_per_vehicle_hour": c["rlf"] / (self.vehicle_s / 3600) if self.vehicle_s else None,
            "time_of_stay_s": _quantiles(stays, (10, 50, 90)) | {"n": len(stays)},
            "sinr_db": self._sinr_quantiles((5, 50, 95)) | {"max": self.sinr_max if self.sinr_counts.any()
                                                            else None},
        }

    def _sinr_quantiles(self, qs: tuple[int, ...]) -> dict[str, float | None]:
        total = self.sinr_counts.sum()
        if not total:
            return {f"p{q}": None for q in qs}
        cdf = np.cumsum(self.sinr_counts) / total
        # the bin's centre, never above the largest sample (the receiver cap sits in the top bin)
        return {f"p{q}": round(min(SINR_MIN_DB + (int(np.searchsorted(cdf, q / 100)) + 0.5) * SINR_BIN_DB,
                                   self.sinr_max), 2) for q in qs}


def _quantiles(x: np.ndarray, qs: tuple[int, ...]) -> dict[str, float | None]:
    return {f"p{q}": (round(float(np.percentile(x, q)), 3) if len(x) else None) for q in qs}
