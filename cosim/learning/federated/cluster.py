"""Cluster aggregation over the V2V sidelink (``d2d.cluster``): selected clients in range of each
other aggregate at a cluster head, which uploads their aggregate once.

Clusters are formed when a round starts, from the sidelink links among the selected clients
(stars: the connected client with the best uplink heads a cluster of its direct neighbours; then
the next among those left). A member sends its finished update to the head over the sidelink;
the head, once its own update is done, waits for its members (at most until the time left to
the deadline is ``cluster_upload_margin`` times its upload at its rate now) and uploads the
sample-weighted aggregate of every module any of them trained. The server averages the clusters'
aggregates, each module weighted by the samples behind it (``aggregation.cloud_average``): with
every update delivered, that is flat FedAvg.

A member whose sidelink transfer fails, or whose head is gone (its round failed) or has already
uploaded, uploads on its own link as any client would; a member that had delivered to a head
whose upload then fails ends ``cluster_head_failed``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import simpy

from cosim.learning.federated.aggregation import cloud_average, fedavg, samples_per_key
from cosim.learning.federated.d2d import SidelinkPort
from cosim.learning.federated.policies import Candidate
from cosim.names import VIA_CLUSTER
from cosim.ports import RadioPort

if TYPE_CHECKING:
    from cosim.learning.federated.timeline import Attempt
    from cosim.learning.federated.training import State, TrainedUpdate


@dataclass(frozen=True)
class HeadOutcome:
    """How the head's aggregate upload ended (``ok``: it reached the server at ``t``)."""

    ok: bool
    t: float


@dataclass(eq=False)
class Cluster:
    """One round's cluster: its head and members (client indices), and their hand-over state."""

    env: simpy.Environment
    head: int
    head_vehicle: str
    members: tuple[int, ...]
    pending: set[int] = field(init=False)
    delivered: list[int] = field(default_factory=list)
    closed: bool = False  # the head has started its upload (or is gone): no more deliveries
    resolved: simpy.Event = field(init=False)  # every member delivered or gave up
    outcome: simpy.Event = field(init=False)  # value: HeadOutcome

    def __post_init__(self) -> None:
        self.pending = set(self.members)
        self.resolved = self.env.event()
        self.outcome = self.env.event()
        if not self.pending:
            self.resolved.succeed()

    def accepting(self) -> bool:
        return not self.closed

    def resolve(self, member: int, delivered: bool) -> None:
        """A member's hand-over ended: its update is at the head, or it goes its own way."""
        self.pending.discard(member)
        if delivered:
            self.delivered.append(member)
        if not self.pending and not self.resolved.triggered:
            self.resolved.succeed()

    def close(self) -> None:
        self.closed = True

    def finish(self, ok: bool) -> None:
        """The head's round ended: its aggregate reached the server, or not."""
        self.closed = True
        if not self.outcome.triggered:
            self.outcome.succeed(HeadOutcome(ok, self.env.now))


@dataclass(frozen=True)
class Role:
    """A selected client's part in a cluster: its head or one of its members."""

    cluster: Cluster
    is_head: bool


def form_clusters(env: simpy.Environment, chosen: Collection[int], candidates: list[Candidate],
                  sidelink: SidelinkPort) -> dict[int, Role]:
    """Star clusters among the chosen clients from the sidelink now: repeatedly, the connected
    client with the best uplink rate (ties: lower index) heads a cluster of the chosen clients it
    has a sidelink to. Clients in no cluster of two or more get no role."""
    by_index = {c.client: c for c in candidates if c.client in set(chosen)}
    left = set(by_index)
    roles: dict[int, Role] = {}
    order = sorted(by_index.values(), key=lambda c: (-c.ul_rate_bps, c.client))
    for head in order:
        if head.client not in left or not head.connected or head.ul_rate_bps <= 0.0:
            continue
        heard = sidelink.neighbours(head.vehicle)
        members = tuple(sorted(i for i in left if i != head.client and by_index[i].vehicle in heard))
        if not members:
            continue
        cluster = Cluster(env, head.client, head.vehicle, members)
        roles[head.client] = Role(cluster, True)
        for i in members:
            roles[i] = Role(cluster, False)
        left -= {head.client, *members}
    return roles


def wait_for_members(env: simpy.Environment, radio: RadioPort, cluster: Cluster, nbytes: int,
                     deadline: float, margin: float):
    """The head waits for its members' updates, keeping ``margin`` times its upload time (at its
    rate now) before the deadline; then no more are taken."""
    rate = radio.rate_bps(cluster.head_vehicle, "up")
    upload_s = 8.0 * nbytes / rate if rate > 0.0 else 0.0
    cutoff = max(env.now, deadline - margin * upload_s)
    if not cluster.resolved.triggered and cutoff > env.now:
        yield env.any_of([cluster.resolved, env.timeout(cutoff - env.now)])
    cluster.close()


def cluster_groups(attempts: list[Attempt], roles: dict[int, Role]) -> dict[int, list[int]]:
    """The completed clients whose updates reached the server together, by the client that
    uploaded them: a head with the members it carried; every other client alone."""
    groups: dict[int, list[int]] = {}
    for a in attempts:
        if not a.completed:
            continue
        role = roles.get(a.client)
        carried = role is not None and (role.is_head or a.via == VIA_CLUSTER)
        groups.setdefault(role.cluster.head if carried else a.client, []).append(a.client)
    return groups


def clustered_fedavg(global_state: State, updates: list[TrainedUpdate],
                     groups: dict[int, list[int]]) -> State:
    """FedAvg at each cluster head, then the server's average of the heads' aggregates with each
    module weighted by the samples behind it (equal to flat FedAvg over the same updates)."""
    by_client = {u.client: u for u in updates}
    aggregates = []
    for head in sorted(groups):
        group = [(by_client[c].modules, by_client[c].weight) for c in groups[head] if c in by_client]
        if group:
            aggregates.append((fedavg(global_state, group), samples_per_key(group)))
    return cloud_average(global_state, aggregates)
