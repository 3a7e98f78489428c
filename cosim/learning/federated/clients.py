"""Clients: data partitions carried by SUMO vehicles, with the vehicles' onboard devices.

A partition is bound to an eligible vehicle when it enters the network and is a client while
that vehicle is there; when the vehicle leaves, the client leaves the federation (and, with
``rebind``, its partition waits for the next eligible vehicle). Eligibility: the vehicle type, if
the scenario names one, and a seeded draw with probability ``share``, in order of entry, so the
same scenario and seed bind the same vehicles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cosim.learning.data.partition import ClientShard
from cosim.ports import MobilityPort
from cosim.scenario import ClientsConfig, DeviceProfile


@dataclass
class Client:
    index: int  # the partition's index
    shard: ClientShard
    vehicle: str | None = None
    profile: DeviceProfile | None = None
    bound_at: float | None = None
    rounds_selected: int = 0
    rounds_completed: int = 0
    ever_bound: bool = False
    last_loss: float | None = None
    last_round: int = 0


class ClientRegistry:
    """Keeps the vehicle <-> partition binding up to date as vehicles enter and leave."""

    def __init__(self, cfg: ClientsConfig, shards: list[ClientShard], seed: int,
                 vehicle_type: Callable[[str], str] | None = None):
        self.cfg = cfg
        self.clients = [Client(i, s) for i, s in enumerate(shards)]
        self.vehicle_type = vehicle_type
        self.rng = np.random.default_rng([seed, 23])
        self.by_vehicle: dict[str, Client] = {}
        self.fleet: set[str] = set()  # eligible vehicles in the network (they run the software)
        weights = np.array([p.weight for p in cfg.profiles], float)
        self._profile_p = weights / weights.sum()

    def update(self, entered, left, now: float) -> None:
        """Apply one mobility step: unbind vehicles that left, bind eligible newcomers."""
        for vehicle in left:
            self.fleet.discard(vehicle)
            client = self.by_vehicle.pop(vehicle, None)
            if client is not None:
                client.vehicle, client.profile, client.bound_at = None, None, None
        for vehicle in entered:
            if not self._eligible(vehicle):
                continue
            self.fleet.add(vehicle)
            free = [c for c in self.clients
                    if c.vehicle is None and (self.cfg.rebind or not c.ever_bound)]
            if not free:
                continue
            client = free[0]
            client.vehicle, client.bound_at, client.ever_bound = vehicle, now, True
            pick = int(self.rng.choice(len(self.cfg.profiles), p=self._profile_p))
            client.profile = self.cfg.profiles[pick]
            self.by_vehicle[vehicle] = client

    def bind_all(self) -> None:
        """Ideal connectivity: every partition always present, on a vehicle of its own name."""
        for client in self.clients:
            client.vehicle, client.bound_at, client.ever_bound = f"client{client.index}", 0.0, True
            pick = int(self.rng.choice(len(self.cfg.profiles), p=self._profile_p))
            client.profile = self.cfg.profiles[pick]

    def _eligible(self, vehicle: str) -> bool:
        if self.cfg.vehicles is not None and vehicle not in self.cfg.vehicles:
            return False
        if self.cfg.vehicle_type is not None and self.vehicle_type is not None \
                and self.vehicle_type(vehicle) != self.cfg.vehicle_type:
            return False
        return bool(self.rng.random() < self.cfg.share)

    def present(self) -> list[Client]:
        return [c for c in self.clients if c.vehicle is not None]


class FollowVehicles:
    """Partitions ride vehicles: bound as eligible vehicles enter, unbound as they leave."""

    def __init__(self, mobility: MobilityPort):
        self.mobility = mobility

    def bind(self, registry: ClientRegistry) -> None:
        self.mobility.subscribe(lambda states: registry.update(states.entered, states.left, states.t))


class EveryClientPresent:
    """Ideal connectivity: every partition is a client from the start, on a vehicle of its own."""

    def bind(self, registry: ClientRegistry) -> None:
        registry.bind_all()


def available_flops(profile: DeviceProfile, parked: bool) -> float:
    """FLOP/s a client's device gives to training now."""
    share = profile.parked_share if parked else profile.driving_share
    return profile.flops * profile.efficiency * share
