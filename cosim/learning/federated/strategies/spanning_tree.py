"""Fed-Span (Nadimi et al., 2025): synchronous rounds aggregated along the minimum spanning forest
of the live connectivity graph of the selected clients and the server, weighted by each link's
latency or energy now (``cosim.learning.federated.tree``). The model math is FedAvg's: with every
update delivered, the result equals flat FedAvg; what changes is which links carry the bytes,
and the latency and energy of each operation (the ``hops`` trace)."""

from __future__ import annotations

from cosim.learning.federated.policies import Candidate
from cosim.learning.federated.strategies.base import register
from cosim.learning.federated.strategies.fedavg import FedAvg
from cosim.learning.federated.tree import TreeNode
from cosim.scenario import SpanningTreeConfig


@register
class SpanningTree(FedAvg):
    config = SpanningTreeConfig
    cfg: SpanningTreeConfig

    def form_nodes(self, chosen: list[int], candidates: list[Candidate]) -> dict[int, TreeNode]:
        return self.host.spanning_trees(chosen, candidates, self.cfg.weight)
