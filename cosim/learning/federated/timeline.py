"""A selected client's round on the simulated clock: download its modules, compute, upload them.

The radio port decides how long the transfers take and whether they complete; the device profile
decides the compute time. The round ends completed, or failed with the reason and the time it got
to (a transfer that timed out is the round's deadline). An ``Attempt`` is one row of the
participation trace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

import simpy

from cosim.learning.federated.attempt import Attempt
from cosim.learning.federated.clients import Client
from cosim.learning.federated.d2d import Relay, SidelinkPort
from cosim.learning.federated.tree import SERVER, TreeNode, wait_for_children
from cosim.names import (
    CLUSTER_HEAD_FAILED,
    COMPLETED,
    DEADLINE,
    LEFT_NETWORK,
    OUT_OF_COVERAGE,
    RADIO_LINK_FAILURE,
    TRANSFER_TIMEOUT,
    VIA_CLUSTER,
    VIA_RELAY,
)
from cosim.ports import RadioPort
from cosim.radio.transfers import TransferResult


class HopRecorder(Protocol):
    """Where each hop of an update on its way to the server is traced (bytes per link type)."""

    def __call__(self, a: Attempt, res: TransferResult, dst: str, link: str, purpose: str) -> None: ...


@dataclass(frozen=True)
class Delivery:
    """How a finished update may leave the vehicle besides its own uplink: through a ``relay``,
    or up its aggregation tree (``node``: a cluster or a spanning tree) over the ``sidelink``."""

    relay: Relay | None = None
    node: TreeNode | None = None
    sidelink: SidelinkPort | None = None
    aggregate_bytes: Callable[[list[int]], int] | None = None  # an aggregate's bytes, by client
    margin: float = 2.0  # d2d.cluster_upload_margin
    hops: HopRecorder | None = None


def client_round(env: simpy.Environment, radio: RadioPort, client: Client, attempt: Attempt,
                 nbytes: tuple[int, int], compute_s: Callable[[], float], deadline: float,
                 delivery: Delivery | None = None):
    """SimPy process: download, compute, upload; its value is the filled-in ``attempt``.
    ``nbytes``: (down, up).

    ``compute_s`` is asked once the download is done (whether the vehicle is parked then decides
    how much of its device it lends). With a ``delivery``: a tree node without a cell takes the
    model from its parent, hands its aggregate to its parent (a root uploads it), and with a
    relay an upload that cannot start (no serving cell) or fails on the link goes through a
    neighbour."""
    d = delivery or Delivery()
    node = d.node
    try:
        ready = yield from _download_and_compute(env, radio, client, attempt, nbytes[0], compute_s,
                                                 deadline, d)
        if not ready:
            return attempt
        if node is not None:
            return (yield from _tree_delivery(env, radio, attempt, d, nbytes[1], deadline))
        attempt.bytes_up = nbytes[1]  # recorded once the upload starts
        return (yield from _own_upload(env, radio, attempt, deadline, d))
    finally:
        if node is not None:  # its parent and its children hear how it ended, at once
            node.got_model(False)
            node.answer(False)
            node.finish(attempt.completed)


def _download_and_compute(env: simpy.Environment, radio: RadioPort, client: Client, a: Attempt,
                          down: int, compute_s: Callable[[], float], deadline: float, d: Delivery):
    """Download (from the tree parent when it has no cell: dispatch), then compute; False (with
    the reason in ``a``) if the round ends here."""
    # bound at launch; a vehicle that left since reaches the radio as None, which it answers as
    # for any vehicle not in the network (no cell, the transfer fails with left_network)
    vehicle = cast(str, client.vehicle)
    a.bytes_down = down
    node = d.node
    if node is not None and node.parent is not None and radio.serving_cell(vehicle) < 0:
        res = yield from _dispatch(env, a, d, down, deadline)
    else:
        res = yield radio.transfer(vehicle, a.bytes_down, "down", timeout_s=deadline - env.now)
    if not res.ok:
        a.reason = _reason(res.reason)
        return False
    if node is not None:
        node.got_model(True)
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


def _dispatch(env: simpy.Environment, a: Attempt, d: Delivery, down: int, deadline: float):
    """The global model from the tree parent over the sidelink, once the parent has it."""
    assert d.node is not None and d.node.parent is not None  # dispatched from a node's parent only
    parent = d.node.parent
    yield env.any_of([parent.model_ready, env.timeout(max(deadline - env.now, 0.0))])
    if not (parent.model_ready.triggered and parent.model_ready.value):
        reason = TRANSFER_TIMEOUT if env.now >= deadline else OUT_OF_COVERAGE
        return TransferResult(a.vehicle, "sidelink", down, False, reason, env.now, env.now, 0.0)
    assert d.sidelink is not None  # a tree's deliveries come with the sidelink
    res = yield d.sidelink.transfer(parent.vehicle, a.vehicle, down, timeout_s=max(deadline - env.now, 1e-9))
    a.bytes_sidelink += int(res.bytes_moved)
    _hop(d, a, res, a.vehicle, SIDELINK, "dispatch")
    return res


def _own_upload(env: simpy.Environment, radio: RadioPort, a: Attempt, deadline: float, d: Delivery):
    """Up the client's own link; through a neighbour if that cannot start or fails on the link."""
    vehicle, relay = a.vehicle, d.relay
    res = None
    if relay is None or radio.serving_cell(vehicle) >= 0:
        res = yield radio.transfer(vehicle, a.bytes_up, "up", timeout_s=max(deadline - env.now, 1e-9))
        _hop(d, a, res, SERVER, UPLINK, "upload")
        if res.ok or relay is None or res.reason not in RELAYABLE or env.now >= deadline:
            return _finish(a, res, env.now)
    outcome = yield from relay.deliver(vehicle, a.bytes_up, deadline)
    if outcome.relay is None:  # nobody in reach: the round ends as it would have
        a.reason = _reason(res.reason) if res is not None else OUT_OF_COVERAGE
        return a
    assert outcome.result is not None  # a relay in reach: its hops were tried
    a.via, a.via_vehicle = VIA_RELAY, outcome.relay
    a.bytes_sidelink += outcome.bytes_sidelink
    for hop, dst, link in zip(outcome.results, (outcome.relay, SERVER), (SIDELINK, UPLINK), strict=False):
        _hop(d, a, hop, dst, link, "relay")
    return _finish(a, outcome.result, env.now)


def _tree_delivery(env: simpy.Environment, radio: RadioPort, a: Attempt, d: Delivery, up: int,
                   deadline: float):
    """Wait for the children, then hand the aggregate to the parent over the sidelink and wait
    for the upload that carries it; a root (or a node that cannot hand over) uploads itself."""
    node, sidelink, aggregate_bytes = d.node, d.sidelink, d.aggregate_bytes
    assert node is not None  # called for a client with a place in a tree
    parent = node.parent
    if node.children:
        assert aggregate_bytes is not None  # a tree's deliveries come with the aggregate's bytes
        every = aggregate_bytes(node.every())
        if parent is None:
            rate = radio.rate_bps(a.vehicle, "up")
        else:
            assert sidelink is not None  # a tree's deliveries come with the sidelink
            rate = sidelink.rate_bps(a.vehicle, parent.vehicle)
        send_s = 8.0 * every / rate if rate > 0.0 else 0.0
        yield from wait_for_children(env, node, deadline, d.margin, send_s)
    node.close()
    carried = node.carried()
    if len(carried) > 1:
        assert aggregate_bytes is not None  # a tree's deliveries come with the aggregate's bytes
        nbytes = aggregate_bytes(carried)
    else:
        nbytes = up
    if parent is not None and parent.accepting():
        assert sidelink is not None  # a tree's deliveries come with the sidelink
        res = yield sidelink.transfer(a.vehicle, parent.vehicle, nbytes,
                                        timeout_s=max(deadline - env.now, 1e-9))
        a.bytes_sidelink += int(res.bytes_moved)
        _hop(d, a, res, parent.vehicle, SIDELINK, "aggregate")
        if res.reason == TRANSFER_TIMEOUT:
            a.reason = DEADLINE
            return a
        if res.ok and parent.accepting():
            node.answer(True)
            a.via, a.via_vehicle, a.bytes_up = VIA_CLUSTER, parent.vehicle, 0
            carrier = yield parent.outcome
            if carrier.ok:
                a.outcome, a.t_upload_end = COMPLETED, carrier.t
            else:
                a.reason = CLUSTER_HEAD_FAILED
            return a
    node.answer(False)  # its parent is gone or has sent: up its own link with what it holds
    a.bytes_up = nbytes
    return (yield from _own_upload(env, radio, a, deadline, d))


def _hop(d: Delivery, a: Attempt, res: TransferResult, dst: str, link: str, purpose: str) -> None:
    if d.hops is not None:
        d.hops(a, res, dst, link, purpose)


def _finish(a: Attempt, res: TransferResult, now: float) -> Attempt:
    """The round ends with its last transfer."""
    if res.ok:
        a.outcome, a.t_upload_end = COMPLETED, now
    else:
        a.reason = _reason(res.reason)
    return a


# An own upload that ended like this may still go through a neighbour.
RELAYABLE = (OUT_OF_COVERAGE, RADIO_LINK_FAILURE)


SIDELINK, UPLINK = "sidelink", "uplink"  # link types of the hops trace


def _reason(transfer_reason: str | None) -> str | None:
    return DEADLINE if transfer_reason == TRANSFER_TIMEOUT else transfer_reason
