"""Link-window predictors: how much longer will a vehicle stay connected?

Schedulers use them to decide whether a client can finish its download-train-upload in time.
- ``OraclePredictor`` reads the recorded future (``link_windows.parquet`` of a run of the same
  scenario and seed, which is identical by determinism): an upper bound on what prediction can do.
- ``HistoryPredictor`` uses only what a server could know at decision time: how long completed
  connected windows lasted (mean residual life given the time already connected) and the
  vehicle's position, speed and heading (time until it drives out of the network's bounds).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cosim.bounded_read import file_sha256
from cosim.errors import InputError
from cosim.input_checks import Where, check_columns, check_values, read_schema, read_table
from cosim.run_folder import first_difference, read_run_info

ORACLE_FIELD = "scheduling.oracle_windows"
ORACLE_COLUMNS = pa.schema([("vehicle", pa.string()), ("cell", pa.int32()),
                            ("start", pa.float64()), ("end", pa.float64())])


class LinkWindowPredictor(Protocol):
    def remaining_s(self, vehicle: str, now: float) -> float:
        """Predicted seconds until the vehicle's current connected window ends (0: not connected)."""
        ...


class OraclePredictor:
    """The true remaining window, from a recorded ``link_windows`` table."""

    def __init__(self, windows_file: Path):
        df = read_oracle_windows(windows_file).to_pydict()
        per_vehicle: dict[str, list[tuple[float, float]]] = {}
        for vehicle, cell, start, end in zip(df["vehicle"], df["cell"], df["start"], df["end"],
                                             strict=True):
            if cell == -1:
                per_vehicle.setdefault(vehicle, []).append((start, end))
        self._starts = {v: [s for s, _ in sorted(w)] for v, w in per_vehicle.items()}
        self._ends = {v: [e for _, e in sorted(w)] for v, w in per_vehicle.items()}

    def remaining_s(self, vehicle: str, now: float) -> float:
        starts = self._starts.get(vehicle)
        if not starts:
            return 0.0
        i = bisect.bisect_right(starts, now + 1e-9) - 1
        if i < 0 or self._ends[vehicle][i] <= now:
            return 0.0
        return self._ends[vehicle][i] - now


def read_oracle_windows(path: Path) -> pa.Table:
    """The columns the oracle reads, checked (a run checks them before its folder exists)."""
    where = Where(path, ORACLE_FIELD)
    if not where.path.is_file():
        raise InputError(path, ORACLE_FIELD, "file not found")
    check_columns(where, read_schema(where), ORACLE_COLUMNS, "link_windows table")
    table = read_table(where, ORACLE_COLUMNS.names)
    check_values(where, table)
    if table.num_rows == 0:
        raise InputError(path, ORACLE_FIELD, "the table holds no link windows")
    if pc.any(pc.greater(table.column("start"), table.column("end"))).as_py():
        raise InputError(path, ORACLE_FIELD, "a window ends before it starts")
    return table


WINDOWS_FILE = "link_windows.parquet"
# What decides a run's connectivity: a recording whose scenario differs in any of these (its
# seed, length, traffic, network, radio or which vehicles carry clients) recorded another future.
# How mobility is driven (backend, pipelining, a GUI) and a replayed trace's path do not.
CONNECTIVITY_KEYS = ("seed", "duration_s", "mobility", "radio", "clients")
NOT_CONNECTIVITY = {"mobility": ("replay", "backend", "pipeline", "gui")}
# beside the windows in every run folder: what their cells and vehicles are checked against
RECORDING_FILES = ("cells.parquet", "mobility.parquet")
RATE_COLUMNS = ("duration_s", "mean_rate_bps", "min_rate_bps")


def check_windows_source(path: Path, scenario: dict[str, Any],
                         replayed_vehicles: set[str] | None = None) -> None:
    """The oracle's windows must be this run's future: the ``link_windows.parquet`` of a
    complete run folder, unchanged since that run wrote it (its run.json holds the SHA-256),
    recorded with this run's connectivity (``scenario``: this run's, as run.json holds it),
    within this run's time, about the cells of the run that recorded them and the vehicles of
    the trace this run replays (or, live, of the recording's own trace)."""
    if path.name != WINDOWS_FILE:
        raise InputError(path, ORACLE_FIELD, f"the oracle reads the {WINDOWS_FILE} of the run that "
                         "recorded the windows (in its run folder, beside its run.json), not a "
                         "file of another name")
    info = _recording_info(path)
    for name in RECORDING_FILES:
        if not (path.parent / name).is_file():
            raise InputError(path, ORACLE_FIELD, f"no {name} beside the windows (every run folder "
                             "has one): give the link_windows.parquet of a run folder")
    recorded, seed = info["seeds"]["connectivity"], scenario.get("seed")
    if recorded != seed:
        raise InputError(path, ORACLE_FIELD, f"recorded with connectivity seed {recorded}, this "
                         f"run's is {seed}: the oracle would read another future")
    differs = first_difference(_connectivity(info["scenario"]), _connectivity(scenario))
    if differs is not None:
        raise InputError(path, ORACLE_FIELD, f"recorded by a run of another scenario ({differs} "
                         "differs from this run's): the oracle would read another future")
    if file_sha256(path) != info["trace_sha256"]["link_windows"]:
        raise InputError(path, ORACLE_FIELD, "changed since its run wrote it (run.json holds its "
                         "SHA-256): not that run's future")
    table = read_oracle_windows(path)
    _check_window_rates(path)
    duration_s = float(scenario["duration_s"])
    _check_window_times(path, table, duration_s)
    _check_window_ends(path, table, duration_s)
    _check_window_cells(path, table)
    known, where = replayed_vehicles, "the replayed trace"
    if known is None:
        known, where = _trace_vehicles(path.parent / "mobility.parquet"), "its run's mobility trace"
    foreign = sorted(set(table.column("vehicle").to_pylist()) - known)
    if foreign:
        raise InputError(path, ORACLE_FIELD, f"{len(foreign)} of its vehicles (e.g. "
                         f"{foreign[0]!r}) are not in {where}: another recording's windows")


def _recording_info(path: Path) -> dict[str, Any]:
    """The run.json beside the windows, as a complete run writes it (read by the one run.json
    reader): its seeds, its scenario and the SHA-256 of the windows it wrote."""
    try:
        info = read_run_info(path.parent, needs=("status", "scenario", "seeds", "trace_sha256"))
    except InputError as exc:
        said = ": ".join(str(part) for part in (exc.file, exc.field, exc.message) if part)
        raise InputError(path, ORACLE_FIELD, f"the windows need their run's run.json beside them "
                         f"(give the link_windows.parquet of a complete run folder): {said}"
                         ) from None
    seeds, sums = info["seeds"], info["trace_sha256"]
    connectivity = seeds.get("connectivity") if isinstance(seeds, dict) else None
    problem = (
        "its status is not complete (a run's windows are final when it completes)"
        if info["status"] != "complete" else
        "seeds.connectivity is not an integer" if not isinstance(connectivity, int)
        or isinstance(connectivity, bool) else
        "trace_sha256.link_windows is not a SHA-256" if not isinstance(sums, dict)
        or not isinstance(sums.get("link_windows"), str) else None)
    if problem is not None:
        raise InputError(path, ORACLE_FIELD, f"the run.json beside the windows is not a complete "
                         f"run's: {problem}")
    return info


def _connectivity(scenario: dict[str, Any]) -> dict[str, Any]:
    """The parts of a scenario (as run.json holds it) that decide its connectivity."""
    out = {key: scenario.get(key) for key in CONNECTIVITY_KEYS}
    for section, keys in NOT_CONNECTIVITY.items():
        value = out[section]
        if isinstance(value, dict):
            out[section] = {k: v for k, v in value.items() if k not in keys}
    return out


def _check_window_rates(path: Path) -> None:
    """Durations and rates a link can have: finite, not negative."""
    where = Where(path, ORACLE_FIELD)
    names = [n for n in RATE_COLUMNS if n in read_schema(where).names]
    table = read_table(where, names)
    for name in names:
        values = table.column(name).to_numpy(zero_copy_only=False).astype(float)
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            raise InputError(path, ORACLE_FIELD, f"column {name!r}: {values[bad][0]:g} is not a "
                             "link's (finite, not negative)")


def _check_window_times(path: Path, table: pa.Table, duration_s: float) -> None:
    """Windows on the run's clock: none before 0, and some before this run ends."""
    first = pc.min(table.column("start")).as_py()
    if first < -1e-6:
        raise InputError(path, ORACLE_FIELD, f"a window starts at {first:g} s, before the run's 0 s")
    if first >= duration_s:
        raise InputError(path, ORACLE_FIELD, f"its first window starts at {first:g} s, after this "
                         f"run's {duration_s:g} s: not this run's future")


def _check_window_ends(path: Path, table: pa.Table, recorded: float) -> None:
    """No window outlasts the run that recorded it (an open window is closed at its end)."""
    last = pc.max(table.column("end")).as_py()
    if last > recorded + 1e-6:
        raise InputError(path, ORACLE_FIELD, f"a window ends at {last:g} s, after the "
                         f"{recorded:g} s of the run that recorded it")


def _check_window_cells(path: Path, table: pa.Table) -> None:
    """Serving cells among the cells of the run that recorded the windows (cells.parquet beside)."""
    cells_file = path.parent / "cells.parquet"
    count = _row_count(cells_file)
    top = pc.max(table.column("cell")).as_py()
    low = pc.min(table.column("cell")).as_py()
    if top >= count or low < -1:
        bad = top if top >= count else low
        raise InputError(path, ORACLE_FIELD, f"cell {bad} is not among the {count} cells of the run "
                         "that recorded the windows")


def _row_count(path: Path) -> int:
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(path, ORACLE_FIELD, f"cannot read the recording's cells: {exc}") from None


def _trace_vehicles(path: Path) -> set[str]:
    """The vehicles of a recorded mobility trace (its vehicle column only)."""
    where = Where(path, ORACLE_FIELD)
    table = read_table(where, ["vehicle"])
    return set(pc.unique(table.column("vehicle")).to_pylist())


class HistoryPredictor:
    """min(mean residual life of past connected windows, time to leave the network's bounds).

    ``completed`` returns (end time, duration) of the connected windows completed so far; only
    those that ended by ``now`` are used. ``prior_s`` is the mean window assumed before any has
    completed (a model parameter, reported with the predictions).
    """

    def __init__(self, completed: Callable[[], list[tuple[float, float]]],
                 connected_since: Callable[[str], float | None],
                 kinematics: Callable[[str], tuple[float, float, float, float] | None],
                 bounds: tuple[float, float, float, float], prior_s: float = 120.0):
        self.completed = completed
        self.connected_since = connected_since
        self.kinematics = kinematics  # x, y, speed (m/s), heading (deg, 0 = north, clockwise)
        self.bounds = bounds  # xmin, ymin, xmax, ymax
        self.prior_s = prior_s

    def remaining_s(self, vehicle: str, now: float) -> float:
        since = self.connected_since(vehicle)
        if since is None:
            return 0.0
        elapsed = max(0.0, now - since)
        durations = np.array([d for end, d in self.completed() if end <= now])
        return min(mean_residual_life(durations, elapsed, self.prior_s),
                   self._time_to_exit(vehicle))

    def _time_to_exit(self, vehicle: str) -> float:
        state = self.kinematics(vehicle)
        if state is None:
            return 0.0
        x, y, speed, heading = state
        if speed < 0.5:
            return math.inf
        return distance_to_exit(x, y, heading, self.bounds) / speed


def mean_residual_life(durations: np.ndarray, elapsed: float, prior_s: float) -> float:
    """E[D - a | D > a] from observed durations D; the prior mean when none outlasted a."""
    longer = durations[durations > elapsed]
    if len(longer) == 0:
        return prior_s
    return float(longer.mean() - elapsed)


def distance_to_exit(x: float, y: float, heading_deg: float,
                     bounds: tuple[float, float, float, float]) -> float:
    """Straight-line distance along the heading to the edge of the bounding box."""
    xmin, ymin, xmax, ymax = bounds
    dx, dy = math.sin(math.radians(heading_deg)), math.cos(math.radians(heading_deg))
    limits = []
    if dx > 1e-9:
        limits.append((xmax - x) / dx)
    elif dx < -1e-9:
        limits.append((xmin - x) / dx)
    if dy > 1e-9:
        limits.append((ymax - y) / dy)
    elif dy < -1e-9:
        limits.append((ymin - y) / dy)
    return max(0.0, min(limits)) if limits else math.inf
