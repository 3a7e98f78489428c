"""libsumo in a child process that steps ahead of the co-simulation.

SUMO's step and the per-vehicle reads cost about as much as the radio's work on a SUMO step, and
they do not depend on it: mobility is not steered by the radio or the learning. So the child
steps SUMO and sends each step's ``VehicleStates`` (with the vTypes of the vehicles that entered,
and the mobility trace's rows when asked) while this process runs the radio on the previous ones:
the two overlap on two cores. The socket is the only buffer: when this process falls behind, the
child blocks in ``send`` once it is full (a few steps ahead), so memory stays bounded. SUMO is the
same deterministic program fed the same commands, so the states are identical to the in-process
session's.

Protocol (parent -> child): the SumoLaunch; then ("advance", n) steps n times without reading;
("time",) answers once; ("records", geo, every) asks for the mobility trace's rows; ("stream",)
answers the current states, then steps and sends for ever. Child -> parent: ("ok", value) or
("error", exception); the first "ok" says the child runs, the second that SUMO loaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import signal
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pyarrow as pa

import cosim
from cosim.errors import InputError
from cosim.mobility.geo import GeoReference
from cosim.mobility.records import mobility_batch
from cosim.mobility.session import LibsumoSession, SumoLaunch, SumoSession, VehicleStates
from cosim.trace_schemas import MOBILITY_SCHEMA


class ChildEnded(RuntimeError):
    """The SUMO child process ended without a word (it crashed)."""

    def __init__(self, how: str):
        self.how = how
        super().__init__(f"the SUMO child process ended unexpectedly ({how}); see the run's sumo.log")


class PipelinedLibsumoSession(SumoSession):
    """A SumoSession whose libsumo runs in a child process, a few steps ahead."""

    def __init__(self, launch: SumoLaunch):
        super().__init__(launch)
        # A plain child interpreter (not multiprocessing's spawn, which re-runs the caller's
        # __main__: a script without a main guard, or stdin, would break), importing this very
        # cosim, talking pickles over a socket pair.
        ours, theirs = socket.socketpair()
        package_root = str(Path(cosim.__file__).resolve().parent.parent)
        # PYTHONSAFEPATH: the working folder is not on the child's path (a pyarrow.py there must
        # not run inside it)
        env = {**os.environ, "PYTHONSAFEPATH": "1", "PYTHONPATH": os.pathsep.join(
            p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
        # its own process group: a terminal's Ctrl-C, sent to the foreground group, reaches
        # only this process, which decides (and closes the pipe), not a child still importing
        self._child = subprocess.Popen(
            [sys.executable, "-m", "cosim.mobility.pipeline", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL, process_group=0)
        theirs.close()
        self._conn = Connection(ours.detach())
        self._conn.send(launch)
        self._types: dict[str, str] = {}
        self._streaming = False
        self._t = float("nan")
        self._started = False  # the child's first answer (SUMO loaded, or why not) is still due:
        # this process goes on setting up the run meanwhile, and reads it before the next answer.

    def time(self) -> float:
        if self._streaming:
            return self._t
        self._send(("time",))
        return self._answer()

    def advance(self) -> None:
        self.warm_up(1)

    def warm_up(self, steps: int) -> None:
        if self._streaming:
            raise RuntimeError("a streaming SUMO session only steps with step()")
        self._send(("advance", steps))  # no answer: the child works while this process goes on

    def prepare_records(self, geo: GeoReference | None, every: int) -> None:
        """The child builds the mobility trace's rows too: it has time to spare."""
        self._send(("records", geo, every))

    def read(self) -> VehicleStates:
        if self._streaming:
            raise RuntimeError("a streaming SUMO session reads with step()")
        self._send(("stream",))
        self._streaming = True
        return self._receive()

    def step(self) -> VehicleStates:
        if not self._streaming:
            self._send(("advance", 1))
            return self.read()
        return self._receive()

    def vehicle_type(self, vehicle: str) -> str:
        try:
            return self._types[vehicle]
        except KeyError:
            raise KeyError(f"vehicle {vehicle!r} was never reported by SUMO") from None

    def close(self) -> None:
        """Closing the socket ends the child's next send; it then closes SUMO (outputs flushed)."""
        self._conn.close()
        try:
            self._child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()

    def _send(self, command: tuple) -> None:
        try:
            self._conn.send(command)
        except (BrokenPipeError, ConnectionResetError):
            self._answer()  # the child has ended: its last answer (or its exit) says why
            raise ChildEnded("its pipe is closed") from None

    def _receive(self) -> VehicleStates:
        states, types = self._answer()
        if states.record is not None:  # Arrow IPC bytes: far cheaper to read than a pickled batch
            record = pa.ipc.read_record_batch(pa.py_buffer(states.record), MOBILITY_SCHEMA)
            states = dataclasses.replace(states, record=record)
        self._types.update(types)
        self._t = states.t
        return states

    def _answer(self) -> Any:
        if not self._started:
            self._started = True
            self._message()  # the child runs and is about to load SUMO
            try:
                self._message()  # SUMO loaded (or the error that stopped it, raised here)
            except ChildEnded as ended:  # SUMO itself crashes on some malformed files
                target = self.launch.inputs.sumocfg or self.launch.inputs.net
                raise InputError(target, "mobility", f"SUMO crashed while loading the scenario "
                                 f"({ended.how}); check the network and route files") from None
        return self._message()

    def _message(self) -> Any:
        try:
            kind, value = self._conn.recv()
        except (EOFError, OSError):
            try:
                code = self._child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                code = None
            raise ChildEnded(f"signal {-code}" if code is not None and code < 0
                             else f"exit code {code}") from None
        if kind == "error":
            raise value
        return value


def _serve(conn: Connection) -> None:  # pragma: no cover - child process
    """The child: run the parent's commands on an in-process libsumo session."""
    # a terminal's Ctrl-C reaches the whole process group: the parent decides, and closes the pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gone = (EOFError, BrokenPipeError, ConnectionResetError)  # the parent closed: run over
    try:
        launch = conn.recv()
        conn.send(("ok", None))  # running; SUMO loads next
    except gone:
        return
    try:
        session = LibsumoSession(launch)
    except Exception as exc:
        with contextlib.suppress(*gone):
            conn.send(("error", exc))
        return
    try:
        conn.send(("ok", None))
    except gone:
        session.close()
        return
    plan = None  # (geo, every): build the mobility trace's rows of every every-th streamed step
    try:
        while True:
            command = conn.recv()
            if command[0] == "advance":
                for _ in range(command[1]):
                    session.advance()
            elif command[0] == "time":
                conn.send(("ok", session.time()))
            elif command[0] == "records":
                plan = command[1:]
            elif command[0] == "stream":
                _stream(session, conn, plan)
    except gone:
        pass
    except InputError as exc:  # SUMO refused an input once the simulation reached it
        with contextlib.suppress(OSError):
            conn.send(("error", exc))
    except Exception as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", RuntimeError(f"SUMO failed: {exc}")))
    finally:
        session.close()


def _stream(session: LibsumoSession, conn: Connection, plan: tuple | None) -> None:  # pragma: no cover
    """Send the current states, then step and send for ever (until the pipe closes)."""
    offset = session.time()  # engine time 0: where the stream starts (after the warm-up)
    all_types: dict[str, str] = {}
    states = session.read()
    for i in itertools.count():
        types = _types(session, states)
        if plan is not None:
            all_types.update(types)
            if i % plan[1] == 0:
                shifted = dataclasses.replace(states, t=round(states.t - offset, 9))
                batch = mobility_batch(shifted, all_types, plan[0])
                states = dataclasses.replace(states, record=batch.serialize().to_pybytes())  # Arrow IPC
        conn.send(("ok", (states, types)))
        session.advance()
        states = session.read()


def _types(session: LibsumoSession, states: VehicleStates) -> dict[str, str]:
    """vTypes of the vehicles that just entered: asked now, as a vehicle may be gone a step later."""
    return {vehicle: session.vehicle_type(vehicle) for vehicle in states.entered}


if __name__ == "__main__":  # pragma: no cover - the child process
    _serve(Connection(int(sys.argv[1])))
