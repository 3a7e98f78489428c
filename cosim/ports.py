"""What the learning layer may ask of the layers below it, as typed ports.

The runner wires concrete layers (or stand-ins, such as the ideal link) into these ports; the
federated server sees nothing else of mobility or the radio.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import simpy

if TYPE_CHECKING:
    from cosim.mobility.session import VehicleStates
    from cosim.radio.cells import Cells


class MobilityPort(Protocol):
    """The vehicles in the network now, and their comings and goings."""

    @property
    def current(self) -> VehicleStates | None:
        """Every vehicle's state at the last SUMO step (None before the run starts)."""
        ...

    def is_parked(self, vehicle: str) -> bool: ...

    def vehicle_type(self, vehicle: str) -> str: ...

    def subscribe(self, listener: Callable[[VehicleStates], None]) -> None:
        """Call ``listener`` with each step's states (``entered`` and ``left`` among them)."""
        ...


class LinkPredictor(Protocol):
    def remaining_s(self, vehicle: str, now: float) -> float:
        """Predicted seconds until the vehicle's current connected window ends (0: none now)."""
        ...


class RadioPort(Protocol):
    """Moving bytes to and from a vehicle, and what a server can see of its link now."""

    @property
    def cells(self) -> Cells: ...

    def transfer(self, vehicle: str, nbytes: int, direction: str,
                 timeout_s: float | None = None) -> simpy.Event:
        """An event whose value is a ``TransferResult`` (``cosim.radio.transfers``)."""
        ...

    def serving_cell(self, vehicle: str) -> int:
        """The vehicle's serving cell now (-1: not connected)."""
        ...

    def rate_bps(self, vehicle: str, direction: str = "up") -> float:
        """The vehicle's single-user rate now, "down" or "up"."""
        ...

    def history_predictor(self) -> LinkPredictor:
        """Link-window predictions from what the network has seen so far."""
        ...
