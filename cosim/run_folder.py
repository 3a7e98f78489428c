"""Where a run writes, so that no run is ever lost or half-overwritten.

A run writes into ``<out>.partial`` and renames it to ``<out>`` only when it completes; an earlier
run at ``<out>`` is replaced (with ``--overwrite``) only then. A failed or interrupted run stays at
``<out>.partial`` with a run.json that says why. While a run writes, it holds an exclusive lock
(``<parent>/.<name>.lock``), so a second run with the same ``--out`` is refused. run.json carries
the writer's pid, host and a heartbeat; a ``running`` folder whose writer is gone is *crashed*.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import fnmatch
import math
import os
import re
import shutil
import socket
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosim.bounded_read import file_sha256, read_bounded_text, read_json_file
from cosim.errors import CONTROL, InputError, printable, warn
from cosim.names import JOURNAL_DIR, OUTPUT_MANIFEST, REPORT_HEAD, STUDY_COMMANDS
from cosim.trace_schemas import TRACE_TABLES

PARTIAL_SUFFIX = ".partial"
STATUSES = ("running", "complete", "failed", "interrupted")  # what run.json's status can say
HEARTBEAT_S = 30.0  # run.json's heartbeat period while a run goes
STALE_AFTER_S = 10 * HEARTBEAT_S  # a heartbeat this old, on another host, means crashed
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(RuntimeError):
    """The disk filled up while the run wrote: one line for the user, run.json says failed."""


class RunFailedError(RuntimeError):
    """The run reached its end but its outputs could not be closed: run.json says failed."""


# What cosim writes in a run folder (a run, then `cosim report` and `cosim export` into it), by
# exact name: anything else, at any depth, is a user's and is never deleted
OWN_FILES = ("run.json", "run.json.tmp", "sumo.log", "warnings.log", "global_modules.pt")
OWN_FOLDERS = {  # folder (a glob) -> the names its files may have (globs), one level down
    "report": ("report.html", "figures", OUTPUT_MANIFEST, OUTPUT_MANIFEST + ".tmp"),
    "report/figures": ("*.png", "*.pdf", "*.svg"),
    "export-*": ("*.csv", "*.parquet", "*.jsonl", "run.json", "schema.json", OUTPUT_MANIFEST,
                 OUTPUT_MANIFEST + ".tmp"),
    JOURNAL_DIR: ("train-[0-9][0-9][0-9][0-9][0-9][0-9].pt", "train-[0-9][0-9][0-9][0-9][0-9][0-9].tmp"),
}


def _own_top(entry: Path) -> bool:
    if entry.is_symlink():
        return False
    if entry.is_file():
        return entry.name in OWN_FILES or any(
            entry.name in (f"{t}.parquet", f"{t}.parquet.part", f"{t}.incomplete.parquet")
            for t in TRACE_TABLES)
    return entry.is_dir() and any(fnmatch.fnmatch(entry.name, k) for k in OWN_FOLDERS if "/" not in k)


def foreign_entries(run_dir: Path) -> list[str]:
    """Entries of a run folder that cosim did not write, at any depth (by name: cosim's files
    have fixed names; a report's figures are the ones its report.html links, an export's files
    the tables its schema.json lists; and a report or export that holds its manifest, by that
    manifest too), and any mount point inside it: ``--overwrite`` never deletes a folder holding
    any."""
    foreign = [f"{m} (a mount point)" for m in mounts_under(run_dir)]
    for entry in sorted(run_dir.iterdir()):
        if not _own_top(entry):
            foreign.append(entry.name)
        elif entry.is_dir():
            below = {*_foreign_below(entry, entry.name), *_unlisted(entry)}
            if (entry / OUTPUT_MANIFEST).is_file():
                below.update(f"{entry.name}/{n}" for n in foreign_outputs(entry))
            foreign += sorted(below)
    return foreign


def foreign_in_entry(entry: Path) -> list[str]:
    """What a run's own report/ or export-FORMAT/ ``entry`` holds that cosim did not write, by
    the rules of ``foreign_entries`` (names, and the entry's own index)."""
    return sorted(set(_foreign_below(entry, entry.name) + _unlisted(entry)))


def _unlisted(folder: Path) -> list[str]:
    """Files of a report or an export that its own index (report.html, schema.json) does not
    name: a user's file that merely looks like cosim's."""
    if folder.name == "report":
        try:
            page = read_bounded_text(folder / "report.html", "report")
        except (OSError, InputError, UnicodeDecodeError):
            page = ""
        foreign = ["report/report.html"] if page and not page.startswith(REPORT_HEAD) else []
        figures = folder / "figures"
        return foreign + ([f"report/figures/{p.name}" for p in sorted(figures.iterdir())
                           if f"href='figures/{p.name}'" not in page] if figures.is_dir() else [])
    if fnmatch.fnmatch(folder.name, "export-*"):
        try:
            tables = read_json_file(folder / "schema.json", "schema.json")
        except (OSError, InputError):
            tables = {}
        tables = tables if isinstance(tables, dict) else {}
        listed = {"run.json", "schema.json", OUTPUT_MANIFEST, OUTPUT_MANIFEST + ".tmp"} | {
            f"{t}{s}" for t in tables for s in (".csv", ".parquet", ".jsonl")}
        return [f"{folder.name}/{p.name}" for p in sorted(folder.iterdir()) if p.name not in listed]
    return []


def _foreign_below(folder: Path, key: str) -> list[str]:
    allowed = next((v for k, v in OWN_FOLDERS.items() if fnmatch.fnmatch(key, k)), ())
    out = []
    for entry in sorted(folder.iterdir()):
        name = f"{key}/{entry.name}"
        sub = next((k for k in OWN_FOLDERS if fnmatch.fnmatch(name, k)), None)
        if entry.is_symlink() or not any(fnmatch.fnmatch(entry.name, a) for a in allowed):
            out.append(name)
        elif entry.is_dir():
            out += _foreign_below(entry, name) if sub else [name]
    return out


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + PARTIAL_SUFFIX)


# the longest name a folder may have so that its ".NAME.lock" and "NAME.partial" fit NAME_MAX
_SUFFIX_ROOM = max(len(PARTIAL_SUFFIX), len("..lock"))


def check_out_name(out: Path, option: str = "--out") -> None:
    """A destination cosim can write: a named folder (not a file system's root) whose name and
    path, with the suffixes cosim adds, fit the file system's limits."""
    absolute = out.absolute()
    if not absolute.name or absolute.name in (".", ".."):
        raise InputError(None, option, f"{out}: name a folder to write into, not {absolute}")
    if CONTROL.search(str(out)):  # a line break or an escape would split or rewrite what is shown
        raise InputError(None, option, f"{printable(str(out))}: a name with control characters "
                         "(a line break, an escape); choose a plain name")
    if out.parts and out.parts[0].startswith("~"):  # the shell expands ~ only where unquoted
        raise InputError(None, option, f"{out}: starts with a literal ~, which would make a folder "
                         "named ~; write the home folder's path (or $HOME)")
    if absolute.name.endswith(PARTIAL_SUFFIX):
        raise InputError(None, option, f"{out}: names ending in {PARTIAL_SUFFIX} are cosim's "
                         "staging folders; to finish an interrupted run use --resume")
    _check_no_broken_link(absolute, out, option)
    _check_steps_back(absolute, out, option)
    name_max, path_max = _name_limits(absolute)
    too_long = [p for p in absolute.parts[1:] if len(os.fsencode(p)) + _SUFFIX_ROOM > name_max]
    if too_long:
        raise InputError(None, option, f"a folder name of {len(os.fsencode(too_long[0]))} bytes "
                         f"is too long (at most {name_max - _SUFFIX_ROOM} here)")
    if len(os.fsencode(str(absolute))) + _SUFFIX_ROOM + 64 > path_max:
        raise InputError(None, option, f"the path is too long (at most about {path_max - 80} "
                         "bytes here)")


def _check_steps_back(absolute: Path, out: Path, option: str) -> None:
    """Each ``..`` steps back out of a folder that exists: the system refuses the path until a
    folder of that name is made (cosim's own folders above the destination would make it), and
    then it names another place, where an earlier run may be."""
    for i, part in enumerate(absolute.parts):
        above = Path(*absolute.parts[:i])
        if part == ".." and not above.is_dir():
            raise InputError(None, option, f"{out}: {above} is no folder (it does not exist, or "
                             "is a file), so .. cannot step back out of it; write the path "
                             "without it")


def _check_no_broken_link(absolute: Path, out: Path, option: str) -> None:
    """Neither the destination nor a folder above it is a link to nowhere or a link loop: every
    later step would fail on it (a run only once it has run)."""
    for path in (*reversed(absolute.parents), absolute):
        try:
            broken = os.path.islink(path) and not os.path.exists(path)
        except (OSError, ValueError):
            return  # too long to look up: the length checks below say so
        if broken:
            raise InputError(None, option, f"{out}: {path} is a link to nothing (dangling, or a "
                             "loop of links); choose another destination")
        if not os.path.lexists(path):
            return  # the rest does not exist yet


def _name_limits(path: Path) -> tuple[int, int]:
    """NAME_MAX and PATH_MAX of the file system ``path`` would be on (its nearest existing
    folder's); a path too long to even look up gives the common Linux limits, which it exceeds."""
    for parent in path.parents:
        try:
            if not parent.exists():
                continue
            return os.pathconf(parent, "PC_NAME_MAX"), os.pathconf(parent, "PC_PATH_MAX")
        except (OSError, ValueError):
            continue
    return 255, 4096


def lock_path(out: Path) -> Path:
    """The file a run at ``out`` holds locked while it runs (removed at its end)."""
    return out.with_name(f".{out.name}.lock")


LOCK_MARK = b"cosim run lock\n"  # what a run writes in its lock file


def is_cosim_lock(path: Path) -> bool:
    """A lock file a run left (a crashed run's stays): a regular file, empty or holding
    ``LOCK_MARK``. Anything else of that name is a user's, never written over or removed."""
    try:
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode) or st.st_size > len(LOCK_MARK):
            return False
        return st.st_size == 0 or path.read_bytes() == LOCK_MARK
    except OSError:
        return False


def lock_held(out: Path) -> bool:
    """Whether a run holds ``out``'s lock now (no lock file: its last writer let it go)."""
    return flock_held(lock_path(out), os.O_RDONLY)


def flock_held(path: Path, flags: int) -> bool:
    """Whether a process holds an exclusive ``flock`` on ``path`` now: a shared lock probed
    through a new descriptor (opened with ``flags``) and let go at once; False where ``path``
    cannot be opened."""
    try:
        fd = os.open(path, flags)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    except OSError:  # a file system without flock (some network or virtual ones): no lock held
        return False
    finally:
        os.close(fd)


# run.json's fields that commands read, with the JSON types cosim writes them as
RUN_FIELDS: dict[str, tuple[type, ...]] = {
    "status": (str,), "scenario": (dict,), "scenario_file": (str, type(None)), "seed": (int,),
    "torch_threads": (int, type(None)), "learning_precision": (str, type(None)),
    "error": (str, type(None)), "traces": (dict, type(None)), "summary": (dict, type(None)),
    "pid": (int,), "sim_time_s": (int, float, type(None)), "wall_time_s": (int, float, type(None)),
}
DURATIONS = ("sim_time_s", "wall_time_s")  # seconds: finite and not negative
# A process id as systems hand them out: the largest is Linux's PID_MAX_LIMIT (others stay far
# below); 0 and negative numbers are process groups to os.kill (-1: every process), no pid.
PID_RANGE = (1, 2**22)
SCENARIO_SECTIONS = ("learning", "scheduling", "aggregation", "output", "mobility")


def read_run_info(run_dir: Path, needs: tuple[str, ...] = ("status",)) -> dict[str, Any]:
    """A folder's run.json, checked to be what cosim writes: a JSON object holding ``needs``,
    each field in ``RUN_FIELDS`` of its type. The one reader of run.json for resume, status,
    export, report, compare and the API: a damaged file is one InputError naming the file and
    the field, never a crash in whatever reads it next."""
    path = run_dir / "run.json"
    try:
        info = read_json_file(path, "run.json")
    except FileNotFoundError:
        raise InputError(run_dir, None, "not a cosim run folder (no run.json)") from None
    except OSError as exc:  # a folder named run.json, no permission, an I/O error
        raise InputError(path, None, f"cannot read it: {exc.strerror or exc}") from None
    if not isinstance(info, dict):
        raise InputError(path, None, f"a JSON {type(info).__name__}, not the object cosim writes")
    for key in needs:
        if key not in info:
            raise InputError(path, key, "missing: this run.json is not one a whole run wrote")
    for key, types in RUN_FIELDS.items():
        value = info.get(key)
        if key in info and (not isinstance(value, types) or isinstance(value, bool)):
            raise InputError(path, key, f"a JSON {_json_type(value)}, not what cosim writes here")
    for key in DURATIONS:
        if info.get(key) is not None and not (math.isfinite(info[key]) and info[key] >= 0):
            raise InputError(path, key, f"{info[key]} is not a duration in seconds")
    for table, name in (info.get("traces") or {}).items():  # file names in the run folder
        if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name:
            raise InputError(path, f"traces.{printable(table)}", f"{printable(repr(name))} is not "
                             "the name of a file in the run folder, as cosim writes it")
    if "pid" in info and not PID_RANGE[0] <= info["pid"] <= PID_RANGE[1]:
        raise InputError(path, "pid", f"{info['pid']} is not the process id of a run's writer")
    if "scenario" in info:
        _check_scenario_shape(path, info["scenario"])
    return info


def _check_scenario_shape(path: Path, scenario: dict[str, Any]) -> None:
    """What the reports read of a run's scenario without validating it: its name, and its
    sections as objects (a resume validates the whole scenario)."""
    if not isinstance(scenario.get("name"), str):
        raise InputError(path, "scenario.name", "missing or not a string")
    for section in SCENARIO_SECTIONS:
        if scenario.get(section) is not None and not isinstance(scenario[section], dict):
            raise InputError(path, f"scenario.{section}", "not an object")
    learning = scenario.get("learning") or {}
    if learning.get("enabled"):
        for section, key in (("scheduling", "policy"), ("aggregation", "method")):
            if not isinstance((scenario.get(section) or {}).get(key), str):
                raise InputError(path, f"scenario.{section}.{key}", "missing or not a string")


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def is_run_folder(path: Path) -> bool:
    """A folder a run wrote: its run.json is a JSON object with a status. An export's folder
    holds a copy of its run's run.json, beside the manifest no run folder has at its top."""
    if (path / OUTPUT_MANIFEST).exists():
        return False
    try:
        info = read_json_file(path / "run.json", "run.json")
    except (OSError, InputError):
        return False
    return isinstance(info, dict) and "status" in info


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest cosim left in a folder it filled (``OUTPUT_MANIFEST``): None when there is
    none, or none that reads as a JSON object."""
    try:
        manifest = read_json_file(folder / OUTPUT_MANIFEST, "manifest")
    except (OSError, InputError):
        return None
    return manifest if isinstance(manifest, dict) else None


def files_below(folder: Path) -> list[str]:
    """Every entry below ``folder`` but its folders (files, links, special files), by path."""
    found = []
    for top, dirs, files in os.walk(folder):  # links to folders are listed, not followed
        found += [str((Path(top) / n).relative_to(folder)) for n in
                  files + [d for d in dirs if (Path(top) / d).is_symlink()]]
    return sorted(found)


def foreign_outputs(folder: Path) -> list[str]:
    """Entries of ``folder`` (any depth) that its manifest does not list as written by cosim with
    the same size and SHA-256: a user's file, or one a user changed since. A folder its command
    left unfinished (killed while it wrote, its mark still ``incomplete``) holds files the mark
    could not list yet: its regular files are taken as that command's, to be written again."""
    manifest = read_manifest(folder) or {}
    unfinished = manifest.get("status") == "incomplete"
    return [name for name in unlisted_outputs(folder, manifest)
            if unfinished is False or not stat.S_ISREG((folder / name).lstat().st_mode)]


def unlisted_outputs(folder: Path, manifest: Mapping[str, Any]) -> list[str]:
    """Entries below ``folder`` that ``manifest`` does not list with their size and SHA-256."""
    listed = manifest.get("files")
    listed = listed if isinstance(listed, dict) else {}
    found = []
    for name in files_below(folder):
        path = folder / name
        if name in (OUTPUT_MANIFEST, OUTPUT_MANIFEST + ".tmp"):
            continue
        st = path.lstat()
        mark = listed.get(name)
        if not stat.S_ISREG(st.st_mode) or not isinstance(mark, dict) \
                or mark.get("size") != st.st_size or mark.get("sha256") != file_sha256(path):
            found.append(name)
    return found


def manifest_command(folder: Path) -> str | None:
    """The command a folder's manifest says filled it (None: no manifest; "unreadable")."""
    if not (folder / OUTPUT_MANIFEST).is_file():
        return None
    command = (read_manifest(folder) or {}).get("command")
    return command if isinstance(command, str) else "unreadable"


def refuse_output_folder(path: Path) -> None:
    """``path`` is no folder that report, export or data synth filled (an export's copy of its
    run's run.json makes no run of it): InputError naming the command."""
    if (path / OUTPUT_MANIFEST).is_file() and manifest_command(path) not in STUDY_COMMANDS:
        raise InputError(path, None, "a folder cosim's report, export or data synth filled, not "
                         "a run or compare folder: name the run it came from")


def check_traces_unchanged(run_dir: Path, info: dict[str, Any], advice: str,
                           required: bool = True) -> None:
    """Every trace file in a complete run's folder has the SHA-256 its run.json holds
    (``trace_sha256``), and none it names is missing: what a later reader takes as the run's
    results is what the run wrote. ``required``: a run.json without the digests is refused
    (else its traces are judged by the other checks). InputError ends with ``advice``."""
    digests = info.get("trace_sha256")
    if digests is None and not required:
        return
    if not isinstance(digests, dict):
        raise InputError(run_dir / "run.json", "trace_sha256", "missing: its traces cannot be told "
                         f"unchanged; {advice}")
    written = info.get("traces")
    if not isinstance(written, dict) or not written or set(written) != set(digests):
        raise InputError(run_dir / "run.json", "trace_sha256", "does not hold a SHA-256 for each "
                         f"table the run wrote (its traces); {advice}")
    names = {p.name.removesuffix(".parquet") for p in run_dir.glob("*.parquet")} | set(digests)
    for name in sorted(names, key=str):
        path = run_dir / f"{name}.parquet"
        if not isinstance(name, str) or "/" in name or name.startswith("."):
            raise InputError(run_dir / "run.json", "trace_sha256", f"{name!r} is not a trace; "
                             f"{advice}")
        if path.is_symlink() or not path.is_file():
            raise InputError(path, "trace_sha256", f"not the run's trace file; {advice}")
        if digests.get(name) != file_sha256(path):
            raise InputError(path, "trace_sha256", "changed since its run wrote it (run.json "
                             f"holds its SHA-256); {advice}")


def read_status(path: Path) -> tuple[str, dict[str, Any]]:
    """The folder's status as a user should read it: complete, failed, interrupted, running, or
    crashed (run.json says running, and its writer's process is gone); unknown when run.json
    is not one cosim wrote (why, in the returned ``error``, when it cannot be read at all)."""
    try:
        info = read_run_info(path, needs=())
    except InputError as exc:  # said in the folder's line; the other folders are listed
        field = f"{exc.field}: " if exc.field else ""
        return "unknown", {"error": f"run.json unreadable: {field}{exc.message}"}
    status = info.get("status")
    if status not in STATUSES:  # hand-edited or foreign: never printed as it stands
        return "unknown", info
    if status == "running" and not _writer_alive(info):
        status = "crashed"
    return status, info


def _writer_alive(info: dict[str, Any]) -> bool:
    pid, host = info.get("pid"), info.get("host")
    if not isinstance(pid, int) or not isinstance(host, str):
        return False  # written before pids were recorded, or not by cosim: nobody vouches for it
    if not PID_RANGE[0] < pid <= PID_RANGE[1]:
        return False  # no process id, or init's: never a run's writer
    if host == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's live process
            pass
        return not _pid_reused(pid, info.get("started_at"))
    beat: Any = info.get("heartbeat_at")  # JSON: a str, or anything (TypeError below)
    try:
        age = (dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(beat)).total_seconds()
    except (TypeError, ValueError):
        return False
    return age < STALE_AFTER_S


def _pid_reused(pid: int, started_at: Any) -> bool:
    """The process with this pid started after the run did: the writer is gone and its pid was
    given to another process (Linux's /proc; elsewhere nobody can tell, and the pid vouches)."""
    try:
        started = dt.datetime.fromisoformat(started_at).timestamp()
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        ticks = int(stat.rpartition(")")[2].split()[19])  # field 22, starttime, in clock ticks
    except (TypeError, ValueError, OSError, IndexError, StopIteration):
        return False
    return boot + ticks / os.sysconf("SC_CLK_TCK") > started + 2.0  # started_at has whole seconds


def _refuse_foreign(folder: Path) -> None:
    """A run folder that also holds files cosim did not write is never replaced or removed."""
    foreign = foreign_entries(folder)
    if foreign:
        raise InputError(None, "--out", f"{folder} also holds files cosim did not write "
                         f"({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}); "
                         "move them, or choose another --out")


def _refuse_unreadable(folder: Path) -> None:
    """A run or staging folder whose run.json cannot be read (or holds what cosim never writes,
    a pid out of range) is nobody's to discard: said as such."""
    if not (folder / "run.json").is_file():
        return
    try:
        read_run_info(folder)
    except InputError as exc:
        field = f"{exc.field}: " if exc.field else ""
        raise InputError(None, "--out", f"{folder} holds an earlier attempt whose run.json is "
                         f"unreadable ({field}{exc.message}); move it, or choose another "
                         "--out") from None


def _being_written(folder: Path, info: dict[str, Any]) -> InputError:
    return InputError(None, "--out", f"{folder} is being written by pid {info.get('pid')} on "
                      f"{info.get('host')}")


@dataclass
class RunFolder:
    """The run's destination, its staging folder and its lock; ``open()`` before the run,
    ``finish(complete)`` after it."""

    out: Path
    overwrite: bool = False

    def __post_init__(self) -> None:
        check_out_name(self.out)  # before any name is derived from it
        self.out = self.out.absolute()  # "." and "" name the working folder
        self.partial = partial_path(self.out)
        self._lock_fd: int | None = None
        self._previous: Path | None = None  # a resumed attempt, kept until the resume is settled

    def check(self, resuming: bool = False) -> None:
        """Refuse, before anything is written, an ``--out`` that would lose or mix up data."""
        out = self.out
        check_out_name(out)
        if out.is_symlink() and out.exists():  # replacing it would move the user's link aside
            raise InputError(None, "--out", f"{out} is a link; give the folder it names, or a "
                             "new one")
        if out.exists() and not out.is_dir():
            raise InputError(None, "--out", f"{out} exists and is not a folder")
        if out.is_dir() and mount_point(out):  # the complete run takes its place by a rename
            raise InputError(None, "--out", f"{out} is a mount point, which a complete run "
                             "cannot take the place of; name a folder inside it")
        if out.is_dir() and any(out.iterdir()):
            if not is_run_folder(out):
                raise InputError(None, "--out", f"{out} is not empty and not a cosim run folder; "
                                 "choose another folder")
            if not self.overwrite:
                status, _ = read_status(out)
                raise InputError(None, "--out", f"{out} holds an earlier run ({status}); pass "
                                 "--overwrite to replace it once the new run completes")
            _refuse_foreign(out)
            _refuse_unreadable(out)
            status, info = read_status(out)
            if status == "running":
                raise _being_written(out, info)
        self._check_partial(resuming)
        for parent in (out.parent, *out.parent.parents):
            if parent.exists():
                if not parent.is_dir():
                    raise InputError(None, "--out", f"{parent} is a file, not a folder")
                if not os.access(parent, os.W_OK | os.X_OK):
                    raise InputError(None, "--out", f"{parent} is not writable")
                break

    def _check_partial(self, resuming: bool = False, locked: bool = False) -> None:
        """``OUT.partial`` is removed only when it holds nothing but an earlier attempt of cosim's
        that the user has given up (``--overwrite``) or is resuming. ``locked``: this process
        holds the lock, so no other writes there, whatever run.json says."""
        partial = self.partial
        if not partial.exists() and not partial.is_symlink():
            return
        if partial.is_symlink() or not partial.is_dir():
            raise InputError(None, "--out", f"{partial} exists and is not a run folder cosim left; "
                             "move it, or choose another --out")
        if mount_point(partial):  # cosim replaces or sets aside its staging folder by renames
            raise InputError(None, "--out", f"{partial} is a mount point, not a staging folder "
                             "cosim can replace; unmount it, or choose another --out")
        if not any(partial.iterdir()):
            return  # an empty folder: nothing to lose
        _refuse_unreadable(partial)
        if not is_run_folder(partial):
            raise InputError(None, "--out", f"{partial} holds files cosim did not write; move "
                             "them, or choose another --out")
        _refuse_foreign(partial)
        status, info = read_status(partial)
        if status == "running" and not locked and lock_held(self.out):
            raise _being_written(partial, info)
        if not resuming and not self.overwrite:
            raise InputError(None, "--out", f"{partial} holds an earlier attempt ({status}); resume "
                             f"it with `cosim run --resume {partial}`, or pass --overwrite to "
                             "discard it")

    def open(self, keep: str | None = None) -> Path:
        """Take the lock, clear a crashed earlier attempt's staging folder, create a fresh one;
        ``keep`` names a sub-folder of the earlier attempt to carry over (a resume's journal)."""
        self.check(resuming=keep is not None)
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            lock = lock_path(self.out)
            if (lock.exists() or lock.is_symlink()) and not is_cosim_lock(lock):
                raise InputError(None, "--out", f"{lock} is not a lock file cosim left; move it, "
                                 "or choose another --out")
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise InputError(None, "--out", f"cannot write in {self.out.parent}: "
                             f"{exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            _, info = read_status(self.partial)
            who = f" (pid {info['pid']} on {info.get('host')})" if "pid" in info else ""
            raise InputError(None, "--out", f"another cosim run is writing {self.out}{who}") from None
        self._lock_fd = fd
        with contextlib.suppress(OSError):  # known as cosim's by what it holds
            os.ftruncate(fd, 0)
            os.pwrite(fd, LOCK_MARK, 0)
        try:  # again under the lock: what was checked before may have changed
            self._check_partial(resuming=keep is not None, locked=True)
        except InputError:
            self.release()
            raise
        if keep is not None and self.partial.is_dir() and any(self.partial.iterdir()):
            # the attempt being resumed stays whole beside, until the resume is under way
            # (the name cut short: OUT's name may use all but _SUFFIX_ROOM of NAME_MAX)
            self._previous = self.out.with_name(f".{self.out.name[:200]}.previous-{os.getpid()}")
            self.partial.rename(self._previous)
        elif self.partial.exists():  # the lock was free: its writer is gone
            shutil.rmtree(self.partial) if self.partial.is_dir() else self.partial.unlink()
        self.partial.mkdir()
        if keep is not None and self._previous is not None and (self._previous / keep).is_dir():
            _link_tree(self._previous / keep, self.partial / keep)
        return self.partial

    def finish(self, complete: bool, restore: bool = False) -> Path:
        """A complete run replaces ``out`` (an earlier run is removed only now); any other stays
        at the staging folder. ``restore``: the resume was refused, the attempt it resumed is
        put back as it was. Returns where the run now is."""
        try:
            if restore and self._previous is not None:
                shutil.rmtree(self.partial, ignore_errors=True)
                self._previous.rename(self.partial)
                self._previous = None
                return self.partial
            if not complete:
                if self._previous is None:  # nothing written (a full disk before run.json):
                    with contextlib.suppress(OSError):  # no empty folder that is no run
                        self.partial.rmdir()
                return self.partial
            if _empty_folder(self.out):  # given empty as --out: the run takes its place
                try:
                    os.replace(self.partial, self.out)
                    return self.out
                except OSError as exc:  # a file put in it meanwhile: both stay as they are
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EBUSY):
                        raise
                    return self.partial
            if self.out.exists():
                if not self.overwrite or not is_run_folder(self.out):  # appeared meanwhile
                    return self.partial
                old = self.out.with_name(f".{self.out.name}.replaced-{os.getpid()}")
                self.out.rename(old)  # moved first: nothing can be added to it unseen after this
                if foreign_entries(old):  # a user's file put there while the run ran
                    old.rename(self.out)
                    return self.partial
                self.partial.rename(self.out)
                shutil.rmtree(old, ignore_errors=True)
                if old.exists():  # a file there the system keeps (immutable, busy): said, kept
                    warn(old, None, f"the earlier run at {self.out} could not be removed whole; "
                         "what is left of it stays here")
            else:
                self.partial.rename(self.out)
            return self.out
        finally:
            # the resumed run carries on from it, or completed; a file put there meanwhile
            # keeps it
            if self._previous is not None and not foreign_entries(self._previous):
                shutil.rmtree(self._previous, ignore_errors=True)
            self._previous = None
            self.release()

    def release(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                lock_path(self.out).unlink(missing_ok=True)
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None


def mount_point(path: Path) -> bool:
    """Whether ``path`` is where a file system is mounted, a bind mount on the same file system
    included (the system's mount table; ``os.path.ismount`` sees only a change of device)."""
    return os.path.ismount(path) or str(path.resolve()) in _mount_points()


def mounts_under(folder: Path) -> list[str]:
    """The mount points inside ``folder``, relative to it: removing the folder's tree would
    delete what they hold, which is not the folder's."""
    where = str(folder.resolve()).rstrip("/") + "/"
    return sorted(m.removeprefix(where) for m in _mount_points() if m.startswith(where))


def _mount_points() -> set[str]:
    try:
        table = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    # the fifth field is the mount point, with space, tab, newline and backslash as octal escapes
    unescape = re.compile(r"\\([0-7]{3})")
    return {unescape.sub(lambda m: chr(int(m.group(1), 8)), line.split(" ")[4])
            for line in table.splitlines() if len(line.split(" ")) > 4}


def _empty_folder(path: Path) -> bool:
    """Whether ``path`` is a folder (not a link to one) with nothing in it."""
    try:
        return path.is_dir() and not path.is_symlink() and not any(path.iterdir())
    except OSError:
        return False


def write_atomically(path: Path, data: bytes, tmp: Path | None = None) -> None:
    """Replace ``path`` with ``data`` whole or not at all: written to ``tmp`` (default
    ``<path stem>.tmp``) beside it, flushed to disk, renamed over it. On any error (a full disk:
    OSError ENOSPC naming the file) the temporary file is removed and ``path`` keeps its
    previous content."""
    tmp = tmp or path.with_suffix(".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if exc.filename is None:
            exc.filename = str(path)
        raise


def _link_tree(source: Path, target: Path) -> None:
    """``target`` gets ``source``'s files as hard links (no copy, no new blocks on a full disk);
    copies where the file system has no links. Writers replace files, never edit them, so the
    two folders never see each other's changes."""
    target.mkdir()
    for entry in sorted(source.iterdir()):
        if entry.is_symlink() or not entry.is_file():
            continue
        try:
            os.link(entry, target / entry.name)
        except OSError:
            shutil.copy2(entry, target / entry.name)


def writer_identity() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "heartbeat_at": _now()}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Heartbeat:
    """Rewrites run.json with a fresh ``heartbeat_at`` every ``period_s`` of wall time."""

    def __init__(self, write: Any, info: dict[str, Any], period_s: float = HEARTBEAT_S):
        self.write, self.info, self.period_s = write, info, period_s
        self._last = -math.inf  # the first beat at once: what a run killed early resumes from

    def again(self) -> None:
        """Beat at the next call too (what the beat records is not all there yet)."""
        self._last = -math.inf

    def __call__(self) -> None:
        if time.monotonic() - self._last >= self.period_s:
            self._last = time.monotonic()
            self.info["heartbeat_at"] = _now()
            self.write(self.info)


def find_runs(paths: list[Path]) -> list[Path]:
    """The run folders among ``paths`` and below them (compare and onboarding folders hold runs
    a few levels down), sorted."""
    # an export's folder holds a copy of its run's run.json beside its manifest: not a run
    return [p for p in find_folders(paths, ("run.json",)) if not (p / OUTPUT_MANIFEST).exists()]


def find_folders(paths: list[Path], names: tuple[str, ...]) -> list[Path]:
    """The folders among ``paths`` and below them that hold a file of one of ``names``, sorted
    (links are not followed)."""
    from cosim.bounded_read import VIRTUAL_ROOTS

    found: set[Path] = set()
    for path in paths:
        if any((path / n).is_file() for n in names):
            found.add(path)
            continue
        # links not followed; a folder that cannot be read, or a kernel's virtual file system
        # (/proc's entries come and go, some fail to list), is no place for runs: skipped
        def virtual(folder: Path) -> bool:
            name = str(folder.absolute())
            return any(name == root or name.startswith(root + "/") for root in VIRTUAL_ROOTS)

        for top, dirs, files in ([] if virtual(path) else os.walk(path)):
            dirs[:] = [d for d in dirs if not virtual(Path(top, d))]
            if any(n in files for n in names):
                found.add(Path(top))
    return sorted(found)


def first_difference(a: Any, b: Any, where: str = "") -> str | None:
    """The dotted key of the first value that differs between two JSON-like values, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = first_difference(a.get(key), b.get(key), f"{where}.{key}" if where else str(key))
            if found is not None:
                return found
        return None
    return None if a == b else where
