"""The SUMO session a launch gets: libsumo (pipelined in a child process or in-process), TraCI
over a socket, or sumo-gui."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from cosim.mobility.pipeline import PipelinedLibsumoSession
from cosim.mobility.session import LibsumoSession, SumoLaunch, SumoSession, TraciSession


@contextlib.contextmanager
def open_session(launch: SumoLaunch) -> Iterator[SumoSession]:
    """Start SUMO with the launch's backend and close it however the block ends."""
    if launch.backend == "libsumo" and launch.pipeline:
        session: SumoSession = PipelinedLibsumoSession(launch)
    elif launch.backend == "libsumo":
        session = LibsumoSession(launch)
    elif launch.backend in ("traci", "gui"):
        session = TraciSession(launch, gui=launch.backend == "gui")
    else:
        raise ValueError(f"unknown backend {launch.backend!r}")
    try:
        yield session
    finally:
        session.close()
