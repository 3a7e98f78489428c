"""Hierarchical FL: an edge round at every cell each period (clients picked among those the cell
serves, FedAvg into the cell's edge model), and a cloud average of the edge models every
``cloud_every`` edge rounds, after the backhaul has carried them (networkx shortest-path latency
plus bytes over the link rate).

With ``tiers`` (HF-FMs), each module group is aggregated at its own tier (``tiers.py``): cloud
groups each on their own period, edge groups at their cell only, fog groups among the clients of
each of the round's sidelink clusters only. A client starts from the global model, overlaid with
its cell's edge model and its own fog modules. The global model that is evaluated holds the
edge groups' sample-weighted mean over the cells, and the fog groups' over the clients."""

from __future__ import annotations

from cosim.learning.federated.aggregation import cloud_average, fedavg, samples_per_key
from cosim.learning.federated.backhaul import backhaul_graph, edge_to_cloud_s
from cosim.learning.federated.policies import Candidate, ServerView
from cosim.learning.federated.strategies.base import (
    Launch,
    NewModel,
    Record,
    RoundStrategy,
    Selection,
    ServerHost,
    Steps,
    register,
)
from cosim.learning.federated.tiers import EDGE, FOG, ModuleTiers
from cosim.learning.federated.training import State
from cosim.learning.federated.tree import TreeNode, tree_groups
from cosim.learning.model import state_bytes
from cosim.scenario import HierarchicalConfig


@register
class Hierarchical(RoundStrategy):
    config = HierarchicalConfig
    cfg: HierarchicalConfig
    idle_s = None  # an edge round lasts its period whether or not anyone takes part

    def __init__(self, cfg: HierarchicalConfig, host: ServerHost):
        super().__init__(cfg, host)
        cells = host.radio.cells
        self.graph = backhaul_graph(cells.kind, cells.x, cells.y, cfg.macro_to_cloud_ms,
                                    cfg.small_to_macro_ms)
        self.edge_state: dict[int, State] = {}
        self.edge_samples: dict[int, dict[str, float]] = {}
        self.edge_rounds = 0
        self.cell_of: dict[int, int] = {}
        self.deadline = 0.0
        self.tiers = (ModuleTiers(cfg.tiers, cfg.cloud_every, host.model.module_names())
                      if cfg.tiers is not None else None)
        self.nodes: dict[int, TreeNode] = {}
        self.fog_state: dict[int, tuple[State, float]] = {}  # client -> (its fog modules, samples)

    def done(self) -> bool:
        return self.cfg.max_rounds is not None and self.host.version >= self.cfg.max_rounds

    def select(self) -> Selection:
        host = self.host
        self.deadline = host.env.now + self.cfg.edge_period_s
        by_cell: dict[int, list[Candidate]] = {}
        for c in host.candidates():
            if c.connected:
                by_cell.setdefault(c.serving_cell, []).append(c)
        view = ServerView(host.env.now, host.round + 1, self.cfg.edge_period_s)  # this new round
        self.cell_of = {}
        self.nodes = {}
        for cell, cands in sorted(by_cell.items()):
            chosen = host.policy.select(view, cands, host.per_round)
            for client in chosen:
                self.cell_of[client] = cell
            if self.tiers is not None and self.tiers.has(FOG):
                self.nodes.update(host.form_clusters(chosen, cands, always=True))
        launches = []
        for client in sorted(self.cell_of):
            start = self.edge_state.get(self.cell_of[client], host.global_state)
            if self.tiers is not None and client in self.fog_state:
                start = {**start, **self.fog_state[client][0]}
            launches.append(Launch(client, self.deadline, start, self.nodes.get(client)))
        return Selection(launches, new_round=True)  # an edge round every period, taken or not

    def aggregate(self) -> Steps:
        if self.tiers is not None:
            yield from self._aggregate_tiers()
            return
        host = self.host
        attempts, updates = self.train_round()
        self._edge_average([(u.client, u.modules, u.weight) for u in updates])
        yield Record(attempts)
        yield host.env.timeout(max(0.0, self.deadline - host.env.now))
        self.edge_rounds += 1
        if self.edge_rounds % self.cfg.cloud_every or not self.edge_state:
            return
        yield host.env.timeout(self._backhaul_s())
        cloud = cloud_average(
            host.global_state, [(self.edge_state[c], self.edge_samples[c]) for c in sorted(self.edge_state)])
        self.edge_state, self.edge_samples = {}, {}
        yield NewModel(cloud)

    def _edge_average(self, updates: list[tuple[int, State, float]]) -> None:
        """FedAvg of (client, modules, weight) into each client's cell's edge model, adding the
        samples behind each key to the cell's count."""
        per_cell: dict[int, list] = {}
        for client, modules, weight in updates:
            per_cell.setdefault(self.cell_of[client], []).append((modules, weight))
        for cell, ups in per_cell.items():
            self.edge_state[cell] = fedavg(self.edge_state.get(cell, self.host.global_state), ups)
            samples = self.edge_samples.setdefault(cell, {})
            for key, weight in samples_per_key(ups).items():
                samples[key] = samples.get(key, 0.0) + weight

    def _backhaul_s(self) -> float:
        size = state_bytes(self.host.global_state)
        return max(edge_to_cloud_s(self.graph, c, size, self.cfg.backhaul_gbps * 1e9)
                   for c in self.edge_state)

    def _aggregate_tiers(self) -> Steps:
        """Each module group at its tier: fog among each cluster's clients, edge at the cell,
        cloud groups when due."""
        host, tiers = self.host, self.tiers
        assert tiers is not None  # called only with tiers
        attempts, updates = self.train_round()
        self._fog(attempts, updates)
        self._edge_average([(u.client, {k: v for k, v in u.modules.items() if tiers.tier(k) != FOG},
                             u.weight) for u in updates])  # fog modules stay with their clusters
        yield Record(attempts)
        yield host.env.timeout(max(0.0, self.deadline - host.env.now))
        self.edge_rounds += 1
        due = set(tiers.cloud_due(host.global_state, self.edge_rounds))
        cells = [c for c in sorted(self.edge_state) if any(k in due for k in self.edge_samples.get(c, {}))]
        if not cells:
            return
        yield host.env.timeout(self._backhaul_s())
        parts = [(self.edge_state[c], {k: w for k, w in self.edge_samples[c].items() if k in due})
                 for c in cells]
        cloud = cloud_average(host.global_state, parts)
        new = dict(host.global_state)
        for key in due:
            new[key] = cloud[key]
        for c in self.edge_state:  # the cloud's groups go back to every edge
            self.edge_state[c] = {**self.edge_state[c], **{k: new[k] for k in due}}
            self.edge_samples[c] = {k: w for k, w in self.edge_samples[c].items() if k not in due}
        yield NewModel(self._evaluated_view(new))

    def _fog(self, attempts, updates) -> None:
        """Fog modules: each client keeps the average over the clients whose updates its cluster
        head carried (its own update, outside a cluster)."""
        tiers = self.tiers
        assert tiers is not None  # called only with tiers
        fog_keys = lambda u: {k: v for k, v in u.modules.items() if tiers.tier(k) == FOG}  # noqa: E731
        by_client = {u.client: u for u in updates}
        for client, node in tree_groups(attempts, self.nodes).items():
            carried = node.carried() if node is not None else [client]
            group = [(fog_keys(by_client[c]), by_client[c].weight) for c in carried if c in by_client]
            group = [(m, w) for m, w in group if m]
            if not group:
                continue
            averaged = fedavg({k: v for m, _ in group for k, v in m.items()}, group)
            weight = sum(w for _, w in group)
            for c in carried:
                self.fog_state[c] = (averaged, weight)

    def _evaluated_view(self, state: State) -> State:
        """The global model with the edge groups' mean over the cells and the fog groups' over
        the clients (sample-weighted): what the evaluation scores."""
        tiers, view = self.tiers, dict(state)
        assert tiers is not None  # called only with tiers
        # an edge group's samples are never handed to the cloud: they add up over the run
        edge_parts = [(self.edge_state[c], {k: w for k, w in self.edge_samples.get(c, {}).items()
                                            if tiers.tier(k) == EDGE})
                      for c in sorted(self.edge_state)]
        if tiers.has(EDGE) and edge_parts:
            view.update({k: v for k, v in cloud_average(state, edge_parts).items() if tiers.tier(k) == EDGE})
        fog = [(m, {k: w for k in m}) for m, w in (self.fog_state[c] for c in sorted(self.fog_state))]
        if fog:
            view.update({k: v for k, v in cloud_average(state, fog).items() if tiers.tier(k) == FOG})
        return view
