"""``cosim new``: a commented starter scenario for your own SUMO network (or an OpenStreetMap
extract, converted with netconvert): demand from randomTrips, macro cells on a hexagonal layout
sized to the network, learning off. It validates as written.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

from cosim.destinations import check_not_in_results, check_writable
from cosim.errors import CONTROL, InputError, printable
from cosim.mobility.location import NetLocation, read_location
from cosim.run_folder import check_out_name, write_atomically
from cosim.scenario.base import readable_input

NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"  # as Scenario.name
OSM_OPTIONS = [  # a drivable, simplified network from raw OSM (netconvert's documented recipe)
    "--geometry.remove", "--roundabouts.guess", "--ramps.guess", "--junctions.join",
    "--tls.guess-signals", "--tls.discard-simple", "--tls.join", "--remove-edges.isolated",
    "--keep-edges.by-vclass", "passenger",
]


def _check_loads(net: Path, routes: list[Path]) -> None:
    """SUMO loads the network and every route on it (a truncated network, a route over a
    missing edge) before any file is written: the scenario would be refused by every run."""
    from cosim.mobility.build import SumoInputs, check_sumo_loads

    try:
        check_sumo_loads(SumoInputs(net=net, routes=list(routes)), [], None)
    except InputError as exc:
        raise InputError(None, "--routes" if routes else "--net", exc.message) from None


# what `cosim new --osm` writes beside NAME.yaml: the network, the buildings, the converters' logs
CONVERTED = (".net.xml", ".poly.xml", ".netconvert.log", ".polyconvert.log")


def write_starter(name: str, folder: Path, net: Path | None = None, osm: Path | None = None,
                  force: bool = False, routes: list[Path] | None = None
                  ) -> tuple[Path, str, list[str]]:
    """Write ``folder/NAME.yaml`` (and ``NAME.net.xml`` from ``osm``); return the file, a
    one-line summary and notes (the converter's warnings, summarised). Raises InputError on bad
    arguments or a network that cannot be used."""
    if not re.match(NAME_PATTERN, name):
        raise InputError(None, "NAME", f"{name[:60]!r}: use letters, digits, '_', '.', '-'")
    if (net is None) == (osm is None):
        raise InputError(None, "--net/--osm", "give one network: --net FILE.net.xml or --osm FILE.osm")
    out = folder / f"{name}.yaml"
    check_out_name(folder, "--dir")  # a folder the system can hold, through no broken link
    check_not_in_results(folder, "--dir")
    check_writable(out, "--dir")
    converted_names = [f"{name}{s}" for s in CONVERTED] if osm is not None else []
    for path in [out, *(folder / n for n in converted_names)]:  # a user's file: only when asked
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise InputError(None, str(path), "exists and is not a regular file")
        if path.is_file() and path.stat().st_nlink > 1:  # writing it would change another file
            raise InputError(None, str(path), "exists and is a hard link (another name of the "
                             "same file); remove it or choose another name")
        if path.exists() and not force:
            raise InputError(None, str(path), "exists already (--force overwrites it)")
    _check_input(osm if osm is not None else net, "--osm" if osm is not None else "--net")
    for route in routes or []:
        _check_input(route, "--routes")
    if net is not None:
        read_location(net)  # a file that is no SUMO network is refused before the folder
        _check_loads(net, routes or [])
    notes: list[str] = []
    buildings = None
    if net is not None:
        _check_starter(name, net, routes or [], None, out)
    if osm is not None:  # converted aside: a failed conversion leaves nothing behind
        with tempfile.TemporaryDirectory(prefix="cosim-new-") as tmp:
            converted, warned = convert_osm(osm, Path(tmp) / f"{name}.net.xml")
            notes += [warned] if warned else []
            polygons, warned = import_buildings(osm, converted, Path(tmp) / f"{name}.poly.xml")
            notes += [warned] if warned else []
            _check_loads(converted, routes or [])
            _check_starter(name, converted, routes or [], polygons, out, "--osm")
            folder.mkdir(parents=True, exist_ok=True)
            for made in converted_names:  # the files checked above, nothing else
                if (Path(tmp) / made).is_file():
                    shutil.move(Path(tmp) / made, folder / made)
            notes = [note.replace(tmp, str(folder)) for note in notes]  # the logs' new place
        net = folder / converted.name
        buildings = folder / polygons.name if polygons is not None else None
    assert net is not None
    folder.mkdir(parents=True, exist_ok=True)
    where = read_location(net)
    text, summary = starter_yaml(name, _relative(net.resolve(), folder.resolve()), where,
                                 [_relative(r.resolve(), folder.resolve()) for r in routes or []],
                                 _relative(buildings.resolve(), folder.resolve()) if buildings else None)
    _write_whole(out, text, force)
    return out, summary, notes


def _write_whole(out: Path, text: str, force: bool) -> None:
    """Write the starter whole or not at all; without ``force`` never over a file that appeared
    since the checks (another ``cosim new`` at the same name): linked into place, which fails
    where a file is."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    write_atomically(tmp, text.encode("utf-8"))
    try:
        if force:
            os.replace(tmp, out)
            return
        try:
            os.link(tmp, out)
        except FileExistsError:
            raise InputError(None, str(out), "exists already (--force overwrites it)") from None
        except OSError as exc:  # a file system without hard links: checked, then renamed
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            if out.exists():
                raise InputError(None, str(out), "exists already (--force overwrites it)") from None
            os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _check_input(path: Path | None, option: str) -> None:
    """A regular file of a sane size (not a FIFO, a device or a kernel file), before any folder,
    whose name holds no control character (it is written into the starter's lines)."""
    assert path is not None
    if CONTROL.search(str(path)):
        raise InputError(None, option, f"{printable(str(path))}: a name with control characters "
                         "(a line break, an escape); rename the file")
    try:
        readable_input(path)
    except ValueError as exc:
        raise InputError(None, option, str(exc)) from None


def import_buildings(osm: Path, net: Path, target: Path) -> tuple[Path | None, str | None]:
    """The extract's building polygons as a SUMO ``.poly.xml`` (polyconvert with SUMO's OSM type
    map), or None when it has none; and a line summarising polyconvert's warnings."""
    from cosim.mobility.sumo_tools import SumoToolError, binary, run_tool, sumo_home, warning_summary
    from cosim.radio.buildings import read_buildings

    log = target.with_name(target.name.removesuffix(".poly.xml") + ".polyconvert.log")
    typemap = sumo_home() / "data" / "typemap" / "osmPolyconvert.typ.xml"
    try:
        run_tool([binary("polyconvert"), "--net-file", str(net), "--osm-files", str(osm),
                  "--type-file", str(typemap), "-o", str(target)], log)
    except SumoToolError as exc:
        raise InputError(osm, "--osm", f"polyconvert could not read its buildings: {exc}") from None
    warned = warning_summary(log, "polyconvert")
    if not target.is_file() or not read_buildings(target):
        target.unlink(missing_ok=True)
        return None, warned
    return target, warned


def convert_osm(osm: Path, target: Path) -> tuple[Path, str | None]:
    """``netconvert --osm-files`` into ``target`` (its log next to it); failure is bad input.
    Returns the network and a line summarising netconvert's warnings (what it dropped)."""
    from cosim.mobility.sumo_tools import SumoToolError, binary, run_tool, warning_summary

    if not osm.is_file():
        raise InputError(None, "--osm", f"file not found: {osm}")
    log = target.with_name(target.name.removesuffix(".net.xml") + ".netconvert.log")
    try:
        run_tool([binary("netconvert"), "--osm-files", str(osm), "-o", str(target), *OSM_OPTIONS],
                 log)
    except SumoToolError as exc:
        raise InputError(osm, "--osm", f"netconvert could not convert it: {exc}") from None
    return target, warning_summary(log, "netconvert")


def starter_yaml(name: str, net_ref: str, where: NetLocation, route_refs: list[str] | None = None,
                 buildings_ref: str | None = None, option: str = "--net") -> tuple[str, str]:
    """The scenario text for a network with this location, and a summary of its cells. With
    ``route_refs`` the user's routes are the traffic (no random demand, no warm-up); with
    ``buildings_ref`` (a .poly.xml) the buildings block the line to a cell, else the blocks
    between the streets do. ``option``: where the network came from, named in an error."""
    buildings = f", buildings: {json.dumps(buildings_ref)}" if buildings_ref else ""
    los_comment = ("the buildings (from OpenStreetMap, polyconvert) block the line to a cell"
                   if buildings_ref else "the blocks between the streets block the line to a cell "
                   "(radio.channel.buildings: a .poly.xml of real ones)")
    x0, y0, x1, y1 = where.boundary
    extent = max(x1 - x0, y1 - y0)
    if extent <= 0:
        raise InputError(None, option, "the network has no extent (convBoundary is one point)")
    isd, rings = hex_layout(extent)
    cx, cy = where.center
    sites = 1 + 3 * rings * (rings + 1)
    geo = where.projection is not None
    geo_line = ("  geo_origin: network        # the trace's lon/lat through the network's own "
                "projection" if geo else
                "  # geo_origin: {lat: 37.7793, lon: -122.4164}  # lat/lon of (0, 0): fills the "
                "trace's lon/lat")
    min_distance = max(50, min(300, round(extent / 3, -1)))
    if route_refs:
        traffic = f"""\
  warmup_s: 0               # your routes run as written, from their first departure
  net: {json.dumps(net_ref)}
  routes: {json.dumps(route_refs)}   # the traffic: no random demand is added"""
    else:
        traffic = f"""\
  warmup_s: 300             # SUMO runs this long before t = 0, so the network fills up
  net: {json.dumps(net_ref)}
  demand:                   # randomTrips.py + duarouter, cached per seed
    period_s: 2.0           # one departure every 2 s: lower it for more traffic
    fringe_factor: 5.0      # trips start and end at the network's edge more often
    min_distance_m: {min_distance:g}
    # parking: {{areas: 10, share: 0.25, duration_s: [300, 1200]}}"""
    text = f"""\
# Starter scenario for {net_ref}, written by `cosim new`. Check it with
#   cosim validate {name}.yaml --show      (every default filled in)
# and run it with `cosim run {name}.yaml`. Positions are metres in the network's frame: x east,
# y north, after its netOffset; this network spans x {x0:g}..{x1:g}, y {y0:g}..{y1:g}.
name: {json.dumps(name)}
seed: 0
duration_s: 600             # simulated seconds after the warm-up
mobility:
  backend: libsumo          # libsumo | traci | gui
  step_length_s: 1.0
{traffic}
{geo_line}
radio:
  step_s: 0.1               # the SUMO step must be a whole number of radio steps
  cells:
    # {sites} macro sites (3 sectors each) on a hexagonal layout over the network
    # (sites farther than {isd / 2:g} m from every road are left out: no site over the sea)
    hex: {{isd_m: {isd:g}, rings: {rings}, center: [{cx:.1f}, {cy:.1f}], scenario: uma,
          carrier_ghz: 3.5, bandwidth_mhz: 40, tx_power_dbm: 46, antenna_gain_dbi: 17,
          height_m: 25, max_road_distance_m: {isd / 2:g}}}
    # small cells on the most central intersections (betweenness on the street graph):
    # intersections: {{count: 6, min_spacing_m: 250, scenario: umi, carrier_ghz: 3.7,
    #                 bandwidth_mhz: 20, tx_power_dbm: 30, height_m: 10}}
    # cells you place yourself (x, y in metres, as above):
    # extra:
    #   - {{id: rsu-1, x: {cx:.1f}, y: {cy:.1f}, kind: rsu, height_m: 6, tx_power_dbm: 30,
    #      antenna_gain_dbi: 5, carrier_ghz: 5.9, bandwidth_mhz: 20, scenario: umi}}
  # {los_comment}
  channel: {{los: geometry{buildings}}}
  # as the embedded downtown scenario: A3 3 dB + 1 dB hysteresis, 320 ms time-to-trigger
  handoff: {{a3_offset_db: 3.0, hysteresis_db: 1.0, ttt_s: 0.32}}
# Federated learning, off: `--set learning.enabled=true` (or edit below) turns it on. The
# federation of the embedded downtown scenario: the fleet runs and sends CLIP ViT-B/16 (a round
# costs what that model costs), 120 s deadline, 20 s between rounds; a tiny model on synthetic
# data does the learning on a CPU.
clients:
  count: 6
  profiles:
    - {{name: agx-orin, flops: 42.5e12, efficiency: 0.33, driving_share: 0.2, parked_share: 0.9}}
scheduling: {{policy: availability_aware, per_round: 3}}
aggregation: {{method: sync, round_deadline_s: 120, min_round_gap_s: 20, eval_every_rounds: 2}}
learning:
  enabled: false
  precision: auto  # bf16 where the machine has bfloat16 matrix units, else fp32 (run.json says)
  model: {{name: cosim-tiny}}
  deployed_model: {{name: ViT-B-16, frame_hz: 10}}
  data:
    synthetic: {{segments: 8, frames: 8, seed: 0}}
    clients: 6
    heldout_segments: 2
  local: {{epochs: 2, batch_size: 4, lr: 0.004}}
output:
  root: runs                # run folders runs/<name>-<time>, relative to the working folder
"""
    summary = (f"{sites} macro sites x 3 sectors, {isd:g} m apart, over a {x1 - x0:.0f} m x "
               f"{y1 - y0:.0f} m network" + ("" if geo else "; no geo_origin (not geo-referenced)"))
    return text, summary


def hex_layout(extent_m: float) -> tuple[float, int]:
    """Inter-site distance (a third of the network, 200..1000 m, in 50 m) and rings to cover it."""
    isd = min(1000.0, max(200.0, round(extent_m / 3 / 50) * 50))
    rings = min(6, max(1, math.ceil(extent_m / 2 / isd - 0.5)))  # the outer ring reaches the rim
    return isd, rings


def _relative(path: Path, folder: Path) -> str:
    """The path as the scenario writes it: relative to the YAML's folder when below it."""
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return os.fspath(path)


def _check_starter(name: str, net: Path, routes: list[Path], buildings: Path | None,
                   out: Path, option: str = "--net") -> None:
    """The promise of ``cosim new``: the file it writes validates, cells included. Checked on
    the same scenario with absolute paths before any file or folder is written: a network whose
    cells cannot be placed leaves nothing behind and replaces no earlier file."""
    from cosim.radio.boundary import check_cells_inside
    from cosim.safe_yaml import load_yaml
    from cosim.scenario_loader import scenario_from_mapping

    text, _ = starter_yaml(name, str(net.resolve()), read_location(net),
                           [str(r.resolve()) for r in routes],
                           str(buildings.resolve()) if buildings is not None else None, option)
    try:
        sc = scenario_from_mapping(load_yaml(text), out)  # read as `cosim run` will read it
        check_cells_inside(sc.radio, net, out)
    except InputError as exc:
        field = f"{exc.field}: " if exc.field else ""
        raise InputError(net, None, f"no starter scenario fits this network ({field}"
                         f"{exc.message})") from None
