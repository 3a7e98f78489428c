"""The mobility section: a SUMO network, its demand, and how SUMO is driven."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from cosim.scenario.base import InputFile, StrictModel, TraceFile


class PlainNetwork(StrictModel):
    """A network written as plain SUMO XML and built (cached) with netconvert."""

    nodes: InputFile
    edges: InputFile
    netconvert_options: list[str] = Field(
        default_factory=lambda: [
            "--tls.guess", "true",
            "--junctions.join", "true",
            "--junctions.join-dist", "18",
            "--no-turnarounds.except-deadend", "true",
        ]
    )


class ParkingDemand(StrictModel):
    """Parking areas placed on the network and a share of trips that park on the way."""

    areas: PositiveInt = 20
    share: float = Field(0.25, ge=0.0, le=1.0)
    duration_s: tuple[PositiveFloat, PositiveFloat] = (300.0, 1800.0)
    min_edge_length_m: PositiveFloat = 80.0

    @model_validator(mode="after")
    def _ordered(self) -> ParkingDemand:
        if self.duration_s[0] > self.duration_s[1]:
            raise ValueError("duration_s must be [min, max] with min <= max")
        return self


class RandomTripsDemand(StrictModel):
    """Demand from SUMO's randomTrips.py, routed with duarouter (cached per seed)."""

    period_s: PositiveFloat | list[PositiveFloat] = 1.0
    begin_s: NonNegativeFloat = 0.0
    end_s: PositiveFloat | None = None  # default: warm-up + duration
    fringe_factor: PositiveFloat = 5.0
    min_distance_m: NonNegativeFloat = 300.0
    parking: ParkingDemand | None = None
    random_trips_options: list[str] = Field(default_factory=list)


class GeoOrigin(StrictModel):
    """Latitude/longitude of the network's (0, 0); lon/lat are computed on a local tangent plane."""

    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)


class MobilityConfig(StrictModel):
    """Where vehicles come from: a SUMO network, its demand, and how SUMO is driven."""

    backend: Literal["libsumo", "traci", "gui"] = "libsumo"
    # libsumo in a child process stepping ahead while this one runs the radio and learning (two
    # cores overlap; the states are identical). false: libsumo inside this process.
    pipeline: bool = True
    step_length_s: PositiveFloat = 1.0
    warmup_s: NonNegativeFloat = 0.0
    sumocfg: InputFile | None = None
    net: InputFile | None = None
    plain: PlainNetwork | None = None
    netgenerate: list[str] | None = None
    routes: list[InputFile] = Field(default_factory=list)
    additional: list[InputFile] = Field(default_factory=list)
    demand: RandomTripsDemand | None = None
    geo_origin: GeoOrigin | None = None
    sumo_options: list[str] = Field(default_factory=list)
    # A recorded run's mobility trace drives the radio and learning instead of SUMO; the network
    # is still read (cell placement, plots); demand and warm-up are not used.
    replay: TraceFile | None = None

    @model_validator(mode="after")
    def _one_network(self) -> MobilityConfig:
        given = [k for k in ("sumocfg", "net", "plain", "netgenerate") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one network source of sumocfg, net, plain, netgenerate"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if not self.sumocfg and not self.routes and self.demand is None and self.replay is None:
            raise ValueError("no traffic: give routes or demand (or a sumocfg that has them)")
        return self


