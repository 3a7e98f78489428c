"""The mobility layer: a SimPy process that steps SUMO and publishes every vehicle's state.

The layer keeps one step of look-ahead: at engine time t it holds the states at the last SUMO step
(``current``) and at the next one (``upcoming``), so that a faster process (the radio, every
100 ms) can interpolate positions at any time in between, whatever order SimPy runs them in.
Engine time 0 is the end of the SUMO warm-up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cosim.engine import Engine, until
from cosim.errors import InputError
from cosim.mobility.geo import GeoReference
from cosim.mobility.location import read_location
from cosim.mobility.records import mobility_batch
from cosim.mobility.session import VehicleSource, VehicleStates
from cosim.scenario import MobilityConfig
from cosim.trace_schemas import MOBILITY, MOBILITY_SCHEMA


class MobilityLayer:
    """Steps SUMO on the engine clock, records the mobility trace, notifies listeners."""

    name = "mobility"

    def __init__(self, session: VehicleSource, cfg: MobilityConfig, record_period_s: float,
                 net_file: Path | None = None):
        """``record_period_s``: output.mobility_period_s, how often the trace records a row."""
        self.session = session
        self.step_s = cfg.step_length_s
        # a replayed trace starts where the live run's warm-up ended
        self.warmup_s = 0.0 if cfg.replay else cfg.warmup_s
        self.geo = geo_reference(cfg.geo_origin, net_file)
        # The scenario guarantees the sampling period is a whole number of steps.
        self.sample_every = round(record_period_s / self.step_s)
        self.listeners: list[Callable[[VehicleStates], None]] = []
        self.current: VehicleStates | None = None
        self.upcoming: VehicleStates | None = None
        self._offset = 0.0
        self._seen: set[str] = set()
        self._parked_seen: set[str] = set()
        self._peak = 0
        self._types: dict[str, str] = {}
        self._warm_up()
        session.prepare_records(self.geo, self.sample_every)

    def attach(self, engine: Engine) -> None:
        self.table = engine.traces.table(MOBILITY, MOBILITY_SCHEMA)
        self._offset = self.session.time()
        self.current = self._engine_time(self.session.read())
        self.upcoming = self._engine_time(self.session.step())
        engine.env.process(self._drive(engine))

    def _warm_up(self) -> None:
        """Step SUMO through the warm-up (a pipelined session does it while the run sets up)."""
        self.session.warm_up(round(self.warmup_s / self.step_s))

    def _engine_time(self, states: VehicleStates) -> VehicleStates:
        # ask a vehicle's type as soon as SUMO reports it: it may be gone a step later
        for vehicle in states.entered:
            self._types[vehicle] = self.session.vehicle_type(vehicle)
        return dataclasses.replace(states, t=round(states.t - self._offset, 9))

    def _drive(self, engine: Engine):
        k = 0
        while True:
            assert self.current is not None  # attach sets it before this process starts
            self._publish(self.current, record=k % self.sample_every == 0)
            k += 1
            yield until(engine.env, k * self.step_s, urgent=True)
            self.current = self.upcoming
            self.upcoming = self._engine_time(self.session.step())

    def _publish(self, states: VehicleStates, record: bool) -> None:
        self._seen.update(states.entered)
        if states.parked.any():
            self._parked_seen.update(states.ids[states.parked])
        self._peak = max(self._peak, len(states))
        if record:
            self._record(states)
        for listener in self.listeners:
            listener(states)

    def _record(self, s: VehicleStates) -> None:
        if s.record is not None:  # the session built the rows
            self.table.append(s.record)
            return
        self.table.append(mobility_batch(s, self._types, self.geo))

    def finish(self) -> None:
        """Record the look-ahead state too: the radio interpolated towards it in the last step,
        so a replay of the trace needs it."""
        assert self.upcoming is not None  # the engine finishes the layers it attached and ran
        k = round(self.upcoming.t / self.step_s)
        if k % self.sample_every == 0:
            self._record(self.upcoming)

    def subscribe(self, listener: Callable[[VehicleStates], None]) -> None:
        """Hear every step's states (who entered and left among them)."""
        self.listeners.append(listener)

    def is_parked(self, vehicle: str) -> bool:
        """Whether the vehicle is parked at the last step (False if it is not in the network)."""
        assert self.current is not None  # asked during the run, after attach
        return bool(self.current.parked[self.current.ids == vehicle].any())

    def vehicle_type(self, vehicle: str) -> str:
        """The SUMO vType of a vehicle in the network."""
        return self._types.get(vehicle) or self.session.vehicle_type(vehicle)

    def progress_fields(self) -> dict[str, str]:
        n = len(self.current) if self.current is not None else 0
        parked = int(self.current.parked.sum()) if self.current is not None else 0
        return {"vehicles": f"{n} ({parked} parked)"}

    def summary(self) -> dict[str, Any]:
        return {"vehicles_seen": len(self._seen), "vehicles_parked": len(self._parked_seen),
                "peak_vehicles": self._peak, "warmup_s": self.warmup_s,
                "step_length_s": self.step_s, "backend": type(self.session).__name__}


def geo_reference(geo_origin: Any, net_file: Path | None) -> GeoReference | None:
    """The scenario's ``geo_origin`` as a GeoReference ("network": the network's projection)."""
    if geo_origin is None:
        return None
    if geo_origin != "network":
        return GeoReference(origin=(geo_origin.lat, geo_origin.lon))
    if net_file is None:
        raise InputError(None, "mobility.geo_origin", "network: the run has no network file")
    where = read_location(net_file)
    if where.projection is None:
        raise InputError(net_file, "mobility.geo_origin", "network: the network has no projection "
                         "(projParameter); give geo_origin: {lat: ..., lon: ...}")
    return GeoReference(projection=where.projection, offset=where.offset)

