"""Ideal connectivity (``clients.ideal_connectivity``): the paper's own setting, where nothing
stands between a client and the server. It is wired into the radio port in place of the radio, so
the server runs exactly the same round; only the link differs.

Every transfer completes the instant it starts, every client is always connected at an endless
rate, and every window is endless. Clients still need their compute time, and a round's deadline
still bounds it.
"""

from __future__ import annotations

import math

import simpy

from cosim.radio.transfers import TransferResult


class EndlessWindows:
    """The link-window prediction under ideal connectivity: it never ends."""

    def remaining_s(self, vehicle: str, now: float) -> float:
        return math.inf


class IdealLink:
    """A radio port with no air in between."""

    SERVING_CELL = 0  # every client is "served", by one cell that is always there

    def __init__(self, env: simpy.Environment):
        self.env = env

    @property
    def cells(self):
        raise RuntimeError("ideal connectivity has no cells (the scenario forbids hierarchical "
                           "aggregation with it)")

    def transfer(self, vehicle: str, nbytes: int, direction: str,
                 timeout_s: float | None = None) -> simpy.Event:
        now = self.env.now
        return self.env.event().succeed(
            TransferResult(vehicle, direction, nbytes, True, None, now, now, float(nbytes)))

    def serving_cell(self, vehicle: str) -> int:
        return self.SERVING_CELL

    def rate_bps(self, vehicle: str, direction: str = "up") -> float:
        return math.inf

    def history_predictor(self) -> EndlessWindows:
        return EndlessWindows()
