"""Replay a recorded mobility trace in place of SUMO.

A run's ``mobility.parquet`` holds every vehicle's state at every recorded time. When it was
recorded every SUMO step (``output.mobility_period_s`` equal to ``mobility.step_length_s``), it
holds everything the radio and learning layers read from SUMO, so replaying it gives them the same
inputs as the live run — which is how ``cosim compare`` shows every policy the same connectivity
without running SUMO once per policy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cosim.bounded_read import file_sha256, read_json_file
from cosim.errors import InputError
from cosim.input_checks import Where, check_columns, check_values, read_schema, read_table
from cosim.mobility.geo import GeoReference
from cosim.mobility.session import VehicleStates
from cosim.trace_schemas import MOBILITY_SCHEMA

FIELD = "mobility.replay"
_COLUMNS = ("t", "vehicle", "x", "y", "speed", "heading", "edge", "parked", "type")


def replay_file(path: Path) -> Path:
    """A run folder stands for its ``mobility.parquet``."""
    return path / "mobility.parquet" if path.is_dir() else path


class ReplaySession:
    """The SUMO session interface (``read``, ``step``, ``advance``, ``time``) over a trace."""

    def __init__(self, path: Path, step_length_s: float):
        self.path = replay_file(path)
        try:
            table = _read_trace(self.path)
        except MemoryError:
            raise InputError(self.path, FIELD, "too big to replay in this machine's memory") from None
        t = table.column("t").to_numpy()
        if len(t) == 0:
            raise InputError(self.path, FIELD, "the trace holds no vehicles")
        if np.any(np.diff(t) < 0):
            raise InputError(self.path, FIELD, "rows are not in time order")
        times, starts = np.unique(t, return_index=True)
        period = _recorded_period(self.path, times)
        if period is not None and abs(period - step_length_s) > 1e-6:
            raise InputError(self.path, FIELD,
                             f"recorded every {period:g} s; replay needs every SUMO step "
                             f"({step_length_s:g} s): record with output.mobility_period_s equal "
                             "to mobility.step_length_s")
        _check_semantics(self.path, table, times, step_length_s)
        lasted = _recorded_duration(self.path)
        if lasted is not None and times[-1] > lasted + step_length_s + 1e-6:
            raise InputError(self.path, FIELD, f"the trace runs to {times[-1]:g} s but its run.json "
                             f"says the run lasted {lasted:g} s: shifted or not that run's trace")
        verified = _check_recorded_sha256(self.path)
        # the run's own trace, unchanged, covers the whole run even after its last vehicle left
        self.covers_s = max(float(times[-1]), lasted) if verified and lasted is not None \
            else float(times[-1])
        self.step_s = step_length_s
        self._times, self._bounds = times, np.append(starts, len(t))
        self._ids = table.column("vehicle").to_numpy(zero_copy_only=False).astype(object)
        self._x = table.column("x").to_numpy()
        self._y = table.column("y").to_numpy()
        self._speed = table.column("speed").to_numpy()
        self._heading = table.column("heading").to_numpy()
        self._edge = table.column("edge").to_numpy(zero_copy_only=False).astype(object)
        self._parked = table.column("parked").to_numpy(zero_copy_only=False).astype(bool)
        types = table.column("type").to_numpy(zero_copy_only=False)
        self._types = dict(zip(self._ids, types, strict=True))
        self._now = 0.0  # engine time: the live run recorded from the end of its warm-up
        self._previous: set[str] = set()

    @property
    def end_s(self) -> float:
        return float(self._times[-1])

    @property
    def start_s(self) -> float:
        return float(self._times[0])

    def check_inside(self, boundary: tuple[float, float, float, float], net: Path) -> None:
        """Every position within the network's extent (``convBoundary``) plus a margin: a trace
        of another place, or edited, would give every radio value NaN or far too weak."""
        x0, y0, x1, y1 = boundary
        outside = ((self._x < x0 - BOUNDARY_MARGIN_M) | (self._x > x1 + BOUNDARY_MARGIN_M)
                   | (self._y < y0 - BOUNDARY_MARGIN_M) | (self._y > y1 + BOUNDARY_MARGIN_M))
        if outside.any():
            i = int(np.argmax(outside))
            k = int(np.searchsorted(self._bounds, i, side="right")) - 1
            raise InputError(self.path, FIELD, f"vehicle {str(self._ids[i])[:80]!r} at "
                             f"{self._times[k]:g} s is at ({self._x[i]:.0f}, {self._y[i]:.0f}) m, "
                             f"more than {BOUNDARY_MARGIN_M / 1000:g} km outside the network "
                             f"{net.name} ({x0:g}..{x1:g}, {y0:g}..{y1:g}): not a trace of it")

    def vehicles(self) -> set[str]:
        """Every vehicle the trace holds."""
        return set(self._types)

    def time(self) -> float:
        return self._now

    def advance(self) -> None:
        self._now = round(self._now + self.step_s, 9)

    def warm_up(self, steps: int) -> None:
        for _ in range(steps):
            self.advance()

    def prepare_records(self, geo: GeoReference | None, every: int) -> None:
        """The mobility layer builds the rows (a replay has nothing to overlap)."""

    def step(self) -> VehicleStates:
        self.advance()
        return self.read()

    def read(self) -> VehicleStates:
        k = int(np.searchsorted(self._times, self._now - 1e-9))
        if k < len(self._times) and abs(self._times[k] - self._now) < 1e-6:
            rows = slice(self._bounds[k], self._bounds[k + 1])
        elif self._now > self.covers_s + 1e-6:
            raise InputError(self.path, FIELD, f"the trace ends at {self.covers_s:g} s; the scenario "
                             f"needs {self._now:g} s (shorten duration_s)")
        else:
            rows = slice(0, 0)  # a step with no vehicle in the network
        ids = self._ids[rows]
        current = set(ids)
        entered = tuple(i for i in ids if i not in self._previous)
        left = tuple(sorted(self._previous - current))
        self._previous = current
        return VehicleStates(t=self._now, ids=ids, x=self._x[rows], y=self._y[rows],
                             speed=self._speed[rows], heading=self._heading[rows],
                             edge=self._edge[rows], parked=self._parked[rows], entered=entered,
                             left=left)

    def vehicle_type(self, vehicle: str) -> str:
        return str(self._types[vehicle])

    def close(self) -> None:
        """Nothing to release: the trace is in memory."""


# Far beyond any city (10,000 km) and any road vehicle (540 km/h): a trace with such values was
# not recorded by a run, and the radio would turn them into NaN.
MAX_COORDINATE_M = 1e7
MAX_SPEED_M_S = 150.0
MAX_VEHICLE_ID = 1024  # characters
# SUMO keeps vehicles on the network's roads; its extent (convBoundary) plus this margin holds
# every position a run of that network records
BOUNDARY_MARGIN_M = 1000.0


def _check_semantics(path: Path, table: pa.Table, times: np.ndarray, step_s: float) -> None:
    """What a recorded trace must be beyond its types: times on the SUMO step grid (a shifted
    trace would replay no vehicle), one row per vehicle and time, positions and speeds a vehicle
    can have, one type per vehicle."""
    steps = times / step_s
    off = np.abs(steps - np.round(steps)) * step_s > 1e-6
    if off.any():
        raise InputError(path, FIELD, f"time {times[off][0]:g} s is not on the {step_s:g} s step "
                         "grid of mobility.step_length_s: this trace cannot be replayed step by step")
    pairs = table.select(["t", "vehicle"]).group_by(["t", "vehicle"]).aggregate([])
    if pairs.num_rows < table.num_rows:
        raise InputError(path, FIELD, f"{table.num_rows - pairs.num_rows} rows repeat a vehicle at "
                         "a time it already has a row: each vehicle holds one row per time")
    lengths = pc.utf8_length(table.column("vehicle"))
    if pc.any(pc.equal(lengths, 0)).as_py():
        raise InputError(path, FIELD, "a row has an empty vehicle id")
    if table.num_rows and pc.max(lengths).as_py() > MAX_VEHICLE_ID:
        raise InputError(path, FIELD, f"a vehicle id of {pc.max(lengths).as_py():,} characters "
                         f"(SUMO's are short names; at most {MAX_VEHICLE_ID})")
    if pc.any(pc.match_substring_regex(table.column("vehicle"), r"[\x00-\x1f\x7f]")).as_py():
        raise InputError(path, FIELD, "a vehicle id holds a control character (a newline, a "
                         "tab, ...): no SUMO id does")
    for column, limit, unit in (("x", MAX_COORDINATE_M, "m"), ("y", MAX_COORDINATE_M, "m"),
                                ("speed", MAX_SPEED_M_S, "m/s"), ("heading", 720.0, "degrees")):
        values = table.column(column).to_numpy()
        bad = ~np.isfinite(values) | (np.abs(values) > limit)
        if column == "speed":
            bad |= values < 0
        if bad.any():
            raise InputError(path, FIELD, f"{column} = {values[bad][0]:g} {unit} is not a "
                             f"vehicle's (|{column}| up to {limit:g} {unit})")
    kinds = table.select(["vehicle", "type"]).group_by(["vehicle", "type"]).aggregate([])
    if kinds.num_rows > len(pc.unique(table.column("vehicle"))):
        raise InputError(path, FIELD, "a vehicle changes its type during the trace")


def _check_recorded_sha256(path: Path) -> bool:
    """A trace beside a complete run's run.json must be that run's ``mobility.parquet`` as it
    wrote it (its SHA-256 is there): an edited trace beside a genuine run.json would borrow that
    run's word. Returns whether the trace was so verified."""
    run_json = path.parent / "run.json"
    if not run_json.is_file():
        return False
    try:
        written = read_json_file(run_json, "run.json")["trace_sha256"]["mobility"]
    except (InputError, OSError, KeyError, TypeError, RecursionError):
        return False  # not a complete run's run.json: the other checks judge the trace
    if not isinstance(written, str):
        return False
    if file_sha256(path) != written:
        raise InputError(path, FIELD, "changed since its run wrote it (the run.json beside it holds "
                         "the SHA-256 of that run's mobility.parquet): not that run's trace")
    return True


def _recorded_duration(path: Path) -> float | None:
    """The recording run's duration_s, from its run.json when one lies beside the trace."""
    run_json = path.parent / "run.json"
    if not run_json.is_file():
        return None
    try:
        return float(read_json_file(run_json, "run.json")["scenario"]["duration_s"])
    except (InputError, OSError, ValueError, KeyError, TypeError, RecursionError):
        return None


def _recorded_period(path: Path, times: np.ndarray) -> float | None:
    """The sampling period: from the run's run.json when there is one, else the smallest gap
    (a step with no vehicle leaves no row, so gaps may be longer than the period)."""
    gaps = np.diff(times)
    smallest = float(gaps.min()) if len(gaps) else None
    run_json = path.parent / "run.json"
    if run_json.is_file():
        try:
            output = read_json_file(run_json, "run.json")["scenario"]["output"]
            said = float(output["mobility_period_s"])
        except (InputError, OSError, ValueError, KeyError, TypeError, RecursionError):
            return smallest  # not a cosim run.json: judge by the trace itself
        # a trace sparser than its run.json says is not that run's: the trace decides
        return smallest if smallest is not None and smallest > said + 1e-6 else said
    return smallest


# ~100 bytes a row in memory: 30 M rows (3 GB) is ten hours of sf_downtown's traffic at 1 s;
# a file declaring more (a few MB of repeated rows can) is refused before it is read
MAX_TRACE_ROWS = 30_000_000


def _read_trace(path: Path) -> pa.Table:
    """The trace's columns, checked for type, nulls and NaN before anything is replayed (and
    its declared row count before any row is read: a small file of repeated rows inflates)."""
    if not path.is_file():
        raise InputError(path, FIELD, "file not found")
    where = Where(path, FIELD)
    expected = pa.schema([MOBILITY_SCHEMA.field(c) for c in _COLUMNS])
    check_columns(where, read_schema(where), expected, "cosim mobility trace")
    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise InputError(path, FIELD, f"not a readable Parquet file: {exc}") from None
    if rows > MAX_TRACE_ROWS:
        raise InputError(path, FIELD, f"declares {rows:,} rows (at most {MAX_TRACE_ROWS:,})")
    table = read_table(where, _COLUMNS)
    check_values(where, table)
    return table
