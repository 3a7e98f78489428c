"""The clients section: which SUMO vehicles are federated clients, and their devices."""

from __future__ import annotations

from pydantic import (
    Field,
    PositiveInt,
)

from cosim.scenario.base import StrictModel


class DeviceProfile(StrictModel):
    """A vehicle's onboard computer: how fast it trains, driving and parked."""

    name: str = "onboard"
    flops: float = Field(4e12, gt=0.0, le=1e21)  # peak FLOP/s of the onboard accelerator
    efficiency: float = Field(0.3, gt=0.0, le=1.0)  # achieved share of peak on training
    driving_share: float = Field(0.25, ge=0.0, le=1.0)  # left for training while driving
    parked_share: float = Field(1.0, ge=0.0, le=1.0)  # left for training while parked
    weight: float = Field(1.0, gt=0.0, le=1e6)  # relative frequency among client vehicles


class ClientsConfig(StrictModel):
    """Which SUMO vehicles are federated clients, and their devices."""

    count: PositiveInt = Field(20, le=100_000)  # = the data partitions
    vehicle_type: str | None = None  # only vehicles of this SUMO vType
    vehicles: list[str] | None = None  # only these SUMO vehicle ids
    share: float = Field(1.0, gt=0.0, le=1.0)  # of eligible entering vehicles, seeded draw
    rebind: bool = True  # a partition whose vehicle left waits for the next eligible vehicle
    profiles: list[DeviceProfile] = Field(default_factory=lambda: [DeviceProfile()])
    # Every client always present and every selected client completes: no radio in the way (the
    # paper's own setting), to set against connectivity-gated rounds.
    ideal_connectivity: bool = False


