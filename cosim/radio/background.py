"""Users who are not federated clients: each cell's background load.

Per cell and direction, the number of active non-FL users follows an M/M/inf process (Poisson
arrivals, exponentially distributed activity of mean ``holding_s``), stationary from the start: N(0)
~ Poisson(mean); over a step of dt, each active user stays with probability exp(-dt/T) and
the arrivals still active at its end are Poisson(mean (1 - exp(-dt/T))), which is the exact
transition of the process. They hold a share of the cell's resources like any transfer (equal
sharing) and count towards the cell's interference activity. The counts are constant within a
SUMO step, drawn from their own seeded stream (the channel's draws are untouched).
"""

from __future__ import annotations

import math

import numpy as np

from cosim.scenario import BackgroundLoadConfig


class BackgroundLoad:
    """Active background users per direction (0 down, 1 up) and cell: ``users`` (2, C)."""

    def __init__(self, cfg: BackgroundLoadConfig, n_cells: int, rng: np.random.Generator):
        self.cfg, self.rng = cfg, rng
        self.mean = np.array([[cfg.mean_users_down], [cfg.mean_users_up]]) * np.ones((2, n_cells))
        self.users = rng.poisson(self.mean)
        self._user_seconds = np.zeros((2, n_cells))
        self._seconds = 0.0

    def advance(self, dt: float) -> None:
        """The process over ``dt`` seconds (what was active during it is counted first)."""
        self._user_seconds += self.users * dt
        self._seconds += dt
        stay = math.exp(-dt / self.cfg.holding_s)
        self.users = self.rng.binomial(self.users, stay) + self.rng.poisson(self.mean * (1.0 - stay))

    def summary(self) -> dict[str, float]:
        mean = self._user_seconds / self._seconds if self._seconds else self.users.astype(float)
        return {"mean_users_down": round(float(mean[0].mean()), 3),
                "mean_users_up": round(float(mean[1].mean()), 3), "holding_s": self.cfg.holding_s}
