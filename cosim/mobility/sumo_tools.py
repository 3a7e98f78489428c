"""Find SUMO's binaries and tools (SUMO_HOME respected, else the eclipse-sumo wheel) and run them."""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from cosim.errors import MissingDependencyError

_INSTALL_HINT = "install SUMO with 'pip install eclipse-sumo libsumo traci sumolib' or set SUMO_HOME"


@functools.cache
def sumo_home() -> Path:
    """SUMO_HOME from the environment, else the one shipped in the eclipse-sumo wheel."""
    env = os.environ.get("SUMO_HOME")
    if env:
        return Path(env)
    try:
        import sumo  # the eclipse-sumo wheel
    except ImportError:
        raise MissingDependencyError(f"SUMO not found: {_INSTALL_HINT}") from None
    return Path(sumo.SUMO_HOME)


def binary(name: str) -> str:
    """Path of a SUMO binary such as ``sumo``, ``netconvert`` or ``duarouter``."""
    exe = sumo_home() / "bin" / name
    if exe.is_file():
        return str(exe)
    raise MissingDependencyError(f"SUMO binary {name!r} not found under {exe.parent}: {_INSTALL_HINT}")


def tool(relative: str) -> str:
    """Path of a SUMO python tool such as ``randomTrips.py``."""
    path = sumo_home() / "tools" / relative
    if path.is_file():
        return str(path)
    raise MissingDependencyError(f"SUMO tool {relative!r} not found under {path.parent}: {_INSTALL_HINT}")


@functools.cache
def sumo_version() -> str:
    """The first line of ``sumo --version`` (part of every cache key)."""
    out = subprocess.run([binary("sumo"), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0].strip()


class SumoToolError(RuntimeError):
    """A SUMO build tool (netconvert, duarouter, ...) failed; carries its last output lines."""


def run_tool(cmd: list[str], log: Path) -> None:
    """Run a SUMO binary or python tool, keep its output in ``log``, raise with its tail on failure."""
    if cmd[0].endswith(".py"):
        cmd = [sys.executable, *cmd]
    env = {**os.environ, "SUMO_HOME": str(sumo_home())}
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode != 0:
        tail = " | ".join(_error_lines(log.read_text(encoding="utf-8", errors="replace")))
        if proc.returncode < 0:  # killed by a signal: SUMO segfaults on some malformed files
            name = signal.Signals(-proc.returncode).name if -proc.returncode in signal.valid_signals() \
                else str(-proc.returncode)
            if name == "SIGKILL":  # cosim never sends it: the system's out-of-memory killer
                name += ", killed by the system: most often out of memory; a smaller network?"
            tail = f"crashed ({name}){': ' + tail if tail else ''}"
        raise SumoToolError(f"{Path(cmd[1] if cmd[0] == sys.executable else cmd[0]).name} "
                            f"failed ({proc.returncode}): {tail}")


def _error_lines(output: str) -> list[str]:
    """The tool's first error (the cause; later ones tend to follow from it) with the lines that
    go with it (SUMO writes the file and the line on their own lines after "Error:"), else its
    last three lines."""
    lines = [line.strip() for line in output.strip().splitlines()]
    starts = [i for i, line in enumerate(lines) if line.startswith("Error")]
    if not starts:
        return lines[-3:]
    first = starts[0]
    end = next((i for i in range(first + 1, len(lines)) if not lines[i] or lines[i].startswith(
        ("Quitting", "Warning", "Error"))), len(lines))
    return lines[first:min(end, first + 4)]


def warning_summary(log: Path, tool: str, top: int = 2) -> str | None:
    """One line on a tool's warnings in ``log``: how many, and the most frequent kinds (ids and
    numbers folded, so "Edge 'a' removed" and "Edge 'b' removed" are one kind); None if none."""
    kinds: Counter[str] = Counter()
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("Warning:"):
            text = re.sub(r"'[^']*'", "'…'", line.removeprefix("Warning:").strip())
            kinds[re.sub(r"-?\d+(\.\d+)?", "N", text)] += 1
    if not kinds:
        return None
    common = "; ".join(f"{n}x {kind}" for kind, n in kinds.most_common(top))
    return f"{tool}: {sum(kinds.values())} warnings, most often: {common} (all in {log})"

