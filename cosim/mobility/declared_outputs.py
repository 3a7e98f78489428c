"""The files SUMO writes because an input file says so.

An additional file's detectors, edge and lane data, route and type probes and calibrators name
the files they write, and a sumocfg's output options do too. cosim checks these paths as it
checks the outputs of ``mobility.sumo_options`` (never into a folder of results, never over an
existing file unasked), and SUMO's loader check reads copies that write them aside
(``aside_copies``), so ``cosim validate`` writes none of them.
"""

from __future__ import annotations

import gzip
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cosim.errors import InputError

# additional-file element -> the attribute naming the file it writes (SUMO's additional outputs)
OUTPUT_ATTRIBUTES = {
    "e1Detector": "file", "inductionLoop": "file", "e2Detector": "file",
    "laneAreaDetector": "file", "e3Detector": "file", "entryExitDetector": "file",
    "instantInductionLoop": "file", "edgeData": "file", "laneData": "file",
    "routeProbe": "file", "vTypeProbe": "file", "calibrator": "output",
    "timedEvent": "dest",  # SaveTLSStates, SaveTLSSwitchTimes, ...
}
# outputs SUMO names relative to its working folder, not to the declaring file
FROM_WORKING_FOLDER = ("calibrator",)
# sumocfg options that rename every output, cosim's log too
RENAMES_OUTPUTS = ("output-prefix", "output-suffix")
# attributes of other elements that name a file SUMO reads (made absolute in a copy elsewhere)
INPUT_ATTRIBUTES = ("file", "href")
MAX_INCLUDE_DEPTH = 8


@dataclass(frozen=True)
class DeclaredOutput:
    field: str  # the scenario field whose file declares it
    what: str  # how it is declared, for messages: "<edgeData file> in adds.xml"
    path: Path  # absolute (relative paths start at the declaring file's folder, as in SUMO)


def declared_sumo_outputs(additional: list[Path], sumocfg: Path | None,
                          writes: Callable[[str], bool]) -> list[DeclaredOutput]:
    """Every output the scenario's additional files and sumocfg declare (``writes`` tells a
    sumocfg option that writes a file, by name)."""
    found = [out for add in additional for out in _additional_outputs(add, "mobility.additional")]
    if sumocfg is not None:
        options, adds = sumocfg_entries(sumocfg, writes)
        found += [DeclaredOutput("mobility.sumocfg", f"<{name}> in {sumocfg.name}", path)
                  for name, path in options]
        found += [out for add in adds for out in _additional_outputs(add, "mobility.sumocfg")]
    return found


def _local(tag: object) -> str:
    """An element's name without its namespace (SUMO ignores a default namespace)."""
    return str(tag).rsplit("}", 1)[-1]


def _parse(path: Path, field: str) -> ET.ElementTree[ET.Element]:
    try:
        with path.open("rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"  # SUMO reads .xml.gz as well
        with (gzip.open(path, "rb") if gzipped else path.open("rb")) as f:
            return ET.parse(f)
    except (OSError, EOFError, ET.ParseError) as exc:
        raise InputError(path, field, f"cannot read it as XML to find the files it makes SUMO "
                         f"write: {exc}") from None


def _additional_outputs(path: Path, field: str, depth: int = 0) -> list[DeclaredOutput]:
    if depth > MAX_INCLUDE_DEPTH:
        raise InputError(path, field, f"includes nested deeper than {MAX_INCLUDE_DEPTH}")
    found = []
    for element in _parse(path, field).iter():
        tag = _local(element.tag)
        if tag == "include" and element.get("href"):
            found += _additional_outputs(_beside(path, element.get("href", "")), field, depth + 1)
        attribute = OUTPUT_ATTRIBUTES.get(tag)
        value = element.get(attribute) if attribute else None
        if value:
            where = Path(value).absolute() if tag in FROM_WORKING_FOLDER else _beside(path, value)
            found.append(DeclaredOutput(field, f"<{tag} {attribute}> in {path.name}", where))
    return found


def sumocfg_entries(sumocfg: Path, writes: Callable[[str], bool]
                     ) -> tuple[list[tuple[str, Path]], list[Path]]:
    """A sumocfg's output options (option name, path) and its additional files."""
    outputs, additional = [], []
    root = _parse(sumocfg, "mobility.sumocfg").getroot()
    for option in root.iter():  # SUMO takes an option at any depth, in a group or not
        name, value = _local(option.tag), option.get("value")
        if option is root or value is None:
            continue
        if name in RENAMES_OUTPUTS:
            raise InputError(sumocfg, "mobility.sumocfg", f"<{name}> renames every file SUMO "
                             "writes, the run's own sumo.log too; remove it")
        paths = [_beside(sumocfg, v.strip()) for v in value.split(",") if v.strip()]
        if name in ("additional-files", "a"):
            additional += paths
        elif writes(name):
            outputs += [(name, p) for p in paths]
    return outputs, additional


def _beside(declaring: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else (declaring.absolute().parent / path)


def aside_copy(path: Path, folder: Path, name: str) -> Path:
    """A copy of the additional file ``path`` in ``folder`` whose outputs are written into
    ``folder`` and whose other file references are absolute: what SUMO's loader check reads."""
    tree = _parse(path, "mobility.additional")
    count = 0
    for element in tree.iter():
        attribute = OUTPUT_ATTRIBUTES.get(_local(element.tag))
        if attribute and element.get(attribute):
            count += 1
            element.set(attribute, str(folder / f"{name}-output-{count}.xml"))
        for other in INPUT_ATTRIBUTES:
            if other != attribute and element.get(other):
                element.set(other, str(_beside(path, element.get(other, ""))))
        if _local(element.tag) == "include" and element.get("href"):
            included = Path(element.get("href", ""))
            if _additional_outputs(included, "mobility.additional"):
                count += 1
                element.set("href", str(aside_copy(included, folder, f"{name}-{count}")))
    copy = folder / f"{name}.add.xml"
    tree.write(copy, encoding="utf-8", xml_declaration=True)
    return copy
