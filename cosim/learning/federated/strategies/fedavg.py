"""Synchronous FedAvg with a deadline: a round starts the picked clients together and ends when
all of them have completed or failed; completed updates are trained in the order they reached the
server and averaged module by module."""

from __future__ import annotations

from typing import ClassVar

from cosim.learning.federated.aggregation import fedavg
from cosim.learning.federated.deferred import DeferredState, resolved
from cosim.learning.federated.policies import Candidate, ServerView
from cosim.learning.federated.strategies.base import (
    Launch,
    NewModel,
    Record,
    RoundEnd,
    RoundStrategy,
    Selection,
    Steps,
    register,
)
from cosim.learning.federated.training import State
from cosim.learning.federated.tree import TreeNode, tree_fedavg, tree_groups
from cosim.scenario import AggregationBase, SpanningTreeConfig, SyncConfig


@register
class FedAvg(RoundStrategy):
    config: ClassVar[type[AggregationBase]] = SyncConfig
    cfg: SyncConfig | SpanningTreeConfig
    evaluate_by = "round"

    nodes: dict[int, TreeNode] = {}  # this round's cluster nodes (d2d.cluster), by client

    def done(self) -> bool:
        return self.cfg.max_rounds is not None and self.host.round >= self.cfg.max_rounds

    def select(self) -> Selection:
        host = self.host
        view = ServerView(host.env.now, host.round + 1, self.cfg.round_deadline_s)
        candidates = host.candidates()
        chosen = host.policy.select(view, candidates, host.per_round)
        if not chosen:
            return Selection()
        deadline = host.env.now + self.cfg.round_deadline_s
        self.nodes = self.form_nodes(chosen, candidates)
        return Selection([Launch(client, deadline, host.global_state, self.nodes.get(client))
                          for client in chosen], new_round=True)

    def form_nodes(self, chosen: list[int], candidates: list[Candidate]) -> dict[int, TreeNode]:
        """The round's aggregation trees (d2d.cluster's clusters; none without)."""
        return self.host.form_clusters(chosen, candidates)

    def aggregate(self) -> Steps:
        host = self.host
        attempts, trained = self.train_round_later()
        if any(a.completed for a in attempts):
            start = host.global_state
            groups = (tree_groups(attempts, self.nodes)  # clusters: averaged at their heads
                      if any(n.delivered for n in self.nodes.values()) else None)

            def average() -> State:
                updates = trained.result()
                if groups is not None:
                    return tree_fedavg(resolved(start), updates, groups)
                return fedavg(resolved(start), [(u.modules, u.weight) for u in updates])

            # overlap: averaged when first read (the next round's training, an evaluation)
            yield NewModel(DeferredState(average) if host.overlap else average())
        yield Record(attempts)
        yield RoundEnd()
        if self.cfg.min_round_gap_s:
            yield host.env.timeout(self.cfg.min_round_gap_s)
