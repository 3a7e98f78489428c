"""Where the commands other than `cosim run` write, under the run folders' rules.

A run folder (or a compare or onboarding folder) is written by the run that made it, and after it
only by `cosim report` (its ``report/``) and `cosim export` (its ``export-FORMAT/``). No other
command, and no SUMO output option, writes into one; no command writes over a folder or file a
user made. Each check raises InputError (exit 2) before anything is written.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import gzip
import json
import os
import re
import stat
import subprocess
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from cosim.bounded_read import file_sha256
from cosim.errors import InputError, MissingDependencyError, printable
from cosim.names import OUTPUT_MANIFEST, STUDY_COMMANDS
from cosim.run_folder import (
    PARTIAL_SUFFIX,
    check_out_name,
    files_below,
    flock_held,
    foreign_entries,
    foreign_in_entry,
    foreign_outputs,
    is_cosim_lock,
    is_run_folder,
    lock_held,
    lock_path,
    manifest_command,
    mount_point,
    mounts_under,
    read_manifest,
    unlisted_outputs,
)

RESULT_MARKERS = ("compare.json", "onboarding.json")


def result_folder_around(path: Path, itself_output_ok: bool = False) -> Path | None:
    """The folder of results that holds ``path`` (or is it), if any: a run's, a compare's, an
    onboarding's, or one that report, export or data synth filled (its manifest says so).
    ``path`` itself filled by one of those commands is not counted: whether it takes that
    command again is for ``check_output_folder`` to say (``itself_output_ok``)."""
    # the path as given, and where it leads (links followed, ".." taken as the system takes it)
    for itself in dict.fromkeys((Path(os.path.normpath(path.absolute())), path.resolve())):
        for folder in (itself, *itself.parents):
            if not folder.is_dir():
                continue
            output = manifest_command(folder) not in (None, *STUDY_COMMANDS)
            if output and itself_output_ok and folder == itself:
                continue  # whether it takes the command again is check_output_folder's to say
            if output or is_run_folder(folder) or any((folder / m).is_file()
                                                      for m in RESULT_MARKERS):
                return folder
    return None




def check_not_in_results(path: Path, option: str, allowed: Path | None = None,
                         itself_output_ok: bool = False) -> None:
    """``path`` is in no result folder, unless it is ``allowed`` (a run's own entry), and in
    none of the cache's folders."""
    if allowed is not None and path.resolve() == allowed.resolve():
        return
    check_not_in_cache(path, option)
    holder = result_folder_around(path, itself_output_ok)
    if holder is not None:
        raise InputError(None, option, f"{path} is inside {holder}, a folder of cosim's results: "
                         "only the run that made it writes there; choose another place")


def check_not_in_cache(path: Path, option: str) -> None:
    """What a command writes goes in none of the cache's folders: a run reads its entries as
    cosim built them (a checkpoint written over a cached backbone would train later runs on it
    unsaid)."""
    from cosim.cache import KINDS, cache_root

    root = cache_root().resolve()
    try:
        inside = path.resolve().relative_to(root).parts
    except ValueError:
        return
    if inside and inside[0] in KINDS:
        raise InputError(None, option, f"{path} is inside {root / inside[0]}, a folder of cosim's "
                         "cache; choose another place")


def check_study_out(out: Path, option: str = "--out") -> None:
    """The folder of a compare or onboarding study: a name the system can hold, in no result
    folder (it may be a study's own, marked), not a file, and writable. Whether an existing one
    is the study's own is for the study to say, by its compare.json or onboarding.json."""
    check_out_name(out, option)
    check_not_in_cache(out, option)
    holder = result_folder_around(out.absolute().parent)
    if holder is not None:
        raise InputError(None, option, f"{out} is inside {holder}, a folder of cosim's results: "
                         "only the run that made it writes there; choose another place")
    if out.exists() and not out.is_dir():
        raise InputError(None, option, f"{out} exists and is not a folder")
    check_writable(out / "probe" if out.is_dir() else out, option)


def check_cache_folder() -> None:
    """The cache (``COSIM_CACHE_DIR``, else the user's cache folder) is a folder cosim may fill:
    on disk (not a kernel's virtual file system), not a file, in no result folder (its builds
    would be a run's foreign files), with no mount point inside it, and writable."""
    from cosim.bounded_read import virtual_file
    from cosim.cache import cache_root

    root = cache_root()
    field = "COSIM_CACHE_DIR" if os.environ.get("COSIM_CACHE_DIR") else "cache folder"
    check_out_name(root, field)
    if virtual_file(root):
        raise InputError(None, field, f"{root} is in a kernel's virtual file system; name a "
                         "folder on disk")
    if root.exists() and not root.is_dir():
        raise InputError(None, field, f"{root} exists and is not a folder")
    holder = result_folder_around(root)
    if holder is not None:
        raise InputError(None, field, f"{root} is inside {holder}, a folder of cosim's results; "
                         "name a folder outside it")
    inside = mounts_under(root) if root.is_dir() else []
    if inside:  # where a mount inside leads cannot be told; cosim writes and removes there
        raise InputError(None, field, f"{root / inside[0]} is a mount point inside the cache "
                         "folder; mount the whole cache folder instead, or unmount it")
    kinds = sorted(root.iterdir()) if root.is_dir() else []
    checked = root / "checked"
    if checked.is_dir():
        kinds += sorted(checked.iterdir())  # the remembered checks' folders, one per kind
    for kind in kinds:  # a kind's folder linked or mounted elsewhere (another disk): no results
        holder = result_folder_around(kind.resolve() if kind.is_symlink() else kind)
        if holder is not None:
            raise InputError(None, field, f"{kind} leads into {holder}, a folder of cosim's "
                             "results; remove the link or mount")
    check_writable(root / "probe" if root.is_dir() else root, field)


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


MANIFEST = OUTPUT_MANIFEST
MANIFEST_TMP = MANIFEST + ".tmp"


def check_output_folder(out: Path, option: str, allowed_in: Path | None = None,
                        command: str | None = None, of: str | None = None) -> None:
    """A folder a command fills: new, empty, or one the same ``command`` filled before from the
    same source ``of`` (every file in it, at any depth, one its manifest lists, unchanged), and
    not inside any result folder but its own entry ``allowed_in`` (where an entry written before
    manifests existed is judged by the run folder's own rules)."""
    check_out_name(out, option)  # a path the system can look up at all (not too long)
    check_not_in_results(out, option, allowed_in, itself_output_ok=True)
    if out.is_symlink():  # what it points at is not a folder cosim can vouch for
        raise InputError(None, option, f"{out} is a symbolic link; give the folder itself, or a "
                         "new one")
    if out.exists() and not out.is_dir():
        raise InputError(None, option, f"{out} exists and is not a folder")
    check_writable(out / "probe" if out.is_dir() else out, option)
    if not out.is_dir():
        return
    foreign = foreign_outputs(out)
    if foreign and allowed_in is not None and not (out / MANIFEST).exists() \
            and out.absolute() == allowed_in.absolute():
        foreign = foreign_in_entry(out)
    if foreign:
        raise InputError(None, option, f"{out} holds files cosim did not write: "
                         f"{', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}; "
                         "give an empty or new folder")
    earlier = read_manifest(out)
    own_entry = allowed_in is not None and out.absolute() == allowed_in.absolute()
    unsaid = (None, of) if command != "data synth" else (of,)  # data must say what it is
    if command is not None and earlier is not None and not own_entry and files_below(out) and (
            earlier.get("command") != command or earlier.get("of") not in unsaid):
        what = (f"{earlier.get('command')} of {earlier.get('of')}" if earlier.get("of")
                else str(earlier.get("command")))
        raise InputError(None, option, f"{out} holds cosim's {printable(what)}, not this "
                         f"{command}'s; give an empty or new folder")


def _file_stamps(folder: Path, names: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """Each named file's inode, size and modification time: whether it was written since."""
    stamps = {}
    for name in names:
        with contextlib.suppress(OSError):
            st = (folder / name).lstat()
            stamps[name] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return stamps


def write_manifest(folder: Path, command: str, of: str | None = None,
                   status: str = "complete",
                   untouched: Mapping[str, tuple[int, int, int]] | None = None) -> None:
    """Mark ``folder`` as cosim's output: the command, what it was made ``of``, whether the
    command finished (``status``: complete, or incomplete while it fills the folder and after it
    stopped part way), and every file in it with its size and SHA-256 (checked before the folder
    is written again; the folder held only cosim's files). ``untouched``: the unlisted files an
    unfinished folder held when its command started again (``_file_stamps``); one this command
    has not written since is nobody's known output and stays unlisted, so foreign."""
    untouched = untouched or {}
    names = [n for n in files_below(folder) if n not in (MANIFEST, MANIFEST_TMP)]
    now = _file_stamps(folder, [n for n in names if n in untouched])
    files = {name: {"size": (folder / name).stat().st_size, "sha256": file_sha256(folder / name)}
             for name in names if name not in untouched or now.get(name) != untouched[name]}
    tmp = folder / MANIFEST_TMP
    tmp.write_text(json.dumps({"command": command, **({"of": of} if of else {}), "status": status,
                               "files": files}, indent=1), encoding="utf-8")
    tmp.replace(folder / MANIFEST)


def check_finished_output(folder: Path, command: str) -> None:
    """A folder ``command`` filled is read only once it finished: a data set a killed or
    interrupted ``cosim data synth`` left holds fewer segments than it says (InputError)."""
    manifest = read_manifest(folder)
    if manifest is not None and manifest.get("command") == command \
            and manifest.get("status", "complete") != "complete":
        raise InputError(folder, None, f"an unfinished `cosim {command}` "
                         f"({printable(str(manifest.get('of', '')))}): its manifest says "
                         f"{printable(str(manifest.get('status')))}; run it again to finish it")


def foreign_in_study(folder: Path, command: str, run_folders: tuple[str, ...]) -> list[str] | None:
    """Entries of a compare's or onboarding's ``folder`` that are not the study's own; None when
    no manifest marks the folder as that ``command``'s. Its own files are those at the top that
    the manifest lists unchanged; its ``run_folders`` hold only runs (judged by the run-folder
    rules when one is kept or replaced); its report/ is judged by that report's manifest."""
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("command") != command:
        return None
    listed = manifest.get("files")
    listed = listed if isinstance(listed, dict) else {}
    pending = manifest.get("pending")
    pending = [n for n in pending if isinstance(n, str)] if isinstance(pending, list) else []
    foreign = []
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if entry.is_symlink():
            foreign.append(name)
        elif entry.is_dir() and name in run_folders:
            foreign += [f"{name}/{n}" for n in _not_runs(entry)]
        elif entry.is_dir() and name == "report":
            foreign += [f"report/{n}" for n in foreign_outputs(entry)]
        elif name in (MANIFEST, MANIFEST_TMP) and entry.is_file():
            continue
        elif name in pending and entry.is_file():
            continue  # being written when the study stopped
        elif not _listed_unchanged(entry, listed.get(name)):
            foreign.append(name)
    return foreign


def check_study_file(folder: Path, name: str, command: str) -> None:
    """A file at a study's top read as its result is the one the study wrote: its size and
    SHA-256 as the folder's mark lists them (a folder from before marks has none to check)."""
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("command") != command:
        return
    listed = manifest.get("files")
    if not _listed_unchanged(folder / name, (listed if isinstance(listed, dict) else {}).get(name)):
        raise InputError(folder / name, None, f"changed since the {command} wrote it (its size or "
                         "SHA-256 differs from the folder's mark): not its results")


def _listed_unchanged(path: Path, mark: object) -> bool:
    return (path.is_file() and isinstance(mark, dict) and mark.get("size") == path.stat().st_size
            and mark.get("sha256") == file_sha256(path))


def _not_runs(folder: Path) -> list[str]:
    """Entries of a study's folder of runs that no run made: a run makes its folder, its
    staging folder, its lock file and, while it resumes or replaces, a hidden copy aside."""
    found = []
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if entry.is_symlink():
            found.append(name)
        elif entry.is_dir() and is_run_folder(entry):  # a run (also one set aside meanwhile)
            found += [f"{name}/{n}" for n in foreign_entries(entry)]
        elif entry.is_dir() and name.endswith(PARTIAL_SUFFIX) and not any(entry.iterdir()):
            continue
        elif not (name.startswith(".") and name.endswith(".lock") and is_cosim_lock(entry)):
            found.append(name)
    return found


def write_study_manifest(folder: Path, command: str, pending: Sequence[str] = ()) -> None:
    """Mark ``folder`` as a compare's or onboarding's: the command and each file at its top with
    its size and SHA-256 (its runs carry their own run.json); ``pending``: the names of files
    the study is about to write (theirs whatever they hold, should it stop part way)."""
    files = {p.name: {"size": p.stat().st_size, "sha256": file_sha256(p)}
             for p in sorted(folder.iterdir())
             if p.is_file() and not p.is_symlink() and p.name not in (MANIFEST, MANIFEST_TMP)}
    tmp = folder / MANIFEST_TMP
    tmp.write_text(json.dumps({"command": command, "files": files,
                               **({"pending": list(pending)} if pending else {})}, indent=1),
                   encoding="utf-8")
    tmp.replace(folder / MANIFEST)


@contextlib.contextmanager
def study_writes(folder: Path, command: str, names: Sequence[str]) -> Iterator[None]:
    """The study writes the files ``names`` at its folder's top: listed as pending first, so a
    study killed while it writes them still knows them as its own, then listed with their
    digests."""
    write_study_manifest(folder, command, pending=names)
    yield
    write_study_manifest(folder, command)


_HELD: set[Path] = set()  # the study folders this process holds (study_lock)


@contextlib.contextmanager
def study_lock(folder: Path, command: str, recheck: Callable[[], None]) -> Iterator[None]:
    """Hold ``folder`` (made first if new) for one study at a time: a second compare or
    onboarding there, even one told to ``--overwrite`` or ``--resume``, is refused while this one
    runs. The lock is the system's on the folder itself (``flock``), so no file is added and a
    killed study lets go of it. ``recheck``: the checks of the folder, again under the lock (it
    may have been written between them and now). A folder this study made is removed again, if
    still empty, when it stops before writing anything."""
    import fcntl

    made = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        _remove_empty(made)
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy_study(folder, command) from None
        _HELD.add(folder.resolve())
        recheck()
        yield
    except BaseException:
        _remove_empty(made)
        raise
    finally:
        _HELD.discard(folder.resolve())
        os.close(fd)


def check_study_free(folder: Path, command: str) -> None:
    """Refuse a study's folder that another study holds now (``study_lock``), before anything
    (a progress line included) starts; the lock itself is taken when the study starts."""
    if folder.is_dir() and folder.resolve() not in _HELD and study_running(folder):
        raise busy_study(folder, command)


def busy_study(folder: Path, command: str) -> InputError:
    """What the holder is, its study file says (a compare's folder refuses an onboarding too)."""
    kind = next((m.removesuffix(".json") for m in RESULT_MARKERS if (folder / m).is_file()),
                command)
    return InputError(None, "--out", f"another cosim {kind} is writing {folder} now; wait for "
                      "it to end, or choose another --out")


def refuse_being_written(folder: Path) -> None:
    """A folder to read whole (report, export) that a cosim command writes now: a run holding
    its lock (``run --overwrite`` replaces it when the new run completes) or a study holding
    it. Read then, it could change or vanish half way."""
    if lock_held(folder.absolute()):
        raise InputError(folder, None, "a cosim run is writing this folder now (it replaces it "
                         "when it completes); read it once that run has ended")
    if folder.is_dir() and study_running(folder):
        raise InputError(folder, None, "a cosim compare or onboarding is writing this folder "
                         "now; read it once it has ended")


def study_running(folder: Path) -> bool:
    """Whether a study holds ``folder``'s lock now (``study_lock``)."""
    return flock_held(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


STUDY_STATES = ("running", "complete", "interrupted", "failed")


def study_status(folder: Path) -> tuple[str, str] | None:
    """(kind, state) of a compare or onboarding folder, None for any other: its compare.json or
    onboarding.json's status, ``crashed`` where it says running and no study holds the folder
    (``study_lock``), ``unknown`` where the file is not one cosim wrote."""
    from cosim.bounded_read import read_json_file

    for marker in RESULT_MARKERS:
        if not (folder / marker).is_file():
            continue
        kind = marker.removesuffix(".json")
        try:
            info = read_json_file(folder / marker, marker)
        except (OSError, InputError):
            return kind, "unknown"
        state = info.get("status", "complete") if isinstance(info, dict) else None
        if state not in STUDY_STATES:
            return kind, "unknown"
        return kind, "crashed" if state == "running" and not study_running(folder) else state
    return None


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a command made (innermost first) that are still empty: nothing in
    them, so nothing of anyone's is lost."""
    for p in folders:
        with contextlib.suppress(OSError):
            p.rmdir()


@contextlib.contextmanager
def study_folder(folder: Path, command: str) -> Iterator[Path]:
    """Let a study write ``folder`` (checked before to hold only what the study wrote), then list
    its files in the manifest, also when the study fails or is stopped part way."""
    before = _top_listing(folder)
    try:
        yield folder
    except BaseException:
        with contextlib.suppress(OSError):
            if _top_listing(folder) != before:  # a refused study leaves the folder as it was
                write_study_manifest(folder, command)
        raise
    if _top_listing(folder) != before:
        write_study_manifest(folder, command)


def _top_listing(folder: Path) -> set[tuple[str, int, int]]:
    """(name, size, mtime) of each file at the top of ``folder``."""
    if not folder.is_dir():
        return set()
    return {(p.name, st.st_size, st.st_mtime_ns) for p in folder.iterdir()
            if p.name not in (MANIFEST, MANIFEST_TMP) and stat.S_ISREG((st := p.lstat()).st_mode)}


@contextlib.contextmanager
def output_folder(out: Path, option: str, command: str, allowed_in: Path | None = None,
                  of: str | None = None, make: bool = False) -> Iterator[Path]:
    """Check ``out`` (``check_output_folder``), let the command fill it, then write its manifest,
    also when the command fails part way (what it left is cosim's, to be written over again).
    ``of``: what the output is made from (a run and a format), which a later fill must share.
    ``make``: create the folder first (a command with no inputs left to check), so that even a
    killed command leaves it marked unfinished."""
    check_output_folder(out, option, allowed_in, command, of)
    if make:
        out.mkdir(parents=True, exist_ok=True)
    earlier = read_manifest(out) if out.is_dir() else None
    untouched = _file_stamps(out, unlisted_outputs(out, earlier)) if earlier else {}
    if out.is_dir():  # a command killed before its end leaves the folder marked unfinished
        write_manifest(out, command, of, status="incomplete", untouched=untouched)
    try:
        yield out
    except BaseException as exc:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT) \
                and not exc.filename:  # a write names no file: the folder being filled is said
            exc.filename = str(out)
        with contextlib.suppress(OSError):
            if out.is_dir():
                write_manifest(out, command, of, status="incomplete", untouched=untouched)
        raise
    write_manifest(out, command, of, untouched=untouched)


def check_output_file(out: Path, option: str, overwrite: bool) -> None:
    """A file a command writes: not in a result folder, never over another file unasked."""
    check_out_name(out, option)  # a path the system can look up, through no broken link
    check_not_in_results(out, option)
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise InputError(None, option, f"{out} exists and is not a regular file")
    if out.exists() and mount_point(out):  # replaced by a rename, which a mount point refuses
        raise InputError(None, option, f"{out} is a mount point, which a new file cannot "
                         "replace; name another file")
    if out.exists() and not overwrite:
        raise InputError(None, option, f"{out} exists; pass --overwrite to replace it")
    check_writable(out, option)


# SUMO options that write a file (besides every ``*-output``) when SUMO's own list cannot be
# read: given in mobility.sumo_options, they must not point into a result folder
SUMO_WRITERS = ("netstate-dump", "ndump", "netstate", "netstate-output", "save-configuration",
                "save-config", "C", "save-template", "save-commented", "save-schema",
                "save-state.files", "error-log", "message-log", "log", "l", "output-prefix",
                "save-state.prefix", "summary", "tripinfo")


PREFIX_OPTIONS = ("--save-state.prefix",)  # a prefix of names, not a file
NULL_OUTPUTS = ("NUL", "nul", "/dev/null")  # output names SUMO writes no file for
# file options SUMO reads as a comma-separated list; any other is one path, commas and all
LIST_OPTIONS = ("additional-files", "route-files", "save-state.files")


@functools.lru_cache(maxsize=4)
def tool_file_options(sumo: str) -> tuple[tuple[str, str, tuple[str, ...]], ...] | None:
    """(group, name, synonyms) of each FILE option of a SUMO C++ tool (sumo, netconvert,
    netgenerate, ...), from its ``--save-template``; None when it cannot say."""
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.xml"
        try:
            subprocess.run([sumo, "--save-template", str(template)], capture_output=True,
                           timeout=30, check=True)
            root = ElementTree.parse(template).getroot()
        except (OSError, subprocess.SubprocessError, ElementTree.ParseError):
            return None
    return tuple((group.tag, option.tag, tuple(option.get("synonymes", "").split()))
                 for group in root for option in group if option.get("type") == "FILE")


def required_file_options(binary: str) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """``tool_file_options``, from a tool that must say them: one that cannot list its options
    is a broken install (guessing none would leave files out of checks and cache keys)."""
    options = tool_file_options(binary)
    if options is None:
        raise MissingDependencyError(f"{binary} --save-template failed: this SUMO cannot list its "
                                     "options; reinstall it (pip install eclipse-sumo)")
    return options


def writes_option(group: str, name: str) -> bool:
    """Whether a SUMO FILE option of ``group`` named ``name`` writes its file."""
    return "input" not in name and (group in ("output", "report") or name.startswith("save-")
                                    or "output" in name)


def sumo_writers(sumo: str | None) -> frozenset[str]:
    """Every name (and synonym) of an option the ``sumo`` binary documents as writing a file:
    its FILE options of the output and report groups, the ``save-*`` ones and any other whose
    name says output (read from ``sumo --save-template``); the fixed list when it cannot say."""
    names = set(SUMO_WRITERS)
    for group, name, synonyms in (tool_file_options(sumo) or ()) if sumo else ():
        if writes_option(group, name):
            names.update([name, *synonyms])
    return frozenset(names)


def sumo_readers(sumo: str) -> frozenset[str]:
    """Every name (and synonym) of an option the ``sumo`` binary documents as reading a file
    (its other FILE options: weights, a state to load, lookup tables, ...)."""
    return frozenset(n for group, name, synonyms in required_file_options(sumo)
                     if not writes_option(group, name) for n in (name, *synonyms))


def writes_file(name: str, writers: frozenset[str]) -> bool:
    """Whether the SUMO option ``name`` (no dashes) writes a file."""
    return name.endswith("-output") or name in writers



def _option_values(options: list[str], wanted: Callable[[str], bool]) -> Iterator[tuple[str, str]]:
    """(name, value) of each option in ``options`` whose name (no dashes) ``wanted`` accepts,
    its value after ``=`` or in the next item."""
    for i, item in enumerate(options):
        name, sep, value = item.lstrip("-").partition("=")
        if not item.startswith("-") or not wanted(name):
            continue
        yield name, value if sep else (options[i + 1] if i + 1 < len(options) else "")


def sumo_written_paths(options: list[str], writers: frozenset[str] = frozenset(SUMO_WRITERS)
                       ) -> list[tuple[str, Path]]:
    """(option, path) of each SUMO option in ``options`` that writes a file."""
    return [(f"--{name}", Path(v))
            for name, value in _option_values(options, lambda n: writes_file(n, writers))
            for v in sumo_file_values(name, value) if v not in NULL_OUTPUTS]


def sumo_read_paths(options: list[str], readers: frozenset[str]) -> list[Path]:
    """The files the SUMO options in ``options`` name for SUMO to read (``sumo_readers``)."""
    return [Path(v) for _, value in _option_values(options, readers.__contains__)
            for v in value.split(",") if v]


def sumo_file_values(name: str, value: str) -> list[str]:
    """The paths a SUMO file option's value names: a list for the options SUMO reads as one,
    else the value itself, commas and all (SUMO opens ``a.xml,b.xml`` as one file)."""
    if name in LIST_OPTIONS:
        return [v for v in value.split(",") if v]
    return [value] if value else []


def without_writers(options: list[str], writers: frozenset[str] = frozenset(SUMO_WRITERS)
                    ) -> list[str]:
    """``options`` less the SUMO options that write files (and their values)."""
    kept, skip = [], False
    for item in options:
        if skip:
            skip = False
            continue
        name, sep, _ = item.lstrip("-").partition("=")
        if item.startswith("-") and writes_file(name, writers):
            skip = not sep
            continue
        kept.append(item)
    return kept


def check_sumo_outputs(options: list[str], run_out: Path, replace: bool | None = False,
                       writers: frozenset[str] = frozenset(SUMO_WRITERS),
                       own: Mapping[str, Any] | None = None,
                       declared: Sequence[tuple[str, str, Path]] = (),
                       source: Path | None = None,
                       earlier: Mapping[str, Any] | None = None) -> None:
    """SUMO output options of a scenario (and the outputs its input files ``declared``: field,
    what declares it, path) write outside every result folder, and not into the run's own
    destination (``run_out`` and its staging folder). An existing file is replaced only when
    ``own`` (a resumed attempt's record by absolute path, ``_still_own``) says this run wrote
    it as it is, or with ``replace`` (``--overwrite``) when SUMO wrote it: ``earlier`` (the
    record of the run at ``run_out`` being replaced) says so, or it starts as SUMO's XML outputs
    do. A user's other file is never replaced. ``replace=None``: whether it may be is not known
    yet (``cosim validate``). Errors name the scenario file ``source``."""
    outputs = [("mobility.sumo_options", option, path)
               for option, path in sumo_written_paths(options, writers)]
    for field, option, path in [*outputs, *declared]:
        where = path.absolute()
        file = option not in PREFIX_OPTIONS
        if file and (where.is_symlink() or where.exists() and not where.is_file()
                     or where.is_file() and where.stat().st_nlink > 1):
            raise InputError(source, field, f"{option} {path}: exists and is not a plain file "
                             "(a link, a hard link, a folder, a device); name a file to write")
        if (replace is not None and where.exists() and not _still_own(where, own or {})
                and not (replace and (_still_own(where, earlier or {}) or sumo_wrote(where)))):
            raise InputError(source, field, f"{option} {path}: " + (
                "exists, and the run.json of the run being resumed does not say this run wrote "
                "it as it is now (its sumo_outputs); move it away to resume" if own is not None
                else "exists, and neither the run at --out wrote it as it is (its run.json's "
                "sumo_outputs) nor does it start as SUMO's XML outputs do; move it away or "
                "choose another path" if replace else
                "exists already and SUMO would replace it (--overwrite allows that for a file "
                "SUMO wrote; or choose another path)"))
        for staging in (run_out, run_out.with_name(run_out.name + ".partial")):
            for mine, there in ((staging.absolute(), where), (staging.resolve(), where.resolve())):
                if there == mine or mine in there.parents:
                    raise InputError(source, field, f"{option} {path} writes into this run's "
                                     "folder, which only cosim writes")
        if where in (lock_path(run_out.absolute()), lock_path(run_out.resolve())) or (
                where.name.startswith(".") and where.name.endswith(".lock")
                and is_cosim_lock(where)):
            raise InputError(source, field, f"{option} {path} is a run's lock file, which cosim "
                             "removes when that run ends; choose another path")
        holder = result_folder_around(where.parent)
        if holder is not None:
            raise InputError(source, field, f"{option} {path} writes into {holder}, a folder of "
                             "cosim's results; choose another place")
        if file:
            _check_sumo_folder(option, path, field, source)


# SUMO's XML outputs open with an XML declaration and a comment naming their maker
SUMO_HEADER = re.compile(rb"\A(?:\xef\xbb\xbf)?(?:<\?xml[^>]*\?>\s*)?"
                         rb"<!-- generated on [^\n]* by Eclipse SUMO ")
HEADER_BYTES = 4096


def sumo_wrote(where: Path) -> bool:
    """Whether ``where`` (plain or gzip) starts as SUMO's XML outputs do: a file ``--overwrite``
    may let SUMO replace, unlike a user's own (a CSV output or a log is known only from the
    record of the run that wrote it)."""
    try:
        with where.open("rb") as raw:
            head = raw.read(HEADER_BYTES)
        if head.startswith(b"\x1f\x8b"):
            with gzip.open(where, "rb") as unpacked:
                head = unpacked.read(HEADER_BYTES)
    except (OSError, EOFError, zlib.error):
        return False
    return SUMO_HEADER.match(head) is not None


def _still_own(where: Path, own: Mapping[str, Any]) -> bool:
    """The run's record says it wrote ``where`` as it is: its SHA-256 (an attempt that ended),
    or, from the heartbeat of one killed while SUMO wrote it, the same file (device, inode), no
    smaller than then and not changed after SUMO could have last written it."""
    recorded = own.get(str(where))
    if isinstance(recorded, str):
        return where.is_file() and file_sha256(where) == recorded
    if isinstance(recorded, dict):  # and not changed after the attempt was killed
        st = where.lstat()
        until, size = recorded.get("written_until"), recorded.get("size_at_least")
        return (stat.S_ISREG(st.st_mode) and [st.st_dev, st.st_ino] == recorded.get("file")
                and isinstance(until, (int, float)) and st.st_mtime <= until
                and isinstance(size, int) and st.st_size >= size)
    return False


def _check_sumo_folder(option: str, path: Path, field: str, source: Path | None) -> None:
    """SUMO can create the file: an existing, writable folder holds it (SUMO makes none, and
    would fail to open it only once the run has begun)."""
    where = path.absolute()
    if not where.parent.is_dir():
        raise InputError(source, field, f"{option} {path}: {where.parent} is no "
                         "folder (SUMO makes none); create it or choose another path")
    try:
        check_writable(where, field)
    except InputError as exc:
        raise InputError(source, field, f"{option} {path}: {exc.message}") from None
