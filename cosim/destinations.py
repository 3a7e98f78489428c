"""Where the commands other than `cosim run` write, under the run folders' rules.

A run folder (or a compare or onboarding folder) is written by the run that made it, and after it
only by `cosim report` (its ``report/``) and `cosim export` (its ``export-FORMAT/``). No other
command, and no SUMO output option, writes into one; no command writes over a folder or file a
user made. Each check raises InputError (exit 2) before anything is written.
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
from pathlib import Path
from xml.etree import ElementTree

from cosim.errors import InputError
from cosim.run_folder import check_out_name, is_run_folder

RESULT_MARKERS = ("compare.json", "onboarding.json")


def result_folder_around(path: Path) -> Path | None:
    """The run, compare or onboarding folder that holds ``path`` (or is it), if any."""
    for folder in (path.absolute(), *path.absolute().parents):
        if not folder.is_dir():
            continue
        if is_run_folder(folder) or any((folder / m).is_file() for m in RESULT_MARKERS):
            return folder
    return None


def check_not_in_results(path: Path, option: str, allowed: Path | None = None) -> None:
    """``path`` is in no result folder, unless it is ``allowed`` (a run's own entry)."""
    if allowed is not None and path.absolute() == allowed.absolute():
        return
    holder = result_folder_around(path)
    if holder is not None:
        raise InputError(None, option, f"{path} is inside {holder}, a folder of cosim's results: "
                         "only the run that made it writes there; choose another place")


def check_writable(path: Path, option: str) -> None:
    """Something can be created at ``path``: its nearest existing folder takes a new file (probed
    with a temporary file, removed at once; a read-only or virtual file system refuses it)."""
    import tempfile

    parent = next((p for p in path.absolute().parents if p.exists()), Path("/"))
    if not parent.is_dir():
        raise InputError(None, option, f"{parent} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise InputError(None, option, f"cannot write in {parent}: {exc.strerror or exc}") from None


def check_output_folder(out: Path, option: str, own_files: tuple[str, ...],
                        allowed_in: Path | None = None) -> None:
    """A folder a command fills: new, empty, or holding only what this command writes there
    (``own_files``: glob patterns), and not inside any result folder but its own entry."""
    check_out_name(out, option)  # a path the system can look up at all (not too long)
    check_not_in_results(out, option, allowed_in)
    if out.exists() and not out.is_dir():
        raise InputError(None, option, f"{out} exists and is not a folder")
    check_writable(out / "probe" if out.is_dir() else out, option)
    if out.is_dir():
        foreign = sorted(e.name for e in out.iterdir()
                         if not any(e.match(pattern) for pattern in own_files))
        if foreign:
            raise InputError(None, option, f"{out} holds files this command does not write "
                             f"({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}); "
                             "choose an empty or new folder")


def check_output_file(out: Path, option: str, overwrite: bool) -> None:
    """A file a command writes: not in a result folder, never over another file unasked."""
    check_out_name(out, option)  # a path the system can look up, through no broken link
    check_not_in_results(out, option)
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise InputError(None, option, f"{out} exists and is not a regular file")
    if out.exists() and not overwrite:
        raise InputError(None, option, f"{out} exists; pass --overwrite to replace it")
    check_writable(out, option)


# SUMO options that write a file (besides every ``*-output``) when SUMO's own list cannot be
# read: given in mobility.sumo_options, they must not point into a result folder
SUMO_WRITERS = ("netstate-dump", "ndump", "netstate", "netstate-output", "save-configuration",
                "save-config", "C", "save-template", "save-commented", "save-schema",
                "save-state.files", "error-log", "message-log", "log", "l", "output-prefix",
                "save-state.prefix", "summary", "tripinfo")


@functools.lru_cache(maxsize=4)
def sumo_writers(sumo: str | None) -> frozenset[str]:
    """Every name (and synonym) of an option the ``sumo`` binary documents as writing a file:
    its FILE options of the output and report groups, the ``save-*`` ones and any other whose
    name says output (read from ``sumo --save-template``); the fixed list when it cannot say."""
    names = set(SUMO_WRITERS)
    if sumo is None:
        return frozenset(names)
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.xml"
        try:
            subprocess.run([sumo, "--save-template", str(template)], capture_output=True,
                           timeout=30, check=True)
            root = ElementTree.parse(template).getroot()
        except (OSError, subprocess.SubprocessError, ElementTree.ParseError):
            return frozenset(names)
    for group in root:
        for option in group:
            name = option.tag
            if option.get("type") != "FILE" or "input" in name:
                continue
            if group.tag in ("output", "report") or name.startswith("save-") or "output" in name:
                names.update([name, *option.get("synonymes", "").split()])
    return frozenset(names)


def _writes(name: str, writers: frozenset[str]) -> bool:
    return name.endswith("-output") or name in writers


def sumo_written_paths(options: list[str], writers: frozenset[str] = frozenset(SUMO_WRITERS)
                       ) -> list[tuple[str, Path]]:
    """(option, path) of each SUMO option in ``options`` that writes a file."""
    found = []
    for i, item in enumerate(options):
        if not item.startswith("-"):
            continue
        name, sep, value = item.lstrip("-").partition("=")
        if not _writes(name, writers):
            continue
        if not sep:
            value = options[i + 1] if i + 1 < len(options) else ""
        found += [(f"--{name}", Path(v)) for v in value.split(",") if v]
    return found


def without_writers(options: list[str], writers: frozenset[str] = frozenset(SUMO_WRITERS)
                    ) -> list[str]:
    """``options`` less the SUMO options that write files (and their values)."""
    kept, skip = [], False
    for item in options:
        if skip:
            skip = False
            continue
        name, sep, _ = item.lstrip("-").partition("=")
        if item.startswith("-") and _writes(name, writers):
            skip = not sep
            continue
        kept.append(item)
    return kept


def check_sumo_outputs(options: list[str], run_out: Path, replace: bool = False,
                       writers: frozenset[str] = frozenset(SUMO_WRITERS)) -> None:
    """SUMO output options of a scenario write outside every result folder, and not into the
    run's own destination (``run_out`` and its staging folder); an existing file is replaced only
    with ``replace`` (``--overwrite``, or a resumed run rewriting its own)."""
    for option, path in sumo_written_paths(options, writers):
        where = path.absolute()
        if not replace and where.exists():
            raise InputError(None, "mobility.sumo_options", f"{option} {path}: exists already and "
                             "SUMO would replace it (--overwrite allows that; or choose another path)")
        for own in (run_out.absolute(), run_out.absolute().with_name(run_out.name + ".partial")):
            if where == own or own in where.parents:
                raise InputError(None, "mobility.sumo_options", f"{option} {path} writes into "
                                 "this run's folder, which only cosim writes")
        holder = result_folder_around(where.parent)
        if holder is not None:
            raise InputError(None, "mobility.sumo_options", f"{option} {path} writes into "
                             f"{holder}, a folder of cosim's results; choose another place")
