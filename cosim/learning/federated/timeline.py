"""A selected client's round on the simulated clock: download its modules, compute, upload them.

The radio port decides how long the transfers take and whether they complete; the device profile
decides the compute time. The round ends completed, or failed with the reason and the time it got
to (a transfer that timed out is the round's deadline). An ``Attempt`` is one row of the
participation trace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import simpy

from cosim.learning.federated.clients import Client
from cosim.learning.federated.d2d import Relay
from cosim.names import (
    COMPLETED,
    DEADLINE,
    FAILED,
    LEFT_NETWORK,
    OUT_OF_COVERAGE,
    RADIO_LINK_FAILURE,
    TRANSFER_TIMEOUT,
    VIA_RELAY,
)
from cosim.ports import RadioPort
from cosim.radio.transfers import TransferResult
from cosim.trace_schemas import PARTICIPATION_SCHEMA


@dataclass
class Attempt:
    """One client's round, as the participation trace records it (its columns, by name)."""

    round: int
    client: int
    vehicle: str
    selected_at: float
    model_version: int
    outcome: str = FAILED
    reason: str | None = None
    t_download_end: float | None = None
    t_compute_end: float | None = None
    t_upload_end: float | None = None
    bytes_down: int = 0
    bytes_up: int = 0
    staleness: int = 0
    via: str | None = None  # None: its own uplink; "relay" or "cluster" (names.VIA_*)
    via_vehicle: str | None = None
    bytes_sidelink: int = 0

    @property
    def completed(self) -> bool:
        return self.outcome == COMPLETED


def participation_rows(attempts: list[Attempt]) -> dict[str, list]:
    """The attempts as columns of the participation table."""
    return {name: [getattr(a, name) for a in attempts] for name in PARTICIPATION_SCHEMA.names}


def client_round(env: simpy.Environment, radio: RadioPort, client: Client, attempt: Attempt,
                 nbytes: tuple[int, int], compute_s: Callable[[], float], deadline: float,
                 relay: Relay | None = None):
    """SimPy process: download, compute, upload; its value is the filled-in ``attempt``.
    ``nbytes``: (down, up).

    ``compute_s`` is asked once the download is done (whether the vehicle is parked then decides
    how much of its device it lends). With a ``relay``, an upload that cannot start (no serving
    cell) or fails on the link (radio link failure, coverage lost) goes through a neighbour."""
    vehicle, a = client.vehicle, attempt
    a.bytes_down = nbytes[0]
    res = yield radio.transfer(vehicle, a.bytes_down, "down", timeout_s=deadline - env.now)
    if not res.ok:
        a.reason = _reason(res.reason)
        return a
    a.t_download_end = env.now
    seconds = compute_s()
    if env.now + seconds > deadline:
        yield env.timeout(deadline - env.now)
        a.reason = DEADLINE
        return a
    yield env.timeout(seconds)
    if client.vehicle != vehicle:
        a.reason = LEFT_NETWORK
        return a
    a.t_compute_end = env.now
    a.bytes_up = nbytes[1]  # recorded once the upload starts
    res = None
    if relay is None or radio.serving_cell(vehicle) >= 0:
        res = yield radio.transfer(vehicle, a.bytes_up, "up", timeout_s=max(deadline - env.now, 1e-9))
        if res.ok or relay is None or res.reason not in RELAYABLE or env.now >= deadline:
            return _finish(a, res, env.now)
    outcome = yield from relay.deliver(vehicle, a.bytes_up, deadline)
    if outcome.relay is None:  # nobody in reach: the round ends as it would have
        a.reason = _reason(res.reason) if res is not None else OUT_OF_COVERAGE
        return a
    a.via, a.via_vehicle, a.bytes_sidelink = VIA_RELAY, outcome.relay, outcome.bytes_sidelink
    return _finish(a, outcome.result, env.now)


def _finish(a: Attempt, res: TransferResult, now: float) -> Attempt:
    """The round ends with its last transfer."""
    if res.ok:
        a.outcome, a.t_upload_end = COMPLETED, now
    else:
        a.reason = _reason(res.reason)
    return a


# An own upload that ended like this may still go through a neighbour.
RELAYABLE = (OUT_OF_COVERAGE, RADIO_LINK_FAILURE)


def _reason(transfer_reason: str | None) -> str | None:
    return DEADLINE if transfer_reason == TRANSFER_TIMEOUT else transfer_reason
