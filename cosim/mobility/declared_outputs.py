"""The files SUMO writes because an input file says so.

An additional file's detectors, edge and lane data, route and type probes and calibrators, a
traffic light's detector ``file`` parameter (in an additional file or the network) and a
sumocfg's output options name the files SUMO writes. cosim checks these paths as it checks the
outputs of ``mobility.sumo_options`` (never into a folder of results, never over an existing
file unasked), and SUMO's loader check reads copies that write them aside (``aside_copy``), so
``cosim validate`` writes none of them. Outputs SUMO names itself (the SSM and ToC devices'
``ssm_<vehicle>.xml``, prefix-named states, ...) are refused wherever they are asked for.

A sumocfg is read as SUMO reads it (``sumo_reading``), and every XML file through
``cosim.sumo_xml`` (streamed and bounded), once per file for all these checks (``_scan``).
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cosim.bounded_read import file_sha256
from cosim.destinations import NULL_OUTPUTS, sumo_file_values
from cosim.errors import InputError
from cosim.scenario.mobility import SUMO_TRUE, device_writer, outputs_named_by_sumo
from cosim.sumo_xml import local_name, read_xml, xml_elements

# additional-file element -> the attribute naming the file it writes (SUMO's additional outputs)
OUTPUT_ATTRIBUTES = {
    "e1Detector": "file", "inductionLoop": "file", "e2Detector": "file",
    "laneAreaDetector": "file", "e3Detector": "file", "entryExitDetector": "file",
    "instantInductionLoop": "file", "edgeData": "file", "laneData": "file",
    "routeProbe": "file", "vTypeProbe": "file", "calibrator": "output",
    "timedEvent": "dest",  # SaveTLSStates, SaveTLSSwitchTimes, ...
    "snapshot": "file",  # a screenshot sumo-gui's view settings ask for
}
# outputs SUMO names relative to its working folder, not to the declaring file
FROM_WORKING_FOLDER = ("calibrator",)
# sumocfg options that rename every output, cosim's log too
RENAMES_OUTPUTS = ("output-prefix", "output-suffix")
# attributes of other elements that name a file SUMO reads (made absolute in a copy elsewhere)
INPUT_ATTRIBUTES = ("file", "href")
MAX_INCLUDE_DEPTH = 8
SUMOCFG = "mobility.sumocfg"
MAX_FILES = 1000  # route, additional and included files one scenario makes SUMO read
# a traffic light's <param> naming where its actuated, delay-based or NEMA logic writes the
# detectors it builds (beside the declaring file, a network or an additional file)
TLS_OUTPUT_PARAM = "file"
# a NEMA traffic light's <param> that writes <id>_state_output beside the declaring file
TLS_STATE_PARAM = "whetherOutputState"
# elements whose <param> equips a vehicle with a device (``has.ssm.device``, ``device.ssm.file``)
EQUIPPED = ("vType", "vehicle", "trip", "flow", "person", "personFlow", "container",
            "containerFlow")


@dataclass(frozen=True)
class DeclaredOutput:
    field: str  # the scenario field whose file declares it
    what: str  # how it is declared, for messages: "<edgeData file> in adds.xml"
    path: Path  # absolute (relative paths start at the declaring file's folder, as in SUMO)


@dataclass(frozen=True)
class SumocfgEntries:
    """What a sumocfg names: its output options (option name, path) and the files it loads."""

    outputs: list[tuple[str, Path]]
    additional: list[Path]
    routes: list[Path]
    nets: list[Path]


def declared_sumo_outputs(additional: list[Path], sumocfg: Path | None,
                          writes: Callable[[str], bool], net: Path | None = None,
                          gui_settings: Path | None = None) -> list[DeclaredOutput]:
    """Every output the scenario's network, additional files, sumocfg and sumo-gui view
    settings declare (``writes`` tells a sumocfg option that writes a file, by name)."""
    found = _file_outputs(net, "mobility.net") if net is not None else []
    if gui_settings is not None:
        found += _file_outputs(gui_settings, "mobility.gui.settings_file")
    found += [out for add in additional for out in _file_outputs(add, "mobility.additional")]
    if sumocfg is not None:
        entries = sumocfg_entries(sumocfg, writes)
        found += [DeclaredOutput("mobility.sumocfg", f"<{name}> in {sumocfg.name}", path)
                  for name, path in entries.outputs]
        found += [out for file in (*entries.nets[:1], *entries.additional)
                  for out in _file_outputs(file, "mobility.sumocfg")]
    return found


def refuse_device_writers(routes: list[tuple[str, Path]], additional: list[tuple[str, Path]],
                          sumocfg: Path | None) -> None:
    """InputError if a route or additional file (``(field, path)``, and what it includes), or
    the sumocfg, equips vehicles with a device that writes files cosim cannot check."""
    files = [*routes, *additional]
    if sumocfg is not None:
        entries = sumocfg_entries(sumocfg, lambda name: False)  # refuses the devices' options
        files += [(SUMOCFG, p) for p in (*entries.routes, *entries.additional)]
    if len(files) > MAX_FILES:
        raise InputError(files[0][1], files[0][0], f"more than {MAX_FILES} route and additional "
                         "files to read")
    for field, path in files:
        _scan(path, field)  # refuses them, in the file or in what it includes


def _file_outputs(path: Path, field: str) -> list[DeclaredOutput]:
    """The outputs a network or additional file (and what it includes) declares."""
    return list(_scan(path, field)[0])


def included_files(path: Path, field: str) -> list[Path]:
    """The files an additional file's ``<include href>`` pulls in, at any depth."""
    return list(_scan(path, field)[1])


def read_by_elements(path: Path, field: str) -> list[Path]:
    """The files an additional file's elements (and what it includes) make SUMO read: a
    variable speed sign's steps, a calibrator's flows, ... (a loader check depends on them)."""
    return list(_scan(path, field)[2])


def _scan(path: Path, field: str, depth: int = 0
          ) -> tuple[list[DeclaredOutput], list[Path], list[Path]]:
    """The outputs a network, route or additional file declares and the files it includes,
    with what those include in turn; InputError for a device that writes files of its own
    naming. Read once per file as it is now (a scenario's checks ask several times)."""
    if depth > MAX_INCLUDE_DEPTH:
        raise InputError(path, field, f"includes nested deeper than {MAX_INCLUDE_DEPTH}")
    try:
        st = path.stat()
    except OSError:
        st = None  # said by the reader, in the field's words
    stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) if st else None
    return _scan_file(path, field, depth, stamp)


@functools.lru_cache(maxsize=64)
def _scan_file(path: Path, field: str, depth: int, stamp: object
               ) -> tuple[list[DeclaredOutput], list[Path], list[Path]]:
    found: list[DeclaredOutput] = []
    includes: list[Path] = []
    reads: list[Path] = []
    for tag, parent, attributes in xml_elements(path, field):
        key = attributes.get("key", "")
        if tag == "param" and parent in EQUIPPED and device_writer(key):
            raise InputError(path, field, f"<{parent}> <param key=\"{key}\">: SUMO's "
                             f"{device_writer(key)} device writes files (by default into the "
                             "working folder) that cosim cannot check; remove it")
        if tag == "include" and attributes.get("href"):
            included = _beside(path, attributes["href"])
            outputs, deeper, deeper_reads = _scan(included, field, depth + 1)
            found += outputs
            includes += [included, *deeper]
            reads += deeper_reads
        attribute = OUTPUT_ATTRIBUTES.get(tag)
        if attribute != "file" and attributes.get("file"):  # an input the element reads
            reads.append(_beside(path, attributes["file"]))
        value = attributes.get(attribute) if attribute else None
        if value and value not in NULL_OUTPUTS:
            where = Path(value).absolute() if tag in FROM_WORKING_FOLDER else _beside(path, value)
            found.append(DeclaredOutput(field, f"<{tag} {attribute}> in {path.name}", where))
        if tag == "param" and parent == "tlLogic":
            setting = attributes.get("value", "")
            if key == TLS_OUTPUT_PARAM and setting and setting not in NULL_OUTPUTS:
                found.append(DeclaredOutput(field, f'<tlLogic> <param key="{key}"> in {path.name}',
                                            _beside(path, setting)))
            if key == TLS_STATE_PARAM and setting.strip().lower() in SUMO_TRUE:
                raise InputError(path, field, f'<tlLogic> <param key="{key}">: a NEMA traffic '
                                 "light writes <id>_state_output beside this file, a name cosim "
                                 "cannot check; remove it")
    return found, includes, reads


def sumocfg_entries(sumocfg: Path, writes: Callable[[str], bool]) -> SumocfgEntries:
    """A sumocfg's output options and the files it loads, as SUMO reads them; InputError for
    options whose outputs SUMO names itself (renamed outputs, prefix-named states, per-step or
    per-vehicle files, SSM and ToC devices)."""
    entries = SumocfgEntries([], [], [], [])
    loads = {"additional-files": entries.additional, "route-files": entries.routes}
    values: dict[str, str] = {}
    for option in sumo_reading(sumocfg).iter():
        name, value = local_name(option.tag), option.get("value")
        if value is None:  # the root and the option groups
            continue
        values[name] = value
        if name in RENAMES_OUTPUTS:
            raise InputError(sumocfg, SUMOCFG, f"<{name}> renames every file SUMO writes, the "
                             "run's own sumo.log too; remove it")
        if device_writer(name):
            raise InputError(sumocfg, SUMOCFG, f"<{name}>: SUMO's {device_writer(name)} device "
                             "writes files (by default into the working folder) that cosim "
                             "cannot check; remove it")
        if name in loads:
            loads[name] += [Path(v) for v in value.split(",") if v]
        elif name == "net-file":
            entries.nets.append(Path(value))
        elif writes(name):
            entries.outputs.extend((name, Path(v)) for v in sumo_file_values(name, value)
                                   if v not in NULL_OUTPUTS)
    if (named := outputs_named_by_sumo(values)) is not None:
        raise InputError(sumocfg, SUMOCFG, f"<{named[0]}> {named[1]}")
    return entries


def sumo_reading(sumocfg: Path) -> ET.Element:
    """The sumocfg as SUMO reads it. SUMO writes back every option it set
    (``--save-configuration``) under the option's own name, as ``value=``, with the paths made
    absolute: ``v=`` attributes, element text and synonyms (``<net>``, ``<routes>``) are read as
    SUMO reads them, not as cosim would guess."""
    read_xml(sumocfg, SUMOCFG)  # a regular, bounded, well-formed file before SUMO reads it
    return ET.fromstring(_saved_configuration(str(sumocfg.absolute()), file_sha256(sumocfg)))


@functools.lru_cache(maxsize=8)
def _saved_configuration(path: str, digest: str) -> bytes:
    from cosim.mobility.sumo_tools import binary

    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "as-read.sumocfg"
        cmd = [binary("sumo"), "-c", path, "--save-configuration", str(saved)]
        try:
            done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            raise InputError(Path(path), SUMOCFG, "SUMO did not read it within 60 s") from None
        if done.returncode != 0 or not saved.is_file():
            said = [line for line in (done.stderr + done.stdout).splitlines()
                    if line.startswith("Error")] or ["no reason given"]
            raise InputError(Path(path), SUMOCFG, "SUMO cannot read it: "
                             + " ".join(said[:2])[:300])
        return saved.read_bytes()


def _beside(declaring: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else (declaring.absolute().parent / path)


def aside_copy(path: Path, folder: Path, name: str, suffix: str = ".add.xml") -> Path:
    """A copy of the additional (or network) file ``path`` in ``folder`` whose outputs are
    written into ``folder`` and whose other file references are absolute: what SUMO's loader
    check reads."""
    tree = read_xml(path, "mobility.additional")
    count = 0

    def aside() -> str:
        nonlocal count
        count += 1
        return str(folder / f"{name}-output-{count}.xml")

    for element in tree.iter():
        tag = local_name(element.tag)
        attribute = OUTPUT_ATTRIBUTES.get(tag)
        if attribute and element.get(attribute):
            element.set(attribute, aside())
        for other in INPUT_ATTRIBUTES:
            if other != attribute and element.get(other):
                element.set(other, str(_beside(path, element.get(other, ""))))
        if tag == "tlLogic":
            for param in element:
                if local_name(param.tag) == "param" and param.get("key") == TLS_OUTPUT_PARAM:
                    param.set("value", aside())
        if tag == "include" and element.get("href"):
            included = _beside(path, element.get("href", ""))
            if _file_outputs(included, "mobility.additional"):
                element.set("href", str(aside_copy(included, folder, f"{name}-{count}")))
                count += 1
    copy = folder / f"{name}{suffix}"
    tree.write(copy, encoding="utf-8", xml_declaration=True)
    return copy
