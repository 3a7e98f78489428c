"""Hierarchical FL: an edge round at every cell each period (clients picked among those the cell
serves, FedAvg into the cell's edge model), and a cloud average of the edge models every
``cloud_every`` edge rounds, after the backhaul has carried them (networkx shortest-path latency
plus bytes over the link rate)."""

from __future__ import annotations

from cosim.learning.federated.aggregation import cloud_average, fedavg, samples_per_key
from cosim.learning.federated.backhaul import backhaul_graph, edge_to_cloud_s
from cosim.learning.federated.policies import Candidate, ServerView
from cosim.learning.federated.strategies.base import RoundStrategy, register
from cosim.learning.federated.training import State
from cosim.learning.model import state_bytes
from cosim.scenario import HierarchicalConfig


@register
class Hierarchical(RoundStrategy):
    config = HierarchicalConfig
    cfg: HierarchicalConfig
    idle_s = None  # an edge round lasts its period whether or not anyone takes part

    def __init__(self, cfg: HierarchicalConfig, host):
        super().__init__(cfg, host)
        cells = host.radio.cells
        self.graph = backhaul_graph(cells.kind, cells.x, cells.y, cfg.macro_to_cloud_ms,
                                    cfg.small_to_macro_ms)
        self.edge_state: dict[int, State] = {}
        self.edge_samples: dict[int, dict[str, float]] = {}
        self.edge_rounds = 0
        self.cell_of: dict[int, int] = {}
        self.deadline = 0.0

    def done(self) -> bool:
        return self.cfg.max_rounds is not None and self.host.version >= self.cfg.max_rounds

    def select(self) -> None:
        host = self.host
        self.deadline = host.env.now + self.cfg.edge_period_s
        by_cell: dict[int, list[Candidate]] = {}
        for c in host.candidates():
            if c.connected:
                by_cell.setdefault(c.serving_cell, []).append(c)
        host.round += 1
        view = ServerView(host.env.now, host.round, self.cfg.edge_period_s)
        self.cell_of = {}
        for cell, cands in sorted(by_cell.items()):
            for client in host.policy.select(view, cands, host.per_round):
                self.cell_of[client] = cell
        for client in sorted(self.cell_of):
            start = self.edge_state.get(self.cell_of[client], host.global_state)
            host.launch(client, self.deadline, start)

    def aggregate(self):
        host = self.host
        attempts, updates = self.train_round()
        per_cell: dict[int, list] = {}
        for u in updates:
            per_cell.setdefault(self.cell_of[u.client], []).append((u.modules, u.weight))
        for cell, updates in per_cell.items():
            self.edge_state[cell] = fedavg(self.edge_state.get(cell, host.global_state), updates)
            samples = self.edge_samples.setdefault(cell, {})
            for key, weight in samples_per_key(updates).items():
                samples[key] = samples.get(key, 0.0) + weight
        host.record(attempts)
        yield host.env.timeout(max(0.0, self.deadline - host.env.now))
        self.edge_rounds += 1
        if self.edge_rounds % self.cfg.cloud_every or not self.edge_state:
            return
        size = state_bytes(host.global_state)
        delay = max(edge_to_cloud_s(self.graph, c, size, self.cfg.backhaul_gbps * 1e9)
                    for c in self.edge_state)
        yield host.env.timeout(delay)
        host.global_state = cloud_average(
            host.global_state, [(self.edge_state[c], self.edge_samples[c]) for c in sorted(self.edge_state)])
        self.edge_state, self.edge_samples = {}, {}
        host.version += 1
        if host.version % self.cfg.eval_every_rounds == 0:
            host.evaluate()
