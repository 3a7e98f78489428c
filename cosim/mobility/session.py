"""One interface over libsumo (in-process), TraCI (socket) and sumo-gui.

A session advances SUMO one step at a time and returns every vehicle's state as numpy arrays.
Reads use what measures fastest per backend: libsumo's direct per-vehicle getters (no socket, so
each call costs ~1-2 us) and, over a TraCI socket, variable subscriptions (one message a step
instead of one round trip per vehicle and variable). SUMO is always closed: open a session with
``cosim.mobility.backends.open_session``, a context manager.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cosim.errors import InputError, MissingDependencyError
from cosim.mobility.build import SumoInputs
from cosim.mobility.geo import GeoReference
from cosim.mobility.sumo_tools import binary
from cosim.progress import warmup_step

# TraCI variable ids (traci.constants), used for subscriptions.
_VAR_POSITION, _VAR_SPEED, _VAR_ANGLE, _VAR_ROAD_ID, _VAR_STOPSTATE = 0x42, 0x40, 0x43, 0x50, 0xB5
_SUBSCRIBED = (_VAR_POSITION, _VAR_SPEED, _VAR_ANGLE, _VAR_ROAD_ID, _VAR_STOPSTATE)
_STOP_PARKING = 2  # bit of getStopState: the vehicle is parked (off the lane)


@dataclass(frozen=True)
class VehicleStates:
    """Every vehicle in the network at time ``t`` (SUMO time), as aligned arrays."""

    t: float
    ids: np.ndarray  # str (object)
    x: np.ndarray  # m
    y: np.ndarray  # m
    speed: np.ndarray  # m/s
    heading: np.ndarray  # degrees, 0 = north, clockwise (SUMO's angle)
    edge: np.ndarray  # str (object); ":..." while on a junction
    parked: np.ndarray  # bool
    entered: tuple[str, ...]  # ids new since the previous step
    left: tuple[str, ...]  # ids gone since the previous step
    # this step's mobility-trace rows, when the session prepared them (``prepare_records``)
    record: Any = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class SumoLaunch:
    """Everything needed to start SUMO for one run."""

    inputs: SumoInputs
    backend: str  # libsumo | traci | gui
    step_length_s: float
    seed: int
    extra_options: tuple[str, ...] = ()
    log_file: Path | None = None
    pipeline: bool = False  # libsumo only: SUMO in a child process, stepping ahead
    gui: GuiOptions | None = None  # backend gui only: how sumo-gui shows the run

    def command(self, executable: str) -> list[str]:
        cmd = [executable]
        if self.inputs.sumocfg:
            cmd += ["-c", str(self.inputs.sumocfg)]
        if self.inputs.net:
            cmd += ["-n", str(self.inputs.net)]
        if self.inputs.routes:
            cmd += ["-r", ",".join(str(p) for p in self.inputs.routes)]
        if self.inputs.additional:
            cmd += ["-a", ",".join(str(p) for p in self.inputs.additional)]
        cmd += ["--step-length", repr(self.step_length_s), "--seed", str(self.seed),
                "--no-step-log", "true", "--duration-log.disable", "true",
                "--no-warnings", "true"]
        if self.log_file:
            cmd += ["--log", str(self.log_file)]
        return cmd + list(self.extra_options)


@dataclass(frozen=True)
class GuiOptions:
    """sumo-gui's pace and look: ``delay_ms`` between steps (0: as fast as it can, which is too
    fast to watch), a ``settings_file`` (sumo-gui's view settings XML), and ``keep_open``: the
    window stays after the run (cosim waits until it is closed)."""

    delay_ms: float = 100.0
    settings_file: Path | None = None
    keep_open: bool = False

    def options(self) -> list[str]:
        out = ["--start", "true", "--delay", f"{self.delay_ms:g}",
               "--quit-on-end", "false" if self.keep_open else "true"]
        if self.settings_file is not None:
            out += ["--gui-settings-file", str(self.settings_file)]
        return out


def pack_states(ids, positions, speeds, angles, roads, stop_states) -> tuple:
    """Per-vehicle readings (iterables in the order of ``ids``) as the session's arrays."""
    n = len(ids)
    xy = np.fromiter(itertools.chain.from_iterable(positions), float, 2 * n)
    return (list(ids), xy[0::2].copy(), xy[1::2].copy(), np.fromiter(speeds, float, n),
            np.fromiter(angles, float, n), list(roads), np.fromiter(stop_states, np.int64, n))


def pack_subscriptions(ids, results: dict) -> tuple:
    """Variable-subscription results ({id: {var: value}}) as the session's arrays."""
    rows = [results[i] for i in ids]
    return pack_states(ids, (r[_VAR_POSITION] for r in rows), (r[_VAR_SPEED] for r in rows),
                       (r[_VAR_ANGLE] for r in rows), (r[_VAR_ROAD_ID] for r in rows),
                       (r[_VAR_STOPSTATE] for r in rows))


class VehicleSource(Protocol):
    """What the mobility layer steps: a running SUMO (a SumoSession) or a recorded trace (a
    ReplaySession)."""

    def time(self) -> float: ...

    def step(self) -> VehicleStates: ...

    def read(self) -> VehicleStates: ...

    def warm_up(self, steps: int) -> None: ...

    def prepare_records(self, geo: GeoReference | None, every: int) -> None: ...

    def vehicle_type(self, vehicle: str) -> str: ...

    def close(self) -> None: ...


class SumoSession:
    """Base: a running SUMO that steps and reports vehicle states."""

    def __init__(self, launch: SumoLaunch):
        self.launch = launch
        self._previous: set[str] = set()

    def time(self) -> float:
        raise NotImplementedError

    def step(self) -> VehicleStates:
        """Advance one step and return the new states."""
        self.advance()
        return self.read()

    def read(self) -> VehicleStates:
        ids, x, y, speed, heading, edge, stop = self._read_all()
        current = set(ids)
        entered = tuple(i for i in ids if i not in self._previous)
        left = tuple(sorted(self._previous - current))
        self._previous = current
        return VehicleStates(
            t=self.time(), ids=np.array(ids, dtype=object), x=x, y=y, speed=speed,
            heading=heading, edge=np.array(edge, dtype=object),
            parked=(stop & _STOP_PARKING) != 0, entered=entered, left=left,
        )

    def advance(self) -> None:
        raise NotImplementedError

    def warm_up(self, steps: int) -> None:
        """Advance ``steps`` steps without reading (a pipelined session returns at once); the
        run's progress hears how far, every simulated minute."""
        step_s = self.launch.step_length_s
        every = max(1, round(60.0 / step_s))
        for k in range(steps):
            self.advance()
            if (k + 1) % every == 0:
                warmup_step(f"{(k + 1) * step_s:.0f} s done")

    def prepare_records(self, geo: GeoReference | None, every: int) -> None:
        """Offer to build the mobility trace's rows (``VehicleStates.record``) of every
        ``every``-th streamed step, from the first ``read`` on; a session that does not leaves
        ``record`` None and the mobility layer builds them."""

    def _read_all(self) -> tuple:
        raise NotImplementedError

    def vehicle_type(self, vehicle: str) -> str:
        """The SUMO vType of a vehicle in the network."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class LibsumoSession(SumoSession):
    """SUMO inside this process: the fastest path (one simulation per process)."""

    def __init__(self, launch: SumoLaunch):
        super().__init__(launch)
        try:
            import libsumo
        except ImportError:
            raise MissingDependencyError("libsumo is missing: pip install libsumo") from None
        self._sumo = libsumo
        from libsumo import _libsumo

        self._raw = _libsumo
        if libsumo.simulation.isLoaded():
            raise RuntimeError("a libsumo simulation is already running in this process")
        _start_or_input_error(lambda: libsumo.start(launch.command(binary("sumo"))), launch)

    def time(self) -> float:
        return self._sumo.simulation.getTime()

    def advance(self) -> None:
        _step_or_input_error(self._sumo.simulationStep, self.time, self.launch)

    def _read_all(self) -> tuple:
        # the compiled getters themselves: libsumo's Python wrappers only forward to them, and
        # at ~300 vehicles x 5 reads a step the forwarding alone costs ~20 % of the reads
        raw = self._raw
        ids = raw.vehicle_getIDList()
        return pack_states(ids, map(raw.vehicle_getPosition, ids), map(raw.vehicle_getSpeed, ids),
                           map(raw.vehicle_getAngle, ids), map(raw.vehicle_getRoadID, ids),
                           map(raw.vehicle_getStopState, ids))

    def vehicle_type(self, vehicle: str) -> str:
        return self._sumo.vehicle.getTypeID(vehicle)

    def close(self) -> None:
        if self._sumo.simulation.isLoaded():
            self._sumo.close()


class TraciSession(SumoSession):
    """SUMO (or sumo-gui) as a separate process driven over a TraCI socket."""

    _labels = itertools.count()

    def __init__(self, launch: SumoLaunch, gui: bool = False):
        super().__init__(launch)
        try:
            import traci
        except ImportError:
            raise MissingDependencyError("traci is missing: pip install traci") from None
        self._traci = traci
        self._label = f"cosim-{next(self._labels)}"
        exe = binary("sumo-gui" if gui else "sumo")
        self.gui = (launch.gui or GuiOptions()) if gui else None
        cmd = launch.command(exe) + (self.gui.options() if self.gui is not None else [])
        self._conn: Any = None  # traci's Connection (untyped); None once closed

        def start() -> None:
            # traci prints " Retrying in 1 seconds" while SUMO opens its port; keep stdout clean.
            with contextlib.redirect_stdout(io.StringIO()):
                traci.start(cmd, label=self._label, stdout=subprocess.DEVNULL)

        _start_or_input_error(start, launch)
        self._conn = traci.getConnection(self._label)
        self._subscribed: set[str] = set()

    def time(self) -> float:
        return self._conn.simulation.getTime()

    def advance(self) -> None:
        _step_or_input_error(self._conn.simulationStep, self.time, self.launch)

    def _read_all(self) -> tuple:
        v = self._conn.vehicle
        ids = v.getIDList()
        new = [i for i in ids if i not in self._subscribed]
        for vid in new:
            v.subscribe(vid, _SUBSCRIBED)
        self._subscribed = set(ids)
        return pack_subscriptions(ids, v.getAllSubscriptionResults())

    def vehicle_type(self, vehicle: str) -> str:
        return self._conn.vehicle.getTypeID(vehicle)

    @property
    def connection(self) -> Any:
        """The TraCI connection (the GUI layer draws through it)."""
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            if self.gui is not None and self.gui.keep_open:
                print("sumo-gui stays open: close its window to end the run", file=sys.stderr)
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


def _start_or_input_error(start, launch: SumoLaunch) -> None:
    """Start SUMO; a refusal to load the scenario's files is bad input (exit 2), not a crash."""
    try:
        start()
    except Exception as exc:  # libsumo.TraCIException / traci.FatalTraCIError
        target = launch.inputs.sumocfg or launch.inputs.net
        detail = _first_error_line(launch.log_file) or str(exc).strip().splitlines()[0]
        raise InputError(target, "mobility", f"SUMO could not load the scenario: {detail}") \
            from None


def _step_or_input_error(step, now, launch: SumoLaunch) -> None:
    """Advance SUMO; what it refuses only once a vehicle departs (a departLane its edge lacks,
    a departSpeed above the lane's limit) is bad input too: one line naming the scenario's
    mobility, with SUMO's own reason, not a crash of cosim."""
    try:
        step()
    except Exception as exc:  # libsumo.TraCIException / traci.FatalTraCIError / TraCIException
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        detail = _first_error_line(launch.log_file) or detail
        try:
            at = f" at {now():g} s"
        except Exception:  # SUMO closed: its time is gone with it
            at = ""
        read = [p.name for p in (launch.inputs.sumocfg, *launch.inputs.routes) if p is not None]
        raise InputError(None, "mobility", f"SUMO stopped the simulation{at}: {detail}"
                         + (f" (reading {', '.join(read)})" if read else "")) from None


def _first_error_line(log: Path | None) -> str | None:
    if log is None or not log.exists():
        return None
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("Error"):
            return line
    return None
