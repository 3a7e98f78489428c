"""The files SUMO writes because an input file says so.

An additional file's detectors, edge and lane data, route and type probes and calibrators name
the files they write, and a sumocfg's output options do too. cosim checks these paths as it
checks the outputs of ``mobility.sumo_options`` (never into a folder of results, never over an
existing file unasked), and SUMO's loader check reads copies that write them aside
(``aside_copies``), so ``cosim validate`` writes none of them. The SSM and ToC devices, which
write files of their own naming (``ssm_<vehicle>.xml`` in the working folder), are refused
wherever they are asked for: a sumocfg option or a vehicle's or type's ``<param>``.

Every file is read as a stream, regular files only, at most ``XML_LIMIT_BYTES`` after
decompression (a route file of a city is hundreds of megabytes; a gzip bomb is not read out).
"""

from __future__ import annotations

import gzip
import stat
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from cosim.bounded_read import virtual_file
from cosim.destinations import NULL_OUTPUTS
from cosim.errors import InputError

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
MAX_FILES = 1000  # route, additional and included files one scenario makes SUMO read
XML_LIMIT_BYTES = 2 * 2**30  # of XML text, after decompression
# a traffic light's <param> naming where its actuated, delay-based or NEMA logic writes the
# detectors it builds (beside the declaring file, a network or an additional file)
TLS_OUTPUT_PARAM = "file"
# a NEMA traffic light's <param> that writes <id>_state_output beside the declaring file
TLS_STATE_PARAM = "whetherOutputState"
SUMO_TRUE = ("true", "1", "yes", "on", "x", "t")  # SUMO's spellings of a true boolean
# devices that write files of their own naming (SUMO's device options and parameters)
DEVICE_WRITERS = ("ssm", "toc")
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


def _local(tag: object) -> str:
    """An element's name without its namespace (SUMO ignores a default namespace)."""
    return str(tag).rsplit("}", 1)[-1]


def device_writer(key: str) -> str | None:
    """The file-writing device a SUMO option or ``<param>`` key asks for, or None."""
    for device in DEVICE_WRITERS:
        if key.startswith(f"device.{device}.") or key == f"has.{device}.device":
            return device
    return None


class _Capped:
    """A binary stream that ends in an InputError after ``XML_LIMIT_BYTES``."""

    def __init__(self, stream: IO[bytes], path: Path, field: str) -> None:
        self._stream, self._path, self._field, self._seen = stream, path, field, 0

    def close(self) -> None:
        self._stream.close()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size if size >= 0 else XML_LIMIT_BYTES + 1 - self._seen)
        self._seen += len(data)
        if self._seen > XML_LIMIT_BYTES:
            raise InputError(self._path, self._field, f"more than {XML_LIMIT_BYTES:,} bytes of "
                             "XML (after decompression): too big to check")
        return data


def _open(path: Path, field: str) -> _Capped:
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode) or virtual_file(path):
            raise InputError(path, field, "not a regular file (SUMO reads its inputs from files)")
        with path.open("rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"  # SUMO reads .xml.gz as well
        # closed by the reader (_Capped.close), which reads it as a stream
        stream = cast(IO[bytes], gzip.open(path, "rb") if gzipped else path.open("rb"))  # noqa: SIM115
    except OSError as exc:
        raise InputError(path, field, f"cannot read it: {exc.strerror or exc}") from None
    return _Capped(stream, path, field)


def read_xml(path: Path, field: str) -> ET.ElementTree[ET.Element]:
    """A SUMO XML file (plain or gzipped) as a tree, read with the stream's limits."""
    try:
        capped = _open(path, field)
        try:
            return ET.parse(capped)
        finally:
            capped.close()
    except (OSError, EOFError, zlib.error, ET.ParseError) as exc:
        raise InputError(path, field, f"cannot read it as XML to find the files it makes SUMO "
                         f"write: {exc}") from None


def _elements(path: Path, field: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(tag, parent's tag, attributes) of each element, streamed: memory stays small however
    many vehicles a route file holds."""
    capped = _open(path, field)
    stack: list[str] = []
    try:
        for event, element in ET.iterparse(capped, events=("start", "end")):
            tag = _local(element.tag)
            if event == "start":
                yield tag, stack[-1] if stack else "", dict(element.attrib)
                stack.append(tag)
            else:
                stack.pop()
                if len(stack) <= 1:
                    element.clear()  # a top-level element and its children, read
    except (OSError, EOFError, zlib.error, ET.ParseError) as exc:
        raise InputError(path, field, f"cannot read it as XML to find the files it makes SUMO "
                         f"write: {exc}") from None
    finally:
        capped.close()


def refuse_device_writers(routes: list[tuple[str, Path]], sumocfg: Path | None) -> None:
    """InputError if a route or additional file (``(field, path)``), or the sumocfg, equips
    vehicles with a device that writes files cosim cannot check."""
    files = list(routes)
    if sumocfg is not None:
        entries = sumocfg_entries(sumocfg, lambda name: False)  # refuses the devices' options
        files += [("mobility.sumocfg", p) for p in (*entries.routes, *entries.additional)]
    seen: set[Path] = set()
    while files:
        field, path = files.pop()
        if path in seen:
            continue
        if len(seen) >= MAX_FILES:
            raise InputError(path, field, f"more than {MAX_FILES} route, additional and included "
                             "files to read")
        seen.add(path)
        for tag, parent, attributes in _elements(path, field):
            key = attributes.get("key", "")
            if tag == "param" and parent in EQUIPPED and device_writer(key):
                raise InputError(path, field, f"<{parent}> <param key=\"{key}\">: SUMO's "
                                 f"{device_writer(key)} device writes files (by default into "
                                 "the working folder) that cosim cannot check; remove it")
            if tag == "include" and attributes.get("href"):
                files.append((field, _beside(path, attributes["href"])))


def _file_outputs(path: Path, field: str, depth: int = 0) -> list[DeclaredOutput]:
    """The outputs a network or additional file (and what it includes) declares."""
    if depth > MAX_INCLUDE_DEPTH:
        raise InputError(path, field, f"includes nested deeper than {MAX_INCLUDE_DEPTH}")
    found = []
    for tag, parent, attributes in _elements(path, field):
        if tag == "include" and attributes.get("href"):
            found += _file_outputs(_beside(path, attributes["href"]), field, depth + 1)
        attribute = OUTPUT_ATTRIBUTES.get(tag)
        value = attributes.get(attribute) if attribute else None
        if value and value not in NULL_OUTPUTS:
            where = Path(value).absolute() if tag in FROM_WORKING_FOLDER else _beside(path, value)
            found.append(DeclaredOutput(field, f"<{tag} {attribute}> in {path.name}", where))
        if tag == "param" and parent == "tlLogic":
            key, value = attributes.get("key"), attributes.get("value", "")
            if key == TLS_OUTPUT_PARAM and value and value not in NULL_OUTPUTS:
                found.append(DeclaredOutput(field, f'<tlLogic> <param key="{key}"> in {path.name}',
                                            _beside(path, value)))
            if key == TLS_STATE_PARAM and value.strip().lower() in SUMO_TRUE:
                raise InputError(path, field, f'<tlLogic> <param key="{key}">: a NEMA traffic '
                                 "light writes <id>_state_output beside this file, a name cosim "
                                 "cannot check; remove it")
    return found


def sumocfg_entries(sumocfg: Path, writes: Callable[[str], bool]) -> SumocfgEntries:
    """A sumocfg's output options and the files it loads; InputError for options whose outputs
    SUMO names itself (renamed outputs, prefix-named states, SSM and ToC devices)."""
    from cosim.scenario.mobility import states_named_by_sumo

    entries = SumocfgEntries([], [], [], [])
    loads = {"additional-files": entries.additional, "a": entries.additional,
             "route-files": entries.routes, "r": entries.routes,
             "net-file": entries.nets, "n": entries.nets}
    root = read_xml(sumocfg, "mobility.sumocfg").getroot()
    names = set()
    for option in root.iter():  # SUMO takes an option at any depth, in a group or not
        name, value = _local(option.tag), option.get("value")
        if option is root or value is None:
            continue
        names.add(name)
        if name in RENAMES_OUTPUTS:
            raise InputError(sumocfg, "mobility.sumocfg", f"<{name}> renames every file SUMO "
                             "writes, the run's own sumo.log too; remove it")
        if device_writer(name):
            raise InputError(sumocfg, "mobility.sumocfg", f"<{name}>: SUMO's "
                             f"{device_writer(name)} device writes files (by default into "
                             "the working folder) that cosim cannot check; remove it")
        values = [v.strip() for v in value.split(",") if v.strip()]
        if name in loads:
            loads[name] += [_beside(sumocfg, v) for v in values]
        elif writes(name):
            entries.outputs.extend((name, _beside(sumocfg, v)) for v in values
                                   if v not in NULL_OUTPUTS)
    if (states := states_named_by_sumo(names)) is not None:
        raise InputError(sumocfg, "mobility.sumocfg", f"<{states[0]}> {states[1]}")
    return entries


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
        tag = _local(element.tag)
        attribute = OUTPUT_ATTRIBUTES.get(tag)
        if attribute and element.get(attribute):
            element.set(attribute, aside())
        for other in INPUT_ATTRIBUTES:
            if other != attribute and element.get(other):
                element.set(other, str(_beside(path, element.get(other, ""))))
        if tag == "tlLogic":
            for param in element:
                if _local(param.tag) == "param" and param.get("key") == TLS_OUTPUT_PARAM:
                    param.set("value", aside())
        if tag == "include" and element.get("href"):
            included = _beside(path, element.get("href", ""))
            if _file_outputs(included, "mobility.additional"):
                element.set("href", str(aside_copy(included, folder, f"{name}-{count}")))
                count += 1
    copy = folder / f"{name}{suffix}"
    tree.write(copy, encoding="utf-8", xml_declaration=True)
    return copy
