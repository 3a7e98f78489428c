"""Aggregation trees over the V2V sidelink: clusters (``d2d.cluster``) and spanning trees
(``aggregation.method: spanning_tree``, Fed-Span).

A round's selected clients form trees whose roots upload to the server. Each node, once its own
update is done, waits for its children's aggregates (at most until the time left to the deadline
is ``margin`` times the estimated time of its path to the server), then sends the sample-weighted
aggregate of its own update and what its children delivered: up its cellular link if it is a
root, else over the sidelink to its parent. A node that cannot hand over (its parent is gone or
has already sent, or the sidelink fails) goes up its own link with what it holds, becoming a root.
A node that had handed over ends as its root's upload ends: completed, or ``cluster_head_failed``.

- Clusters are stars: the connected client with the best uplink heads a cluster of the chosen
  clients it has a sidelink to; then the next among those left.
- Spanning trees (Fed-Span, Nadimi et al., 2025, arXiv:2509.24932) are the minimum spanning
  forest (networkx) of the live graph of the chosen clients and the server, each link weighted
  by the latency or energy of sending one update over it now: sidelinks between clients, cellular
  uplinks to the server. The tree that holds the server gives parents; a client in a component
  without the server has no link to it now and uploads on its own, as any client.

The server averages what each root uploaded, node by node up the tree, each module weighted by
the samples behind it (``aggregation.cloud_average``): with every update delivered, that is flat
FedAvg over the same updates.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import networkx as nx
import simpy

from cosim.learning.federated.aggregation import cloud_average, fedavg, samples_per_key
from cosim.learning.federated.attempt import Attempt
from cosim.learning.federated.d2d import SidelinkPort
from cosim.learning.federated.policies import Candidate

if TYPE_CHECKING:
    from cosim.learning.federated.training import State, TrainedUpdate

SERVER = "server"
EDGE_WEIGHT = {"latency": "latency_s", "energy": "energy_j"}  # aggregation.weight -> edge attribute


@dataclass(frozen=True)
class HeadOutcome:
    """How the upload that carries a node's update ended (``ok``: reached the server at ``t``)."""

    ok: bool
    t: float


@dataclass(eq=False)
class TreeNode:
    """A selected client in a round's tree: its parent (None: it uploads to the server), its
    children, and the hand-over state."""

    env: simpy.Environment
    client: int
    vehicle: str
    parent: TreeNode | None = None
    children: list[TreeNode] = field(default_factory=list)
    onward_s: float = 0.0  # estimated seconds from its parent on to the server (0: a root)
    answered: bool = False  # it has told its parent whether it delivered
    pending: set[int] = field(init=False)
    delivered: list[TreeNode] = field(default_factory=list)  # children whose aggregates it holds
    closed: bool = False  # it has sent (or is gone): no more deliveries
    resolved: simpy.Event = field(init=False)  # every child delivered or gave up
    outcome: simpy.Event = field(init=False)  # value: HeadOutcome of the upload that carries it
    model_ready: simpy.Event = field(init=False)  # value: whether it got the global model

    def __post_init__(self) -> None:
        self.pending = set()
        self.resolved = self.env.event()
        self.outcome = self.env.event()
        self.model_ready = self.env.event()

    def got_model(self, ok: bool) -> None:
        """Its download ended: children without a cell take the model from it (dispatch)."""
        if not self.model_ready.triggered:
            self.model_ready.succeed(ok)

    def answer(self, delivered: bool) -> None:
        """Tell the parent, once, whether this node's aggregate is now there."""
        if self.parent is not None and not self.answered:
            self.answered = True
            self.parent.resolve(self, delivered)

    def adopt(self, child: TreeNode) -> None:
        child.parent = self
        self.children.append(child)
        self.pending.add(child.client)

    def seal(self) -> None:
        """Children are known: an empty set is resolved at once."""
        if not self.pending and not self.resolved.triggered:
            self.resolved.succeed()

    def accepting(self) -> bool:
        return not self.closed

    def resolve(self, child: TreeNode, delivered: bool) -> None:
        """A child's hand-over ended: its aggregate is here, or it goes its own way."""
        self.pending.discard(child.client)
        if delivered:
            self.delivered.append(child)
        if not self.pending and not self.resolved.triggered:
            self.resolved.succeed()

    def close(self) -> None:
        self.closed = True

    def finish(self, ok: bool) -> None:
        """The upload that carries this node ended (or this node's round did)."""
        self.closed = True
        if not self.outcome.triggered:
            self.outcome.succeed(HeadOutcome(ok, self.env.now))

    def carried(self) -> list[int]:
        """Clients whose updates are in this node's aggregate: itself and what was delivered."""
        return [self.client, *(c for child in self.delivered for c in child.carried())]

    def every(self) -> list[int]:
        """Every client of its subtree (delivered or not)."""
        return [self.client, *(c for child in self.children for c in child.every())]


def _nodes(chosen: Collection[int], candidates: list[Candidate]) -> dict[int, Candidate]:
    wanted = set(chosen)
    return {c.client: c for c in candidates if c.client in wanted}


def form_clusters(env: simpy.Environment, chosen: Collection[int], candidates: list[Candidate],
                  sidelink: SidelinkPort) -> dict[int, TreeNode]:
    """Star clusters among the chosen clients from the sidelink now: repeatedly, the connected
    client with the best uplink rate (ties: lower index) heads a cluster of the chosen clients it
    has a sidelink to. Clients in no cluster of two or more get no node."""
    by_index = _nodes(chosen, candidates)
    left = set(by_index)
    nodes: dict[int, TreeNode] = {}
    for head in sorted(by_index.values(), key=lambda c: (-c.ul_rate_bps, c.client)):
        if head.client not in left or not head.connected or head.ul_rate_bps <= 0.0:
            continue
        heard = sidelink.neighbours(head.vehicle)
        members = sorted(i for i in left if i != head.client and by_index[i].vehicle in heard)
        if not members:
            continue
        root = nodes[head.client] = TreeNode(env, head.client, head.vehicle)
        for i in members:
            node = nodes[i] = TreeNode(env, i, by_index[i].vehicle)
            root.adopt(node)
            node.seal()
        root.seal()
        left -= {head.client, *members}
    return nodes


def connectivity_graph(chosen: Collection[int], candidates: list[Candidate], sidelink: SidelinkPort,
                       sidelink_tx_w: float, uplink_tx_w: float) -> nx.Graph:
    """The chosen clients and the server, with every link up now: sidelinks between clients and
    cellular uplinks to the server. Each edge has ``latency_s`` and ``energy_j``: one update sent
    over it at its rate now, at the transmitter's power."""
    by_index = _nodes(chosen, candidates)
    g = nx.Graph()
    g.add_node(SERVER)
    by_vehicle = {c.vehicle: c for c in by_index.values()}
    for c in sorted(by_index.values(), key=lambda c: c.client):
        g.add_node(c.client)
        if c.connected and c.ul_rate_bps > 0.0:
            s = 8.0 * c.bytes_up / c.ul_rate_bps
            g.add_edge(c.client, SERVER, latency_s=s, energy_j=uplink_tx_w * s, link="uplink")
        for other, rate in sorted(sidelink.neighbours(c.vehicle).items()):
            peer = by_vehicle.get(other)
            if peer is None or peer.client <= c.client or rate <= 0.0:
                continue
            s = 8.0 * max(c.bytes_up, peer.bytes_up) / rate
            g.add_edge(c.client, peer.client, latency_s=s, energy_j=sidelink_tx_w * s, link="sidelink")
    return g


def spanning_trees(env: simpy.Environment, graph: nx.Graph, candidates: list[Candidate],
                   weight: str) -> dict[int, TreeNode]:
    """Nodes of the minimum spanning forest's tree that holds the server, parents towards it
    (``onward_s``: the parent's path latency to the server). Clients outside it get no node."""
    forest = nx.minimum_spanning_tree(graph, weight=weight, algorithm="kruskal")
    if SERVER not in forest:
        return {}
    vehicle = {c.client: c.vehicle for c in candidates}
    nodes: dict[int, TreeNode] = {}
    path_s: dict[int, float] = {}
    for parent, child in nx.bfs_edges(forest, SERVER, sort_neighbors=_by_client):
        node = nodes[child] = TreeNode(env, child, vehicle[child])
        hop = forest.edges[parent, child]["latency_s"]
        if parent == SERVER:
            path_s[child] = hop
        else:
            nodes[parent].adopt(node)
            node.onward_s = path_s[parent]
            path_s[child] = path_s[parent] + hop
    for node in nodes.values():
        node.seal()
    return nodes


def _by_client(nodes):
    """Deterministic order of a node's neighbours: the server first, then by client index."""
    return sorted(nodes, key=lambda n: (-1, 0) if n == SERVER else (0, n))


def tree_groups(attempts: list[Attempt], nodes: dict[int, TreeNode]) -> dict[int, TreeNode | None]:
    """The uploads that reached the server: by the client that made each, its tree node (None:
    a client outside any tree, alone)."""
    out: dict[int, TreeNode | None] = {}
    for a in attempts:
        if a.completed and a.bytes_up > 0:  # it uploaded (a hand-over uploads nothing itself)
            out[a.client] = nodes.get(a.client)
    return out


def tree_fedavg(global_state: State, updates: list[TrainedUpdate],
                uploads: dict[int, TreeNode | None]) -> State:
    """Aggregate node by node up each tree (sample-weighted per module), then average the roots'
    aggregates at the server the same way: flat FedAvg when every update arrives."""
    by_client = {u.client: u for u in updates}

    def aggregate(node: TreeNode) -> tuple[State, dict[str, float]] | None:
        parts = []
        own = by_client.get(node.client)
        if own is not None:
            parts.append((own.modules, samples_per_key([(own.modules, own.weight)])))
        for child in node.delivered:
            sub = aggregate(child)
            if sub is not None:
                parts.append(sub)
        if not parts:
            return None
        weights: dict[str, float] = {}
        for _, w in parts:
            for key, value in w.items():
                weights[key] = weights.get(key, 0.0) + value
        return cloud_average(global_state, parts), weights

    roots = []
    for client in sorted(uploads):
        node = uploads[client]
        if node is None:
            u = by_client.get(client)
            if u is not None:
                roots.append((fedavg(global_state, [(u.modules, u.weight)]),
                              samples_per_key([(u.modules, u.weight)])))
            continue
        sub = aggregate(node)
        if sub is not None:
            roots.append(sub)
    return cloud_average(global_state, roots)


def wait_for_children(env: simpy.Environment, node: TreeNode, deadline: float, margin: float,
                      send_s: float):
    """Wait for the children's aggregates, keeping ``margin`` times the node's path time to the
    server (``send_s``, its own hop now, plus ``onward_s``) before the deadline; then no more
    are taken."""
    cutoff = max(env.now, deadline - margin * (send_s + node.onward_s))
    if not node.resolved.triggered and cutoff > env.now and math.isfinite(cutoff):
        yield env.any_of([node.resolved, env.timeout(cutoff - env.now)])
    node.close()


class TreeStats:
    """What the spanning trees looked like over a run (run.json): how many selected clients each
    round's tree reached, over how many sidelink hops, how deep, at what latency and energy."""

    def __init__(self) -> None:
        self.rounds = 0
        self.selected = 0
        self.in_tree = 0
        self.sidelink_edges = 0
        self.max_depth = 0
        self.latency_s = 0.0
        self.energy_j = 0.0

    def add(self, graph: nx.Graph, nodes: dict[int, TreeNode]) -> None:
        self.rounds += 1
        self.selected += graph.number_of_nodes() - 1
        self.in_tree += len(nodes)
        for node in nodes.values():
            depth, up = 1, node
            while up.parent is not None:
                depth, up = depth + 1, up.parent
            self.max_depth = max(self.max_depth, depth)
            parent = node.parent.client if node.parent is not None else SERVER
            edge = graph.edges[node.client, parent]
            self.sidelink_edges += edge["link"] == "sidelink"
            self.latency_s += edge["latency_s"]
            self.energy_j += edge["energy_j"]

    def summary(self) -> dict[str, float]:
        return {"rounds": self.rounds, "selected": self.selected, "in_tree": self.in_tree,
                "sidelink_edges": self.sidelink_edges, "max_depth": self.max_depth,
                "tree_latency_s": round(self.latency_s, 6), "tree_energy_j": round(self.energy_j, 6)}
