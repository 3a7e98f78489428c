"""Options a scenario hands to SUMO's build tools (``plain.netconvert_options``, ``netgenerate``,
``demand.random_trips_options``).

cosim builds networks and demand once per content in its cache, with its own output names, in a
child process: an option that makes a tool write a file (an output, a log, a saved
configuration) would write it wherever it says, only when the cache misses (``cosim validate``
included), and an option that sets what cosim sets (the output, the inputs, the seed) would
silently replace it. Both are refused before anything runs; which options write is read from
each tool's own option list, so a newer SUMO's are known too.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from cosim.destinations import required_file_options, writes_option
from cosim.errors import InputError, MissingDependencyError


@dataclass(frozen=True)
class ToolOptions:
    """What one tool's options mean: long names (no dashes) that write a file, those cosim sets
    itself, and each short name's long one."""

    writers: frozenset[str]
    cosim_sets: frozenset[str]
    short: dict[str, str]
    abbreviations: bool  # argparse: a unique prefix of a long name stands for it
    readers: frozenset[str] = frozenset()  # options naming files the tool reads
    prefixes: dict[str, tuple[str, ...]] | None = None  # reader -> the suffixes of its files
    names: frozenset[str] = frozenset()  # every long name the tool knows (for abbreviations)


# a configuration file names outputs of its own; saving one writes a file and stops the tool
CONFIGURATION = ("configuration-file", "save-configuration", "save-template", "save-commented",
                 "save-schema")


@functools.lru_cache(maxsize=8)
def sumo_tool_options(binary: str, cosim_sets: tuple[str, ...]) -> ToolOptions:
    """A SUMO C++ tool (netconvert, netgenerate): its FILE options from ``--save-template``."""
    options = required_file_options(binary)
    writers = {name for group, name, _ in options if writes_option(group, name)}
    writers.update(CONFIGURATION)
    short = {s: name for _, name, synonyms in options for s in synonyms}
    readers = {name for _, name, _ in options} - writers
    return ToolOptions(frozenset(writers), frozenset(cosim_sets), short, abbreviations=False,
                       readers=frozenset(readers))


RANDOM_TRIPS_SETS = ("net-file", "output-trip-file", "route-file", "seed", "begin", "end",
                     "period", "fringe-factor", "min-distance", "vehicle-class", "prefix")
ALIAS = re.compile(r"^\s+-(\w)(?: [^,]*)?, --([\w.-]+)", re.MULTILINE)


@functools.lru_cache(maxsize=4)
def random_trips_options(script: str) -> ToolOptions:
    """randomTrips.py (argparse): its outputs from ``--save-template`` (category output), its
    short names from ``--help``."""
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.xml"
        try:
            subprocess.run([sys.executable, "-I", script, "--save-template", str(template)],
                           capture_output=True, timeout=60, check=True)
            helped = subprocess.run([sys.executable, "-I", script, "--help"], capture_output=True,
                                    text=True, timeout=60, check=True).stdout
            root = ElementTree.parse(template).getroot()
        except (OSError, subprocess.SubprocessError, ElementTree.ParseError):
            raise MissingDependencyError(f"{script} cannot list its options; reinstall SUMO's "
                                         "tools (pip install eclipse-sumo)") from None
    writers = {o.tag for o in root if o.get("category") == "output"} | set(CONFIGURATION)
    short = {s: long for s, long in ALIAS.findall(helped)}
    readers = {o.tag for o in root if o.tag not in writers and (
        (o.get("type") or "").endswith("file") or o.tag.endswith(("-file", "-files", "-prefix")))}
    return ToolOptions(frozenset(writers), frozenset(RANDOM_TRIPS_SETS), short, abbreviations=True,
                       readers=frozenset(readers),
                       prefixes={"weights-prefix": (".src.xml", ".dst.xml", ".via.xml")},
                       names=frozenset(o.tag for o in root))


def option_values(options: list[str], tool: ToolOptions) -> dict[str, str]:
    """The value each option in ``options`` gives, by the tool's long name (short names,
    ``--name=value`` and argparse's unique abbreviations read as the tool reads them; the last
    of one given twice wins, as in argparse). Flags get an empty value."""
    found: dict[str, str] = {}
    for i, item in enumerate(options):
        if not item.startswith("-") or item in ("-", "--"):
            continue
        following = options[i + 1] if i + 1 < len(options) else ""
        value = following if not following.startswith("-") or _number(following) else ""
        if item.startswith("--"):
            name, sep, attached = item[2:].partition("=")
            name = tool.short.get(name, name)
            if tool.abbreviations and name not in tool.names:
                matches = [n for n in tool.names if n.startswith(name)]
                name = matches[0] if len(matches) == 1 else name
        else:
            letter, sep, attached = item[1:].partition("=")
            if letter not in tool.short and letter[:1] in tool.short:  # -i5: the value attached
                letter, sep, attached = letter[:1], "=", letter[1:]
            name = tool.short.get(letter, letter)
        found[name] = attached if sep else value
    return found


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def files_read(options: list[str], tool: ToolOptions, field: str,
               source: Path | None) -> list[Path]:
    """The files ``options`` make the tool read (a list's items, a prefix's files), which exist:
    their content belongs in the build's cache key, or an edited file would reuse a build of
    the old one. One that is not a regular file is refused (the tool would wait on a FIFO)."""
    found: list[Path] = []
    for i, item in enumerate(options):
        reader, value = _reader_value(options, i, tool)
        if reader is None:
            continue
        suffixes = (tool.prefixes or {}).get(reader, ("",))
        for part in value.split(","):
            for path in (Path(part + suffix) for suffix in suffixes if part):
                if path.exists() and not path.is_file():
                    raise InputError(source, field, f"{item} {part}: {path} is not a regular file")
                if path.is_file():
                    found.append(path.absolute())
    return found


def _reader_value(options: list[str], i: int, tool: ToolOptions) -> tuple[str | None, str]:
    """The reader option ``options[i]`` stands for and the value it gives it, however spelt:
    ``--name value``, ``--name=value``, an argparse abbreviation, ``-x value``, ``-x=value`` or
    ``-xVALUE``; (None, "") for anything else."""
    item = options[i]
    following = options[i + 1] if i + 1 < len(options) else ""
    if not item.startswith("-") or item in ("-", "--"):
        return None, ""
    if item.startswith("--"):
        name, sep, value = item[2:].partition("=")
        candidates = [tool.short.get(name, name)]
        if tool.abbreviations and name:
            candidates += sorted(n for n in tool.readers if n.startswith(name))
        reader = next((n for n in candidates if n in tool.readers), None)
        return reader, value if sep else following
    name, sep, value = item[1:].partition("=")
    if tool.short.get(name) in tool.readers:
        return tool.short[name], value if sep else following
    if name and tool.short.get(name[0]) in tool.readers:  # the value attached: -aFILE
        return tool.short[name[0]], item[2:]
    return None, ""


def check_tool_options(options: list[str], tool: ToolOptions, field: str,
                       source: Path | None) -> None:
    """InputError naming ``field`` for the first option that writes a file or sets what cosim
    sets (short names, ``--name=value`` and argparse's abbreviations and ``-oFILE`` included)."""
    for item in options:
        if not item.startswith("-") or item in ("-", "--"):
            continue
        if _stops(item, tool):
            raise InputError(source, field, f"{item}: prints the tool's help or version and "
                             "stops, building nothing; remove it")
        for name in _meanings(item, tool):
            if name == "configuration-file":
                raise InputError(source, field, f"{item}: a configuration file may name outputs "
                                 "cosim cannot check; give its options in this list instead")
            if name in UNSEEDED:
                raise InputError(source, field, f"{item}: seeds the tool from the clock, not from "
                                 "the scenario's seed, so the same scenario would build other "
                                 "traffic or networks each time; remove it")
            if name in tool.writers:
                raise InputError(source, field, f"{item}: writes a file ({name}); cosim builds in "
                                 "its cache, once per content, so no build tool writes elsewhere; "
                                 "remove it")
            if name in tool.cosim_sets:
                raise InputError(source, field, f"{item}: {name} is cosim's to set; remove it")


UNSEEDED = ("random",)  # SUMO's tools' and randomTrips' option to ignore the seed
STOPPERS = ("help", "version")  # options after which a tool prints and builds nothing
SHORT_STOPPERS = ("?", "V", "h")  # SUMO's -? and -V, argparse's -h


def _stops(item: str, tool: ToolOptions) -> bool:
    """Whether ``item`` asks for the tool's help or version (an argparse abbreviation too)."""
    if item.startswith("--"):
        name = item[2:].partition("=")[0]
        return any(name == s or (tool.abbreviations and len(name) >= 2 and s.startswith(name))
                   for s in STOPPERS)
    return item[1:].partition("=")[0] in SHORT_STOPPERS


def _meanings(item: str, tool: ToolOptions) -> list[str]:
    """The long option names ``item`` may stand for, the likeliest first."""
    if item.startswith("--"):
        name = item[2:].partition("=")[0]
        names = [tool.short.get(name, name)]
        if tool.abbreviations and name:
            names += sorted(n for n in tool.writers | tool.cosim_sets if n.startswith(name))
        return names
    # a short name, its value maybe attached (-oFILE) or other letters joined (-vo)
    name = item[1:].partition("=")[0]
    return [n for n in (tool.short.get(name), *(tool.short.get(c) for c in name), name) if n]
