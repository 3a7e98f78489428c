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
from cosim.learning.federated.cluster import Role, wait_for_members
from cosim.learning.federated.d2d import Relay, SidelinkPort
from cosim.names import (
    CLUSTER_HEAD_FAILED,
    COMPLETED,
    DEADLINE,
    FAILED,
    LEFT_NETWORK,
    OUT_OF_COVERAGE,
    RADIO_LINK_FAILURE,
    TRANSFER_TIMEOUT,
    VIA_CLUSTER,
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


@dataclass(frozen=True)
class Delivery:
    """How a finished update may leave the vehicle besides its own uplink (the d2d section):
    through a ``relay``, or through its cluster (``role``) over the ``sidelink``."""

    relay: Relay | None = None
    role: Role | None = None
    sidelink: SidelinkPort | None = None
    aggregate_bytes: Callable[[list[int]], int] | None = None  # a cluster's aggregate, by client
    margin: float = 2.0  # d2d.cluster_upload_margin


def client_round(env: simpy.Environment, radio: RadioPort, client: Client, attempt: Attempt,
                 nbytes: tuple[int, int], compute_s: Callable[[], float], deadline: float,
                 delivery: Delivery | None = None):
    """SimPy process: download, compute, upload; its value is the filled-in ``attempt``.
    ``nbytes``: (down, up).

    ``compute_s`` is asked once the download is done (whether the vehicle is parked then decides
    how much of its device it lends). With a ``delivery``: a cluster member hands its update to
    its head, a head uploads its cluster's aggregate, and with a relay an upload that cannot
    start (no serving cell) or fails on the link goes through a neighbour."""
    d = delivery or Delivery()
    try:
        ready = yield from _download_and_compute(env, radio, client, attempt, nbytes[0], compute_s,
                                                 deadline)
        if not ready:
            return attempt
        if d.role is not None and d.role.is_head:
            return (yield from _head_upload(env, radio, attempt, d, deadline))
        if d.role is not None:
            handed = yield from _member_handover(env, attempt, d, nbytes[1], deadline)
            if handed:
                return attempt
        attempt.bytes_up = nbytes[1]  # recorded once the upload starts
        return (yield from _own_upload(env, radio, attempt, deadline, d.relay))
    finally:
        if d.role is not None and d.role.is_head:  # its members hear how it ended, at once
            d.role.cluster.finish(attempt.completed)


def _download_and_compute(env: simpy.Environment, radio: RadioPort, client: Client, a: Attempt,
                          down: int, compute_s: Callable[[], float], deadline: float):
    """Download, then compute; False (with the reason in ``a``) if the round ends here."""
    vehicle = client.vehicle
    a.bytes_down = down
    res = yield radio.transfer(vehicle, a.bytes_down, "down", timeout_s=deadline - env.now)
    if not res.ok:
        a.reason = _reason(res.reason)
        return False
    a.t_download_end = env.now
    seconds = compute_s()
    if env.now + seconds > deadline:
        yield env.timeout(deadline - env.now)
        a.reason = DEADLINE
        return False
    yield env.timeout(seconds)
    if client.vehicle != vehicle:
        a.reason = LEFT_NETWORK
        return False
    a.t_compute_end = env.now
    return True


def _own_upload(env: simpy.Environment, radio: RadioPort, a: Attempt, deadline: float,
                relay: Relay | None):
    """Up the client's own link; through a neighbour if that cannot start or fails on the link."""
    vehicle = a.vehicle
    res = None
    if relay is None or radio.serving_cell(vehicle) >= 0:
        res = yield radio.transfer(vehicle, a.bytes_up, "up", timeout_s=max(deadline - env.now, 1e-9))
        if res.ok or relay is None or res.reason not in RELAYABLE or env.now >= deadline:
            return _finish(a, res, env.now)
    outcome = yield from relay.deliver(vehicle, a.bytes_up, deadline)
    if outcome.relay is None:  # nobody in reach: the round ends as it would have
        a.reason = _reason(res.reason) if res is not None else OUT_OF_COVERAGE
        return a
    a.via, a.via_vehicle = VIA_RELAY, outcome.relay
    a.bytes_sidelink += outcome.bytes_sidelink
    return _finish(a, outcome.result, env.now)


def _head_upload(env: simpy.Environment, radio: RadioPort, a: Attempt, d: Delivery, deadline: float):
    """Wait for the members, then upload the aggregate of the head's and their updates."""
    cluster = d.role.cluster
    every = [cluster.head, *cluster.members]
    yield from wait_for_members(env, radio, cluster, d.aggregate_bytes(every), deadline, d.margin)
    a.bytes_up = d.aggregate_bytes([cluster.head, *cluster.delivered])
    return (yield from _own_upload(env, radio, a, deadline, d.relay))


def _member_handover(env: simpy.Environment, a: Attempt, d: Delivery, up: int, deadline: float):
    """Send the update to the cluster head and wait for its upload; False: go up on its own
    (the head is gone or already uploading, or the sidelink failed)."""
    cluster = d.role.cluster
    if not cluster.accepting():
        cluster.resolve(a.client, False)
        return False
    res = yield d.sidelink.transfer(a.vehicle, cluster.head_vehicle, up,
                                    timeout_s=max(deadline - env.now, 1e-9))
    if res.reason == TRANSFER_TIMEOUT:
        cluster.resolve(a.client, False)
        a.reason, a.bytes_sidelink = DEADLINE, up
        return True
    a.bytes_sidelink = int(res.bytes_moved)
    if not res.ok or not cluster.accepting():
        cluster.resolve(a.client, False)
        return False
    cluster.resolve(a.client, True)
    a.via, a.via_vehicle, a.bytes_up = VIA_CLUSTER, cluster.head_vehicle, 0
    head = yield cluster.outcome
    if head.ok:
        a.outcome, a.t_upload_end = COMPLETED, head.t
    else:
        a.reason = CLUSTER_HEAD_FAILED
    return True


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
