"""The scenario: one validated pydantic object read by the CLI, the engine and the report.

Defaults live here and nowhere else. Unknown keys are rejected (with a did-you-mean), relative
input paths are resolved against the YAML file's folder, and a section that a later layer will
bring but that is not supported yet is an error rather than silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)


class StrictModel(BaseModel):
    """Base for every scenario section: unknown keys are errors, defaults are validated."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


def _resolve_input_file(value: Path, info: ValidationInfo) -> Path:
    base = Path((info.context or {}).get("base_dir", "."))
    path = value if value.is_absolute() else base / value
    path = path.resolve()
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    return path


InputFile = Annotated[Path, AfterValidator(_resolve_input_file)]
"""A file the scenario reads; relative to the YAML file's folder; must exist."""


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

    @model_validator(mode="after")
    def _one_network(self) -> MobilityConfig:
        given = [k for k in ("sumocfg", "net", "plain", "netgenerate") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one network source of sumocfg, net, plain, netgenerate"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if not self.sumocfg and not self.routes and self.demand is None:
            raise ValueError("no traffic: give routes or demand (or a sumocfg that has them)")
        return self


class LearningConfig(StrictModel):
    """The federated trainer (arrives with the learning issues); only disabling it works yet."""

    enabled: bool = True

    @field_validator("enabled")
    @classmethod
    def _only_disabled(cls, v: bool) -> bool:
        if v:
            raise ValueError(
                "the federated trainer is not part of this cosim version yet; "
                "set learning.enabled: false"
            )
        return v


class OutputConfig(StrictModel):
    """Where traces go and how densely they are sampled."""

    root: Path = Path("runs")  # relative to the working directory: runs/<name>-<timestamp>
    mobility_period_s: PositiveFloat = 1.0
    row_group_rows: PositiveInt = 65536


_NOT_YET = {
    "radio": "the radio layer",
    "clients": "the federated engine",
    "scheduling": "the federated engine",
    "aggregation": "the federated engine",
}


class Scenario(StrictModel):
    """One experiment: what moves, what connects, what learns, and where the traces go."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = Field(0, ge=0)
    duration_s: PositiveFloat
    mobility: MobilityConfig
    radio: Any = None
    clients: Any = None
    learning: LearningConfig | None = None
    scheduling: Any = None
    aggregation: Any = None
    output: OutputConfig = Field(default_factory=OutputConfig)

    @field_validator("radio", "clients", "scheduling", "aggregation", mode="before")
    @classmethod
    def _unsupported(cls, v: Any, info: ValidationInfo) -> Any:
        if v is not None:
            raise ValueError(
                f"section not supported by this cosim version yet (it arrives with "
                f"{_NOT_YET[info.field_name]}); remove it"
            )
        return v

    @model_validator(mode="after")
    def _whole_steps(self) -> Scenario:
        ratio = self.output.mobility_period_s / self.mobility.step_length_s
        if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-9:
            raise ValueError(
                f"output.mobility_period_s ({self.output.mobility_period_s} s) must be a whole "
                f"multiple of mobility.step_length_s ({self.mobility.step_length_s} s)"
            )
        return self

    @property
    def learning_enabled(self) -> bool:
        return self.learning is not None and self.learning.enabled
