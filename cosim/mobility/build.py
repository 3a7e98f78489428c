"""Turn a scenario's mobility section into SUMO inputs: a built network and routed demand.

Networks come from plain XML via netconvert or from netgenerate; demand from randomTrips.py,
optionally with parking stops, routed by duarouter. Everything is cached by content, so the
same scenario and seed reuse the same files (and give the same vehicles).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cosim.cache import cached_folder, content_key
from cosim.errors import InputError, warn
from cosim.mobility.sumo_tools import SumoToolError, binary, run_tool, sumo_version, tool
from cosim.scenario import MobilityConfig, ParkingDemand, RandomTripsDemand
from cosim.scenario.base import FieldError


@dataclass(frozen=True)
class SumoInputs:
    """What SUMO is started with: a config file, or a network plus route and additional files."""

    net: Path | None
    sumocfg: Path | None = None
    routes: list[Path] = field(default_factory=list)
    additional: list[Path] = field(default_factory=list)


def network_file(inputs: SumoInputs) -> Path | None:
    """The ``.net.xml`` SUMO runs on (read from the sumocfg when the scenario gives one)."""
    from cosim.mobility.declared_outputs import sumocfg_entries
    from cosim.scenario.base import readable_input

    if inputs.net is not None or inputs.sumocfg is None:
        return inputs.net
    for net in sumocfg_entries(inputs.sumocfg, lambda name: False).nets:
        try:
            return readable_input(net.resolve())
        except ValueError as exc:
            raise InputError(inputs.sumocfg, "mobility.sumocfg", f"<net-file>: {exc}") from None
    return None


def prepare_inputs(m: MobilityConfig, seed: int, duration_s: float, source: Path | None = None,
                   check_network: Callable[[Path | None], None] | None = None) -> SumoInputs:
    """Build (or fetch from the cache) everything SUMO needs for a mobility section; generated
    demand draws from ``seed`` and lasts the warm-up plus ``duration_s``. ``check_network`` gets
    the network file as soon as it exists, before the demand is built (a cell far from the
    network fails fast)."""
    check = check_network or (lambda net: None)
    if m.sumocfg:
        inputs = SumoInputs(net=None, sumocfg=m.sumocfg, routes=m.routes, additional=m.additional)
        check(network_file(inputs))
    else:
        net = m.net or build_network(m, source)
        check(net)  # before demand: a bad input fails fast
        routes, additional = list(m.routes), list(m.additional)
        if m.demand is not None and m.replay is None:  # a replay needs the network, not traffic
            end = m.demand.end_s or (m.warmup_s + duration_s)
            demand_routes, demand_adds = build_demand(net, m.demand, seed, end, source)
            routes.append(demand_routes)
            additional.extend(demand_adds)
        inputs = SumoInputs(net=net, routes=routes, additional=additional)
    if m.geo_origin is None:  # the one place lon/lat come from
        warn(source, "mobility.geo_origin", "not given, so the mobility trace's lon/lat columns "
             "stay empty (null); give the lat/lon of the network's (0, 0) to fill them")
    return inputs


def check_sumo_loads(inputs: SumoInputs, options: list[str], source: Path | None = None) -> None:
    """SUMO's own loader reads the network, every route (``--route-steps 0``: all of them, not
    only the first 200 s) and the additional files, and stops after one second (an edge-data
    dump needs an interval): a route over a missing edge or a broken file is an input error
    before the run's folder. Cached by the content of every file SUMO reads."""
    from cosim.bounded_read import virtual_file
    from cosim.destinations import (
        sumo_read_paths,
        sumo_readers,
        sumo_writers,
        without_writers,
        writes_file,
    )
    from cosim.mobility.declared_outputs import (
        SumocfgEntries,
        aside_copy,
        declared_sumo_outputs,
        included_files,
        read_by_elements,
        refuse_device_writers,
        sumocfg_entries,
    )

    refuse_device_writers([("mobility.routes", p) for p in inputs.routes],
                          [("mobility.additional", p) for p in inputs.additional], inputs.sumocfg)
    writers = sumo_writers(binary("sumo"))
    opts = without_writers(options, writers)
    # the files SUMO loads: the scenario's replace the sumocfg's, as on the command line
    cfg = (sumocfg_entries(inputs.sumocfg, lambda n: writes_file(n, writers))
           if inputs.sumocfg else SumocfgEntries([], [], [], []))
    adds = list(inputs.additional) or cfg.additional
    net = inputs.net or (cfg.nets[0] if cfg.nets else None)
    declaring = [p for p in adds if declared_sumo_outputs([p], None, lambda n: False)]
    net_declares = net is not None and bool(declared_sumo_outputs([], None, lambda n: False, net))
    # every file SUMO reads is in the key: an edited route the sumocfg names is loaded again
    loaded = [p for p in (inputs.sumocfg, inputs.net, *cfg.nets[:1], *inputs.routes, *cfg.routes,
                          *inputs.additional, *adds) if p]
    files = [*loaded, *(inc for add in dict.fromkeys([*inputs.additional, *adds])
                        for inc in (*included_files(add, "mobility.additional"),
                                    *read_by_elements(add, "mobility.additional"))),
             *(inc for route in dict.fromkeys([*inputs.routes, *cfg.routes])
               for inc in included_files(route, "mobility.routes"))]
    for file in files:  # hashed below: never a FIFO or a device
        if file.exists() and (not file.is_file() or virtual_file(file)):
            raise InputError(file, None, "not a regular file (SUMO reads its inputs from files)")
    # what mobility.sumo_options give SUMO to read (weights, a state, ...): regular files hashed
    for read in sumo_read_paths(opts, sumo_readers(binary("sumo"))):
        if read.exists() and not read.is_dir() and (not read.is_file() or virtual_file(read)):
            raise InputError(source, "mobility.sumo_options", f"{read}: not a regular file "
                             "(SUMO would wait on it or read it for ever)")
        if read.is_file():
            files.append(read.absolute())
    files = [f for f in files if f.exists()]  # a missing one: SUMO's loader says so
    key = content_key(["sumo-load", sumo_version(), *files, *opts])

    def load(folder: Path) -> None:
        cmd = [binary("sumo")]
        if inputs.sumocfg:
            cmd += ["-c", str(inputs.sumocfg)]
        if net_declares:  # its traffic lights' detector outputs written into this folder
            assert net is not None
            cmd += ["-n", str(aside_copy(net, folder, "network", ".net.xml"))]
        elif inputs.net:
            cmd += ["-n", str(inputs.net)]
        if inputs.routes:
            cmd += ["-r", ",".join(str(p) for p in inputs.routes)]
        # the files an input declares SUMO would write: written into this folder instead
        loaded_adds = [aside_copy(p, folder, f"additional-{i}")
                       if p in declaring else p
                       for i, p in enumerate(adds)] if declaring else list(inputs.additional)
        if loaded_adds:
            cmd += ["-a", ",".join(str(p) for p in loaded_adds)]
        for i, (name, _) in enumerate(cfg.outputs):
            cmd += [f"--{name}", str(folder / f"sumocfg-output-{i}.xml")]
        cmd += ["--route-steps", "0", "--begin", "0", "--end", "1", "--no-step-log", "true",
                "--duration-log.disable", "true", "--no-warnings", "true", *opts]
        loaded_file = inputs.sumocfg or inputs.net
        assert loaded_file is not None  # prepare_inputs sets one of them (the network is built if need be)
        loaded = loaded_file.name
        _run_as_input(cmd, folder / "sumo-load.log", source, "mobility",
                      f"SUMO could not load {loaded} with the routes and additional files")

    cached_folder("sumo-loads", key, load)


# what cosim gives netconvert itself (build_network)
NETCONVERT_SETS = ("output-file", "node-files", "edge-files", "offset.disable-normalization")


def files_read_along(m: MobilityConfig, source: Path | None = None) -> list[Path]:
    """The existing files SUMO and its build tools read for this mobility section beyond those
    it names itself: a sumocfg's entries, what route and additional files include or make SUMO
    read, and the files ``sumo_options`` and the build tools' options name. What identifies a
    scenario's inputs (a compare's digest) must change when any of them is edited."""
    from cosim.destinations import sumo_read_paths, sumo_readers, sumo_writers, without_writers
    from cosim.mobility.declared_outputs import included_files, read_by_elements, sumocfg_entries
    from cosim.mobility.tool_options import (
        files_read,
        random_trips_options,
        sumo_tool_options,
    )

    found: list[Path] = []
    routes, additional = list(m.routes), list(m.additional)
    if m.sumocfg is not None:
        entries = sumocfg_entries(m.sumocfg, lambda name: False)
        found += [*entries.nets, *entries.routes, *entries.additional]
        routes += entries.routes
        additional += entries.additional
    for path in dict.fromkeys(routes + additional):
        if path.is_file():
            found += [*included_files(path, "mobility"), *read_by_elements(path, "mobility")]
    options = without_writers(m.sumo_options, sumo_writers(binary("sumo")))
    found += sumo_read_paths(options, sumo_readers(binary("sumo")))
    if m.plain is not None:
        found += files_read(m.plain.netconvert_options, sumo_tool_options(
            binary("netconvert"), NETCONVERT_SETS), "mobility.plain.netconvert_options", source)
    if m.netgenerate:
        found += files_read(list(m.netgenerate), sumo_tool_options(
            binary("netgenerate"), ("output-file",)), "mobility.netgenerate", source)
    if m.demand is not None:
        found += files_read(m.demand.random_trips_options, random_trips_options(
            tool("randomTrips.py")), "mobility.demand.random_trips_options", source)
    return sorted({p.absolute() for p in found if p.is_file()})


def build_network(m: MobilityConfig, source: Path | None = None) -> Path:
    """A ``.net.xml`` built with netconvert (plain XML) or netgenerate, cached by content."""
    from cosim.mobility.tool_options import check_tool_options, files_read, sumo_tool_options

    if m.plain is not None:
        plain = m.plain
        field = "mobility.plain.netconvert_options"
        netconvert = sumo_tool_options(binary("netconvert"), NETCONVERT_SETS)
        check_tool_options(plain.netconvert_options, netconvert, field, source)
        cmd_tail = ["--offset.disable-normalization", "true", *plain.netconvert_options]
        key = content_key(["netconvert", sumo_version(), plain.nodes, plain.edges, *cmd_tail,
                           *files_read(plain.netconvert_options, netconvert, field, source)])

        def build(folder: Path) -> None:
            cmd = [binary("netconvert"), "--node-files", str(plain.nodes),
                   "--edge-files", str(plain.edges), "-o", str(folder / "net.net.xml"),
                   *cmd_tail]
            _run_as_input(cmd, folder / "netconvert.log", source,
                          "mobility.plain", f"netconvert could not build {plain.edges.name}")
    else:
        args = list(m.netgenerate or [])
        netgenerate = sumo_tool_options(binary("netgenerate"), ("output-file",))
        check_tool_options(args, netgenerate, "mobility.netgenerate", source)
        key = content_key(["netgenerate", sumo_version(), *args,
                           *files_read(args, netgenerate, "mobility.netgenerate", source)])

        def build(folder: Path) -> None:
            _check_generated_size(args, source)
            cmd = [binary("netgenerate"), *args, "-o", str(folder / "net.net.xml")]
            _run_as_input(cmd, folder / "netgenerate.log", source, "mobility.netgenerate",
                          "netgenerate failed")
    return cached_folder("networks", key, build) / "net.net.xml"


def build_demand(
    net: Path, demand: RandomTripsDemand, seed: int, end_s: float, source: Path | None = None
) -> tuple[Path, list[Path]]:
    """Routed trips (and parking areas) for one seed, cached by net, demand settings and seed."""
    from cosim.mobility.tool_options import check_tool_options, files_read, random_trips_options

    field, random_trips = "mobility.demand.random_trips_options", random_trips_options(
        tool("randomTrips.py"))
    check_tool_options(demand.random_trips_options, random_trips, field, source)
    settings = json.dumps(demand.model_dump(mode="json"), sort_keys=True)
    key = content_key(["demand", sumo_version(), net, settings, str(seed), repr(end_s),
                       *files_read(demand.random_trips_options, random_trips, field, source)])

    def build(folder: Path) -> None:
        trips = folder / "trips.xml"
        periods = demand.period_s if isinstance(demand.period_s, list) else [demand.period_s]
        _check_random_trips_size(demand, end_s, periods, source)
        cmd = [
            tool("randomTrips.py"), "-n", str(net), "-o", str(trips), "--seed", str(seed),
            "-b", repr(demand.begin_s), "-e", repr(end_s), "-p", *map(repr, periods),
            "--fringe-factor", repr(demand.fringe_factor),
            "--min-distance", repr(demand.min_distance_m),
            "--vehicle-class", "passenger", "--prefix", "veh",
            "--trip-attributes", 'departLane="best" departSpeed="max"',
            "--no-validate", *demand.random_trips_options,
        ]
        _run_as_input(cmd, folder / "randomTrips.log", source, "mobility.demand",
                      "randomTrips failed")
        additional: list[Path] = []
        if demand.parking is not None:
            parking = folder / "parking.add.xml"
            try:
                area_ids = write_parking_areas(net, demand.parking, seed, parking)
            except InputError as exc:
                raise InputError(source, exc.field, exc.message) from None
            add_parking_stops(trips, area_ids, demand.parking, seed)
            additional.append(parking)
        cmd = [binary("duarouter"), "-n", str(net), "--route-files", str(trips),
               "-o", str(folder / "routes.rou.xml"), "--ignore-errors", "true",
               "--no-step-log", "true", "--seed", str(seed)]
        for add in additional:
            cmd += ["--additional-files", str(add)]
        _run_as_input(cmd, folder / "duarouter.log", source, "mobility.demand",
                      "duarouter failed")

    folder = cached_folder("demand", key, build)
    adds = [folder / "parking.add.xml"] if demand.parking is not None else []
    return folder / "routes.rou.xml", adds


def write_parking_areas(net_file: Path, parking: ParkingDemand, seed: int, out: Path) -> list[str]:
    """Place on-street parking areas on long inner edges; return their ids."""
    import sumolib

    net = sumolib.net.readNet(str(net_file))
    eligible = sorted(
        (e for e in net.getEdges()
         if e.allows("passenger") and not e.is_fringe() and e.getFunction() == ""
         and e.getLanes()[0].getLength() >= parking.min_edge_length_m),
        key=lambda e: e.getID(),
    )
    if not eligible:
        raise InputError(None, "mobility.demand.parking",
                         f"no edge of {net_file.name} is at least "
                         f"{parking.min_edge_length_m} m long to hold a parking area")
    rng = np.random.default_rng([seed, 1])
    chosen = rng.choice(len(eligible), size=min(parking.areas, len(eligible)), replace=False)
    ids = []
    with open(out, "w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n<additional>\n')
        for idx in sorted(chosen):
            lane = eligible[idx].getLanes()[0]
            length = lane.getLength()
            start, end = 5.0, length - 5.0
            capacity = max(1, int((end - start) // 7.5))
            pid = f"pa_{eligible[idx].getID()}"
            ids.append(pid)
            f.write(f'    <parkingArea id="{pid}" lane="{lane.getID()}" startPos="{start:.2f}" '
                    f'endPos="{end:.2f}" roadsideCapacity="{capacity}"/>\n')
        f.write("</additional>\n")
    return ids


def add_parking_stops(trips: Path, area_ids: list[str], parking: ParkingDemand, seed: int) -> None:
    """Give a share of the trips a parking stop on the way (duarouter routes through it)."""
    tree = ET.parse(trips)
    rng = np.random.default_rng([seed, 2])
    lo, hi = parking.duration_s
    for trip in tree.getroot().iter("trip"):
        if rng.random() < parking.share:
            area = area_ids[int(rng.integers(len(area_ids)))]
            duration = float(rng.uniform(lo, hi))
            ET.SubElement(trip, "stop", parkingArea=area, duration=f"{duration:.0f}")
    tree.write(trips, encoding="UTF-8", xml_declaration=True)


def _check_random_trips_size(demand: RandomTripsDemand, end_s: float, periods: list[float],
                             source: Path | None) -> None:
    """randomTrips' work as its options set it (``--flows``, ``--intermediate``, ``--binomial``,
    ``--maxtries``, however spelt), refused beyond the limits before it starts."""
    from cosim.mobility.tool_options import option_values, random_trips_options
    from cosim.scenario.limits import check_random_trips_size

    given = option_values(list(demand.random_trips_options),
                          random_trips_options(tool("randomTrips.py")))
    try:
        check_random_trips_size(demand.begin_s, end_s, periods, given)
    except FieldError as exc:
        raise InputError(source, exc.field, exc.message) from None


def _check_generated_size(args: list[str], source: Path | None) -> None:
    """The network's size as netgenerate reads its options (synonyms such as ``--number`` or
    ``--arms`` included), from the configuration it saves without building anything: a network
    beyond the limit is refused before netgenerate spends minutes on it (only when it is to be
    built: a network in the cache was built within it)."""
    import subprocess
    import tempfile

    from cosim.scenario.limits import check_generated_junctions

    with tempfile.TemporaryDirectory(prefix="cosim-netgenerate-") as tmp:
        saved = Path(tmp) / "settings.netgcfg"
        try:
            subprocess.run([binary("netgenerate"), *args, "--save-configuration", str(saved)],
                           capture_output=True, timeout=120, check=True, stdin=subprocess.DEVNULL)
            root = ET.parse(saved).getroot()
        except (OSError, subprocess.SubprocessError, ET.ParseError):
            return  # options netgenerate refuses: the build says why, at once
    settings = {e.tag: e.get("value", "") for e in root.iter() if e is not root and len(e) == 0}
    try:
        check_generated_junctions(settings)
    except FieldError as exc:
        raise InputError(source, exc.field, exc.message) from None


def _run_as_input(cmd: list[str], log: Path, source: Path | None, field_name: str,
                  what: str) -> None:
    """Run a build tool; its failure is a problem of the user's inputs (exit code 2)."""
    try:
        run_tool(cmd, log)
    except SumoToolError as exc:
        raise InputError(source, field_name, f"{what}: {exc}") from None
