"""The mobility section: a SUMO network, its demand, and how SUMO is driven."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from cosim.scenario.base import InputFile, InputFiles, OptionList, StrictModel, TraceFile

# Every other name SUMO 1.28 takes for an option (``sumo --save-template``'s synonymes), to its
# own name: the checks below judge an option by what SUMO takes it for.
SUMO_SYNONYMS = {
    "c": "configuration-file", "configuration": "configuration-file", "C": "save-configuration",
    "save-config": "save-configuration", "save-config.relative": "save-configuration.relative",
    "save-template.commented": "save-commented", "n": "net-file", "net": "net-file",
    "r": "route-files", "routes": "route-files", "a": "additional-files",
    "additional": "additional-files", "w": "weight-files", "weights": "weight-files",
    "measure": "weight-attribute", "x": "weight-attribute", "H": "human-readable-time",
    "ndump": "netstate-dump", "netstate": "netstate-dump", "netstate-output": "netstate-dump",
    "dump-empty-edges": "netstate-dump.empty-edges",
    "netstate-output.empty-edges": "netstate-dump.empty-edges",
    "netstate.empty-edges": "netstate-dump.empty-edges",
    "dump-precision": "netstate-dump.precision",
    "netstate-output.precision": "netstate-dump.precision",
    "netstate.precision": "netstate-dump.precision", "person-fcd": "person-fcd-output",
    "summary": "summary-output", "tripinfo": "tripinfo-output", "personinfo": "personinfo-output",
    "vehroutes": "vehroute-output", "vehroutes.exit-times": "vehroute-output.exit-times",
    "vehroutes.last-route": "vehroute-output.last-route",
    "vehroutes.sorted": "vehroute-output.sorted", "vehroutes.dua": "vehroute-output.dua",
    "vehroutes.intended-depart": "vehroute-output.intended-depart",
    "vehroutes.route-length": "vehroute-output.route-length",
    "personroutes": "personroute-output", "statistics-output": "statistic-output", "b": "begin",
    "e": "end", "s": "route-steps", "railsignal.moving-block": "railsignal-moving-block",
    "carfollow.model": "default.carfollowmodel",
    "device.rerouting.knownveh": "device.rerouting.explicit",
    "device.routing.period": "device.rerouting.period",
    "device.routing.pre-period": "device.rerouting.pre-period",
    "device.routing.adaptation-weight": "device.rerouting.adaptation-weight",
    "device.routing.adaptation-steps": "device.rerouting.adaptation-steps",
    "device.routing.adaptation-interval": "device.rerouting.adaptation-interval",
    "device.routing.with-taz": "device.rerouting.with-taz",
    "with-taz": "device.rerouting.with-taz", "routing-threads": "device.rerouting.threads",
    "person-device.rerouting.knownveh": "person-device.rerouting.explicit",
    "person-device.routing.period": "person-device.rerouting.period", "v": "verbose", "?": "help",
    "V": "version", "X": "xml-validation", "W": "no-warnings", "suppress-warnings": "no-warnings",
    "l": "log", "log-file": "log", "no-duration-log": "duration-log.disable",
    "t": "duration-log.statistics", "device.emissions.knownveh": "device.emissions.explicit",
    "device.btreceiver.knownveh": "device.btreceiver.explicit",
    "device.btsender.knownveh": "device.btsender.explicit",
    "person-device.btsender.knownveh": "person-device.btsender.explicit",
    "person-device.btreceiver.knownveh": "person-device.btreceiver.explicit",
    "device.stationfinder.knownveh": "device.stationfinder.explicit",
    "device.battery.knownveh": "device.battery.explicit",
    "device.example.knownveh": "device.example.explicit",
    "device.ssm.knownveh": "device.ssm.explicit", "device.toc.knownveh": "device.toc.explicit",
    "device.driverstate.knownveh": "device.driverstate.explicit",
    "device.bluelight.knownveh": "device.bluelight.explicit",
    "device.fcd.knownveh": "device.fcd.explicit",
    "person-device.fcd.knownveh": "person-device.fcd.explicit",
    "device.elechybrid.knownveh": "device.elechybrid.explicit",
    "device.taxi.knownveh": "device.taxi.explicit", "taxi.vclasses": "device.taxi.vclasses",
    "device.glosa.knownveh": "device.glosa.explicit",
    "device.tripinfo.knownveh": "device.tripinfo.explicit",
    "device.vehroute.knownveh": "device.vehroute.explicit",
    "device.friction.knownveh": "device.friction.explicit",
    "device.fcd-replay.knownveh": "device.fcd-replay.explicit",
    "device.fcd-replay.file": "device.fcd-replay.files",
    "meso.ignore-lanes.by-vclass": "meso-ignore-lanes-by-vclass", "abs-rand": "random",
    "srand": "seed", "g": "gui-settings-file", "Q": "quit-on-end", "G": "game", "S": "start",
    "d": "delay", "B": "breakpoints", "data-files": "edgedata-files", "m": "edgedata-files",
    "N": "alternative-net-file", "D": "demo", "T": "disable-textures",
}


def sumo_option_name(name: str) -> str:
    """SUMO's own name for the option ``name`` (no dashes), which may be a synonym."""
    return SUMO_SYNONYMS.get(name, name)


# SUMO options a run sets itself (session.py), and where their values come from: given again in
# sumo_options they would contradict the scenario (SUMO takes the last value)
SET_BY_COSIM = {
    "step-length": "mobility.step_length_s", "seed": "the scenario's seed",
    "configuration-file": "mobility.sumocfg", "net-file": "the network",
    "route-files": "mobility.routes", "additional-files": "mobility.additional",
    "log": "the run's sumo.log", "begin": "the warm-up and duration_s", "end": "duration_s",
    "remote-port": "the TraCI backend",
    # it renames every file SUMO writes, the run's sumo.log too, past the checks of their paths
    "output-prefix": "the run's sumo.log, which it would rename",
    "output-suffix": "the run's sumo.log, which it would rename",
    # a fresh seed per start would make the same scenario and seed give other traces
    "random": "the scenario's seed",
}
# devices that write files of their own naming (ssm_<vehicle>.xml, ...), asked for by their
# options or by a vehicle's or type's <param> (has.ssm.device, device.ssm.file)
DEVICE_WRITERS = ("ssm", "toc")


def device_writer(key: str) -> str | None:
    """The file-writing device a SUMO option or ``<param>`` key asks for, or None."""
    for device in DEVICE_WRITERS:
        if key.startswith(f"device.{device}.") or key == f"has.{device}.device":
            return device
    return None


SUMO_TRUE = ("true", "1", "yes", "on", "x", "t")  # SUMO's spellings of a true boolean


def sumo_option_values(options: list[str]) -> dict[str, str]:
    """SUMO's own option name (no dashes) -> value, as SUMO reads a command line (a bare flag
    is true)."""
    values = {}
    for i, item in enumerate(options):
        if not item.startswith("-"):
            continue
        name, sep, value = item.lstrip("-").partition("=")
        if not sep:
            following = options[i + 1] if i + 1 < len(options) else "-"
            value = "true" if following.startswith("-") else following
        values[sumo_option_name(name)] = value
    return values


def outputs_named_by_sumo(values: Mapping[str, str]) -> tuple[str, str] | None:
    """(option, why) when SUMO options (name -> value) would make SUMO write files under names
    of its own making, which cosim cannot check before the run; None when they do not."""
    states = ("states named from a prefix (state_<time>.xml.gz, by default in the working "
              "folder) that cosim cannot check; name each state with save-state.times and "
              "save-state.files")
    if "save-state.period" in values:
        return "save-state.period", f"saves {states}"
    if "save-state.times" in values and "save-state.files" not in values:
        return "save-state.times", f"without save-state.files saves {states}"
    if "vtk-output" in values:
        return "vtk-output", ("writes a file per step (<prefix>_<time>.vtp) that cosim cannot "
                              "check; remove it")
    if ("elechybrid-output" in values
            and values.get("elechybrid-output.aggregated", "").lower() not in SUMO_TRUE):
        return "elechybrid-output", ("without elechybrid-output.aggregated writes a file per "
                                     "vehicle (<file>_<vehicle>.xml) that cosim cannot check")
    return None


# Options after which SUMO writes a file or prints and stops instead of simulating.
STOPS_SUMO = ("save-configuration", "save-template", "save-schema", "help", "version")


class PlainNetwork(StrictModel):
    """A network written as plain SUMO XML and built (cached) with netconvert."""

    nodes: InputFile
    edges: InputFile
    netconvert_options: OptionList = Field(
        default_factory=lambda: [
            "--tls.guess", "true",
            "--junctions.join", "true",
            "--junctions.join-dist", "18",
            "--no-turnarounds.except-deadend", "true",
        ]
    )


class ParkingDemand(StrictModel):
    """Parking areas placed on the network and a share of trips that park on the way."""

    areas: PositiveInt = Field(20, le=100_000)
    share: float = Field(0.25, ge=0.0, le=1.0)
    duration_s: tuple[PositiveFloat, PositiveFloat] = (300.0, 1800.0)
    min_edge_length_m: PositiveFloat = Field(80.0, le=100_000.0)

    @model_validator(mode="after")
    def _ordered(self) -> ParkingDemand:
        if self.duration_s[0] > self.duration_s[1]:
            raise ValueError("duration_s must be [min, max] with min <= max")
        return self


class RandomTripsDemand(StrictModel):
    """Demand from SUMO's randomTrips.py, routed with duarouter (cached per seed)."""

    # seconds between departures; a list splits the time into equal intervals, one period each
    period_s: PositiveFloat | list[PositiveFloat] = 1.0
    begin_s: NonNegativeFloat = 0.0
    end_s: PositiveFloat | None = None  # default: warm-up + duration
    fringe_factor: PositiveFloat = 5.0
    min_distance_m: float = Field(300.0, ge=0.0, le=1e7)
    parking: ParkingDemand | None = None
    random_trips_options: OptionList = Field(default_factory=list)
    # With mobility.routes: add these random trips to the given routes (else both is an error:
    # a user's own routes are what runs unless more traffic is asked for)
    add_random: bool = False

    @model_validator(mode="after")
    def _window(self) -> RandomTripsDemand:
        if isinstance(self.period_s, list) and not self.period_s:
            raise ValueError("period_s: give a period or a non-empty list of periods")
        if self.end_s is not None and self.end_s <= self.begin_s:
            raise ValueError(f"end_s ({self.end_s:g} s) must be after begin_s ({self.begin_s:g} s)")
        return self


class GeoOrigin(StrictModel):
    """Latitude/longitude of the network's (0, 0); lon/lat are computed on a local tangent plane."""

    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)


class GuiConfig(StrictModel):
    """How ``backend: gui`` shows the run: sumo-gui waits ``delay_ms`` between steps (SUMO's own
    default, 0, is too fast to watch), loads a view ``settings_file`` (sumo-gui's XML: zoom,
    scheme, ...), and with ``keep_open`` leaves the window open at the end (cosim waits until
    it is closed). Cells are drawn as POIs and vehicles coloured by their serving cell every
    ``colour_period_s``."""

    delay_ms: float = Field(100.0, ge=0.0, le=10_000.0)
    settings_file: InputFile | None = None
    keep_open: bool = False
    colour_period_s: float = Field(1.0, gt=0.0, le=3600.0)


class MobilityConfig(StrictModel):
    """Where vehicles come from: a SUMO network, its demand, and how SUMO is driven."""

    backend: Literal["libsumo", "traci", "gui"] = "libsumo"
    # libsumo in a child process stepping ahead while this one runs the radio and learning (two
    # cores overlap; the states are identical). false: libsumo inside this process.
    pipeline: bool = True
    # SUMO counts time in whole milliseconds: a shorter step is not a step it can take
    step_length_s: float = Field(1.0, ge=0.001, le=3600.0)
    warmup_s: NonNegativeFloat = 0.0
    sumocfg: InputFile | None = None
    net: InputFile | None = None
    plain: PlainNetwork | None = None
    netgenerate: OptionList | None = None
    routes: InputFiles = Field(default_factory=list)
    additional: InputFiles = Field(default_factory=list)
    demand: RandomTripsDemand | None = None
    # lon/lat of the trace: {lat, lon} of the network's (0, 0) (a tangent plane, metres-accurate
    # over a few km), or "network": the network's own projection (a network converted from
    # OpenStreetMap carries it), exact; none: lon/lat stay empty
    geo_origin: GeoOrigin | Literal["network"] | None = None
    sumo_options: OptionList = Field(default_factory=list)
    # A recorded run's mobility trace drives the radio and learning instead of SUMO; the network
    # is still read (cell placement, plots); demand and warm-up are not used.
    replay: TraceFile | None = None
    gui: GuiConfig | None = None  # backend gui only (defaults when absent)

    @field_validator("sumo_options")
    @classmethod
    def _options_sumo_may_take(cls, options: list[str]) -> list[str]:
        """Refuse options that cosim sets itself or that make SUMO exit instead of simulating."""
        for item in options:
            if not item.startswith("-"):
                continue
            given = item.lstrip("-").partition("=")[0]
            name = sumo_option_name(given)  # a synonym is judged as the option it names
            said = item.partition("=")[0] + (f" (SUMO's --{name})" if name != given else "")
            if name in SET_BY_COSIM:
                raise ValueError(f"{said} is cosim's to set (from {SET_BY_COSIM[name]}); "
                                 "remove it")
            if device_writer(name):
                raise ValueError(f"{said}: SUMO's {device_writer(name)} device writes files "
                                 "(by default into the working folder) that cosim cannot check; "
                                 "remove it")
            if name in STOPS_SUMO:
                raise ValueError(f"{said} makes SUMO stop instead of simulating; remove it")
        if (named := outputs_named_by_sumo(sumo_option_values(options))) is not None:
            raise ValueError(f"--{named[0]} {named[1]}")
        return options

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
        if self.routes and self.demand is not None and not self.demand.add_random:
            raise ValueError("routes and demand both given: the demand would add random trips to "
                             "your routes; remove demand, or set demand.add_random: true")
        if self.gui is not None and self.backend != "gui":
            raise ValueError(f"gui: only with backend: gui (backend is {self.backend})")
        return self


