"""Link windows: per vehicle, maximal connected intervals (across handoffs, ``cell = -1``) and
per-cell dwell intervals, with the mean and minimum single-user downlink rate over each.

A window ``[start, end)`` holds the radio steps start, start + dt, ..., end - dt, so windows
partition the connected time exactly. Windows still open when the run ends are closed at the
end time and marked ``censored``.
"""

from __future__ import annotations

from collections import defaultdict

import numba
import numpy as np

from cosim.radio.handoff import LinkEvent

WINDOW_FIELDS: dict[str, tuple[type, float]] = {
    "win_start": (np.float64, np.nan),
    "win_sum": (np.float64, 0.0),
    "win_n": (np.int64, 0),
    "win_min": (np.float64, np.inf),
    "cell_start": (np.float64, np.nan),
    "cell_sum": (np.float64, 0.0),
    "cell_n": (np.int64, 0),
    "cell_min": (np.float64, np.inf),
}


class LinkWindows:
    """Opens and closes windows on link events; accumulates rates every radio step."""

    def __init__(self) -> None:
        self.closed: list[tuple[str, int, float, float, float, float, bool]] = []
        self.durations_by_cell: dict[int, list[float]] = defaultdict(list)  # completed dwells
        self.connected_durations: list[float] = []  # completed connected windows
        self.connected_ends: list[float] = []  # their end times (a block is decided ahead)

    def apply(self, st: dict[str, np.ndarray], events: list[LinkEvent], ids: np.ndarray,
              tau: float) -> None:
        for e in events:
            r = e.row
            if e.kind == "handoff":
                self._close_cell(st, r, ids[r], e.from_cell, tau, censored=False)
                self._open_cell(st, r, tau)
            elif e.kind in ("rlf", "detach"):
                if e.from_cell >= 0:
                    self._close_cell(st, r, ids[r], e.from_cell, tau, censored=False)
                    self._close_any(st, r, ids[r], tau, censored=False)
            elif e.kind == "attach":
                st["win_start"][r], st["win_sum"][r], st["win_n"][r] = tau, 0.0, 0
                st["win_min"][r] = np.inf
                self._open_cell(st, r, tau)

    def accumulate(self, st: dict[str, np.ndarray], serving: np.ndarray, rate_bps: np.ndarray) -> None:
        """Add radio steps' rates (steps x vehicles) to the open windows of the vehicles attached
        in each, step after step."""
        if len(serving):
            _accumulate(serving, rate_bps, st["win_sum"], st["win_n"], st["win_min"], st["cell_sum"],
                        st["cell_n"], st["cell_min"])

    def close_all(self, st: dict[str, np.ndarray], serving: np.ndarray, ids: np.ndarray,
                  tau: float) -> None:
        """The run ends: close every open window as censored."""
        for r in np.flatnonzero(serving >= 0):
            self._close_cell(st, r, ids[r], int(serving[r]), tau, censored=True)
            self._close_any(st, r, ids[r], tau, censored=True)

    def _open_cell(self, st, r, tau) -> None:
        st["cell_start"][r], st["cell_sum"][r], st["cell_n"][r] = tau, 0.0, 0
        st["cell_min"][r] = np.inf

    def _close_cell(self, st, r, vehicle, cell, tau, censored) -> None:
        start = float(st["cell_start"][r])
        self._emit(vehicle, cell, start, tau, st["cell_sum"][r], st["cell_n"][r], st["cell_min"][r],
                   censored)
        if not censored:
            self.durations_by_cell[cell].append(tau - start)
        st["cell_start"][r] = np.nan

    def _close_any(self, st, r, vehicle, tau, censored) -> None:
        start = float(st["win_start"][r])
        self._emit(vehicle, -1, start, tau, st["win_sum"][r], st["win_n"][r], st["win_min"][r],
                   censored)
        if not censored:
            self.connected_durations.append(tau - start)
            self.connected_ends.append(float(tau))
        st["win_start"][r] = np.nan

    def _emit(self, vehicle, cell, start, end, total, n, low, censored) -> None:
        mean = float(total / n) if n else 0.0
        self.closed.append((str(vehicle), int(cell), start, float(end), mean,
                            float(low) if n else 0.0, bool(censored)))

    def drain(self) -> list[tuple]:
        rows, self.closed = self.closed, []
        return rows


@numba.njit(cache=True)
def _accumulate(serving, rate, win_sum, win_n, win_min, cell_sum, cell_n, cell_min):  # pragma: no cover
    for k in range(serving.shape[0]):
        for r in range(serving.shape[1]):
            if serving[k, r] >= 0:
                x = rate[k, r]
                win_sum[r] += x
                win_n[r] += 1
                win_min[r] = min(win_min[r], x)
                cell_sum[r] += x
                cell_n[r] += 1
                cell_min[r] = min(cell_min[r], x)
