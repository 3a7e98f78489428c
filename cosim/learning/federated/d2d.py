"""Device-to-device delivery of a finished update (the ``d2d`` section): relaying through a
neighbour, over the V2V sidelink (``cosim.radio.sidelink``).

A relay is chosen among the vehicles the client hears now that have a serving cell: the one that
would deliver soonest at the rates now (sidelink, then the neighbour's uplink). The update goes
over the sidelink, then up the neighbour's cellular link; the neighbour's own round, if it has
one, shares that uplink like any other transfer.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Generator
from dataclasses import dataclass
from typing import Any, Protocol

import simpy

from cosim.ports import RadioPort
from cosim.radio.transfers import TransferResult


class SidelinkPort(Protocol):
    """What the learning layer may ask of the sidelink."""

    def neighbours(self, vehicle: str) -> dict[str, float]: ...

    def rate_bps(self, a: str, b: str) -> float: ...

    def transfer(self, src: str, dst: str, nbytes: int, timeout_s: float | None = None
                 ) -> simpy.Event: ...

    def track(self, talkers: Callable[[], Any], fleet: Callable[[], Any]) -> None: ...


@dataclass(frozen=True)
class RelayOutcome:
    """How a relayed delivery ended: the relay used (None: nobody in reach), the bytes that went
    over the sidelink, and each hop's result (sidelink, then the relay's uplink)."""

    relay: str | None
    bytes_sidelink: int
    results: tuple[TransferResult, ...] = ()

    @property
    def result(self) -> TransferResult | None:
        """The last hop's result: how the delivery ended."""
        return self.results[-1] if self.results else None


class Relay:
    """Hands a client's finished update to a neighbour with an uplink."""

    def __init__(self, env: simpy.Environment, radio: RadioPort, sidelink: SidelinkPort,
                 relays: Callable[[], Collection[str]]):
        self.env, self.radio, self.sidelink, self.relays = env, radio, sidelink, relays
        self.tried = 0
        self.no_neighbour = 0

    def choose(self, vehicle: str, nbytes: int) -> str | None:
        """The neighbour that would deliver ``nbytes`` soonest at the rates now; None if no
        neighbour in the fleet has a serving cell."""
        allowed = self.relays()
        best, best_s = None, float("inf")
        for other, sl_rate in sorted(self.sidelink.neighbours(vehicle).items()):
            if other not in allowed or self.radio.serving_cell(other) < 0:
                continue
            ul_rate = self.radio.rate_bps(other, "up")
            if ul_rate <= 0.0 or sl_rate <= 0.0:
                continue
            seconds = 8.0 * nbytes / sl_rate + 8.0 * nbytes / ul_rate
            if seconds < best_s:
                best, best_s = other, seconds
        return best

    def deliver(self, vehicle: str, nbytes: int, deadline: float
                ) -> Generator[simpy.Event, Any, RelayOutcome]:
        """Sidelink to the chosen neighbour, then its uplink, both before ``deadline``."""
        self.tried += 1
        relay = self.choose(vehicle, nbytes)
        if relay is None:
            self.no_neighbour += 1
            return RelayOutcome(None, 0)
        side = yield self.sidelink.transfer(vehicle, relay, nbytes, timeout_s=self._left(deadline))
        if not side.ok:
            return RelayOutcome(relay, int(side.bytes_moved), (side,))
        up = yield self.radio.transfer(relay, nbytes, "up", timeout_s=self._left(deadline))
        return RelayOutcome(relay, nbytes, (side, up))

    def _left(self, deadline: float) -> float:
        return max(deadline - self.env.now, 1e-9)

    def summary(self) -> dict[str, int]:
        return {"tried": self.tried, "no_neighbour": self.no_neighbour}
